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
    "memory; peak RSS is VmHWM, reached during recovery.",
    "Recovery: faust's 'Restoring state' to 'Done reading' lines. Offsets/s: changelog "
    "records written / that time; the log cleaner may have compacted some away before "
    "the worker read them (then fewer records were read: compare 'on disk', the "
    "changelogs' bytes when the worker started, with the smaller counts').",
    "Marginal bytes / account: against the next smaller count, so without what "
    "recovery leaves behind whatever the count (fetch buffers, allocator leftovers).",
    "Replay RSS: a fresh Python process rebuilding the same tables from the same "
    "records (no Kafka, no faust): what the tables cost once the allocator has "
    "been through a recovery, without the worker's own fetch buffers and events.",
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
        f"Each account: one {run['cash']} deposit and one {run['bond']} deposit, written "
        f"straight into the `accounts` and `applied` changelogs ({run['partitions']} "
        "partitions) exactly as the ledger writes them; then `kessai worker` recovers them. "
        "RSS read a few seconds after `Worker ready`; bytes / account = (RSS(N) − RSS(0)) / N."
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
        "| accounts | changelog records | on disk MiB | RSS MiB | RssAnon MiB | peak RSS MiB "
        "| bytes / account | marginal bytes / account | start → ready s | recovery s "
        "| offsets/s |",
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
            _num(r["start_to_ready_s"], 1),
            _num(r["recovery_s"], 1),
            _num(r["recovery_records_per_s"]),
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
        "accounts through the pipeline (each account's value replaced by the one the "
        "agent built, and one more `applied` id):",
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
    # The largest count: the one least diluted by what recovery costs once.
    biggest = max(measured, key=lambda r: r["accounts"])
    verdict = "under" if biggest["bytes_per_account"] <= target else "over"
    line = (
        f"Target: at most {target:,} bytes per account. After recovery, at "
        f"{biggest['accounts']:,} accounts: {biggest['bytes_per_account']:,}: **{verdict}**."
    )
    if biggest.get("touch_bytes_per_account") is not None:
        line += (
            f" Each account the worker then writes costs "
            f"{biggest['touch_bytes_per_account']:,} bytes more."
        )
    return ["", line]


def _profile(prof: Mapping[str, Any] | None) -> list[str]:
    """The in-process profile: the tables part by part, the replay, the value shapes."""
    if not prof:
        return []
    lines = [
        "",
        f"In-process (tracemalloc, {prof['accounts']:,} accounts, no Kafka): the two "
        f"tables hold {prof['tables_bytes_per_account']:,.0f} bytes per account "
        f"(account ids of {prof['key_chars']['account']} characters, command ids of "
        f"{prof['key_chars']['command_id']}):",
        "",
        "| part | bytes / account |",
        "|---|--:|",
    ]
    lines += [f"| {k} | {v:,.0f} |" for k, v in prof["parts_bytes_per_account"].items()]
    replay = prof.get("replay")
    if replay:
        lines += [
            "",
            "A fresh Python process replaying the same changelog records into the same "
            f"dicts (no Kafka, no faust) grows by {replay['rss_bytes_per_account']:,} "
            "bytes of RSS per account.",
        ]
    lines += ["", "The accounts' values in each shape (the worker keeps the one marked):", ""]
    lines += ["| shape | bytes / account |", "|---|--:|"]
    lines += [
        f"| {k}{' (the worker)' if k == prof['current_shape'] else ''} | {v:,.0f} |"
        for k, v in prof["value_shapes_bytes_per_account"].items()
    ]
    return lines


def write(doc: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``memory.json`` and ``memory.md`` into *out* (created)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / JSON_NAME, out / MARKDOWN_NAME
    json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    md_path.write_text(markdown(doc), encoding="utf-8")
    return json_path, md_path
