"""The broker's storage: formatted once with a new cluster id, kept from then on.

:func:`format_storage` runs Kafka's StorageTool on a log dir that has no
``meta.properties`` yet; the secure profile's SCRAM users are created there too, which
is why their arguments never reach a command line.
"""

from __future__ import annotations

import base64
import secrets
import subprocess

from streams.devtools.localkafka import jvm
from streams.devtools.localkafka import secure as kafkasecure
from streams.devtools.localkafka.errors import BrokerError, Log, tail_text
from streams.devtools.localkafka.layout import Paths
from streams.devtools.localkafka.limits import FORMAT_TIMEOUT_S

__all__ = ["format_storage", "is_formatted", "new_cluster_id"]


def new_cluster_id() -> str:
    """22 characters of URL-safe base64 from 16 random bytes, as Kafka's ``Uuid`` prints."""
    while True:
        raw = secrets.token_bytes(16)
        text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        # Kafka's Uuid.randomUuid rejects these too: a leading "-" reads as a flag on a
        # command line, and the all-zero id is reserved.
        if not text.startswith("-") and any(raw):
            assert len(text) == 22, text
            return text


def is_formatted(paths: Paths) -> bool:
    """Whether the log dir holds a formatted storage (its cluster id, maybe data)."""
    return (paths.data / "meta.properties").exists()


def format_storage(
    java: str, paths: Paths, log: Log, extra_args: list[str], *, cluster_id: str | None = None
) -> bool:
    """Format the log dir once; a formatted one keeps its cluster id and data.

    ``extra_args``: more ``format`` arguments (the secure profile's SCRAM users);
    ``cluster_id``: the cluster's (every node of a cluster has the same), else a new one.
    Returns whether it formatted.
    """
    if is_formatted(paths):
        return False
    cluster_id = cluster_id or new_cluster_id()
    log(f"formatting {paths.data} (cluster id {cluster_id})")
    tool_args = [
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(paths.server_properties),
        # No --standalone: this config names its voter statically.
        "--ignore-formatted",
        *extra_args,
    ]
    # The SCRAM arguments hold salted passwords, as good as the passwords for a SCRAM
    # login: they go in a 0600 argument file, never on the command line (/proc, ps).
    # The main class is in it too: java expands @files only before the main class.
    argfile = paths.root / "format.args"
    kafkasecure.write_private(argfile, jvm.java_argfile(tool_args))
    cmd = [
        java,
        "-Xmx256M",  # kafka-storage.sh's heap; the tool needs little.
        *jvm.log_flags(paths),
        "-cp",
        jvm.classpath(paths),
        f"@{argfile}",
    ]
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,  # only quoted on failure, never parsed
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=FORMAT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise BrokerError(f"kafka StorageTool format took over {FORMAT_TIMEOUT_S:.0f} s") from err
    finally:
        argfile.unlink(missing_ok=True)
    if done.returncode != 0:
        raise BrokerError(
            f"kafka StorageTool format failed (exit {done.returncode}):\n"
            + tail_text(done.stdout + done.stderr)
        )
    return True
