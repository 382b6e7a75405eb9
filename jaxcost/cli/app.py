"""The ``jaxcost`` command: parse the arguments, then run one subcommand.

Each subcommand is one function, ``cmd_<name>(args) -> int``, in a module of its own
(:mod:`jaxcost.cli.tables`: ``chips`` and ``classify``; :mod:`jaxcost.cli.optimize`;
:mod:`jaxcost.cli.fit`; :mod:`jaxcost.cli.predict`: ``predict`` and ``validate``). It
loads data, calls the library and writes its files atomically; no modelling logic
lives here. Input errors (:class:`~jaxcost.errors.JaxcostError`) are printed as one
line ``jaxcost: <message>`` on stderr with exit status 2, without a traceback; a
failed command leaves no partial file.

Lazy loading (one of the two declared exceptions to "no imports inside functions",
docs/architecture.md rule 2): this module imports only the standard library and
small stdlib-only jaxcost modules (errors, io.atomic, cli.interrupt); ``import
jaxcost`` is lazy too. The subcommand's module, and with it JAX, is imported by
:func:`main` from the :data:`COMMANDS` table once the arguments are parsed, for two
reasons: (1) Ctrl-C is handled (:mod:`jaxcost.cli.interrupt`) before the second or
more that importing JAX takes, so an interrupt then exits 130 in one line, not with a
traceback; (2) a subcommand imports only what it uses (``predict`` neither the policy
modules nor matplotlib). ``tools/import_graph.py`` reads :data:`COMMANDS` and
:data:`JAX_SETUP` and checks those edges like any import.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from jaxcost.cli.interrupt import EXIT_INTERRUPTED, interrupt_exits
from jaxcost.errors import JaxcostError
from jaxcost.io.atomic import remove_pending

__all__ = [
    "COMMANDS",
    "JAX_SETUP",
    "EXIT_INTERRUPTED",
    "build_parser",
    "main",
    "run",
]

#: Subcommand -> (module, function) that runs it, imported only when it runs (module
#: docstring: lazy loading).
COMMANDS: dict[str, tuple[str, str]] = {
    "chips": ("jaxcost.cli.tables", "cmd_chips"),
    "classify": ("jaxcost.cli.tables", "cmd_classify"),
    "optimize": ("jaxcost.cli.optimize", "cmd_optimize"),
    "fit": ("jaxcost.cli.fit", "cmd_fit"),
    "predict": ("jaxcost.cli.predict", "cmd_predict"),
    "validate": ("jaxcost.cli.predict", "cmd_validate"),
}

#: The function that sets the command's global JAX options (the persistent
#: compilation cache), called after the subcommand's module is imported and before
#: anything is compiled.
JAX_SETUP: tuple[str, str] = ("jaxcost.cli.common", "use_compilation_cache")


def _load(where: tuple[str, str]) -> Callable:
    """The function ``where = (module, name)``, importing its module (lazy loading)."""
    module, name = where
    return getattr(importlib.import_module(module), name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxcost",
        description="Differentiable cost models of AI accelerators under export "
        "controls.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("chips", help="table of chip specifications with TPP and PD")
    p.add_argument("--chips", metavar="PATH", help="chips CSV (default: shipped)")
    p.add_argument("--out", metavar="CSV", help="also write the specs in SI units")

    p = sub.add_parser("classify", help="classify chips under export-control regimes")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--regime",
        metavar="ID",
        action="append",
        help="regime id (repeatable); default: all",
    )
    group.add_argument("--all", action="store_true", help="every regime (default)")
    p.add_argument("--chips", metavar="PATH", help="chips CSV (default: shipped)")
    p.add_argument(
        "--regimes-dir",
        metavar="PATH",
        help="folder of regime TOML files (default: shipped)",
    )
    p.add_argument(
        "--out", metavar="CSV", help="write one row per chip and regime (tidy CSV)"
    )

    p = sub.add_parser("optimize", help="best clusters and plans for a scenario")
    p.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="scenario TOML (default: the shipped scenarios/default.toml)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: experiments/out/optimize/<scenario>)",
    )
    p.add_argument("--top", type=int, metavar="N", help="clusters to report")
    p.add_argument(
        "--params",
        metavar="JSON",
        help="fitted parameters (default: data/calibration/default.json)",
    )
    p.add_argument(
        "--priors",
        action="store_true",
        help="use the hand-set prior parameters instead of the calibration",
    )
    p.add_argument("--progress", action="store_true", help="progress bars on stderr")

    p = sub.add_parser("fit", help="fit cost parameters to benchmark CSVs")
    p.add_argument(
        "files",
        nargs="*",
        metavar="FILES",
        help="benchmark CSVs (training runs, collectives, kernels; any number per "
        "kind, concatenated; provenance columns optional)",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="leave out training-run rows (input schema) that cannot be read, "
        "naming each on stderr; without it the first such row is an error",
    )
    p.add_argument(
        "--with-shipped",
        action="store_true",
        help="also fit the shipped data/benchmarks training runs, collectives and "
        "kernels",
    )
    p.add_argument(
        "--adam-steps",
        type=int,
        metavar="N",
        help="Adam iterations (default: jaxcost.FitOptions().adam_steps)",
    )
    p.add_argument(
        "--lbfgs-steps",
        type=int,
        metavar="N",
        help="L-BFGS iterations (default: jaxcost.FitOptions().lbfgs_steps)",
    )
    p.add_argument("--out", required=True, metavar="JSON", help="parameters JSON")
    p.add_argument(
        "--cv",
        action="store_true",
        help="grouped cross-validation (leave one group out)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help="grouped bootstrap resamples for prediction intervals",
    )
    p.add_argument("--plot", metavar="PNG", help="parity plot of step time")

    p = sub.add_parser("predict", help="predict step time of training runs")
    p.add_argument("runs", metavar="RUNS.csv", help="runs CSV (training-run schema)")
    p.add_argument(
        "--out", metavar="PRED.csv", help="output CSV (default: standard output)"
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="keep going past rows that cannot be predicted: blank predictions and "
        "the reason in pred_error (default: stop at the first, write nothing)",
    )
    p.add_argument(
        "--params",
        metavar="JSON",
        help="parameters (default: data/calibration/default.json)",
    )
    p.add_argument(
        "--plan-quantile",
        type=float,
        metavar="Q",
        help="rank the plans of a blank-plan search by the Q quantile of the "
        "calibration ensemble's step times (e.g. 0.9, pessimistic) instead of the "
        "point estimate",
    )
    p.add_argument("--progress", action="store_true", help="progress bars on stderr")

    p = sub.add_parser(
        "validate", help="list every problem of a training-runs CSV at once"
    )
    p.add_argument("runs", metavar="RUNS.csv", help="runs CSV (training-run schema)")
    p.add_argument(
        "--no-measured",
        action="store_true",
        help="do not require a measured value (as predict)",
    )
    p.add_argument(
        "--fills", action="store_true", help="also list every filled-in cell"
    )

    return parser


def _check_output(path: str, flag: str, *, folder: bool = False) -> None:
    """Fail at once, before any work, when ``path`` (given as ``flag``) cannot be
    written: a folder where a file is meant (or the reverse), a file where a folder is
    on the way, or no permission to create files in the nearest existing folder
    (tried with an unnamed temporary file, so nothing is left).

    Raises:
      JaxcostError: naming ``flag`` and ``path`` as the user gave them.
    """
    p = Path(path)
    if p.exists():
        if folder and not p.is_dir():
            raise JaxcostError(f"{flag} {path}: not a folder; expected a folder")
        if not folder and p.is_dir():
            raise JaxcostError(f"{flag} {path}: is a folder; expected a file path")
    where = p if folder else p.parent
    where = Path(os.path.abspath(where))
    while not where.exists():
        where = where.parent
    if not where.is_dir():
        raise JaxcostError(
            f"{flag} {path}: {where} is a file, not a folder; expected a writable path"
        )
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as err:
        raise JaxcostError(
            f"{flag} {path}: cannot write in {where} ({err.strerror}); "
            "expected a writable path"
        ) from None


#: Output options checked before a command runs: attribute, flag.
_OUTPUT_OPTIONS = (("out", "--out"), ("plot", "--plot"))


def _check_outputs(args: argparse.Namespace) -> None:
    for attr, flag in _OUTPUT_OPTIONS:
        value = getattr(args, attr, None)
        if value:
            _check_output(
                value, flag, folder=args.command == "optimize" and attr == "out"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxcost`` command; returns the exit status.

    Input errors print one ``jaxcost:`` line and return 2; Ctrl-C (SIGINT), from the
    moment this is called, prints ``jaxcost: interrupted`` and exits 130 at once,
    leaving no output or temporary file; a closed output pipe (``jaxcost chips |
    head``) returns 0 quietly.
    """
    try:
        with interrupt_exits():
            args = build_parser().parse_args(argv)
            command = _load(COMMANDS[args.command])
            _load(JAX_SETUP)()
            _check_outputs(args)
            status = command(args)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            return status
    except JaxcostError as err:
        print(f"jaxcost: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # SIGINT where no watcher runs (not the main thread)
        remove_pending()
        print("jaxcost: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as err:  # e.g. an --out path in a read-only or missing place
        where = f"{err.filename}: " if err.filename else ""
        text = " ".join(f"{where}{err.strerror or err}".split())
        print(f"jaxcost: {text}", file=sys.stderr)
        return 2


def run() -> NoReturn:
    """The ``jaxcost`` program (``python -m jaxcost`` and the ``jaxcost`` script):
    :func:`main` on ``sys.argv``, then exit at once with its status.

    Once the output is flushed the process ends with ``os._exit``, skipping the
    interpreter's teardown: with JAX loaded it takes 0.4-0.7 s (JAX's exit hooks clear
    its backends and caches, then every module is collected) and does nothing a
    finished command needs, since each output file is already closed and renamed into
    place and no work is left running. Argument errors and ``--help`` exit through
    argparse as usual (JAX is not loaded then).
    """
    status = main()
    # done: an interrupt from here on changes nothing (and must not report one)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    logging.shutdown()
    os._exit(status)
