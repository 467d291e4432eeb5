"""``kessai signers``: keep the signer registry that workers check records against.

- ``kessai signers add ID --role venue --accounts alice,desk-7-*`` makes an Ed25519
  key pair, writes the private key (mode 0600) for the signer to keep, and adds the
  public key to the registry.
- ``kessai signers add ID --role bridge --public-key KEY`` adds a key made elsewhere
  (a venue keeps its private key; the operator only ever sees the public one).
- ``kessai signers list`` prints who may sign what.

The registry is ``KESSAI_SIGNERS_FILE`` (or ``--registry``). Only operators may write
it: the workers trust whatever key it holds (docs/security.md). It is replaced
atomically, so a worker starting meanwhile reads the old one or the new one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import orjson

from streams.security import signing
from streams.security.signing import RegistryError


def _entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    signing.load_registry(path)  # refuse to build on a broken file
    document = orjson.loads(path.read_bytes())
    entries: list[dict[str, Any]] = document["signers"]
    return entries


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    data = orjson.dumps({"signers": entries}, option=orjson.OPT_INDENT_2) + b"\n"
    signing.registry_of(orjson.loads(data), where=str(path))  # what we write must load
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def add(
    registry: Path,
    signer_id: str,
    *,
    role: str,
    accounts: list[str],
    public_key: str | None,
    key_out: Path | None,
    out: IO[str],
) -> int:
    """Add a signer; make its key pair unless ``public_key`` is given. Exit code."""
    entries = _entries(registry)
    if any(entry["id"] == signer_id for entry in entries):
        raise RegistryError(f"{registry}: signer {signer_id!r} exists; remove it first")
    if public_key is None:
        if key_out is None:
            raise RegistryError("say where the new private key goes (--key-out)")
        if key_out.exists():
            raise RegistryError(f"{key_out} exists: not overwriting a private key")
        pem = signing.new_private_key_pem()
        signing.write_private_key(key_out, pem)
        public_key = signing.SigningKey.load(signer_id, key_out).public_text()
        print(f"wrote {signer_id}'s private key to {key_out} (mode 0600): give it to "
              f"{signer_id} only", file=out)  # fmt: skip
    entry: dict[str, Any] = {"id": signer_id, "role": role, "public_key": public_key}
    if accounts:
        entry["accounts"] = accounts
    _write(registry, [*entries, entry])
    print(f"{registry}: added {role} {signer_id} ({public_key})", file=out)
    return 0


def remove(registry: Path, signer_id: str, *, out: IO[str]) -> int:
    entries = _entries(registry)
    kept = [entry for entry in entries if entry["id"] != signer_id]
    if len(kept) == len(entries):
        raise RegistryError(f"{registry}: no signer {signer_id!r}")
    _write(registry, kept)
    print(f"{registry}: removed {signer_id}; restart the workers to stop trusting it", file=out)
    return 0


def show(registry: Path, *, out: IO[str]) -> int:
    loaded = signing.load_registry(registry)
    print(f"{'SIGNER':<20} {'ROLE':<8} {'SIGNS':<16} ACCOUNTS", file=out)
    for signer in sorted(loaded.signers.values(), key=lambda s: s.id):
        signs = ",".join(sorted(signing.ROLE_TOPICS[signer.role]))
        if signer.role == "matcher":
            served = "any (pairs checked orders)"
        else:
            served = ",".join(
                sorted(signer.accounts) + [p + "*" for p in signer.account_prefixes]
            ) or ("any" if signer.role == "bridge" else "none")
        print(f"{signer.id:<20} {signer.role:<8} {signs:<16} {served}", file=out)
    return 0
