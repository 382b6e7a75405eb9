"""The cost model: chips, workloads, plans, roofline, collectives, one training step.

Pure functions over ``flax.struct`` records; every leaf a model might differentiate or
batch over is a JAX leaf. Imports :mod:`jaxcost.io` only to load the shipped tables.
"""

__all__: list[str] = []
