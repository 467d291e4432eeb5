"""`kessai publish` against the real broker, into topics of the test's own."""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from collections.abc import Callable

import pytest

from schemas import PAYMENTS
from streams import cli
from streams.config import Settings
from streams.kafka.publish import validate_lines
from streams.kafka.reader import read_committed
from streams.topics import TopicSpec
from tests.support.paths import EXAMPLES
from tests.support.topics import create_fresh

pytestmark = pytest.mark.integration


#: A missing topic is found by one metadata request, not by a send timing out.
MISSING_TOPIC_S_MAX = 10.0


@pytest.fixture
def topic(
    bootstrap: str, unique_name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setenv("KESSAI_BOOTSTRAP", bootstrap)
    name = unique_name("publish")
    spec = TopicSpec(name=name, partitions=Settings.from_env().partitions)
    asyncio.run(create_fresh(bootstrap, spec))
    return name


def _records(bootstrap: str, topic: str) -> list[tuple[int, int, bytes, bytes]]:
    return [
        (r.partition, r.offset, r.key, r.value)
        for r in asyncio.run(read_committed(Settings(bootstrap=bootstrap), topic, timeout_s=30.0))
    ]


def test_publish_sends_exactly_the_canonical_records_with_their_keys(
    bootstrap: str, topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = EXAMPLES / "payments.jsonl"
    expected, errors = validate_lines(PAYMENTS, path.read_bytes().splitlines())
    assert errors == [] and len(expected) == 4

    code = cli.main(["publish", "payments", str(path), "--topic-name", topic, "--progress"])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.fullmatch(rf"published 4 records to {topic} in \d+\.\d\ds\n", out)
    assert "4/4" in err  # --progress shows the bar although stderr is not a terminal
    records = _records(bootstrap, topic)
    assert sorted((key, value) for _, _, key, value in records) == sorted(expected)
    # One key, one partition, file order: acct-carol's two deposits stay in sequence.
    by_key: defaultdict[bytes, list[tuple[int, bytes]]] = defaultdict(list)
    for partition, _, key, value in records:
        by_key[key].append((partition, value))
    carol = by_key[b"acct-carol"]
    assert len({partition for partition, _ in carol}) == 1
    assert [value for _, value in carol] == [v for k, v in expected if k == b"acct-carol"]


def test_a_file_with_any_bad_line_publishes_nothing(
    bootstrap: str, topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli.main(["publish", "payments", str(EXAMPLES / "payments.jsonl"), "--topic-name", topic])
        == 0
    )
    before = _records(bootstrap, topic)
    capsys.readouterr()
    bad = str(EXAMPLES / "bad-payments.jsonl")

    code = cli.main(["publish", "payments", bad, "--topic-name", topic])

    err = capsys.readouterr().err
    assert code == 1
    for line, reason in [
        (2, "invalid_amount"),
        (3, "invalid_amount"),
        (5, "schema"),
        (6, "malformed"),
        (7, "schema"),
    ]:
        assert f"{bad}:{line}: {reason}: " in err
    # Its two valid lines (1 and 8) were held back too.
    assert _records(bootstrap, topic) == before


def test_publish_to_a_missing_topic_fails_fast_and_clearly(
    bootstrap: str,
    unique_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KESSAI_BOOTSTRAP", bootstrap)
    missing = unique_name("missing")
    started_s = time.monotonic()

    code = cli.main(["publish", "trades", str(EXAMPLES / "trades.jsonl"), "--topic-name", missing])

    assert code == 1
    assert time.monotonic() - started_s < MISSING_TOPIC_S_MAX
    assert f"topic {missing!r} does not exist" in capsys.readouterr().err
