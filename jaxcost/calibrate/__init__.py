"""Calibration: benchmark rows to arrays, residuals, the optax fit, cross-validation,
bootstrap ensembles, error tables and predictions of measured runs.

Modules, in the order data flows through them: :mod:`~jaxcost.calibrate.batches`
(validated frames to arrays), :mod:`~jaxcost.calibrate.rows` (``FitData``),
:mod:`~jaxcost.calibrate.residuals` (packed parameters, residuals, the loss),
:mod:`~jaxcost.calibrate.fit` (Adam then L-BFGS), :mod:`~jaxcost.calibrate.cv`
(grouped folds, bootstrap), :mod:`~jaxcost.calibrate.metrics` (error and coverage
tables), :mod:`~jaxcost.calibrate.ensemble` (JSON), :mod:`~jaxcost.calibrate.predict`
(predictions of measured runs, blank plans searched).
"""

from jaxcost.calibrate.batches import (
    PLAN_COLUMNS,
    CollectiveBatch,
    KernelBatch,
    RunBatch,
    collectives_to_arrays,
    fit_exclusions,
    kernels_to_arrays,
    runs_to_arrays,
)
from jaxcost.calibrate.cv import (
    BootstrapResult,
    CVResult,
    bootstrap,
    bootstrap_weights,
    cross_validate,
    group_folds,
)
from jaxcost.calibrate.ensemble import (
    ensemble_from_json,
    ensemble_to_json,
)
from jaxcost.calibrate.fit import (
    BOOTSTRAP_LBFGS_STEPS,
    LOSS_BATCH,
    FitResult,
    fit_params,
    optimize_packed,
)
from jaxcost.calibrate.metrics import (
    CoverageRow,
    ErrorRow,
    error_table,
    format_coverage_table,
    format_error_table,
    interval_coverage,
)
from jaxcost.calibrate.predict import (
    best_plans_for_missing,
    predict_run_batch,
    row_plan_space,
    searched_columns,
)
from jaxcost.calibrate.residuals import (
    FitOptions,
    base_weights,
    cluster_chips,
    initial_params,
    log_prior_packed,
    log_residuals,
    log_residuals_packed,
    loss_packed,
    pack_params,
    physical_from_matrix,
    prior_tables,
    run_chips,
    run_values,
    step_sign,
    unpack_params,
    with_network,
)
from jaxcost.calibrate.rows import (
    DATASETS,
    HBM_STREAM_BYTES,
    TARGET_KINDS,
    TIME_TARGET,
    FitData,
    benchmark_kind,
    build_fit_data,
    load_fit_files,
    x64,
)

__all__ = [
    "PLAN_COLUMNS",
    "row_plan_space",
    "searched_columns",
    "RunBatch",
    "fit_exclusions",
    "runs_to_arrays",
    "CollectiveBatch",
    "collectives_to_arrays",
    "KernelBatch",
    "kernels_to_arrays",
    "DATASETS",
    "TARGET_KINDS",
    "TIME_TARGET",
    "HBM_STREAM_BYTES",
    "x64",
    "FitData",
    "build_fit_data",
    "benchmark_kind",
    "load_fit_files",
    "FitOptions",
    "physical_from_matrix",
    "pack_params",
    "unpack_params",
    "prior_tables",
    "log_prior_packed",
    "with_network",
    "cluster_chips",
    "run_chips",
    "run_values",
    "log_residuals",
    "log_residuals_packed",
    "step_sign",
    "base_weights",
    "loss_packed",
    "initial_params",
    "FitResult",
    "BOOTSTRAP_LBFGS_STEPS",
    "LOSS_BATCH",
    "optimize_packed",
    "fit_params",
    "CVResult",
    "BootstrapResult",
    "group_folds",
    "cross_validate",
    "bootstrap_weights",
    "bootstrap",
    "ErrorRow",
    "error_table",
    "format_error_table",
    "CoverageRow",
    "interval_coverage",
    "format_coverage_table",
    "ensemble_to_json",
    "ensemble_from_json",
    "predict_run_batch",
    "best_plans_for_missing",
]
