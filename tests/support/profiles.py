"""The two ways to run kessai, for tests that must pass under both.

- ``plain``: the shared dev broker, no credentials, signatures not checked.
- ``secure``: a private broker of the secure profile (SASL/SCRAM over TLS, ACLs), one
  per test session; each record is written by the principal that may write it and
  signed by its signer, the workers check signatures, and everything is read as ops.

A test takes the ``profile`` fixture (tests/conftest.py), writes with
:meth:`Profile.send` and reads with :meth:`Profile.reader`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from schemas import CUSTODY, FX_RATES, INSTRUMENTS, ORDERS, PAYMENTS, TRADES
from streams.config import Settings
from streams.devtools import localkafka
from streams.kafka.auth import client_kwargs
from streams.security import signing

#: Who writes each input topic in the secure profile.
WRITER = {
    TRADES: "venue-a",
    ORDERS: "venue-a",
    PAYMENTS: "bridge",
    CUSTODY: "bridge",
    INSTRUMENTS: "registrar",
    FX_RATES: "registrar",
}


def env_of(path: Path) -> dict[str, str]:
    """The ``KEY=value`` lines of an env file, as ``set -a; . FILE`` reads them."""
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            (env[key],) = shlex.split(value)
    return env


@dataclass
class Profile:
    name: str
    bootstrap: str
    #: ``KESSAI_*`` variables of a worker (over the test process's environment).
    worker_env: dict[str, str]
    #: Settings per principal (secure), or the one plain settings under every name.
    principals: Mapping[str, Settings]
    #: The venue whose trades and orders the tests send (its ``venue`` field).
    venue: str = "v1"
    _producers: dict[str, AIOKafkaProducer] = field(default_factory=dict)

    @property
    def secure(self) -> bool:
        return self.name == "secure"

    def settings_of(self, principal: str) -> Settings:
        return self.principals[principal]

    @property
    def reader(self) -> Settings:
        """Whom to read outputs as: ops."""
        return self.principals["ops"]

    def sign(self, topic: str, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` signed by the signer of ``topic``'s writer (secure), else as is."""
        settings = self.principals[WRITER[topic]]
        if not self.secure or settings.signing_key_file is None:
            return record
        assert settings.signer_id is not None and settings.deployment is not None
        key = signing.SigningKey.load(
            settings.signer_id, settings.signing_key_file, settings.deployment
        )
        return signing.sign(topic, record, key)

    async def send(self, topic: str, key: str, record: dict[str, Any]) -> None:
        """Sign ``record`` and write it to ``topic`` as the principal that writes it."""
        await self.send_raw(topic, key, orjson.dumps(self.sign(topic, record)))

    async def send_raw(self, topic: str, key: str, value: bytes) -> None:
        principal = WRITER.get(topic, "admin")
        producer = self._producers.get(principal)
        if producer is None:
            settings = self.principals[principal]
            producer = AIOKafkaProducer(
                bootstrap_servers=settings.bootstrap, acks="all", **client_kwargs(settings)
            )
            await producer.start()
            self._producers[principal] = producer
        await producer.send_and_wait(topic, value, key=key.encode())

    async def close(self) -> None:
        for producer in self._producers.values():
            await producer.stop()
        self._producers.clear()


def plain(bootstrap: str) -> Profile:
    settings = Settings.from_env({"KESSAI_BOOTSTRAP": bootstrap})
    names = ("admin", "venue-a", "venue-b", "bridge", "registrar", "worker", "ops")
    return Profile(
        "plain",
        bootstrap,
        {"KESSAI_BOOTSTRAP": bootstrap},
        dict.fromkeys(names, settings),
    )


#: The accounts the test venue serves in the secure session: prefixes of the names
#: the settlement tests make (buyer1-…, seller3-…, keeper-…), the signed-record
#: tests' own, and the crash test's market (acct-00…).
TEST_VENUE_ACCOUNTS = ["buyer*", "seller*", "keeper*", "alice-*", "bob-*", "acct-*"]


@dataclass(frozen=True)
class SecureCluster:
    """One private broker of the secure profile, with its signers."""

    admin: Settings
    workdir: Path

    def env(self, principal: str) -> dict[str, str]:
        return env_of(localkafka.env_file(self.admin, principal))

    def settings_of(self, principal: str) -> Settings:
        return Settings.from_env(self.env(principal))

    def profile(self) -> Profile:
        names = ("admin", "venue-a", "venue-b", "bridge", "registrar", "worker", "ops")
        return Profile(
            "secure",
            self.admin.bootstrap,
            self.env("worker"),
            {name: self.settings_of(name) for name in names},
            venue="venue-a",
        )


def start_secure_cluster(workdir: Path) -> SecureCluster:
    """A secure broker under ``workdir`` whose venue-a serves the tests' accounts.

    The profile makes the signers' keys and registry; venue-a's accounts are set here
    with ``kessai signers`` (remove, add with the same public key), as an operator would.
    """
    import io

    from streams.security import signers

    admin = localkafka.up_private(workdir, secure=True, log=lambda line: None)
    cluster = SecureCluster(admin, workdir)
    registry = cluster.settings_of("worker").signers_file
    assert registry is not None
    venue = cluster.settings_of("venue-a")
    assert venue.signing_key_file is not None
    public = signing.SigningKey.load("venue-a", venue.signing_key_file, "-").public_text()
    admin_key = cluster.settings_of("admin").registry_admin_key_file
    assert admin_key is not None
    operator = signing.load_admin_key(admin_key)
    out = io.StringIO()
    signers.remove(registry, "venue-a", admin=operator, out=out)
    signers.add(registry, "venue-a", role="venue", accounts=TEST_VENUE_ACCOUNTS,
                public_key=public, key_out=None, admin=operator, out=out)  # fmt: skip
    return cluster
