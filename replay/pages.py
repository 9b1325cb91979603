"""Paging through a Stripe list, newest first, resumable from any object id."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from replay.client import StripeApi, StripeUnavailable

PAGE_SIZE = 100  # Stripe's maximum
# Inside a `created` window, `starting_after` at a second shared by many objects can give
# an empty page that still says has_more: ask again a few times before giving up.
_EMPTY_PAGE_RETRIES = 3


@dataclass(frozen=True, slots=True)
class Page:
    objects: list[dict[str, Any]]
    cursor: str | None  # the last object's id: where the next page starts
    has_more: bool


async def pages(
    api: StripeApi,
    path: str,
    params: Mapping[str, Any],
    *,
    starting_after: str | None = None,
) -> AsyncIterator[Page]:
    cursor, empty = starting_after, 0
    while True:
        query = {**params, "limit": PAGE_SIZE}
        if cursor is not None:
            query["starting_after"] = cursor
        document = await api.get(path, query)
        objects: list[dict[str, Any]] = list(document.get("data") or [])
        has_more = bool(document.get("has_more"))
        if not objects and has_more:
            empty += 1
            if empty > _EMPTY_PAGE_RETRIES:
                raise StripeUnavailable(f"{path}: empty pages that say has_more after {cursor}")
            continue
        empty = 0
        if objects:
            cursor = str(objects[-1]["id"])
        yield Page(objects, cursor, has_more)
        if not has_more:
            return


async def all_objects(api: StripeApi, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async for page in pages(api, path, params):
        found.extend(page.objects)
    return found
