"""Where the shipped files are: data tables, calibration and scenarios.

Paths are resolved when a function is called, never at import, so that
``$JAXCOST_DATA_DIR`` / ``$JAXCOST_SCENARIOS_DIR`` set after import are honoured. In a
source checkout the files are the repository's ``data/`` and ``scenarios/`` next to
``jaxcost/``; in an installed wheel they ship as ``jaxcost/_data`` and
``jaxcost/_scenarios`` (``pyproject.toml``: ``[tool.hatch.build.targets.wheel.sources]``
maps ``data`` and ``scenarios`` there; not ``force-include``, which would also ship
git-ignored and excluded files).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "data_dir",
    "scenarios_dir",
    "default_scenario_path",
    "default_calibration_path",
]


def _package_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _find(env_var: str, checkout_name: str, wheel_name: str, marker: str) -> Path:
    env = os.environ.get(env_var)
    if env:
        return Path(env)
    root = _package_root()
    for candidate in (root.parent / checkout_name, root / wheel_name):
        if (candidate / marker).exists():
            return candidate
    return root.parent / checkout_name


def data_dir() -> Path:
    """The folder of the shipped data files (``chips.csv``, ``regimes/``, ...).

    ``$JAXCOST_DATA_DIR`` if set; otherwise the checkout's ``data/`` or the wheel's
    ``jaxcost/_data``. Every module finds its data files through this function.
    """
    return _find("JAXCOST_DATA_DIR", "data", "_data", "chips.csv")


def scenarios_dir() -> Path:
    """The folder of the shipped scenarios (``default.toml``, ...).

    ``$JAXCOST_SCENARIOS_DIR`` if set; otherwise the checkout's ``scenarios/`` or the
    wheel's ``jaxcost/_scenarios``.
    """
    return _find("JAXCOST_SCENARIOS_DIR", "scenarios", "_scenarios", "default.toml")


def default_scenario_path() -> Path:
    """The scenario ``jaxcost optimize`` runs when given none."""
    return scenarios_dir() / "default.toml"


def default_calibration_path() -> Path:
    """The shipped calibration (``data/calibration/default.json``)."""
    return data_dir() / "calibration" / "default.json"
