"""The engine's records, built without pydantic, are byte for byte what the models
write: ``encode(Model.model_validate(record))``, for every kind the engine writes."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from schemas import BalanceChanged, RecordRejected, SettlementStatusChanged, decode, encode
from streams.engine import wire
from streams.engine.core import Batch, Engine, Rules
from streams.ledger import journal
from streams.settlement.messages import Trade
from tests.unit.engine.test_core import BOND, bonds, cash, trade

TOKENS = {"JPYC": 0, "USDC": 6}
NOW = 1_800_000_000.25

ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.:", min_size=1, max_size=20)


@settings(max_examples=300)
@given(
    ids,
    st.sampled_from(["JPYC", "USDC"]),
    st.integers(1, 10**15),
    st.sampled_from([("pending", "insufficient_cash"), ("settled", None), ("failed", "x")]),
    st.sampled_from(["", '{"trade":{},"signer":"v","signature":"00"}']),
    st.floats(0, 4e9, allow_nan=False),
)
def test_a_settlement_record_is_what_the_model_writes(
    trade_id: str,
    currency: str,
    units: int,
    status: tuple[str, str | None],
    signed: str,
    at_s: float,
) -> None:
    t = Trade(trade_id, BOND, "buyer", "seller", 50_000, currency, units, 0.0, signed=signed)
    at = wire.utc_text(datetime.fromtimestamp(at_s, UTC))
    record = wire.settlement(t, status[0], status[1], TOKENS, at)
    assert orjson.dumps(record) == encode(SettlementStatusChanged.model_validate(record))


@settings(max_examples=300)
@given(
    ids,
    st.sampled_from([("JPYC", 0), ("USDC", 6), (BOND, 0)]),
    st.integers(0, 10**15),
    st.integers(0, 10**15),
    st.integers(0, 10**18),
    st.integers(0, 10**18),
    st.integers(1, 10**9),
    st.sampled_from(["", "ab" * 32]),
)
def test_a_ledger_event_is_what_the_model_writes(
    account: str,
    asset: tuple[str, int],
    available_before: int,
    locked_before: int,
    available: int,
    locked: int,
    seq: int,
    prev: str,
) -> None:
    d_available, d_locked = available - available_before, locked - locked_before
    assume(d_available or d_locked)  # the model refuses a change of nothing
    record = journal.entry(account, asset[0], d_available, d_locked, available, locked,
                           "t1/bonds", seq, asset[1], prev or journal.GENESIS_HASH)  # fmt: skip
    assert orjson.dumps(record) == encode(BalanceChanged.model_validate(record))
    assert record["hash"] == journal.record_hash(record)


def test_every_record_a_batch_writes_decodes_and_reencodes_to_its_bytes() -> None:
    rules = Rules(tokens=TOKENS, deadline_s=30.0)
    engine = Engine()
    batch = Batch(engine, rules, NOW)
    inputs = [cash(1, "b", 10**6), bonds(2, "s", 100_000), trade(3, "b", "s", 50_000, "99.5"),
              trade(4, "b", "s", 100_000, "100"), trade(3, "b", "s", 50_000, "99.5"),
              cash(5, "x", 10**6, "withdrawal"), ("trades", b"k", b"{", 0.0)]  # fmt: skip
    for offset, (topic, key, value, _) in enumerate(inputs):
        batch.record(topic, 0, offset, key, value, NOW)
    out = batch.finish()
    kinds = {topic for topic, _, _ in out.records}
    assert kinds == {"settlements", "ledger-events", "rejections"}
    models = {"settlements": SettlementStatusChanged, "ledger-events": BalanceChanged,
              "rejections": RecordRejected}  # fmt: skip
    for topic, _, value in out.records:
        assert isinstance(decode(topic, value), models[topic])
        assert encode(decode(topic, value)) == value


_TEXT = st.text(max_size=12)
_TRADES = st.builds(
    Trade,
    trade_id=_TEXT, isin=_TEXT, buyer=_TEXT, seller=_TEXT,
    quantity=st.integers(1, 10**12), currency=_TEXT, cash_units=st.integers(1, 10**15),
    deadline_at_s=st.floats(0, 2e9), trade_time_s=st.floats(0, 2e9),
    arrived_s=st.floats(0, 2e9), signed=_TEXT, price=_TEXT, trade_date=_TEXT,
    settlement_date=_TEXT, principal_units=st.none() | st.integers(0, 10**15),
    accrued_units=st.none() | st.integers(0, 10**12),
    days_accrued=st.none() | st.integers(0, 366), starts_at_s=st.floats(0, 2e9),
    partial=st.booleans(), venue=_TEXT, fx_rate=st.sampled_from(["", "151.234"]),
    fx_source=st.sampled_from(["", "venue-feed"]),
    fx_time=st.sampled_from(["", "2025-11-04T01:00:00Z"]),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    _TRADES,
    st.sampled_from(["waiting", "bonds", "cash", "posting"]),
    st.sampled_from(["none", "queued", "locked", "posted", "voided"]),
    st.none() | _TEXT,
    st.booleans(),
    st.integers(0, 60),
    st.integers(0, 10**12),
)
def test_a_saga_row_is_what_asdict_makes_and_reads_back(
    t: Trade, stage: str, leg: str, reason: str | None, recycle: bool, days: int, n: int
) -> None:
    import dataclasses

    from streams.settlement import saga as dvp

    saga = dvp.Saga(
        t, stage=stage, bonds=leg, cash=leg, pending_reason=reason, recycle=recycle,  # type: ignore[arg-type]
        fail_days=days, due_s=float(n), parts=days, delivered=n, principal_paid=n,
        cash_paid=n % 3,
    )  # fmt: skip
    row = wire.saga_row(saga)
    # asdict's, less the fields added later at their defaults (what older rows lack).
    want = dataclasses.asdict(saga)
    for name, default in {"fx_rate": "", "fx_source": "", "fx_time": ""}.items():
        if want["trade"][name] == default:
            del want["trade"][name]
    if want["cash_paid"] == 0:
        del want["cash_paid"]
    assert row == orjson.dumps({"saga": want})
    assert wire.saga_from_row(orjson.loads(row)["saga"]) == saga
