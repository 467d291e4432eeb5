"""A bond's books as depth: price levels best first, the face and orders at each. Pure.

What ``kessai book ISIN`` prints (a table, or JSON); :mod:`streams.audit.books` reads
the books it draws from the matcher's committed rows.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from streams.matching.book import Book

#: Price levels shown per side unless asked otherwise.
LEVELS_DEFAULT = 10


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
