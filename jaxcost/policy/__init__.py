"""Policy: export-control regimes (rules as data), scenarios, chip-mix optimisation
and sensitivities.
"""

__all__: list[str] = []
