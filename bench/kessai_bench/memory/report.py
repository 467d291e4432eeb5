"""The memory bench's report: ``memory.json`` and a short Markdown page, ``memory.md``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from kessai_bench.memory.common import mib

#: The aim: at most 1 KiB per funded account.
TARGET_BYTES_PER_ACCOUNT: Final = 1024
JSON_NAME: Final = "memory.json"
MARKDOWN_NAME: Final = "memory.md"

NOTES: Final = (
    "RSS is VmRSS (shared libraries included), RssAnon the process's own anonymous "
    "memory; peak RSS is VmHWM, reached during the restore.",
    "Restore: the engine's own figure, from its log line 'engine: restored N rows in "
    "S s' (the changelogs read to their ends, the last manifest, the inputs' offsets). "
    "Rows/s: N / S. The log cleaner may have compacted superseded rows away before the "
    "worker read them (compare 'on disk', the changelogs' bytes when it started).",
    "Start → leading: from the worker's start to GET /health answering 200 with the "
    "engine leading (faust's start-up, the engine's group, its restore).",
    "Marginal bytes / account: against the next smaller count, so without what a "
    "restore leaves behind whatever the count (fetch buffers, allocator leftovers).",
    "Replay RSS: a fresh Python process restoring an engine from the same rows (no "
    "Kafka, no faust): what the state costs once the allocator has been through a "
    "restore, without the worker's own fetch buffers.",
)


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown(doc: Mapping[str, Any]) -> str:
    """The results as a short Markdown page."""
    results = doc["results"]
    lines = [*_intro(doc), *_table(results), *_touched(results)]
    lines += _verdict(results, doc["run"]["target_bytes_per_account"])
    lines += _profile(doc.get("profile"))
    if doc.get("notes"):
        lines += ["", *[f"- {n}" for n in doc["notes"]]]
    return "\n".join(lines) + "\n"


def _intro(doc: Mapping[str, Any]) -> list[str]:
    m, run = doc["machine"], doc["run"]
    return [
        f"# kessai worker memory per funded account ({run['started_utc']})",
        "",
        f"`{run['command']}`",
        "",
        f"Machine: {m['cores']} cores, {m['cpu_model']}, {m['ram_gib']} GiB RAM; Python "
        f"{m['python']}, Kafka {m['kafka']}, faust-streaming {m['faust_streaming']}; load "
        f"average at start {', '.join(map(str, m['load_average_at_start']))}.",
        "",
        f"Each account: one {run['cash']} deposit and one {run['bond']} deposit, applied "
        "by the engine's own batches in the bench and their rows written straight into "
        "the engine's `accounts`, `applied` and `inflow` changelogs; then `kessai worker` "
        f"({run['partitions']} partitions) restores them. RSS read a few seconds after "
        "the engine leads; bytes / account = (RSS(N) − RSS(0)) / N."
        + (
            " Worker environment: "
            + ", ".join(f"`{k}={v}`" for k, v in run["worker_env"].items())
            + "."
            if run.get("worker_env")
            else ""
        ),
        "",
    ]


def _table(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per account count."""
    lines = [
        "| accounts | changelog rows | on disk MiB | RSS MiB | RssAnon MiB | peak RSS MiB "
        "| bytes / account | marginal bytes / account | start → leading s | restore s "
        "| rows/s |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        flag = "" if r["ready"] else " (not ready)"
        cells = [
            f"{r['accounts']:,}{flag}",
            f"{r['changelog_records']:,}",
            _num(r["changelog_bytes_on_disk_at_start"] / 2**20),
            mib(r["rss_kib"]),
            mib(r["rss_anon_kib"]),
            mib(r["peak_rss_kib"]),
            _num(r["bytes_per_account"]),
            _num(r.get("marginal_bytes_per_account")),
            _num(r["start_to_leading_s"], 1),
            _num(r["restore_s"], 2),
            _num(r["restore_rows_per_s"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _touched(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The counts whose worker then wrote accounts itself (``--touch``), if any."""
    touched = [r for r in results if r.get("touched_accounts")]
    if not touched:
        return []
    return [
        "",
        "Then the worker wrote accounts itself: 1 JPYC deposited into each of the first K "
        "accounts through the pipeline (each account's row replaced by the one the "
        "engine built, and one more `applied` id):",
        "",
        "| accounts | K touched | seconds | RSS before MiB | RSS after MiB "
        "| bytes / touched account |",
        "|--:|--:|--:|--:|--:|--:|",
        *(
            f"| {r['accounts']:,} | {r['touched_accounts']:,} | {_num(r['touch_s'], 1)} "
            f"| {mib(r['rss_kib'])} | {mib(r['rss_after_touch_kib'])} "
            f"| {_num(r['touch_bytes_per_account'])} |"
            for r in touched
        ),
    ]


def _verdict(results: Sequence[Mapping[str, Any]], target: int) -> list[str]:
    """Under or over the target, at the largest count measured."""
    measured = [r for r in results if r["bytes_per_account"]]
    if not measured:
        return []
    # The largest count: the one least diluted by what a restore costs once.
    biggest = max(measured, key=lambda r: r["accounts"])
    verdict = "under" if biggest["bytes_per_account"] <= target else "over"
    line = (
        f"Target: at most {target:,} bytes per account. After the restore, at "
        f"{biggest['accounts']:,} accounts: {biggest['bytes_per_account']:,}: **{verdict}**."
    )
    if biggest.get("touch_bytes_per_account") is not None:
        line += (
            f" Each account the worker then writes costs "
            f"{biggest['touch_bytes_per_account']:,} bytes more."
        )
    return ["", line]


def _profile(prof: Mapping[str, Any] | None) -> list[str]:
    """The in-process profile: the engine's state part by part, and the replay."""
    if not prof:
        return []
    lines = [
        "",
        f"In-process (tracemalloc, {prof['accounts']:,} accounts, no Kafka): an engine "
        f"restored from the prefill's rows holds {prof['engine_bytes_per_account']:,.0f} "
        f"bytes per account (account ids of {prof['key_chars']['account']} characters, "
        f"command ids of {prof['key_chars']['command_id']}, account rows of "
        f"{prof['value_bytes']['accounts']} bytes); part by part:",
        "",
        "| part | bytes / account |",
        "|---|--:|",
    ]
    lines += [f"| {k} | {v:,.0f} |" for k, v in prof["parts_bytes_per_account"].items()]
    lines.append(f"| all parts | {prof['tables_bytes_per_account']:,.0f} |")
    replay = prof.get("replay")
    if replay:
        lines += [
            "",
            "A fresh Python process restoring an engine from the same rows (no Kafka, no "
            f"faust) grows by {replay['rss_bytes_per_account']:,} bytes of RSS per account.",
        ]
    return lines


def write(doc: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``memory.json`` and ``memory.md`` into *out* (created)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / JSON_NAME, out / MARKDOWN_NAME
    json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    md_path.write_text(markdown(doc), encoding="utf-8")
    return json_path, md_path
