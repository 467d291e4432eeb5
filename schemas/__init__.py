"""kessai's wire formats: one frozen pydantic model per public Kafka topic.

Everything outside this package imports from here and nowhere deeper: :func:`decode` turns a
record's bytes into its model (or raises :class:`SchemaError` with a reason code for
the ``rejections`` topic), :func:`encode` and :func:`key_for` turn a model back into
a record. ``python -m schemas.gen`` writes the JSON Schemas in ``schemas/json/``.
"""

from schemas._isin import check_digit, is_valid_isin
from schemas.codec import (
    Reason,
    SchemaError,
    Source,
    check_key,
    decode,
    encode,
    key_for,
    rejection_for,
    source_of,
)
from schemas.models import (
    CUSTODY,
    FACE_JPY_MIN,
    IDENTIFIER_CHARS,
    IDENTIFIER_CHARS_MAX,
    KEY_BYTES_MAX,
    LEDGER_EVENTS,
    ORDER_EVENTS,
    ORDERS,
    PAYMENTS,
    QUANTITY_MAX,
    REJECTIONS,
    SETTLEMENTS,
    TOPIC_MODELS,
    TRADES,
    VALUE_BYTES_MAX,
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
    "FACE_JPY_MIN",
    "IDENTIFIER_CHARS",
    "IDENTIFIER_CHARS_MAX",
    "KEY_BYTES_MAX",
    "LEDGER_EVENTS",
    "ORDERS",
    "ORDER_EVENTS",
    "PAYMENTS",
    "QUANTITY_MAX",
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
    "Source",
    "SubmitOrder",
    "TradeExecuted",
    "check_digit",
    "check_key",
    "decode",
    "encode",
    "is_valid_isin",
    "key_for",
    "rejection_for",
    "source_of",
]
