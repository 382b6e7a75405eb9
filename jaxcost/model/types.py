"""Type aliases used in signatures."""

from typing import Any

import jax

__all__ = [
    "Scalar",
    "ArrayLike",
    "PyTree",
]

Scalar = float | jax.Array
ArrayLike = jax.typing.ArrayLike
PyTree = Any
