"""``kessai book ISIN``'s data: a bond's books as the engine last committed them.

Read from the engine's ``engine-orders`` changelog with read_committed (the last value
of each row wins, as in a restore), so it needs no running worker and shows exactly
the state a restarted engine would resume from.
"""

from __future__ import annotations

from collections import defaultdict

from streams.config import Settings
from streams.kafka.reader import read_committed
from streams.matching.book import Book, Resting
from streams.matching.matcher import open_orders
from streams.topics import ENGINE_ORDERS, engine_topic

__all__ = ["read_books"]


async def read_books(settings: Settings, isin: str) -> dict[str, Book]:
    """The open books of ``isin`` by currency (and settlement date, for orders that name
    one: "JPYC settling 2026-12-08"), from the changelog of ``settings.app_id``."""
    rows: dict[str, bytes] = {}
    for record in await read_committed(settings, engine_topic(settings.app_id, ENGINE_ORDERS)):
        if record.key is None:
            continue
        key = record.key.decode()  # the row key, [isin, venue, order_id] as JSON
        if record.value is None:
            rows.pop(key, None)
        else:
            rows[key] = record.value
    by_book: dict[tuple[str, str], list[Resting]] = defaultdict(list)
    for row in open_orders(rows.items(), isin):
        assert row.order is not None
        by_book[row.currency, row.settlement_date or ""].append(row.order)
    return {
        f"{currency} settling {date}" if date else currency: Book.restored(
            isin, currency, orders, settlement_date=date or None
        )
        for (currency, date), orders in sorted(by_book.items())
    }
