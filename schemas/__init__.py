"""kessai's wire formats: one frozen pydantic model per public Kafka topic.

Agents in :mod:`streams` import from here and nowhere deeper: :func:`decode` turns a
record's bytes into its model (or raises :class:`SchemaError` with a reason code for
the ``rejections`` topic), :func:`encode` and :func:`key_for` turn a model back into
a record. ``python -m schemas.gen`` writes the JSON Schemas in ``schemas/json/``.
"""

from schemas.codec import (
    VALUE_BYTES_MAX,
    Reason,
    SchemaError,
    decode,
    encode,
    key_for,
    rejection_for,
)
from schemas.models import (
    CUSTODY,
    LEDGER_EVENTS,
    MIN_FACE_JPY,
    ORDER_EVENTS,
    ORDERS,
    PAYMENTS,
    REJECTIONS,
    SETTLEMENTS,
    TOPIC_MODELS,
    TRADES,
    BalanceChanged,
    MoveBonds,
    MoveCash,
    OrderStatusChanged,
    RecordRejected,
    SettlementStatusChanged,
    SubmitOrder,
    TradeExecuted,
)

__all__ = [
    "CUSTODY",
    "LEDGER_EVENTS",
    "MIN_FACE_JPY",
    "ORDERS",
    "ORDER_EVENTS",
    "PAYMENTS",
    "REJECTIONS",
    "SETTLEMENTS",
    "TOPIC_MODELS",
    "TRADES",
    "VALUE_BYTES_MAX",
    "BalanceChanged",
    "MoveBonds",
    "MoveCash",
    "OrderStatusChanged",
    "Reason",
    "RecordRejected",
    "SchemaError",
    "SettlementStatusChanged",
    "SubmitOrder",
    "TradeExecuted",
    "decode",
    "encode",
    "key_for",
    "rejection_for",
]
