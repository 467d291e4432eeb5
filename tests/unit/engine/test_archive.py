"""The archive's SQLite index shared by two workers on one state dir: a second one
opens it while the first holds a write (a paused worker), and waits out a lock instead
of stopping its worker."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from streams.config import Settings
from streams.engine import archive
from streams.engine.archive import ArchiveIndex


def test_a_second_index_waits_for_a_file_the_first_holds_and_then_opens_it(
    tmp_path: Path,
) -> None:
    # A worker paused while it made the file (rollback journal, an exclusive lock):
    # the other worker's index waited the busy timeout, then stopped its worker.
    path = tmp_path / "archive.sqlite3"
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE early (x)")
    index = ArchiveIndex(Settings(), path)
    setattr(archive, "BUSY_TIMEOUT_S", 0.05)  # noqa: B010
    setattr(archive, "LOCKED_RETRY_S", 0.05)  # noqa: B010

    async def scenario() -> int:
        asyncio.get_running_loop().call_later(0.3, holder.rollback)  # the worker resumes
        return await index._retrying(index.next_offset)

    try:
        assert asyncio.run(scenario()) == 0
    finally:
        setattr(archive, "BUSY_TIMEOUT_S", 30.0)  # noqa: B010
        setattr(archive, "LOCKED_RETRY_S", 1.0)  # noqa: B010
    index.add([("t1", b"{}")], 1)
    assert index.get("t1") == b"{}"


def test_a_locked_write_is_tried_again_not_raised(tmp_path: Path) -> None:
    index = ArchiveIndex(Settings(), tmp_path / "archive.sqlite3")
    calls: list[int] = []

    def add(rows: list[tuple[str, bytes]], next_offset: int) -> None:
        calls.append(next_offset)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        ArchiveIndex.add(index, rows, next_offset)

    setattr(archive, "LOCKED_RETRY_S", 0.0)  # noqa: B010
    try:
        asyncio.run(index._retrying(add, [("t2", b"{}")], 7))
    finally:
        setattr(archive, "LOCKED_RETRY_S", 1.0)  # noqa: B010
    assert calls == [7, 7, 7] and index.next_offset() == 7
