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
from jaxcost.parallel import (
    ParallelPlan,
    Recompute,
    check_plan,
    enumerate_plans,
    num_chips,
    num_microbatches,
    plan_at,
    plan_from_str,
    plan_to_str,
    stack_plans,
)
from jaxcost.workload import (
    CommVolumes,
    LayerOps,
    MemoryBreakdown,
    Mlp,
    TransformerConfig,
    activation_bytes_per_layer,
    active_param_count,
    comm_volumes,
    get_model,
    head_ops,
    layer_ops,
    load_models,
    memory_bytes,
    model_flop_per_token,
    narayanan_flop_per_step,
    param_count,
    recompute_flop_frac,
)

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
    # workload
    "Mlp",
    "TransformerConfig",
    "LayerOps",
    "CommVolumes",
    "MemoryBreakdown",
    "param_count",
    "active_param_count",
    "model_flop_per_token",
    "narayanan_flop_per_step",
    "layer_ops",
    "recompute_flop_frac",
    "head_ops",
    "comm_volumes",
    "memory_bytes",
    "activation_bytes_per_layer",
    "load_models",
    "get_model",
    # parallel
    "Recompute",
    "ParallelPlan",
    "num_chips",
    "num_microbatches",
    "check_plan",
    "enumerate_plans",
    "stack_plans",
    "plan_at",
    "plan_to_str",
    "plan_from_str",
]
