"""The worker's metrics: names, labels, exposition, bounded label sets."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import LABEL_SETS_MAX, Metrics


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
