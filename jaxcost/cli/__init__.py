"""The ``jaxcost`` command: argument parsing and one function per subcommand.

Each subcommand parses its arguments, loads data through :mod:`jaxcost.io`, calls the
library and writes CSV, JSON or PNG atomically. No modelling logic lives here.
Importing this package is cheap (no JAX): :mod:`jaxcost.cli.app` loads a subcommand's
module when it runs.
"""

from jaxcost.cli.app import main, run

__all__ = ["main", "run"]
