"""Ed25519 signatures on the records that move money, and who may sign what.

Venues sign their ``trades`` and ``orders``; the custody/payments bridge signs its
``payments`` and ``custody`` movements; kessai's matcher signs the trades it makes;
the ``instruments`` role (whoever keeps the security master) signs ``instruments``.
Workers check each signature against a **signer registry** (a JSON file only
operators write) before a record can move anything (docs/security.md).

**What is signed.** The *signed bytes* of a record sent to ``topic`` with Kafka key
``key`` are::

    b"kessai-signed-v2\n" + deployment + b"\n" + topic + b"\n" + hex(key) + b"\n"
        + JCS(record without "signature")

- ``deployment`` is this deployment's id (the registry's ``deployment``, the
  signers' ``KESSAI_DEPLOYMENT``): a record signed for a test cluster or another
  market never verifies here (domain separation).
- ``topic``: a signed payment cannot be replayed as a custody movement, nor a trade
  as an order. ``hex(key)``: the Kafka key's bytes in lower-case hex, so the key is
  signed as sent and the bytes cannot be cut two ways.
- JCS is RFC 8785, as for the journal's hashes (:mod:`streams.ledger.journal`):
  members sorted by name, no whitespace, UTF-8, integers as plain digits. kessai's
  records hold only strings, integers and null, so
  ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
  reproduces it in any language with a JSON library.
- ``signer`` is inside the signed bytes, so a signature cannot be passed off as
  another signer's.
- ``valid_until`` (a venue's or the bridge's records) is too: the record is refused
  ``expired`` when the broker appended it after that time (the inputs carry the
  broker's time, LogAppendTime), and ``invalid_validity`` when it is missing or more
  than :data:`VALIDITY_MAX` after the broker's time. A signed record therefore cannot
  be kept and sent again next week. The matcher's trades carry none: kessai writes
  them in the transaction that reads the order.
- ``signature`` is the 64-byte Ed25519 signature in unpadded base64url (86 chars);
  a public key in the registry is its 32 raw bytes in unpadded base64url (43 chars).

**Who may sign what** (:meth:`Registry.check`): a venue signs ``trades`` and
``orders`` naming itself as ``venue`` and only accounts it serves, and its trade ids
start with its id and ``:`` (``venue-a:T-100``), so no venue can use another's; a bridge signs
``payments`` and ``custody``; the matcher signs ``trades`` as venue ``kessai`` for
any account (it only pairs orders whose venues were checked), and the ``close`` of a
matured bond on ``orders`` (which no venue may send). A failure is a
rejection with a reason: ``bad_signature``, ``unknown_signer`` or ``not_authorized``.

**The registry** is a JSON file the operators sign with their admin key (its public
half is ``KESSAI_REGISTRY_KEY``)::

    {"deployment": "...", "version": 7, "signers": [{"id", "role", "public_key",
     "valid_from"?, "valid_until"?, "accounts"?}, ...], "signature": "..."}

signed over ``b"kessai-registry-v1\n" + JCS(document without "signature")``. A
signer may have several entries, one per key, whose validity intervals do not
overlap: a record is checked with the key valid when the broker appended it, so a
rotated or revoked key still verifies the records it signed before (a replay decides
as the workers did). A worker re-reads the file when it changes
(:class:`LiveRegistry`), so a revocation needs no restart; it refuses a file that
does not verify, names another deployment, or goes back to an older version.

A replayed record carries a valid signature, so signatures alone do not stop it: the
ids do (``seen-trades``, the ledger's ``applied``, the matcher's orders), used up once
the record is checked, and a repeat is rejected as ``duplicate``. ``valid_until``
bounds how long ids must be remembered.

Pure apart from the file read in :func:`load_registry`: no Kafka, no faust.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import BaseModel

from schemas import (
    CANCELLATIONS,
    CUSTODY,
    FX_RATES,
    INSTRUMENTS,
    ORDERS,
    PAYMENTS,
    RESERVES,
    TRADES,
    encode,
    key_for,
)
from streams.config import Settings
from streams.errors import KessaiError
from streams.topics import by_name

__all__ = [
    "CONTEXT",
    "MATCHER_SIGNER",
    "REGISTRY_CONTEXT",
    "ROLE_TOPICS",
    "VALIDITY_DEFAULT",
    "VALIDITY_MAX",
    "LiveRegistry",
    "Registry",
    "RegistryError",
    "Rejected",
    "Signer",
    "SigningKey",
    "broker_time",
    "current",
    "entry",
    "evidence",
    "for_worker",
    "load_registry",
    "new_private_key_pem",
    "public_key_text",
    "registry_document",
    "sign",
    "sign_model",
    "signed_bytes",
    "signed_members",
    "verify",
]

logger = logging.getLogger(__name__)

#: Prefix of every signed byte string: a signature made for anything else (another
#: protocol, version 1 of this one, the registry) never verifies here.
CONTEXT: Final = b"kessai-signed-v2\n"
#: Prefix of the registry's signed bytes.
REGISTRY_CONTEXT: Final = b"kessai-registry-v1\n"
Role = Literal["venue", "bridge", "matcher", "instruments"]
#: The topics each role signs.
ROLE_TOPICS: Final[dict[str, frozenset[str]]] = {
    "venue": frozenset({TRADES, ORDERS, CANCELLATIONS}),
    "bridge": frozenset({PAYMENTS, CUSTODY, RESERVES}),
    # The worker's own key (signer "kessai"): it signed the matcher's trades and a
    # matured bond's close until the engine matched the orders itself (ADR 0035);
    # now it signs nothing, and a record it signed is refused.
    "matcher": frozenset(),
    # The reference data's keeper: the security master and the cash tokens' rates.
    "instruments": frozenset({INSTRUMENTS, FX_RATES}),
}
SIGNED_TOPICS: Final = frozenset().union(*ROLE_TOPICS.values())
#: The signer id of kessai's own matcher (its trades' ``venue``).
MATCHER_SIGNER: Final = "kessai"
#: A signer's id: lower-case letters, digits and '-' (docs/security.md, L2).
SIGNER_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
#: A deployment's id: lower-case letters, digits, '.' and '-'.
DEPLOYMENT_RE: Final = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
#: A venue's trade ids are ``{venue}:{its own id}`` when signatures are checked.
TRADE_ID_SEPARATOR: Final = ":"
#: How far after the broker's time a record's ``valid_until`` may be: the longest a
#: signed record can wait to be sent, and so the longest its id must be remembered.
VALIDITY_MAX: Final = timedelta(hours=24)
#: The ``valid_until`` :func:`sign` gives a record that has none: an hour from now.
VALIDITY_DEFAULT: Final = timedelta(hours=1)
#: Limits on the registry file (TigerBeetle: a limit on everything).
REGISTRY_BYTES_MAX: Final = 16 * 1024 * 1024
SIGNERS_MAX: Final = 10_000
#: How often a worker looks whether the registry file changed.
RELOAD_EVERY_S: Final = 1.0
#: An account pattern is an id, or a prefix ending in ``*`` (``"desk-7-*"``).
_PATTERN_RE: Final = re.compile(r"^[^\s\x00-\x1f\x7f*]{0,127}\*?$")
_KEY_RE: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")
_ENTRY_MEMBERS: Final = frozenset(
    {"id", "role", "public_key", "accounts", "valid_from", "valid_until"}
)

#: Why a record was refused: (reason code, detail).
Rejected = tuple[str, str]


class RegistryError(KessaiError, ValueError):
    """A signer registry that cannot be used; the message says where and why."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _jcs(obj: Mapping[str, Any]) -> bytes:
    return orjson.dumps(dict(obj), option=orjson.OPT_SORT_KEYS)


def signed_bytes(deployment: str, topic: str, key: bytes, record: Mapping[str, Any]) -> bytes:
    """The bytes a signature on ``record`` (sent to ``topic`` with Kafka key ``key``,
    in ``deployment``) covers; module doc."""
    body = {k: v for k, v in record.items() if k != "signature"}
    envelope = f"{deployment}\n{topic}\n{key.hex()}\n".encode()
    return CONTEXT + envelope + _jcs(body)


def utc_text(moment: datetime) -> str:
    """A time as the schemas write it: ``2026-12-04T01:02:03Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class _DuplicateMember(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _DuplicateMember(name)
            seen.add(name)
    return obj


def signed_members(value: bytes) -> dict[str, Any] | Rejected:
    """The members of a record that decoded, for :meth:`Registry.check`; or why it is
    refused: a member given twice. JSON readers differ on which copy wins, so such a
    record would mean different things to kessai and to an auditor's tools, under the
    same signature."""
    try:
        obj: dict[str, Any] = json.loads(value, object_pairs_hook=_unique_members)
    except _DuplicateMember as err:
        return (
            "malformed",
            f"member {str(err)!r} appears twice; a signed record's members are unique",
        )
    return obj


def verify(
    registry: Registry, topic: str, key: bytes, value: bytes, at: datetime
) -> dict[str, Any] | Rejected:
    """The members of a record that decoded (``value``, sent with ``key``, appended
    by the broker at ``at``), once its signature and signer pass; or why it is refused."""
    record = signed_members(value)
    if isinstance(record, tuple):
        return record
    refused = registry.check(topic, key, record, at)
    return record if refused is None else refused


def broker_time(timestamp_s: float) -> datetime:
    """A record's broker timestamp (faust: seconds) as a time; the epoch if it is none."""
    try:
        return datetime.fromtimestamp(timestamp_s, UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(0, UTC)


def evidence(record: Mapping[str, Any]) -> str:
    """A signed record as canonical JSON text, signature included: what a settlement
    record keeps so that an auditor can check it without the ``trades`` topic."""
    return _jcs(record).decode()


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A signer's id and private key, in one deployment: what a venue, the bridge or
    the matcher signs with."""

    signer: str
    key: Ed25519PrivateKey
    deployment: str

    @classmethod
    def load(cls, signer: str, path: Path, deployment: str) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as err:
            raise RegistryError(f"signing key {path}: {err}") from err
        if not isinstance(key, Ed25519PrivateKey):
            raise RegistryError(f"signing key {path}: not an Ed25519 private key")
        return cls(signer, key, deployment)

    @classmethod
    def generate(cls, signer: str, deployment: str) -> SigningKey:
        """A fresh key for ``signer`` (tests, benchmarks; real signers keep theirs)."""
        return cls(signer, Ed25519PrivateKey.generate(), deployment)

    def public_text(self) -> str:
        return public_key_text(self.key.public_key())


def sign(
    topic: str,
    record: Mapping[str, Any],
    key: SigningKey,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``record`` with ``signer`` set to the key's and a ``signature`` over it, for the
    Kafka key its topic keys it by. A venue's or bridge's record without
    ``valid_until`` gets one :data:`VALIDITY_DEFAULT` from ``now``."""
    body = {k: v for k, v in record.items() if k != "signature"}
    body["signer"] = key.signer
    if key.signer != MATCHER_SIGNER and body.get("valid_until") is None:
        body["valid_until"] = utc_text((now or datetime.now(UTC)) + VALIDITY_DEFAULT)
    kafka_key = _key_of(topic, body)
    body["signature"] = _b64(key.key.sign(signed_bytes(key.deployment, topic, kafka_key, body)))
    return body


def _key_of(topic: str, record: Mapping[str, Any]) -> bytes:
    value = record.get(by_name(topic).key_field)
    return str(value).encode() if value is not None else b""


M = TypeVar("M", bound=BaseModel)


def sign_model(topic: str, model: M, key: SigningKey, *, now: datetime | None = None) -> M:
    """``model`` signed by ``key``: the signature covers the record as :func:`encode`
    writes it, which is what every reader verifies."""
    unsigned = model.model_copy(update={"signer": key.signer, "signature": None})
    signed = sign(topic, orjson.loads(encode(unsigned)), key, now=now)
    assert _key_of(topic, signed) == key_for(topic, model)
    update = {"signer": key.signer, "signature": signed["signature"]}
    if "valid_until" in signed:
        update["valid_until"] = _utc(signed["valid_until"])
    return model.model_copy(update=update)


def for_worker(settings: Settings) -> tuple[LiveRegistry | None, SigningKey | None]:
    """The registry a worker checks records against and the key its matcher signs
    trades with, or (None, None) when signatures are not checked.

    Raises :class:`RegistryError` with what to set when checks are on but a file is
    missing: a worker that cannot check must not start and accept everything.
    """
    if not settings.verify_signatures:
        return None, None
    live = LiveRegistry.of(settings)
    registry = live.current()
    if settings.signing_key_file is None:
        raise RegistryError(
            "signature checks are on, so a worker holds the registry's worker key: set "
            f"KESSAI_SIGNING_KEY_FILE (and KESSAI_SIGNER_ID, default {MATCHER_SIGNER!r})"
        )
    if (settings.signer_id or MATCHER_SIGNER) != MATCHER_SIGNER:
        raise RegistryError(
            f"KESSAI_SIGNER_ID={settings.signer_id!r}: the worker's key is the registry's "
            f"{MATCHER_SIGNER!r} entry, so it is {MATCHER_SIGNER!r}"
        )
    key = SigningKey.load(MATCHER_SIGNER, settings.signing_key_file, registry.deployment)
    mine = [s for s in registry.entries.get(key.signer, ()) if s.role == "matcher"]
    if not mine:
        raise RegistryError(
            f"the matcher signs as {key.signer!r}, which is not a matcher in "
            f"{settings.signers_file}"
        )
    if key.public_text() not in {public_key_text(s.public_key) for s in mine}:
        raise RegistryError(
            f"KESSAI_SIGNING_KEY_FILE {settings.signing_key_file} is not a key the registry "
            f"holds for {key.signer!r}"
        )
    return live, key


def registry_for(settings: Settings, *, what: str = "a worker") -> Registry:
    """The registry ``settings`` name, checked with the admin key (a replay, an
    auditor's tools); :class:`RegistryError` says what to set when something is missing."""
    return LiveRegistry.of(settings, what=what).current()


def new_private_key_pem() -> bytes:
    """A fresh Ed25519 private key, PKCS#8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_text(key: Ed25519PublicKey) -> str:
    return _b64(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def public_key_of(text: str, *, where: str) -> Ed25519PublicKey:
    """A public key from its 43 characters of unpadded base64url."""
    if _KEY_RE.fullmatch(text) is None:
        raise RegistryError(f"{where}: a public key is 32 bytes of unpadded base64url")
    return Ed25519PublicKey.from_public_bytes(_unb64(text))


def load_admin_key(path: Path) -> Ed25519PrivateKey:
    """The operators' admin key (PEM), which signs the registry."""
    return SigningKey.load("admin", path, "-").key


@dataclass(frozen=True, slots=True)
class Signer:
    """One entry of the registry: one key of a signer, and when it is valid."""

    id: str
    role: Role
    public_key: Ed25519PublicKey
    #: Accounts a venue serves: exact ids, and prefixes (a pattern ending in ``*``).
    accounts: frozenset[str] = frozenset()
    account_prefixes: tuple[str, ...] = ()
    #: The key is valid from ``valid_from`` (None: always was) until before
    #: ``valid_until`` (None: until revoked).
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def serves(self, account: str) -> bool:
        if self.role == "matcher" or account in self.accounts:
            return True
        return any(account.startswith(prefix) for prefix in self.account_prefixes)

    def valid_at(self, at: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= at) and (
            self.valid_until is None or at < self.valid_until
        )

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether the key was valid at some time in [start, end]."""
        return (self.valid_from is None or self.valid_from <= end) and (
            self.valid_until is None or start < self.valid_until
        )

    def verifies(self, signature: str, message: bytes) -> bool:
        try:
            raw = _unb64(signature)
            self.public_key.verify(raw, message)
        except (InvalidSignature, ValueError, binascii.Error):
            return False
        return True


def _parties(topic: str, record: Mapping[str, Any]) -> Iterable[str]:
    """The accounts a record acts for, which its venue must serve."""
    if topic == TRADES:
        return (record["buyer"], record["seller"])
    if topic == ORDERS:
        return (record["account"],)
    return ()


@dataclass(frozen=True, slots=True)
class Registry:
    """Who may sign, with which key when, for which accounts, in which deployment.
    Build with :func:`load_registry` or :func:`registry_of`."""

    deployment: str
    version: int
    #: Each signer's keys, oldest first; their validity intervals do not overlap.
    entries: Mapping[str, tuple[Signer, ...]]

    def check(
        self, topic: str, key: bytes, record: Mapping[str, Any], at: datetime | None
    ) -> Rejected | None:
        """Why ``record`` (valid for ``topic``'s schema, sent with Kafka key ``key``,
        appended by the broker at ``at``) is refused, or None.

        The key checked is the signer's key valid at ``at``. ``at`` None (an auditor
        checking a settlement's evidence, with no broker time) tries each key of the
        signer valid at some time the record's validity allows.

        The signature is checked before anything it vouches for: the signer's role,
        the venue named, the accounts, the validity.
        """
        assert topic in SIGNED_TOPICS, topic
        signer_id = record.get("signer")
        signature = record.get("signature")
        if signer_id is None or signature is None:
            return "bad_signature", f"{topic} records must be signed; this one has no signature"
        keys = self.entries.get(signer_id)
        if keys is None:
            return "unknown_signer", f"signer {signer_id!r} is not in the signer registry"
        candidates = [k for k in keys if _could_sign(k, record, at)]
        if not candidates:
            when = "then" if at is None else f"at {utc_text(at)}"
            return (
                "unknown_signer",
                f"no key of signer {signer_id!r} is valid {when}: revoked, or not yet valid",
            )
        message = signed_bytes(self.deployment, topic, key, record)
        signer = next((k for k in candidates if k.verifies(signature, message)), None)
        if signer is None:
            return (
                "bad_signature",
                f"the signature does not verify with {signer_id!r}'s key: the record was "
                f"altered, signed by someone else, or for another key or deployment",
            )
        return _mandate(signer, topic, record) or _validity(signer, record, at)


def _could_sign(key: Signer, record: Mapping[str, Any], at: datetime | None) -> bool:
    if at is not None:
        return key.valid_at(at)
    until = record.get("valid_until")
    if until is None:
        return True
    end = _utc(until)
    return key.overlaps(end - VALIDITY_MAX, end)


def _mandate(signer: Signer, topic: str, record: Mapping[str, Any]) -> Rejected | None:
    """Why ``signer`` (whose signature verified) may not say what ``record`` says."""
    signer_id = signer.id
    if topic not in ROLE_TOPICS[signer.role]:
        return "not_authorized", f"{signer_id!r} is a {signer.role} and may not sign {topic}"
    venue = record.get("venue")
    if venue is not None and venue != signer_id:
        return "not_authorized", f"{signer_id!r} signed a record of venue {venue!r}"
    if topic == ORDERS and (record.get("action") == "close") != (signer.role == "matcher"):
        # kessai closes a matured bond's books; a venue may not, and kessai sends
        # no other order.
        return "not_authorized", f"{signer_id!r} may not send a {record.get('action')} order"
    if topic == TRADES and signer.role == "venue":
        trade_id = record["trade_id"]
        if not trade_id.startswith(f"{signer_id}{TRADE_ID_SEPARATOR}"):
            # Trade ids are unique across venues only if each venue has its own
            # (as a UTI starts with its maker's LEI): else a venue could take
            # another's next id first and have the genuine trade refused as a repeat.
            return (
                "not_authorized",
                f"venue {signer_id!r}'s trade ids start with "
                f"{signer_id + TRADE_ID_SEPARATOR!r}, not {trade_id!r}",
            )
    for account in _parties(topic, record):
        if not signer.serves(account):
            return "not_authorized", f"venue {signer_id!r} does not serve account {account!r}"
    return None


def _validity(signer: Signer, record: Mapping[str, Any], at: datetime | None) -> Rejected | None:
    """Why a venue's or the bridge's record is not valid at ``at`` (module doc)."""
    if signer.role == "matcher":
        return None
    until_text = record.get("valid_until")
    if until_text is None:
        return (
            "invalid_validity",
            f"a signed {signer.role}'s record carries valid_until (at most "
            f"{_hours(VALIDITY_MAX)} after it is sent), so that it cannot be sent again later",
        )
    if at is None:
        return None
    until = _utc(until_text)
    if at > until:
        return "expired", f"valid until {until_text}; the broker received it at {utc_text(at)}"
    if until - at > VALIDITY_MAX:
        return (
            "invalid_validity",
            f"valid_until {until_text} is more than {_hours(VALIDITY_MAX)} after the broker "
            f"received it ({utc_text(at)})",
        )
    return None


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"


def load_registry(path: Path, admin_key: Ed25519PublicKey | None) -> Registry:
    """The registry in ``path``, whose signature ``admin_key`` must verify (None: a
    file not yet signed, for ``kessai signers`` to build on). Raises
    :class:`RegistryError` naming the entry at fault."""
    try:
        if path.stat().st_size > REGISTRY_BYTES_MAX:
            raise RegistryError(f"signer registry {path}: more than {REGISTRY_BYTES_MAX} bytes")
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise RegistryError(f"signer registry {path}: {err}") from err
    return registry_of(document, admin_key, where=str(path))


def registry_of(
    document: Any, admin_key: Ed25519PublicKey | None, *, where: str = "signer registry"
) -> Registry:
    """The registry a parsed document holds; module doc for its shape."""
    if not isinstance(document, dict) or not isinstance(document.get("signers"), list):
        raise RegistryError(f'{where}: want a JSON object {{"signers": [...], ...}}')
    unknown = set(document) - {"deployment", "version", "signers", "signature"}
    if unknown:
        raise RegistryError(f"{where}: unknown members {sorted(unknown)}")
    deployment, version = document.get("deployment"), document.get("version")
    if not isinstance(deployment, str) or DEPLOYMENT_RE.fullmatch(deployment) is None:
        raise RegistryError(f"{where}: deployment must be 1-64 characters of a-z, 0-9, '.', '-'")
    if type(version) is not int or not 1 <= version < 2**53:
        raise RegistryError(f"{where}: version must be a positive integer")
    if admin_key is not None:
        _check_registry_signature(document, admin_key, where)
    entries = document["signers"]
    if len(entries) > SIGNERS_MAX:
        raise RegistryError(f"{where}: more than {SIGNERS_MAX} signers")
    keys: dict[str, list[Signer]] = {}
    for n, item in enumerate(entries, start=1):
        signer = _signer_of(item, f"{where}: signer {n}")
        _fits_beside(signer, keys.get(signer.id, []), f"{where}: signer {n}")
        keys.setdefault(signer.id, []).append(signer)
    ordered = {
        sid: tuple(sorted(ks, key=lambda k: k.valid_from or _EARLIEST)) for sid, ks in keys.items()
    }
    return Registry(deployment, version, ordered)


def _check_registry_signature(
    document: dict[str, Any], admin_key: Ed25519PublicKey, where: str
) -> None:
    signature = document.get("signature")
    body = {k: v for k, v in document.items() if k != "signature"}
    try:
        if not isinstance(signature, str):
            raise ValueError("no signature")
        admin_key.verify(_unb64(signature), REGISTRY_CONTEXT + _jcs(body))
    except (InvalidSignature, ValueError, TypeError, binascii.Error):
        raise RegistryError(
            f"{where}: not signed by the admin key (KESSAI_REGISTRY_KEY): altered, or "
            f"written without `kessai signers`"
        ) from None


_EARLIEST: Final = datetime.min.replace(tzinfo=UTC)
_LATEST: Final = datetime.max.replace(tzinfo=UTC)


def _fits_beside(signer: Signer, others: list[Signer], where: str) -> None:
    start, end = signer.valid_from or _EARLIEST, signer.valid_until or _LATEST
    for other in others:
        if other.role != signer.role:
            raise RegistryError(f"{where} ({signer.id}): its keys differ in role")
        if start < (other.valid_until or _LATEST) and (other.valid_from or _EARLIEST) < end:
            raise RegistryError(
                f"{where} ({signer.id}): two of its keys are valid at the same time; "
                f"a key's valid_from must be at or after the other's valid_until"
            )


def _time_of(entry: dict[str, Any], name: str, where: str) -> datetime | None:
    text = entry.get(name)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() != timedelta(0):
        raise RegistryError(f"{where}: {name} must be a UTC time like 2026-12-04T00:00:00Z")
    return moment.astimezone(UTC)


def _signer_of(item: Any, where: str) -> Signer:
    if not isinstance(item, dict):
        raise RegistryError(f"{where}: want a JSON object")
    unknown = set(item) - _ENTRY_MEMBERS
    if unknown:
        raise RegistryError(f"{where}: unknown members {sorted(unknown)}")
    signer_id, role, key_text = item.get("id"), item.get("role"), item.get("public_key")
    if not isinstance(signer_id, str) or SIGNER_ID_RE.fullmatch(signer_id) is None:
        raise RegistryError(
            f"{where}: id must be 1-64 characters of a-z, 0-9 and '-' (a signer id is "
            f"the prefix of its trade ids: with ':' venue 'a' could take 'a:b''s)"
        )
    where = f"{where} ({signer_id})"
    if role not in ROLE_TOPICS:
        raise RegistryError(f"{where}: role must be one of {sorted(ROLE_TOPICS)}")
    public_key = public_key_of(key_text if isinstance(key_text, str) else "", where=where)
    accounts = item.get("accounts", [])
    if not isinstance(accounts, list) or not all(
        isinstance(a, str) and _PATTERN_RE.fullmatch(a) and a for a in accounts
    ):
        raise RegistryError(
            f"{where}: accounts must be a list of account ids or prefixes ending in '*'"
        )
    if accounts and role != "venue":
        raise RegistryError(f"{where}: only a venue lists accounts")
    if (signer_id == MATCHER_SIGNER) != (role == "matcher"):
        # The matcher's trades carry venue "kessai": only it may be that signer, and it
        # may be no other (replay tells the matcher's trades by that venue).
        raise RegistryError(
            f"{where}: the id {MATCHER_SIGNER!r} is the matcher's, and the "
            f"matcher's id is {MATCHER_SIGNER!r}"
        )
    start, end = _time_of(item, "valid_from", where), _time_of(item, "valid_until", where)
    if start is not None and end is not None and end <= start:
        raise RegistryError(f"{where}: valid_until must be after valid_from")
    exact = frozenset(a for a in accounts if not a.endswith("*"))
    prefixes = tuple(a[:-1] for a in accounts if a.endswith("*"))
    return Signer(signer_id, role, public_key, exact, prefixes, start, end)


def entry(
    signer_id: str,
    role: str,
    public_key: str,
    accounts: Iterable[str] = (),
    *,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> dict[str, Any]:
    """One registry entry, as the file holds it."""
    item: dict[str, Any] = {"id": signer_id, "role": role, "public_key": public_key}
    if accounts := list(accounts):
        item["accounts"] = accounts
    if valid_from is not None:
        item["valid_from"] = utc_text(valid_from)
    if valid_until is not None:
        item["valid_until"] = utc_text(valid_until)
    return item


def registry_document(
    entries: Iterable[dict[str, Any]],
    *,
    deployment: str,
    admin: Ed25519PrivateKey,
    version: int = 1,
) -> bytes:
    """A registry file's bytes, signed by ``admin``; it loads, or this raises."""
    document: dict[str, Any] = {
        "deployment": deployment,
        "version": version,
        "signers": list(entries),
    }
    document["signature"] = _b64(admin.sign(REGISTRY_CONTEXT + _jcs(document)))
    registry_of(document, admin.public_key())  # what is written must load
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def new_deployment_id() -> str:
    """A fresh deployment id: ``kessai-`` and 16 random hex digits."""
    return f"kessai-{os.urandom(8).hex()}"


def write_private_key(path: Path, pem: bytes) -> None:
    """Write a private key readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)


@dataclass
class LiveRegistry:
    """The registry file as it is now: :meth:`current` looks at most every
    :data:`RELOAD_EVERY_S` whether the file changed and loads it if so, so that a
    revocation takes effect without a restart.

    A new file is refused (logged, the registry in use kept) when it does not verify
    with the admin key, names another deployment, or has a lower version than the one
    in use: an old signed file put back would trust a revoked key again.
    """

    path: Path
    admin_key: Ed25519PublicKey
    registry: Registry
    clock: Callable[[], float] = time.monotonic
    _stamp: tuple[int, int, int] = (0, 0, 0)
    _refused: tuple[int, int, int] | None = None
    _looked: float = field(default=0.0)

    @classmethod
    def of(cls, settings: Settings, *, what: str = "a worker") -> LiveRegistry:
        if settings.signers_file is None:
            raise RegistryError(
                f"signature checks are on (KESSAI_VERIFY_SIGNATURES, or the sasl_ssl "
                f"profile) but KESSAI_SIGNERS_FILE is not set: {what} needs the signer "
                f"registry"
            )
        if settings.registry_key is None:
            raise RegistryError(
                f"signature checks are on but KESSAI_REGISTRY_KEY is not set: {what} "
                f"trusts a signer registry only if the operators' admin key signed it"
            )
        admin_key = public_key_of(settings.registry_key, where="KESSAI_REGISTRY_KEY")
        stamp = _stamp_of(settings.signers_file)
        registry = load_registry(settings.signers_file, admin_key)
        if settings.deployment is not None and settings.deployment != registry.deployment:
            raise RegistryError(
                f"KESSAI_DEPLOYMENT is {settings.deployment!r} but the signer registry is "
                f"{registry.deployment!r}'s"
            )
        return cls(settings.signers_file, admin_key, registry, _stamp=stamp)

    def current(self) -> Registry:
        now = self.clock()
        if now - self._looked >= RELOAD_EVERY_S:
            self._looked = now
            self._reload()
        return self.registry

    def _reload(self) -> None:
        try:
            stamp = _stamp_of(self.path)
        except OSError as err:
            logger.error("signer registry %s: %s; still using version %d", self.path, err,
                         self.registry.version)  # fmt: skip
            return
        if stamp in (self._stamp, self._refused):
            return
        try:
            loaded = load_registry(self.path, self.admin_key)
            if loaded.deployment != self.registry.deployment:
                raise RegistryError(f"{self.path}: it is {loaded.deployment!r}'s registry")
            if loaded.version < self.registry.version:
                raise RegistryError(
                    f"{self.path}: version {loaded.version} is older than the one in use"
                )
        except RegistryError as err:
            self._refused = stamp
            logger.error("signer registry refused: %s; still using version %d", err,
                         self.registry.version)  # fmt: skip
            return
        self._stamp, self._refused = stamp, None
        logger.warning("signer registry %s: version %d loaded (was %d)", self.path,
                       loaded.version, self.registry.version)  # fmt: skip
        self.registry = loaded


def current(live: LiveRegistry | None) -> Registry | None:
    """The registry in force now, or None when signatures are not checked."""
    return None if live is None else live.current()


def _stamp_of(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)
