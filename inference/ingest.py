"""The ingest writer: every connection's feature batches in this process, stored together (group commit).

A connection hands its validated batch to ``submit`` and awaits the outcome. The writer stores
whatever batches are waiting, from every connection of the event loop, in one call of
``streaming.record_viewer_batches`` (one Redis round trip for the message limits, one read of
the videos, one statement for the rows) on a thread of its own, and answers each connection
once that statement has committed; then, on another thread, it asks for the settlement passes of
what was stored (``streaming.announce_stored_features``). While a flush runs the next batches gather; before each
flush the writer lingers ``HYDRA_INGEST_LINGER_MS`` so that batches arriving together share it
(a flush has a fixed cost of a few milliseconds of CPU: the thread hop, the Redis round trip,
the read, the statement and its commit; bench/ingest.py measures the difference).

Each connection has at most one batch in flight (the consumer awaits its answer before reading
the next message), so what waits is bounded by the connections; a flush takes at most
``MAX_FLUSH_ROWS`` rows to bound one statement's size and time. The thread is the writer's own,
not the thread that Channels runs every other database call on (handshakes, hellos, closes), so
those never wait for a flush nor a flush for them.

If a process stops, a batch that was not yet flushed is neither stored nor acknowledged: the
client sends it again after it reconnects (docs/protocol.md), and never gets an ack for a row
that was not committed. ``close`` flushes what is waiting before it returns.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import weakref
from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

from inference.services import streaming
from inference.services.streaming import RecordedFeatures, ViewerBatch

# Bounds one statement (about 5 MB of vectors) and so the wait of a flush's first senders. The flush's
# Python CPU per row is flat well below it (measured: about 9-15 µs a row at 640 rows, 6-10 at 6,400).
MAX_FLUSH_ROWS = 4096

logger = logging.getLogger(__name__)

# One thread for every writer of the process: flushes run one at a time, on one database connection.
_FLUSH_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hydra-ingest")


def close_flush_connection() -> None:
    """Close the flush thread's database connection: it outlives every writer, so a process (or a test
    session, whose database is dropped at the end) that is done with ingest closes it here."""
    _FLUSH_THREAD.submit(connections.close_all).result()


def _store_unannounced(batches: list[ViewerBatch]) -> list:
    return streaming.record_viewer_batches(batches, announce=False)


class WriterClosed(RuntimeError):
    """A batch submitted after ``close``."""


class IngestWriter:
    """The batches waiting in one event loop, and the flushes that store them (see the module's docstring)."""

    def __init__(
        self,
        store=_store_unannounced,
        announce=streaming.announce_stored_features,
        max_rows: int = MAX_FLUSH_ROWS,
        linger_s: float | None = None,
    ) -> None:
        if connections["default"].vendor == "sqlite":
            # SQLite takes one writer at a time, and on the embedded default the settlement passes run
            # in-process inside ``announce``: threads of their own would meet "database is locked".
            # There, like every other database call of the process, both take turns on Channels' thread.
            self.store = database_sync_to_async(store)
            self.announce = database_sync_to_async(announce)
        else:
            self.store = database_sync_to_async(store, thread_sensitive=False, executor=_FLUSH_THREAD)
            # Off the flush thread: the next flush need not wait for the settlement requests of the last.
            self.announce = database_sync_to_async(announce, thread_sensitive=False)
        self.announcing: set[asyncio.Task] = set()
        self.max_rows = max_rows
        self.linger_s = settings.HYDRA_INGEST_LINGER_MS / 1000 if linger_s is None else linger_s
        self.waiting: collections.deque[tuple[ViewerBatch, asyncio.Future]] = collections.deque()
        self.flushing: asyncio.Task | None = None
        self.closed = False

    async def submit(self, batch: ViewerBatch) -> RecordedFeatures:
        """Store ``batch`` with the others waiting; returns once committed, or raises what a lone batch would raise."""
        if self.closed:
            raise WriterClosed("the ingest writer is closed")
        answer = asyncio.get_running_loop().create_future()
        self.waiting.append((batch, answer))
        if self.flushing is None:
            self.flushing = asyncio.ensure_future(self._flush_while_waiting())
        return await answer

    async def close(self) -> None:
        """Take no more batches; return once every batch already submitted is stored, answered and announced."""
        self.closed = True
        if self.flushing is not None:
            await asyncio.shield(self.flushing)
        await asyncio.gather(*self.announcing)

    async def _flush_while_waiting(self) -> None:
        try:
            while self.waiting:
                if self.linger_s and not self.closed and self._waiting_rows() < self.max_rows:
                    await asyncio.sleep(self.linger_s)
                await self._flush(self._take())
        finally:
            self.flushing = None

    def _waiting_rows(self) -> int:
        return sum(len(batch.samples) for batch, _ in self.waiting)

    def _take(self) -> list[tuple[ViewerBatch, asyncio.Future]]:
        """The oldest waiting batches, up to ``max_rows`` rows (at least one); abandoned ones are dropped unstored."""
        taken, rows = [], 0
        while self.waiting and (not taken or rows + len(self.waiting[0][0].samples) <= self.max_rows):
            batch, answer = self.waiting.popleft()
            if not answer.done():  # a connection that went away while its batch waited: nobody to answer
                taken.append((batch, answer))
                rows += len(batch.samples)
        return taken

    async def _flush(self, taken: list[tuple[ViewerBatch, asyncio.Future]]) -> None:
        if not taken:
            return
        try:
            outcomes = await self.store([batch for batch, _ in taken])
        except Exception as error:  # the whole flush failed: every sender gets the error, none an ack
            outcomes = [error] * len(taken)
        for (_, answer), outcome in zip(taken, outcomes, strict=True):
            if answer.done():
                continue
            if isinstance(outcome, Exception):
                answer.set_exception(outcome)
            else:
                answer.set_result(outcome)
        self._keep(asyncio.ensure_future(self._announce([batch for batch, _ in taken], outcomes)))

    def _keep(self, task: asyncio.Task) -> None:
        """Hold the task until it is done (the loop keeps only weak references) so ``close`` can wait for it."""
        self.announcing.add(task)
        task.add_done_callback(self.announcing.discard)

    async def _announce(self, batches: list[ViewerBatch], outcomes: list) -> None:
        """Ask for the settlement passes of what was stored. A failure is logged: the rows are committed and
        answered, and the video's coverage deadline (docs/trust.md) settles them if no later batch asks again."""
        try:
            await self.announce(batches, outcomes)
        except Exception:
            logger.exception("asking for settlement passes after an ingest flush failed")


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, IngestWriter] = weakref.WeakKeyDictionary()


def writer() -> IngestWriter:
    """The running event loop's writer (daphne runs one loop per process; tests start a loop per test)."""
    loop = asyncio.get_running_loop()
    if loop not in _writers:
        _writers[loop] = IngestWriter()
    return _writers[loop]
