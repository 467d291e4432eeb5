"""Sampling profiles of a measured process, with py-spy, and their top entries.

``kessai bench --profile VARIANT`` attaches ``py-spy record`` to that variant's
process once it is ready and stops it when the last output arrived, so the profile
covers the measured work only (not start-up, not shutdown). py-spy writes collapsed
stacks (``frame;frame;frame count`` per line, the input of flame-graph tools); this
module reads them into the figures a results page shows:

- **self time** per frame: where the CPU actually is;
- **self time per package** (asyncio, aiokafka, faust, kessai's own code, ...):
  whose code it is, which says what an optimisation can reach;
- **inclusive time** of kessai's own frames and of a few faust entry points.

py-spy is in the ``bench`` extra; it needs permission to ptrace the process (root, or
``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Samples per second: 100 is py-spy's default and costs the target almost nothing.
RATE_HZ = 100
TOP = 15
STOP_TIMEOUT_S = 30.0
#: ``function (path/to/file.py:line)`` -- py-spy's frame format.
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")
_LINE = re.compile(r":\d+\)$")
#: kessai's entry points (the command line, the worker's main): every sample has them.
_ENTRY = re.compile(r"\(streams/(cli/__init__|runtime/app)\.py")
#: Package of a frame, from its file path, first match wins.
_PACKAGES: tuple[tuple[str, str], ...] = (
    ("streams/", "kessai (streams/)"),
    ("schemas/", "kessai (schemas/)"),
    ("faust/", "faust"),
    ("mode/", "mode"),
    ("aiokafka/", "aiokafka"),
    ("pydantic", "pydantic"),
    ("orjson", "orjson"),
    ("asyncio/", "asyncio"),
    ("selectors.py", "asyncio"),
    ("uvloop", "uvloop"),
)


def py_spy() -> str | None:
    """The py-spy executable beside this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Recording:
    """A running ``py-spy record``; :meth:`stop` ends it and returns its summary."""

    proc: subprocess.Popen[bytes]
    output: Path

    @classmethod
    def start(cls, pid: int, output: Path) -> Recording:
        exe = py_spy()
        if exe is None:
            raise FileNotFoundError("py-spy is not installed (pip install -e '.[bench]')")
        log = output.with_suffix(".log").open("wb")
        proc = subprocess.Popen(
            [
                *(exe, "record", "--pid", str(pid), "--rate", str(RATE_HZ)),
                *("--format", "raw", "--output", str(output), "--nonblocking"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        return cls(proc, output)

    async def stop(self) -> dict[str, Any]:
        """Stop sampling (SIGINT: py-spy then writes its file) and summarise it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        await asyncio.to_thread(self.proc.wait, STOP_TIMEOUT_S)
        if not self.output.exists():
            log = self.output.with_suffix(".log")
            said = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise RuntimeError(f"py-spy wrote no profile ({' '.join(said)}); see {log.name}")
        return summarise(self.output.read_text(encoding="utf-8"), source=self.output.name)


def _package(frame: str) -> str:
    m = _FRAME.match(frame)
    path = m.group("file") if m else frame
    for needle, name in _PACKAGES:
        if needle in path:
            return name
    return "other (Python, C extensions, idle)" if path else "other"


def summarise(collapsed: str, *, source: str = "", top: int = TOP) -> dict[str, Any]:
    """The top entries of a collapsed-stack profile (percent of all samples)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_LINE.sub(")", f) for f in stack.split(";")]  # per function, not line
        own[frames[-1]] += n
        packages[_package(frames[-1])] += n
        for frame in set(frames):
            if _package(frame).startswith("kessai") and not _ENTRY.search(frame):
                inclusive[frame] += n

    def pct(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    return {
        "file": source,
        "samples": total,
        "rate_hz": RATE_HZ,
        "self": [{"frame": f, "pct": pct(n)} for f, n in own.most_common(top)],
        "self_by_package": [{"package": p, "pct": pct(n)} for p, n in packages.most_common()],
        "kessai_inclusive": [{"frame": f, "pct": pct(n)} for f, n in inclusive.most_common(top)],
    }


def markdown(variant: str, load: str, profile: dict[str, Any]) -> list[str]:
    """A results-page section for one profile."""
    if "error" in profile:
        return ["", f"### Profile: `{variant}`, {load}", "", f"Not taken: {profile['error']}"]
    lines = [
        "",
        f"### Profile: `{variant}`, {load}",
        "",
        f"py-spy, {profile['samples']:,} samples at {profile['rate_hz']} Hz "
        f"(collapsed stacks: `{profile['file']}`, for any flame-graph tool).",
        "",
        "| self time by package | % |",
        "|---|--:|",
        *[f"| {p['package']} | {p['pct']:.1f} |" for p in profile["self_by_package"]],
        "",
        "| top frames, self time | % |",
        "|---|--:|",
        *[f"| `{e['frame']}` | {e['pct']:.1f} |" for e in profile["self"]],
        "",
        "| kessai's own frames, inclusive | % |",
        "|---|--:|",
        *[f"| `{e['frame']}` | {e['pct']:.1f} |" for e in profile["kessai_inclusive"]],
    ]
    return lines
