"""``kessai book ISIN``: a bond's books as the matcher last committed them.

Read from the ``orders`` table's changelog with read_committed (the last value of
each row wins, as in faust's recovery), so it needs no running worker and shows
exactly the state a restarted worker would resume from.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import orjson

from streams.config import Settings
from streams.kafkaio import read_committed
from streams.matching.book import Book, Resting
from streams.matching.core import open_orders

#: Price levels shown per side unless asked otherwise.
LEVELS_DEFAULT = 10


def changelog_topic(app_id: str) -> str:
    """faust's name for the ``orders`` table's changelog."""
    return f"{app_id}-orders-changelog"


async def read_books(
    bootstrap: str, app_id: str, isin: str, *, settings: Settings | None = None
) -> dict[str, Book]:
    """The open books of *isin*, by currency (``settings``: the credentials to read with)."""
    rows: dict[str, bytes] = {}
    for record in await read_committed(bootstrap, changelog_topic(app_id), settings=settings):
        if record.key is None:
            continue
        # faust's key codec for key_type=str is JSON: the row key is a JSON string.
        key = orjson.loads(record.key)
        if record.value is None:
            rows.pop(key, None)
        else:
            rows[key] = record.value
    by_currency: dict[str, list[Resting]] = defaultdict(list)
    for row in open_orders(rows.items(), isin):
        assert row.order is not None
        by_currency[row.currency].append(row.order)
    return {
        currency: Book.restored(isin, currency, orders)
        for currency, orders in sorted(by_currency.items())
    }


def depth_json(books: dict[str, Book], levels: int) -> dict[str, Any]:
    def side(entries: list[tuple[Decimal, int, int]]) -> list[dict[str, Any]]:
        return [{"price": _plain(p), "quantity": q, "orders": n} for p, q, n in entries]

    out: dict[str, Any] = {}
    for currency, book in books.items():
        bids, asks = book.depth(levels)
        out[currency] = {"bids": side(bids), "asks": side(asks), "orders": len(book)}
    return out


def depth_table(isin: str, books: dict[str, Book], levels: int) -> str:
    if not books:
        return f"{isin}: no resting orders\n"
    lines: list[str] = []
    for currency, book in books.items():
        bids, asks = book.depth(levels)
        plural = "" if len(book) == 1 else "s"
        lines.append(f"{isin} in {currency}: {len(book):,} resting order{plural}")
        lines.append(
            f"{'orders':>7} {'bid face':>16} {'bid':>10} | {'ask':<10} {'ask face':<16} orders"
        )
        for i in range(max(len(bids), len(asks))):
            b = bids[i] if i < len(bids) else None
            a = asks[i] if i < len(asks) else None
            left = f"{b[2]:>7,} {b[1]:>16,} {_plain(b[0]):>10}" if b else " " * 35
            right = f"{_plain(a[0]):<10} {a[1]:<16,} {a[2]:,}" if a else ""
            lines.append(f"{left} | {right}".rstrip())
        lines.append("")
    return "\n".join(lines)


def _plain(price: Decimal) -> str:
    """A price as the wire writes it: plain digits, never an exponent (``1E-7``)."""
    return format(price, "f")
