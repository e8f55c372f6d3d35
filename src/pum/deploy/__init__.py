"""Configs PUM writes for the programs around it: Apache and nginx (`web`), from templates/."""
