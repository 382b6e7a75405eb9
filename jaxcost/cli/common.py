"""What the subcommands share: number and table formatting, the shipped calibration,
JAX's persistent compilation cache, and writing a set of output files together.

Imported by each subcommand module once :func:`jaxcost.cli.main` has chosen the
subcommand (it imports JAX).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import jax

from jaxcost.cli.interrupt import deferred
from jaxcost.io.atomic import atomic_path
from jaxcost.io.paths import data_dir

__all__ = [
    "fmt",
    "text_table",
    "csv_text",
    "sci",
    "shipped_calibration",
    "CACHE_DIR_ENV",
    "NO_CACHE_ENV",
    "compilation_cache_dir",
    "use_compilation_cache",
    "write_together",
]


def fmt(value: float, scale: float = 1.0, digits: int = 4) -> str:
    """Human-readable number (``-`` for unknown)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value / scale:.{digits}g}"


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """An aligned plain-text table."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        )
    return "\n".join(line.rstrip() for line in lines)


def csv_text(header: list[str], rows: list[list]) -> str:
    """CSV text of a header and rows (Unix line ends)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def sci(value: float) -> str:
    """A number in scientific notation for a CSV cell (empty for NaN)."""
    return "" if math.isnan(value) else f"{value:.6e}"


def shipped_calibration() -> Path:
    """Path of the shipped calibration, ``data/calibration/default.json``."""
    return data_dir() / "calibration" / "default.json"


#: Environment variables of the persistent compilation cache of the command.
CACHE_DIR_ENV = "JAXCOST_CACHE_DIR"
NO_CACHE_ENV = "JAXCOST_NO_CACHE"


def compilation_cache_dir() -> Path | None:
    """Folder of the command's persistent XLA compilation cache, or None when off.

    ``$JAXCOST_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/jaxcost/xla`` (by default
    ``~/.cache/jaxcost/xla``); None when ``JAXCOST_NO_CACHE`` is set to anything but
    ``""`` or ``0``.
    """
    if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "jaxcost" / "xla"


def use_compilation_cache() -> None:
    """Turn on JAX's persistent compilation cache for this process.

    The command is the application, so it (and never the library) sets the global JAX
    options ``jax_compilation_cache_dir`` (:func:`compilation_cache_dir`) and
    ``jax_persistent_cache_min_compile_time_secs = 0`` (keep every program, however
    fast it compiled): a second run with inputs of the same shapes loads the compiled
    programs instead of compiling them again. A cache folder already set through JAX's
    own ``JAX_COMPILATION_CACHE_DIR`` is left alone; a folder that cannot be created
    or written turns the cache off without a message. The cache only takes effect if
    nothing was compiled before in the process (JAX decides once per process). JAX
    writes entries in place (not atomically): an entry cut short by a killed first run
    gives a warning on later runs until the folder is deleted (README).
    """
    if jax.config.jax_compilation_cache_dir:
        return
    path = compilation_cache_dir()
    if path is None:
        return
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return
    if not os.access(path, os.W_OK | os.X_OK):
        return
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _keep(target: Path, backup: Path) -> None:
    """A copy of ``target`` at ``backup``: a hard link, or a copy where the file
    system has none."""
    try:
        os.link(target, backup)
    except OSError:
        shutil.copy2(target, backup)


def write_together(
    writers: Mapping[str | os.PathLike, Callable[[Path], object]],
) -> None:
    """Write several output files so that they all appear, or none does.

    Each ``writers[path](tmp)`` writes one file's content to a temporary path in the
    target's folder (:func:`jaxcost.io.atomic.atomic_path`: an interrupt or an error
    removes it). Only once every file is written are they renamed into place, one
    after the other, with Ctrl-C held off (:func:`jaxcost.cli.interrupt.deferred`,
    microseconds). If a rename fails, every target is put back as it was: a file
    that was there is restored from a copy kept meanwhile (a hard link), one that
    was not is removed; the exception is then raised again.
    """
    targets = [Path(p) for p in writers]
    backups: dict[Path, Path] = {}
    existed: dict[Path, bool] = {}
    with contextlib.ExitStack() as hold:  # left last: ends the deferred section
        try:
            with contextlib.ExitStack() as stack:
                tmps = [stack.enter_context(atomic_path(t)) for t in targets]
                for tmp, write in zip(tmps, writers.values(), strict=True):
                    write(tmp)
                hold.enter_context(deferred())
                for target, tmp in zip(targets, tmps, strict=True):
                    existed[target] = target.is_file()
                    if existed[target]:
                        backups[target] = tmp.with_name(tmp.name + ".old")
                        _keep(target, backups[target])
                # leaving `stack` renames each temporary file onto its target
        except BaseException:
            for target in existed:
                with contextlib.suppress(OSError):
                    if target in backups:
                        os.replace(backups[target], target)
                    elif not existed[target]:
                        target.unlink()
            raise
        finally:
            for backup in backups.values():
                with contextlib.suppress(OSError):
                    backup.unlink()
