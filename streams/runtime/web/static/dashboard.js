// kessai's dashboard: polls this worker's /metrics, /health and recent settlements,
// and draws what an operator watches. No dependencies; the charts are plain SVG.
"use strict";

const REFRESH_MS = 1000 * Number(document.body.dataset.refreshS || 2);
const HISTORY_POINTS = 150; // 5 minutes at 2 s
const LATENCY_WINDOW_MS = 60_000; // quantiles over the last minute once there is one
const history = []; // {t, received, settled, lag, p50, p99, buckets}

// -- Prometheus' text format ----------------------------------------------------------

function parseLabels(text) {
  const labels = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(text)) !== null) {
    // One pass, so that an escaped backslash followed by "n" stays two characters.
    labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
  }
  return labels;
}

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    samples.push({ name: m[1], labels: m[3] ? parseLabels(m[3]) : {}, value: Number(m[4]) });
  }
  return samples;
}

function matching(samples, name, where = {}) {
  return samples.filter(
    (s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v),
  );
}

function total(samples, name, where = {}) {
  return matching(samples, name, where).reduce((a, s) => a + s.value, 0);
}

// Statuses (docs/fails.md): a trade failing past its cut-off, or ended unsettled; settled.
const NOT_SETTLED = new Set(["failing", "failed", "cancelled"]);
const SETTLED = new Set(["settled", "partially_settled"]);

function byLabels(samples, name, keys, where = {}) {
  const out = new Map();
  for (const s of matching(samples, name, where)) {
    const key = keys.map((k) => s.labels[k] ?? "").join("\u0000");
    out.set(key, (out.get(key) || 0) + s.value);
  }
  return [...out.entries()].map(([k, v]) => ({ keys: k.split("\u0000"), value: v }));
}

// Cumulative buckets of kessai_settlement_latency_seconds{since}: [[le, count], ...].
function buckets(samples, since) {
  return matching(samples, "kessai_settlement_latency_seconds_bucket", { since })
    .map((s) => [s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), s.value])
    .sort((a, b) => a[0] - b[0]);
}

// As Prometheus' histogram_quantile: linear within the bucket the rank falls in.
function quantile(q, cumulative) {
  if (!cumulative.length) return null;
  const count = cumulative[cumulative.length - 1][1];
  if (count <= 0) return null;
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (const [le, c] of cumulative) {
    if (c >= rank) {
      if (le === Infinity) return lower;
      return lower + ((le - lower) * (rank - below)) / Math.max(c - below, 1e-12);
    }
    lower = le;
    below = c;
  }
  return lower;
}

function minus(now, then) {
  const before = new Map(then.map(([le, c]) => [le, c]));
  return now.map(([le, c]) => [le, c - (before.get(le) || 0)]);
}

// -- drawing ------------------------------------------------------------------------

const fmtInt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const fmt2 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

function seconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "–";
  if (s < 1) return `${fmtInt.format(s * 1000)} ms`;
  if (s < 120) return `${fmt2.format(s)} s`;
  return `${fmt2.format(s / 60)} min`;
}

function setTile(id, value, text) {
  const el = document.getElementById(id);
  el.dataset.value = value === null ? "" : String(value);
  el.textContent = text;
}

function fillTable(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const cell of cells) {
        const td = document.createElement("td");
        const c = typeof cell === "object" && cell !== null ? cell : { text: cell };
        td.textContent = c.text;
        if (c.cls) td.className = c.cls;
        if (c.value !== undefined) td.dataset.value = String(c.value);
        tr.appendChild(td);
      }
      return tr;
    }),
  );
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = document.querySelectorAll(`#${id} th`).length;
    td.className = "muted";
    td.textContent = "none";
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

// A line chart of `series` (arrays of numbers or nulls, one per history point).
function drawChart(id, series) {
  const svg = document.getElementById(id);
  const W = 600, H = 180, L = 48, B = 20, T = 8;
  const values = series.flat().filter((v) => v !== null && Number.isFinite(v));
  const top = Math.max(1e-9, ...values) * 1.1;
  const n = Math.max(2, HISTORY_POINTS);
  const x = (i, len) => L + ((W - L - 4) * (n - len + i)) / (n - 1);
  const y = (v) => H - B - ((H - B - T) * v) / top;
  const parts = [
    `<line class="axis" x1="${L}" y1="${H - B}" x2="${W}" y2="${H - B}"/>`,
    `<line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${H - B}"/>`,
    `<text x="4" y="${T + 10}">${fmt2.format(top)}</text>`,
    `<text x="4" y="${H - B}">0</text>`,
    `<text x="${L}" y="${H - 4}">5 min ago</text>`,
    `<text x="${W - 30}" y="${H - 4}">now</text>`,
  ];
  series.forEach((points, k) => {
    let d = "";
    points.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      d += `${d ? "L" : "M"}${x(i, points.length).toFixed(1)},${y(v).toFixed(1)}`;
    });
    if (d) parts.push(`<path class="s${k}" d="${d}"/>`);
  });
  svg.innerHTML = parts.join("");
}

// -- one refresh --------------------------------------------------------------------

// A worker with KESSAI_WEB_TOKEN_FILE wants its token: opened as /#token=..., the page
// keeps it for this tab and drops it from the address bar.
const TOKEN = (() => {
  const given = new URLSearchParams(location.hash.slice(1)).get("token");
  if (given) {
    sessionStorage.setItem("kessai-token", given);
    window.history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem("kessai-token");
})();
const FETCH_OPTIONS = {
  cache: "no-store",
  headers: TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {},
};

async function refresh() {
  const [metricsText, healthResponse, recent] = await Promise.all([
    fetch("/metrics", FETCH_OPTIONS).then((r) => r.text()),
    fetch("/health", FETCH_OPTIONS),
    fetch("/api/settlements/recent", FETCH_OPTIONS).then((r) => r.json()),
  ]);
  const health = await healthResponse.json();
  const samples = parseMetrics(metricsText);
  const now = Date.now();

  const received = total(samples, "kessai_trades_received_total");
  const settled = total(samples, "kessai_settlements_total", { status: "settled" });
  const failed = total(samples, "kessai_settlements_total", { status: "failed" });
  const rejected = total(samples, "kessai_rejections_total");
  const open = total(samples, "kessai_trades_open");
  const lag = total(samples, "kessai_consumer_lag_records");
  const arrival = buckets(samples, "arrival");

  // A worker restarted since the last point: its counters began again from 0, and
  // differences with the old points mean nothing. Start the history again.
  const last = history[history.length - 1];
  if (last && (settled < last.settled || received < last.received)) history.length = 0;
  const prev = history[history.length - 1];
  const dt = prev ? (now - prev.t) / 1000 : 0;
  const rate = (a, b) => (prev && dt > 0 ? Math.max(0, (a - b) / dt) : null);
  // Quantiles over the last minute; before a minute of history, or with nothing
  // settled in it, over everything this worker settled (the tile says which).
  const windowStart = history.find((h) => now - h.t <= LATENCY_WINDOW_MS);
  const inWindow =
    windowStart && windowStart !== prev && arrival.length ? minus(arrival, windowStart.buckets) : null;
  const windowed = inWindow !== null && inWindow[inWindow.length - 1][1] > 0;
  const latency = windowed ? inWindow : arrival;
  const point = {
    t: now,
    received,
    settled,
    lag,
    buckets: arrival,
    receivedRate: rate(received, prev?.received),
    settledRate: rate(settled, prev?.settled),
    p50: quantile(0.5, latency),
    p99: quantile(0.99, latency),
  };
  history.push(point);
  if (history.length > HISTORY_POINTS) history.shift();

  const badge = document.getElementById("health");
  badge.textContent = health.status;
  badge.className = `badge ${healthResponse.ok ? "ok" : "bad"}`;
  document.getElementById("updated").textContent =
    `updated ${new Date(now).toLocaleTimeString()} · every ${REFRESH_MS / 1000} s`;

  setTile("received-total", received, fmtInt.format(received));
  setTile("settled-total", settled, fmtInt.format(settled));
  setTile("settled-rate", point.settledRate, point.settledRate === null ? "–" : fmt2.format(point.settledRate));
  document.getElementById("latency-scope").textContent = windowed ? "last minute" : "since start";
  setTile("latency-p50", point.p50, seconds(point.p50));
  setTile("latency-p99", point.p99, seconds(point.p99));
  setTile("open-total", open, fmtInt.format(open));
  setTile("failed-total", failed, fmtInt.format(failed));
  setTile("rejections-total", rejected, fmtInt.format(rejected));
  setTile("lag-total", lag, fmtInt.format(lag));

  const held = new Map();
  for (const s of matching(samples, "kessai_balance_tokens")) {
    held.set(s.labels.asset, (held.get(s.labels.asset) || 0) + s.value);
  }
  const inflow = new Map(byLabels(samples, "kessai_inflow_tokens", ["asset"]).map((r) => [r.keys[0], r.value]));
  const errors = byLabels(samples, "kessai_conservation_error_units", ["asset"]);
  const off = errors.filter((r) => r.value !== 0);
  const status = document.getElementById("conservation-status");
  // Only a worker that owns every ledger partition holds every account: then its own
  // error must be 0. Otherwise it shows its share, and the sum over workers is the
  // check (Grafana, the alert).
  const owned = total(samples, "kessai_ledger_partitions_owned");
  const all = total(samples, "kessai_ledger_partitions");
  const whole = all > 0 && owned === all;
  if (whole) {
    setTile("conservation-status", off.length, off.length ? `${off.length} off` : "holds");
    status.className = `value ${off.length ? "bad" : "ok"}`;
  } else {
    setTile("conservation-status", null, `share: ${owned} of ${all}`);
    status.className = "value";
  }
  document.getElementById("conservation-scope").textContent = whole
    ? "this worker holds every account"
    : `this worker holds ${owned} of ${all} ledger partitions: its error is its share; the sum over workers must be 0`;
  fillTable(
    "conservation",
    errors.map((r) => [
      r.keys[0],
      fmt2.format(held.get(r.keys[0]) || 0),
      fmt2.format(inflow.get(r.keys[0]) || 0),
      { text: fmtInt.format(r.value), value: r.value, cls: r.value === 0 ? "ok" : whole ? "bad" : "" },
    ]),
  );
  fillTable(
    "open-by-reason",
    byLabels(samples, "kessai_trades_open", ["stage", "reason"]).map((r) => [
      r.keys[0], r.keys[1] || "–", { text: fmtInt.format(r.value), value: r.value },
    ]),
  );
  fillTable(
    "failed-by-reason",
    byLabels(samples, "kessai_settlements_total", ["status", "reason"])
      .filter((r) => NOT_SETTLED.has(r.keys[0]))
      .map((r) => [r.keys[0], r.keys[1] || "–", { text: fmtInt.format(r.value), value: r.value }]),
  );
  const paidYen = new Map(
    byLabels(samples, "kessai_coupon_paid_yen_total", ["kind"]).map((r) => [r.keys[0], r.value]),
  );
  fillTable(
    "coupons",
    byLabels(samples, "kessai_coupon_payments_total", ["kind"]).map((r) => [
      r.keys[0], { text: fmtInt.format(r.value), value: r.value },
      fmtInt.format(paidYen.get(r.keys[0]) || 0),
    ]),
  );
  const unfunded = total(samples, "kessai_coupon_runs_unfunded");
  const breaches = total(samples, "kessai_reserve_breaches");
  const alerts = document.getElementById("coupon-alerts");
  alerts.textContent =
    `${fmtInt.format(unfunded)} runs due and unfunded · ` +
    `${fmtInt.format(breaches)} bonds minted past their attested reserve`;
  alerts.className = unfunded > 0 || breaches > 0 ? "bad" : "muted";
  fillTable(
    "rejections-by-reason",
    byLabels(samples, "kessai_rejections_total", ["topic", "reason"]).map((r) => [
      r.keys[0], r.keys[1], { text: fmtInt.format(r.value), value: r.value },
    ]),
  );
  fillTable(
    "recent",
    recent.map((s) => [
      new Date(s.at).toLocaleTimeString(), s.trade_id,
      { text: s.status, cls: NOT_SETTLED.has(s.status) ? "bad" : SETTLED.has(s.status) ? "ok" : "" },
      s.reason || "", s.buyer, s.seller, s.isin, fmtInt.format(s.quantity),
      `${s.cash_amount} ${s.currency}`,
    ]),
  );

  drawChart("chart-throughput", [
    history.map((h) => h.receivedRate), history.map((h) => h.settledRate),
  ]);
  drawChart("chart-latency", [history.map((h) => h.p50), history.map((h) => h.p99)]);
  drawChart("chart-lag", [history.map((h) => h.lag)]);
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
}

async function loop() {
  try {
    await refresh();
  } catch (err) {
    const badge = document.getElementById("health");
    badge.textContent = `unreachable: ${err.message}`;
    badge.className = "badge bad";
  }
  setTimeout(loop, REFRESH_MS);
}

loop();
