"""jaxcost: differentiable, fitted cost models of accelerators under export controls.

The public API: ``jaxcost.best_plan(...)``, ``from jaxcost import ChipSpec``. Each
name below is re-exported from the module that defines it, and loaded on first use
(a module ``__getattr__``, PEP 562): ``import jaxcost`` itself imports neither JAX nor
any jaxcost module. This is one of the two declared exceptions to "no imports inside
functions" (docs/architecture.md, rule 2), for the ``jaxcost`` command: it installs
its Ctrl-C handling, and then imports only the modules of the subcommand it runs,
before JAX is loaded (importing any ``jaxcost.*`` module runs this file first).
``tools/import_graph.py``
reads :data:`_EXPORTS` and checks its edges like imports. Subpackages
(``jaxcost.model``, ...) load the same way when reached as attributes.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Module -> the public names re-exported from it (loaded on first use).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "jaxcost.calibrate": (
        "BootstrapResult", "CVResult", "FitData", "FitOptions", "FitResult", "RunBatch",
        "bootstrap", "build_fit_data", "cross_validate", "fit_params",
        "predict_run_batch", "runs_to_arrays",
    ),
    "jaxcost.errors": (
        "DataError", "InfeasibleError", "JaxcostError", "NumericalError", "ParamsError",
        "PlanError", "RegimeError", "ScenarioError", "UnknownChipError",
    ),
    "jaxcost.io.benchmarks": ("load_benchmarks", "load_runs"),
    "jaxcost.io.paths": ("data_dir",),
    "jaxcost.model.collectives": (
        "Collective", "all_gather_time", "all_reduce_time", "all_to_all_time",
        "collective_time", "nccl_bus_bandwidth", "reduce_scatter_time",
        "send_recv_time",
    ),
    "jaxcost.model.goodput": (
        "GoodputParams", "goodput_frac", "goodput_frac_range", "load_goodput_params",
        "time_to_train_with_goodput_s",
    ),
    "jaxcost.model.hardware": (
        "ChipSpec", "ClusterSpec", "Precision", "get_chip", "load_chips", "stack_chips",
    ),
    "jaxcost.model.parallel": ("check_plan", "num_microbatches"),
    "jaxcost.model.params": (
        "CostParams", "PhysicalParams", "RawParams", "default_params", "load_params",
        "log_prior", "physical", "save_params", "with_offsets",
    ),
    "jaxcost.model.plan": (
        "ParallelPlan", "Recompute", "num_chips", "plan_at", "plan_from_str",
        "plan_to_str", "stack_plans",
    ),
    "jaxcost.model.roofline": (
        "arithmetic_intensity", "compute_time", "memory_time", "op_time", "ridge_point",
        "roofline_lower", "roofline_upper", "smooth_max",
    ),
    "jaxcost.model.step_time": (
        "StepTime", "hetero_batch_shares", "predict_step_time",
        "predict_step_time_hetero", "predict_step_time_physical",
    ),
    "jaxcost.model.workload": (
        "CommVolumes", "LayerOps", "MemoryBreakdown", "Mlp", "TransformerConfig",
        "activation_bytes_per_layer", "active_param_count", "comm_volumes", "get_model",
        "head_ops", "layer_ops", "load_models", "memory_bytes", "model_flop_per_token",
        "narayanan_flop_per_step", "param_count", "recompute_flop_frac",
    ),
    "jaxcost.policy.export_control": (
        "ChipQuantities", "Classification", "Consequence", "Regime", "RegimeThresholds",
        "chip_quantities", "classify", "load_regime", "load_regimes",
        "performance_density", "regime_thresholds", "smooth_allowed_frac",
        "smooth_consequence_probs", "smooth_license_cost_frac", "tpp", "tpp_cap_units",
    ),
    "jaxcost.policy.mix": ("ClusterResult", "MixResult", "chip_mix", "pareto_front"),
    "jaxcost.policy.scenario": ("Scenario", "load_scenario"),
    "jaxcost.policy.sensitivity": ("threshold_sweep",),
    "jaxcost.search.plans": ("Objective", "PlanResult", "best_plan"),
    "jaxcost.search.score": ("plan_time_s",),
    "jaxcost.search.space": ("PlanSpace", "enumerate_plans"),
}

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
    "Precision",
    "stack_chips",
    "load_chips",
    "get_chip",
    "data_dir",
    # data
    "RunBatch",
    "load_benchmarks",
    "load_runs",
    "runs_to_arrays",
    # export control
    "tpp",
    "performance_density",
    "Consequence",
    "Regime",
    "Classification",
    "load_regime",
    "load_regimes",
    "classify",
    "tpp_cap_units",
    "ChipQuantities",
    "chip_quantities",
    "RegimeThresholds",
    "regime_thresholds",
    "smooth_consequence_probs",
    "smooth_allowed_frac",
    "smooth_license_cost_frac",
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
    # goodput (failures, checkpoints, restarts)
    "GoodputParams",
    "load_goodput_params",
    "goodput_frac",
    "goodput_frac_range",
    "time_to_train_with_goodput_s",
    "enumerate_plans",
    "stack_plans",
    "plan_at",
    "plan_to_str",
    "plan_from_str",
    # params
    "CostParams",
    "PhysicalParams",
    "RawParams",
    "default_params",
    "physical",
    "log_prior",
    "with_offsets",
    "save_params",
    "load_params",
    # roofline
    "compute_time",
    "memory_time",
    "arithmetic_intensity",
    "ridge_point",
    "roofline_lower",
    "roofline_upper",
    "smooth_max",
    "op_time",
    # collectives
    "Collective",
    "all_gather_time",
    "reduce_scatter_time",
    "all_reduce_time",
    "all_to_all_time",
    "send_recv_time",
    "collective_time",
    "nccl_bus_bandwidth",
    # step time
    "StepTime",
    "predict_step_time",
    "predict_step_time_physical",
    "predict_step_time_hetero",
    "hetero_batch_shares",
    # search
    "PlanSpace",
    "Objective",
    "plan_time_s",
    "PlanResult",
    "ClusterResult",
    "MixResult",
    "best_plan",
    "chip_mix",
    "pareto_front",
    "threshold_sweep",
    "Scenario",
    "load_scenario",
    # fit
    "FitOptions",
    "FitData",
    "FitResult",
    "CVResult",
    "BootstrapResult",
    "build_fit_data",
    "fit_params",
    "cross_validate",
    "bootstrap",
    "predict_run_batch",
]

#: Public name -> its module.
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

#: Subpackages and modules reachable as attributes (``jaxcost.model.plan``).
_SUBMODULES = ("calibrate", "cli", "errors", "io", "model", "policy", "search", "units")


def __getattr__(name: str) -> object:
    """A public name or a subpackage, imported on first use and then kept."""
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
