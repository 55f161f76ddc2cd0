// ticklake live board: rows from /latest, updates from /stream (SSE), bars from /bars.
// Plain browser JavaScript, no build step and nothing loaded from elsewhere.
// With API keys on, the page asks for a key and keeps it in sessionStorage only
// (gone when the tab closes); every request sends it as a bearer token, so the
// stream is read with fetch(): EventSource cannot send headers.
"use strict";

const SPARK_POINTS = 120;       // prices kept per symbol for the sparkline
const SEED_SYMBOLS_MAX = 100;   // rows seeded from /latest at load
const rows = new Map();         // symbol -> {tr, first, history}

const $ = (id) => document.getElementById(id);
const fmt = (x, d) => (x === null || x === undefined || Number.isNaN(x)) ? "–" : Number(x).toFixed(d);
const digits = (p) => (p >= 1000 ? 2 : p >= 1 ? 2 : 5);

function setStatus(text, cls) {
  const el = $("status");
  el.textContent = text;
  el.className = "status " + cls;
}

function sparkline(history) {
  const w = 120, h = 24;
  if (history.length < 2) return `<svg class="spark" width="${w}" height="${h}"></svg>`;
  const lo = Math.min(...history), hi = Math.max(...history);
  const span = hi - lo || 1;
  const pts = history.map((p, i) =>
    `${(i / (history.length - 1) * (w - 2) + 1).toFixed(1)},${(h - 1 - (p - lo) / span * (h - 2)).toFixed(1)}`);
  return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><polyline points="${pts.join(" ")}"/></svg>`;
}

function rowFor(symbol) {
  let row = rows.get(symbol);
  if (row) return row;
  const tr = document.createElement("tr");
  tr.dataset.symbol = symbol;
  tr.innerHTML = `<td class="sym"></td><td class="num price"></td><td class="num change"></td>
    <td class="num bid"></td><td class="num ask"></td><td class="num spread"></td>
    <td class="spark-cell"></td><td class="time"></td>`;
  tr.querySelector(".sym").textContent = symbol;
  // keep rows sorted by symbol
  const after = [...rows.keys()].filter((s) => s > symbol).sort()[0];
  $("rows").insertBefore(tr, after ? rows.get(after).tr : null);
  row = { tr, first: null, history: [] };
  rows.set(symbol, row);
  $("empty").hidden = true;
  const select = $("chart-symbol");
  const opt = document.createElement("option");
  opt.value = opt.textContent = symbol;
  select.appendChild(opt);
  if (select.options.length === 1) { select.value = symbol; drawBars(); }
  return row;
}

function applyTick(t) {
  if (!t || !t.symbol || t.price === null || t.price === undefined) return;
  const row = rowFor(t.symbol);
  const price = Number(t.price);
  if (row.first === null) row.first = price;
  row.history.push(price);
  if (row.history.length > SPARK_POINTS) row.history.shift();
  const d = digits(price);
  const tr = row.tr;
  const priceCell = tr.querySelector(".price");
  priceCell.textContent = fmt(price, d);
  priceCell.classList.remove("flash"); void priceCell.offsetWidth; priceCell.classList.add("flash");
  const change = price - row.first;
  const pct = row.first ? change / row.first * 100 : 0;
  const changeCell = tr.querySelector(".change");
  changeCell.textContent = `${change >= 0 ? "+" : ""}${fmt(change, d)} (${pct >= 0 ? "+" : ""}${pct.toFixed(2)}%)`;
  changeCell.className = "num change " + (change > 0 ? "up" : change < 0 ? "down" : "");
  tr.querySelector(".bid").textContent = fmt(t.bid, d);
  tr.querySelector(".ask").textContent = fmt(t.ask, d);
  const spread = (t.bid != null && t.ask != null) ? t.ask - t.bid : null;
  tr.querySelector(".spread").textContent = fmt(spread, d);
  tr.querySelector(".spark-cell").innerHTML = sparkline(row.history);
  const ts = t.timestamp || (t.ts_ns ? new Date(Number(t.ts_ns) / 1e6).toISOString() : "");
  tr.querySelector(".time").textContent = String(ts).replace("T", " ").slice(0, 23);
}

const KEY_STORE = "ticklake.apiKey";
const RETRY_MS = 2000;

class NeedKey extends Error {}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// fetch() with the key; a 401 asks for a (new) key and stops whatever was loading.
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) {
    askForKey(sessionStorage.getItem(KEY_STORE) ? "That key was refused (unknown or revoked)." : "");
    throw new NeedKey();
  }
  return response;
}

function askForKey(message) {
  sessionStorage.removeItem(KEY_STORE);
  $("key-message").textContent = message;
  $("key-form").hidden = false;
  $("forget-key").hidden = true;
  setStatus("API key needed", "down");
  $("key-input").focus();
}

$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  $("key-input").value = "";
  $("key-form").hidden = true;
  start();
});

$("forget-key").addEventListener("click", () => {
  streamAbort?.abort();
  askForKey("Key forgotten for this tab.");
});

async function seed() {
  const symbols = (await (await api("/symbols")).json()).symbols || [];
  if (!symbols.length) return;
  const wanted = symbols.slice(0, SEED_SYMBOLS_MAX).map(encodeURIComponent).join(",");
  const body = await (await api(`/latest?symbols=${wanted}`)).json();
  for (const item of body.ticks || []) applyTick(item.tick);
}

// Server-Sent Events read from a fetch() body: frames are separated by a blank
// line; "event:" names one, "data:" carries its JSON, ":" lines are heartbeats.
let streamAbort = null;

async function readStream() {
  streamAbort = new AbortController();
  const response = await api("/stream", { signal: streamAbort.signal });
  if (!response.ok || !response.body) throw new Error(`stream: HTTP ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message", data = "";
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (event === "hello") setStatus("live", "live");
      else if (event === "ticks") {
        setStatus("live", "live");
        for (const t of JSON.parse(data)) applyTick(t);
      } else if (event === "bye") setStatus("server restarting…", "connecting");
    }
  }
}

async function connect() {
  for (;;) {
    try {
      await readStream();
    } catch (e) {
      if (e instanceof NeedKey || e.name === "AbortError") return;
      console.warn("stream failed", e);
    }
    setStatus("reconnecting…", "down");
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

async function start() {
  $("forget-key").hidden = !sessionStorage.getItem(KEY_STORE);
  try {
    await seed();
  } catch (e) {
    if (e instanceof NeedKey) return;
    console.warn("seeding the board failed", e);
  }
  connect();
  drawBars();
}

const INTERVAL_S = { "1s": 1, "1m": 60, "5m": 300, "1h": 3600 };

let drawTicket = 0;

async function drawBars() {
  const symbol = $("chart-symbol").value;
  const interval = $("chart-interval").value;
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  if (!symbol) return;
  const ticket = ++drawTicket;  // a newer request supersedes this one
  const nowNs = BigInt(Date.now()) * 1000000n;
  const startNs = nowNs - BigInt(INTERVAL_S[interval] * 120) * 1000000000n;
  let bars = [];
  try {
    const r = await api(`/bars/${encodeURIComponent(symbol)}?interval=${interval}&start=${startNs}&end=${nowNs + 1000000000n}`);
    bars = r.ok ? (await r.json()).bars : [];
  } catch (e) { bars = []; }
  if (ticket !== drawTicket) return;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  $("chart-note").textContent = bars.length ? `${bars.length} bars, last 120 intervals (from the lake)` : "no bars in the lake for this window yet";
  if (!bars.length) return;
  // A time axis of the last 120 intervals: a gap in trading shows as a gap.
  const W = canvas.width, H = canvas.height, pad = 48, volH = 60, slots = 120;
  const widthNs = INTERVAL_S[interval] * 1e9;
  const t0 = Number(startNs);
  const hi = Math.max(...bars.map((b) => b.high)), lo = Math.min(...bars.map((b) => b.low));
  const vmax = Math.max(...bars.map((b) => b.volume)) || 1;
  const y = (p) => 12 + (hi - p) / ((hi - lo) || 1) * (H - 24 - volH);
  const step = (W - pad - 8) / slots;
  const half = Math.max(1, step * 0.35);
  ctx.fillStyle = "#8a949e"; ctx.font = "11px system-ui";
  ctx.fillText(hi.toFixed(2), 2, y(hi) + 4); ctx.fillText(lo.toFixed(2), 2, y(lo));
  const label = (ns) => new Date(ns / 1e6).toISOString().slice(11, 19);
  ctx.fillText(label(t0), pad, H - 2); ctx.fillText(label(t0 + slots * widthNs) + " UTC", W - 90, H - 2);
  for (const b of bars) {
    const x = pad + ((b.start_ns - t0) / widthNs + 0.5) * step;
    const up = b.close >= b.open;
    ctx.strokeStyle = ctx.fillStyle = up ? "#3fb950" : "#f85149";
    ctx.beginPath(); ctx.moveTo(x, y(b.high)); ctx.lineTo(x, y(b.low)); ctx.stroke();
    const top = y(Math.max(b.open, b.close)), bodyH = Math.max(1, Math.abs(y(b.open) - y(b.close)));
    ctx.fillRect(x - half, top, 2 * half, bodyH);
    ctx.globalAlpha = 0.4;
    const vh = b.volume / vmax * (volH - 16);
    ctx.fillRect(x - half, H - 14 - vh, 2 * half, vh);
    ctx.globalAlpha = 1;
  }
}

$("chart-symbol").addEventListener("change", drawBars);
$("chart-interval").addEventListener("change", drawBars);
setInterval(() => { if ($("key-form").hidden) drawBars(); }, 5000);
start();
