"""Reading a request body with a size limit, refusing oversized ones before reading them."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body is larger than the {limit} byte limit")


class BadContentLength(Exception):
    pass


class BodyAbandoned(Exception):
    """The client went away before sending its whole body: nothing to answer, nothing
    wrong on our side, so it is worth one log line and no traceback."""

    def __init__(self, received: int) -> None:
        super().__init__(f"client disconnected after {received} bytes of its body")
        self.received = received


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadContentLength("Content-Length is not a number")
        if int(declared) > limit:
            raise BodyTooLarge(limit)
    # A chunked body has no declared length: count as it streams in.
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BodyAbandoned(size) from None
    return b"".join(chunks)
