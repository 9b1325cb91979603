"""Making sure a stopped `serve` is gone: a worker process whose shutdown overruns its
grace exits anyway, and a worker whose supervisor dies is told to stop instead of living
on as an orphan.

Exiting hard loses nothing acknowledged: a delivery is answered 2xx only after its commit.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.logs import get_logger

log = get_logger("server")

_PR_SET_PDEATHSIG = 1


def stop_with_supervisor() -> None:
    """In a worker started by uvicorn's supervisor (`serve --workers N`): receive SIGTERM
    when the supervisor dies, however it dies (Linux only; elsewhere nothing changes)."""
    if multiprocessing.parent_process() is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _exit_now(seconds: float) -> None:
    log.error("shutdown_overran", seconds=seconds)
    os._exit(1)


class ShutdownDeadline:
    """ASGI wrapper: once the app's shutdown begins (uvicorn has already waited up to its
    grace for requests in flight), the process exits within `seconds` whatever the
    shutdown is waiting for: a derivation still running in a thread, a database that
    does not answer."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def watched() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                timer = threading.Timer(self.seconds, _exit_now, args=(self.seconds,))
                timer.daemon = True
                timer.start()
            return message

        await self.app(scope, watched, send)
