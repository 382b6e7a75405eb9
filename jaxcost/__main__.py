"""The ``jaxcost`` program: ``python -m jaxcost`` and the ``jaxcost`` script
(``[project.scripts]`` in pyproject.toml, ``jaxcost.__main__:run``).

Ctrl-C is handled from the first statement on. Until :func:`jaxcost.cli.main` installs
its own handling (:mod:`jaxcost.cli.interrupt`, a few milliseconds later), SIGINT
exits at once with status 130 and the one line ``jaxcost: interrupted``, never a
``KeyboardInterrupt`` traceback. Only the program imports this module, so setting the
handler here changes nothing for ``import jaxcost``. Where SIGINT is ignored (``nohup``,
a background job) it stays ignored.
"""

import os
import signal


def _interrupted_at_start(signum, frame) -> None:
    """SIGINT before :func:`jaxcost.cli.main` runs: nothing is written yet."""
    os.write(2, b"\njaxcost: interrupted\n")
    os._exit(130)  # jaxcost.cli.interrupt.EXIT_INTERRUPTED (not imported yet)


if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_at_start)

from jaxcost.cli import run  # noqa: E402  (after the handler, on purpose)

if __name__ == "__main__":
    run()
