"""Ctrl-C (SIGINT) in the ``jaxcost`` command: exit 130 with one line, no traceback,
no partial file.

Stdlib only (and :mod:`jaxcost.io.atomic`), so that :func:`jaxcost.cli.main` installs
this before JAX and the subcommand's modules are imported: an interrupt during those
imports (a second or more on a cold start) ends the command like any other.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator

from jaxcost.io.atomic import remove_pending

__all__ = ["EXIT_INTERRUPTED", "die_interrupted", "interrupt_exits", "deferred"]

#: Exit status of an interrupted command (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130

#: Held while a set of output files is moved into place (:func:`deferred`).
_CRITICAL = threading.RLock()


def die_interrupted() -> None:
    """Remove the temporary files of writes in progress, say so in one line, and
    exit 130 at once (no traceback, no interpreter teardown under running XLA
    threads). Waits for a :func:`deferred` section to end first."""
    with _CRITICAL:
        remove_pending()
        # start a fresh line: a progress bar may be half drawn on stderr
        lead = b"\r\x1b[K" if os.isatty(2) else b"\n"
        with contextlib.suppress(OSError):
            os.write(2, lead + b"jaxcost: interrupted\n")
        os._exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """While inside, an interrupt waits: used while several output files are renamed
    into place, so that they all appear or none does (the renames take
    microseconds)."""
    with _CRITICAL:
        yield


@contextlib.contextmanager
def interrupt_exits() -> Iterator[None]:
    """While inside, SIGINT (Ctrl-C) ends the command through
    :func:`die_interrupted`.

    Python runs signal handlers on the main thread between bytecodes, so a
    ``KeyboardInterrupt`` would arrive late (after an XLA compilation) or inside a
    ``jax.pure_callback`` (as "pure_callback failed"). Instead the C-level handler
    writes the signal number to a socket (``signal.set_wakeup_fd``) that a watcher
    thread reads; the Python-level handler does nothing. Outside the main thread
    (e.g. ``main`` called from a worker), or where SIGINT is ignored (``nohup``, a
    background job), nothing is installed.

    The watcher needs the interpreter lock: a signal that arrives while the main
    thread runs a long C call that holds it (e.g. the initialisation of an extension
    module) is acted on when that call returns.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):
        yield
        return
    r, w = socket.socketpair()
    w.setblocking(False)
    # wake-up socket first: a signal between the two calls is not lost
    old_fd = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
    old_handler = signal.signal(signal.SIGINT, lambda *_: None)

    def watch() -> None:
        while True:
            try:
                data = r.recv(64)
            except OSError:
                return
            if not data:
                return
            if signal.SIGINT in data:
                die_interrupted()

    watcher = threading.Thread(target=watch, name="jaxcost-sigint", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGINT, old_handler)
        with contextlib.suppress(OSError):
            w.shutdown(socket.SHUT_RDWR)
        w.close()
        watcher.join(timeout=1.0)
        r.close()
