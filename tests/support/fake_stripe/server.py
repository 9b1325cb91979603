"""The fake Stripe on the wire: a Starlette app served by uvicorn on 127.0.0.1 in a thread
with its own event loop, so a test may enter it from sync code or from inside a running loop.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.fake_stripe.api import FakeApi, LoggedRequest
from tests.support.fake_stripe.dataset import Dataset

# A key the fake accepts; any sk_test_/sk_live_/rk_test_/rk_live_ key does.
API_KEY: Final = "sk_test_fake"
_METHODS: Final = ["GET", "POST", "DELETE", "PUT", "PATCH"]


class FakeStripe:
    """A running fake: where it listens, what it serves, what it was asked."""

    def __init__(self, base_url: str, api: FakeApi) -> None:
        self.base_url = base_url
        self.api_key = API_KEY
        self._api = api

    @property
    def dataset(self) -> Dataset:
        return self._api.dataset

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request answered so far, oldest first (a snapshot)."""
        return self._api.requests

    def clear_requests(self) -> None:
        self._api.clear_requests()

    @property
    def denied(self) -> dict[str, set[str]]:
        """Restricted keys and the resources (e.g. "charges") they may not read."""
        return self._api.denied

    @property
    def webhook_endpoints(self) -> list[dict[str, object]]:
        """What `GET /v1/webhook_endpoints` lists; append endpoint objects to it."""
        return self._api.webhook_endpoints

    @property
    def rate_limit_per_second(self) -> float | None:
        return self._api.rate_limit_per_second

    @rate_limit_per_second.setter
    def rate_limit_per_second(self, value: float | None) -> None:
        self._api.rate_limit_per_second = value

    @property
    def error_rate(self) -> float:
        return self._api.error_rate

    @error_rate.setter
    def error_rate(self, value: float) -> None:
        self._api.error_rate = value


def create_app(api: FakeApi) -> Starlette:
    async def endpoint(request: Request) -> Response:
        reply = api.handle(
            request.method,
            request.url.path,
            request.query_params.multi_items(),
            authorization=request.headers.get("authorization"),
        )
        return Response(
            reply.body,
            status_code=reply.status,
            headers=reply.headers,
            media_type="application/json",
        )

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=_METHODS)])


@contextmanager
def serve_fake_stripe(
    dataset: Dataset,
    *,
    rate_limit_per_second: float | None = None,
    error_rate: float = 0.0,
    seed: int = 0,
) -> Iterator[FakeStripe]:
    """Serve `dataset` as Stripe's API until the block ends."""
    api = FakeApi(
        dataset, rate_limit_per_second=rate_limit_per_second, error_rate=error_rate, seed=seed
    )
    # Bind first and hand uvicorn the socket: the port is ours before anyone can take it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(api),
        log_config=None,  # leave the test process's logging alone
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-stripe", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Stripe server did not start")
            time.sleep(0.005)
        yield FakeStripe(f"http://127.0.0.1:{port}", api)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
