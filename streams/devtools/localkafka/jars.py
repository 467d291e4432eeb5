"""The Kafka jars: fetched once with Maven from the packaged ``pom.xml``.

:func:`ensure_jars` runs ``mvn dependency:copy-dependencies`` when ``libs/`` does not
hold the jars of the current pom (its digest, :func:`pom_digest`, is kept beside them),
into a fresh folder renamed into place, so that an interrupted download never leaves a
half ``libs/``. Maven runs on a copy of the pom in the jars' folder
(:attr:`~streams.devtools.localkafka.layout.Paths.pom`), never on the packaged one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from streams.devtools.localkafka.errors import BrokerError, Log, MissingToolError, tail_text
from streams.devtools.localkafka.layout import POM_HASH_NAME, Paths
from streams.devtools.localkafka.limits import MVN_TIMEOUT_S

__all__ = [
    "KAFKA_VERSION",
    "POM_PATH",
    "ensure_jars",
    "kafka_version",
    "log4j2",
    "pom_digest",
    "require_mvn",
]

#: The local brokers' Kafka unless ``KESSAI_KAFKA_VERSION`` says otherwise: the newest
#: the whole suite passed on (docs/operations.md lists the versions tested).
KAFKA_VERSION = "4.4.0"
_VERSION_RE = re.compile(r"^(3|4)\.\d+\.\d+$")
#: The pom as packaged (package data): read, hashed and copied, never run on in place.
POM_PATH = Path(__file__).with_name("pom.xml")
MVN_INSTALL_HINT = "Apache Maven (apt-get install maven)"

LIBS_TMP_PREFIX = "libs.tmp-"
LIBS_OLD_PREFIX = "libs.old-"


def require_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingToolError(
            f"mvn not found on PATH: install {MVN_INSTALL_HINT}; it fetches the Kafka jars once"
        )
    return mvn


def kafka_version() -> str:
    """The Kafka of the local brokers: ``KESSAI_KAFKA_VERSION`` (3.x.y or 4.x.y, from
    Maven Central), else :data:`KAFKA_VERSION`."""
    version = os.environ.get("KESSAI_KAFKA_VERSION", "").strip() or KAFKA_VERSION
    if not _VERSION_RE.fullmatch(version):
        raise BrokerError(
            f"KESSAI_KAFKA_VERSION={version!r}: want a Kafka release such as 3.9.2 or "
            f"4.1.1 (Maven Central's org.apache.kafka:kafka_2.13)"
        )
    return version


def log4j2(version: str) -> bool:
    """Kafka 4.x logs through log4j 2 (its flag and its file format); 3.x through
    reload4j (log4j 1.2's)."""
    return int(version.split(".")[0]) >= 4


def pom_digest() -> str:
    """The pom's and the version's: either changed, the jars are fetched again."""
    return hashlib.sha256(POM_PATH.read_bytes() + kafka_version().encode()).hexdigest()


def ensure_jars(paths: Paths, log: Log) -> None:
    """Fetch the jars unless ``libs/`` holds those of the current pom."""
    want = pom_digest()
    with contextlib.suppress(OSError):
        if paths.pom_hash.read_text(encoding="ascii").strip() == want:
            return
    mvn = require_mvn()
    home = paths.libs_home
    home.mkdir(parents=True, exist_ok=True)
    # Leftovers of an interrupted fetch: never trusted, never reused.
    for stale in [*home.glob(LIBS_TMP_PREFIX + "*"), *home.glob(LIBS_OLD_PREFIX + "*")]:
        shutil.rmtree(stale, ignore_errors=True)
    log(f"fetching Kafka {kafka_version()} jars with Maven into {paths.libs} (first run downloads)")
    shutil.copyfile(POM_PATH, paths.pom)
    # A fresh folder renamed into place: an interrupted download never leaves a half libs/.
    tmp = Path(tempfile.mkdtemp(prefix=LIBS_TMP_PREFIX, dir=home))
    try:
        _copy_dependencies(mvn, paths.pom, tmp)
        (tmp / POM_HASH_NAME).write_text(want + "\n", encoding="ascii")
        tmp.chmod(0o755)  # mkdtemp makes it private; the jars are not secret.
        _replace_libs(paths, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _copy_dependencies(mvn: str, pom: Path, out: Path) -> None:
    """``mvn dependency:copy-dependencies`` of ``pom`` into ``out``; checks the broker's jar."""
    version = kafka_version()
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-Dkafka.version={version}",
        f"-Dkessai.logging={'log4j2' if log4j2(version) else 'reload4j'}",
        f"-DoutputDirectory={out}",
        "-DincludeScope=runtime",
    ]
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=MVN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise BrokerError(f"mvn did not finish within {MVN_TIMEOUT_S:.0f} s") from err
    if done.returncode != 0:
        raise BrokerError(
            f"mvn copy-dependencies failed (exit {done.returncode}):\n"
            + tail_text(done.stdout + done.stderr)
        )
    if not any(out.glob(f"kafka_2.13-{version}.jar")):
        raise BrokerError(f"mvn ran but {out} holds no kafka_2.13-{version}.jar")


def _replace_libs(paths: Paths, fresh: Path) -> None:
    """Rename ``fresh`` to ``libs/``, moving the old one aside first."""
    old: Path | None = None
    if paths.libs.exists():
        old = paths.libs_home / f"{LIBS_OLD_PREFIX}{os.getpid()}"
        paths.libs.rename(old)
    fresh.rename(paths.libs)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
