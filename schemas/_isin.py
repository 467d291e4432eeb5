"""ISIN check digit (ISO 6166).

Internal helper of :mod:`schemas.models`: every ``isin`` field on every topic is
checked here before a record is accepted, so a mistyped bond never reaches the
ledger. Pure and dependency-free so that it can be property-tested in isolation.

An ISIN is a 2-letter country code, 9 letters or digits, and one check digit.
The check digit is Luhn over the body after each letter is replaced by its
two-digit value (A=10 ... Z=35).
"""

from __future__ import annotations

import re

ISIN_BODY_CHARS = 11
#: Shape only; the check digit is verified by :func:`is_valid_isin`.
ISIN_PATTERN = r"^[A-Z]{2}[A-Z0-9]{9}[0-9]$"
_BODY_RE = re.compile(r"[A-Z]{2}[A-Z0-9]{9}")
_ISIN_RE = re.compile(ISIN_PATTERN)


def _digits(body: str) -> str:
    # int(c, 36) maps "0".."9" to 0..9 and "A".."Z" to 10..35: exactly ISO 6166's table.
    return "".join(str(int(c, 36)) for c in body)


def check_digit(body: str) -> str:
    """The check digit for an 11-character ISIN body, e.g. ``"US037833100"`` -> ``"5"``.

    Raises ``ValueError`` if *body* is not 2 letters followed by 9 letters or digits.
    """
    if _BODY_RE.fullmatch(body) is None:
        raise ValueError(f"not an ISIN body (2 letters + 9 letters/digits): {body!r}")
    total = 0
    # Luhn, counted from the right: the digit next to the (absent) check digit is doubled.
    for i, c in enumerate(reversed(_digits(body))):
        d = int(c)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def is_valid_isin(text: str) -> bool:
    """True if *text* has the ISIN shape (upper case only) and a correct check digit."""
    if _ISIN_RE.fullmatch(text) is None:
        return False
    return check_digit(text[:ISIN_BODY_CHARS]) == text[ISIN_BODY_CHARS]
