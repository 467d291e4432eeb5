"""The bench's results: the machine, every measurement, the ratios; JSON and Markdown.

Pure formatting apart from :func:`machine` (reads /proc) and :func:`write`.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from kessai_bench import profile
from kessai_bench.stats import ratio

FULL_SPEED = "full speed"
JSON_NAME = "results.json"
MARKDOWN_NAME = "results.md"
CHART_NAME = "chart.png"


def _proc_field(path: str, name: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        return None
    return None


def machine(kafka_version: str) -> dict[str, Any]:
    """What the figures were taken on; the load average shows how busy it was."""
    mem = _proc_field("/proc/meminfo", "MemTotal")  # "8039608 kB"
    ram_gib = round(int(mem.split()[0]) / 1024**2, 1) if mem else None

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "cores": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or None,
        "ram_gib": ram_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": kafka_version,
        "aiokafka": version("aiokafka"),
        "faust_streaming": version("faust-streaming"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def ratios(
    results: Sequence[Mapping[str, Any]], pairs: Sequence[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """For each (label, numerator, denominator) that both ran at the same rate: their ratios."""
    out: list[dict[str, Any]] = []
    by_key = {(r["variant"], r["load"]): r for r in results}
    loads = list(dict.fromkeys(r["load"] for r in results))  # in the order measured
    for label, num, den in pairs:
        for load in loads:
            a, b = by_key.get((num, load)), by_key.get((den, load))
            if a is None or b is None:
                continue
            la, lb = a["latency_ms"] or {}, b["latency_ms"] or {}
            out.append(
                {
                    "label": label,
                    "numerator": num,
                    "denominator": den,
                    "load": load,
                    "through_rps": ratio(a["through_rps"], b["through_rps"]),
                    "kafka_records_per_s": ratio(
                        a.get("kafka_records_per_s"), b.get("kafka_records_per_s")
                    ),
                    "p50_ms": ratio(la.get("p50_ms"), lb.get("p50_ms")),
                    "p99_ms": ratio(la.get("p99_ms"), lb.get("p99_ms")),
                    "cpu_ms_per_1k": ratio(a["cpu_ms_per_1k"], b["cpu_ms_per_1k"]),
                }
            )
    return out


def load_label(rate_target: float) -> str:
    """``0`` -> ``"full speed"``, ``2000`` -> ``"2,000/s"``."""
    return FULL_SPEED if rate_target == 0 else f"{rate_target:,.0f}/s"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def markdown(doc: Mapping[str, Any]) -> str:
    """The results as a Markdown page: machine, table, ratios, notes."""
    run = doc["run"]
    lines = [*_intro(doc), *_table(doc["results"])]
    if run.get("chart"):
        lines += ["", f"![throughput and latency per variant]({run['chart']})"]
    lines += _ratio_table(doc["ratios"])
    lines += _split_table(doc["results"])
    lines += _variants(doc["results"])
    for r in doc["results"]:
        if r.get("profile"):
            lines += profile.markdown(r["variant"], r["load"], r["profile"])
    if doc.get("notes"):
        lines += ["", *[f"- {n}" for n in doc["notes"]]]
    return "\n".join(lines) + "\n"


def _intro(doc: Mapping[str, Any]) -> list[str]:
    """The title, the command, the machine, the code and the load."""
    m, run = doc["machine"], doc["run"]
    return [
        f"# kessai bench {run['id']}",
        "",
        f"`{run['command']}`, started {run['started_utc']}, finished {run['finished_utc']}.",
        "",
        f"Machine: {m['cores']} cores, {m['cpu_model']}, {m['ram_gib']} GiB RAM; "
        f"Python {m['python']}, Kafka {m['kafka']}, aiokafka {m['aiokafka']}; "
        f"load average at start {', '.join(map(str, m['load_average_at_start']))}. "
        f"The broker, the load generator, the observer and the process under test share "
        f"these cores.",
        "",
        f"Code: git revision {run.get('revision') or 'unknown'}"
        + (
            f"; `{run['baseline']}` is the exactly-once pipeline of an earlier revision, "
            "measured right after this checkout's"
            if run.get("baseline")
            else ""
        )
        + ".",
        "",
        f"Load: {run['partitions']} partitions, trades of {_num(run['value_bytes_mean'])} bytes, "
        f"{run['limit']}"
        + (
            f" (pipeline: at most {run['pipeline_count']:,} trades)"
            if run.get("pipeline_count")
            else ""
        )
        + f", raw commit interval {run['commit_interval_ms']:g} ms.",
        "",
        "Out: output records (raw: copies; pipeline: one terminal settlement per trade, "
        "so out/s is trades settled per second). Out/s: outputs ÷ (last output visible − "
        "first publish; for a backlog, − the process being ready). Kafka records/s: every "
        "record the process wrote (pipeline: all topics and changelogs, read back "
        "read_committed) in that time. Latency: publish → visible to a read_committed "
        "consumer. CPU s: the process under test, start-up included; CPU per output "
        "leaves the start-up out. Broker CPU per output: the broker's CPU time from the "
        "process being ready to its last output (the load generator's publishing "
        "included when it runs meanwhile). Peak RSS: the process under test (VmHWM).",
        "",
    ]


def _table(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per measurement (variant × load)."""
    lines = [
        "| variant | load | published | published/s | out | out/s | Kafka records/s "
        "| records per out | p50 ms | p95 ms | p99 ms | CPU s | CPU ms / 1k out "
        "| broker CPU ms / 1k out | peak RSS MiB |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        lat = r["latency_ms"] or {}
        flag = "" if r["complete"] else " (incomplete)"
        cells = [
            f"{r['variant']}{flag}",
            r["load"],
            f"{r['published']:,}",
            _num(r["publish_rate"]),
            f"{r['outputs']:,}",
            _num(r["through_rps"]),
            _num(r.get("kafka_records_per_s")),
            _num(r.get("records_per_trade") or 1.0, 1),
            _num(lat.get("p50_ms")),
            _num(lat.get("p95_ms")),
            _num(lat.get("p99_ms")),
            _num(r["cpu_s"], 2),
            _num(r["cpu_ms_per_1k"], 1),
            _num(r.get("broker_cpu_ms_per_1k"), 1),
            _num(r["peak_rss_mib"], 1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ratio_table(ratios_: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ratios as a table (none: nothing)."""
    if not ratios_:
        return []
    return [
        "",
        "| ratio | load | out/s | Kafka records/s | p50 | p99 | CPU per out |",
        "|---|---|--:|--:|--:|--:|--:|",
        *(
            f"| {q['label']} | {q['load']} | {_num(q['through_rps'], 3)} "
            f"| {_num(q.get('kafka_records_per_s'), 3)} "
            f"| {_num(q['p50_ms'], 3)} | {_num(q['p99_ms'], 3)} "
            f"| {_num(q['cpu_ms_per_1k'], 3)} |"
            for q in ratios_
        ),
    ]


def _split_table(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Where the pipeline's latency goes: publish -> its output written (the broker,
    the fetch, the batch's queue and work), then written -> visible (the commit and
    the reader's fetch). Percentiles of each part, so they do not add up."""
    rows = [r for r in results if r.get("latency_split_ms")]
    if not rows:
        return []
    lines = [
        "",
        "Where the latency goes: publish → the output's own timestamp (the engine "
        "stamps it with the clock of its batch as the batch begins: broker, fetch, "
        "queue), then → visible to a read_committed reader (the batch's work, commit, "
        "reader's fetch). Each part's own percentiles: they do not add up.",
        "",
        "| variant | load | written p50 ms | written p99 ms | visible p50 ms | visible p99 ms |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for r in rows:
        w, v = r["latency_split_ms"]["written"], r["latency_split_ms"]["visible"]
        lines.append(
            f"| {r['variant']} | {r['load']} | {_num(w['p50_ms'])} | {_num(w['p99_ms'])} "
            f"| {_num(v['p50_ms'])} | {_num(v['p99_ms'])} |"
        )
    return lines


def _variants(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each variant measured, once, with what it is."""
    lines = ["", "Variants:", ""]
    seen: set[str] = set()
    for r in results:
        if r["variant"] not in seen:
            seen.add(r["variant"])
            lines.append(f"- `{r['variant']}`: {r['description']}.")
    return lines


def write(doc: Mapping[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into *directory* (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / JSON_NAME, directory / MARKDOWN_NAME
    json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    md_path.write_text(markdown(doc), encoding="utf-8")
    return json_path, md_path
