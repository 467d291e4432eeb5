"""The worker's metrics: names, labels, exposition, bounded label sets."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, ClassVar

import orjson
from prometheus_client.parser import text_string_to_metric_families

from streams.runtime.metrics import LABEL_SETS_MAX, Metrics, consumer_lags, health


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_are_named_by_convention_and_count() -> None:
    m = Metrics()
    m.trade_received()
    m.trade_received()
    m.settlement("pending", "insufficient_cash")
    m.settlement("settled", None)
    m.rejected("payments", "invalid_amount")
    m.ledger_events(3)
    m.ledger_events(0)
    m.order_event("filled")
    m.fills(2)
    m.coupon_run("coupon:JP1103771Q62:2026-09-20", 2, 450_000)
    m.coupon_run("redemption:JP1103771Q62:2035-03-20", 1, 100_450_000)
    m.unfunded_runs(1)
    m.penalty("insufficient_securities", "JPYC", 988)
    m.penalty("insufficient_securities", "JPYC", 988)
    got = samples(m)
    assert got[("kessai_trades_received_total", ())] == 2
    assert (
        got[("kessai_settlements_total", (("reason", "insufficient_cash"), ("status", "pending")))]
        == 1
    )
    assert got[("kessai_settlements_total", (("reason", ""), ("status", "settled")))] == 1
    assert (
        got[("kessai_rejections_total", (("reason", "invalid_amount"), ("topic", "payments")))] == 1
    )
    assert got[("kessai_ledger_events_total", ())] == 3
    assert got[("kessai_order_events_total", (("event", "filled"),))] == 1
    assert got[("kessai_fills_total", ())] == 2
    assert got[("kessai_coupon_payments_total", (("kind", "coupon"),))] == 2
    assert got[("kessai_coupon_paid_yen_total", (("kind", "redemption"),))] == 100_450_000
    assert got[("kessai_coupon_runs_unfunded", ())] == 1
    by_reason = (("currency", "JPYC"), ("reason", "insufficient_securities"))
    assert got[("kessai_fail_penalties_total", by_reason)] == 2
    assert got[("kessai_fail_penalty_units_total", (("currency", "JPYC"),))] == 1976
    # Counters end in _total (and their _created timestamps), the one gauge counts runs
    # waiting; the one histogram is in
    # seconds, with its buckets, sum and count. The process's own series (start time:
    # the crash-loop alert) come from prometheus-client's process collector.
    assert got[("process_start_time_seconds", ())] > 0
    assert all(
        name.endswith(("_total", "_created"))
        or name in ("kessai_coupon_runs_unfunded", "kessai_reserve_breaches")
        or name.startswith(("kessai_settlement_latency_seconds_", "process_"))
        for name, _ in got
    )


def test_settlement_latency_is_observed_in_seconds_since_trade_time_and_arrival() -> None:
    m = Metrics()
    m.settled(trade_time_s=1000.0, arrived_s=1010.0, now_s=1010.5)
    m.settled(trade_time_s=0.0, arrived_s=0.0, now_s=2000.0)  # times unknown: not observed
    got = samples(m)
    since_trade = (("since", "trade_time"),)
    since_arrival = (("since", "arrival"),)
    assert got[("kessai_settlement_latency_seconds_count", since_trade)] == 1
    assert got[("kessai_settlement_latency_seconds_sum", since_trade)] == 10.5
    assert got[("kessai_settlement_latency_seconds_count", since_arrival)] == 1
    assert got[("kessai_settlement_latency_seconds_sum", since_arrival)] == 0.5
    le = (("le", "0.5"), ("since", "arrival"))
    assert got[("kessai_settlement_latency_seconds_bucket", le)] == 1
    le = (("le", "10.0"), ("since", "trade_time"))
    assert got[("kessai_settlement_latency_seconds_bucket", le)] == 0


def test_two_apps_do_not_share_counts() -> None:
    a, b = Metrics(), Metrics()
    a.trade_received()
    assert samples(b)[("kessai_trades_received_total", ())] == 0


def test_label_children_are_cached_and_bounded() -> None:
    m = Metrics()
    m.rejected("trades", "schema")
    first = m._children[("rejections", "trades", "schema")]
    m.rejected("trades", "schema")
    assert m._children[("rejections", "trades", "schema")] is first
    for n in range(LABEL_SETS_MAX + 10):
        m.rejected("trades", f"r{n}")
    got = samples(m)
    kept = [k for k in got if k[0] == "kessai_rejections_total"]
    assert len(kept) == LABEL_SETS_MAX + 1  # the bound, plus "other"
    assert got[("kessai_rejections_total", (("reason", "other"), ("topic", "other")))] == 11


class FakeTP:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition


class FakeConsumer:
    def __init__(self, ends: dict[tuple[str, int], int | None], done: dict[tuple[str, int], int]):
        self.tps = [FakeTP(t, p) for t, p in ends]
        self.ends = ends
        self._committed_offset = {tp: done[(tp.topic, tp.partition)] for tp in self.tps
                                  if (tp.topic, tp.partition) in done}  # fmt: skip

    def assignment(self) -> list[FakeTP]:
        return self.tps

    def highwater(self, tp: FakeTP) -> int | None:
        return self.ends[(tp.topic, tp.partition)]


class FakeTables(dict):  # type: ignore[type-arg]
    changelog_topics: ClassVar[set[str]] = {"kessai-accounts-changelog"}

    def __init__(self, *, recovered: bool) -> None:
        super().__init__()
        self.recovery = SimpleNamespace(completed=asyncio.Event())
        if recovered:
            self.recovery.completed.set()


class FakeApp:
    def __init__(
        self, consumer: FakeConsumer, *, in_recovery: bool = False, recovered: bool = True
    ) -> None:
        self.consumer, self.in_recovery = consumer, in_recovery
        self.tables = FakeTables(recovered=recovered)


def test_lag_is_last_stable_offset_minus_committed_for_inputs_only() -> None:
    consumer = FakeConsumer(
        {
            ("trades", 0): 100,
            ("trades", 1): 5,
            ("payments", 0): None,
            ("kessai-accounts-changelog", 0): 999,
        },
        {("trades", 0): 40},
    )
    assert consumer_lags(FakeApp(consumer)) == {("trades", 0): 60, ("trades", 1): 5}


def test_health_is_503_until_first_recovered_while_recovering_or_lagging() -> None:
    idle = FakeConsumer({("trades", 0): 10}, {("trades", 0): 10})
    assert health(FakeApp(idle), 100) == (
        200, {"status": "ok", "lag_records_max": 0, "partitions": 1}
    )  # fmt: skip
    assert health(FakeApp(idle, in_recovery=True), 100) == (503, {"status": "recovering"})
    # Before its first assignment and recovery it has no partitions, and is not ready.
    assert health(FakeApp(idle, recovered=False), 100) == (503, {"status": "starting"})
    behind = FakeConsumer({("trades", 0): 500, ("trades", 1): 10}, {("trades", 0): 0})
    status, body = health(FakeApp(behind), 100)
    assert status == 503 and body["behind"] == {"trades[0]": 500}


def _account(balances: dict[str, list[int]], locks: dict[str, list[Any]] | None = None) -> bytes:
    from streams.ledger.domain import AccountState

    return AccountState(seq=1, balances=balances, locks=locks or {}).to_bytes()


def _engine_with(accounts: dict[str, bytes], inflow: dict[str, int]) -> Any:
    """A leading engine service holding ``accounts`` (rows) and ``inflow``, its sums
    taken as a restore takes them."""
    from streams.engine.core import Engine
    from streams.runtime.livesums import LiveSums

    engine = Engine()
    engine.accounts.update(accounts)
    engine.inflow.update(inflow)
    sums = LiveSums()
    sums.rebuild(engine.accounts, engine.inflow)
    return SimpleNamespace(leading=True, engine=engine, sums=sums)


def test_state_sums_balances_locks_inflow_and_open_trades() -> None:
    from streams.engine.agent import state_sums
    from streams.settlement.messages import Trade
    from streams.settlement.saga import Saga

    accounts = {
        "alice": _account({"JPYC": [100, 50], "JP1": [0, 0]}, {"t1/cash": ["JPYC", 50]}),
        "bob": _account({"JPYC": [10**40, 0], "JP1": [200_000, 0]}),
    }
    service = _engine_with(accounts, {"JPYC": 150 + 10**40, "JP1": 200_000})

    def trade(tid: str, arrived_s: float = 0.0) -> Trade:
        return Trade(tid, "JP1", "alice", "bob", 1, "JPYC", 1, 99.0, arrived_s=arrived_s)

    service.engine.open.update({
        "t1": Saga(trade("t1", 7.5), "cash", "locked", "queued", "insufficient_cash"),
        "t2": Saga(trade("t2", 9.0), "bonds", "queued"),
        "t3": Saga(trade("t3"), "cash", "locked", "queued", "insufficient_cash"),
        # Its bonds waited once; both legs are now locked: no longer pending for that.
        "t4": Saga(trade("t4"), "posting", "locked", "locked", "insufficient_securities"),
    })  # fmt: skip
    sums = state_sums(service)
    assert sums is not None
    assert sums.available == {"JPYC": 100 + 10**40, "JP1": 200_000}
    assert sums.locked == {"JPYC": 50, "JP1": 0}
    assert sums.open_locks == 1
    # Exact past float precision: 10**40 + 150 held, 10**40 + 150 came in.
    assert sums.conservation_error("JPYC") == 0
    assert sums.conservation_error("JP1") == 0
    assert sums.open_trades == {
        ("cash", "insufficient_cash"): 2, ("bonds", ""): 1, ("posting", ""): 1
    }  # fmt: skip
    assert sums.oldest_arrived_s == 7.5
    service.leading = False
    assert state_sums(service) is None  # a standby holds nothing


def test_the_state_gauges_are_in_tokens_and_kept_by_batches() -> None:
    from streams.engine.agent import state_sums
    from streams.runtime.metrics import StateCollector

    accounts = {"alice": _account({"USDC": [1_500_000, 250_000]}, {"t/cash": ["USDC", 250_000]})}
    service = _engine_with(accounts, {"USDC": 1_750_000})
    m = Metrics()
    m.registry.register(StateCollector(lambda: state_sums(service), {"USDC": 6}))
    got = samples(m)
    assert got[("kessai_balance_tokens", (("asset", "USDC"), ("kind", "available")))] == 1.5
    assert got[("kessai_balance_tokens", (("asset", "USDC"), ("kind", "locked")))] == 0.25
    assert got[("kessai_inflow_tokens", (("asset", "USDC"),))] == 1.75
    assert got[("kessai_conservation_error_units", (("asset", "USDC"),))] == 0
    assert got[("kessai_open_locks", ())] == 1
    # A batch moves the sums at once; the scrape walks no account.
    service.sums.add({"USDC": [1, 0]}, 0)
    assert samples(m)[("kessai_conservation_error_units", (("asset", "USDC"),))] == 1  # a unit
    # A deposit committed: balance and inflow move together.
    service.sums.add({"USDC": [2, 0]}, 0, {"USDC": 1_750_002})
    assert samples(m)[("kessai_conservation_error_units", (("asset", "USDC"),))] == 1
    service.leading = False
    assert not [k for k in samples(m) if k[0] == "kessai_balance_tokens"]


def test_a_scrape_during_a_commit_sees_the_last_committed_sums_and_counts_nothing_twice() -> None:
    """CI, 2026-12-04: the dashboard's conservation tile said "2 off" on a quiet worker.
    The first scrape after a restore summed the accounts from memory while a batch
    was committing (its effects already in memory), and the batch added them again
    once committed. The sums are now taken at the restore and moved after commits."""
    from aiokafka import ConsumerRecord, TopicPartition

    from streams.config import Settings
    from streams.engine.agent import state_sums
    from streams.engine.service import EngineService

    service = EngineService(Settings(app_id="kessai-sums"))
    service.state = "leading"
    service.sums.rebuild(service.engine.accounts, service.engine.inflow)  # as _lead does
    seen: list[Any] = []

    async def commit(*_: Any) -> None:
        seen.append(state_sums(service))  # a scrape while the broker works
        await asyncio.sleep(0)

    service._commit = commit  # type: ignore[method-assign,assignment]
    deposit = {"token": "JPYC", "amount": "1000", "kind": "deposit"}
    deposits = [
        orjson.dumps({**deposit, "payment_id": f"p{i}", "account": f"a{i}"}) for i in range(3)
    ]
    tp = TopicPartition("payments", 0)
    records = [
        ConsumerRecord("payments", 0, i, 1_700_000_000_000, 0, f"a{i}".encode(), v, None, 0, 0, ())
        for i, v in enumerate(deposits)
    ]
    asyncio.run(service._batch(None, [(tp, records)], 1_700_000_000.0))
    during = seen[0]
    assert during.available == {} and during.inflow == {}, "a scrape saw an uncommitted batch"
    after = state_sums(service)
    assert after is not None
    assert after.available == {"JPYC": 3000} and after.inflow == {"JPYC": 3000}
    assert after.conservation_error("JPYC") == 0


def test_commit_durations_form_a_cumulative_histogram() -> None:
    from streams.runtime.batches import COMMIT_BUCKETS_S, CommitTimes

    times = CommitTimes()
    for seconds in (0.001, 0.004, 0.02, 0.3, 99.0):
        times.observe(seconds)
    got = dict(times.cumulative())
    assert got["0.005"] == 2 and got["0.025"] == 3 and got["0.5"] == 4
    assert got[str(COMMIT_BUCKETS_S[-1])] == 4 and got["+Inf"] == 5
    assert abs(times.total_s - 99.325) < 1e-9


def test_the_transactions_are_the_engines() -> None:
    from streams.runtime.batches import CommitTimes
    from streams.runtime.metrics import WorkerCollector

    def loop(*seconds: float) -> SimpleNamespace:
        times = CommitTimes()
        for s in seconds:
            times.observe(s)
        return SimpleNamespace(stats=SimpleNamespace(commits=times, batches=len(seconds)))

    collector = WorkerCollector(None, loop(0.01, 0.2, 0.03))
    families = {f.name: f for f in collector._transactions()}
    assert families["kessai_transactions_committed"].samples[0].value == 3
    histogram = {s.name: s.value for s in families["kessai_commit_duration_seconds"].samples}
    assert histogram["kessai_commit_duration_seconds_count"] == 3
    assert abs(histogram["kessai_commit_duration_seconds_sum"] - 0.24) < 1e-9


def test_account_partitions_are_all_on_the_engines_worker_and_none_on_a_standby() -> None:
    from types import SimpleNamespace

    from streams.runtime.metrics import WorkerCollector

    engine = SimpleNamespace(leading=True, state="leading", lags=dict,
                             engine=SimpleNamespace(sizes=dict))  # fmt: skip
    app = SimpleNamespace(
        consumer=SimpleNamespace(assignment=set, highwater=lambda tp: None),
        conf=SimpleNamespace(topic_partitions=4),
        tables=SimpleNamespace(changelog_topics=set(), items=dict().items),
        rebalancing_count=0,
    )

    def owned() -> tuple[float, float]:
        families = WorkerCollector(app, engine)._partitions_and_tables(app)
        got = {f.name: f.samples[0].value for f in families
               if f.name.startswith("kessai_ledger_partitions")}  # fmt: skip
        return got["kessai_ledger_partitions_owned"], got["kessai_ledger_partitions"]

    assert owned() == (4, 4)
    engine.leading, engine.state = False, "standby"
    assert owned() == (0, 4)


def test_sums_rebuilt_in_the_background_add_up_with_the_batches_committed_meanwhile() -> None:
    """A takeover sums the accounts a chunk at a time (summed at once, 1,000,000 accounts
    held the event loop 3 s before the first settlement): /metrics shows no sums until
    the last chunk is in, and the batches committed meanwhile are counted once."""
    from streams.engine.agent import state_sums

    accounts = {f"a{i}": _account({"JPYC": [i, 1]}, {f"t{i}/cash": ["JPYC", 1]}) for i in range(25)}
    service = _engine_with(accounts, {"JPYC": 325})
    whole = (dict(service.sums.available), dict(service.sums.locked), service.sums.open_locks)
    seen = []

    async def takeover() -> None:
        task = asyncio.create_task(service.sums.rebuild_soon(accounts, {"JPYC": 325}, chunk=10))
        for _ in range(3):  # a batch commits between chunks: 7 JPYC deposited each time
            seen.append(state_sums(service))
            service.sums.add({"JPYC": (7, 0)}, 0, {"JPYC": 325 + 7 * (len(seen))})
            await asyncio.sleep(0)
        await task

    asyncio.run(takeover())
    assert seen == [None, None, None], "partial sums were shown"
    after = state_sums(service)
    assert after is not None and after.inflow == {"JPYC": 346}
    assert dict(service.sums.available) == {"JPYC": whole[0]["JPYC"] + 21}
    assert (dict(service.sums.locked), service.sums.open_locks) == whole[1:]
    assert after.conservation_error("JPYC") == 0


def test_the_fx_references_and_the_bridges_dust_are_gauges() -> None:
    import datetime as dt
    from decimal import Decimal

    from schemas import FxRate
    from streams.engine.core import Engine
    from streams.runtime.metrics import reference_gauges

    engine = Engine()
    at = dt.datetime(2026, 12, 5, 1, 0, tzinfo=dt.UTC)
    engine.fx_rates["USDC"] = FxRate(currency="USDC", rate=Decimal("151.234"),
                                     source="fixing", at=at)  # fmt: skip
    engine.dust["JPYC"] = 5 * 10**17
    samples = {
        (family.name, tuple(s.labels.values())): s.value
        for family in reference_gauges(engine, {"JPYC": 18, "USDC": 6})
        for s in family.samples
    }
    assert samples == {
        ("kessai_fx_reference_rate", ("USDC",)): 151.234,
        ("kessai_fx_reference_timestamp_seconds", ("USDC",)): at.timestamp(),
        ("kessai_bridge_dust_tokens", ("JPYC",)): 0.5,
    }
