"""streams.devtools.localkafka.cluster without a broker: the nodes' configuration,
ports and folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.devtools.localkafka import cluster as localcluster
from streams.devtools.localkafka.cluster import CONTROLLER, CONTROLLER_ID, Cluster


def _props(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and line[0] != "#"]
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "a key set twice"
    return dict(pairs)


def test_three_brokers_and_a_controller_on_consecutive_loopback_ports(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 3, base_port=9400)
    assert c.bootstrap == "127.0.0.1:9400,127.0.0.1:9401,127.0.0.1:9402"
    assert c.port(CONTROLLER) == 9403
    assert [c.paths(n).root.name for n in c.names] == ["broker-1", "broker-2", "broker-3"]
    # Every node runs on the single broker's jars, fetched once.
    assert {c.paths(n).libs for n in [CONTROLLER, *c.names]} == {tmp_path / "kafka" / "libs"}


def test_every_topic_is_replicated_three_times_with_two_in_sync_required(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 3)
    for name in c.names:
        props = _props(localcluster.render_node_properties(c, name, partitions=4))
        assert props["process.roles"] == "broker"
        assert (
            props["controller.quorum.voters"] == f"{CONTROLLER_ID}@127.0.0.1:{c.port(CONTROLLER)}"
        )
        for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                    "default.replication.factor"):  # fmt: skip
            assert props[key] == "3", key
        assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
        assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{c.port(name)}"
        assert props["log.dirs"] == str(c.paths(name).data)
    ids = {_props(localcluster.render_node_properties(c, n, 4))["node.id"] for n in c.names}
    assert ids == {"1", "2", "3"}


def test_the_controller_only_votes(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 3)
    props = _props(localcluster.render_node_properties(c, CONTROLLER, partitions=4))
    assert props["process.roles"] == "controller"
    assert props["node.id"] == str(CONTROLLER_ID)
    assert props["listeners"] == f"CONTROLLER://127.0.0.1:{c.port(CONTROLLER)}"
    assert "advertised.listeners" not in props


@pytest.mark.parametrize(
    ("brokers", "replication", "min_isr"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)]
)
def test_replication_follows_the_brokers(
    tmp_path: Path, brokers: int, replication: int, min_isr: int
) -> None:
    c = Cluster(tmp_path, brokers)
    props = _props(localcluster.render_node_properties(c, c.names[0], partitions=4))
    assert props["default.replication.factor"] == str(replication)
    assert props["min.insync.replicas"] == str(min_isr)


def test_a_cluster_made_before_is_found_with_its_broker_count(tmp_path: Path) -> None:
    assert Cluster.found(tmp_path) is None
    for name in Cluster(tmp_path, 3).names:
        (tmp_path / "kafka-cluster" / name).mkdir(parents=True)
    found = Cluster.found(tmp_path)
    assert found is not None and found.brokers == 3
