"""A worker's start: the topics step retries a broker that is not ready, and only that."""

from __future__ import annotations

import pytest
from aiokafka.errors import NodeNotReadyError, TopicAuthorizationFailedError

from streams.config import Settings
from streams.runtime import main


def test_a_broker_not_ready_is_retried_and_said(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(bootstrap="127.0.0.1:1,127.0.0.1:2")
    calls: list[int] = []

    async def flaky(s: Settings) -> tuple[Settings, list[str]]:
        calls.append(1)
        if len(calls) < 3:  # one broker of the cluster lost, still in the metadata
            raise NodeNotReadyError("node 1")
        return s, ["trades"]

    monkeypatch.setattr(main, "_prepare_topics", flaky)
    monkeypatch.setattr(main, "START_RETRY_PAUSE_S", 0.0)
    assert main.prepare_topics(settings) == (settings, ["trades"])
    assert len(calls) == 3
    err = capsys.readouterr().err
    assert err.count("not ready (NodeNotReadyError") == 2, err
    assert "127.0.0.1:1,127.0.0.1:2" in err


def test_an_error_a_retry_cannot_mend_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    async def refused(s: Settings) -> tuple[Settings, list[str]]:
        calls.append(1)
        raise TopicAuthorizationFailedError()

    monkeypatch.setattr(main, "_prepare_topics", refused)
    with pytest.raises(TopicAuthorizationFailedError):
        main.prepare_topics(Settings())
    assert len(calls) == 1


def test_retries_end_after_the_start_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(s: Settings) -> tuple[Settings, list[str]]:
        raise NodeNotReadyError("node 1")

    monkeypatch.setattr(main, "_prepare_topics", never)
    monkeypatch.setattr(main, "START_RETRY_PAUSE_S", 0.0)
    monkeypatch.setattr(main, "START_RETRY_S", 0.05)
    with pytest.raises(NodeNotReadyError):
        main.prepare_topics(Settings())
