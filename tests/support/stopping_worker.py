"""A faust worker with one batch loop that ends on cue: the fail-stop test's.

Run as ``python -m tests.support.stopping_worker worker`` from the checkout's root, with
``KESSAI_BOOTSTRAP``, ``STOP_APP_ID`` (fresh per test), ``STOP_TRIGGER`` (a file: the
loop ends once it exists) and ``STOP_HOW``: ``raise`` (the loop raises, as a bug in the
engine would) or ``return`` (the loop returns, as when its inputs go to another worker).
The loop runs under :func:`streams.runtime.batches.run_or_stop`, as the engine's does.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import faust

from streams.runtime.batches import run_or_stop

#: How often the loop looks for the trigger file.
POLL_S = 0.1

HOW = os.environ["STOP_HOW"]
TRIGGER = Path(os.environ["STOP_TRIGGER"])
assert HOW in ("raise", "return"), HOW

app = faust.App(
    os.environ["STOP_APP_ID"],
    broker=f"kafka://{os.environ['KESSAI_BOOTSTRAP']}",
    processing_guarantee="at_least_once",
    topic_replication_factor=1,
    web_enabled=False,
)


async def loop() -> None:
    while not TRIGGER.exists():
        await asyncio.sleep(POLL_S)
    if HOW == "raise":
        raise RuntimeError("a bug in the loop")


run_or_stop(app, "stopping-loop", loop)

if __name__ == "__main__":
    app.main()
