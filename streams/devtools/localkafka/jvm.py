"""Java: finding a ``java`` new enough for Kafka, and the command lines it runs.

- :func:`require_java`: JAVA_HOME's ``java``, else PATH's, refused below Java 17;
- :func:`heap`: the broker's heap from ``KESSAI_KAFKA_HEAP``;
- :func:`broker_command`: the broker's JVM, with the flags of Kafka's own start scripts;
  :func:`tool_java`: a short-lived Kafka tool's (AclCommand);
- :func:`java_argfile`: arguments that must stay off the command line, as a java
  ``@argfile``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from streams.devtools.localkafka.errors import LocalKafkaError, MissingToolError
from streams.devtools.localkafka.jars import kafka_version, log4j2
from streams.devtools.localkafka.layout import Paths
from streams.devtools.localkafka.limits import JAVA_VERSION_TIMEOUT_S

__all__ = [
    "broker_command",
    "classpath",
    "heap",
    "java_argfile",
    "java_major",
    "java_version_output",
    "log_flags",
    "require_java",
    "tool_java",
]

#: Kafka 4.x needs 17; asking for it now means no second upgrade when we move.
JAVA_MAJOR_MIN = 17
JAVA_INSTALL_HINT = "Java 17+ (e.g. apt-get install openjdk-17-jre-headless)"
HEAP_DEFAULT = "1G"


def require_java(env: Mapping[str, str] | None = None) -> str:
    """Path of a Java 17+ ``java``: JAVA_HOME's first, as Kafka's scripts do, else PATH's."""
    e = os.environ if env is None else env
    java: str | None = None
    java_home = e.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        java = str(Path(java_home) / "bin" / "java")
    if java is None:
        java = shutil.which("java")
    if java is None:
        raise MissingToolError(f"java not found on PATH: install {JAVA_INSTALL_HINT}")
    major = java_major(java_version_output(java))
    if major is None:
        raise MissingToolError(f"cannot tell the version of {java}: install {JAVA_INSTALL_HINT}")
    if major < JAVA_MAJOR_MIN:
        raise MissingToolError(
            f"{java} is Java {major}; Kafka here needs {JAVA_INSTALL_HINT}, "
            f"first on PATH or in JAVA_HOME"
        )
    return java


def java_version_output(java: str) -> str:
    """What ``java -version`` prints."""
    try:
        done = subprocess.run(
            [java, "-version"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=JAVA_VERSION_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise MissingToolError(
            f"cannot run {java} -version ({err}): install {JAVA_INSTALL_HINT}"
        ) from err
    # `java -version` prints on stderr.
    return done.stderr + done.stdout


def java_major(version_output: str) -> int | None:
    """``openjdk version "17.0.15"`` -> 17; the old ``"1.8.0_292"`` scheme -> 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        major = int(match.group(2))
    return major


def heap(env: Mapping[str, str]) -> str:
    """The broker's heap (``-Xmx``/``-Xms``): ``KESSAI_KAFKA_HEAP``, 1G by default."""
    size = env.get("KESSAI_KAFKA_HEAP", HEAP_DEFAULT).strip()
    if not re.fullmatch(r"[1-9][0-9]*[kKmMgG]?", size):
        raise LocalKafkaError(f"KESSAI_KAFKA_HEAP={size!r}: want a JVM size such as 512M or 1G")
    return size


def java_argfile(args: list[str]) -> str:
    """A java ``@argfile`` holding ``args``: each in single quotes, one per line (java
    keeps double quotes inside single quotes; kessai's arguments hold no single quote
    or backslash)."""
    for arg in args:
        assert "'" not in arg and "\\" not in arg and "\n" not in arg, arg
    return "".join(f"'{arg}'\n" for arg in args)


def classpath(paths: Paths) -> str:
    # The wildcard must reach java unexpanded (no shell here, so it does).
    return f"{paths.libs}/*"


def log4j_flag(config: Path) -> str:
    """Where the JVM's logging reads its configuration: log4j 2's property (Kafka 4.x)
    or reload4j's (3.x). The wrong one is silent: no server.log, the broker still up."""
    if log4j2(kafka_version()):
        return f"-Dlog4j2.configurationFile={config}"
    return f"-Dlog4j.configuration=file:{config}"


def log_flags(paths: Paths) -> list[str]:
    return [log4j_flag(paths.log4j_properties), f"-Dkafka.logs.dir={paths.logs}"]


def broker_command(java: str, paths: Paths, heap: str) -> list[str]:
    # The JVM flags of Kafka's kafka-server-start.sh / kafka-run-class.sh.
    return [
        java,
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-server",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        *log_flags(paths),
        "-cp",
        classpath(paths),
        "kafka.Kafka",
        str(paths.server_properties),
    ]


def tool_java(java: str, paths: Paths) -> list[str]:
    """java and its flags for a short-lived Kafka tool: small heap, fast start."""
    return [
        java,
        "-Xmx256M",
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        "-Djava.awt.headless=true",
        log4j_flag(paths.tools_log4j_properties),
        "-cp",
        classpath(paths),
    ]
