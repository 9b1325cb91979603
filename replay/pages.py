"""Paging through a Stripe list, newest first, resumable from any object id; and reading one
page ahead, so the next request is in flight while the last page is being stored."""

from __future__ import annotations

import asyncio
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


async def ahead(source: AsyncIterator[Page], depth: int = 1) -> AsyncIterator[Page]:
    """The pages of `source` in order, up to `depth` of them fetched while the caller works
    on the last (memory stays bounded). Stopping early (an error, a crash) drops the pages
    fetched ahead: they were never stored, so a resumed run asks for them again."""
    queue: asyncio.Queue[Page | BaseException | None] = asyncio.Queue(maxsize=depth)

    async def fetch() -> None:
        try:
            async for page in source:
                await queue.put(page)
            await queue.put(None)
        except Exception as exc:  # handed to the caller, in order
            await queue.put(exc)

    fetching = asyncio.ensure_future(fetch())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        fetching.cancel()
        await asyncio.wait([fetching])  # our own cancellation still propagates from here
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


async def all_objects(api: StripeApi, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async for page in pages(api, path, params):
        found.extend(page.objects)
    return found
