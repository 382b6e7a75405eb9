"""Test configuration: x64 and strict rank promotion for every test.

``JAXCOST_NO_CACHE=1`` keeps the command's persistent compilation cache
(``jaxcost.cli.common.compilation_cache_dir``) off in tests that call ``main()`` or run
``python -m jaxcost`` (inherited): no writes to the user's cache folder, and no cache
shared between test workers. ``tests/test_cli_cache.py`` turns it on where it tests it.
"""

import os

import jax

os.environ.setdefault("JAXCOST_NO_CACHE", "1")

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
