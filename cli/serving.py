"""How `stripe-ledger serve` runs uvicorn: the limits that bound what one unauthenticated
connection may cost (header size and time, body time, connections, keep-alive) and a
bounded shutdown. uvicorn times out neither a connection that never sends a byte nor one
that sends its headers or body a byte at a time, so its HTTP protocol is extended here.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import resource
from functools import cache
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ledger.logs import get_logger
from ledger.settings import Settings, load_settings

log = get_logger("server")

# File descriptors kept for everything but client sockets: database connections, log
# files, the listening socket, the supervisor's pipes.
_RESERVED_FDS = 128


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one (inherited by the workers), so
    idle sockets exhaust the connection cap, which answers 503, before the process's
    descriptors, which makes accept() fail and deliveries hang. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):  # a platform that refuses: keep what we have
            pass
    return soft


def connection_cap(settings: Settings, open_files: int) -> int:
    """LEDGER_MAX_CONNECTIONS, lowered to what the descriptors allow."""
    return max(16, min(settings.max_connections, open_files - _RESERVED_FDS))


# A connection that brought at least this much body leaves, when it goes, memory worth
# handing back to the system (see _MemoryReturn).
_LARGE_BODY_BYTES = 256 * 1024


class _MemoryReturn:
    """glibc keeps the memory of freed request bodies for reuse, so 300 bodies of 1 MiB
    cut by the body timeout left the process 300 MB larger for good. Once large bodies
    are released, malloc_trim hands the free pages back; at most once a second."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        self._trim = getattr(libc, "malloc_trim", None)
        self._scheduled = False

    def soon(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._trim is not None and not self._scheduled:
            self._scheduled = True
            loop.call_later(1.0, self._run)

    def _run(self) -> None:
        self._scheduled = False
        if self._trim is not None:
            self._trim(0)


_memory_return = _MemoryReturn()


@cache
def _settings() -> Settings:
    # Each worker process reads the environment once; `serve` set it before starting them.
    return load_settings()


def _raw_response(status: int, reason: str) -> bytes:
    body = reason.encode("ascii")
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (the one `uvicorn[standard]` picks) with the limits
    httptools lacks: request headers must arrive whole within LEDGER_MAX_HEADER_BYTES and
    LEDGER_HEADER_TIMEOUT_SECONDS of the connection (or of the request's first byte), a
    body within LEDGER_BODY_TIMEOUT_SECONDS of its headers; else 431 or 408, and closed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = _settings()
        self._max_header_bytes = settings.max_header_bytes
        self._header_timeout = settings.header_timeout_seconds
        self._body_timeout = settings.body_timeout_seconds
        self._reading_headers = True
        self._header_bytes = 0
        self._body_bytes = 0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm(self._header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        if self._body_bytes >= _LARGE_BODY_BYTES:
            _memory_return.soon(self.loop)

    def data_received(self, data: bytes) -> None:
        # Headers are fed to the parser no more than the limit allows, so an oversized
        # header is refused after reading the limit, not after buffering all of it.
        while data and self._reading_headers and not self.transport.is_closing():
            room = self._max_header_bytes - self._header_bytes
            if room <= 0:
                self._refuse(431, "request headers too large", "headers_too_large")
                return
            piece, data = data[:room], data[room:]
            self._header_bytes += len(piece)
            super().data_received(piece)
        if data and not self.transport.is_closing():
            super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers, self._header_bytes = True, 0
        if self._timer is None:  # the next request on a kept-alive connection
            self._arm(self._header_timeout, "headers")

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._disarm()
        super().on_headers_complete()
        self._arm(self._body_timeout, "body")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def shutdown(self) -> None:
        # A request still sending its body would hold the shutdown for the whole grace
        # and then be cancelled with a traceback: end it now, as if it had timed out.
        # Requests already received go on to their commit and their answer.
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.more_body:
            self._refuse(503, "server shutting down, retry later", "shutdown")
            return
        super().shutdown()

    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._timed_out, phase)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, phase: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if phase == "headers" and self.cycle is not None and not self.cycle.response_complete:
            return  # a request is still being answered; its own timer covers it
        self._refuse(408, f"request {phase} not received in time", f"{phase}_timeout")

    def _refuse(self, status: int, reason: str, event: str) -> None:
        """Answer (unless a response has begun), close, and let a request still reading
        its body see a disconnect, so its buffered bytes are released now."""
        cycle = self.cycle
        in_flight = cycle is not None and not cycle.response_complete
        if cycle is None or not cycle.response_started:
            self.transport.write(_raw_response(status, reason))
        if cycle is not None and in_flight:
            cycle.disconnected = True
            cycle.body = bytearray()
            cycle.message_event.set()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else None
        log.info("connection_refused", status=status, reason=event, client=client)
        self.transport.close()


def run_server(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """uvicorn with the limits; returns once every worker (and the app's companions, the
    projection worker among them) has stopped."""
    cap = connection_cap(settings, raise_open_files_limit())
    uvicorn.run(
        "cli.server:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http="cli.serving:LimitedHttpProtocol",
        limit_concurrency=cap,
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        log_config=None,  # our JSON logs; the app logs every delivery itself
        access_log=False,
        proxy_headers=True,
    )
