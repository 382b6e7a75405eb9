"""Test configuration: x64 and strict rank promotion for every test."""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
