"""The worker's metrics: names, labels, exposition, bounded label sets."""

from __future__ import annotations

from typing import ClassVar

from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import LABEL_SETS_MAX, Metrics, consumer_lags, health


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
    # Counters only end in _total (and their _created timestamps).
    assert all(name.endswith(("_total", "_created")) for name, _ in got)


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


class FakeApp:
    def __init__(self, consumer: FakeConsumer, *, in_recovery: bool = False) -> None:
        self.consumer, self.tables, self.in_recovery = consumer, FakeTables(), in_recovery


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


def test_health_is_503_while_recovering_or_lagging() -> None:
    idle = FakeConsumer({("trades", 0): 10}, {("trades", 0): 10})
    assert health(FakeApp(idle), 100) == (
        200, {"status": "ok", "lag_records_max": 0, "partitions": 1}
    )  # fmt: skip
    assert health(FakeApp(idle, in_recovery=True), 100) == (503, {"status": "recovering"})
    behind = FakeConsumer({("trades", 0): 500, ("trades", 1): 10}, {("trades", 0): 0})
    status, body = health(FakeApp(behind), 100)
    assert status == 503 and body["behind"] == {"trades[0]": 500}
