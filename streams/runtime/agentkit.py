"""What every flow's agent needs from the runtime: raw topics and rejection records."""

from __future__ import annotations

from datetime import UTC, datetime

import faust
from faust.types import TopicT

from schemas import SchemaError, Source, encode, rejection_for

__all__ = ["raw_topic", "rejection"]


def raw_topic(app: faust.App, *names: str, partitions: int) -> TopicT:
    """Bytes in, bytes out: :mod:`schemas` and :mod:`streams.wire` own bytes <-> model."""
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


def rejection(source: Source, reason: str, detail: str) -> tuple[bytes | None, bytes]:
    """The ``rejections`` record (key, value) of the input at ``source``, refused with
    ``reason``, stamped now. Both are bounded whatever the input's size: the key is the
    input's key cut to its first characters, the value points at the input."""
    error = SchemaError(reason, detail)  # type: ignore[arg-type]
    key = source[3]
    record = rejection_for(source, error, at=datetime.now(UTC))
    return (None if key is None else key.encode()), encode(record)
