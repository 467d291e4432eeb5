"""The engine's state read back from its changelogs, and its last manifest.

A new holder of the engine reads each changelog from its start to its last stable
offset (read_committed: only committed batches) and applies every row in offset
order; the last row of a key wins, as compaction will keep it. It does so after its
producer fenced the previous holder (:mod:`streams.engine.service`), so nothing is
still being committed under it.
"""

from __future__ import annotations

from streams import topics
from streams.config import Settings
from streams.engine.core import Engine
from streams.engine.manifest import Manifest
from streams.kafka.reader import Cut, cuts_for, read_batches

__all__ = ["last_manifest", "restore"]

#: Offsets read back from the log's end at a time when looking for its last record
#: (commit and abort markers take offsets too).
TAIL_OFFSETS = 64


async def restore(settings: Settings, engine: Engine) -> int:
    """Apply every committed row of the engine's changelogs to ``engine``; how many."""
    rows = 0
    for name in topics.ENGINE_CHANGELOGS:
        topic = topics.engine_topic(settings.app_id, name)
        cuts = await cuts_for(settings, topic, client_id=f"{settings.app_id}-engine-restore")
        async for _, records in read_batches(
            settings, topic, cuts, client_id=f"{settings.app_id}-engine-restore"
        ):
            for r in records:
                engine.restore_row(name, r.key.decode(), r.value)
            rows += len(records)
    engine.restored()
    return rows


async def last_manifest(settings: Settings) -> Manifest | None:
    """The last committed batch's manifest (None: the engine never committed one)."""
    topic = topics.engine_topic(settings.app_id, topics.ENGINE_LOG)
    cuts = await cuts_for(settings, topic, client_id=f"{settings.app_id}-engine-restore")
    if not cuts:
        return None
    (cut,) = cuts
    back = TAIL_OFFSETS
    while True:
        start = max(cut.start, cut.end - back)
        last = None
        async for _, records in read_batches(
            settings, topic, [Cut(cut.partition, start, cut.end)],
            client_id=f"{settings.app_id}-engine-restore",
        ):  # fmt: skip
            last = records[-1]
        if last is not None:
            return Manifest.from_bytes(last.value)
        if start == cut.start:
            return None
        back *= 4
