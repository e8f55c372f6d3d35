"""Configs PUM writes for the programs around it (Apache, nginx, systemd, cron), from templates/."""

from __future__ import annotations

import re
from importlib import resources

from pum.errors import PumError


def render_template(name: str, values: dict[str, str]) -> str:
    """templates/<name> with every `{{key}}` replaced; a slot without a value is a bug, said so."""
    text = resources.files("pum.deploy").joinpath("templates", name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    leftover = re.search(r"\{\{\w+\}\}", text)
    if leftover:
        raise PumError(f"template {name}: no value for {leftover.group(0)}")
    return text
