"""``kessai signers``: keep the signer registry that workers check records against.

- ``kessai signers init --deployment ID`` starts an empty registry for a deployment.
- ``kessai signers add ID --role venue --accounts alice,desk-7-*`` makes an Ed25519
  key pair, writes the private key (mode 0600) for the signer to keep, and adds the
  public key to the registry; ``--public-key KEY`` adds a key made elsewhere (a venue
  keeps its private key; the operator only ever sees the public one).
- ``kessai signers rotate ID`` ends the signer's key now and adds a new one from now;
  ``kessai signers revoke ID`` ends it. Both keep the old key with its validity, so a
  replay still verifies what it signed while it was valid. ``remove`` forgets a signer
  altogether, after which a replay refuses its old records.
- ``kessai signers list`` prints who may sign what, and when.

Every write signs the file with the operators' admin key
(``KESSAI_REGISTRY_ADMIN_KEY_FILE``) and raises its version; the workers trust only a
file that key signed, re-read it within a second of a change, and refuse an older
version (streams/security/signing.py). The file is replaced atomically, so a worker
reads the old one or the new one.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from streams.security import signing
from streams.security.signing import RegistryError


def _document(path: Path, admin: Ed25519PrivateKey) -> dict[str, Any]:
    if not path.exists():
        raise RegistryError(f"{path} does not exist: start it with `kessai signers init`")
    signing.load_registry(path, admin.public_key())  # refuse to build on a broken file
    document: dict[str, Any] = orjson.loads(path.read_bytes())
    return document


def _write(path: Path, document: dict[str, Any], admin: Ed25519PrivateKey) -> int:
    """Sign and write ``document`` as the next version; the version written."""
    version = int(document.get("version", 0)) + 1
    data = signing.registry_document(
        document["signers"], deployment=document["deployment"], admin=admin, version=version
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return version


def init(registry: Path, deployment: str, admin: Ed25519PrivateKey, *, out: IO[str]) -> int:
    if registry.exists():
        raise RegistryError(f"{registry} exists: not starting it again")
    _write(registry, {"deployment": deployment, "version": 0, "signers": []}, admin)
    print(f"{registry}: an empty registry for deployment {deployment}", file=out)
    return 0


def _open_entry(entries: list[dict[str, Any]], signer_id: str) -> dict[str, Any] | None:
    mine = [e for e in entries if e["id"] == signer_id and e.get("valid_until") is None]
    return mine[0] if mine else None


def _in_force(
    registry: Path, signer_id: str, admin: Ed25519PrivateKey
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The registry's document, and the signer's entry whose key is in force."""
    document = _document(registry, admin)
    current = _open_entry(document["signers"], signer_id)
    if current is None:
        raise RegistryError(f"{registry}: signer {signer_id!r} has no key in force")
    return document, current


def _new_public_key(
    signer_id: str, public_key: str | None, key_out: Path | None, out: IO[str]
) -> str:
    if public_key is not None:
        return public_key
    if key_out is None:
        raise RegistryError("say where the new private key goes (--key-out)")
    if key_out.exists():
        raise RegistryError(f"{key_out} exists: not overwriting a private key")
    signing.write_private_key(key_out, signing.new_private_key_pem())
    print(f"wrote {signer_id}'s private key to {key_out} (mode 0600): give it to "
          f"{signer_id} only", file=out)  # fmt: skip
    return signing.SigningKey.load(signer_id, key_out, "-").public_text()


def add(
    registry: Path,
    signer_id: str,
    *,
    role: str,
    accounts: list[str],
    public_key: str | None,
    key_out: Path | None,
    admin: Ed25519PrivateKey,
    out: IO[str],
    valid_from: datetime | None = None,
) -> int:
    """Add a signer; make its key pair unless ``public_key`` is given. Exit code."""
    document = _document(registry, admin)
    if _open_entry(document["signers"], signer_id) is not None:
        raise RegistryError(f"{registry}: signer {signer_id!r} exists; rotate or revoke it")
    public_key = _new_public_key(signer_id, public_key, key_out, out)
    item = signing.entry(signer_id, role, public_key, accounts, valid_from=valid_from)
    document["signers"].append(item)
    version = _write(registry, document, admin)
    print(f"{registry}: added {role} {signer_id} ({public_key}), version {version}", file=out)
    return 0


def revoke(
    registry: Path, signer_id: str, *, at: datetime | None, admin: Ed25519PrivateKey, out: IO[str]
) -> int:
    """End the signer's current key at ``at`` (default now)."""
    document, current = _in_force(registry, signer_id, admin)
    when = at or datetime.now(UTC)
    current["valid_until"] = signing.utc_text(when)
    version = _write(registry, document, admin)
    print(f"{registry}: {signer_id}'s key revoked from {signing.utc_text(when)}, version "
          f"{version}; workers stop trusting it within seconds", file=out)  # fmt: skip
    return 0


def rotate(
    registry: Path,
    signer_id: str,
    *,
    public_key: str | None,
    key_out: Path | None,
    admin: Ed25519PrivateKey,
    out: IO[str],
    at: datetime | None = None,
) -> int:
    """End the signer's current key at ``at`` (default now) and add a new one from then."""
    document, current = _in_force(registry, signer_id, admin)
    when = at or datetime.now(UTC)
    public_key = _new_public_key(signer_id, public_key, key_out, out)
    current["valid_until"] = signing.utc_text(when)
    item = signing.entry(
        signer_id, current["role"], public_key, current.get("accounts", ()), valid_from=when
    )
    document["signers"].append(item)
    version = _write(registry, document, admin)
    print(f"{registry}: {signer_id} signs with {public_key} from {signing.utc_text(when)}, "
          f"version {version}", file=out)  # fmt: skip
    return 0


def remove(registry: Path, signer_id: str, *, admin: Ed25519PrivateKey, out: IO[str]) -> int:
    document = _document(registry, admin)
    kept = [e for e in document["signers"] if e["id"] != signer_id]
    if len(kept) == len(document["signers"]):
        raise RegistryError(f"{registry}: no signer {signer_id!r}")
    document["signers"] = kept
    version = _write(registry, document, admin)
    print(f"{registry}: removed {signer_id}, version {version}; a replay now refuses its "
          f"old records (revoke keeps them verifiable)", file=out)  # fmt: skip
    return 0


def show(registry: Path, admin_key: Ed25519PublicKey | None, *, out: IO[str]) -> int:
    loaded = signing.load_registry(registry, admin_key)
    checked = "signature checked" if admin_key is not None else "signature NOT checked"
    print(f"{registry}: deployment {loaded.deployment}, version {loaded.version} "
          f"({checked})", file=out)  # fmt: skip
    print(f"{'SIGNER':<20} {'ROLE':<8} {'SIGNS':<16} {'VALID':<43} ACCOUNTS", file=out)
    for signer_id in sorted(loaded.entries):
        for signer in loaded.entries[signer_id]:
            signs = ",".join(sorted(signing.ROLE_TOPICS[signer.role]))
            start = signing.utc_text(signer.valid_from) if signer.valid_from else "always"
            end = signing.utc_text(signer.valid_until) if signer.valid_until else "now"
            print(f"{signer.id:<20} {signer.role:<8} {signs:<16} {start + ' - ' + end:<43} "
                  f"{_served(signer)}", file=out)  # fmt: skip
    return 0


def _served(signer: signing.Signer) -> str:
    if signer.role == "matcher":
        return "any (pairs checked orders)"
    served = ",".join(sorted(signer.accounts) + [p + "*" for p in signer.account_prefixes])
    return served or ("any" if signer.role == "bridge" else "none")
