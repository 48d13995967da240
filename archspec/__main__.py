"""`python -m archspec` is the `archspec` command."""

import sys

from archspec.cli import command

sys.exit(command())
