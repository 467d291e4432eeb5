"""Signed records (streams/security/signing.py): what verifies, what is refused and why, and
the agents' per-record functions with the checks on."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    CANCELLATIONS,
    CUSTODY,
    INSTRUMENTS,
    ORDERS,
    PAYMENTS,
    RESERVES,
    TRADES,
    SettlementStatusChanged,
    decode,
)
from streams.config import Settings
from streams.engine import wire
from streams.ledger.intake import intake_record as ledger_intake
from streams.ledger.messages import Move
from streams.matching.handler import handle_record
from streams.matching.matcher import Matcher
from streams.security import signing
from streams.settlement.messages import Trade
from tests.support import paths
from tests.support.intake import trade_intake

TOKENS = {"JPYC": 0, "USDC": 6}
JGB = "JP3633400001"
DEPLOYMENT = "kessai-test"
#: The broker's time of every record here, and what sign() counts validity from.
NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
NOW_S = NOW.timestamp()


def _key(signer: str, deployment: str = DEPLOYMENT) -> signing.SigningKey:
    return signing.SigningKey.generate(signer, deployment)


ADMIN = Ed25519PrivateKey.generate()


VENUE_A = _key("venue-a")
VENUE_B = _key("venue-b")
BRIDGE = _key("bridge")
MATCHER = _key("kessai")
REGISTRAR = _key("registrar")
STRANGER = _key("venue-a")  # claims venue-a's id with another key


ENTRIES = [
    signing.entry("venue-a", "venue", VENUE_A.public_text(), ["alice", "bob", "desk-*"]),
    signing.entry("venue-b", "venue", VENUE_B.public_text(), ["carol"]),
    signing.entry("bridge", "bridge", BRIDGE.public_text()),
    signing.entry("kessai", "matcher", MATCHER.public_text()),
    signing.entry("registrar", "instruments", REGISTRAR.public_text()),
]


def _registry(entries: list[dict[str, Any]] = ENTRIES, version: int = 1) -> signing.Registry:
    document = signing.registry_document(
        entries, deployment=DEPLOYMENT, admin=ADMIN, version=version
    )
    return signing.registry_of(orjson.loads(document), ADMIN.public_key())


def sign(topic: str, record: dict[str, Any], key: signing.SigningKey) -> dict[str, Any]:
    """Signed as at NOW: valid for an hour from then."""
    return signing.sign(topic, record, key, now=NOW)


def key_of(topic: str, record: dict[str, Any]) -> bytes:
    field = {TRADES: "trade_id", ORDERS: "isin", INSTRUMENTS: "isin", RESERVES: "isin",
             CANCELLATIONS: "trade_id"}  # fmt: skip
    return str(record[field.get(topic, "account")]).encode()


def check(
    topic: str, record: dict[str, Any], at: datetime | None = NOW, registry: Any = None
) -> tuple[str, str] | None:
    result: tuple[str, str] | None = (registry or REGISTRY).check(
        topic, key_of(topic, record), record, at
    )
    return result


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
    refused = check(topic, record)
    return None if refused is None else refused[0]


# -- the signature itself ---------------------------------------------------------------


def test_signed_records_verify() -> None:
    assert reason(TRADES, sign(TRADES, trade(), VENUE_A)) is None
    assert reason(ORDERS, sign(ORDERS, order(), VENUE_A)) is None
    assert reason(PAYMENTS, sign(PAYMENTS, payment(), BRIDGE)) is None
    custody = {
        "movement_id": "m-1",
        "account": "bob",
        "isin": JGB,
        "quantity": 50_000,
        "kind": "deposit",
    }
    assert reason(CUSTODY, sign(CUSTODY, custody, BRIDGE)) is None


def test_an_unsigned_record_is_refused() -> None:
    assert reason(TRADES, trade()) == "bad_signature"


def test_an_altered_record_is_refused() -> None:
    signed = sign(TRADES, trade(), VENUE_A)
    assert reason(TRADES, {**signed, "price": "0.01"}) == "bad_signature"
    assert reason(TRADES, {**signed, "buyer": "desk-1"}) == "bad_signature"


def test_a_forged_signature_is_refused() -> None:
    # Signed with a key that is not venue-a's, under venue-a's name.
    assert reason(TRADES, sign(TRADES, trade(), STRANGER)) == "bad_signature"


def test_an_unknown_signer_is_refused() -> None:
    assert reason(TRADES, sign(TRADES, trade(), _key("venue-z"))) == "unknown_signer"


def test_a_signature_moved_to_another_topic_does_not_verify() -> None:
    # The topic is in the signed bytes: venue-a's order cannot be replayed as ... an
    # order on another topic, nor a payment's signature as a custody movement's.
    signed = sign(PAYMENTS, payment(), BRIDGE)
    [bridge] = REGISTRY.entries["bridge"]
    assert bridge.verifies(
        signed["signature"], signing.signed_bytes(DEPLOYMENT, PAYMENTS, b"alice", signed)
    )
    assert not bridge.verifies(
        signed["signature"], signing.signed_bytes(DEPLOYMENT, CUSTODY, b"alice", signed)
    )


def test_a_signature_given_to_another_signer_does_not_verify() -> None:
    # The signer is in the signed bytes: venue-b cannot claim venue-a's signature.
    signed = sign(TRADES, trade(venue="venue-b", buyer="carol", seller="carol2"), VENUE_A)
    assert reason(TRADES, {**signed, "signer": "venue-b"}) == "bad_signature"


# -- who may sign what --------------------------------------------------------------------


def test_a_venue_trades_only_for_its_own_accounts() -> None:
    assert reason(TRADES, sign(TRADES, trade(buyer="carol"), VENUE_A)) == "not_authorized"
    assert reason(TRADES, sign(TRADES, trade(seller="desk-9"), VENUE_A)) is None
    assert reason(ORDERS, sign(ORDERS, order(account="carol"), VENUE_A)) == ("not_authorized")


BOND_RECORD = {"isin": "JP1103771Q62", "kind": "fixed", "series": "10-year JGB #377",
               "coupon_rate": "0.9", "coupon_dates": ["03-20", "09-20"],
               "issue_date": "2025-04-01", "maturity_date": "2035-03-20",
               "face_unit": 50_000, "price_tick": "0.001"}  # fmt: skip
RESERVE_RECORD = {"attestation_id": "att-1", "isin": "JP1103771Q62", "face": 100_000_000,
                  "as_of": "2026-11-26T00:00:00Z"}  # fmt: skip


def test_only_the_registrar_signs_the_security_master_and_only_the_bridge_reserves() -> None:
    assert check(INSTRUMENTS, sign(INSTRUMENTS, BOND_RECORD, REGISTRAR)) is None
    for key in (VENUE_A, BRIDGE):
        assert reason(INSTRUMENTS, sign(INSTRUMENTS, BOND_RECORD, key)) == "not_authorized"
    assert check(RESERVES, sign(RESERVES, RESERVE_RECORD, BRIDGE)) is None
    for key in (VENUE_A, REGISTRAR):
        assert reason(RESERVES, sign(RESERVES, RESERVE_RECORD, key)) == "not_authorized"


def test_a_venue_signs_the_cancellation_of_its_own_trades_only() -> None:
    mine = {"trade_id": "venue-a:T-1", "venue": "venue-a"}
    assert check(CANCELLATIONS, sign(CANCELLATIONS, mine, VENUE_A)) is None
    # venue-b signing venue-a's cancellation, or a bridge any: refused. (That the
    # trade is venue-a's is the engine's check: tests/unit/engine/test_fails.py.)
    for key in (VENUE_B, BRIDGE, REGISTRAR):
        assert reason(CANCELLATIONS, sign(CANCELLATIONS, mine, key)) == "not_authorized"
    altered = {**sign(CANCELLATIONS, mine, VENUE_A), "trade_id": "venue-a:T-2"}
    assert reason(CANCELLATIONS, altered) == "bad_signature"


def test_a_venue_uses_only_its_own_trade_ids() -> None:
    # Else venue-a could take venue-b's next id first, and venue-b's genuine trade
    # would be refused as a repeat.
    assert reason(TRADES, sign(TRADES, trade(trade_id="T-1"), VENUE_A)) == ("not_authorized")
    taken = trade(trade_id="venue-b:T-1", venue="venue-b", buyer="carol", seller="carol-2")
    assert reason(TRADES, sign(TRADES, taken, VENUE_B)) == "not_authorized"  # carol-2
    own = trade(trade_id="venue-b:T-1", venue="venue-b", buyer="carol", seller="carol")
    assert check(TRADES, sign(TRADES, own, VENUE_B)) is None
    squat = sign(TRADES, trade(trade_id="venue-b:T-1"), VENUE_A)
    assert reason(TRADES, squat) == "not_authorized"


def test_a_venue_signs_only_as_itself() -> None:
    record = sign(TRADES, trade(venue="venue-b"), VENUE_A)
    assert reason(TRADES, record) == "not_authorized"


def test_roles_sign_only_their_topics() -> None:
    assert reason(PAYMENTS, sign(PAYMENTS, payment(), VENUE_A)) == "not_authorized"
    bridge_trade = sign(TRADES, trade(venue="bridge"), BRIDGE)
    assert reason(TRADES, bridge_trade) == "not_authorized"
    matcher_order = sign(ORDERS, order(venue="kessai"), MATCHER)
    assert reason(ORDERS, matcher_order) == "not_authorized"
    # The engine closes a matured bond's books in its batch (ADR 0035): no record may,
    # and the worker's key signs nothing any more, not even a trade of venue kessai.
    close = order(venue="kessai", account="kessai", action="close")
    assert reason(ORDERS, sign(ORDERS, close, MATCHER)) == "not_authorized"
    assert reason(ORDERS, sign(ORDERS, close, VENUE_A)) == "not_authorized"
    made = sign(TRADES, trade(venue="kessai", buyer="x"), MATCHER)
    assert reason(TRADES, made) == "not_authorized"


# -- the canonical bytes ------------------------------------------------------------------

_IDS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1
).filter(lambda s: not any(c.isspace() for c in s))


@given(trade_id=_IDS, buyer=_IDS)
def test_signed_bytes_are_what_any_json_library_makes(trade_id: str, buyer: str) -> None:
    record = trade(trade_id=trade_id, buyer=buyer, signer="venue-a")
    body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    key = trade_id.encode()
    assert signing.signed_bytes(DEPLOYMENT, TRADES, key, {**record, "signature": "x"}) == (
        b"kessai-signed-v2\nkessai-test\ntrades\n" + key.hex().encode() + b"\n" + body.encode()
    )


@given(field=st.sampled_from(sorted(trade())), data=st.data())
def test_any_changed_member_breaks_the_signature(field: str, data: st.DataObject) -> None:
    signed = sign(TRADES, trade(), VENUE_A)
    value = data.draw(
        st.one_of(st.text(max_size=20), st.integers(-(2**53), 2**53)).filter(
            lambda v: v != signed[field]
        )
    )
    assert check(TRADES, {**signed, field: value}) is not None


# -- the registry -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"id": "v", "role": "venue", "public_key": "short"}, "a public key is 32 bytes"),
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
        signing.registry_of(_doc([entry]), None, where="reg.json")


def _doc(entries: list[Any]) -> dict[str, Any]:
    return {"deployment": DEPLOYMENT, "version": 1, "signers": entries}


def test_a_signer_twice_at_once_is_refused() -> None:
    entry = {"id": "v", "role": "venue", "public_key": VENUE_A.public_text()}
    with pytest.raises(signing.RegistryError, match="two of its keys are valid at the same time"):
        signing.registry_of(_doc([entry, entry]), None)


def _files(tmp_path: Path, key: signing.SigningKey) -> Settings:
    registry = tmp_path / "signers.json"
    registry.write_bytes(
        signing.registry_document(
            [signing.entry("kessai", "matcher", MATCHER.public_text())],
            deployment=DEPLOYMENT,
            admin=ADMIN,
        )
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
    return Settings(
        verify_signatures=True,
        signers_file=registry,
        signing_key_file=pem,
        registry_key=signing.public_key_text(ADMIN.public_key()),
    )


def test_a_worker_with_checks_on_needs_its_files(tmp_path: Path) -> None:
    assert signing.for_worker(Settings()) == (None, None)
    with pytest.raises(signing.RegistryError, match="KESSAI_SIGNERS_FILE"):
        signing.for_worker(Settings(verify_signatures=True))
    registry, key = signing.for_worker(_files(tmp_path, MATCHER))
    assert registry is not None and key is not None and key.signer == "kessai"
    assert (tmp_path / "kessai.pem").stat().st_mode & 0o077 == 0
    with pytest.raises(signing.RegistryError, match="KESSAI_REGISTRY_KEY"):
        signing.for_worker(dataclasses.replace(_files(tmp_path, MATCHER), registry_key=None))
    with pytest.raises(signing.RegistryError, match="not signed by the admin key"):
        other = signing.public_key_text(Ed25519PrivateKey.generate().public_key())
        signing.for_worker(dataclasses.replace(_files(tmp_path, MATCHER), registry_key=other))
    with pytest.raises(signing.RegistryError, match="is not a key"):
        signing.for_worker(_files(tmp_path, _key("kessai")))


# -- the agents' functions with the checks on --------------------------------------------


def test_the_trade_intake_checks_and_keeps_the_signed_trade() -> None:
    signed = sign(TRADES, trade(), VENUE_A)
    value = orjson.dumps(signed)
    got = trade_intake(b"venue-a:T-1", value, NOW_S, tokens=TOKENS, deadline_s=60, signers=REGISTRY)
    assert isinstance(got, Trade)
    # The settlement records carry the venue's signed trade, which verifies on its own.
    record = _status_record(got)
    assert record.signed_trade is not None
    kept = orjson.loads(record.signed_trade)
    assert kept == signed and check(TRADES, kept) is None
    forged = orjson.dumps({**signed, "quantity": 2_000_000})
    refused = trade_intake(
        b"venue-a:T-1", forged, NOW_S, tokens=TOKENS, deadline_s=60, signers=REGISTRY
    )
    assert isinstance(refused, tuple) and refused[0] == "bad_signature"
    # Without the registry, a signed trade is taken as any other and keeps nothing.
    plain = trade_intake(b"venue-a:T-1", value, NOW_S, tokens=TOKENS, deadline_s=60)
    assert isinstance(plain, Trade) and plain.signed == ""


def test_the_ledger_intake_checks_the_bridge() -> None:
    value = orjson.dumps(sign(PAYMENTS, payment(), BRIDGE))
    assert isinstance(
        ledger_intake(PAYMENTS, b"alice", value, TOKENS, REGISTRY, where=(0, 0), arrived_s=NOW_S),
        Move,
    )
    venue_paid = orjson.dumps(sign(PAYMENTS, payment(), VENUE_A))
    refused = ledger_intake(
        PAYMENTS, b"alice", venue_paid, TOKENS, REGISTRY, where=(0, 0), arrived_s=NOW_S
    )
    assert isinstance(refused, tuple) and refused[0] == "not_authorized"
    unsigned = ledger_intake(
        PAYMENTS, b"alice", orjson.dumps(payment()), TOKENS, REGISTRY, where=(0, 0)
    )
    assert isinstance(unsigned, tuple) and unsigned[0] == "bad_signature"


def test_the_matcher_checks_each_orders_signature() -> None:
    matcher = Matcher({}, tokens=TOKENS)
    sell = sign(ORDERS, order(order_id="s", side="sell", account="bob"), VENUE_A)
    buy = sign(ORDERS, order(order_id="b"), VENUE_A)
    for record in (sell, buy):
        out = handle_record(
            lambda: matcher, JGB.encode(), orjson.dumps(record), NOW_S, signers=REGISTRY
        )
        assert out.rejection is None, out.rejection
    assert len(out.trades) == 1
    stolen = sign(ORDERS, order(order_id="c", account="carol"), VENUE_A)
    out = handle_record(
        lambda: matcher, JGB.encode(), orjson.dumps(stolen), NOW_S, signers=REGISTRY
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
        assert check(TRADES, record, at=datetime.now(UTC)) is None


def test_publish_sends_a_signed_line_byte_for_byte() -> None:
    from streams.kafka.publish import validate_lines

    # A time written +00:00 and no accrued_interest: the canonical form would differ
    # from what the venue signed, so the line must travel as it is.
    record = trade(trade_time="2026-11-26T03:00:00+00:00")
    del record["accrued_interest"]
    line = orjson.dumps(sign(TRADES, record, VENUE_A))
    [(key, value)], errors = validate_lines(TRADES, [line + b"\n"])
    assert errors == [] and value == line and key == b"venue-a:T-1"
    assert check(TRADES, orjson.loads(value)) is None


def test_the_worker_says_loudly_what_it_leaves_open() -> None:
    from streams.runtime.main import security_warnings

    warnings = security_warnings(Settings())
    assert len(warnings) == 2
    assert warnings[0].startswith("DEVELOPMENT PROFILE") and "kafka up --secure" in warnings[0]
    assert warnings[1].startswith("SIGNATURES NOT CHECKED")
    secure = Settings(kafka_security="sasl_ssl", verify_signatures=True)
    assert security_warnings(secure) == []


def test_the_signers_command_builds_signs_rotates_and_revokes(tmp_path: Path) -> None:
    from streams.security import signers

    registry, out = tmp_path / "signers.json", io.StringIO()
    signers.init(registry, DEPLOYMENT, ADMIN, out=out)
    signers.add(
        registry,
        "venue-a",
        role="venue",
        accounts=["alice", "desk-*"],
        public_key=None,
        key_out=tmp_path / "a.pem",
        admin=ADMIN,
        out=out,
    )
    signers.add(
        registry,
        "bridge",
        role="bridge",
        accounts=[],
        public_key=BRIDGE.public_text(),
        key_out=None,
        admin=ADMIN,
        out=out,
    )
    loaded = signing.load_registry(registry, ADMIN.public_key())
    assert loaded.version == 3 and loaded.deployment == DEPLOYMENT
    key = signing.SigningKey.load("venue-a", tmp_path / "a.pem", DEPLOYMENT)
    signed = sign(TRADES, trade(buyer="desk-3", seller="alice"), key)
    assert check(TRADES, signed, registry=loaded) is None
    assert check(PAYMENTS, sign(PAYMENTS, payment(), BRIDGE), registry=loaded) is None
    with pytest.raises(signing.RegistryError, match="exists"):
        signers.add(
            registry,
            "bridge",
            role="bridge",
            accounts=[],
            public_key=None,
            key_out=tmp_path / "b.pem",
            admin=ADMIN,
            out=out,
        )
    # Rotation: the old key verifies what it signed before, the new one from then on.
    signers.rotate(registry, "venue-a", public_key=None, key_out=tmp_path / "a2.pem",
                   admin=ADMIN, out=out, at=NOW + timedelta(minutes=1))  # fmt: skip
    rotated = signing.load_registry(registry, ADMIN.public_key())
    new_key = signing.SigningKey.load("venue-a", tmp_path / "a2.pem", DEPLOYMENT)
    later = NOW + timedelta(minutes=2)
    assert check(TRADES, signed, registry=rotated) is None  # at NOW: the old key's time
    assert check(TRADES, signed, at=later, registry=rotated) == (
        "bad_signature",
        "the signature does not verify with 'venue-a''s key: the record was altered, "
        "signed by someone else, or for another key or deployment",
    )
    fresh = signing.sign(TRADES, trade(buyer="desk-3", seller="alice"), new_key, now=later)
    assert check(TRADES, fresh, at=later, registry=rotated) is None
    # Revocation: nothing of the signer verifies after it, everything before still does.
    signers.revoke(registry, "bridge", at=NOW + timedelta(minutes=1), admin=ADMIN, out=out)
    revoked = signing.load_registry(registry, ADMIN.public_key())
    deposit = sign(PAYMENTS, payment(), BRIDGE)
    assert check(PAYMENTS, deposit, registry=revoked) is None
    refused = check(PAYMENTS, deposit, at=later, registry=revoked)
    assert refused is not None and refused[0] == "unknown_signer"
    assert "no key of signer 'bridge' is valid at 2026-11-26T03:02:00Z" in refused[1]
    signers.remove(registry, "venue-a", admin=ADMIN, out=out)
    assert set(signing.load_registry(registry, ADMIN.public_key()).entries) == {"bridge"}
    listing = io.StringIO()
    signers.show(registry, ADMIN.public_key(), out=listing)
    assert "version 6 (signature checked)" in listing.getvalue()
    assert "2026-11-26T03:01:00Z" in listing.getvalue()  # the bridge's key's end


def test_a_registry_not_signed_by_the_admin_key_is_refused(tmp_path: Path) -> None:
    document = orjson.loads(signing.registry_document(ENTRIES, deployment=DEPLOYMENT, admin=ADMIN))
    signing.registry_of(document, ADMIN.public_key())
    thief = Ed25519PrivateKey.generate()
    tampered = {**document, "signers": [*document["signers"], signing.entry(
        "venue-x", "venue", _key("venue-x").public_text(), ["*"])]}  # fmt: skip
    for bad in (tampered, {k: v for k, v in document.items() if k != "signature"}):
        with pytest.raises(signing.RegistryError, match="not signed by the admin key"):
            signing.registry_of(bad, ADMIN.public_key())
    with pytest.raises(signing.RegistryError, match="not signed by the admin key"):
        signing.registry_of(document, thief.public_key())


def test_a_worker_reloads_a_changed_registry_and_refuses_an_older_or_unsigned_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """M10: a revocation took a restart of every worker; a file put back from last
    month, or edited by hand, must not be trusted either."""
    path = tmp_path / "signers.json"

    writes = [0]

    def write(data: bytes) -> None:
        path.write_bytes(data)
        writes[0] += 1  # a new mtime even within the file system's resolution
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9 * writes[0]))

    write(signing.registry_document(ENTRIES, deployment=DEPLOYMENT, admin=ADMIN, version=2))
    clock = [0.0]
    live = signing.LiveRegistry.of(
        Settings(signers_file=path, registry_key=signing.public_key_text(ADMIN.public_key()))
    )
    live.clock = lambda: clock[0]
    assert live.current().version == 2
    deposit = sign(PAYMENTS, payment(), BRIDGE)
    revoked = [e | ({"valid_until": "2026-11-26T02:00:00Z"} if e["id"] == "bridge" else {})
               for e in ENTRIES]  # fmt: skip
    write(signing.registry_document(revoked, deployment=DEPLOYMENT, admin=ADMIN, version=3))
    assert check(PAYMENTS, deposit, registry=live.current()) is None  # not looked yet
    clock[0] += signing.RELOAD_EVERY_S
    assert live.current().version == 3
    assert check(PAYMENTS, deposit, registry=live.current())[0] == "unknown_signer"  # type: ignore[index]
    # An older version, a file not signed by the admin, another deployment: refused.
    for data, why in (
        (signing.registry_document(ENTRIES, deployment=DEPLOYMENT, admin=ADMIN, version=2),
         "version 2 is older"),
        (signing.registry_document(ENTRIES, deployment=DEPLOYMENT,
                                   admin=Ed25519PrivateKey.generate(), version=9),
         "not signed by the admin key"),
        (signing.registry_document(ENTRIES, deployment="elsewhere", admin=ADMIN, version=9),
         "it is 'elsewhere''s registry"),
    ):  # fmt: skip
        write(data)
        clock[0] += signing.RELOAD_EVERY_S
        caplog.clear()
        assert live.current().version == 3
        assert why in caplog.text and "still using version 3" in caplog.text


def test_signatures_are_bound_to_the_kafka_key_and_the_deployment() -> None:
    """H3: the signed bytes covered neither: a record could be sent under another key,
    or a test cluster's record replayed on the production one."""
    signed = sign(PAYMENTS, payment(), BRIDGE)
    assert REGISTRY.check(PAYMENTS, b"alice", signed, NOW) is None
    assert REGISTRY.check(PAYMENTS, b"mallory", signed, NOW) == (
        "bad_signature",
        "the signature does not verify with 'bridge''s key: the record was altered, "
        "signed by someone else, or for another key or deployment",
    )
    elsewhere = dataclasses.replace(BRIDGE, deployment="kessai-staging")
    assert reason(PAYMENTS, sign(PAYMENTS, payment(), elsewhere)) == "bad_signature"


def test_a_signed_record_is_valid_until_its_time_and_no_longer() -> None:
    """H3: a signed record rejected once could be sent again any time later."""
    signed = sign(TRADES, trade(), VENUE_A)
    assert signed["valid_until"] == "2026-11-26T04:00:00Z"  # an hour from signing
    assert check(TRADES, signed, at=NOW + timedelta(minutes=59)) is None
    assert check(TRADES, signed, at=NOW + timedelta(hours=2)) == (
        "expired",
        "valid until 2026-11-26T04:00:00Z; the broker received it at 2026-11-26T05:00:00Z",
    )
    far = sign(TRADES, trade(valid_until="2026-11-28T00:00:00Z"), VENUE_A)
    refused = check(TRADES, far)
    assert refused is not None and refused[0] == "invalid_validity", refused
    # Without valid_until a venue's record is refused; the matcher's trades carry none.
    body = {**trade(), "signer": "venue-a"}
    message = signing.signed_bytes(DEPLOYMENT, TRADES, b"venue-a:T-1", body)
    unbounded = {**body, "signature": signing._b64(VENUE_A.key.sign(message))}
    assert reason(TRADES, unbounded) == "invalid_validity"
    # An auditor without the broker's time checks with the key valid in the window.
    assert check(TRADES, signed, at=None) is None


def test_the_worked_example_of_docs_security_md() -> None:
    doc = (paths.DOCS / "security.md").read_text()
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    key = signing.SigningKey("venue-a", private, "kessai-example")
    record = trade(
        trade_id="venue-a:T-1",
        isin="JP1103551Q43",
        quantity=100_000,
        price="99.5",
        accrued_interest="12",
        trade_time="2026-11-25T00:00:00Z",
        valid_until="2026-11-25T00:05:00Z",
    )
    signed = signing.sign(TRADES, record, key)
    body = signing.signed_bytes("kessai-example", TRADES, b"venue-a:T-1", signed).decode()
    assert f"```\n{body}\n```" in doc, body
    assert f"`{key.public_text()}`" in doc
    assert f"`{signed['signature']}`" in doc, signed["signature"]
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    assert orjson.dumps(unsigned).decode() in doc, orjson.dumps(unsigned).decode()


def test_a_member_given_twice_is_refused() -> None:
    # JSON readers differ on which copy wins: kessai would apply the payment to bob, a
    # reader keeping the first copy would see mallory, under one valid signature.
    signed = orjson.dumps(sign(PAYMENTS, payment(account="bob"), BRIDGE))
    doubled = signed.replace(b"{", b'{"account":"mallory",', 1)
    refused = ledger_intake(
        PAYMENTS, b"bob", doubled, TOKENS, REGISTRY, where=(0, 0), arrived_s=NOW_S
    )
    assert refused == (
        "malformed",
        "member 'account' appears twice; a signed record's members are unique",
    )
    assert isinstance(
        ledger_intake(PAYMENTS, b"bob", signed, TOKENS, REGISTRY, where=(0, 0), arrived_s=NOW_S),
        Move,
    )
    trade_doubled = orjson.dumps(sign(TRADES, trade(), VENUE_A)).replace(
        b"{", b'{"price":"0.01",', 1
    )
    got = trade_intake(
        b"venue-a:T-1", trade_doubled, NOW_S, tokens=TOKENS, deadline_s=60, signers=REGISTRY
    )
    assert isinstance(got, tuple) and got[0] == "malformed"


def test_the_id_kessai_is_the_matchers_alone(tmp_path: Path) -> None:
    with pytest.raises(signing.RegistryError, match="the matcher's"):
        signing.registry_of(
            _doc([{"id": "kessai", "role": "venue", "public_key": VENUE_A.public_text()}]), None
        )
    with pytest.raises(signing.RegistryError, match="the matcher's"):
        signing.registry_of(
            _doc([{"id": "m-1", "role": "matcher", "public_key": MATCHER.public_text()}]), None
        )
    # The worker's key is the registry's "kessai" entry: any other id does not start.
    settings = dataclasses.replace(_files(tmp_path, MATCHER), signer_id="matcher-1")
    with pytest.raises(signing.RegistryError, match="so it is 'kessai'"):
        signing.for_worker(settings)


# -- kessai verify-settlements ------------------------------------------------------------


def _status_record(trade: Trade) -> SettlementStatusChanged:
    """The ``settlements`` record the engine writes when ``trade`` settles."""
    at = wire.utc_text(datetime.now(UTC))
    return SettlementStatusChanged.model_validate(
        wire.settlement(trade, "settled", None, TOKENS, at)
    )


def _settled(signed: dict[str, Any]) -> dict[str, Any]:
    """The settlements record the workers write for ``signed`` (a venue's trade)."""

    value = orjson.dumps(signed)
    got = trade_intake(
        signed["trade_id"].encode(), value, NOW_S, tokens=TOKENS, deadline_s=60, signers=REGISTRY
    )
    assert isinstance(got, Trade), got
    record = _status_record(got)
    document: dict[str, Any] = orjson.loads(record.model_dump_json())
    return document


def test_a_settlement_traces_back_to_its_venue() -> None:
    from streams.audit.evidence import check_settlement

    settlement = _settled(sign(TRADES, trade(accrued_interest="12.5"), VENUE_A))
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

    settlement = _settled(sign(TRADES, trade(), VENUE_A))

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


def test_verify_settlements_counts_a_matched_trade_apart_not_as_unsigned() -> None:
    """A trade the engine's matcher made has no signed trade (issue 21): counted apart;
    any other settlement without one, and a venue trade named like one, stay unsigned."""
    from aiokafka.structs import ConsumerRecord

    from streams.audit.evidence import check_records

    settlement = {**_settled(sign(TRADES, trade(), VENUE_A)), "signed_trade": None}

    def record(offset: int, trade_id: str) -> ConsumerRecord[bytes, bytes]:
        raw = orjson.dumps({**settlement, "trade_id": trade_id})
        return ConsumerRecord("settlements", 0, offset, 0, 0, b"k", raw, None, 0, 0, ())

    records = [record(0, "m-" + "0f" * 16), record(1, "t1"), record(2, "m-short")]
    report = check_records(records, REGISTRY, TOKENS)
    assert (report.matched, report.unsigned, report.problems) == (1, 2, [])


def test_a_usdc_settlement_is_recomputed_from_its_venues_signed_rate() -> None:
    """A converted trade's record carries its principal and accrued in yen and its
    cash in USDC: verify-settlements converts again at the signed fx_rate (docs/fx.md)."""
    from decimal import Decimal

    from schemas import FxRate
    from streams.audit.evidence import check_settlement
    from streams.settlement.fx import FxRules
    from streams.settlement.intake import Checked, Master, check_record, to_trade

    usdc = trade(currency="USDC", accrued_interest="12", fx_rate="151.234",
                 fx_source="venue-feed", fx_time="2026-11-26T03:00:00Z")  # fmt: skip
    signed = sign(TRADES, usdc, VENUE_A)
    checked = check_record(signed["trade_id"].encode(), orjson.dumps(signed), signers=REGISTRY,
                           arrived_s=NOW_S)  # fmt: skip
    assert isinstance(checked, Checked), checked
    reference = FxRate(currency="USDC", rate=Decimal("151.2"), source="fixing", at=NOW)
    got = to_trade(checked.trade, NOW_S, tokens=TOKENS, deadline_s=60, signed=checked.signed,
                   master=Master(0, None), fx_rules=FxRules(),
                   references={"USDC": reference})  # fmt: skip
    assert isinstance(got, Trade), got
    settlement: dict[str, Any] = orjson.loads(_status_record(got).model_dump_json())
    # 1m face at 99.50 = 995,000 JPY + 12 accrued = 995,012 JPY; at 151.234 JPY per USD
    # 6,579.287726... USDC, truncated to 6 decimals.
    assert (settlement["principal"], settlement["accrued"]) == ("995000", "12")
    assert settlement["cash_amount"] == "6579.287726"
    assert check_settlement(settlement, REGISTRY, TOKENS) is None
    for name, value, found in (
        ("fx_rate", "151.3", "fx_rate 151.3 here, 151.234 signed"),
        ("cash_amount", "6579.287727", "cash_amount 6579.287727 is not what the signed"),
        ("principal", "994999", "principal 994999 is not face x price / 100"),
    ):
        problem = check_settlement({**settlement, name: value}, REGISTRY, TOKENS)
        assert problem is not None and problem.startswith(found), problem
