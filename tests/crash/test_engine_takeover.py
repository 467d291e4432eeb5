"""The settlement engine's takeovers (tests/crash/scenarios/takeover.py): a zombie is
fenced and exits, a kill during a restore loses and repeats nothing, and offsets reset
by Kafka's own tool settle nothing twice. Each runs on a broker of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash.scenarios.takeover import kill_during_restore, offsets_reset, zombie

pytestmark = [pytest.mark.integration, pytest.mark.kill]

#: Enough that the engine is still busy with its backlog when it is paused.
ZOMBIE_TRADES = 60_000
TRADES = 20_000


async def test_a_paused_engine_is_fenced_commits_nothing_and_exits(
    bootstrap: str, tmp_path: Path
) -> None:
    # `bootstrap` makes sure the shared broker (and so its jars) exists first.
    found = await zombie(tmp_path, trades=ZOMBIE_TRADES)
    print(found.notes)
    assert found.problems == [], "\n".join(found.problems)
    assert found.terminal == ZOMBIE_TRADES
    assert "exited 70" in found.notes[0], found.notes


async def test_without_fencing_the_paused_engine_settles_trades_twice(
    bootstrap: str, tmp_path: Path
) -> None:
    """The zombie test can fail: with a transactional id per worker instead of one per
    app, the paused worker commits the batch it held after the other applied it too."""
    found = await zombie(tmp_path, trades=ZOMBIE_TRADES, fencing=False)
    print(found.notes, found.problems)
    assert found.problems, "the zombie committed nothing even without fencing"


async def test_a_kill_during_the_restore_loses_and_repeats_nothing(
    bootstrap: str, tmp_path: Path
) -> None:
    found = await kill_during_restore(tmp_path, trades=TRADES)
    assert found.problems == [], "\n".join(found.problems)
    assert "the kill came after the restore" not in found.notes
    assert found.terminal == TRADES + TRADES // 10


async def test_offsets_reset_to_the_earliest_settle_nothing_twice(
    bootstrap: str, tmp_path: Path
) -> None:
    found = await offsets_reset(tmp_path, trades=TRADES)
    print(found.notes)
    assert found.problems == [], "\n".join(found.problems)
    assert found.terminal == TRADES + TRADES // 10
