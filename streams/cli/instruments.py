"""``kessai instruments load [FILE]`` and ``kessai instruments list``: the security
master (topic ``instruments``, docs/bonds.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib import resources
from pathlib import Path

from schemas import INSTRUMENTS, Instrument, SchemaError, decode
from streams import topics
from streams.cli._common import Commands, fail
from streams.config import Settings
from streams.kafka.publish import publish_file
from streams.kafka.reader import read_committed

__all__ = ["REFERENCE", "add_parser", "reference_file", "reference_instruments"]

#: The reference security master shipped with kessai: current-looking JGB issues.
REFERENCE = "jgbs.jsonl"


def reference_file() -> Path:
    """The path of the reference file inside the installed package."""
    return Path(str(resources.files("streams.bonds") / "reference" / REFERENCE))


def reference_instruments() -> list[Instrument]:
    """The reference file's bonds, as the engine takes them (the demo's figures)."""
    out = []
    for line in reference_file().read_bytes().splitlines():
        if line.strip():
            bond = decode(INSTRUMENTS, line)
            assert isinstance(bond, Instrument)
            out.append(bond)
    return out


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "instruments",
        help="publish the security master, or list the bonds the engine knows",
        description=(
            "The security master: the JGBs kessai settles, each with its coupon, dates, "
            "face unit, price tick and status (docs/bonds.md). A trade or custody "
            "movement of any other bond is refused, unknown_isin."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser(
        "load",
        help="validate a JSON-lines file of instruments and publish it to `instruments`",
        description=(
            "Publish one instrument per line of FILE (default: the reference file of "
            f"current JGB issues shipped with kessai, {REFERENCE}). Every line is "
            "validated first; if any is invalid, each is printed as FILE:LINE: reason: "
            "detail and nothing is published (exit 1). Under the secure profile the "
            "records are signed with KESSAI_SIGNING_KEY_FILE as KESSAI_SIGNER_ID, a "
            "signer of role `instruments`. Publishing a bond again may change only its "
            "status and price tick (and a floating bond's coupon rate); the engine "
            "refuses any other change, instrument_terms_changed."
        ),
    )
    load.add_argument("file", metavar="FILE", nargs="?", default=None, help="a .jsonl file")
    load.set_defaults(handler=_load)
    listing = actions.add_parser(
        "list",
        help="list the bonds the settlement engine accepted (its committed state)",
        description=(
            "One line per bond the settlement engine took from `instruments`, as it "
            "last committed it (its changelog, read_committed): no worker needs to run."
        ),
    )
    listing.set_defaults(handler=_list)


def _load(args: argparse.Namespace, settings: Settings) -> int:
    path = args.file or str(reference_file())
    return publish_file(settings, INSTRUMENTS, path)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    name = topics.engine_topic(settings.app_id, topics.ENGINE_INSTRUMENTS)
    try:
        records = asyncio.run(read_committed(settings, name))
    except TimeoutError as err:
        return fail(str(err))
    latest: dict[bytes, bytes | None] = {}
    for record in records:
        latest[record.key] = record.value
    bonds: list[Instrument] = []
    for value in latest.values():
        try:
            bond = decode(INSTRUMENTS, value)
        except SchemaError:
            continue  # a tombstone
        assert isinstance(bond, Instrument)
        bonds.append(bond)
    sys.stdout.write(table(bonds))
    return 0


def table(bonds: list[Instrument]) -> str:
    """The bonds as a table, by maturity."""
    if not bonds:
        return "no instruments: publish some with `kessai instruments load`\n"
    lines = [
        f"{'ISIN':<13}{'SERIES':<36}{'KIND':<18}{'COUPON %':>9}  {'MATURITY':<11}"
        f"{'UNIT':>8}  {'TICK':<6}STATUS"
    ]
    for b in sorted(bonds, key=lambda b: (b.maturity_date, b.isin)):
        lines.append(
            f"{b.isin:<13}{b.series[:35]:<36}{b.kind:<18}{format(b.coupon_rate, 'f'):>9}  "
            f"{b.maturity_date.isoformat():<11}{b.face_unit:>8}  "
            f"{format(b.price_tick, 'f'):<6}{b.status}"
        )
    return "\n".join(lines) + "\n"
