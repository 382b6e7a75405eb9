"""``python -m jaxcost``: the same as the ``jaxcost`` command."""

from jaxcost.cli import main

raise SystemExit(main())
