"""``kessai signers init|add|rotate|revoke|remove|list``: the signer registry that
workers check records against (:mod:`streams.security.signers`)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams.cli._common import Commands, fail
from streams.config import Settings
from streams.security import signers, signing
from streams.security.signing import ROLE_TOPICS


def add_parser(commands: Commands) -> None:
    command = commands.add_parser(
        "signers",
        help="keep the signer registry: venues', the bridge's and the matcher's public keys",
        description=(
            "Keep the signer registry (KESSAI_SIGNERS_FILE, or --registry) that workers "
            "check every trade, order, payment and custody record against when signature "
            "checks are on (KESSAI_VERIFY_SIGNATURES, or the sasl_ssl profile). A venue "
            "signs trades and orders for the accounts listed with it; the bridge signs "
            "payments and custody; the matcher signs the trades it makes. Every write signs "
            "the file with the operators' admin key (KESSAI_REGISTRY_ADMIN_KEY_FILE) and "
            "raises its version; workers trust only what that key signed "
            "(KESSAI_REGISTRY_KEY), and re-read the file within a second of a change. See "
            "docs/security.md."
        ),
    )
    actions = command.add_subparsers(title="actions", dest="action", metavar="ACTION")
    actions.required = True
    add = actions.add_parser(
        "add",
        help="add a signer, making its key pair unless --public-key is given",
        description=(
            "Add a signer. Without --public-key, a new Ed25519 key pair is made: the "
            "private key goes to --key-out (mode 0600) for the signer to keep, the public "
            "key into the registry."
        ),
    )
    add.add_argument("signer_id", metavar="ID", help="the signer's id: a venue's `venue`")
    add.add_argument("--role", required=True, choices=sorted(ROLE_TOPICS))
    add.add_argument(
        "--accounts",
        default="",
        help="a venue's accounts, comma-separated; a trailing * is a prefix (desk-7-*)",
    )
    add.add_argument(
        "--public-key", default=None, help="32 bytes, unpadded base64url, made elsewhere"
    )
    add.add_argument("--key-out", type=Path, default=None, help="where the new private key goes")
    others = _add_other_actions(actions)
    for action in (add, *others):
        action.add_argument(
            "--registry",
            type=Path,
            default=None,
            help="the registry file (default: KESSAI_SIGNERS_FILE)",
        )
        action.add_argument(
            "--admin-key",
            type=Path,
            default=None,
            help="the operators' admin key (PEM) that signs the registry "
            "(default: KESSAI_REGISTRY_ADMIN_KEY_FILE); `list` checks with KESSAI_REGISTRY_KEY",
        )
        action.set_defaults(handler=run)


def _add_other_actions(actions: Any) -> list[argparse.ArgumentParser]:
    init = actions.add_parser("init", help="start an empty registry for a deployment")
    init.add_argument(
        "--deployment",
        default=None,
        help="the deployment's id, signed into every record (default: KESSAI_DEPLOYMENT)",
    )
    rotate = actions.add_parser(
        "rotate",
        help="end a signer's key now and add a new one from now (old records still verify)",
    )
    rotate.add_argument("signer_id", metavar="ID")
    rotate.add_argument("--public-key", default=None, help="the new key, made elsewhere")
    rotate.add_argument("--key-out", type=Path, default=None, help="where a new private key goes")
    revoke = actions.add_parser(
        "revoke", help="end a signer's key (default now); records it signed before still verify"
    )
    revoke.add_argument("signer_id", metavar="ID")
    revoke.add_argument("--at", type=_utc, default=None, help="when, ISO-8601 UTC (default now)")
    remove = actions.add_parser(
        "remove", help="forget a signer and its keys: a replay then refuses its old records"
    )
    remove.add_argument("signer_id", metavar="ID")
    listing = actions.add_parser("list", help="who may sign what, with which key when")
    return [init, rotate, revoke, remove, listing]


def _utc(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from err
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"say the zone: {text!r} (2026-12-04T09:00:00+09:00)")
    return moment.astimezone(UTC)


def run(args: argparse.Namespace, settings: Settings) -> int:
    registry = args.registry or settings.signers_file
    if registry is None:
        return fail("no registry: set KESSAI_SIGNERS_FILE or give --registry")
    if args.action == "list":
        admin_key = None
        if settings.registry_key is not None:
            admin_key = signing.public_key_of(settings.registry_key, where="KESSAI_REGISTRY_KEY")
        return signers.show(registry, admin_key, out=sys.stdout)
    admin_file = args.admin_key or settings.registry_admin_key_file
    if admin_file is None:
        return fail(
            "the registry is signed: set KESSAI_REGISTRY_ADMIN_KEY_FILE or give --admin-key"
        )
    admin = signing.load_admin_key(admin_file)
    out = sys.stdout
    if args.action == "init":
        deployment = args.deployment or settings.deployment
        if deployment is None:
            return fail("say the deployment's id: --deployment or KESSAI_DEPLOYMENT")
        return signers.init(registry, deployment, admin, out=out)
    if args.action == "revoke":
        return signers.revoke(registry, args.signer_id, at=args.at, admin=admin, out=out)
    if args.action == "remove":
        return signers.remove(registry, args.signer_id, admin=admin, out=out)
    if args.action == "rotate":
        return signers.rotate(
            registry, args.signer_id, public_key=args.public_key, key_out=args.key_out,
            admin=admin, out=out,
        )  # fmt: skip
    accounts = [a.strip() for a in args.accounts.split(",") if a.strip()]
    return signers.add(
        registry,
        args.signer_id,
        role=args.role,
        accounts=accounts,
        public_key=args.public_key,
        key_out=args.key_out,
        admin=admin,
        out=out,
    )
