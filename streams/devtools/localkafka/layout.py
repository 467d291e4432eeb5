"""Where a local broker's files live: :class:`Paths`, one folder per profile.

The dev profile's folder is ``<state_dir>/kafka``: ``libs/`` (jars, with the pom's hash
beside them), ``pom.xml`` (the copy of the packaged pom that Maven runs on), ``data/``
(log dirs and KRaft metadata), ``logs/server.log``, ``server.properties``,
``log4j.properties``, ``kafka.pid``. The secure profile's is ``<state_dir>/kafka-secure``,
the same plus ``secure/`` (:class:`streams.devtools.localkafka.secure.SecureFiles`); it
runs on the dev profile's jars.

Also :func:`write_atomic`, how the launcher writes the files a reader must never see
half written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streams.config import Settings
from streams.devtools.localkafka import secure as kafkasecure

__all__ = ["Paths", "is_secure", "write_atomic"]

POM_HASH_NAME = ".pom.sha256"
POM_NAME = "pom.xml"


def is_secure(settings: Settings) -> bool:
    """Whether ``settings`` name the secure profile (SASL/SCRAM over TLS, ACLs)."""
    return settings.kafka_security == "sasl_ssl"


@dataclass(frozen=True)
class Paths:
    root: Path
    #: Where ``libs/`` is: the dev profile's folder (None: ``root``, the dev profile).
    libs_root: Path | None = None
    secure: bool = False

    @classmethod
    def of(cls, settings: Settings) -> Paths:
        plain = settings.state_dir / "kafka"
        if is_secure(settings):
            return cls(settings.state_dir / kafkasecure.PROFILE_DIR_NAME, plain, secure=True)
        return cls(plain)

    @property
    def libs_home(self) -> Path:
        return self.root if self.libs_root is None else self.libs_root

    @property
    def libs(self) -> Path:
        return self.libs_home / "libs"

    @property
    def pom(self) -> Path:
        # Maven may write beside the pom it runs on; the packaged one can sit in a
        # read-only site-packages, so it runs on this copy in the jars' own folder.
        return self.libs_home / POM_NAME

    @property
    def secure_files(self) -> kafkasecure.SecureFiles:
        return kafkasecure.SecureFiles(self.root / "secure")

    @property
    def tools_log4j_properties(self) -> Path:
        return self.root / "tools-log4j.properties"

    @property
    def pom_hash(self) -> Path:
        # Inside libs/, so the jars and the hash that vouches for them appear in one rename.
        return self.libs / POM_HASH_NAME

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.logs / "kafka.out"

    @property
    def server_properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j_properties(self) -> Path:
        return self.root / "log4j.properties"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
