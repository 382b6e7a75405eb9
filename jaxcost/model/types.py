"""Type aliases used in signatures."""

from typing import Any

import jax

Scalar = float | jax.Array
ArrayLike = jax.typing.ArrayLike
PyTree = Any
