"""jaxcost: differentiable, fitted cost models of accelerators under export controls."""

__version__ = "0.1.0"

from jaxcost.errors import (
    DataError,
    InfeasibleError,
    JaxcostError,
    NumericalError,
    ParamsError,
    PlanError,
    RegimeError,
    ScenarioError,
    UnknownChipError,
)
from jaxcost.hardware import ChipSpec, ClusterSpec, stack_chips

__all__ = [
    "__version__",
    # errors
    "JaxcostError",
    "DataError",
    "UnknownChipError",
    "RegimeError",
    "ScenarioError",
    "InfeasibleError",
    "ParamsError",
    "PlanError",
    "NumericalError",
    # hardware
    "ChipSpec",
    "ClusterSpec",
    "stack_chips",
]
