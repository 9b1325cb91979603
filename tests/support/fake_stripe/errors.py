"""Error responses in Stripe's shape: `{"error": {"type", "code", "message", "param",
"doc_url"}}` (https://docs.stripe.com/api/errors)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True)
class Reply:
    """A response before it meets HTTP: status, JSON body, headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class StripeError(Exception):
    """An error the fake answers with."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error: dict[str, Any] = {"type": type_, "message": message}
        if code is not None:
            self.error["code"] = code
            self.error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param is not None:
            self.error["param"] = param
        self.headers = dict(headers or {})

    def reply(self) -> Reply:
        return Reply(self.status, orjson.dumps({"error": self.error}), dict(self.headers))


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
    """A 400 `invalid_request_error`."""
    return StripeError(400, "invalid_request_error", message, code=code, param=param)
