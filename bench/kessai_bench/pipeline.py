"""The settlement pipeline as a bench variant: ``kessai worker`` under a guarantee.

Each measurement gets a broker of its own (``Variant.private_broker``): kessai's topic
names are fixed, and a fresh cluster is the only way to give every variant the same
empty topics without touching a developer's data. On it:

1. :meth:`PipelineVariant.create_topics`: the catalogue topics and kessai's internal
   ones, exactly as ``kessai worker`` creates them.
2. :meth:`PipelineVariant.prepare`: fund every account the load generator trades
   between (:data:`kessai_bench.trades.ACCOUNTS`; each gets both tokens and every
   bond, far more than any run spends), run a worker until the ledger applied every
   deposit, stop it, and note where every topic the worker writes ends. Funding is
   done before the measurement so that every trade settles at once: the bench
   measures settling, not waiting for money.
3. :meth:`PipelineVariant.start`: a new worker; ready once faust logs ``Worker
   ready`` (group joined, tables recovered, streams resumed).
4. The runner publishes trades on ``trades`` and waits for one terminal record
   (``settled`` or ``failed``) per trade on ``settlements``; latency pairs each with
   its trade's publish time (the observer reads ``trades`` too).
5. :meth:`PipelineVariant.extra`: the Kafka records the worker wrote during the
   measurement, on every topic and changelog, read back with read_committed and
   counted one by one (transaction markers and aborted records are not records).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from kessai_bench.base import READY_TIMEOUT_S, Context, Variant
from kessai_bench.orders import taker_trade_id
from kessai_bench.trades import ACCOUNTS, BONDS, fx_reference, instrument
from schemas import FX_RATES, INSTRUMENTS
from streams.config import DEFAULT_TOKENS, GUARANTEES, Settings
from streams.devtools.processes import ChildProcess, WorkerProcess
from streams.kafka.admin import ensure_worker_topics
from streams.security import signing
from streams.topics import INPUT_TOPICS

#: The faust app id of benchmark workers (group, transactional ids, changelogs).
APP_ID = "kessai-bench"
#: Each account's opening balances (whole tokens; face value): more than any run spends.
CASH_AMOUNT = {"JPYC": 10**13, "USDC": 10**12}
BOND_FACE = 10**12
#: The deposits that fund the accounts (one ledger posting each).
FUNDING_MOVES = ACCOUNTS * (len(CASH_AMOUNT) + len(BONDS))
FUNDING_TIMEOUT_S = 300.0
COUNT_TIMEOUT_S = 300.0
TERMINAL = (b"settled", b"failed")


def funding() -> list[tuple[str, bytes, bytes]]:
    """``(topic, key, value)`` of every deposit that funds the bench's accounts."""
    out: list[tuple[str, bytes, bytes]] = []
    for i in range(ACCOUNTS):
        account = f"acct-{i:05d}"
        key = account.encode()
        for token, amount in CASH_AMOUNT.items():
            value = {
                "payment_id": f"fund-{token}-{account}",
                "account": account,
                "token": token,
                "amount": str(amount),
                "kind": "deposit",
            }
            out.append(("payments", key, orjson.dumps(value)))
        for isin in BONDS:
            bonds: dict[str, Any] = {
                "movement_id": f"fund-{isin}-{account}",
                "account": account,
                "isin": isin,
                "quantity": BOND_FACE,
                "kind": "deposit",
            }
            out.append(("custody", key, orjson.dumps(bonds)))
    return out


#: The deployment id the ``+signed`` variant signs for.
BENCH_DEPLOYMENT = "kessai-bench"
#: The signers of the ``+signed`` variant: a venue serving every bench account, the
#: bridge that funds them, and the worker's own key (which signs nothing here).
BENCH_VENUE = "venue-bench"
BENCH_BRIDGE = "bridge"


def _signing_files(ctx: Context) -> Path:
    """The ``+signed`` variant's keys and registry under the run's log folder (made once)."""
    folder = ctx.log_dir / f"{ctx.prefix}signers"
    registry = folder / "signers.json"
    if registry.exists():
        return folder
    entries = []
    for signer_id, role, accounts in (
        (BENCH_VENUE, "venue", ["acct-*"]),
        (BENCH_BRIDGE, "bridge", []),
        (signing.MATCHER_SIGNER, "matcher", []),
    ):
        pem = folder / f"{signer_id}.pem"
        signing.write_private_key(pem, signing.new_private_key_pem())
        key = signing.SigningKey.load(signer_id, pem, BENCH_DEPLOYMENT)
        entries.append(signing.entry(signer_id, role, key.public_text(), accounts))
    admin = folder / "registry-admin.pem"
    signing.write_private_key(admin, signing.new_private_key_pem())
    document = signing.registry_document(
        entries, deployment=BENCH_DEPLOYMENT, admin=signing.load_admin_key(admin)
    )
    registry.write_bytes(document)
    return folder


def _registry_key(folder: Path) -> str:
    admin = signing.load_admin_key(folder / "registry-admin.pem")
    return signing.public_key_text(admin.public_key())


def is_terminal(value: bytes) -> bool:
    """Whether a ``settlements`` record is a trade's last (settled or failed)."""
    status: Any = orjson.loads(value).get("status")
    return isinstance(status, str) and status.encode() in TERMINAL


class PipelineVariant(Variant):
    """``kessai worker`` under one processing guarantee, on a broker of its own."""

    private_broker = True
    drain_idle_s_min = 120.0
    drain_rate_min = 20.0
    #: The topics the outside world writes during a measurement: not counted as the
    #: worker's records.
    load_inputs: tuple[str, ...] = INPUT_TOPICS

    def __init__(
        self,
        guarantee: str,
        *,
        tweak: str = "",
        env: dict[str, str] | None = None,
        checkout: tuple[str, Path] | None = None,
        signed: bool = False,
    ) -> None:
        """*tweak* names a variation (an optimisation to compare), set by *env*;
        *checkout* is ``(revision, directory)``: run the worker of that git revision
        (a worktree), the way to measure code before and after a change in one run.
        *signed*: every trade and deposit is signed and the worker checks each
        signature (KESSAI_VERIFY_SIGNATURES), the cost the secure profile adds."""
        assert guarantee in GUARANTEES, guarantee
        assert bool(tweak) == bool(env), (tweak, env)
        # *signed* with a *tweak*: "+signed-{tweak}".
        self.signed = signed
        if signed:
            tweak = f"signed-{tweak}" if tweak else "signed"
        self.guarantee = guarantee
        self.tweaks = dict(env or {})
        self.checkout = checkout
        suffix = f"+{tweak}" if tweak else ""
        suffix += f"@{checkout[0]}" if checkout else ""
        self.name = f"pipeline-{guarantee.replace('_', '-')}{suffix}"
        self.title = f"settlement pipeline, {guarantee}" + (f", {suffix[1:]}" if suffix else "")
        settings = "".join(f", {k}={v}" for k, v in self.tweaks.items())
        code = f"; the code of git revision {checkout[0]}" if checkout else ""
        signs = (
            "; every trade and deposit signed (Ed25519), the worker checking each "
            "signature (KESSAI_VERIFY_SIGNATURES=1)"
            if signed
            else ""
        )
        self.description = (
            f"kessai worker (faust, processing_guarantee={guarantee}{settings}{code}): "
            "trade intake, DvP saga, ledger; accounts funded beforehand; output = one "
            f"terminal settlement record per trade{signs}"
        )
        self.pick = is_terminal
        #: The workers require the security master: the bonds are published before the
        #: funding, and a JPYC trade's accrued interest is kessai's.
        self.master = self.tweaks.get("KESSAI_SECURITY_MASTER") == "required"
        assert not (self.master and signed), "the bench's registry has no registrar"
        #: Where each written topic partition ended before the measurement.
        self._marks: dict[TopicPartition, int] = {}

    def source(self, ctx: Context) -> str:
        return "trades"

    def sink(self, ctx: Context) -> str:
        return "settlements"

    def origin(self, ctx: Context) -> str | None:
        return "trades"

    def _env(self, ctx: Context) -> dict[str, str]:
        env: dict[str, str] = {
            "KESSAI_BOOTSTRAP": ctx.bootstrap,
            "KESSAI_PARTITIONS": str(ctx.partitions),
            "KESSAI_APP_ID": APP_ID,
            "KESSAI_TOKENS": ",".join(f"{k}:{d}" for k, d in DEFAULT_TOKENS.items()),
            "KESSAI_PROCESSING_GUARANTEE": self.guarantee,
            # One venue sends every trade, faster than a venue's default rate: the
            # buckets are still kept (their cost is measured), and never refuse.
            "KESSAI_VENUE_RATE": "1000000000",
            "KESSAI_VENUE_BURST": "1000000000",
            # The generator's ISINs are not in a security master (issue 20).
            "KESSAI_SECURITY_MASTER": "off",
            **self.tweaks,
        }
        if self.signed:
            keys = _signing_files(ctx)
            env["KESSAI_VERIFY_SIGNATURES"] = "1"
            env["KESSAI_SIGNERS_FILE"] = str(keys / "signers.json")
            env["KESSAI_REGISTRY_KEY"] = _registry_key(keys)
            env["KESSAI_SIGNING_KEY_FILE"] = str(keys / f"{signing.MATCHER_SIGNER}.pem")
            env["KESSAI_SIGNER_ID"] = signing.MATCHER_SIGNER
        return env

    def load_args(self, ctx: Context) -> list[str]:
        args = ["--kessai-accrued"] if self.master else []
        if not self.signed:
            return args
        key = _signing_files(ctx) / f"{BENCH_VENUE}.pem"
        return [*args, "--sign-key", str(key), "--signer", BENCH_VENUE,
                "--deployment", BENCH_DEPLOYMENT]  # fmt: skip

    def _worker(self, ctx: Context, role: str) -> WorkerProcess:
        return WorkerProcess(
            ctx.log_dir / f"{ctx.prefix}{self.name}-{role}.log",
            env=self._env(ctx),
            # ``python -m`` puts the working directory first on sys.path: the
            # checkout's streams/ shadows the installed one.
            cwd=self.checkout[1] if self.checkout else None,
        )

    async def create_topics(self, ctx: Context) -> None:
        await ensure_worker_topics(Settings(bootstrap=ctx.bootstrap, partitions=ctx.partitions))

    async def prepare(self, ctx: Context) -> None:
        bridge = None
        if self.signed:
            bridge = signing.SigningKey.load(
                BENCH_BRIDGE, _signing_files(ctx) / "bridge.pem", BENCH_DEPLOYMENT
            )
        producer = AIOKafkaProducer(bootstrap_servers=ctx.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            # USDC's reference rate, for the USDC trades: reference data, read first.
            await producer.send(FX_RATES, orjson.dumps(fx_reference()), key=b"USDC")
            if self.master:  # before the funding: a worker reads them first as it starts
                for isin in BONDS:
                    await producer.send(
                        INSTRUMENTS, orjson.dumps(instrument(isin)), key=isin.encode()
                    )
            for topic, key, value in funding():
                if bridge is not None:
                    value = orjson.dumps(signing.sign(topic, orjson.loads(value), bridge))
                await producer.send(topic, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()
        worker = self._worker(ctx, "funding")
        try:
            await _wait_records(
                ctx.bootstrap, "ledger-events", ctx.partitions, FUNDING_MOVES, worker
            )
        except BaseException:
            worker.kill()
            raise
        usage = await worker.finish(terminate=True)
        if usage.exit_code != 0:
            raise RuntimeError(f"the funding worker exited {usage.exit_code}; see {ctx.log_dir}")
        self._marks = await _ends(ctx.bootstrap, self.load_inputs)

    async def start(self, ctx: Context) -> ChildProcess:
        worker = self._worker(ctx, "measured")
        try:
            await worker.ready(READY_TIMEOUT_S)
        except BaseException:
            worker.kill()
            raise
        worker.ready_info = {"cpu_s": worker.cpu_s()}
        return worker

    async def extra(self, ctx: Context, outputs: int, span_s: float) -> dict[str, Any]:
        written = await _count_since(ctx.bootstrap, self._marks, self.load_inputs)
        return {
            "trades_per_s": round(outputs / span_s, 1) if span_s > 0 else 0.0,
            "kafka_records_written": sum(written.values()),
            "kafka_records_by_topic": dict(sorted(written.items())),
            "kafka_records_per_s": round(sum(written.values()) / span_s, 1) if span_s > 0 else 0,
            "records_per_trade": round(sum(written.values()) / outputs, 2) if outputs else None,
        }


def _written(topics: list[str], inputs: tuple[str, ...] = INPUT_TOPICS) -> list[str]:
    """The topics a worker writes: all but the load's *inputs* and Kafka's own."""
    return sorted(t for t in topics if t not in inputs and not t.startswith("__"))


async def _written_partitions(
    bootstrap: str, inputs: tuple[str, ...] = INPUT_TOPICS
) -> list[TopicPartition]:
    """Every partition of every topic a worker writes."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        topics = _written(await admin.list_topics(), inputs)
        described = await admin.describe_topics(topics) if topics else []
    finally:
        await admin.close()
    return sorted(
        TopicPartition(entry["topic"], part["partition"])
        for entry in described
        for part in entry["partitions"]
    )


async def _ends(
    bootstrap: str, inputs: tuple[str, ...] = INPUT_TOPICS
) -> dict[TopicPartition, int]:
    """Where every partition a worker writes ends (read_committed: the last stable offset)."""
    tps = await _written_partitions(bootstrap, inputs)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps)) if tps else {}
    finally:
        await consumer.stop()


async def _count_since(
    bootstrap: str, marks: dict[TopicPartition, int], inputs: tuple[str, ...] = INPUT_TOPICS
) -> dict[str, int]:
    """Committed records per written topic from *marks* (0 where none) to its end."""
    tps = await _written_partitions(bootstrap, inputs)
    counts = dict.fromkeys(sorted({tp.topic for tp in tps}), 0)
    if not tps:
        return counts
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        max_poll_records=10_000,
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        pending = []
        for tp in tps:
            start = marks.get(tp, 0)
            if start < ends[tp]:
                consumer.seek(tp, start)
                pending.append(tp)
        deadline = time.monotonic() + COUNT_TIMEOUT_S
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"counting records: {pending} not at their end")
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, recs in batch.items():
                counts[tp.topic] += sum(1 for r in recs if r.offset < ends[tp])
            pending = [tp for tp in pending if await consumer.position(tp) < ends[tp]]
        return counts
    finally:
        await consumer.stop()


async def _wait_records(
    bootstrap: str, topic: str, partitions: int, want: int, child: ChildProcess
) -> None:
    """Wait until *topic* holds *want* committed records; fail if *child* dies first."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=10_000,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        deadline = time.monotonic() + FUNDING_TIMEOUT_S
        while seen < want:
            if child.proc.poll() is not None:
                raise RuntimeError(f"the worker exited while funding; see {child.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"funding: {seen}/{want} ledger postings after the timeout")
            batch = await consumer.getmany(timeout_ms=500)
            seen += sum(len(recs) for recs in batch.values())
    finally:
        await consumer.stop()


class MatchingVariant(PipelineVariant):
    """Orders in, settlements out: the matcher, then the whole settlement pipeline.

    The load is crossing order pairs on ``orders`` (:mod:`kessai_bench.orders`), one
    trade per pair; outputs are the trades' terminal settlements, paired for latency
    with the taker order's publish time. The engine matches (issue 21): each order
    reserves its cash or bonds, each fill settles from them in the same batch; no
    record goes to ``trades``.
    """

    load_kind = "orders"
    load_inputs = tuple(t for t in INPUT_TOPICS if t != "trades")

    def __init__(self, guarantee: str) -> None:
        super().__init__(guarantee)
        self.name = f"matching-{guarantee.replace('_', '-')}"
        self.title = f"orders matched and settled, {guarantee}"
        self.description = (
            f"kessai worker (faust, processing_guarantee={guarantee}): crossing order pairs "
            "on orders (one trade each), reserved and matched in the engine, DvP saga, "
            "ledger; accounts funded beforehand; output = one terminal settlement record "
            "per matched trade"
        )
        self.origin_key = taker_trade_id

    def source(self, ctx: Context) -> str:
        return "orders"

    def origin(self, ctx: Context) -> str | None:
        return "orders"

    def expected_outputs(self, published: int) -> int:
        return published // 2

    async def extra(self, ctx: Context, outputs: int, span_s: float) -> dict[str, Any]:
        figures = await super().extra(ctx, outputs, span_s)
        figures["orders_per_s"] = round(2 * outputs / span_s, 1) if span_s > 0 else 0.0
        return figures
