"""What every flow's agent needs from the runtime: raw topics and rejection records."""

from __future__ import annotations

from datetime import UTC, datetime

import faust
from faust.types import TopicT

from schemas import SchemaError, encode, rejection_for

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


def rejection(source_topic: str, key: bytes | None, raw: bytes, reason: str, detail: str) -> bytes:
    """The ``rejections`` record of an input refused with ``reason``, stamped now."""
    error = SchemaError(reason, detail)  # type: ignore[arg-type]
    return encode(rejection_for(source_topic, key, raw, error, at=datetime.now(UTC)))
