"""The worker's dashboard at ``/``, in headless Chromium (Debian's), while trades flow.

A worker on a broker of its own; accounts funded; then a feeder publishes trades (and
now and then a payment the ledger must reject) while the page refreshes itself. The
page's numbers must be the worker's ``/metrics``: each counter on the page lies
between the value ``/metrics`` gave just before the page was read and the value just
after. Once the feed stops and the pipeline is quiet, the conservation check must
hold for every asset, and the last settlements must list the feeder's trades. A
screenshot is kept in ``tests/artifacts/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.support.paths import ARTIFACTS
from tests.support.records import trade_time
from tests.support.workers import private_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


BOND = "JP1103551Q43"
ACCOUNTS = 6
#: The tiles and the metric each shows: (element id, metric, labels).
TILES: list[tuple[str, str, dict[str, str]]] = [
    ("received-total", "kessai_trades_received_total", {}),
    ("settled-total", "kessai_settlements_total", {"status": "settled"}),
    ("failed-total", "kessai_settlements_total", {"status": "failed"}),
    ("rejections-total", "kessai_rejections_total", {}),
]


def _metric_totals(web: str) -> dict[str, float]:
    """Each tile's metric from ``/metrics``, summed over the tile's label filter."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{web}/metrics", timeout=10) as response:
        families = list(text_string_to_metric_families(response.read().decode()))
    out: dict[str, float] = {}
    for tile, name, labels in TILES:
        out[tile] = sum(
            s.value
            for f in families
            for s in f.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )
    return out


class Feeder(threading.Thread):
    """Publishes funding, then a trade every ``interval_s`` (and a bad payment every
    fifth) until stopped; ``trade_ids`` are those it sent."""

    def __init__(self, bootstrap: str, run: str, interval_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.run_id, self.interval_s = bootstrap, run, interval_s
        self.accounts = [f"dash-{run}-{i}" for i in range(ACCOUNTS)]
        self.trade_ids: list[str] = []
        self.funded = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._feed())
        except BaseException as exc:  # the test reports it
            self.error = exc

    async def _feed(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        rng = random.Random(5)

        async def send(topic: str, key: str, value: dict[str, Any]) -> None:
            await producer.send_and_wait(topic, orjson.dumps(value), key=key.encode())

        try:
            for i, account in enumerate(self.accounts):
                await send("payments", account, {"payment_id": f"p-{self.run_id}-{i}",
                           "account": account, "token": "JPYC", "amount": "500000000",
                           "kind": "deposit"})  # fmt: skip
                await send("custody", account, {"movement_id": f"c-{self.run_id}-{i}",
                           "account": account, "isin": BOND, "quantity": 500_000_000,
                           "kind": "deposit"})  # fmt: skip
            self.funded.set()
            n = 0
            while not self.stop.is_set():
                n += 1
                buyer, seller = rng.sample(self.accounts, 2)
                tid = f"t-{self.run_id}-{n}"
                await send("trades", tid, {"trade_id": tid, "venue": "v1", "isin": BOND,
                           "buyer": buyer, "seller": seller, "quantity": 100_000,
                           "price": "99.5", "currency": "JPYC", "accrued_interest": "12",
                           "trade_time": trade_time()})  # fmt: skip
                self.trade_ids.append(tid)
                if n % 5 == 0:  # a withdrawal of half a yen: rejected, invalid_amount
                    await send("payments", buyer, {"payment_id": f"bad-{self.run_id}-{n}",
                               "account": buyer, "token": "JPYC", "amount": "0.5",
                               "kind": "withdrawal"})  # fmt: skip
                await asyncio.sleep(self.interval_s)
        finally:
            await producer.stop()


@pytest.fixture(scope="module")
def worker_web(
    bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(the worker's web address, the private broker's bootstrap)."""
    # `bootstrap`: the shared broker exists, so the private one copies its jars.
    with private_worker(tmp_path_factory.mktemp("dashboard")) as worker:
        yield worker.web, worker.settings.bootstrap


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, (
        "chromium and chromedriver are not installed: `make tools` installs Debian's "
        "chromium and chromium-driver"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1500,1250"):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def _texts(browser: Any, selector: str, attribute: str = "textContent") -> list[str]:
    """What the cells matching ``selector`` hold, read in one go (the page re-renders
    its tables at every refresh: elements found one by one go stale)."""
    script = f"return [...document.querySelectorAll(arguments[0])].map(e => e.{attribute})"
    return list(browser.execute_script(script, selector))


def _wait(what: str, predicate: Any, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.5)


#: How long the worker's counters may stand still before a wait on them gives up: a
#: worker that moves, however slowly (the full suite loads both cores), is waited for;
#: one that stalls fails the test in this time, with what it last showed.
STALL_S = 90.0
#: An upper bound on any one wait on the worker, stall or not.
PROGRESS_WAIT_S_MAX = 900.0


def _wait_on_metrics(web: str, what: str, done: Any) -> dict[str, float]:
    """Wait until ``done(totals)`` over the tiles' metrics; fail if they stop moving
    for :data:`STALL_S` (a stall) or after :data:`PROGRESS_WAIT_S_MAX`."""
    started = last_move = time.monotonic()
    seen = _metric_totals(web)
    while not done(seen):
        now = time.monotonic()
        assert now - last_move < STALL_S, (
            f"{what}: the worker's counters did not move for {STALL_S:.0f} s: {seen}"
        )
        assert now - started < PROGRESS_WAIT_S_MAX, f"{what}: still waiting, at {seen}"
        time.sleep(0.5)
        got = _metric_totals(web)
        if got != seen:
            seen, last_move = got, time.monotonic()
    return seen


def _health_ok(web: str) -> bool:
    try:
        with urllib.request.urlopen(f"{web}/health", timeout=5) as response:
            return bool(json.loads(response.read())["status"] == "ok")
    except OSError:
        return False


def _check_when_quiet(web: str, browser: Any, feeder: Feeder) -> None:
    """Quiet: every trade terminal, every command applied. Then the page must say
    exactly what /metrics says, and conservation must hold."""
    body = browser.find_element("tag name", "body")

    def refreshes() -> int:
        return int(body.get_attribute("data-refreshes") or 0)

    def tile(element_id: str) -> float:
        raw = browser.find_element("id", element_id).get_attribute("data-value")
        return float(raw) if raw else float("nan")

    feeder.stop.set()
    feeder.join(30)
    assert feeder.error is None, feeder.error
    sent = len(feeder.trade_ids)
    # Every trade the feeder sent is settled or failed: nothing in between.
    _wait_on_metrics(
        web,
        f"all {sent} trades settled or failed",
        lambda m: m["settled-total"] + m["failed-total"] >= sent,
    )
    final = _metric_totals(web)
    r0 = refreshes()
    _wait("two refreshes", lambda: refreshes() >= r0 + 2)
    assert _metric_totals(web) == final, "something moved after the feed stopped"
    for name, _, _ in TILES:
        assert tile(name) == final[name], (name, tile(name), final)
    assert tile("open-total") == 0
    assert browser.find_element("id", "conservation-status").text == "holds"
    errors = _texts(browser, "#conservation tbody td[data-value]", "dataset.value")
    assert errors and all(float(e) == 0 for e in errors), errors
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))


def test_the_dashboard_shows_what_metrics_says_while_trades_flow(
    worker_web: tuple[str, str],
) -> None:
    web, bootstrap = worker_web
    # Joined its group and recovered its tables (/health "ok"); a loaded machine may
    # take minutes to start a worker beside its broker.
    _wait("the worker's /health", lambda: _health_ok(web), timeout_s=300.0)
    feeder = Feeder(bootstrap, uuid.uuid4().hex[:6])
    feeder.start()
    browser = _browser()
    try:
        assert feeder.funded.wait(60), feeder.error
        _wait_on_metrics(web, "5 settlements", lambda m: m["settled-total"] >= 5)
        browser.get(f"{web}/")
        body = browser.find_element("tag name", "body")
        _wait("three refreshes", lambda: int(body.get_attribute("data-refreshes") or 0) >= 3)

        def tile(element_id: str) -> float:
            raw = browser.find_element("id", element_id).get_attribute("data-value")
            return float(raw) if raw else float("nan")

        def refreshes() -> int:
            return int(body.get_attribute("data-refreshes") or 0)

        # While trades flow: each counter on the page lies between /metrics before the
        # page's last two refreshes (so one whole refresh began after it) and after.
        for _ in range(3):
            before = _metric_totals(web)
            r0 = refreshes()
            _wait("two refreshes", lambda r0=r0: refreshes() >= r0 + 2)
            seen = {name: tile(name) for name, _, _ in TILES}
            after = _metric_totals(web)
            for name in seen:
                assert before[name] <= seen[name] <= after[name], (name, before, seen, after)
        moved = {name for name in seen if after[name] > before[name]}
        assert "received-total" in moved or "settled-total" in moved, "no trade flowed"
        assert tile("settled-total") > 0 and tile("rejections-total") > 0
        assert tile("latency-p50") > 0 and tile("latency-p99") >= tile("latency-p50")
        assert browser.find_elements("css selector", "#chart-throughput path")
        assert browser.find_elements("css selector", "#chart-lag path")
        shown = set(_texts(browser, "#recent tbody td"))
        assert shown & set(feeder.trade_ids), "no trade of the feeder in the last settlements"
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "dashboard-flowing.png"))

        _check_when_quiet(web, browser, feeder)
    finally:
        feeder.stop.set()
        browser.quit()
