"""``kessai signers add|remove|list``: the signer registry that workers check records
against (:mod:`streams.security.signers`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streams.cli._common import Commands, fail
from streams.config import Settings
from streams.security import signers
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
            "payments and custody; the matcher signs the trades it makes. See "
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
    remove = actions.add_parser("remove", help="remove a signer")
    remove.add_argument("signer_id", metavar="ID")
    listing = actions.add_parser("list", help="who may sign what")
    for action in (add, remove, listing):
        action.add_argument(
            "--registry",
            type=Path,
            default=None,
            help="the registry file (default: KESSAI_SIGNERS_FILE)",
        )
        action.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    registry = args.registry or settings.signers_file
    if registry is None:
        return fail("no registry: set KESSAI_SIGNERS_FILE or give --registry")
    if args.action == "list":
        return signers.show(registry, out=sys.stdout)
    if args.action == "remove":
        return signers.remove(registry, args.signer_id, out=sys.stdout)
    accounts = [a.strip() for a in args.accounts.split(",") if a.strip()]
    return signers.add(
        registry,
        args.signer_id,
        role=args.role,
        accounts=accounts,
        public_key=args.public_key,
        key_out=args.key_out,
        out=sys.stdout,
    )
