"""Group commit: concurrent appends share one transaction, each caller answered after it.

A commit costs a disk flush; under load, waiting requests are appended together so one
flush serves many. A caller's future resolves only after the batch holding its event has
committed, so nothing is acknowledged before it is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ledger.envelope import NewEvent
from ledger.errors import LedgerUnavailable
from ledger.event_log import AppendResult, EventLog

_Pending = tuple[NewEvent, asyncio.Future[AppendResult]]


class GroupCommitter:
    """One writer task per process; `append` may be awaited from any number of requests."""

    def __init__(
        self,
        log: EventLog,
        *,
        max_batch: int = 256,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._log = log
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._run(), name="ledger-group-commit")

    async def stop(self) -> None:
        """Commit what is already queued, then stop the writer."""
        if self._writer is None:
            return
        await self._queue.join()
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    async def append(self, event: NewEvent) -> AppendResult:
        if self._writer is None:
            raise LedgerUnavailable("the ledger writer is not running")
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((event, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)
            for _ in batch:
                self._queue.task_done()

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = await self._log.append([event for event, _ in batch])
        except Exception as exc:  # every waiter must hear of the failure, whatever it was
            failure = exc if isinstance(exc, LedgerUnavailable) else LedgerUnavailable(str(exc))
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # the caller may have given up waiting
                future.set_result(result)
        if self._on_commit is not None:
            self._on_commit()
