"""The ``jaxcost`` command: argument parsing and one function per subcommand.

Each subcommand parses its arguments, loads data through :mod:`jaxcost.io`, calls the
library and writes CSV, JSON or PNG atomically. No modelling logic lives here.
"""

from jaxcost.cli.app import main

__all__ = ["main"]
