"""`python -m pum`: the `pum` command."""

from pum.cli import entry

entry()
