"""Count the generated bad-input cases per class and how each one ended.

Runs the checkers of ``tests/test_fuzz_inputs.py`` with many more (seeded) examples
than the test suite and prints, per input class, the number of cases, how many loaded
cleanly, how many gave a one-line ``JaxcostError``, and the failures: tracebacks
(any other exception, or a message that is not one line naming the file), partial
output files, and silent NaN values.

The reliability classes of issue 18 (``tests/test_reliability.py`` holds their case
lists) run after them: TOML nesting and huge numbers (scenario and regime loaders),
bad arguments of the public API, Ctrl-C at different moments of each subcommand
(subprocesses), output paths that cannot be written, and output into a closed pipe.
Their failures are tracebacks (or a wrong exit status / a message on more than one
line), partial files, and bad values accepted silently.

Usage::

    python benchmarks/fuzz_counts.py [N]              # N examples per class (400)
    python benchmarks/fuzz_counts.py N --reliability  # only the reliability classes
    python benchmarks/fuzz_counts.py N --only=cli:sigint,toml:nesting
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_fuzz_inputs as fz  # noqa: E402
import test_reliability as rel  # noqa: E402

import jaxcost  # noqa: E402
from jaxcost.cli import main as cli_main  # noqa: E402
from jaxcost.errors import JaxcostError  # noqa: E402
from jaxcost.policy.export_control import load_regime  # noqa: E402
from jaxcost.policy.scenario import load_scenario  # noqa: E402

#: the checkout whose ``python -m jaxcost`` the subprocesses run
ROOT = Path(jaxcost.__file__).resolve().parent.parent
INPUTS = Path(__file__).resolve().parent.parent
REGIME = (INPUTS / "data" / "regimes" / "2025-04.toml").read_text()

# ------------------------------------------------------------ reliability classes
# Each case returns an outcome: "ok" (loaded / ran), "error" (one clean line), or a
# failure: "traceback", "partial file", "accepted" (a bad value taken silently).


def _clean(err: BaseException, path: str | None) -> str:
    msg = str(err)
    if not isinstance(err, JaxcostError) or "\n" in msg:
        return "traceback"
    if path is not None and path not in msg:
        return "traceback"
    return "error"


def _load(loader, path: Path, must_fail: bool) -> str:
    try:
        loader(path)
    except Exception as err:  # noqa: BLE001 - counting every kind of ending
        return _clean(err, str(path))
    return "accepted" if must_fail else "ok"


def _nesting_cases(n: int, rng: random.Random):
    depths = [10, 100, 500, 999, 1000, 1001, 2000, 5000, 20000]
    kinds = {
        "array": lambda d: "x = " + "[" * d + "]" * d,
        "inline": lambda d: "x = " + "{a=" * d + "1" + "}" * d,
        "mixed": lambda d: "x = " + "[{a=" * d + "1" + "}]" * d,
        "dotted": lambda d: "[" + ".".join(["t"] * d) + "]",
    }
    cases = [(k, d) for k in kinds for d in depths]
    cases += [(rng.choice(list(kinds)), rng.randint(1, 30000))
              for _ in range(max(0, n - len(cases)))]
    for kind, depth in cases[:max(n, len(cases))]:
        yield kind, depth, kinds[kind](depth) + "\n"


def run_nesting(n: int, rng: random.Random, tmp: Path, out: Counter, fails: list):
    for kind, depth, text in _nesting_cases(n, rng):
        for what, base, loader in (("scenario", rel.SCENARIO, load_scenario),
                                   ("regime", REGIME, load_regime)):
            path = tmp / f"deep_{what}.toml"
            # a nested value is an unknown key of either file: must be refused
            path.write_text(text + base)
            res = _load(loader, path, must_fail=True)
            out[res] += 1
            if res not in ("ok", "error"):
                fails.append((f"{what} {kind} depth {depth}", res))


_VALUES = ["1e308", "-1e308", "-4", "0", "nan", "inf", "-inf", "1e20",
           "99999999999999999999", "2.5", "-0.0", "1", "4096"]
_COUNT_KEYS = [("relaxed_steps", "search"), ("top", "search"),
               ("grid_steps_per_octave", "search"), ("max_plans", "search"),
               ("global_batch_seqs", "model"), ("seq_len", "model")]
_FLOAT_KEYS = [("tokens", "training"), ("max_chips", "limits"),
               ("budget_usd", "limits"), ("power_w", "limits"), ("pue", "limits")]


def _must_fail(key: str, value: str) -> bool:
    v = float(value)
    if key in dict(_COUNT_KEYS):
        limit = {"relaxed_steps": 1e6, "top": 1e6, "grid_steps_per_octave": 64,
                 "max_plans": 1e9}.get(key, 2.0**53)
        return not (v == v and 1 <= v <= limit and v == int(v))
    if key == "tokens":
        return not (v == v and 0 < v <= 1e20)
    if key == "pue":
        return not (v == v and 1 <= v < 10)
    return not (v == v and v >= 0 and (v <= 2.0**53 or v == float("inf")
                                        or key != "max_chips"))


def run_numbers(n: int, rng: random.Random, tmp: Path, out: Counter, fails: list):
    cases = [(k, t, v) for k, t in _COUNT_KEYS + _FLOAT_KEYS for v in _VALUES]
    cases += [(*rng.choice(_COUNT_KEYS + _FLOAT_KEYS),
               repr(rng.choice([-1, 1]) * 10 ** rng.uniform(-3, 308)))
              for _ in range(max(0, n - len(cases)))]
    for key, table, value in cases:
        path = tmp / "numbers.toml"
        path.write_text(rel._scenario_with(key, value, table))
        res = _load(load_scenario, path, _must_fail(key, value))
        out[res] += 1
        if res not in ("ok", "error"):
            fails.append((f"scenario {table}.{key} = {value}", res))
    for key in ("tariff_frac", "revenue_share_frac"):
        for value in _VALUES:
            path = tmp / "2025-04.toml"
            text = REGIME.replace("[[rule]]", f"[[rule]]\n{key} = {value}", 1)
            path.write_text(text)
            v = float(value)
            res = _load(load_regime, path, must_fail=not (v == v and 0 <= v <= 1))
            out[res] += 1
            if res not in ("ok", "error"):
                fails.append((f"regime {key} = {value}", res))


def run_api(n: int, rng: random.Random, tmp: Path, out: Counter, fails: list):
    cases = list(rel.API_CASES)
    pool = [-1e308, -256, -1, 0, 0.5, float("nan"), float("inf"), -float("inf"),
            1e308, 2.0**33]
    for _ in range(max(0, n - len(cases))):
        v = rng.choice(pool)
        which = rng.randrange(3)
        if which == 0:
            cases.append((f"predict_step_time(num_chips={v})", lambda v=v:
                          jaxcost.predict_step_time(
                              rel._P, jaxcost.ClusterSpec(chip=rel._CHIP, num_chips=v),
                              rel._MODEL, rel._PLAN)))
        elif which == 1:
            cases.append((f"best_plan(tokens={-abs(v)})", lambda v=v: jaxcost.best_plan(
                rel._P, jaxcost.ClusterSpec(chip=rel._CHIP, num_chips=8), rel._MODEL,
                tokens=-abs(v))))
        else:
            cases.append((f"enumerate_plans(num_chips={v})", lambda v=v:
                          jaxcost.enumerate_plans(rel._MODEL, v, rel._CHIP)))
    def alarm(*_):
        raise TimeoutError("no answer within 20 s")

    old = signal.signal(signal.SIGALRM, alarm)
    for label, thunk in cases:
        signal.alarm(20)  # a bad count may make the call run for ever
        try:
            thunk()
            res = "accepted"
        except TimeoutError:
            res = "traceback"
            label += " (hung: stopped after 20 s)"
        except Exception as err:  # noqa: BLE001
            res = _clean(err, None)
        finally:
            signal.alarm(0)
        out[res] += 1
        if res != "error":
            fails.append((label, res))
    signal.signal(signal.SIGALRM, old)


def _jaxcost_args(cmd: str, tmp: Path) -> list[str]:
    # a file in the full benchmark schema: older versions of fit read it too
    runs = str(INPUTS / "tests" / "data" / "production_runs.csv")
    return {
        "chips": ["chips", "--out", str(tmp / "chips.csv")],
        "classify": ["classify", "--out", str(tmp / "classify.csv")],
        "fit": ["fit", runs, "--out", str(tmp / "p.json"), "--plot",
                str(tmp / "p.png")],
        "predict": ["predict", runs, "--out", str(tmp / "pred.csv")],
        "optimize": ["optimize", "--out", str(tmp / "opt")],
    }[cmd]


def _wait_socket(proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Until main() has installed its SIGINT watcher (a socket pair appears)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s and proc.poll() is None:
        with contextlib.suppress(OSError):  # an fd closed while we looked
            if any("socket" in os.readlink(f"/proc/{proc.pid}/fd/{f}")
                   for f in os.listdir(f"/proc/{proc.pid}/fd")):
                return
        time.sleep(0.02)


#: Runs ``python -m jaxcost ARGS`` with SIGINT at its default, as from a terminal
#: (a background job inherits it ignored); exec keeps the process id.
_EXEC_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'jaxcost', *sys.argv[1:]])"
)


def _sigint_case(cmd: str, delay: float, after_start: bool, tmp: Path) -> str:
    for f in tmp.iterdir():
        if f.is_dir():
            for g in f.iterdir():
                g.unlink()
            f.rmdir()
        else:
            f.unlink()
    proc = subprocess.Popen([sys.executable, "-c", _EXEC_DEFAULT_SIGINT,
                             *_jaxcost_args(cmd, tmp)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if after_start:
        _wait_socket(proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "traceback"
    text = err.decode(errors="replace")
    lines = [x for x in text.replace("\r", "\n").splitlines() if x.strip()]
    left = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    _sigint_case.detail = f"rc {proc.returncode}, {text[-160:]!r}, left {left}"
    if proc.returncode == 0 or (proc.returncode == -signal.SIGINT
                                and "Traceback" not in text):
        # finished before the signal, or the signal came after main() returned
        # (the process then dies of SIGINT at exit, its output already whole)
        return "ok" if not any(".tmp" in x for x in left) else "partial file"
    if proc.returncode != 130 or "Traceback" in text or not lines or \
            lines[-1] != "jaxcost: interrupted":
        return "traceback"
    return "partial file" if left else "error"


def run_sigint(n: int, rng: random.Random, tmp: Path, out: Counter, fails: list):
    """Ctrl-C after main() started (its watcher is installed) and, separately,
    during start-up (counted under "start-up")."""
    cases = [(c, d, True) for c in ("fit", "predict", "optimize")
             for d in (0.0, 0.5, 1.5, 3.0, 6.0, 12.0)]
    cases += [(c, d, True) for c in ("chips", "classify") for d in (0.0, 0.1)]
    cases += [(rng.choice(["fit", "predict", "optimize"]), rng.uniform(0, 15), True)
              for _ in range(max(0, min(n, 60) - len(cases)))]
    for cmd, delay, after in cases:
        res = _sigint_case(cmd, delay, after, tmp)
        out[res] += 1
        if res not in ("ok", "error"):
            fails.append((f"SIGINT {cmd} after {delay:.1f} s: "
                          f"{_sigint_case.detail}", res))


def run_sigint_startup(n, rng, tmp, out, fails):
    """Ctrl-C timed from the start of the process, not from main(): mostly while
    Python starts and JAX and the subcommand's modules are imported (the first 1-3
    s of a cold start); max(8, n) cases."""
    cases = [(c, d) for c in ("chips", "fit") for d in (0.2, 0.6, 1.0, 1.5)]
    cases += [(rng.choice(["chips", "classify", "predict", "fit", "optimize"]),
               rng.uniform(0.0, 2.5)) for _ in range(max(0, n - len(cases)))]
    for cmd, delay in cases:
        res = _sigint_case(cmd, delay, False, tmp)
        out[res] += 1
        if res not in ("ok", "error"):
            fails.append((f"SIGINT {cmd} {delay:.2f} s after exec: "
                          f"{_sigint_case.detail}", res))


def _bad_outputs(tmp: Path) -> list[tuple[list[str], str]]:
    blocker = tmp / "a_file"
    blocker.write_text("")
    runs = str(INPUTS / "tests" / "data" / "production_runs.csv")
    bad_file = [str(blocker / "x.csv"), str(tmp), "/proc/jaxcost_x.csv"]
    out = []
    for b in bad_file:
        out += [(["chips", "--out", b], b), (["classify", "--out", b], b),
                (["predict", runs, "--out", b], b),
                (["fit", runs, "--out", b], b),
                (["fit", runs, "--out", str(tmp / "p.json"), "--plot", b], b)]
    for b in (str(blocker), str(blocker / "sub"), "/proc/jaxcost_opt"):
        out.append((["optimize", "--out", b], b))
    return out


def run_outputs(n: int, rng: random.Random, tmp: Path, out: Counter, fails: list):
    for args, bad in _bad_outputs(tmp):
        err = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = cli_main(args)
            except BaseException as exc:  # noqa: BLE001
                rc = f"raised {type(exc).__name__}"
        seconds = time.perf_counter() - t0
        text = err.getvalue().strip()
        left = sorted(p.name for p in tmp.rglob("*") if p.name != "a_file")
        if rc != 2 or "\n" in text or bad not in text or ".tmp" in text:
            res = "traceback"
        elif left:
            res = "partial file"
        elif seconds > 5.0:
            res = "accepted"  # refused, but only after the work
        else:
            res = "error"
        out[res] += 1
        if res != "error":
            fails.append((" ".join(args), f"{res}: rc {rc}, {seconds:.1f} s, {text}"))


def run_pipe(n: int, rng: random.Random, tmp: Path, out: Counter, fails: list):
    for cmd in (["chips"], ["classify"]):
        for keep in (0, 1, 3):
            proc = subprocess.Popen([sys.executable, "-m", "jaxcost", *cmd],
                                    cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            for _ in range(keep):
                proc.stdout.readline()
            proc.stdout.close()
            rc = proc.wait(timeout=120)
            err = proc.stderr.read().decode()
            proc.stderr.close()
            res = "ok" if rc == 0 and not err else "traceback"
            out[res] += 1
            if res != "ok":
                fails.append((f"{' '.join(cmd)} | head -{keep}", f"rc {rc} {err!r}"))


RELIABILITY = {
    "toml:nesting": run_nesting,
    "toml:numbers": run_numbers,
    "api:arguments": run_api,
    "cli:output-paths": run_outputs,
    "cli:closed-pipe": run_pipe,
    "cli:sigint": run_sigint,
    "cli:sigint-start-up": run_sigint_startup,
}


def run_reliability(n: int, only: list[str] | None = None) -> int:
    bad = 0
    for cls, fn in RELIABILITY.items():
        if only and cls not in only:
            continue
        t = time.perf_counter()
        out: Counter = Counter()
        fails: list = []
        with tempfile.TemporaryDirectory(prefix="jaxcost_rel_") as d:
            fn(n, random.Random(0), Path(d), out, fails)
        nbad = out["traceback"] + out["partial file"] + out["accepted"]
        bad += nbad
        print(f"{cls:28s} {sum(out.values()):5d} cases ({out['ok']} ran, "
              f"{out['error']} clean refusals), {out['traceback']} tracebacks, "
              f"{out['partial file']} partial files, {out['accepted']} accepted "
              f"silently  [{time.perf_counter() - t:.1f} s]")
        for what, kind in fails[:12]:
            print(f"  FAIL {cls} {kind}: {what}"[:300])
    return bad


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 400
    only = [c for a in sys.argv if a.startswith("--only=")
            for c in a.split("=", 1)[1].split(",")]
    if "--reliability" in sys.argv or only:
        t0 = time.perf_counter()
        bad = run_reliability(n, only)
        print(f"reliability: {bad} failures, {time.perf_counter() - t0:.0f} s")
        return 1 if bad else 0
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
    bad += run_reliability(n)
    print(f"total {sum(sum(c.values()) for c in fz.COUNTS.values())} cases "
          f"(+ reliability classes), {bad} failures, {time.perf_counter() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
