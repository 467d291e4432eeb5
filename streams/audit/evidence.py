"""``kessai verify-settlements``: check every settlement back to the venue that signed it.

Each ``settlements`` record of a signed trade carries ``signed_trade``: the trade as
the venue signed it (docs/security.md). For every committed settlement record this
checks, with the signer registry and nothing else:

- the signature verifies, and the signer may sign that trade (:meth:`Registry.check`:
  role, venue, the venue's accounts, its trade ids);
- the signed trade is this settlement's: same ``trade_id``, ``isin``, ``buyer``,
  ``seller``, ``quantity`` and ``currency``;
- each trade has one terminal status (settled or failed), never two;
- the cash that settled is what the signed trade says: face × price / 100 + accrued,
  truncated to the token's decimals (:func:`streams.money.cash_units`).

A trade kessai's matcher made (issue 21: in the engine, id ``m-`` and 32 hex digits)
has no signed trade: no venue signed it; its evidence is the venues' signed orders on
``orders`` (the fills on ``order-events`` name it). It is counted apart, not as
unsigned (a signing venue's trade ids start with its own prefix, never ``m-``).
Any other settlement without ``signed_trade`` is counted as unsigned; it is a problem
when signatures are required (``--require-signed``, the default when the settings
check signatures). Pure but for :func:`verify_settlements_main`'s read.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import orjson

from schemas import SETTLEMENTS, TRADES
from streams.config import Settings
from streams.kafka.reader import read_committed
from streams.matching.book import MATCHED_TRADE_ID
from streams.money import cash_units, to_units
from streams.security import signing
from streams.settlement.fx import convert

#: Problems printed; the rest are counted.
PROBLEMS_SHOWN_MAX: Final = 20
#: The members a settlement shares with the trade it settles.
SHARED: Final = ("trade_id", "isin", "buyer", "seller", "quantity", "currency")
#: Statuses that end a trade: each trade has exactly one.
TERMINAL: Final = ("settled", "failed", "cancelled")
#: The id of a trade kessai's matcher made (streams/matching/book.py ``fill_trade_id``).
MATCHED_ID: Final = MATCHED_TRADE_ID

PROG = "kessai"


def check_settlement(
    settlement: dict[str, Any], registry: signing.Registry, tokens: dict[str, int]
) -> str | None:
    """Why ``settlement`` does not trace back to a signed trade; None when it does, and
    ``"unsigned"`` when it carries none."""
    text = settlement.get("signed_trade")
    if not text:
        return "unsigned"
    try:
        signed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "signed_trade is not JSON"
    if not isinstance(signed, dict):
        return "signed_trade is not a JSON object"
    try:
        # A trade is keyed by its id; the broker's time is not kept, so each key of the
        # signer valid while the trade's valid_until allows is tried.
        key = str(signed.get("trade_id")).encode()
        refused = registry.check(TRADES, key, signed, None)
    except (KeyError, TypeError, AttributeError, ValueError):  # not a trade's members
        return "signed_trade is not a trade"
    if refused is not None:
        return f"signed_trade refused: {refused[0]}: {refused[1]}"
    for name in SHARED:
        if signed.get(name) != settlement.get(name):
            return (
                f"{name} is {settlement.get(name)!r} here, {signed.get(name)!r} in the signed trade"
            )
    decimals = tokens.get(settlement["currency"])
    if decimals is None:
        return f"currency {settlement['currency']!r} is not configured"
    signed_units = _signed_units(signed, settlement, decimals)
    if isinstance(signed_units, str):
        return signed_units
    settled_units = to_units(Decimal(settlement["cash_amount"]), decimals)
    if settled_units != signed_units:
        return (
            f"cash_amount {settlement['cash_amount']} is not what the signed trade "
            f"makes ({signed_units} units of {settlement['currency']})"
        )
    return None


def _signed_units(signed: dict[str, Any], settlement: dict[str, Any], decimals: int) -> int | str:
    """The cash the signed trade makes, in units; or what is wrong. A settlement that
    carries its principal and accrued (issue 20) is checked part by part: the principal
    is the signed face at the signed price, truncated; the accrued the venue's when it
    signed one (else kessai's, from the security master, which the record states)."""
    try:
        price = Decimal(signed["price"])
        venue_accrued = signed.get("accrued_interest")
        if "principal" not in settlement:  # before issue 20: one truncation of the sum
            accrued = Decimal(venue_accrued or "0")
            return cash_units(signed["quantity"], price, accrued, decimals)
        if settlement.get("fx_rate") != signed.get("fx_rate"):
            return f"fx_rate {settlement.get('fx_rate')} here, {signed.get('fx_rate')} signed"
        # Converted at fx_rate: the terms in whole yen, the cash in the token.
        terms = 0 if "fx_rate" in settlement else decimals
        principal = cash_units(signed["quantity"], price, Decimal(0), terms)
        accrued_units = to_units(Decimal(settlement["accrued"]), terms)
        if settlement.get("price") != signed["price"]:
            return f"price {settlement.get('price')} here, {signed['price']} in the signed trade"
        if to_units(Decimal(settlement["principal"]), terms) != principal:
            return f"principal {settlement['principal']} is not face x price / 100, truncated"
        if venue_accrued is not None and accrued_units != cash_units(
            0, Decimal(1), Decimal(venue_accrued), terms
        ):
            return f"accrued {settlement['accrued']} is not the signed {venue_accrued}"
        if accrued_units is None:
            return f"accrued {settlement['accrued']} has more than {terms} decimals"
        if "fx_rate" in settlement:
            return convert(principal + accrued_units, Decimal(settlement["fx_rate"]), decimals)
    except (KeyError, TypeError, ArithmeticError):  # InvalidOperation, Overflow
        return "signed_trade has no valid price"
    return principal + accrued_units


@dataclass
class Report:
    records: int = 0
    verified: int = 0
    unsigned: int = 0
    #: Records of trades kessai's matcher made (module doc).
    matched: int = 0
    signers: Counter[str] = field(default_factory=Counter)
    #: (partition, offset, trade_id, what is wrong)
    problems: list[tuple[int, int, str, str]] = field(default_factory=list)


def check_records(records: list[Any], registry: signing.Registry, tokens: dict[str, int]) -> Report:
    report = Report()
    terminal: Counter[str] = Counter()
    for r in records:
        try:
            value = orjson.loads(r.value) if r.value is not None else None
        except orjson.JSONDecodeError:
            value = None
        report.records += 1
        if not isinstance(value, dict):
            report.problems.append((r.partition, r.offset, "?", "not a JSON object"))
            continue
        trade_id = str(value.get("trade_id"))
        if value.get("status") in TERMINAL:
            terminal[trade_id] += 1
            if terminal[trade_id] == 2:  # once per trade: a trade settles or fails once
                report.problems.append(
                    (r.partition, r.offset, trade_id, "a second terminal status")
                )
        try:
            problem = check_settlement(value, registry, tokens)
        except (KeyError, TypeError, ArithmeticError) as err:  # InvalidOperation, Overflow
            problem = f"not a settlement record ({err!r})"
        if problem == "unsigned" and MATCHED_ID.fullmatch(trade_id):
            report.matched += 1
        elif problem == "unsigned":
            report.unsigned += 1
        elif problem is not None:
            report.problems.append((r.partition, r.offset, trade_id, problem))
        else:
            report.verified += 1
            report.signers[orjson.loads(value["signed_trade"])["signer"]] += 1
    return report


def verify_settlements_main(settings: Settings, *, topic: str, require_signed: bool) -> int:
    try:
        registry = signing.registry_for(settings, what="verify-settlements")
    except signing.RegistryError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    records = asyncio.run(read_committed(settings, topic))
    report = check_records(records, registry, settings.tokens)
    by_signer = ", ".join(f"{n:,} by {s}" for s, n in sorted(report.signers.items()))
    print(
        f"{topic}: {report.records:,} committed records: {report.verified:,} trace back to a "
        f"signed trade ({by_signer or 'none'}), {report.matched:,} of trades kessai "
        f"matched (their evidence: the venues' signed orders), {report.unsigned:,} "
        f"unsigned, {len(report.problems):,} with problems"
    )
    for partition, offset, trade_id, problem in report.problems[:PROBLEMS_SHOWN_MAX]:
        print(f"  {topic}/{partition}@{offset} {trade_id}: {problem}")
    if len(report.problems) > PROBLEMS_SHOWN_MAX:
        print(f"  ... and {len(report.problems) - PROBLEMS_SHOWN_MAX:,} more")
    if report.problems or (require_signed and report.unsigned):
        return 1
    return 0


__all__ = ["SETTLEMENTS", "check_records", "check_settlement", "verify_settlements_main"]
