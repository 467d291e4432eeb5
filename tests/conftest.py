"""Fixtures shared by every test tier.

Integration tests share one real broker per session (``bootstrap``) and stay out of
each other's way with fresh random topic names (``unique_name``); they never mock
the broker. A broker that cannot be started fails the tests that need it: a skipped
integration test would pass CI while testing nothing.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio

from streams.config import Settings
from streams.devtools import localkafka
from streams.kafka.admin import delete_topics_starting_with
from tests.support.profiles import Profile, SecureCluster, plain, start_secure_cluster

T = TypeVar("T")

# The workers the tests start trade bonds drawn before the security master existed
# (issue 20), which are not in it: they run with it off, unless a test sets it. The
# tests of the master (test_bonds.py) and the demo run with it required.
os.environ.setdefault("KESSAI_SECURITY_MASTER", "off")

#: Random hex characters in a test topic name: 2**48 names, no collision across runs.
NAME_RANDOM_BYTES = 6
#: Longest prefix kept; Kafka allows 249 characters, and a prefix + catalogue name must fit.
NAME_PREFIX_CHARS_MAX = 40


#: Seconds a crash test may take before pytest-timeout fails it with every stack (the
#: settlement one takes ~7 min on 2 cores; the default for other tests is pyproject's).
KILL_TEST_TIMEOUT_S = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # A crash test is marked `kill`, so that `make check` can leave it out; it gets
        # a longer timeout than the rest.
        if "tests/crash/" in item.nodeid and item.get_closest_marker("kill") is None:
            raise pytest.UsageError(f"{item.nodeid} is a crash test but not marked kill")
        if item.get_closest_marker("kill") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(KILL_TEST_TIMEOUT_S))
    # `-m "not integration"` must leave out every test that needs the broker.
    for item in items:
        callspec = getattr(item, "callspec", None)
        # A test parametrized with its own `bootstrap` argument (a string to parse) does
        # not use the fixture.
        parametrized = callspec is not None and "bootstrap" in callspec.params
        needs_broker = "bootstrap" in getattr(item, "fixturenames", ()) and not parametrized
        if needs_broker and item.get_closest_marker("integration") is None:
            raise pytest.UsageError(
                f"{item.nodeid} uses the broker (fixture `bootstrap`) but is not marked "
                f"@pytest.mark.integration"
            )


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """The bootstrap of a broker that answers: KESSAI_BOOTSTRAP's, or the local one.

    A KESSAI_BOOTSTRAP that is not on this machine is used as it is (``up`` only waits
    for it); otherwise the shared local broker is started if it is not running yet.
    It is never stopped here: other sessions and engineers use it too.
    """
    settings = Settings.from_env()
    try:
        status = localkafka.up(settings, log=lambda line: print(f"[kessai kafka] {line}"))
    except localkafka.LocalKafkaError as err:
        pytest.fail(f"no Kafka broker for the integration tests: {err}", pytrace=False)
    assert status.running, status
    return status.bootstrap


@pytest.fixture(scope="session")
def secure_cluster(
    bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureCluster]:
    """One private broker of the secure profile for the session (SASL/SCRAM over TLS,
    ACLs, the local signers), stopped at the end. ``bootstrap``: the shared broker
    exists first, so this one copies its jars instead of running Maven."""
    workdir: Path = tmp_path_factory.mktemp("secure-kafka")
    try:
        cluster = start_secure_cluster(workdir)
    except localkafka.LocalKafkaError as err:
        pytest.fail(f"no secure Kafka broker for the tests: {err}", pytrace=False)
    try:
        yield cluster
    finally:
        localkafka.down(cluster.admin)


# The test's own loop: the producers it opens are closed where they were made.
# The secure runs start a broker of the secure profile for the session: `make check`
# leaves them to `make test` (marked slow).
@pytest_asyncio.fixture(
    params=["plain", pytest.param("secure", marks=pytest.mark.slow)], loop_scope="function"
)
async def profile(request: pytest.FixtureRequest, bootstrap: str) -> AsyncIterator[Profile]:
    """Each test that takes it runs twice: on the open dev broker, and under the secure
    profile with signed records (tests/support/profiles.py)."""
    chosen = (
        plain(bootstrap)
        if request.param == "plain"
        else request.getfixturevalue("secure_cluster").profile()
    )
    try:
        yield chosen
    finally:
        await chosen.close()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """A maker of fresh random topic names: ``unique_name("pay")`` -> ``"t-pay-1a2b3c4d5e6f-"``.

    Names end with ``-`` so that one can also serve as a prefix for a set of topics.
    Topics whose name starts with a name made here are deleted after the test, when
    the test used the broker.
    """
    made: list[str] = []

    def make(prefix: str = "test") -> str:
        clean = re.sub(r"[^A-Za-z0-9._-]", "-", prefix)[:NAME_PREFIX_CHARS_MAX]
        name = f"t-{clean}-{secrets.token_hex(NAME_RANDOM_BYTES)}-"
        made.append(name)
        return name

    yield make
    if made and "bootstrap" in request.fixturenames:
        settings = Settings(bootstrap=request.getfixturevalue("bootstrap"))
        localkafka.run_sync(delete_topics_starting_with(settings, made))
