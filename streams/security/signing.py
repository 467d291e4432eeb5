"""Ed25519 signatures on the records that move money, and who may sign what.

Venues sign their ``trades`` and ``orders``; the custody/payments bridge signs its
``payments`` and ``custody`` movements; kessai's matcher signs the trades it makes.
Workers check each signature against a **signer registry** (a JSON file only
operators write) before a record can move anything (docs/security.md).

**What is signed.** The *signed bytes* of a record sent to ``topic`` are::

    b"kessai-signed-v1\\n" + topic (UTF-8) + b"\\n" + JCS(record without "signature")

- JCS is RFC 8785, as for the journal's hashes (:mod:`streams.ledger.journal`):
  members sorted by name, no whitespace, UTF-8, integers as plain digits. kessai's
  records hold only strings, integers and null, so
  ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
  reproduces it in any language with a JSON library.
- ``signer`` is inside the signed bytes, so a signature cannot be passed off as
  another signer's; the topic is too, so a signed payment cannot be replayed as a
  custody movement or a trade as an order.
- The Kafka key is not signed. The workers check it against the record (a trade is
  keyed by its ``trade_id``), so a changed key is refused on its own.
- ``signature`` is the 64-byte Ed25519 signature in unpadded base64url (86 chars);
  a public key in the registry is its 32 raw bytes in unpadded base64url (43 chars).

**Who may sign what** (:meth:`Registry.check`): a venue signs ``trades`` and
``orders`` naming itself as ``venue`` and only accounts it serves, and its trade ids
start with its id and ``:`` (``venue-a:T-100``), so no venue can use another's; a bridge signs
``payments`` and ``custody``; the matcher signs ``trades`` as venue ``kessai`` for
any account (it only pairs orders whose venues were checked). A failure is a
rejection with a reason: ``bad_signature``, ``unknown_signer`` or ``not_authorized``.

A replayed record carries a valid signature, so signatures alone do not stop it: the
ids do (``seen-trades``, the ledger's ``applied``, the matcher's orders), and a
repeat is rejected as ``duplicate``.

Pure apart from the file read in :func:`load_registry`: no Kafka, no faust.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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

from schemas import CUSTODY, ORDERS, PAYMENTS, TRADES, encode
from streams.config import Settings
from streams.errors import KessaiError

__all__ = [
    "CONTEXT",
    "MATCHER_SIGNER",
    "ROLE_TOPICS",
    "Registry",
    "RegistryError",
    "Rejected",
    "Signer",
    "SigningKey",
    "evidence",
    "for_worker",
    "load_registry",
    "new_private_key_pem",
    "public_key_text",
    "sign",
    "sign_model",
    "signed_bytes",
    "signed_members",
]

#: Prefix of every signed byte string: a signature made for anything else (another
#: protocol, a future version of this one) never verifies here.
CONTEXT: Final = b"kessai-signed-v1\n"
Role = Literal["venue", "bridge", "matcher"]
#: The topics each role signs.
ROLE_TOPICS: Final[dict[str, frozenset[str]]] = {
    "venue": frozenset({TRADES, ORDERS}),
    "bridge": frozenset({PAYMENTS, CUSTODY}),
    "matcher": frozenset({TRADES}),
}
SIGNED_TOPICS: Final = frozenset().union(*ROLE_TOPICS.values())
#: The signer id of kessai's own matcher (its trades' ``venue``).
MATCHER_SIGNER: Final = "kessai"
#: A signer's id: lower-case letters, digits and '-' (docs/security.md, L2).
SIGNER_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
#: A venue's trade ids are ``{venue}:{its own id}`` when signatures are checked.
TRADE_ID_SEPARATOR: Final = ":"
#: Limits on the registry file (TigerBeetle: a limit on everything).
REGISTRY_BYTES_MAX: Final = 16 * 1024 * 1024
SIGNERS_MAX: Final = 10_000
#: An account pattern is an id, or a prefix ending in ``*`` (``"desk-7-*"``).
_PATTERN_RE: Final = re.compile(r"^[^\s\x00-\x1f\x7f*]{0,127}\*?$")
_KEY_RE: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")

#: Why a record was refused: (reason code, detail).
Rejected = tuple[str, str]


class RegistryError(KessaiError, ValueError):
    """A signer registry that cannot be used; the message says where and why."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_bytes(topic: str, record: Mapping[str, Any]) -> bytes:
    """The bytes a signature on ``record`` (sent to ``topic``) covers; module doc."""
    body = {k: v for k, v in record.items() if k != "signature"}
    return CONTEXT + topic.encode() + b"\n" + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


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


def evidence(record: Mapping[str, Any]) -> str:
    """A signed record as canonical JSON text, signature included: what a settlement
    record keeps so that an auditor can check it without the ``trades`` topic."""
    return orjson.dumps(dict(record), option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A signer's id and private key: what a venue, the bridge or the matcher signs with."""

    signer: str
    key: Ed25519PrivateKey

    @classmethod
    def load(cls, signer: str, path: Path) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as err:
            raise RegistryError(f"signing key {path}: {err}") from err
        if not isinstance(key, Ed25519PrivateKey):
            raise RegistryError(f"signing key {path}: not an Ed25519 private key")
        return cls(signer, key)

    @classmethod
    def generate(cls, signer: str) -> SigningKey:
        """A fresh key for ``signer`` (tests, benchmarks; real signers keep theirs)."""
        return cls(signer, Ed25519PrivateKey.generate())

    def public_text(self) -> str:
        return public_key_text(self.key.public_key())


def sign(topic: str, record: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """``record`` with ``signer`` set to the key's and a ``signature`` over it."""
    body = {k: v for k, v in record.items() if k != "signature"}
    body["signer"] = key.signer
    body["signature"] = _b64(key.key.sign(signed_bytes(topic, body)))
    return body


M = TypeVar("M", bound=BaseModel)


def sign_model(topic: str, model: M, key: SigningKey) -> M:
    """``model`` signed by ``key``: the signature covers the record as :func:`encode`
    writes it, which is what every reader verifies."""
    unsigned = model.model_copy(update={"signer": key.signer, "signature": None})
    signed = sign(topic, orjson.loads(encode(unsigned)), key)
    return model.model_copy(update={"signer": key.signer, "signature": signed["signature"]})


def for_worker(settings: Settings) -> tuple[Registry | None, SigningKey | None]:
    """The registry a worker checks records against and the key its matcher signs
    trades with, or (None, None) when signatures are not checked.

    Raises :class:`RegistryError` with what to set when checks are on but a file is
    missing: a worker that cannot check must not start and accept everything.
    """
    if not settings.verify_signatures:
        return None, None
    if settings.signers_file is None:
        raise RegistryError(
            "signature checks are on (KESSAI_VERIFY_SIGNATURES, or the sasl_ssl profile) "
            "but KESSAI_SIGNERS_FILE is not set: say where the signer registry is"
        )
    registry = load_registry(settings.signers_file)
    if settings.signing_key_file is None:
        raise RegistryError(
            "signature checks are on, so the matcher signs its trades: set "
            f"KESSAI_SIGNING_KEY_FILE (and KESSAI_SIGNER_ID, default {MATCHER_SIGNER!r})"
        )
    if (settings.signer_id or MATCHER_SIGNER) != MATCHER_SIGNER:
        raise RegistryError(
            f"KESSAI_SIGNER_ID={settings.signer_id!r}: a worker signs the trades its matcher "
            f"makes, whose venue is {MATCHER_SIGNER!r}, so it signs as {MATCHER_SIGNER!r}"
        )
    key = SigningKey.load(MATCHER_SIGNER, settings.signing_key_file)
    signer = registry.signers.get(key.signer)
    if signer is None or signer.role != "matcher":
        raise RegistryError(
            f"the matcher signs as {key.signer!r}, which is not a matcher in "
            f"{settings.signers_file}"
        )
    if public_key_text(signer.public_key) != key.public_text():
        raise RegistryError(
            f"KESSAI_SIGNING_KEY_FILE {settings.signing_key_file} is not the key the registry "
            f"holds for {key.signer!r}"
        )
    return registry, key


def new_private_key_pem() -> bytes:
    """A fresh Ed25519 private key, PKCS#8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_text(key: Ed25519PublicKey) -> str:
    return _b64(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


@dataclass(frozen=True, slots=True)
class Signer:
    """One entry of the registry."""

    id: str
    role: Role
    public_key: Ed25519PublicKey
    #: Accounts a venue serves: exact ids, and prefixes (a pattern ending in ``*``).
    accounts: frozenset[str] = frozenset()
    account_prefixes: tuple[str, ...] = ()

    def serves(self, account: str) -> bool:
        if self.role == "matcher" or account in self.accounts:
            return True
        return any(account.startswith(prefix) for prefix in self.account_prefixes)

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
    """Who may sign, with which key, for which accounts. Build with :func:`load_registry`."""

    signers: Mapping[str, Signer]

    def check(self, topic: str, record: Mapping[str, Any]) -> Rejected | None:
        """Why ``record`` (valid for ``topic``'s schema) is refused, or None.

        The signature is checked before anything it vouches for: the signer's role,
        the venue named, the accounts.
        """
        assert topic in SIGNED_TOPICS, topic
        signer_id = record.get("signer")
        signature = record.get("signature")
        if signer_id is None or signature is None:
            return "bad_signature", f"{topic} records must be signed; this one has no signature"
        signer = self.signers.get(signer_id)
        if signer is None:
            return "unknown_signer", f"signer {signer_id!r} is not in the signer registry"
        if not signer.verifies(signature, signed_bytes(topic, record)):
            return (
                "bad_signature",
                f"the signature does not verify with {signer_id!r}'s key: the record was "
                f"altered, or signed by someone else",
            )
        if topic not in ROLE_TOPICS[signer.role]:
            return "not_authorized", f"{signer_id!r} is a {signer.role} and may not sign {topic}"
        venue = record.get("venue")
        if venue is not None and venue != signer_id:
            return "not_authorized", f"{signer_id!r} signed a record of venue {venue!r}"
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


def load_registry(path: Path) -> Registry:
    """The registry in ``path``: ``{"signers": [{"id", "role", "public_key",
    "accounts"?}, ...]}``. Raises :class:`RegistryError` naming the entry at fault."""
    try:
        if path.stat().st_size > REGISTRY_BYTES_MAX:
            raise RegistryError(f"signer registry {path}: more than {REGISTRY_BYTES_MAX} bytes")
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise RegistryError(f"signer registry {path}: {err}") from err
    return registry_of(document, where=str(path))


def registry_of(document: Any, *, where: str = "signer registry") -> Registry:
    if not isinstance(document, dict) or not isinstance(document.get("signers"), list):
        raise RegistryError(f'{where}: want a JSON object {{"signers": [...]}}')
    entries = document["signers"]
    if len(entries) > SIGNERS_MAX:
        raise RegistryError(f"{where}: more than {SIGNERS_MAX} signers")
    signers: dict[str, Signer] = {}
    for n, entry in enumerate(entries, start=1):
        signer = _signer_of(entry, f"{where}: signer {n}")
        if signer.id in signers:
            raise RegistryError(f"{where}: signer {n}: id {signer.id!r} appears twice")
        signers[signer.id] = signer
    return Registry(signers)


def _signer_of(entry: Any, where: str) -> Signer:
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: want a JSON object")
    unknown = set(entry) - {"id", "role", "public_key", "accounts"}
    if unknown:
        raise RegistryError(f"{where}: unknown members {sorted(unknown)}")
    signer_id, role, key_text = entry.get("id"), entry.get("role"), entry.get("public_key")
    if not isinstance(signer_id, str) or SIGNER_ID_RE.fullmatch(signer_id) is None:
        raise RegistryError(
            f"{where}: id must be 1-64 characters of a-z, 0-9 and '-' (a signer id is "
            f"the prefix of its trade ids: with ':' venue 'a' could take 'a:b''s)"
        )
    if role not in ROLE_TOPICS:
        raise RegistryError(f"{where} ({signer_id}): role must be one of {sorted(ROLE_TOPICS)}")
    if not isinstance(key_text, str) or _KEY_RE.fullmatch(key_text) is None:
        raise RegistryError(
            f"{where} ({signer_id}): public_key must be 32 bytes of unpadded base64url"
        )
    accounts = entry.get("accounts", [])
    if not isinstance(accounts, list) or not all(
        isinstance(a, str) and _PATTERN_RE.fullmatch(a) and a for a in accounts
    ):
        raise RegistryError(
            f"{where} ({signer_id}): accounts must be a list of account ids or prefixes "
            f"ending in '*'"
        )
    if accounts and role != "venue":
        raise RegistryError(f"{where} ({signer_id}): only a venue lists accounts")
    if (signer_id == MATCHER_SIGNER) != (role == "matcher"):
        # The matcher's trades carry venue "kessai": only it may be that signer, and it
        # may be no other (replay tells the matcher's trades by that venue).
        raise RegistryError(
            f"{where} ({signer_id}): the id {MATCHER_SIGNER!r} is the matcher's, and the "
            f"matcher's id is {MATCHER_SIGNER!r}"
        )
    exact = frozenset(a for a in accounts if not a.endswith("*"))
    prefixes = tuple(a[:-1] for a in accounts if a.endswith("*"))
    public_key = Ed25519PublicKey.from_public_bytes(_unb64(key_text))
    return Signer(signer_id, role, public_key, exact, prefixes)


def registry_document(signers: Iterable[tuple[str, Role, str, list[str]]]) -> bytes:
    """A registry file's bytes for (id, role, public key text, accounts) entries."""
    entries = []
    for signer_id, role, key_text, accounts in signers:
        entry: dict[str, Any] = {"id": signer_id, "role": role, "public_key": key_text}
        if accounts:
            entry["accounts"] = accounts
        entries.append(entry)
    return orjson.dumps({"signers": entries}, option=orjson.OPT_INDENT_2) + b"\n"


def write_private_key(path: Path, pem: bytes) -> None:
    """Write a private key readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
