"""Finished trades that left the engine's window, findable by id (ADR 0033).

The engine writes the row of each finished trade whose trade time falls out of its
window to ``{app_id}-engine-archive`` (kept forever, one partition, each id once), in
the batch's transaction, with a tombstone on its changelog. Every worker tails that
topic (read_committed) into a SQLite file of its own,
``{state dir}/{app_id}-archive-{cluster}.sqlite3`` (``cluster``: a digest of the
bootstrap address, so that workers of two clusters sharing a state directory do not
mix), so ``GET /trades/{id}`` answers for an archived trade as for one in memory, on
whichever worker holds the engine, after a takeover too. The file also keeps the
next offset to read, in the same SQLite transaction as the rows it read, so a
restarted worker goes on from there (or from the start, should the topic be shorter
than that: another cluster's file). SQLite (the standard library's) rather than a
server: one small table, point reads, one writer per file.

The topic is the archive; the file is an index of it that any worker can rebuild by
deleting it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from aiokafka import TopicPartition

from streams import topics
from streams.config import Settings
from streams.kafka.reader import committed_consumer

__all__ = ["ArchiveIndex"]

logger = logging.getLogger(__name__)

#: Records read per fetch at most.
FETCH_RECORDS_MAX: Final = 10_000
#: How long a fetch waits for records before it asks again.
FETCH_WAIT_MS: Final = 1_000
#: How long SQLite waits for another worker's write on the same file.
BUSY_TIMEOUT_S: Final = 30.0
#: How long to wait before trying a locked file again.
LOCKED_RETRY_S: Final = 1.0

T = TypeVar("T")

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS trades (trade_id TEXT PRIMARY KEY, row BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS read_to (topic TEXT PRIMARY KEY, next_offset INTEGER NOT NULL)",
)


class ArchiveIndex:
    """The archive topic, tailed into a local SQLite file."""

    def __init__(self, settings: Settings, path: Path | None = None) -> None:
        self.settings = settings
        self.topic = topics.engine_topic(settings.app_id, topics.ENGINE_ARCHIVE)
        cluster = hashlib.sha256(settings.bootstrap.encode()).hexdigest()[:8]
        self.path = path or settings.state_dir / f"{settings.app_id}-archive-{cluster}.sqlite3"
        self._db: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            # Switching to WAL takes an exclusive lock at once, without waiting: a second
            # worker on the same state dir failed on it ("database is locked") while the
            # first held a write (tests/crash/test_engine_takeover.py, a paused worker).
            # Asked first, it is a plain read once the file is WAL.
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                db.execute(statement)
            db.commit()
            self._db = db
        return self._db

    def get(self, trade_id: str) -> bytes | None:
        """The archived row of ``trade_id``, or None."""
        found = self._open().execute("SELECT row FROM trades WHERE trade_id = ?", (trade_id,))
        row = found.fetchone()
        return None if row is None else bytes(row[0])

    def next_offset(self) -> int:
        found = self._open().execute(
            "SELECT next_offset FROM read_to WHERE topic = ?", (self.topic,)
        )
        row = found.fetchone()
        return 0 if row is None else int(row[0])

    def reset(self) -> None:
        """Forget everything indexed: the file is read again from the topic's start."""
        db = self._open()
        with db:
            db.execute("DELETE FROM trades")
            db.execute("DELETE FROM read_to")

    def add(self, rows: list[tuple[str, bytes]], next_offset: int) -> None:
        """Keep ``rows`` and where the topic was read to, in one SQLite transaction."""
        db = self._open()
        with db:
            db.executemany("INSERT OR REPLACE INTO trades VALUES (?, ?)", rows)
            db.execute("INSERT OR REPLACE INTO read_to VALUES (?, ?)", (self.topic, next_offset))

    async def _retrying(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` on a thread, again while the file is locked by another
        process (a worker sharing this state dir, paused mid-write: the index is
        this worker's convenience, not a reason to stop it)."""
        while True:
            try:
                return await asyncio.to_thread(call, *args)
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
                logger.warning("archive: %s is locked by another process (%s); trying "
                               "again in %.1f s", self.path, err, LOCKED_RETRY_S)  # fmt: skip
                await asyncio.sleep(LOCKED_RETRY_S)

    async def run(self) -> None:
        """Tail the archive topic into the file, for as long as the worker runs."""
        tp = TopicPartition(self.topic, 0)
        consumer = committed_consumer(self.settings, f"{self.settings.app_id}-archive-index")
        await consumer.start()
        try:
            consumer.assign([tp])
            start = await self._retrying(self.next_offset)
            end = (await consumer.end_offsets([tp]))[tp]
            if start > end:
                logger.warning(
                    "archive: %s ends at %d, before the %d this index read: another "
                    "cluster's file; indexing again from the start", self.topic, end, start,
                )  # fmt: skip
                await asyncio.to_thread(self.reset)
                start = 0
            consumer.seek(tp, start)
            logger.info("archive: indexing %s from offset %d into %s", self.topic, start, self.path)
            while True:
                fetched = await consumer.getmany(
                    tp, timeout_ms=FETCH_WAIT_MS, max_records=FETCH_RECORDS_MAX
                )
                records = fetched.get(tp)
                if not records:
                    continue
                rows = [(r.key.decode(), r.value) for r in records if r.key and r.value]
                await self._retrying(self.add, rows, records[-1].offset + 1)
        finally:
            await consumer.stop()
