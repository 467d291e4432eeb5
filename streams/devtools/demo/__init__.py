"""The demo behind ``make run``: a worker, venues' trades and orders settling, and where to look.

It creates the topics, publishes the reference security master (``kessai instruments
load``: every bond of the story is a JGB in it, and kessai computes each JPYC trade's
accrued interest from it), starts a worker in the background with a short settlement
deadline (:data:`~.story.DEMO_DEADLINE_S` instead of an hour, so that a failure shows within
the demo), then plays a story through the real pipeline in four acts, with ids and
accounts unique to this run (``alice-<run>``, ``t1-<run>``, ``o1-<run>``, ...):

1. Funding. The registrar publishes USDC's reference rate in yen (``fx-rates``). The
   bridges deposit JPYC and USDC for alice and bob (``payments``) and
   two JGBs for bob (``custody``); alice withdraws part of her JPYC. Four payments the
   worker must refuse without changing a balance: an overdraft, a replayed payment
   id, a token nobody configured, and bytes that are not even JSON. The demo waits
   until the deposits are on the ledger: the worker is up and the accounts funded.
2. Trading. A simulated venue publishes trades on ``trades`` (key trade_id): two
   between funded accounts (one paid in JPYC, one in USDC at its venue's rate, which
   the report shows converted: docs/fx.md), one whose buyer carol
   has no cash yet, one whose seller dave has no bonds yet, and one whose seller
   erin will never get her bonds; then five trades that must be rejected: a bad
   ISIN check digit, buyer == seller, an unknown currency, a repeated trade_id, and
   cut-off JSON. The demo waits until the three unfunded trades are ``pending``.
3. Late deposits. Carol's cash and dave's bonds arrive; their trades settle. Erin's
   trade fails with ``insufficient_securities`` at its deadline.
4. Matching, once act 3 is over. Two simulated venues (:data:`~.story.VENUES`: venue-tokyo
   for bob and dave, venue-osaka for alice and carol) publish orders on ``orders``
   (key ISIN) for :data:`~.story.BOND_10Y` in JPYC: asks and bids resting at several prices,
   a limit buy that takes two ask levels (the second in part), a market sell, an IOC
   buy that fills in part, a buy that meets its own account's ask (self-match), a
   cancel, and an order of 12,345 face that must be rejected. The worker's matcher
   makes five trades of venue ``kessai`` on ``trades``, which settle DvP like the
   venue's; every step of every order goes to ``order-events``. The book is shared
   by every run on the broker, so the venues first cancel what earlier runs of the
   demo left resting on it (price-time priority would fill those first).
5. JGBs, on a broker and worker of their own with a simulated clock
   (:mod:`.bonds`): the reference security master, a T+1 trade that waits for its
   settlement date and is paid with kessai's accrued interest, a coupon paid to the
   holders of record, the market claim of a trade that settled after it, and a
   redemption that repays face plus the last coupon and leaves no bond.

Everything is read back from the worker's committed output (``settlements``,
``rejections``, ``ledger-events``, ``order-events``, ``trades``; read_committed, from
where they ended when the demo started), printing a progress line while it waits.
It prints each trade's statuses, each order's events, the matched trades and their
settlements, BOND_10Y's book as ``kessai book`` shows it (:mod:`streams.matching.depth`),
the rejections, this run's positions replayed from the journal
(:mod:`streams.audit.positions`), a summary (settled / pending / failed / rejected by
reason; orders, cancellations and matched trades) and where the logs, topics and
metrics are. With ``--once`` it stops the worker and exits 0 only if every expected
outcome arrived (each trade's statuses, each order's events, each matched trade and
its settlement, the book left, each rejection's reason, every balance); otherwise it
prints what was missing and exits 1. Without it, the worker keeps running in the
foreground until Ctrl-C.

The parts: :mod:`.story` (the records and the outcomes expected, as data),
:mod:`.play` (publishing each act and waiting for its outcomes), :mod:`.seen` (what
was read back), :mod:`.report` (printing it, compared with the story); here, only
:func:`main`, which runs them in turn around the worker.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from schemas import INSTRUMENTS
from streams.cli.instruments import reference_file
from streams.config import Settings
from streams.devtools.demo.bonds import play_bonds
from streams.devtools.demo.play import play_story
from streams.devtools.demo.report import print_report, where_to_look
from streams.devtools.demo.story import DEMO_DEADLINE_S, build
from streams.devtools.processes import WorkerProcess
from streams.kafka.publish import publish_file


def _introduce(settings: Settings, accounts: Sequence[str], run: str, worker_log: Path) -> None:
    print(
        f"starting a worker with KESSAI_FAIL_MODE=atomic and "
        f"KESSAI_SETTLEMENT_DEADLINE_S={DEMO_DEADLINE_S} (the defaults are recycle, a fail "
        f"recycles for days, and {Settings().settlement_deadline_s:.0f} s), so that a trade "
        f"fails within the demo; log: {worker_log}"
    )
    print(f"run {run}: accounts {', '.join(accounts)}")
    print(
        f"dashboard: http://127.0.0.1:{settings.web_port}/  "
        f"(metrics: http://127.0.0.1:{settings.web_port}/metrics)",
        flush=True,
    )


def main(settings: Settings, *, once: bool = False) -> int:
    """Run the demo around a worker; 0 if every outcome arrived as told, else 1."""
    from streams.devtools import localkafka
    from streams.kafka.admin import ensure_public_topics

    # A SIGTERM (`kill`, a supervisor) ends the demo as Ctrl-C does: its worker is
    # stopped on the way out, not left running on its own.
    signal.signal(signal.SIGTERM, _interrupt)
    localkafka.up(settings)
    created = asyncio.run(ensure_public_topics(settings))
    if created:
        print(f"created topics: {', '.join(created)}")
    log_dir = settings.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    worker_log = log_dir / "worker.log"
    run = uuid.uuid4().hex[:6]
    story = build(run)
    _introduce(settings, story.accounts, run, worker_log)
    # The security master first (`kessai instruments load`): the worker reads it to its
    # end as it starts, before the story's deposits and trades (docs/bonds.md).
    if publish_file(settings, INSTRUMENTS, str(reference_file())) != 0:
        print("the reference security master could not be published")
        return 1
    worker = WorkerProcess(
        worker_log,
        # The story's figures are the master's (whatever this shell's environment says).
        env={
            "KESSAI_SETTLEMENT_DEADLINE_S": str(DEMO_DEADLINE_S),
            "KESSAI_FAIL_MODE": "atomic",
            "KESSAI_SECURITY_MASTER": "required",
            "KESSAI_SETTLEMENT_LAG": "0",
        },
        port=settings.web_port,
    )
    try:
        seen = asyncio.run(play_story(story, settings, worker))
        if not worker.alive:
            print(f"the worker exited with {worker.proc.returncode}: see {worker_log}")
            return 1
        problems = print_report(story, seen)
        problems += asyncio.run(play_bonds(settings.state_dir, run))
        where_to_look(settings, worker_log)
        if problems:
            print("\nDEMO FAILED, missing or wrong:\n  " + "\n  ".join(problems))
            return 1
        print(
            "\ndemo OK: every trade settled or failed as expected, every order was matched "
            "as expected and its trades settled, every bad record was refused with its "
            "reason, every balance is as expected, the JGBs' dates, accrued, coupon, "
            "market claim and redemption are what the rules say, and so are a fail's "
            "penalties and its partial settlement."
        )
        if once:
            return 0
        print(
            f"the worker keeps running (settlement deadline {DEMO_DEADLINE_S} s); Ctrl-C stops it."
        )
        return worker.proc.wait() or 0
    except KeyboardInterrupt:
        return 0
    finally:
        worker.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
