"""Signed records (streams/security/signing.py): what verifies, what is refused and why, and
the agents' per-record functions with the checks on."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import CUSTODY, ORDERS, PAYMENTS, TRADES, TradeExecuted, decode
from streams.config import Settings
from streams.ledger.intake import intake_record as ledger_intake
from streams.ledger.messages import Move
from streams.matching.handler import handle_record
from streams.matching.matcher import Matcher
from streams.security import signing
from streams.settlement import saga as saga_core
from streams.settlement.handler import status_record
from streams.settlement.intake import intake_record as trade_intake
from streams.settlement.messages import Trade
from tests.support import paths

TOKENS = {"JPYC": 0, "USDC": 6}
JGB = "JP3633400001"


def _key(signer: str) -> signing.SigningKey:
    from cryptography.hazmat.primitives import serialization

    pem = signing.new_private_key_pem()
    key = serialization.load_pem_private_key(pem, password=None)
    return signing.SigningKey(signer, key)  # type: ignore[arg-type]


VENUE_A = _key("venue-a")
VENUE_B = _key("venue-b")
BRIDGE = _key("bridge")
MATCHER = _key("kessai")
STRANGER = _key("venue-a")  # claims venue-a's id with another key


def _registry() -> signing.Registry:
    return signing.registry_of(
        orjson.loads(
            signing.registry_document(
                [
                    ("venue-a", "venue", VENUE_A.public_text(), ["alice", "bob", "desk-*"]),
                    ("venue-b", "venue", VENUE_B.public_text(), ["carol"]),
                    ("bridge", "bridge", BRIDGE.public_text(), []),
                    ("kessai", "matcher", MATCHER.public_text(), []),
                ]
            )
        )
    )


REGISTRY = _registry()


def trade(**changes: Any) -> dict[str, Any]:
    record = {
        "trade_id": "venue-a:T-1",
        "venue": "venue-a",
        "isin": JGB,
        "buyer": "alice",
        "seller": "bob",
        "quantity": 1_000_000,
        "price": "99.50",
        "currency": "JPYC",
        "accrued_interest": "0",
        "trade_time": "2026-11-26T03:00:00Z",
    }
    record.update(changes)
    return record


def payment(**changes: Any) -> dict[str, Any]:
    record = {
        "payment_id": "p-1",
        "account": "alice",
        "token": "JPYC",
        "amount": "1000",
        "kind": "deposit",
    }
    record.update(changes)
    return record


def order(**changes: Any) -> dict[str, Any]:
    record = {
        "order_id": "o-1",
        "venue": "venue-a",
        "account": "alice",
        "isin": JGB,
        "side": "buy",
        "quantity": 100_000,
        "price": "99.5",
        "currency": "JPYC",
    }
    record.update(changes)
    return record


def reason(topic: str, record: dict[str, Any]) -> str | None:
    decode(topic, orjson.dumps(record))  # every case is valid for the schema
    refused = REGISTRY.check(topic, record)
    return None if refused is None else refused[0]


# -- the signature itself ---------------------------------------------------------------


def test_signed_records_verify() -> None:
    assert reason(TRADES, signing.sign(TRADES, trade(), VENUE_A)) is None
    assert reason(ORDERS, signing.sign(ORDERS, order(), VENUE_A)) is None
    assert reason(PAYMENTS, signing.sign(PAYMENTS, payment(), BRIDGE)) is None
    custody = {
        "movement_id": "m-1",
        "account": "bob",
        "isin": JGB,
        "quantity": 50_000,
        "kind": "deposit",
    }
    assert reason(CUSTODY, signing.sign(CUSTODY, custody, BRIDGE)) is None


def test_an_unsigned_record_is_refused() -> None:
    assert reason(TRADES, trade()) == "bad_signature"


def test_an_altered_record_is_refused() -> None:
    signed = signing.sign(TRADES, trade(), VENUE_A)
    assert reason(TRADES, {**signed, "price": "0.01"}) == "bad_signature"
    assert reason(TRADES, {**signed, "buyer": "desk-1"}) == "bad_signature"


def test_a_forged_signature_is_refused() -> None:
    # Signed with a key that is not venue-a's, under venue-a's name.
    assert reason(TRADES, signing.sign(TRADES, trade(), STRANGER)) == "bad_signature"


def test_an_unknown_signer_is_refused() -> None:
    assert reason(TRADES, signing.sign(TRADES, trade(), _key("venue-z"))) == "unknown_signer"


def test_a_signature_moved_to_another_topic_does_not_verify() -> None:
    # The topic is in the signed bytes: venue-a's order cannot be replayed as ... an
    # order on another topic, nor a payment's signature as a custody movement's.
    signed = signing.sign(PAYMENTS, payment(), BRIDGE)
    assert not REGISTRY.signers["bridge"].verifies(
        signed["signature"], signing.signed_bytes(CUSTODY, signed)
    )


def test_a_signature_given_to_another_signer_does_not_verify() -> None:
    # The signer is in the signed bytes: venue-b cannot claim venue-a's signature.
    signed = signing.sign(TRADES, trade(venue="venue-b", buyer="carol", seller="carol2"), VENUE_A)
    assert reason(TRADES, {**signed, "signer": "venue-b"}) == "bad_signature"


# -- who may sign what --------------------------------------------------------------------


def test_a_venue_trades_only_for_its_own_accounts() -> None:
    assert reason(TRADES, signing.sign(TRADES, trade(buyer="carol"), VENUE_A)) == "not_authorized"
    assert reason(TRADES, signing.sign(TRADES, trade(seller="desk-9"), VENUE_A)) is None
    assert reason(ORDERS, signing.sign(ORDERS, order(account="carol"), VENUE_A)) == (
        "not_authorized"
    )


def test_a_venue_uses_only_its_own_trade_ids() -> None:
    # Else venue-a could take venue-b's next id first, and venue-b's genuine trade
    # would be refused as a repeat.
    assert reason(TRADES, signing.sign(TRADES, trade(trade_id="T-1"), VENUE_A)) == (
        "not_authorized"
    )
    taken = trade(trade_id="venue-b:T-1", venue="venue-b", buyer="carol", seller="carol-2")
    assert reason(TRADES, signing.sign(TRADES, taken, VENUE_B)) == "not_authorized"  # carol-2
    own = trade(trade_id="venue-b:T-1", venue="venue-b", buyer="carol", seller="carol")
    assert REGISTRY.check(TRADES, signing.sign(TRADES, own, VENUE_B)) is None
    squat = signing.sign(TRADES, trade(trade_id="venue-b:T-1"), VENUE_A)
    assert reason(TRADES, squat) == "not_authorized"


def test_a_venue_signs_only_as_itself() -> None:
    record = signing.sign(TRADES, trade(venue="venue-b"), VENUE_A)
    assert reason(TRADES, record) == "not_authorized"


def test_roles_sign_only_their_topics() -> None:
    assert reason(PAYMENTS, signing.sign(PAYMENTS, payment(), VENUE_A)) == "not_authorized"
    bridge_trade = signing.sign(TRADES, trade(venue="bridge"), BRIDGE)
    assert reason(TRADES, bridge_trade) == "not_authorized"
    matcher_order = signing.sign(ORDERS, order(venue="kessai"), MATCHER)
    assert reason(ORDERS, matcher_order) == "not_authorized"
    # The matcher trades for any account: it only pairs orders already checked.
    assert reason(TRADES, signing.sign(TRADES, trade(venue="kessai", buyer="x"), MATCHER)) is None


# -- the canonical bytes ------------------------------------------------------------------

_IDS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1
).filter(lambda s: not any(c.isspace() for c in s))


@given(trade_id=_IDS, buyer=_IDS)
def test_signed_bytes_are_what_any_json_library_makes(trade_id: str, buyer: str) -> None:
    record = trade(trade_id=trade_id, buyer=buyer, signer="venue-a")
    body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert signing.signed_bytes(TRADES, {**record, "signature": "x"}) == (
        b"kessai-signed-v1\ntrades\n" + body.encode()
    )


@given(field=st.sampled_from(sorted(trade())), data=st.data())
def test_any_changed_member_breaks_the_signature(field: str, data: st.DataObject) -> None:
    signed = signing.sign(TRADES, trade(), VENUE_A)
    value = data.draw(
        st.one_of(st.text(max_size=20), st.integers(-(2**53), 2**53)).filter(
            lambda v: v != signed[field]
        )
    )
    assert REGISTRY.check(TRADES, {**signed, field: value}) is not None


# -- the registry -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"id": "v", "role": "venue", "public_key": "short"}, "public_key must be"),
        ({"id": "v", "role": "king", "public_key": VENUE_A.public_text()}, "role must be"),
        ({"id": "v", "role": "venue", "public_key": VENUE_A.public_text(), "x": 1}, "unknown"),
        (
            {"id": "b", "role": "bridge", "public_key": BRIDGE.public_text(), "accounts": ["a"]},
            "only a venue lists accounts",
        ),
        (
            {"id": "v", "role": "venue", "public_key": VENUE_A.public_text(), "accounts": ["a b"]},
            "accounts must be",
        ),
        # L2: venue "a" could take venue "a:b"'s trade ids ("a:b:T-1" starts with "a:").
        ({"id": "a:b", "role": "venue", "public_key": VENUE_A.public_text()}, "id must be"),
        ({"id": "Venue", "role": "venue", "public_key": VENUE_A.public_text()}, "id must be"),
        ({"id": "v w", "role": "venue", "public_key": VENUE_A.public_text()}, "id must be"),
        ({"id": "", "role": "venue", "public_key": VENUE_A.public_text()}, "id must be"),
    ],
)
def test_a_bad_registry_entry_is_named(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(signing.RegistryError, match=message):
        signing.registry_of({"signers": [entry]}, where="reg.json")


def test_a_signer_twice_is_refused() -> None:
    entry = {"id": "v", "role": "venue", "public_key": VENUE_A.public_text()}
    with pytest.raises(signing.RegistryError, match="appears twice"):
        signing.registry_of({"signers": [entry, entry]})


def _files(tmp_path: Path, key: signing.SigningKey) -> Settings:
    registry = tmp_path / "signers.json"
    registry.write_bytes(
        signing.registry_document([("kessai", "matcher", MATCHER.public_text(), [])])
    )
    pem = tmp_path / "kessai.pem"
    from cryptography.hazmat.primitives import serialization

    signing.write_private_key(
        pem,
        key.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return Settings(verify_signatures=True, signers_file=registry, signing_key_file=pem)


def test_a_worker_with_checks_on_needs_its_files(tmp_path: Path) -> None:
    assert signing.for_worker(Settings()) == (None, None)
    with pytest.raises(signing.RegistryError, match="KESSAI_SIGNERS_FILE"):
        signing.for_worker(Settings(verify_signatures=True))
    registry, key = signing.for_worker(_files(tmp_path, MATCHER))
    assert registry is not None and key is not None and key.signer == "kessai"
    assert (tmp_path / "kessai.pem").stat().st_mode & 0o077 == 0
    with pytest.raises(signing.RegistryError, match="is not the key"):
        signing.for_worker(_files(tmp_path, _key("kessai")))


# -- the agents' functions with the checks on --------------------------------------------


def test_the_trade_intake_checks_and_keeps_the_signed_trade() -> None:
    signed = signing.sign(TRADES, trade(), VENUE_A)
    value = orjson.dumps(signed)
    got = trade_intake(b"venue-a:T-1", value, 1.0, tokens=TOKENS, deadline_s=60, signers=REGISTRY)
    assert isinstance(got, Trade)
    # The settlement records carry the venue's signed trade, which verifies on its own.
    status = saga_core.StatusChanged("venue-a:T-1", "settled", None)
    from datetime import UTC, datetime

    record = status_record(got, status, TOKENS, datetime.now(UTC))
    assert record.signed_trade is not None
    kept = orjson.loads(record.signed_trade)
    assert kept == signed and REGISTRY.check(TRADES, kept) is None
    forged = orjson.dumps({**signed, "quantity": 2_000_000})
    refused = trade_intake(
        b"venue-a:T-1", forged, 1.0, tokens=TOKENS, deadline_s=60, signers=REGISTRY
    )
    assert isinstance(refused, tuple) and refused[0] == "bad_signature"
    # Without the registry, a signed trade is taken as any other and keeps nothing.
    plain = trade_intake(b"venue-a:T-1", value, 1.0, tokens=TOKENS, deadline_s=60)
    assert isinstance(plain, Trade) and plain.signed == ""


def test_the_ledger_intake_checks_the_bridge() -> None:
    value = orjson.dumps(signing.sign(PAYMENTS, payment(), BRIDGE))
    assert isinstance(
        ledger_intake(PAYMENTS, b"alice", value, TOKENS, REGISTRY, where=(0, 0)), Move
    )
    venue_paid = orjson.dumps(signing.sign(PAYMENTS, payment(), VENUE_A))
    refused = ledger_intake(PAYMENTS, b"alice", venue_paid, TOKENS, REGISTRY, where=(0, 0))
    assert isinstance(refused, tuple) and refused[0] == "not_authorized"
    unsigned = ledger_intake(
        PAYMENTS, b"alice", orjson.dumps(payment()), TOKENS, REGISTRY, where=(0, 0)
    )
    assert isinstance(unsigned, tuple) and unsigned[0] == "bad_signature"


def test_the_matcher_checks_orders_and_signs_its_trades() -> None:
    matcher = Matcher({}, tokens=TOKENS)
    sell = signing.sign(ORDERS, order(order_id="s", side="sell", account="bob"), VENUE_A)
    buy = signing.sign(ORDERS, order(order_id="b"), VENUE_A)
    for record in (sell, buy):
        out = handle_record(
            lambda: matcher,
            JGB.encode(),
            orjson.dumps(record),
            1.7e9,
            signers=REGISTRY,
            signing_key=MATCHER,
        )
        assert out.rejection is None, out.rejection
    [made] = out.trades
    wire = orjson.loads(made.model_dump_json())
    assert wire["signer"] == "kessai" and REGISTRY.check(TRADES, wire) is None
    assert isinstance(decode(TRADES, orjson.dumps(wire)), TradeExecuted)
    stolen = signing.sign(ORDERS, order(order_id="c", account="carol"), VENUE_A)
    out = handle_record(
        lambda: matcher, JGB.encode(), orjson.dumps(stolen), 1.7e9, signers=REGISTRY
    )
    assert out.rejection is not None and out.rejection[0] == "not_authorized"
    # No order event: it would speak for venue-b's order book entry on a forger's word.
    assert out.order_events == []


# -- kessai publish and the worker's warnings --------------------------------------------


def test_publish_signs_every_line_with_the_signers_key() -> None:
    from streams.kafka.publish import validate_lines

    lines = [orjson.dumps(trade(trade_id=f"venue-a:T-{n}")) + b"\n" for n in range(3)]
    valid, errors = validate_lines(TRADES, lines, signer=VENUE_A)
    assert errors == []
    for key, value in valid:
        record = orjson.loads(value)
        assert key == record["trade_id"].encode()
        assert REGISTRY.check(TRADES, record) is None


def test_publish_sends_a_signed_line_byte_for_byte() -> None:
    from streams.kafka.publish import validate_lines

    # A time written +00:00 and no accrued_interest: the canonical form would differ
    # from what the venue signed, so the line must travel as it is.
    record = trade(trade_time="2026-11-26T03:00:00+00:00")
    del record["accrued_interest"]
    line = orjson.dumps(signing.sign(TRADES, record, VENUE_A))
    [(key, value)], errors = validate_lines(TRADES, [line + b"\n"])
    assert errors == [] and value == line and key == b"venue-a:T-1"
    assert REGISTRY.check(TRADES, orjson.loads(value)) is None


def test_the_worker_says_loudly_what_it_leaves_open() -> None:
    from streams.runtime.main import security_warnings

    warnings = security_warnings(Settings())
    assert len(warnings) == 2
    assert warnings[0].startswith("DEVELOPMENT PROFILE") and "kafka up --secure" in warnings[0]
    assert warnings[1].startswith("SIGNATURES NOT CHECKED")
    secure = Settings(kafka_security="sasl_ssl", verify_signatures=True)
    assert security_warnings(secure) == []


def test_the_signers_command_builds_a_registry(tmp_path: Path) -> None:
    import io

    from streams.security import signers

    registry, out = tmp_path / "signers.json", io.StringIO()
    signers.add(
        registry,
        "venue-a",
        role="venue",
        accounts=["alice", "desk-*"],
        public_key=None,
        key_out=tmp_path / "a.pem",
        out=out,
    )
    signers.add(
        registry,
        "bridge",
        role="bridge",
        accounts=[],
        public_key=BRIDGE.public_text(),
        key_out=None,
        out=out,
    )
    loaded = signing.load_registry(registry)
    key = signing.SigningKey.load("venue-a", tmp_path / "a.pem")
    assert (
        loaded.check(TRADES, signing.sign(TRADES, trade(buyer="desk-3", seller="alice"), key))
        is None
    )
    assert loaded.check(PAYMENTS, signing.sign(PAYMENTS, payment(), BRIDGE)) is None
    with pytest.raises(signing.RegistryError, match="exists"):
        signers.add(
            registry,
            "bridge",
            role="bridge",
            accounts=[],
            public_key=None,
            key_out=tmp_path / "b.pem",
            out=out,
        )
    signers.remove(registry, "venue-a", out=out)
    assert set(signing.load_registry(registry).signers) == {"bridge"}


def test_the_worked_example_of_docs_security_md() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    doc = (paths.DOCS / "security.md").read_text()
    key = signing.SigningKey("venue-a", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    record = trade(
        trade_id="venue-a:T-1",
        isin="JP1103551Q43",
        quantity=100_000,
        price="99.5",
        accrued_interest="12",
        trade_time="2026-11-25T00:00:00Z",
    )
    signed = signing.sign(TRADES, record, key)
    body = signing.signed_bytes(TRADES, signed).decode()
    assert f"```\n{body}\n```" in doc
    assert f"`{key.public_text()}`" in doc
    assert f"`{signed['signature']}`" in doc
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    assert orjson.dumps(unsigned).decode() in doc


def test_a_member_given_twice_is_refused() -> None:
    # JSON readers differ on which copy wins: kessai would apply the payment to bob, a
    # reader keeping the first copy would see mallory, under one valid signature.
    signed = orjson.dumps(signing.sign(PAYMENTS, payment(account="bob"), BRIDGE))
    doubled = signed.replace(b"{", b'{"account":"mallory",', 1)
    refused = ledger_intake(PAYMENTS, b"bob", doubled, TOKENS, REGISTRY, where=(0, 0))
    assert refused == (
        "malformed",
        "member 'account' appears twice; a signed record's members are unique",
    )
    assert isinstance(ledger_intake(PAYMENTS, b"bob", signed, TOKENS, REGISTRY, where=(0, 0)), Move)
    trade_doubled = orjson.dumps(signing.sign(TRADES, trade(), VENUE_A)).replace(
        b"{", b'{"price":"0.01",', 1
    )
    got = trade_intake(
        b"venue-a:T-1", trade_doubled, 1.0, tokens=TOKENS, deadline_s=60, signers=REGISTRY
    )
    assert isinstance(got, tuple) and got[0] == "malformed"


def test_the_id_kessai_is_the_matchers_alone(tmp_path: Path) -> None:
    with pytest.raises(signing.RegistryError, match="the matcher's"):
        signing.registry_of(
            {"signers": [{"id": "kessai", "role": "venue", "public_key": VENUE_A.public_text()}]}
        )
    with pytest.raises(signing.RegistryError, match="the matcher's"):
        signing.registry_of(
            {"signers": [{"id": "m-1", "role": "matcher", "public_key": MATCHER.public_text()}]}
        )
    # A worker signing as anything but the matcher's venue would have every trade its
    # matcher makes refused (venue "kessai" != signer): it does not start.
    settings = dataclasses.replace(_files(tmp_path, MATCHER), signer_id="matcher-1")
    with pytest.raises(signing.RegistryError, match="signs as 'kessai'"):
        signing.for_worker(settings)


# -- kessai verify-settlements ------------------------------------------------------------


def _settled(signed: dict[str, Any]) -> dict[str, Any]:
    """The settlements record the workers write for ``signed`` (a venue's trade)."""
    from datetime import UTC, datetime

    value = orjson.dumps(signed)
    got = trade_intake(
        signed["trade_id"].encode(), value, 1.0, tokens=TOKENS, deadline_s=60, signers=REGISTRY
    )
    assert isinstance(got, Trade), got
    status = saga_core.StatusChanged(got.trade_id, "settled", None)
    record = status_record(got, status, TOKENS, datetime.now(UTC))
    document: dict[str, Any] = orjson.loads(record.model_dump_json())
    return document


def test_a_settlement_traces_back_to_its_venue() -> None:
    from streams.audit.evidence import check_settlement

    settlement = _settled(signing.sign(TRADES, trade(accrued_interest="12.5"), VENUE_A))
    assert check_settlement(settlement, REGISTRY, TOKENS) is None
    assert check_settlement({**settlement, "signed_trade": None}, REGISTRY, TOKENS) == "unsigned"
    for name, value, found in (
        ("quantity", 2_000_000, "quantity is 2000000 here"),
        ("buyer", "desk-1", "buyer is 'desk-1' here"),
        ("cash_amount", "995013", "cash_amount 995013 is not what the signed trade makes"),
    ):
        problem = check_settlement({**settlement, name: value}, REGISTRY, TOKENS)
        assert problem is not None and problem.startswith(found), problem
    # The venue's signed trade altered inside the settlement: the signature breaks.
    altered = orjson.loads(settlement["signed_trade"]) | {"price": "9.95"}
    problem = check_settlement(
        {**settlement, "signed_trade": orjson.dumps(altered).decode()}, REGISTRY, TOKENS
    )
    assert problem is not None and problem.startswith("signed_trade refused: bad_signature")
    for junk in ("{", "[1]", '{"trade_id": 7}'):
        problem = check_settlement({**settlement, "signed_trade": junk}, REGISTRY, TOKENS)
        assert problem is not None and problem.startswith("signed_trade"), (junk, problem)


def test_verify_settlements_survives_crafted_numbers_and_names_a_second_terminal_status() -> None:
    """L7: a cash_amount past Decimal's exponent range raised Overflow out of the
    command, and two terminal statuses of one trade passed unnoticed."""
    from aiokafka.structs import ConsumerRecord

    from streams.audit.evidence import check_records

    settlement = _settled(signing.sign(TRADES, trade(), VENUE_A))

    def record(offset: int, value: dict[str, Any] | None) -> ConsumerRecord[bytes, bytes]:
        raw = None if value is None else orjson.dumps(value)
        return ConsumerRecord("settlements", 0, offset, 0, 0, b"k", raw, None, 0, 0, ())

    records = [
        record(0, settlement),
        record(1, {**settlement, "status": "pending", "cash_amount": "1e999999999"}),
        record(2, None),  # a tombstone
        record(3, settlement),  # the trade's second "settled"
    ]
    report = check_records(records, REGISTRY, TOKENS)
    problems = {offset: problem for _, offset, _, problem in report.problems}
    assert problems[1].startswith("not a settlement record"), problems
    assert problems[2] == "not a JSON object"
    assert problems[3] == "a second terminal status", problems
