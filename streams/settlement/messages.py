"""The trade a DvP saga settles, as the engine accepted it. Pure."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Trade"]


@dataclass(frozen=True, slots=True)
class Trade:
    """A trade to settle, as the engine accepted it: the cash leg in units."""

    trade_id: str
    isin: str
    buyer: str
    seller: str
    quantity: int
    currency: str
    cash_units: int
    deadline_at_s: float
    #: The venue's trade_time and the record's arrival on ``trades`` (broker time),
    #: epoch seconds, for the latency metrics (0: unknown).
    trade_time_s: float = 0.0
    arrived_s: float = 0.0
    #: The venue's signed trade record (:func:`streams.security.signing.evidence`), kept
    #: for the ``settlements`` records; "" when signatures are not checked.
    signed: str = ""
    #: The dates and amounts a ``settlements`` record carries so that an auditor can
    #: recompute the cash (issue 20): the clean price as the venue wrote it, ISO dates,
    #: principal and accrued in units (cash_units = principal + accrued), the days of
    #: accrued (None: not computed by kessai). "" / None: a trade accepted before dates
    #: existed (an engine without ``settlement_lag``), whose records carry none.
    price: str = ""
    trade_date: str = ""
    settlement_date: str = ""
    principal_units: int | None = None
    accrued_units: int | None = None
    days_accrued: int | None = None
    #: 00:00 JST of the settlement date: the saga waits until then (0: it need not).
    starts_at_s: float = 0.0
    #: The venue allows partial settlement (``partial: allowed``; docs/fails.md).
    partial: bool = False
    #: The venue that sent it: the one that may cancel it ("": a trade accepted before
    #: cancellations existed, which none may).
    venue: str = ""
    #: A trade paid in a token other than JPYC (streams/settlement/fx.py): the yen per
    #: token it converted at, as written, its source and time (UTC text); its
    #: principal and accrued units are then whole yen, its cash_units the token's.
    #: "": a JPYC trade, or one taken before rates existed (priced in its token).
    fx_rate: str = ""
    fx_source: str = ""
    fx_time: str = ""
