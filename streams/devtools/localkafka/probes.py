"""Where the broker is and whether it answers: ``KESSAI_BOOTSTRAP`` parsing, TCP and
metadata probes.

- :func:`split_hosts`, :func:`is_local`, :func:`ports`: the bootstrap's hosts, whether
  kessai may run the broker itself, and the ports a local one listens on;
- :func:`tcp_open`, :func:`answers_metadata`: whether something listens, and whether it
  is a Kafka cluster that answers a metadata request;
- :func:`run_sync`: an aiokafka coroutine run from synchronous code.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from streams.devtools.localkafka.limits import TCP_CONNECT_TIMEOUT_S
from streams.errors import ConfigError

__all__ = [
    "LISTEN_HOST",
    "answers_metadata",
    "is_local",
    "ports",
    "run_sync",
    "split_hosts",
    "tcp_open",
]

#: A local listener binds here only: nothing outside this machine should reach it.
LISTEN_HOST = "127.0.0.1"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})

T = TypeVar("T")


def split_hosts(bootstrap: str) -> list[tuple[str, int]]:
    """``"a:1,b"`` -> ``[("a", 1), ("b", 9092)]``; Kafka's default port when none is given."""
    hosts: list[tuple[str, int]] = []
    for item in bootstrap.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port_text = item.rpartition(":")
        if not sep:
            host, port_text = item, "9092"
        host = host.strip("[]")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f"KESSAI_BOOTSTRAP: bad entry {item!r}, want host:port")
        hosts.append((host, int(port_text)))
    if not hosts:
        raise ConfigError("KESSAI_BOOTSTRAP: empty")
    return hosts


def is_local(bootstrap: str) -> bool:
    """Whether kessai may run the broker itself: one loopback address we can listen on."""
    hosts = split_hosts(bootstrap)
    return len(hosts) == 1 and hosts[0][0] in LOCAL_HOSTS


def ports(bootstrap: str) -> tuple[int, int]:
    """(broker port, controller port); the controller takes the next port up."""
    hosts = split_hosts(bootstrap)
    assert len(hosts) == 1, bootstrap
    port = hosts[0][1]
    if port + 1 > 65535:
        raise ConfigError(f"KESSAI_BOOTSTRAP: port {port} leaves no room for the controller")
    return port, port + 1


def tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=TCP_CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def answers_metadata(bootstrap: str, timeout_s: float, auth: Mapping[str, Any]) -> bool:
    """``auth``: :func:`streams.kafka.auth.client_kwargs` of whom the probe connects as."""
    # A plain connect first: while nothing listens it fails at once, and aiokafka is
    # spared logging an error per poll.
    if not any(tcp_open(host, port) for host, port in split_hosts(bootstrap)):
        return False
    return run_sync(metadata_brokers(bootstrap, timeout_s, auth)) > 0


async def metadata_brokers(bootstrap: str, timeout_s: float, auth: Mapping[str, Any]) -> int:
    """How many brokers the cluster's metadata lists; 0 when it does not answer in time."""
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        client_id="kessai-localkafka",
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
        **auth,
    )
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
            # Also reaches the broker through its advertised listener, as real clients do.
            cluster = await client.fetch_all_metadata()
        return len(cluster.brokers())
    except (KafkaError, OSError, TimeoutError):
        return 0
    finally:
        await client.close()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from inside a running loop (an async test or a faust app)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
