"""Pure figures: percentiles and latency summaries. No Kafka, unit-tested."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The *q*-th percentile (0 < q <= 100) of *sorted_values*, nearest-rank method.

    Nearest rank returns a value that was observed (no interpolation): p99 of 100
    latencies is the 99th smallest. Raises ValueError on an empty sequence.
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100], got {q}")
    rank = math.ceil(q / 100 * len(sorted_values))
    return float(sorted_values[max(rank, 1) - 1])


@dataclass(frozen=True, kw_only=True)
class Latency:
    """Latency figures in milliseconds."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Latency | None:
        """The summary of *values_ms* (any order); None if there are none."""
        if not values_ms:
            return None
        ordered = sorted(values_ms)
        return cls(
            count=len(ordered),
            p50_ms=percentile(ordered, 50),
            p95_ms=percentile(ordered, 95),
            p99_ms=percentile(ordered, 99),
            max_ms=float(ordered[-1]),
            mean_ms=round(sum(ordered) / len(ordered), 1),
        )


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` rounded to 3 places; None if either is missing or 0."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)
