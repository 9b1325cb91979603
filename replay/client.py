"""Talking to the Stripe API: stripe-python's async client, under our rate limit and retries.

stripe-python retries nothing unless asked, never retries a 429 and ignores Retry-After
(STRIPE-NOTES.md), so this module does both itself: a token bucket keeps us under the
limit, a 429 waits for Retry-After, 5xx and connection errors back off and retry. Pages
come back as raw JSON (the body exactly as Stripe sent it), never as StripeObjects.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import stripe
from aiolimiter import AsyncLimiter

from ledger.logs import get_logger

log = get_logger("replay")

_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


class StripeUnavailable(Exception):
    """Stripe kept failing after every retry; the message never holds the key."""


class StripeRefused(Exception):
    """Stripe refused the request (bad key, missing permission, bad parameter)."""


class StripeNotFound(StripeRefused):
    """The object is gone (a deleted draft invoice, say)."""


class StripeForbidden(StripeRefused):
    """A restricted key lacks a permission; `permission` is Stripe's name for it."""

    def __init__(self, path: str, permission: str | None) -> None:
        needed = f"the {permission} permission" if permission else "a read permission"
        super().__init__(f"{path}: the key lacks {needed}")
        self.permission = permission


@dataclass
class ApiStats:
    requests: int = 0
    rate_limited: int = 0
    retried: int = 0
    by_path: dict[str, int] = field(default_factory=dict)


class StripeApi:
    """GET requests to Stripe's v1 API as JSON dicts, limited and retried."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.stripe.com",
        requests_per_second: float = 20.0,
        attempts: int = len(_BACKOFF) + 1,
    ) -> None:
        self._http = stripe.HTTPXClient()
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": base_url.rstrip("/")},
            http_client=self._http,
            max_network_retries=0,
        )
        self._limiter = AsyncLimiter(max(requests_per_second, 1.0), 1.0)
        self._attempts = attempts
        self.api_version: str = stripe.api_version
        self.stats = ApiStats()

    async def close(self) -> None:
        """Close the connections (the synchronous pool too, which stripe-python opens)."""
        self._http.close()
        await self._http.close_async()

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        for attempt in range(self._attempts):
            async with self._limiter:
                self.stats.requests += 1
                self.stats.by_path[path] = self.stats.by_path.get(path, 0) + 1
                try:
                    response = await self._client.raw_request_async(
                        "get", path, **dict(params or {})
                    )
                except stripe.RateLimitError as exc:
                    self.stats.rate_limited += 1
                    delay = _retry_after(exc.headers) or _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
                except (stripe.APIConnectionError, stripe.APIError) as exc:
                    status = getattr(exc, "http_status", None)
                    if status is not None and status < 500:
                        raise StripeRefused(f"{path}: {exc.user_message or 'refused'}") from None
                    delay = _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
                except stripe.PermissionError as exc:
                    # Stripe names the permission (and echoes part of the key: not repeated).
                    found = re.search(r"rak_[a-z_]+", str(exc.user_message or ""))
                    raise StripeForbidden(path, found.group(0) if found else None) from None
                except stripe.AuthenticationError as exc:
                    raise StripeRefused(
                        f"{path}: {exc.user_message or 'the key was refused'} (check "
                        "STRIPE_API_KEY and, for a restricted key, its read permissions)"
                    ) from None
                except stripe.StripeError as exc:
                    if exc.http_status == 404:
                        raise StripeNotFound(f"{path}: no such object") from None
                    raise StripeRefused(
                        f"{path}: {exc.user_message or type(exc).__name__}"
                    ) from None
                else:
                    document: dict[str, Any] = orjson.loads(response.body)
                    return document
            self.stats.retried += 1
            log.info("stripe_retry", path=path, attempt=attempt + 1, delay=delay)
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
        raise StripeUnavailable(f"{path}: Stripe kept failing after {self._attempts} attempts")


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(float(value), 0.0)
            except ValueError:
                return None
    return None
