"""What one funded account is, and the changelog records the ledger leaves for it.

Pure (no broker): the prefill writes these records, the in-process profile builds
the tables from them, and the tests compare them with what a real worker writes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import orjson
from aiokafka.partitioner import DefaultPartitioner
from faust.serializers import codecs

from schemas import CUSTODY, PAYMENTS, MoveBonds, MoveCash, encode
from streams.config import DEFAULT_TOKENS, Settings
from streams.ledger import journal
from streams.ledger.domain import AccountState
from streams.ledger.handler import account_step
from streams.ledger.messages import Move
from streams.topics import ACCOUNTS_TABLE, APPLIED_TABLE

#: The cash token and bond each account is funded with, and how much of each.
CASH_TOKEN: Final = "JPYC"
CASH_UNITS: Final = 10_000_000  # JPYC has 0 decimals: ten million yen
BOND_ISIN: Final = "JP1103551Q43"
BOND_FACE: Final = 1_000_000
#: The worker's tokens (KESSAI_TOKENS); the default set, so "JPYC" has 0 decimals.
TOKENS: Final[Mapping[str, int]] = {"JPYC": 0, "USDC": 6}

#: The ledger's two tables (streams/ledger/agent.py); their changelogs' config is
#: streams.topics.CHANGELOG_CONFIG, as faust declares it.
TABLES: Final = (ACCOUNTS_TABLE, APPLIED_TABLE)
#: faust's codec for a table declared with ``value_type=bytes`` (tables/base.py); any
#: other type gets "json" (orjson with OPT_NON_STR_KEYS | OPT_UTC_Z).
RAW_CODEC: Final = "raw"

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
    """The two records the bridges publish to fund *f*: ``(topic, key, value)``."""
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


def moves(f: Funding) -> tuple[Move, Move]:
    """The two commands the ledger's intake forwards for *f*'s deposits, cash first.

    Command ids as the intake builds them (``payment:<payment_id>``,
    ``custody:<movement_id>``); ``source`` only ever feeds a rejection, so it is left out.
    """
    return (
        Move(f"payment:{f.payment_id}", f.account, CASH_TOKEN, CASH_UNITS, "deposit"),
        Move(f"custody:{f.movement_id}", f.account, BOND_ISIN, BOND_FACE, "deposit"),
    )


_PARTITIONER = DefaultPartitioner()


def command_partition(account: str, partitions: int) -> int:
    """The partition of ``kessai-ledger-commands`` that *account*'s commands go to.

    The intake sends them with ``key=account.encode()`` and no partition; faust's
    transactional producers are aiokafka producers with its default partitioner (the
    Java client's murmur2), unless ``producer_partitioner`` is set (kessai does not).
    faust writes every table change to the changelog partition of the event being
    processed (``Collection._send_changelog``: ``event.message.partition``), so this is
    also the account's partition in both changelogs.
    """
    assert partitions > 0, partitions
    every = list(range(partitions))
    partition: int = _PARTITIONER(account.encode(), every, every)
    return partition


@dataclass(frozen=True, slots=True)
class TableCodec:
    """How faust serializes one table's keys and values: the table's own declaration."""

    key_serializer: str
    value_serializer: str

    def dumps_key(self, key: object) -> bytes:
        return right_sized(codecs.dumps(self.key_serializer, key))

    def dumps_value(self, value: object) -> bytes:
        return right_sized(codecs.dumps(self.value_serializer, value))

    def loads_key(self, raw: bytes) -> Any:
        return codecs.loads(self.key_serializer, raw)

    def loads_value(self, raw: bytes) -> Any:
        """What faust's memory store keeps for a changelog value.

        A raw value is the record's own bytes object, one per record as aiokafka
        hands it over: copied here, so that it is counted like one.
        """
        if self.value_serializer == RAW_CODEC:
            return right_sized(raw)
        return codecs.loads(self.value_serializer, raw)


def right_sized(data: bytes) -> bytes:
    """A copy of *data* in a block of its own size.

    orjson 3.13's ``dumps`` returns bytes objects that keep its whole output buffer:
    about 4 KiB of memory each, whatever their length (measured: 4,106 bytes of RSS
    per kept 93-byte value, 144 for a copy). A record read from Kafka is sized to
    its length; so are the records built here.
    """
    return memoryview(data).tobytes()


@functools.cache
def table_codecs(partitions: int = 4) -> dict[str, TableCodec]:
    """The ledger's tables' codecs, read from the worker's own faust app (no broker).

    So the prefill and the profile follow the tables as ``streams/ledger/agent.py``
    declares them today (the accounts table went from JSON dicts to raw bytes).
    """
    from streams.runtime.app import create_app  # builds faust apps: only when needed

    app = create_app(Settings(app_id="kessai-memory-bench", partitions=partitions))
    tables: Mapping[str, Any] = app.tables  # faust types them without their codecs
    return {
        name: TableCodec(
            key_serializer=str(tables[name].key_serializer),
            value_serializer=str(tables[name].value_serializer),
        )
        for name in TABLES
    }


@dataclass(frozen=True, slots=True)
class ChangelogRecord:
    table: str
    partition: int
    key: bytes
    value: bytes


def account_value(state: AccountState, codec: TableCodec) -> bytes:
    """The changelog value the ledger agent writes for *state*.

    A raw table holds ``AccountState.to_bytes()``; a json one gets
    ``AccountState.to_json()`` through faust's json codec. Both are the same JSON.
    """
    if codec.value_serializer == RAW_CODEC:
        return right_sized(state.to_bytes())
    return codec.dumps_value(state.to_json())


def _decimals_of(asset: str) -> int:
    # The worker the prefill stands for runs with the default tokens.
    return DEFAULT_TOKENS.get(asset, 0)


def ledger_writes(f: Funding, *, partitions: int) -> list[ChangelogRecord]:
    """The changelog records the ledger agent writes while applying *f*'s two deposits.

    In the agent's order: ``accounts[account] = state`` then ``applied[id] = True``,
    once per deposit; the states come from the ledger's own step, starting from an
    empty account (the table's default), as ``streams/ledger/agent.py`` does.
    """
    codec = table_codecs(partitions)
    partition = command_partition(f.account, partitions)
    key = codec[ACCOUNTS_TABLE].dumps_key(f.account)
    state = AccountState()
    out: list[ChangelogRecord] = []
    for move in moves(f):
        fx = account_step(state, f.account, move, already_applied=False)
        assert fx.rejection is None and not fx.sends, fx
        journal.chain(state, fx.state, fx.postings, _decimals_of)
        value = account_value(fx.state, codec[ACCOUNTS_TABLE])
        out.append(ChangelogRecord(ACCOUNTS_TABLE, partition, key, value))
        # What the next command of this account starts from: the stored value, decoded.
        state = AccountState.from_json(orjson.loads(value))
        applied = codec[APPLIED_TABLE]
        out.extend(
            ChangelogRecord(
                APPLIED_TABLE, partition, applied.dumps_key(command_id), applied.dumps_value(True)
            )
            for command_id in fx.applied
        )
    return out
