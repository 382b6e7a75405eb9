"""Reading and writing: shipped paths, table schemas and validation, atomic writes.

The bottom layer above :mod:`jaxcost.errors` and :mod:`jaxcost.units`: nothing here
imports a model, a fit or a search.
"""

__all__: list[str] = []
