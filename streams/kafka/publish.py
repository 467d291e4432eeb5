"""``kessai publish TOPIC FILE.jsonl``: put hand-made records onto an input topic.

The way a person (or the README, or a test) feeds kessai: one JSON record per line.
Every line is checked with :func:`schemas.decode` before anything is sent, so a file
with one bad line publishes nothing; the bad lines are named as ``FILE:LINE: reason:
detail``, the same reason codes kessai's agents would put on ``rejections``. What is
sent is each record's canonical form (:func:`schemas.encode`), keyed by
:func:`schemas.key_for`, so the wire never carries a producer's spelling of a record.

**Signing.** With ``KESSAI_SIGNING_KEY_FILE`` and ``KESSAI_SIGNER_ID`` set (a venue's or
the bridge's key, streams/security/signing.py), every record is signed as it is sent. Without
them, a record that already carries a ``signature`` is sent byte for byte as it was
read: the signature covers the members as its signer wrote them, and the canonical
form could differ (a time written ``+00:00``, a default member added).

Only the input topics (payments, custody, trades, orders) can be published to: the
other public topics are kessai's own output, and a record slipped into the ledger
journal by hand would be a balance change nobody made.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Final

from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from schemas import TOPIC_MODELS, TRADES, SchemaError, decode, encode, key_for
from streams.config import Settings
from streams.errors import KessaiError
from streams.kafka.auth import client_kwargs
from streams.security import signing
from streams.topics import INPUT_TOPICS

__all__ = [
    "LINES_MAX",
    "SENDS_IN_FLIGHT_MAX",
    "LineError",
    "PublishError",
    "publish_file",
    "publish_records",
    "validate_lines",
]

# Limits, in one place.
#: Lines one publish reads. Every valid record is held in memory until all are checked.
LINES_MAX: Final = 1_000_000
#: Sends handed to the producer before we wait for their acks: bounds memory, keeps
#: the producer's batches full.
SENDS_IN_FLIGHT_MAX: Final = 1_000
#: Invalid lines printed; the rest are counted. A wrong --topic turns every line bad.
ERRORS_PRINTED_MAX: Final = 1_000
#: How long the producer waits for the broker on one request (metadata, a batch's ack).
REQUEST_TIMEOUT_MS: Final = 30_000

STDIN_LABEL: Final = "<stdin>"


class PublishError(KessaiError):
    """Publishing could not start or finish: no such topic, too many lines, ..."""


@dataclass(frozen=True, kw_only=True)
class LineError:
    """One line of the input that does not fit its topic's schema."""

    #: 1-based, counting blank lines too, so that it matches an editor's numbering.
    line: int
    reason: str
    detail: str

    def format(self, file_label: str) -> str:
        return f"{file_label}:{self.line}: {self.reason}: {self.detail}"


def validate_lines(
    topic: str,
    lines: Iterable[bytes],
    *,
    lines_max: int = LINES_MAX,
    signer: signing.SigningKey | None = None,
    now: datetime | None = None,
) -> tuple[list[tuple[bytes, bytes]], list[LineError]]:
    """Check every line against *topic*'s schema. With ``now``, each trade's
    ``trade_time`` becomes ``now`` (a line signed already cannot be re-stamped: an error).

    Returns ``(valid, errors)``: ``valid`` holds ``(key, canonical value)`` of each good
    line in file order (signed by ``signer`` if given; a line that is signed already and
    no ``signer``: its own bytes), ``errors`` each bad line. Blank lines are skipped but
    counted.
    Raises :class:`PublishError` for a topic without a schema or more than *lines_max*
    lines: then no line can be trusted to mean what its author meant.
    """
    assert lines_max > 0, lines_max
    if topic not in TOPIC_MODELS:
        raise PublishError(f"no schema for topic {topic!r}; known: {', '.join(TOPIC_MODELS)}")
    valid: list[tuple[bytes, bytes]] = []
    errors: list[LineError] = []
    for number, line in enumerate(lines, start=1):
        if number > lines_max:
            raise PublishError(f"more than {lines_max} lines; split the file")
        # Without its line ending, a JSON error's position reads "line 1 column N".
        record = line.rstrip(b"\r\n")
        if not record.strip():
            continue
        try:
            model = decode(topic, record)
        except SchemaError as err:
            errors.append(LineError(line=number, reason=err.reason, detail=err.detail))
            continue
        if now is not None and topic == TRADES:
            if signer is None and getattr(model, "signature", None) is not None:
                detail = "a signed trade's trade_time cannot be changed (--now)"
                errors.append(LineError(line=number, reason="signed", detail=detail))
                continue
            model = model.model_copy(update={"trade_time": now})
        if signer is not None:
            value = encode(signing.sign_model(topic, model, signer))
        elif getattr(model, "signature", None) is not None:
            value = record
        else:
            value = encode(model)
        valid.append((key_for(topic, model), value))
    return valid, errors


async def publish_records(
    settings: Settings,
    topic_name: str,
    records: Sequence[tuple[bytes, bytes]],
    *,
    progress: tqdm[None] | None = None,
) -> None:
    """Send ``(key, value)`` records to *topic_name*, in order, acknowledged by all replicas.

    One idempotent producer: a retried batch is never written twice, and records with
    one key keep their order. Raises :class:`PublishError` if the topic does not exist
    (brokers that would auto-create it would do so with the wrong partition count).
    """
    bootstrap = settings.bootstrap
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        client_id="kessai-publish",
        # As the user the settings name (a venue, the bridge) on the secure profile.
        **client_kwargs(settings),
    )
    await producer.start()
    try:
        # Asked up front: a send to a missing topic would wait out the whole
        # request timeout before failing, once per record.
        cluster = await producer.client.fetch_all_metadata()
        if cluster.partitions_for_topic(topic_name) is None:
            # A broker with ACLs leaves the topics a user may not see out of the list.
            user = settings.kafka_username
            if user:
                raise PublishError(
                    f"topic {topic_name!r} does not exist on {bootstrap}, or Kafka user "
                    f"{user!r} may not write it (ACLs: docs/security.md)"
                )
            raise PublishError(
                f"topic {topic_name!r} does not exist on {bootstrap}; "
                f"create kessai's topics with `kessai topics create`"
            )
        for start in range(0, len(records), SENDS_IN_FLIGHT_MAX):
            chunk = records[start : start + SENDS_IN_FLIGHT_MAX]
            # send() returns once the record is in the producer's buffer; its future
            # resolves on the broker's ack. Awaiting each ack in turn would send one
            # record per round trip.
            acks = [await producer.send(topic_name, value, key=key) for key, value in chunk]
            await asyncio.gather(*acks)
            if progress is not None:
                progress.update(len(chunk))
    finally:
        await producer.stop()


def publish_file(
    settings: Settings,
    topic: str,
    path: str,
    *,
    topic_name: str | None = None,
    progress: bool = False,
    now: datetime | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """``kessai publish``: validate all of *path*, then publish it. Returns the exit code.

    ``path`` ``-`` reads stdin. ``topic_name`` sends to another physical topic while
    validating against *topic*'s schema (tests use it to stay off the real topics).
    Exit codes: 0 published, 1 invalid lines (nothing published). Unknown topics and
    broker trouble raise :class:`PublishError` (or aiokafka's ``KafkaError``).
    """
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    if topic not in INPUT_TOPICS:
        raise PublishError(_not_an_input_topic(topic))
    label = STDIN_LABEL if path == "-" else path
    signer = _signer(settings)
    if path == "-":
        valid, errors = validate_lines(topic, sys.stdin.buffer, signer=signer, now=now)
    else:
        try:
            with Path(path).open("rb") as handle:
                valid, errors = validate_lines(topic, handle, signer=signer, now=now)
        except OSError as exc:
            raise PublishError(f"cannot read {path}: {exc.strerror or exc}") from None
    if errors:
        for error in errors[:ERRORS_PRINTED_MAX]:
            print(error.format(label), file=err)
        if len(errors) > ERRORS_PRINTED_MAX:
            print(f"{label}: {len(errors) - ERRORS_PRINTED_MAX} more invalid lines", file=err)
        print(
            f"{label}: {len(errors)} invalid line(s) for topic {topic}; published nothing",
            file=err,
        )
        return 1
    destination = topic_name or topic
    show = progress or err.isatty()
    started_s = time.monotonic()
    with tqdm(total=len(valid), desc=destination, unit="rec", file=err, disable=not show) as bar:
        asyncio.run(publish_records(settings, destination, valid, progress=bar))
    took_s = time.monotonic() - started_s
    print(f"published {len(valid)} records to {destination} in {took_s:.2f}s", file=out)
    return 0


def _signer(settings: Settings) -> signing.SigningKey | None:
    if settings.signing_key_file is None:
        return None
    if not settings.signer_id:
        raise PublishError("KESSAI_SIGNING_KEY_FILE is set: set KESSAI_SIGNER_ID, who signs")
    if not settings.deployment:
        raise PublishError(
            "KESSAI_SIGNING_KEY_FILE is set: set KESSAI_DEPLOYMENT, the deployment the "
            "records are signed for (the registry's deployment)"
        )
    try:
        return signing.SigningKey.load(
            settings.signer_id, settings.signing_key_file, settings.deployment
        )
    except signing.RegistryError as err:
        raise PublishError(str(err)) from None


def _not_an_input_topic(topic: str) -> str:
    known = ", ".join(INPUT_TOPICS)
    if topic in TOPIC_MODELS:
        return f"{topic!r} is written by kessai itself, not published by hand; known: {known}"
    return f"unknown topic {topic!r}; known topics: {known}"
