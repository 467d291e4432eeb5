"""The auditors' commands on the real broker, over what a real worker wrote.

One scenario, run once on a broker of its own (so that the replay reads only what
this worker wrote, under these settings): a worker settles a trade between two funded
accounts, and a bad payment is rejected. Then, with the worker still running:

- ``kessai positions --as-of`` a moment between the deposits and the trade (as a time,
  and as offsets) gives the balances that held then; at the head, those after;
- a copy of the run's journal verifies, with each account's root the hash of its last
  record; a copy with one record altered, one removed and two swapped fails
  ``kessai verify``, which names each;
- ``kessai replay`` agrees with every output, table and the worker's live table; fed
  the tampered copy as ``ledger-events``, it names the first altered record.

The same worker serves the operations checks: ``/positions``, ``/trades``,
``/metrics`` and ``/health``, and a real Prometheus (Debian's package) scraping it
with ``deploy/prometheus/alerts.yml`` loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from streams import cli
from streams.config import Settings
from streams.devtools.processes import free_port
from streams.kafka.reader import read_committed
from streams.ledger import journal
from streams.topics import TopicSpec
from tests.support import paths
from tests.support.records import trade_time
from tests.support.topics import create_fresh
from tests.support.workers import private_worker

#: The trade's trade_time: ten minutes before the test, well inside the engine's window.
TRADE_TIME = trade_time(600)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOND = "JP1103551Q43"
WAIT_S = 120.0
#: One journal record: (partition, offset, timestamp_ms, value object).
Row = tuple[int, int, int, dict[str, Any]]


@dataclass(frozen=True)
class Journal:
    """The run's ledger-events records: (partition, offset, timestamp_ms, value object)."""

    buyer: str
    seller: str
    records: list[Row]

    def of(self, account: str) -> list[Row]:
        return [r for r in self.records if r[3]["account"] == account]


async def _journal_of(bootstrap: str, accounts: set[str]) -> list[Row]:
    out = []
    for r in await read_committed(Settings(bootstrap=bootstrap), "ledger-events"):
        try:
            value = orjson.loads(r.value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict) and value.get("account") in accounts:
            out.append((r.partition, r.offset, r.timestamp, value))
    return out


async def _wait_for(
    bootstrap: str, accounts: set[str], done: Callable[[list[Any]], bool]
) -> list[Row]:
    deadline = time.monotonic() + WAIT_S
    while True:
        found = await _journal_of(bootstrap, accounts)
        if done(found):
            return found
        assert time.monotonic() < deadline, f"journal never got there: {found}"
        await asyncio.sleep(0.5)


def _seqs(found: list[Any], account: str) -> int:
    return max((r[3]["seq"] for r in found if r[3]["account"] == account), default=0)


@dataclass(frozen=True)
class Run:
    settings: Settings
    web: str
    journal: Journal
    trade_id: str


@pytest.fixture(scope="module")
def scenario(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    # `bootstrap`: the shared broker exists, so the private one copies its jars.
    run = uuid.uuid4().hex[:6]
    buyer, seller = f"audit-b-{run}", f"audit-s-{run}"
    accounts = {buyer, seller}

    async def go(private: str) -> list[Row]:
        producer = AIOKafkaProducer(bootstrap_servers=private, acks="all")
        await producer.start()
        try:

            async def send(topic: str, key: str, value: dict[str, Any]) -> None:
                await producer.send_and_wait(topic, orjson.dumps(value), key=key.encode())

            await send("payments", buyer, {"payment_id": f"p-{run}", "account": buyer,
                       "token": "JPYC", "amount": "200000", "kind": "deposit"})  # fmt: skip
            await send("custody", seller, {"movement_id": f"c-{run}", "account": seller,
                       "isin": BOND, "quantity": 200_000, "kind": "deposit"})  # fmt: skip
            # Half a yen out: rejected, invalid_amount (a withdrawal moves whole yen; a
            # deposit that fine would be taken, its half yen the bridge's dust).
            await send("payments", buyer, {"payment_id": f"bad-{run}", "account": buyer,
                       "token": "JPYC", "amount": "0.5", "kind": "withdrawal"})  # fmt: skip
            await _wait_for(private, accounts, lambda f: all(_seqs(f, a) >= 1 for a in accounts))
            # The trade's records must be stamped after the deposits' millisecond.
            await asyncio.sleep(0.05)
            await send("trades", f"t-{run}", {
                "trade_id": f"t-{run}", "venue": "v1", "isin": BOND, "buyer": buyer,
                "seller": seller, "quantity": 100_000, "price": "99.5", "currency": "JPYC",
                "accrued_interest": "12", "trade_time": TRADE_TIME})  # fmt: skip
            # Each side: lock, then the post and the other leg's credit.
            return await _wait_for(
                private, accounts, lambda f: all(_seqs(f, a) >= 4 for a in accounts)
            )
        finally:
            await producer.stop()

    with private_worker(tmp_path_factory.mktemp("audit")) as worker:
        records = asyncio.run(go(worker.settings.bootstrap))
        journal = Journal(buyer, seller, records)
        yield Run(worker.settings, worker.web, journal, f"t-{run}")


def _positions(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> dict[tuple[str, str], tuple[str, str]]:
    assert cli.main(["positions", "--format", "json", *argv]) == 0
    rows = json.loads(capsys.readouterr().out)
    return {(r["account"], r["asset"]): (r["available"], r["locked"]) for r in rows}


def test_positions_as_of_a_moment_between_two_steps(
    scenario: Run,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KESSAI_BOOTSTRAP", scenario.settings.bootstrap)
    journal_ = scenario.journal
    b, s = journal_.buyer, journal_.seller
    deposits = [r for r in journal_.records if r[3]["seq"] == 1]
    trade = [r for r in journal_.records if r[3]["seq"] > 1]
    moment_ms = max(r[2] for r in deposits)
    assert moment_ms < min(r[2] for r in trade), "the steps must be apart in time"
    at = datetime.fromtimestamp(moment_ms / 1000, UTC).isoformat(timespec="milliseconds")

    before = {(b, "JPYC"): ("200000", "0"), (s, BOND): ("200000", "0")}
    after = {
        (b, "JPYC"): ("100488", "0"),  # 200,000 - (99.5% of 100,000 + 12)
        (b, BOND): ("100000", "0"),
        (s, BOND): ("100000", "0"),
        (s, "JPYC"): ("99512", "0"),
    }
    for account in (b, s):
        got = _positions(["--as-of", at, "--account", account], capsys)
        assert got == {k: v for k, v in before.items() if k[0] == account}
        assert _positions(["--account", account], capsys) == {
            k: v for k, v in after.items() if k[0] == account
        }

    # As of offsets: the buyer's partition up to (not including) its lock record.
    partition, lock_offset = next((r[0], r[1]) for r in journal_.of(b) if r[3]["seq"] == 2)
    got = _positions(["--as-of", f"{partition}:{lock_offset}", "--account", b], capsys)
    assert got == {(b, "JPYC"): ("200000", "0")}
    got = _positions(["--as-of", f"{partition}:{lock_offset + 1}", "--account", b], capsys)
    assert got == {(b, "JPYC"): ("100488", "99512")}


# --------------------------------------------------------------------- tampering


async def _copy(bootstrap: str, topic: str, records: list[Row]) -> None:
    await create_fresh(bootstrap, TopicSpec(name=topic, partitions=4))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, _offset, ts, value in records:
            await producer.send_and_wait(
                topic,
                orjson.dumps(value),
                key=value["account"].encode(),
                partition=partition,
                timestamp_ms=ts,
            )
    finally:
        await producer.stop()


def _verify(topic: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = cli.main(["verify", "--topic-name", topic, "--format", "json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def _tampered(journal_: Journal) -> list[Row]:
    """The buyer's seq 2 altered (hash left as it was), the seller's seq 2 removed, and
    the buyer's seq 3 and 4 swapped."""
    b, s = journal_.buyer, journal_.seller
    tampered: list[Row] = []
    for p, o, ts, v in journal_.records:
        if v["account"] == b and v["seq"] == 2:
            v = {**v, "locked": "1", "delta_locked": "1"}
        if v["account"] == s and v["seq"] == 2:
            continue
        tampered.append((p, o, ts, v))
    i3 = next(i for i, r in enumerate(tampered) if r[3]["account"] == b and r[3]["seq"] == 3)
    i4 = next(i for i, r in enumerate(tampered) if r[3]["account"] == b and r[3]["seq"] == 4)
    tampered[i3], tampered[i4] = tampered[i4], tampered[i3]
    return tampered


def test_verify_passes_a_true_copy_and_names_each_tampering(
    scenario: Run,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap = scenario.settings.bootstrap
    monkeypatch.setenv("KESSAI_BOOTSTRAP", bootstrap)
    journal_ = scenario.journal
    b, s = journal_.buyer, journal_.seller
    true_copy = "journal-copy"
    asyncio.run(_copy(bootstrap, true_copy, journal_.records))

    code, doc, err = _verify(true_copy, capsys)
    assert code == 0, err
    assert doc["problems_total"] == 0
    for account in (b, s):
        last = journal_.of(account)[-1][3]
        assert doc["accounts"][account] == {"seq": last["seq"], "root": last["hash"]}
    roots = {a: doc["accounts"][a]["root"] for a in (b, s)}
    assert doc["journal_root"] == journal.journal_root(roots)

    bad_copy = "journal-tampered"
    asyncio.run(_copy(bootstrap, bad_copy, _tampered(journal_)))

    code, doc, err = _verify(bad_copy, capsys)
    assert code == 1
    found = {(p["kind"], p["account"], p["seq"]) for p in doc["problems"]}
    assert ("altered", b, 2) in found
    assert ("gap", s, 3) in found and ("broken_link", s, 3) in found
    assert ("gap", b, 4) in found and ("out_of_order", b, 3) in found
    assert "problems in the journal" in err

    # positions refuses the tampered copy too (the removal and the swap break seq).
    assert cli.main(["positions", "--topic-name", bad_copy]) == 1
    assert "ledger journal is inconsistent" in capsys.readouterr().err


def test_replay_agrees_with_everything_and_names_a_tampered_record(
    scenario: Run,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap = scenario.settings.bootstrap
    monkeypatch.setenv("KESSAI_BOOTSTRAP", bootstrap)
    journal_ = scenario.journal

    code = cli.main(["replay", "--worker", scenario.web])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "the logs and the state agree" in out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    for check in ("ledger-events", "settlements", "rejections", "accounts, live (worker HTTP)"):
        assert lines[check].endswith(" 0  ok"), out
        assert " 0 " not in lines[check].split(check)[1].split()[0], out  # compared > 0

    # The tampered journal (altered, removed, swapped) as ledger-events.
    copy = "journal-tampered-for-replay"
    asyncio.run(_copy(bootstrap, copy, _tampered(journal_)))
    code = cli.main(["replay", "--topic", f"ledger-events={copy}"])
    out, _ = capsys.readouterr()
    assert code == 1
    assert "ledger-events" in out and "DIFFERENCES FOUND" in out
    first = out.split("ledger-events: first differences\n")[1].splitlines()
    # Each account's first difference: where it was derived from and where it was found.
    b_line = next(line for line in first if repr(journal_.buyer) in line)
    assert "#2: derived from kessai-engine-log[" in b_line
    assert f"found at {copy}[" in b_line and '"locked":"1"' in b_line
    s_line = next(line for line in first if repr(journal_.seller) in line)
    assert "#2: derived from kessai-engine-log[" in s_line
    assert '"seq":3' in s_line  # the seller's seq 3 found where its seq 2 should be


def test_replay_positions_and_verify_refuse_a_log_whose_start_was_deleted(
    scenario: Run,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 19: a journal whose first records retention (here DeleteRecords) removed
    is named by topic and partition, and nothing is answered from the rest."""
    bootstrap = scenario.settings.bootstrap
    monkeypatch.setenv("KESSAI_BOOTSTRAP", bootstrap)
    copy = f"journal-cut-short-{uuid.uuid4().hex[:8]}"
    rows = scenario.journal.records
    asyncio.run(_copy(bootstrap, copy, rows))
    partition = max({r[0] for r in rows}, key=lambda p: sum(r[0] == p for r in rows))
    asyncio.run(_delete_before(bootstrap, copy, partition, 2))

    for command in (
        ["replay", "--topic", f"ledger-events={copy}"],
        ["positions", "--topic-name", copy],
        ["verify", "--topic-name", copy],
    ):
        code = cli.main(command)
        out, err = capsys.readouterr()
        assert code == 1, (command, out, err)
        assert f"history deleted: {copy}[{partition}] starts at offset 2" in err, (command, err)
        assert "balance" not in out and "agree" not in out, (command, out)


async def _delete_before(bootstrap: str, topic: str, partition: int, offset: int) -> None:
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(offset)})
    finally:
        await admin.close()


def _get(scenario: Run, path: str, *parts: str) -> tuple[int, dict[str, Any]]:
    """GET ``path`` with ``parts`` quoted onto it: (status, JSON body)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    url = scenario.web + path + "".join("/" + urllib.parse.quote(p, safe="") for p in parts)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_worker_serves_positions_with_404_and_400(scenario: Run) -> None:
    def get(account: str) -> tuple[int, dict[str, Any]]:
        return _get(scenario, "/positions", account)

    b = scenario.journal.buyer
    status, doc = get(b)
    last = scenario.journal.of(b)[-1][3]
    assert status == 200
    assert doc == {
        "account": b,
        "seq": last["seq"],
        "hash": last["hash"],
        "balances": {
            BOND: {"available": "100000", "locked": "0"},
            "JPYC": {"available": "100488", "locked": "0"},
        },
        "locks": 0,
        "queued": 0,
    }
    status, doc = get("nobody-here")
    assert status == 404 and "nobody-here" in doc["error"]
    status, doc = get("x" * 129)
    assert status == 400 and "not an account id" in doc["error"]


def test_the_worker_serves_a_trade_with_its_locks_404_and_400(scenario: Run) -> None:
    b, s_ = scenario.journal.buyer, scenario.journal.seller
    status, doc = _get(scenario, "/trades", scenario.trade_id)
    assert status == 200
    assert doc == {
        "trade_id": scenario.trade_id,
        "stage": "settled",
        "terminal": True,
        "reason": None,
        "trade": {
            "isin": BOND,
            "buyer": b,
            "seller": s_,
            "quantity": 100_000,
            "currency": "JPYC",
            "cash_amount": "99512",
        },
        "locks": {
            "bonds": {
                "lock_id": f"{scenario.trade_id}/bonds",
                "account": s_,
                "asset": BOND,
                "amount": "100000",
                "state": "posted",
            },
            "cash": {
                "lock_id": f"{scenario.trade_id}/cash",
                "account": b,
                "asset": "JPYC",
                "amount": "99512",
                "state": "posted",
            },
        },
    }
    status, doc = _get(scenario, "/trades", "t-nobody")
    assert status == 404 and "t-nobody" in doc["error"]
    status, doc = _get(scenario, "/trades", "x" * 129)
    assert status == 400 and "not a trade id" in doc["error"]


def _metrics(scenario: Run) -> dict[str, Any]:
    """The worker's ``/metrics``, parsed: family name -> family."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{scenario.web}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_the_worker_serves_its_counters_at_metrics(scenario: Run) -> None:
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in _metrics(scenario).values()
        for s in family.samples
    }
    # This worker's run alone (a broker of its own): one trade, settled at once; the
    # withdrawal of 0.5 JPYC rejected; 8 journal records (4 per side).
    assert got[("kessai_trades_received_total", ())] == 1
    assert got[("kessai_settlements_total", (("reason", ""), ("status", "settled")))] == 1
    assert (
        got[("kessai_rejections_total", (("reason", "invalid_amount"), ("topic", "payments")))] == 1
    )
    assert got[("kessai_ledger_events_total", ())] == 8
    # Its settlement latency, once from each start: the venue's trade_time (ten minutes
    # before the test) and the record's arrival (seconds at most).
    since_trade = (("since", "trade_time"),)
    since_arrival = (("since", "arrival"),)
    assert got[("kessai_settlement_latency_seconds_count", since_trade)] == 1
    assert got[("kessai_settlement_latency_seconds_count", since_arrival)] == 1
    trade_time_s = datetime.fromisoformat(TRADE_TIME).timestamp()
    settled_by = time.time()  # this test runs after the trade settled
    assert (
        0 < got[("kessai_settlement_latency_seconds_sum", since_trade)] <= settled_by - trade_time_s
    )
    assert 0 <= got[("kessai_settlement_latency_seconds_sum", since_arrival)] < 60


def test_the_worker_reports_its_own_state_and_health(scenario: Run) -> None:
    import urllib.request

    families = _metrics(scenario)
    tables = {s.labels["table"]: s.value for s in families["kessai_table_rows"].samples}
    assert tables["engine-accounts"] == 2  # the buyer and the seller
    assert tables["engine-open-trades"] == 0  # the trade settled
    assert tables["engine-finished-trades"] == 1  # and is kept as an outcome
    # This worker holds every partition: what came in is what it holds, to the unit.
    balances = {
        (s.labels["asset"], s.labels["kind"]): s.value
        for s in families["kessai_balance_tokens"].samples
    }
    assert balances == {
        ("JPYC", "available"): 200_000, ("JPYC", "locked"): 0,
        (BOND, "available"): 200_000, (BOND, "locked"): 0,
    }  # fmt: skip
    inflow = {s.labels["asset"]: s.value for s in families["kessai_inflow_tokens"].samples}
    assert inflow == {"JPYC": 200_000, BOND: 200_000}
    errors = families["kessai_conservation_error_units"].samples
    assert {s.labels["asset"]: s.value for s in errors} == {"JPYC": 0, BOND: 0}
    assert families["kessai_open_locks"].samples[0].value == 0
    assert families["kessai_trades_open"].samples == []
    lags = families["kessai_consumer_lag_records"].samples
    assert {s.labels["topic"] for s in lags} >= {"payments", "custody", "trades", "orders"}
    assert all(s.value >= 0 for s in lags)
    assert families["kessai_transactions_committed"].samples[0].value > 0
    commits = {s.name: s.value for s in families["kessai_commit_duration_seconds"].samples}
    assert commits["kessai_commit_duration_seconds_count"] > 0
    assert commits["kessai_commit_duration_seconds_sum"] > 0
    assert families["kessai_recovering"].samples[0].value == 0
    assert families["kessai_rebalances"].samples[0].value >= 1
    assert 0 <= families["kessai_event_loop_lag_seconds"].samples[0].value < 5

    with urllib.request.urlopen(f"{scenario.web}/health", timeout=10) as response:
        assert response.status == 200
        doc = json.loads(response.read())
    assert doc["status"] == "ok" and doc["partitions"] > 0 and doc["engine"] == "leading"


# -- the deployable Prometheus config, and a real Prometheus scraping this worker -------

DEPLOY = paths.DEPLOY / "prometheus"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: `make tools` installs Debian's prometheus package"
    return path


def test_the_prometheus_config_and_alerts_are_valid_and_their_tests_pass(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    # The config names the web token as the container mounts it: check a copy that
    # finds a token here.
    token = tmp_path / "web-token"
    token.write_text("t" * 32)
    config = (DEPLOY / "prometheus.yml").read_text()
    assert "credentials_file: /secrets/web-token" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/secrets/web-token", str(token)))
    for name in ("alerts.yml", "alerts_test.yml"):
        shutil.copy(DEPLOY / name, tmp_path / name)
    for argv in (
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ):
        done = subprocess.run(
            [promtool, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"promtool {' '.join(argv)}:\n{done.stdout}{done.stderr}"
        assert "SUCCESS" in done.stdout


def test_a_real_prometheus_scrapes_the_worker_and_evaluates_the_alerts(
    scenario: Run, tmp_path: Path
) -> None:
    port = free_port()
    target = scenario.web.removeprefix("http://")
    server = _start_prometheus(target, port, tmp_path)
    prometheus = _Prometheus(f"http://127.0.0.1:{port}/api/v1")
    try:
        settled = prometheus.wait_for_settled()
        log = (tmp_path / "prometheus.log").read_text()[-2000:]
        assert settled, f"Prometheus never scraped the worker at {target}:\n{log}"
        # A business metric, read back through Prometheus' query API.
        assert [float(r["value"][1]) for r in settled] == [1.0]
        conservation = prometheus.query("sum by (asset) (kessai_conservation_error_units)")
        assert {r["metric"]["asset"]: float(r["value"][1]) for r in conservation} == {
            "JPYC": 0.0,
            BOND: 0.0,
        }
        _check_every_query_runs_on_served_metrics(scenario, prometheus)
        # Every alert rule evaluated against the worker's real series without error.
        deadline = time.monotonic() + 30
        while not (rules := prometheus.evaluated_rules()):
            assert time.monotonic() < deadline, "Prometheus never evaluated the rules"
            time.sleep(0.5)
        alerts = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
        assert len(rules) == len(alerts["groups"][0]["rules"]) == 14
        assert all(r["health"] == "ok" for r in rules), rules
        firing = [r["name"] for r in rules if r["state"] != "inactive"]
        assert firing == [], firing
    finally:
        server.terminate()
        server.wait(30)


def _start_prometheus(target: str, port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    """Prometheus on ``port``, scraping ``target`` every second with the deployed alerts
    (data and log under ``tmp_path``)."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{DEPLOY / 'alerts.yml'}]\n"
        "scrape_configs:\n"
        "  - job_name: kessai\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    return subprocess.Popen(
        [_tool("prometheus"), f"--config.file={config}",
         f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"),
    )  # fmt: skip


@dataclass(frozen=True)
class _Prometheus:
    """Prometheus' HTTP API at ``api`` (``http://HOST:PORT/api/v1``)."""

    api: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        import urllib.parse
        import urllib.request

        url = f"{self.api}/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=10) as response:
            doc = json.loads(response.read())
        assert doc["status"] == "success", doc
        return list(doc["data"]["result"])

    def wait_for_settled(self) -> list[dict[str, Any]]:
        """The settled trades' counter, once scraped; empty if it is not within 60 s."""
        deadline = time.monotonic() + 60
        settled: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not settled:
            with contextlib.suppress(OSError):  # not listening yet
                settled = self.query('kessai_settlements_total{status="settled"}')
            if not settled:
                time.sleep(0.5)
        return settled

    def evaluated_rules(self) -> list[dict[str, Any]]:
        """Every alert rule, once each has been evaluated; empty until then."""
        import urllib.request

        with urllib.request.urlopen(f"{self.api}/rules", timeout=10) as response:
            groups = json.loads(response.read())["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        done = all(not r["lastEvaluation"].startswith("0001") for r in rules)
        return rules if rules and done else []


def _check_every_query_runs_on_served_metrics(scenario: Run, prometheus: _Prometheus) -> None:
    """Every Grafana panel's query and every alert's expression runs on the real
    series, and names only metrics the worker serves."""
    import urllib.request

    from tests.support.deploy import alert_queries, grafana_queries, metric_names

    for expr in (*grafana_queries(), *alert_queries()):
        prometheus.query(expr)  # asserts status "success"
    with urllib.request.urlopen(f"{scenario.web}/metrics", timeout=10) as response:
        # Sample names, and the TYPE lines of families with no sample yet (no trade
        # settling: kessai_trades_open is empty).
        served = set(re.findall(r"^(?:# TYPE )?(kessai_[a-z_]+)", response.read().decode(), re.M))
    missing = metric_names([*grafana_queries(), *alert_queries()]) - served
    assert not missing, f"queries name metrics the worker does not serve: {missing}"
