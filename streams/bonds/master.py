"""What one ``instruments`` record does to the security master. Pure.

:func:`instrument_record` decodes the record, checks its key and (when signatures are
checked) the ``instruments`` role's signature, and refuses a change of a bond's terms:
once published, a bond's kind, coupon dates, dates and face unit stay as they were
(a trade settled on them would no longer add up); its ``status`` and ``price_tick``
may change, and a floating bond's ``coupon_rate`` (it resets each period). The
settlement engine keeps what passes (:mod:`streams.engine.core`), and ``kessai
replay`` runs the same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from schemas import INSTRUMENTS, Instrument, SchemaError, check_key, decode
from streams.security import signing

__all__ = ["instrument_record"]

#: Why a record was rejected: (reason code, detail).
Rejected = tuple[str, str]

#: What a later record of a bond may change; a floating bond's coupon too.
_MUTABLE: Final = frozenset({"status", "price_tick", "signer", "signature", "valid_until"})


def instrument_record(
    key: bytes | None,
    value: bytes | None,
    known: Mapping[str, Instrument],
    *,
    signers: signing.Registry | None = None,
    arrived_s: float = 0.0,
    verified: dict[str, Any] | Rejected | None = None,
) -> Instrument | Rejected:
    """The instrument an ``instruments`` record defines or updates, or why not."""
    try:
        check_key(key)
        decoded = decode(INSTRUMENTS, value)
    except SchemaError as err:
        return err.reason, err.detail
    assert isinstance(decoded, Instrument)
    assert value is not None  # decode refuses a tombstone
    if key != decoded.isin.encode():
        return "wrong_key", f"an instrument is keyed by its isin {decoded.isin!r}, not {key!r}"
    if signers is not None:
        if verified is None:
            at = signing.broker_time(arrived_s)
            verified = signing.verify(signers, INSTRUMENTS, key, value, at)
        if isinstance(verified, tuple):
            return verified
    before = known.get(decoded.isin)
    if before is not None:
        changed = _terms_changed(before, decoded)
        if changed:
            return (
                "instrument_terms_changed",
                f"{decoded.isin}: {', '.join(changed)} may not change once published "
                f"(only status, price_tick, and a floating bond's coupon_rate)",
            )
    return decoded


def _terms_changed(before: Instrument, after: Instrument) -> list[str]:
    mutable = _MUTABLE | ({"coupon_rate"} if before.kind == "floating" else set())
    return [
        name
        for name in Instrument.model_fields
        if name not in mutable and getattr(before, name) != getattr(after, name)
    ]
