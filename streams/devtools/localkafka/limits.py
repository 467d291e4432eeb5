"""How long the local broker launcher waits for each thing, in one place.

Every step that runs a tool, polls a process or probes the broker takes its limit from
here, so that the time a slow machine may need is read and tuned in one file.
"""

from __future__ import annotations

from typing import Final

#: The first run downloads about 46 MB of jars; a slow mirror must not hang us forever.
MVN_TIMEOUT_S: Final = 900.0
JAVA_VERSION_TIMEOUT_S: Final = 30.0
FORMAT_TIMEOUT_S: Final = 120.0
#: Installing the secure profile's ACLs: a few short JVMs, run side by side.
ACL_TIMEOUT_S: Final = 180.0
#: Waiting for another `up`/`down` that holds the lock; covers a first-run download.
LOCK_WAIT_S_MAX: Final = MVN_TIMEOUT_S + 120.0
#: After SIGKILL the kernel frees the process quickly; more means something is wrong.
KILL_WAIT_S: Final = 10.0
POLL_INTERVAL_S: Final = 0.25
#: One metadata probe; the broker is local, so a healthy one answers in milliseconds.
PROBE_TIMEOUT_S: Final = 5.0
TCP_CONNECT_TIMEOUT_S: Final = 1.0
#: How much of a tool's output or a log an error quotes.
LOG_TAIL_LINES: Final = 20
