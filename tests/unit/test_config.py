"""streams.config: settings from the environment, each number checked at start (L4)."""

from __future__ import annotations

import pytest

from streams.config import DEADLINE_S_MAX, Settings
from streams.errors import ConfigError


def test_the_defaults_are_what_a_newcomer_runs() -> None:
    s = Settings.from_env({})
    assert (s.settlement_deadline_s, s.processing_guarantee) == (3600, "exactly_once")
    assert (s.web_port, s.web_bind, s.web_token_file) == (6066, "127.0.0.1", None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # inf became JSON null in every trade, and every deadline check then raised.
        ("KESSAI_SETTLEMENT_DEADLINE_S", "inf"),
        ("KESSAI_SETTLEMENT_DEADLINE_S", "nan"),
        ("KESSAI_SETTLEMENT_DEADLINE_S", "-5"),
        ("KESSAI_SETTLEMENT_DEADLINE_S", str(DEADLINE_S_MAX + 1)),
        ("KESSAI_SETTLEMENT_DEADLINE_S", "soon"),
        ("KESSAI_VENUE_RATE", "0"),
        ("KESSAI_VENUE_BURST", "-1"),
        ("KESSAI_PARTITIONS", "0"),
        ("KESSAI_PARTITIONS", "four"),
        ("KESSAI_WEB_PORT", "70000"),
        ("KESSAI_HEALTH_LAG_MAX", "-1"),
        ("KESSAI_SIGNATURE_THREADS", "-1"),
        ("KESSAI_TRADE_WINDOW_S", "soon"),
        ("KESSAI_TRADE_WINDOW_S", "3600"),  # not longer than the default deadline
        ("KESSAI_TRADE_WINDOW_S", "-1"),
        ("KESSAI_SIGNATURE_THREADS", "many"),
        ("KESSAI_REPLICATION_FACTOR", "0"),
        ("KESSAI_REPLICATION_FACTOR", "three"),
    ],
)
def test_a_number_out_of_its_range_is_named_at_start(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_numbers_in_range_are_taken() -> None:
    s = Settings.from_env({"KESSAI_SETTLEMENT_DEADLINE_S": "25", "KESSAI_VENUE_RATE": "5"})
    assert (s.settlement_deadline_s, s.venue_rate_per_s) == (25.0, 5)
    # The window: seven days unless told, 0 keeps every id, else longer than the deadline.
    assert s.trade_window_s == 7 * 86_400
    assert Settings.from_env({"KESSAI_TRADE_WINDOW_S": "0"}).trade_window_s is None
    assert Settings.from_env({"KESSAI_TRADE_WINDOW_S": "3601"}).trade_window_s == 3601
    # Replication: the cluster's default unless told.
    assert s.replication_factor is None
    assert Settings.from_env({"KESSAI_REPLICATION_FACTOR": "3"}).replication_factor == 3


def test_three_replicas_or_more_need_two_in_sync_for_a_write() -> None:
    from streams.kafka.admin import topic_configs
    from streams.topics import TopicSpec

    spec = TopicSpec(name="t", partitions=4, config={"cleanup.policy": "compact"})
    assert topic_configs(spec, 1) == {"cleanup.policy": "compact", "min.insync.replicas": "1"}
    assert topic_configs(spec, 2) == {"cleanup.policy": "compact", "min.insync.replicas": "1"}
    assert topic_configs(spec, 3) == {"cleanup.policy": "compact", "min.insync.replicas": "2"}
    assert topic_configs(spec, 5) == {"cleanup.policy": "compact", "min.insync.replicas": "2"}
