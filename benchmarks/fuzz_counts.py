"""Count the generated bad-input cases per class and how each one ended.

Runs the checkers of ``tests/test_fuzz_inputs.py`` with many more (seeded) examples
than the test suite and prints, per input class, the number of cases, how many loaded
cleanly, how many gave a one-line ``JaxcostError``, and the failures: tracebacks
(any other exception, or a message that is not one line naming the file), partial
output files, and silent NaN values.

Usage::

    python benchmarks/fuzz_counts.py [N]      # N examples per class (default 400)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_fuzz_inputs as fz  # noqa: E402


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    failures: list = []
    t0 = time.perf_counter()
    bad = 0
    for cls in fz.CLASSES:
        t = time.perf_counter()
        fz.run_class(cls, n, failures, explore=True)
        c = fz.COUNTS.get(cls, {})
        cases = sum(c.values())
        tb, part, nan = c.get("traceback", 0), c.get("partial file", 0), \
            c.get("silent NaN", 0)
        bad += tb + part + nan
        print(f"{cls:28s} {cases:5d} cases ({c.get('ok', 0)} loaded, "
              f"{c.get('error', 0)} clean errors), {tb} tracebacks, "
              f"{part} partial files, {nan} silent NaN  "
              f"[{time.perf_counter() - t:.1f} s]")
    seen = set()
    for cls, kind, text in failures:
        key = (cls, kind, text[:80])
        if key not in seen:
            seen.add(key)
            print(f"  FAIL {cls} {kind}: {text}")
    print(f"total {sum(sum(c.values()) for c in fz.COUNTS.values())} cases, "
          f"{bad} failures, {time.perf_counter() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
