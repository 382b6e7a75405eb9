"""Plan search: the plan space, the one plan scorer and batched sweeps.

Imports :mod:`jaxcost.model`; never :mod:`jaxcost.calibrate` or :mod:`jaxcost.policy`.
"""

__all__: list[str] = []
