"""The kessai command line without a broker: help, usage errors, validation-only paths."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from streams import cli
from streams.topics import INPUT_TOPICS
from tests.support.paths import EXAMPLES


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Nothing here may reach a broker: port 1 refuses at once, and a state dir of its
    # own keeps the shared broker's files out of reach.
    monkeypatch.setenv("KESSAI_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("KESSAI_STATE_DIR", str(tmp_path / "state"))


@pytest.mark.parametrize(
    ("argv", "purpose"),
    [
        ([], "settle tokenized JGB trades"),
        (["kafka"], "local single-node Kafka"),
        (["kafka", "up"], "start the local broker"),
        (["kafka", "down"], "stop the local broker"),
        (["kafka", "status"], "whether the broker answers"),
        (["kafka", "reset"], "DELETE all its topics and data"),
        (["topics"], "14 public topics"),
        (["topics", "create"], "create the public topics that are missing"),
        (["topics", "list"], "each public topic"),
        (["publish"], "Every line is validated first"),
        (["positions"], "rebuilt by replaying the committed records of ledger-events"),
        (["worker"], "Run a kessai worker"),
        (["demo"], "end-to-end demo"),
    ],
)
def test_help_exits_0_and_says_what_the_command_is_for(
    argv: list[str], purpose: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*argv, "--help"]) == 0

    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert purpose.lower() in out.lower()


@pytest.mark.parametrize("topic", ["paymnets", "ledger-events", "settlements", "rejections"])
def test_publish_to_an_unknown_or_output_topic_exits_2_listing_the_topics(
    topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["publish", topic, str(EXAMPLES / "payments.jsonl")]) == 2

    err = capsys.readouterr().err
    assert f"unknown topic {topic!r}" in err
    assert f"known topics: {', '.join(INPUT_TOPICS)}" in err


def test_publish_of_a_file_with_bad_lines_names_them_and_never_connects(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(EXAMPLES / "bad-payments.jsonl")

    # The broker (port 1) is unreachable: reaching it would fail differently.
    assert cli.main(["publish", "payments", path]) == 1

    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[0] for line in err[:-1]] == [
        f"{path}:2",
        f"{path}:3",
        f"{path}:5",
        f"{path}:6",
        f"{path}:7",
    ]
    assert err[-1] == f"{path}: 5 invalid line(s) for topic payments; published nothing"


def test_publish_reads_stdin_for_dash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"\n{}\n"))
    monkeypatch.setattr("sys.stdin", stdin)

    assert cli.main(["publish", "custody", "-"]) == 1

    assert capsys.readouterr().err.startswith("<stdin>:2: schema: ")


def test_publish_of_a_missing_file_is_an_error_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["publish", "payments", str(tmp_path / "nope.jsonl")]) == 1

    err = capsys.readouterr().err
    assert err.startswith("kessai: error: cannot read ")
    assert "Traceback" not in err


def test_kafka_reset_without_yes_deletes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "state" / "kafka" / "data" / "meta.properties"
    marker.parent.mkdir(parents=True)
    marker.write_text("keep me")

    assert cli.main(["kafka", "reset"]) == 1

    assert marker.read_text() == "keep me"
    assert "--yes" in capsys.readouterr().err


def test_kafka_status_of_an_absent_broker_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["kafka", "status"]) == 1

    assert "not running" in capsys.readouterr().out


def test_a_malformed_setting_is_an_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KESSAI_BOOTSTRAP", "127.0.0.1:notaport")

    assert cli.main(["kafka", "status"]) == 1

    assert capsys.readouterr().err.startswith("kessai: error: KESSAI_BOOTSTRAP: bad entry")


@pytest.mark.parametrize(
    "argv", [[], ["bogus"], ["kafka"], ["topics", "create", "--bogus"], ["publish", "payments"]]
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2

    assert "usage: kessai" in capsys.readouterr().err


def test_any_kessai_error_is_a_message_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.kafka import admin
    from streams.kafka.admin import TopicsError

    async def refuse(settings: object) -> list[str]:
        raise TopicsError("topic 'trades' has 3 partitions, kessai wants 4")

    monkeypatch.setattr(admin, "ensure_public_topics", refuse)
    assert cli.main(["topics", "create"]) == 1
    err = capsys.readouterr().err
    assert err == "kessai: error: topic 'trades' has 3 partitions, kessai wants 4\n"


def test_the_signers_command_keeps_a_signed_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """init, add, rotate, revoke and list as an operator types them; without the admin
    key nothing is written, and a registry edited by hand no longer lists."""
    from streams.security import signing

    registry, admin = tmp_path / "signers.json", tmp_path / "admin.pem"
    signing.write_private_key(admin, signing.new_private_key_pem())
    monkeypatch.setenv("KESSAI_SIGNERS_FILE", str(registry))
    assert cli.main(["signers", "init", "--deployment", "kessai-t"]) == 1
    assert "KESSAI_REGISTRY_ADMIN_KEY_FILE" in capsys.readouterr().err
    monkeypatch.setenv("KESSAI_REGISTRY_ADMIN_KEY_FILE", str(admin))
    assert cli.main(["signers", "init", "--deployment", "kessai-t"]) == 0
    key_out = str(tmp_path / "venue-a.pem")
    add = ["signers", "add", "venue-a", "--role", "venue", "--accounts", "a-*"]
    assert cli.main([*add, "--key-out", key_out]) == 0
    assert cli.main(["signers", "rotate", "venue-a", "--key-out", key_out + ".2"]) == 0
    assert cli.main(["signers", "revoke", "venue-a", "--at", "2099-01-01T09:00:00+09:00"]) == 0
    public = signing.public_key_text(signing.load_admin_key(admin).public_key())
    monkeypatch.setenv("KESSAI_REGISTRY_KEY", public)
    capsys.readouterr()
    assert cli.main(["signers", "list"]) == 0
    listing = capsys.readouterr().out
    assert "deployment kessai-t, version 4 (signature checked)" in listing
    assert listing.count("venue-a ") == 2 and "2099-01-01T00:00:00Z" in listing
    registry.write_text(registry.read_text().replace('"a-*"', '"*"'))  # by hand
    assert cli.main(["signers", "list"]) == 1
    assert "not signed by the admin key" in capsys.readouterr().err
