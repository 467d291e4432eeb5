"""Signature checks off the engine's thread, in parallel (issue 17).

Under the secure profile every ``trades``, ``payments`` and ``custody`` record carries
an Ed25519 signature, and checking it is most of what the profile costs: 65 of the
~85 µs it adds to a trade on this machine are OpenSSL's verify (``python -m
kessai_bench.signatures``; cProfile of the check). cryptography (50.x) lets go of the
GIL during that verify (pyca/cryptography#15164), so threads do run it in parallel.

Before a batch of at least :data:`POOL_MIN` signed records is applied,
:class:`Checker` runs :func:`streams.security.signing.verify` for each signed input
of the fetched records on a small thread pool, and keeps each
answer under the record's place (topic, partition, offset). The batch then takes the
answer for the record at that place instead of checking it on the engine's thread:
the same function on the same bytes with the same registry, so the outcome is the one
an inline check gives (and the one ``kessai replay`` derives, inline). A record the
pool could not check (no key, no value, anything raised) has no answer and is checked
inline, as before.

Answers are kept for records fetched but left to the next batch (the batch's time
cap) and dropped once applied, or all at once when the registry changes (a rotated
key file): at most one fetch's worth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from aiokafka import ConsumerRecord, TopicPartition

from streams.security import signing

__all__ = ["Checker", "Verified"]

#: Fewer signed records than this in a fetch are checked inline, on the engine's thread:
#: on a busy machine the hand-off to the pool costs more than it saves for a small
#: batch (``make bench``, 2026-12-04T151819Z: at 4,939 trades/s offered the pool
#: settled 3,171/s and inline 3,549/s, with 8.82 and 7.32 CPU s; on a backlog the pool
#: settled 5,364/s and inline 4,455/s).
POOL_MIN: Final = 256
#: Fewer records than this per thread are not worth a hand-off.
CHUNK_MIN: Final = 32

#: (topic, partition, offset) -> what :func:`signing.verify` answered for that record.
Verified = dict[tuple[str, int, int], dict[str, Any] | signing.Rejected]
_Job = tuple[str, int, int, bytes, bytes, float]


class Checker:
    """A thread pool that checks the signatures of fetched records ahead of the batch."""

    def __init__(self, threads: int, *, pool_min: int = POOL_MIN) -> None:
        """``threads`` (``KESSAI_SIGNATURE_THREADS``) at least 1; fetches with fewer
        than ``pool_min`` signed records unchecked records are left to the batch."""
        assert threads >= 1, threads
        self.threads = threads
        self.pool_min = max(1, pool_min)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="kessai-signatures")
        self.answers: Verified = {}
        self._registry: signing.Registry | None = None

    async def check(
        self,
        registry: signing.Registry,
        fetched: Sequence[tuple[TopicPartition, Sequence[ConsumerRecord]]],
    ) -> Verified:
        """Check every signed record of ``fetched`` not checked yet; the answers."""
        if registry is not self._registry:
            self.answers, self._registry = {}, registry
        answers = self.answers
        signed = sum(len(rs) for tp, rs in fetched if tp.topic in signing.SIGNED_TOPICS)
        if signed < self.pool_min:
            return answers  # the batch checks these inline
        jobs: list[_Job] = [
            (tp.topic, tp.partition, r.offset, r.key, r.value, r.timestamp / 1000)
            for tp, records in fetched
            if tp.topic in signing.SIGNED_TOPICS
            for r in records
            if r.key is not None
            and r.value is not None
            and (tp.topic, tp.partition, r.offset) not in answers
        ]
        if not jobs:
            return answers
        n = max(1, min(self.threads, len(jobs) // CHUNK_MIN))
        loop = asyncio.get_running_loop()
        parts = await asyncio.gather(
            *(loop.run_in_executor(self.pool, _check_all, registry, jobs[i::n]) for i in range(n))
        )
        for part in parts:
            answers.update(part)
        return answers

    def applied(self, fetched: Sequence[tuple[TopicPartition, Sequence[ConsumerRecord]]]) -> None:
        """Forget the answers for records a committed batch applied."""
        answers = self.answers
        if not answers:
            return
        for tp, records in fetched:
            if tp.topic in signing.SIGNED_TOPICS:
                for r in records:
                    answers.pop((tp.topic, tp.partition, r.offset), None)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _check_all(registry: signing.Registry, jobs: list[_Job]) -> Verified:
    """On a pool thread: each job's answer (none for a record whose check raised)."""
    out: Verified = {}
    for topic, partition, offset, key, value, timestamp_s in jobs:
        try:
            answer = signing.verify(registry, topic, key, value, signing.broker_time(timestamp_s))
        except Exception:  # checked again on the engine's thread, which reports it
            continue
        out[(topic, partition, offset)] = answer
    return out
