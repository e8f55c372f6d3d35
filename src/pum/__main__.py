"""`python -m pum`: the `pum` command."""

import sys

from pum.cli import main

sys.exit(main())
