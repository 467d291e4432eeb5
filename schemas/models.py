"""The records on kessai's public Kafka topics, as frozen pydantic models.

Every byte that enters or leaves the pipeline passes through one of these models
(via :mod:`schemas.codec`, the only module that turns bytes into models and back).
Venues write ``trades`` and ``orders``, custodians and chains write ``custody`` and
``payments``; kessai writes ``settlements``, ``ledger-events`` and ``rejections``.

Names follow the house style: commands are imperative (:class:`MoveCash`,
:class:`MoveBonds`, :class:`SubmitOrder`), facts are past tense (:class:`TradeExecuted`,
:class:`SettlementStatusChanged`, :class:`BalanceChanged`, :class:`RecordRejected`).

Money is exact. Amounts and prices are :class:`~decimal.Decimal` inside and decimal
strings on the wire; a JSON number is refused where money is expected, because by the
time it reaches us it may already have been through a float. Face quantities are
integers of yen.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, NoReturn

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas._isin import ISIN_PATTERN, is_valid_isin

# --- Topic names -------------------------------------------------------------------

PAYMENTS: Final = "payments"
CUSTODY: Final = "custody"
TRADES: Final = "trades"
ORDERS: Final = "orders"
SETTLEMENTS: Final = "settlements"
REJECTIONS: Final = "rejections"
LEDGER_EVENTS: Final = "ledger-events"
ORDER_EVENTS: Final = "order-events"
INSTRUMENTS: Final = "instruments"
CLOCK: Final = "clock"
RESERVES: Final = "reserves"
PENALTIES: Final = "penalties"
CANCELLATIONS: Final = "cancellations"
FX_RATES: Final = "fx-rates"

# --- Limits (TigerBeetle: put a limit on everything) -------------------------------

#: Minimum face amount of 2-40 year JGBs; traded quantities are whole multiples of it.
FACE_JPY_MIN: Final = 50_000
#: Largest integer quantity accepted. 2**53 - 1 is the largest integer every JSON reader
#: (JavaScript included) holds exactly, and is still ~8x all JGBs outstanding (~¥1.07e15).
QUANTITY_MAX: Final = 2**53 - 1
#: Per-account ledger sequence numbers fit a signed 64-bit integer, like Kafka offsets.
SEQ_MAX: Final = 2**63 - 1
#: Longest decimal string: room for 10**30 with 18 decimals, far beyond any real amount.
DECIMAL_CHARS_MAX: Final = 64
IDENTIFIER_CHARS_MAX: Final = 128
REASON_CHARS_MAX: Final = 64
#: Kafka's own limit on topic-name length.
TOPIC_CHARS_MAX: Final = 249
DETAIL_CHARS_MAX: Final = 1_000
#: A rejection carries the bad record's key (cut to this many characters) and points at
#: its value (topic, partition, offset, SHA-256) instead of quoting it: every rejection
#: stays far below the producer's request limit whatever came in (docs/security.md).
REJECTED_KEY_CHARS_MAX: Final = 256
#: Largest input key and value kessai reads: a key is an id (at most
#: IDENTIFIER_CHARS_MAX characters of up to 4 UTF-8 bytes), a value one JSON record
#: (real ones are under 2 KiB, signed ones included). Larger is rejected `malformed`.
KEY_BYTES_MAX: Final = 4 * IDENTIFIER_CHARS_MAX
VALUE_BYTES_MAX: Final = 65_536
TIME_CHARS_MAX: Final = 40

# --- Field types -------------------------------------------------------------------
# Each type is a PlainValidator (so that pydantic's lax coercions, such as float ->
# Decimal or "1700000000" -> datetime, can never apply), a serializer for the wire
# form, and a hand-written JSON schema that says exactly what the wire accepts.
# Errors are PydanticCustomError: their `type` is what the codec maps to reason codes.


def _fail(error_type: str, message: str) -> NoReturn:
    raise PydanticCustomError(error_type, message)


# Plain decimal notation only: no sign "+", no exponent, no "NaN"/"Infinity", no ".5" or "5.".
_DECIMAL_PATTERN = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"
_NON_NEGATIVE_DECIMAL_PATTERN = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"
# Positive: a leading non-zero digit, or "0." followed by at least one non-zero digit.
_POSITIVE_DECIMAL_PATTERN = r"^([1-9][0-9]*(\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)$"
_DECIMAL_RE = re.compile(_DECIMAL_PATTERN)

DecimalSign = Literal["positive", "non_negative", "any"]
_DECIMAL_RULE: dict[DecimalSign, tuple[str, str]] = {
    "positive": ("must be a decimal string > 0", _POSITIVE_DECIMAL_PATTERN),
    "non_negative": ("must be a decimal string >= 0", _NON_NEGATIVE_DECIMAL_PATTERN),
    "any": ("must be a decimal string", _DECIMAL_PATTERN),
}


def _decimal_to_str(value: Decimal) -> str:
    # "f" never uses exponent notation: Decimal("1E+3") is written "1000".
    return format(value, "f")


def _decimal_validator(sign: DecimalSign) -> Callable[[Any], Decimal]:
    message = _DECIMAL_RULE[sign][0]

    def validate(value: Any) -> Decimal:
        if isinstance(value, str):
            if len(value) > DECIMAL_CHARS_MAX or _DECIMAL_RE.fullmatch(value) is None:
                _fail("decimal_str", message)
            number = Decimal(value)  # exact: construction from str never rounds
        elif isinstance(value, Decimal):
            # Python callers (the agents) hand over Decimals; JSON never produces one.
            if not value.is_finite() or len(_decimal_to_str(value)) > DECIMAL_CHARS_MAX:
                _fail("decimal_str", message)
            number = value
        else:
            # int and float included: a JSON number may already have been a float.
            _fail("decimal_str", message)
        if (sign == "positive" and number <= 0) or (sign == "non_negative" and number < 0):
            _fail("decimal_str", message)
        if number.is_zero() and number.is_signed():
            # Decimal("-0") would be written "-0", which the non-negative pattern refuses.
            number = number.copy_abs()
        return number

    return validate


def _decimal_json_schema(sign: DecimalSign) -> WithJsonSchema:
    message, pattern = _DECIMAL_RULE[sign]
    return WithJsonSchema(
        {
            "type": "string",
            "pattern": pattern,
            "maxLength": DECIMAL_CHARS_MAX,
            "description": f"Exact decimal: {message.removeprefix('must be ')}.",
        }
    )


_DECIMAL_SERIALIZER = PlainSerializer(_decimal_to_str, return_type=str, when_used="json")

# The aliases are spelt out (not built by a function) so that mypy sees real types.
#: Money and prices that must be > 0.
PositiveDecimalStr = Annotated[
    Decimal,
    PlainValidator(_decimal_validator("positive")),
    _DECIMAL_SERIALIZER,
    _decimal_json_schema("positive"),
]
#: Money that may be zero (accrued interest, balances).
NonNegativeDecimalStr = Annotated[
    Decimal,
    PlainValidator(_decimal_validator("non_negative")),
    _DECIMAL_SERIALIZER,
    _decimal_json_schema("non_negative"),
]
#: Signed amounts (ledger deltas).
DecimalStr = Annotated[
    Decimal,
    PlainValidator(_decimal_validator("any")),
    _DECIMAL_SERIALIZER,
    _decimal_json_schema("any"),
]


@dataclass(frozen=True, kw_only=True)
class _IntRule:
    minimum: int
    maximum: int
    multiple_of: int = 1
    message: str
    error_type: str

    def validate(self, value: Any) -> int:
        # bool is a subclass of int, and `true` is not a quantity. Strings and floats are
        # refused too: a quantity is a JSON integer, nothing else.
        if (
            type(value) is not int
            or not self.minimum <= value <= self.maximum
            or value % self.multiple_of != 0
        ):
            _fail(self.error_type, self.message)
        return value

    def json_schema(self) -> WithJsonSchema:
        schema: dict[str, Any] = {"type": "integer", "minimum": self.minimum}
        schema["maximum"] = self.maximum
        if self.multiple_of != 1:
            schema["multipleOf"] = self.multiple_of
        return WithJsonSchema(schema)


_QUANTITY = _IntRule(
    minimum=1,
    maximum=QUANTITY_MAX,
    message="must be a whole number of yen > 0 (a JSON integer)",
    error_type="quantity",
)
_FACE_QUANTITY = _IntRule(
    minimum=FACE_JPY_MIN,
    maximum=QUANTITY_MAX - QUANTITY_MAX % FACE_JPY_MIN,
    multiple_of=FACE_JPY_MIN,
    message=f"must be a positive multiple of {FACE_JPY_MIN} yen face (a JSON integer)",
    error_type="quantity",
)
_SEQ = _IntRule(
    minimum=1,
    maximum=SEQ_MAX,
    message="must be an integer >= 1 (a JSON integer)",
    error_type="seq",
)
#: Face value in yen of a bond movement (custody): any whole number of yen > 0.
Quantity = Annotated[int, PlainValidator(_QUANTITY.validate), _QUANTITY.json_schema()]
#: Face value in yen of a trade or order: a positive whole multiple of FACE_JPY_MIN.
FaceQuantity = Annotated[int, PlainValidator(_FACE_QUANTITY.validate), _FACE_QUANTITY.json_schema()]
Seq = Annotated[int, PlainValidator(_SEQ.validate), _SEQ.json_schema()]
_KAFKA_INT = _IntRule(
    minimum=0,
    maximum=SEQ_MAX,
    message="must be an integer >= 0 (a JSON integer)",
    error_type="kafka_int",
)
_DAYS = _IntRule(
    minimum=0,
    maximum=366,
    message="must be a whole number of days, 0-366 (a JSON integer)",
    error_type="days",
)
#: Days of accrued interest: at most a coupon period of a year.
Days = Annotated[int, PlainValidator(_DAYS.validate), _DAYS.json_schema()]
_FACE_HELD = _IntRule(
    minimum=0,
    maximum=QUANTITY_MAX,
    message="must be a whole number of yen >= 0 (a JSON integer)",
    error_type="quantity",
)
#: Face held of a bond, in yen; 0 allowed.
FaceHeld = Annotated[int, PlainValidator(_FACE_HELD.validate), _FACE_HELD.json_schema()]
#: The face unit of a bond: the smallest face anyone may hold or trade of it.
FACE_UNIT_MAX: Final = 100_000_000
_FACE_UNIT = _IntRule(
    minimum=FACE_JPY_MIN,
    maximum=FACE_UNIT_MAX,
    multiple_of=FACE_JPY_MIN,
    message=f"must be a multiple of {FACE_JPY_MIN} yen, at most {FACE_UNIT_MAX} (a JSON integer)",
    error_type="quantity",
)
FaceUnit = Annotated[int, PlainValidator(_FACE_UNIT.validate), _FACE_UNIT.json_schema()]
#: A Kafka partition number, offset or size in bytes.
KafkaInt = Annotated[int, PlainValidator(_KAFKA_INT.validate), _KAFKA_INT.json_schema()]


@dataclass(frozen=True, kw_only=True)
class _StrRule:
    pattern: str
    message: str
    error_type: str
    _compiled: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.pattern))

    def validate(self, value: Any) -> str:
        if not isinstance(value, str) or self._compiled.fullmatch(value) is None:
            _fail(self.error_type, self.message)
        return value

    def json_schema(self) -> WithJsonSchema:
        return WithJsonSchema({"type": "string", "pattern": self.pattern})


#: The characters of an id (accounts, trades, orders, payments, movements, venues,
#: signers): printable ASCII letters, digits and ``- _ . : @ /``. Ids are keys, and two
#: keys that look the same must be the same: no zero-width, bidirectional, BOM,
#: combining, full-width or look-alike characters (docs/security.md, M12).
IDENTIFIER_CHARS: Final = "A-Za-z0-9._:@/-"


@dataclass(frozen=True, kw_only=True)
class _IdRule(_StrRule):
    """An id: the rule's error names the first character that is not allowed."""

    chars_max: int

    def validate(self, value: Any) -> str:
        if isinstance(value, str) and self._compiled.fullmatch(value) is None:
            bad = next((c for c in value if re.fullmatch(f"[{IDENTIFIER_CHARS}]", c) is None), None)
            if bad is not None and len(value) <= self.chars_max:
                name = unicodedata.name(bad, "unnamed")
                _fail(
                    self.error_type,
                    f"{self.message}; U+{ord(bad):04X} ({name}) at {value.index(bad)} is not",
                )
        return super().validate(value)


def _id_rule(chars_max: int) -> _IdRule:
    return _IdRule(
        pattern=rf"^[{IDENTIFIER_CHARS}]{{1,{chars_max}}}$",
        message=f"must be 1-{chars_max} characters of A-Z a-z 0-9 - _ . : @ /",
        error_type="identifier",
        chars_max=chars_max,
    )


_IDENTIFIER = _id_rule(IDENTIFIER_CHARS_MAX)


def is_identifier(value: str) -> bool:
    """Whether ``value`` is a valid id."""
    return _IDENTIFIER._compiled.fullmatch(value) is not None


_TOKEN_PATTERN = r"^[A-Z]{2,12}$"
_TOKEN = _StrRule(
    pattern=_TOKEN_PATTERN,
    message="must be a token name: 2-12 upper-case ASCII letters",
    error_type="token",
)
_REASON_CODE = _StrRule(
    pattern=rf"^[a-z][a-z0-9_]{{0,{REASON_CHARS_MAX - 1}}}$",
    message=f"must be a short code: lower-case letters, digits, '_', at most {REASON_CHARS_MAX}",
    error_type="reason_code",
)
_TOPIC_NAME = _StrRule(
    pattern=rf"^[A-Za-z0-9._-]{{1,{TOPIC_CHARS_MAX}}}$",
    message="must be a Kafka topic name",
    error_type="topic_name",
)
Identifier = Annotated[str, PlainValidator(_IDENTIFIER.validate), _IDENTIFIER.json_schema()]
#: A ledger event's cause: an identifier with a prefix or suffix of kessai's own
#: (``payment:``, ``credit:``, ``/cash``), so up to twice an identifier's length.
_CAUSE = _id_rule(2 * IDENTIFIER_CHARS_MAX)
Cause = Annotated[str, PlainValidator(_CAUSE.validate), _CAUSE.json_schema()]
#: A cash token's name (JPYC, USDC). Whether it is configured is the agents' check.
Token = Annotated[str, PlainValidator(_TOKEN.validate), _TOKEN.json_schema()]
ReasonCode = Annotated[str, PlainValidator(_REASON_CODE.validate), _REASON_CODE.json_schema()]
TopicName = Annotated[str, PlainValidator(_TOPIC_NAME.validate), _TOPIC_NAME.json_schema()]
_SHA256_HEX = _StrRule(
    pattern=r"^[0-9a-f]{64}$",
    message="must be a SHA-256 digest: 64 lower-case hex digits",
    error_type="sha256_hex",
)
Sha256Hex = Annotated[str, PlainValidator(_SHA256_HEX.validate), _SHA256_HEX.json_schema()]

#: An Ed25519 signature (64 bytes) in unpadded base64url: 86 characters.
SIGNATURE_CHARS: Final = 86
_SIGNATURE = _StrRule(
    pattern=rf"^[A-Za-z0-9_-]{{{SIGNATURE_CHARS - 1}}}[AQgw]$",
    message="must be an Ed25519 signature: 86 characters of unpadded base64url",
    error_type="signature",
)
Signature = Annotated[str, PlainValidator(_SIGNATURE.validate), _SIGNATURE.json_schema()]
#: The longest signed trade a settlement record carries (its canonical JSON): four
#: identifiers at most 128 characters each, and room to spare.
SIGNED_TRADE_CHARS_MAX: Final = 4_096

_TOKEN_RE = re.compile(_TOKEN_PATTERN)
_ISIN_MESSAGE = "must be an ISIN: 2 letters, 9 letters or digits, and a correct check digit"


def _validate_isin(value: Any) -> str:
    if not isinstance(value, str) or not is_valid_isin(value):
        _fail("invalid_isin", _ISIN_MESSAGE)
    return value


Isin = Annotated[
    str,
    PlainValidator(_validate_isin),
    WithJsonSchema({"type": "string", "pattern": ISIN_PATTERN}),
]


def _validate_asset(value: Any) -> str:
    if isinstance(value, str) and _TOKEN_RE.fullmatch(value) is not None:
        return value
    if isinstance(value, str) and len(value) == 12:
        # Twelve characters and not a token: it can only mean to be an ISIN.
        return _validate_isin(value)
    _fail("asset", "must be a token name (2-12 upper-case letters) or an ISIN")


#: What a ledger balance counts: a cash token, or a bond by ISIN. Tokens are letters
#: only and an ISIN always ends in a digit, so the two can never be confused.
Asset = Annotated[
    str,
    PlainValidator(_validate_asset),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _TOKEN_PATTERN},
                {"type": "string", "pattern": ISIN_PATTERN},
            ]
        }
    ),
]

# Strictly the shape below: pydantic's own parser would also take "1700000000" or a
# JSON number as a Unix time, and fromisoformat() silently drops a 7th fraction digit.
_UTC_TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-]00:00)$"
)
_UTC_TIME_RE = re.compile(_UTC_TIME_PATTERN)
_UTC_TIME_MESSAGE = "must be an ISO-8601 UTC time like 2026-01-02T03:04:05Z"


def _validate_utc(value: Any) -> datetime:
    if isinstance(value, str):
        if len(value) > TIME_CHARS_MAX or _UTC_TIME_RE.fullmatch(value) is None:
            _fail("utc_datetime", _UTC_TIME_MESSAGE)
        try:
            value = datetime.fromisoformat(value)
        except ValueError:  # the shape was right but the date was not (2026-02-30)
            _fail("utc_datetime", _UTC_TIME_MESSAGE)
    if not isinstance(value, datetime):
        _fail("utc_datetime", _UTC_TIME_MESSAGE)
    if value.utcoffset() != timedelta(0):  # None (naive) included
        _fail("utc_datetime", _UTC_TIME_MESSAGE)
    # One tzinfo object for every instance, so equal instants compare and print alike.
    return value.replace(tzinfo=UTC)


def _utc_to_str(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


UtcDatetime = Annotated[
    datetime,
    PlainValidator(_validate_utc),
    PlainSerializer(_utc_to_str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": _UTC_TIME_PATTERN}),
]

_ISO_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_ISO_DATE_RE = re.compile(_ISO_DATE_PATTERN)
_ISO_DATE_MESSAGE = "must be a calendar date like 2026-01-02"


def _validate_date(value: Any) -> date:
    if isinstance(value, str) and _ISO_DATE_RE.fullmatch(value) is not None:
        try:
            return date.fromisoformat(value)
        except ValueError:  # the shape was right but the date was not (2026-02-30)
            pass
    elif type(value) is date:  # a datetime is a date too, and not one
        return value
    _fail("iso_date", _ISO_DATE_MESSAGE)


#: A calendar date (a trade date, a settlement date, a bond's maturity): JST, the
#: Japanese market's, wherever it is written.
IsoDate = Annotated[
    date,
    PlainValidator(_validate_date),
    PlainSerializer(date.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date", "pattern": _ISO_DATE_PATTERN}),
]

_MONTH_DAY_PATTERN = r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
_MONTH_DAY = _StrRule(
    pattern=_MONTH_DAY_PATTERN,
    message="must be a month and day like 03-20",
    error_type="month_day",
)


def _validate_month_day(value: Any) -> str:
    text = _MONTH_DAY.validate(value)
    try:
        date.fromisoformat(f"2024-{text}")  # a leap year: 02-29 is a day, 02-30 is not
    except ValueError:
        _fail("month_day", f"{text} is not a day of the year")
    return text


#: A coupon's month and day, every year (``03-20``).
MonthDay = Annotated[str, PlainValidator(_validate_month_day), _MONTH_DAY.json_schema()]

MovementKind = Literal["deposit", "withdrawal"]
Side = Literal["buy", "sell"]
TimeInForce = Literal["GTC", "IOC"]
OrderAction = Literal["new", "cancel", "close"]
SettlementStatus = Literal[
    "pending", "failing", "partially_settled", "settled", "failed", "cancelled"
]
PartialSettlement = Literal["allowed", "not_allowed"]
InstrumentKind = Literal["fixed", "floating", "inflation_indexed", "discount"]
InstrumentStatus = Literal["active", "halted", "matured"]
OrderEventKind = Literal["accepted", "rejected", "partially_filled", "filled", "cancelled"]


# --- Records -----------------------------------------------------------------------


class _Record(BaseModel):
    """Base of every topic's record: immutable, no unknown fields, versioned.

    Unknown fields are refused rather than dropped: a producer who adds a field expects
    it to mean something, and silently ignoring it would settle something else.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1

    @field_validator("schema_version", mode="before")
    @classmethod
    def _schema_version_is_an_integer(cls, value: Any) -> Any:
        # Literal[1] alone would also take `true` and `1.0` (both == 1 in Python).
        if type(value) is not int:
            _fail("schema_version", "must be an integer")
        return value


def _is_none(value: Any) -> bool:
    return value is None


class _Signed(_Record):
    """A record from outside that its sender signs: a venue's trade or order, the
    bridge's payment or custody movement (streams/security/signing.py, docs/security.md).

    Both members or neither: whether an unsigned one is accepted is the workers'
    setting (``KESSAI_VERIFY_SIGNATURES``), not the schema's.
    """

    # Left out of the wire when absent, so that an unsigned record is byte for byte what
    # it was before signatures existed (exclude_if: pydantic >= 2.11).
    signer: Identifier | None = Field(
        default=None,
        exclude_if=_is_none,
        description="Who signed: a venue's or a bridge's id in the signer registry.",
    )
    signature: Signature | None = Field(
        default=None,
        exclude_if=_is_none,
        description="Ed25519 over the record's canonical bytes (docs/security.md), base64url.",
    )

    valid_until: UtcDatetime | None = Field(
        default=None,
        exclude_if=_is_none,
        description=(
            "Signed: the record is refused `expired` if the broker receives it later, and "
            "`invalid_validity` if this is more than 24 h after it does (docs/security.md). "
            "Required of signed venues' and bridges' records; the matcher's carry none."
        ),
    )

    @model_validator(mode="after")
    def _signer_with_signature(self) -> _Signed:
        if (self.signer is None) != (self.signature is None):
            _fail("signature", "signer and signature come together, or neither")
        return self


class MoveCash(_Signed):
    """Topic ``payments``, key ``account``: tokens deposited to or withdrawn from an account."""

    payment_id: Identifier
    account: Identifier
    token: Token
    amount: PositiveDecimalStr = Field(description="Token amount, a decimal string > 0.")
    kind: MovementKind


class MoveBonds(_Signed):
    """Topic ``custody``, key ``account``: bonds delivered into or out of an account."""

    movement_id: Identifier
    account: Identifier
    isin: Isin
    quantity: Quantity = Field(description="Face value in yen.")
    kind: MovementKind


class TradeExecuted(_Signed):
    """Topic ``trades``, key ``trade_id``: a trade a venue executed, to be settled DvP."""

    trade_id: Identifier
    venue: Identifier
    isin: Isin
    buyer: Identifier
    seller: Identifier
    quantity: FaceQuantity = Field(
        description=f"Face value in yen, a positive multiple of {FACE_JPY_MIN}."
    )
    price: PositiveDecimalStr = Field(description="Clean price per 100 yen of face value.")
    currency: Token = Field(description="The cash token paying the cash leg.")
    accrued_interest: NonNegativeDecimalStr | None = Field(
        default=None,
        exclude_if=_is_none,
        description=(
            "Accrued interest in the currency token. kessai computes it from the security "
            "master (docs/bonds.md); when sent, it must equal kessai's (`accrued_mismatch`)."
        ),
    )
    trade_time: UtcDatetime
    trade_date: IsoDate | None = Field(
        default=None,
        exclude_if=_is_none,
        description="Trade date in JST; absent: trade_time's date in JST (must equal it).",
    )
    settlement_date: IsoDate | None = Field(
        default=None,
        exclude_if=_is_none,
        description=(
            "Settlement date; absent: the trade date plus KESSAI_SETTLEMENT_LAG Japanese "
            "business days. The trade waits `pending` (`awaiting_settlement_date`) until "
            "it begins (00:00 JST)."
        ),
    )
    partial: PartialSettlement | None = Field(
        default=None,
        exclude_if=_is_none,
        description=(
            "`allowed` (ISO 20022 PART): once failing, the trade may settle in parts, "
            "each a whole number of the bond's face unit the seller holds (docs/fails.md). "
            "Absent or `not_allowed` (NPAR): all at once."
        ),
    )
    fx_rate: PositiveDecimalStr | None = Field(
        default=None,
        exclude_if=_is_none,
        description=(
            "A trade paid in a token other than JPYC: yen per one token (USDC: JPY per "
            "USD). The cash leg is (principal + accrued, in yen) / fx_rate, truncated to "
            "the token's decimals; it must be within KESSAI_FX_BAND of the `fx-rates` "
            "reference (`fx_rate_out_of_band`). Required with such a token, refused with "
            "JPYC (docs/fx.md)."
        ),
    )
    fx_source: Identifier | None = Field(
        default=None, exclude_if=_is_none, description="Where the venue took fx_rate from."
    )
    fx_time: UtcDatetime | None = Field(
        default=None,
        exclude_if=_is_none,
        description="When fx_rate was quoted: within KESSAI_FX_MAX_AGE_S of trade_time "
        "(`stale_fx_rate`).",
    )

    @model_validator(mode="after")
    def _buyer_is_not_seller(self) -> TradeExecuted:
        if self.buyer == self.seller:
            _fail("buyer_is_seller", "buyer and seller must differ")
        fx = (self.fx_rate, self.fx_source, self.fx_time)
        if any(v is not None for v in fx) and any(v is None for v in fx):
            _fail("invalid_fx_rate", "fx_rate, fx_source and fx_time go together")
        return self


class CancelTrade(_Signed):
    """Topic ``cancellations``, key ``trade_id``: the trade's venue cancels a trade that
    has not settled, for both its parties (a bilateral cancellation: docs/fails.md).

    Only the venue that sent the trade may cancel it (under the secure profile, signed
    by that venue). A trade pending, waiting for its date or failing is ``cancelled``,
    ``bilateral_cancel``, and gives back what it holds; the parts of a trade already
    settled in parts stay settled. Any other (settled, cancelled, unknown) is refused,
    ``trade_not_open``, and nothing changes.
    """

    trade_id: Identifier
    venue: Identifier


#: Who sends a bond's ``close`` on ``orders``: kessai itself (its matcher's venue).
CLOSING_VENUE: Final = "kessai"


class SubmitOrder(_Signed):
    """Topic ``orders``, key ``isin``: a new order for kessai to match, or its cancellation.

    ``close`` is kessai's own (venue and account ``kessai``): the settlement engine
    sends it when a bond matures; the matcher then cancels every open order of the bond
    (``instrument_matured``) and rejects any new one."""

    order_id: Identifier
    venue: Identifier
    account: Identifier
    isin: Isin
    side: Side | None = None
    quantity: FaceQuantity | None = Field(
        default=None, description=f"Face value in yen, a positive multiple of {FACE_JPY_MIN}."
    )
    price: PositiveDecimalStr | None = Field(
        default=None, description="Limit price per 100 yen face; absent or null: market order."
    )
    currency: Token
    time_in_force: TimeInForce = "GTC"
    action: OrderAction = "new"
    trade_date: IsoDate | None = Field(
        default=None,
        exclude_if=_is_none,
        description=(
            "The order's date in JST; when sent, it must be the date in Japan of the "
            "record's time (`invalid_trade_date`). A fill's trade date is the date it fills."
        ),
    )
    settlement_date: IsoDate | None = Field(
        default=None,
        exclude_if=_is_none,
        description=(
            "The date its fills settle; absent: each fill's trade date plus "
            "KESSAI_SETTLEMENT_LAG business days. Orders cross only orders of the same "
            "settlement date (or, absent, others without one)."
        ),
    )
    max_notional: PositiveDecimalStr | None = Field(
        default=None,
        exclude_if=_is_none,
        description=(
            "A market buy's cap: the most cash (principal and accrued, in the order's "
            "currency) its fills may take, reserved when it arrives; required on a market "
            "buy (`max_notional_required`), refused on any other new order."
        ),
    )

    @model_validator(mode="after")
    def _new_orders_are_complete(self) -> SubmitOrder:
        # A cancel names its order by order_id; side and quantity only matter for a new one.
        if self.action == "new" and (self.side is None or self.quantity is None):
            _fail("incomplete_order", "a new order needs side and quantity")
        if (
            self.max_notional is not None
            and self.action == "new"
            and (self.side != "buy" or self.price is not None)
        ):
            # A cancel may carry its order's fields (ignored); a new order, only a
            # market buy has a cap.
            _fail("invalid_max_notional", "max_notional caps a market buy only")
        if self.action == "close" and self.venue != CLOSING_VENUE:
            _fail("not_authorized", f"only {CLOSING_VENUE!r} closes a bond's books")
        return self


class SettlementStatusChanged(_Record):
    """Topic ``settlements``, key ``trade_id``: a trade's status changed.

    ``pending`` (before its settlement date's cut-off), ``failing`` (past it, still
    recycling: ``reason`` names the short legs, ``insufficient_securities``,
    ``insufficient_cash`` or ``insufficient_securities_and_cash``), ``settled``, and
    the ends that are not: ``cancelled`` (``max_fail_days``, ``instrument_matured``,
    ``too_many_locks``) or, under the atomic fail mode, ``failed`` at its deadline.
    ``reason`` says why a trade is pending, failing, failed or cancelled; it is null
    once settled.
    """

    trade_id: Identifier
    status: SettlementStatus
    reason: ReasonCode | None = None
    isin: Isin
    buyer: Identifier
    seller: Identifier
    quantity: FaceQuantity = Field(description="Face value in yen.")
    cash_amount: PositiveDecimalStr = Field(
        description="face * price / 100 + accrued interest, truncated to the token's decimals."
    )
    currency: Token
    at: UtcDatetime
    trade_date: IsoDate | None = Field(default=None, exclude_if=_is_none)
    settlement_date: IsoDate | None = Field(default=None, exclude_if=_is_none)
    price: PositiveDecimalStr | None = Field(
        default=None, exclude_if=_is_none, description="Clean price per 100 yen face."
    )
    principal: NonNegativeDecimalStr | None = Field(
        default=None,
        exclude_if=_is_none,
        description="trunc(face * price / 100) in the currency token.",
    )
    accrued: NonNegativeDecimalStr | None = Field(
        default=None,
        exclude_if=_is_none,
        description="Accrued interest in the currency token; cash_amount = principal + accrued.",
    )
    days_accrued: Days | None = Field(
        default=None,
        exclude_if=_is_none,
        description="Days from the last coupon date to the settlement date (null: not a "
        "yen trade of a coupon bond in the security master).",
    )
    part: Annotated[int, Field(ge=1, le=1_000_000, strict=True)] | None = Field(
        default=None,
        exclude_if=_is_none,
        description="A trade settling in parts: this record's part, 1, 2, ... (docs/fails.md).",
    )
    part_quantity: FaceQuantity | None = Field(
        default=None, exclude_if=_is_none, description="The face this part delivered."
    )
    part_cash_amount: PositiveDecimalStr | None = Field(
        default=None,
        exclude_if=_is_none,
        description="The cash this part paid: part_principal + part_accrued, each truncated; "
        "the last part takes the rest, so the parts sum to cash_amount.",
    )
    part_principal: NonNegativeDecimalStr | None = Field(default=None, exclude_if=_is_none)
    part_accrued: NonNegativeDecimalStr | None = Field(default=None, exclude_if=_is_none)
    fx_rate: PositiveDecimalStr | None = Field(
        default=None,
        exclude_if=_is_none,
        description="A trade paid in a token other than JPYC: the yen per token it was "
        "converted at, once; principal and accrued are then in yen and cash_amount is "
        "(principal + accrued) / fx_rate, truncated (docs/fx.md).",
    )
    fx_source: Identifier | None = Field(default=None, exclude_if=_is_none)
    fx_time: UtcDatetime | None = Field(default=None, exclude_if=_is_none)
    signed_trade: str | None = Field(
        default=None,
        exclude_if=_is_none,
        max_length=SIGNED_TRADE_CHARS_MAX,
        description=(
            "The venue's signed trade that caused this settlement, as the canonical JSON "
            "it signed plus its signer and signature (docs/security.md): an auditor checks "
            "the signature with the venue's public key. Null for an unsigned trade."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> SettlementStatusChanged:
        if self.buyer == self.seller:
            _fail("buyer_is_seller", "buyer and seller must differ")
        if self.status in ("failing", "failed", "cancelled") and self.reason is None:
            _fail("missing_reason", f"reason is required when status is {self.status}")
        if self.status in ("settled", "partially_settled") and self.reason is not None:
            _fail("unexpected_reason", f"reason must be null when status is {self.status}")
        parted = self.part is not None and self.part_quantity is not None
        if (self.status == "partially_settled" or self.part is not None) and not (
            parted and self.part_cash_amount is not None
        ):
            _fail("incomplete_part", "a part needs part, part_quantity and part_cash_amount")
        return self


class RecordRejected(_Record):
    """Topic ``rejections``, key: the rejected record's key as ``key`` has it. Bad input,
    kept for people.

    It points at the record instead of quoting it: ``source_topic``,
    ``source_partition`` and ``source_offset`` find it, ``value_sha256`` and
    ``value_bytes`` identify its bytes (``null`` and 0 for a tombstone). ``key`` is the
    rejected record's key as text (invalid UTF-8 escaped as ``\\xNN``), cut to
    REJECTED_KEY_CHARS_MAX characters; ``ref`` is the record's own id (``trade_id``,
    ``order_id``, ``payment_id`` or ``movement_id``) where it has a readable one.

    Version 2 replaced version 1's ``value``, a quote of up to 65,536 characters: a
    rejection could then outgrow the producer's request limit and stop the worker, and
    it kept a rejected signed record for anyone to send again (docs/security.md).
    """

    schema_version: Literal[2] = 2  # type: ignore[assignment]

    source_topic: TopicName
    source_partition: KafkaInt
    source_offset: KafkaInt
    reason: ReasonCode
    detail: str = Field(max_length=DETAIL_CHARS_MAX, description="What was wrong, for people.")
    key: str | None = Field(max_length=REJECTED_KEY_CHARS_MAX)
    ref: str | None = Field(
        max_length=IDENTIFIER_CHARS_MAX, description="The rejected record's own id, if readable."
    )
    value_sha256: Sha256Hex | None = Field(description="SHA-256 of the value; null: no value.")
    value_bytes: KafkaInt
    at: UtcDatetime


class BalanceChanged(_Record):
    """Topic ``ledger-events``, key ``account``: one change of one balance.

    Replaying these in ``seq`` order rebuilds every account's balances as of any moment.
    Version 2 added ``prev_hash`` and ``hash``, a SHA-256 chain per account that makes
    an altered, removed or reordered record evident (:mod:`streams.ledger.journal`).
    Only the ledger writes these; a reader that meets version 1 (no chain) is reading
    a journal written before the chain existed (docs/known-limitations.md).
    """

    schema_version: Literal[2] = 2  # type: ignore[assignment]

    account: Identifier
    asset: Asset = Field(description="A cash token, or a bond's ISIN.")
    delta_available: DecimalStr
    delta_locked: DecimalStr
    available: NonNegativeDecimalStr = Field(description="Available balance after the change.")
    locked: NonNegativeDecimalStr = Field(description="Locked balance after the change.")
    cause: Cause = Field(description="Id of what caused it: payment, movement, trade, lock.")
    seq: Seq = Field(description="Per account, gap-free, from 1.")
    prev_hash: Sha256Hex = Field(
        description="The hash of this account's record seq - 1; 64 zeros for seq 1."
    )
    hash: Sha256Hex = Field(
        description="SHA-256 of this record's canonical bytes: RFC 8785 JSON without "
        "`hash` (docs/journal.md)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> BalanceChanged:
        if self.delta_available == 0 and self.delta_locked == 0:
            _fail("empty_change", "delta_available and delta_locked cannot both be 0")
        # No balance is ever negative, before the change as well as after it.
        # Compared, not subtracted: Decimal subtraction rounds to the context's 28 digits.
        if self.available < self.delta_available or self.locked < self.delta_locked:
            _fail("negative_balance", "balance before the change (balance - delta) would be < 0")
        if not _TOKEN_RE.fullmatch(self.asset):
            amounts = (self.delta_available, self.delta_locked, self.available, self.locked)
            if any(a != a.to_integral_value() for a in amounts):
                _fail("fractional_face", "bond amounts are whole yen of face value")
        return self


class OrderStatusChanged(_Record):
    """Topic ``order-events``, key ``isin``: one step of an order's life in kessai's books.

    ``accepted``, then ``partially_filled`` / ``filled`` per fill (with the fill's
    ``trade_id``, ``price`` and ``filled_quantity``), and ``cancelled`` (with a reason:
    ``requested``, ``immediate_or_cancel``, ``no_liquidity``, ``self_match``,
    ``book_full``) for what is taken off or never rests. ``rejected`` (with a reason)
    answers a bad order, or a cancel of an ``unknown_order`` or ``order_closed`` one.
    """

    order_id: Identifier
    venue: Identifier
    isin: Isin
    currency: Token
    account: Identifier | None = None
    side: Side | None = None
    event: OrderEventKind
    filled_quantity: int = Field(
        default=0, ge=0, le=QUANTITY_MAX, description="Face filled by this event (fills only)."
    )
    remaining_quantity: int = Field(
        default=0,
        ge=0,
        le=QUANTITY_MAX,
        description="Face left to fill after this event; on `cancelled`, the face cancelled.",
    )
    price: PositiveDecimalStr | None = Field(
        default=None, description="A fill's price; otherwise the order's limit (null: market)."
    )
    trade_id: Identifier | None = None
    reason: ReasonCode | None = None
    at: UtcDatetime

    @model_validator(mode="after")
    def _consistent(self) -> OrderStatusChanged:
        fill = self.event in ("partially_filled", "filled")
        if fill and (self.trade_id is None or self.filled_quantity == 0):
            _fail("incomplete_fill", f"event {self.event} needs trade_id and filled_quantity > 0")
        if self.event in ("rejected", "cancelled") and self.reason is None:
            _fail("missing_reason", f"event {self.event} needs a reason")
        return self


PenaltyPolicy = Literal["csdr", "jsda"]
FailingSide = Literal["seller", "buyer"]
RatePer = Literal["day", "year"]


class FailPenalty(_Record):
    """Topic ``penalties``, key ``trade_id``: one fail day's penalty (CSDR-style) or
    fails charge (JSDA-style) owed by one party of a failing trade (docs/fails.md).

    One record per liable party per fail day, from the settlement date's cut-off on;
    none before it, none once the trade settled or was cancelled. ``amount`` =
    ``base`` x ``rate`` (``per`` year: / 365), truncated to the token's decimals: an
    auditor recomputes it from the record. It moves no money: the amounts are summed
    per counterparty pair and month (``kessai penalties --month``) and settled outside.
    """

    penalty_id: Identifier = Field(description="{trade_id}:{day}:{side}: unique.")
    trade_id: Identifier
    day: IsoDate = Field(description="The fail day (JST) this penalty is for.")
    fail_day: Annotated[int, Field(ge=1, le=366, strict=True)] = Field(
        description="1 on the settlement date, then one more per fail day."
    )
    side: FailingSide = Field(description="The leg that failed: the seller's or buyer's.")
    liable: Identifier = Field(description="The account that failed, which owes it.")
    counterparty: Identifier = Field(description="The account it is owed to.")
    reason: ReasonCode
    policy: PenaltyPolicy
    base: PositiveDecimalStr = Field(description="The trade's cash amount, in currency.")
    rate: PositiveDecimalStr
    per: RatePer
    amount: NonNegativeDecimalStr
    currency: Token
    isin: Isin
    at: UtcDatetime

    @model_validator(mode="after")
    def _consistent(self) -> FailPenalty:
        if self.liable == self.counterparty:
            _fail("same_account", "liable and counterparty must differ")
        if not self.penalty_id.startswith(f"{self.trade_id}:"):
            _fail("wrong_penalty_id", "penalty_id must be {trade_id}:{day}:{side}")
        return self


class AdvanceClock(_Record):
    """Topic ``clock``, key ``to``: move a simulated market's clock forward to ``to``.

    Only an engine run with ``KESSAI_CLOCK=ticks`` (tests, the demo) reads it: its
    clock is then the latest ``to`` (or the wall clock, whichever is later), so that a
    test or a demo can reach a settlement date, a deadline, a record time or a
    maturity without waiting for it. Refused ``clock_not_simulated`` by an engine on
    the wall clock, and ``clock_backwards`` if ``to`` is not after the clock.
    """

    to: UtcDatetime


class ReserveAttested(_Signed):
    """Topic ``reserves``, key ``isin``: the custodian attests how much face of a bond
    it holds at the central securities depository (BOJ-NET) for the token's holders.

    kessai keeps the latest per bond and checks that the face it has minted (custody
    deposits less withdrawals and redemptions) never exceeds it: a breach is reported
    (``kessai_reserve_breaches``, docs/bonds.md), never silently tolerated.
    """

    attestation_id: Identifier
    isin: Isin
    face: FaceHeld = Field(description="Face held, in yen (0: none).")
    as_of: UtcDatetime


class FxRate(_Signed):
    """Topic ``fx-rates``, key ``currency``: the reference rate of a cash token in yen,
    as the ``instruments`` role (the reference data's keeper) publishes it.

    kessai keeps the latest per token: a venue's trade in that token must carry a rate
    within KESSAI_FX_BAND of it, and kessai's own fills are priced at it (docs/fx.md).
    A rate older than the one kept is refused (``stale_fx_rate``).
    """

    currency: Token = Field(description="The token priced, e.g. USDC (never JPYC).")
    rate: PositiveDecimalStr = Field(description="Yen per one token (USDC: JPY per USD).")
    source: Identifier = Field(description="Where the rate comes from, e.g. a fixing's name.")
    at: UtcDatetime = Field(description="When the rate was observed.")


#: ISINs of Japanese government bonds start so: JP, then 1 (the issuer code's first
#: digit for the government); a company's (Toyota's JP3633400001) starts JP3.
JGB_ISIN_PREFIX: Final = "JP1"
SERIES_CHARS_MAX: Final = 80


class Instrument(_Signed):
    """Topic ``instruments``, key ``isin``: one bond of the security master, as the
    ``instruments`` role publishes it (docs/bonds.md).

    kessai settles only what is here: a trade or custody movement of any other ISIN is
    refused ``unknown_isin``. Its terms (kind, coupon, dates, face unit) are fixed at
    the first publication; later records may only change ``status`` and ``price_tick``.
    A fixed, floating or inflation-indexed bond pays its coupon in two halves on
    ``coupon_dates`` (``["03-20", "09-20"]``), the last one on its maturity date; a
    discount bond (a T-bill) pays none.
    """

    isin: Isin
    kind: InstrumentKind
    series: str = Field(
        min_length=1,
        max_length=SERIES_CHARS_MAX,
        pattern=r"^[ -~]+$",
        description="The issue's name, e.g. '10-year JGB #378' (printable ASCII).",
    )
    coupon_rate: NonNegativeDecimalStr = Field(
        description="Percent a year ('0.9'): the current period's for a floating bond; 0 "
        "for a discount bond."
    )
    coupon_dates: tuple[MonthDay, ...] = Field(
        max_length=2, description="The coupons' month-days, unadjusted; empty: discount."
    )
    issue_date: IsoDate
    first_coupon_date: IsoDate | None = Field(
        default=None, exclude_if=_is_none, description="Absent: the first coupon date after issue."
    )
    maturity_date: IsoDate
    face_unit: FaceUnit = Field(description="Smallest face anyone may hold or trade, in yen.")
    price_tick: PositiveDecimalStr = Field(description="Prices are multiples of it ('0.001').")
    day_count: Literal["act_365_jgb"] = "act_365_jgb"
    calendar: Literal["jp"] = "jp"
    status: InstrumentStatus = "active"

    @model_validator(mode="after")
    def _a_jgb(self) -> Instrument:
        if not self.isin.startswith(JGB_ISIN_PREFIX):
            _fail("not_a_jgb", f"{self.isin} is not a JGB's ISIN ({JGB_ISIN_PREFIX}...)")
        if self.maturity_date <= self.issue_date:
            _fail("instrument_dates", "maturity_date must be after issue_date")
        if self.kind == "discount":
            if self.coupon_rate != 0 or self.coupon_dates:
                _fail("instrument_coupon", "a discount bond has coupon_rate 0 and no coupon_dates")
            return self
        if len(self.coupon_dates) != 2 or len(set(self.coupon_dates)) != 2:
            _fail("instrument_coupon", f"a {self.kind} bond has two coupon_dates a year")
        if "02-29" in self.coupon_dates:
            _fail("instrument_coupon", "a coupon date falls every year: 02-29 does not")
        if self.maturity_date.strftime("%m-%d") not in self.coupon_dates:
            _fail("instrument_coupon", "a coupon bond matures on one of its coupon_dates")
        first = self.first_coupon_date
        if first is not None and not (
            self.issue_date < first <= self.maturity_date
            and first.strftime("%m-%d") in self.coupon_dates
        ):
            _fail(
                "instrument_coupon",
                "first_coupon_date must be one of the coupon_dates, after issue, at or "
                "before maturity",
            )
        return self


TOPIC_MODELS: dict[str, type[BaseModel]] = {
    PAYMENTS: MoveCash,
    CUSTODY: MoveBonds,
    TRADES: TradeExecuted,
    ORDERS: SubmitOrder,
    INSTRUMENTS: Instrument,
    RESERVES: ReserveAttested,
    CANCELLATIONS: CancelTrade,
    FX_RATES: FxRate,
    CLOCK: AdvanceClock,
    SETTLEMENTS: SettlementStatusChanged,
    REJECTIONS: RecordRejected,
    LEDGER_EVENTS: BalanceChanged,
    ORDER_EVENTS: OrderStatusChanged,
    PENALTIES: FailPenalty,
}
