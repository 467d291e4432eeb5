"""What one funded account is, and the changelog rows the engine writes for it.

Pure (no broker): the prefill writes these rows, the in-process profile restores an
engine from them, and the tests compare them with what a real worker writes. They
are not written out by hand: :class:`Funder` runs the engine's own
:class:`~streams.engine.core.Batch` over the deposits, so they are what the pipeline
writes by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import orjson

from schemas import CUSTODY, LEDGER_EVENTS, PAYMENTS, TRADES, MoveBonds, MoveCash, encode
from streams.config import Settings
from streams.engine.core import Batch, Engine, Rules
from streams.engine.service import BATCH_RECORDS_MAX, rules_of
from streams.runtime.batches import partition_of
from streams.topics import ENGINE_ACCOUNTS, ENGINE_APPLIED, ENGINE_INFLOW, ENGINE_TRADES

#: The cash token and bond each account is funded with, and how much of each.
CASH_TOKEN: Final = "JPYC"
CASH_UNITS: Final = 10_000_000  # JPYC has 0 decimals: ten million yen
BOND_ISIN: Final = "JP1103551Q43"
BOND_FACE: Final = 1_000_000
#: The worker's tokens (KESSAI_TOKENS); the default set, so "JPYC" has 0 decimals.
TOKENS: Final[Mapping[str, int]] = {"JPYC": 0, "USDC": 6}

#: The engine's changelogs a deposit writes to (streams/topics.py; one partition each).
CHANGELOGS: Final = (ENGINE_ACCOUNTS, ENGINE_APPLIED, ENGINE_INFLOW)
#: Accounts funded per batch: two deposits each, as many records as the engine's
#: largest batch holds.
FUND_BATCH_ACCOUNTS: Final = BATCH_RECORDS_MAX // 2
#: The funding batches' clock. No row of a deposit depends on it (the journal's hash
#: chain has no time in it); fixed, so that the rows are the same at every run.
FUND_CLOCK_S: Final = 1_795_564_800.0  # 2026-11-25T00:00:00Z

ACCOUNTS_MAX: Final = 10_000_000


@dataclass(frozen=True, slots=True)
class Funding:
    """One account and the ids of its two opening deposits."""

    account: str
    payment_id: str
    movement_id: str


def funding(i: int) -> Funding:
    """Account number *i*: ``acct-00000042``, paid by ``cash-00000042`` and ``bond-00000042``."""
    assert 0 <= i < ACCOUNTS_MAX, i
    return Funding(f"acct-{i:08d}", f"cash-{i:08d}", f"bond-{i:08d}")


def deposits(f: Funding) -> list[tuple[str, bytes, bytes]]:
    """The two records the bridges publish to fund *f*, cash first: ``(topic, key, value)``."""
    cash = MoveCash(
        payment_id=f.payment_id,
        account=f.account,
        token=CASH_TOKEN,
        amount=Decimal(CASH_UNITS),  # 0 decimals: units are yen
        kind="deposit",
    )
    bonds = MoveBonds(
        movement_id=f.movement_id,
        account=f.account,
        isin=BOND_ISIN,
        quantity=BOND_FACE,
        kind="deposit",
    )
    key = f.account.encode()
    return [(PAYMENTS, key, encode(cash)), (CUSTODY, key, encode(bonds))]


def command_ids(f: Funding) -> tuple[str, str]:
    """The ids the engine records in ``engine-applied`` for *f*'s deposits, as the
    ledger's intake builds them (``payment:<payment_id>``, ``custody:<movement_id>``)."""
    return f"payment:{f.payment_id}", f"custody:{f.movement_id}"


@dataclass(frozen=True, slots=True)
class ChangelogRow:
    """One row of an engine changelog (partition 0): its name in
    :data:`streams.topics.ENGINE_CHANGELOGS`, its key and its value."""

    table: str
    key: bytes
    value: bytes


def rules() -> Rules:
    """The engine's rules as a worker with the bench's tokens has them."""
    # Random ISINs, not in a security master (issue 20): measured with it off.
    return rules_of(Settings(tokens=dict(TOKENS), security_master="off"))


class Funder:
    """Applies funding deposits with the engine's own :class:`Batch`, a batch at a time.

    Each account is funded once and no batch reads another's account or ids, so the
    engine forgets them after each batch (the prefill's memory stays flat); it keeps
    ``inflow``, whose rows are running totals.
    """

    def __init__(self, *, partitions: int) -> None:
        self.engine = Engine()
        self.rules = rules()
        self.partitions = partitions
        #: The next offset of each input partition, as a broker would number them.
        self.offsets: dict[tuple[str, int], int] = {}

    def rows(self, fundings: Iterable[Funding]) -> list[ChangelogRow]:
        """The changelog rows one batch writes applying *fundings*' deposits, in order."""
        batch = Batch(self.engine, self.rules, FUND_CLOCK_S)
        for f in fundings:
            for topic, key, value in deposits(f):
                partition = partition_of(key, self.partitions)
                offset = self.offsets.get((topic, partition), 0)
                self.offsets[topic, partition] = offset + 1
                batch.record(topic, partition, offset, key, value, FUND_CLOCK_S)
        out = batch.finish()
        assert not out.rejected and not out.statuses, out.rejected
        assert all(topic == LEDGER_EVENTS for topic, _, _ in out.records)
        self.engine.accounts.clear()
        self.engine.applied.clear()
        rows = []
        for table, row_key, row in out.changelog:
            assert table in CHANGELOGS and row is not None, (table, row_key)
            rows.append(ChangelogRow(table, row_key, row))
        return rows


def engine_rows(
    fundings: Iterable[Funding], *, partitions: int = 4, batch_accounts: int = FUND_BATCH_ACCOUNTS
) -> list[ChangelogRow]:
    """Every changelog row of funding *fundings*, :data:`FUND_BATCH_ACCOUNTS` per batch."""
    funder = Funder(partitions=partitions)
    return [r for chunk in chunks(fundings, batch_accounts) for r in funder.rows(chunk)]


#: A finished trade's id (:func:`finished_rows`): ``done-00000042``, and the template's.
FINISHED_ID: Final = "done-{:08d}"
_TEMPLATE_ID: Final = "done-XXXXXXXX"


def finished_template() -> tuple[bytes, float]:
    """The ``engine-trades`` row of a settled trade, as the engine's own :class:`Batch`
    writes it (two funded accounts, one trade of 100,000 face at par), and its clock.
    Its trade id is :data:`_TEMPLATE_ID`; its times are the clock (trade, arrival) and
    the clock plus the deadline (returned: its distance from the clock)."""
    engine, rules_ = Engine(), rules()
    batch = Batch(engine, rules_, FUND_CLOCK_S)
    seller, buyer = funding(0), funding(1)
    value = {
        "trade_id": _TEMPLATE_ID, "venue": "bench", "isin": BOND_ISIN,
        "buyer": buyer.account, "seller": seller.account, "quantity": 100_000,
        "price": "100", "currency": CASH_TOKEN, "accrued_interest": "0",
        "trade_time": "2026-11-25T00:00:00Z",
    }  # fmt: skip
    inputs = [*deposits(seller), *deposits(buyer)]
    inputs.append((TRADES, _TEMPLATE_ID.encode(), orjson.dumps(value)))
    for offset, (topic, key, record) in enumerate(inputs):
        batch.record(topic, 0, offset, key, record, FUND_CLOCK_S)
    out = batch.finish()
    (row,) = [v for t, _, v in out.changelog if t == ENGINE_TRADES and v is not None]
    assert b'"stage":"settled"' in row, row
    # The deadline is the rules' (atomic) or the settlement date's cut-off (recycle).
    return row, orjson.loads(row)["trade"]["deadline_at_s"] - FUND_CLOCK_S


def finished_rows(count: int, *, newest_s: float, span_s: float) -> Iterator[ChangelogRow]:
    """*count* rows of settled trades for ``engine-trades`` (:func:`finished_template`
    with its id and times replaced), trade times spread evenly over the *span_s*
    seconds before *newest_s*, oldest first: what the engine holds of the trades it
    finished inside its window (ADR 0033)."""
    template, deadline_s = finished_template()
    clock = repr(FUND_CLOCK_S).encode()
    deadline = repr(FUND_CLOCK_S + deadline_s).encode()
    assert template.count(clock) == 2 and template.count(deadline) == 1, template
    head, rest = template.split(_TEMPLATE_ID.encode())
    rest = rest.replace(deadline, b"{deadline}").replace(clock, b"{clock}")
    for i in range(count):
        at = float(int(newest_s - span_s * (count - i) / count))  # whole seconds, as signed
        key = FINISHED_ID.format(i).encode()
        tail = rest.replace(b"{deadline}", repr(at + deadline_s).encode())
        tail = tail.replace(b"{clock}", repr(at).encode())
        yield ChangelogRow(ENGINE_TRADES, key, head + key + tail)


def chunks(items: Iterable[Funding], size: int) -> Iterator[list[Funding]]:
    """*items* in lists of *size* (the last one shorter), in order."""
    chunk: list[Funding] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def right_sized(data: bytes) -> bytes:
    """A copy of *data* in a block of its own size, as aiokafka hands over a record's
    value: one bytes object per record read (the profile restores from copies)."""
    return memoryview(data).tobytes()
