// The Weir console: live tail, search, alerts and pipelines over the API of
// the `weir serve` that serves it. No framework: small views that build DOM
// with `h()` and talk to /api/v1 with the session cookie and its CSRF token.
import { EditorView, basicSetup } from "codemirror";
import { linter, lintGutter } from "@codemirror/lint";
import { StreamLanguage, HighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { tags } from "@lezer/highlight";
import uPlot from "uplot";

const session = { user: null, role: null, scope: "", csrf: null };
const view = () => document.getElementById("view");
let cleanup = [];

// ---------------------------------------------------------------- helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body, opts = {}) {
  const headers = { Accept: opts.accept || "application/json" };
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  let payload;
  if (body !== undefined) {
    if (opts.rules) {
      headers["Content-Type"] = "application/x-weir-rules";
      payload = body;
    } else {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
  }
  const r = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (opts.blob && r.ok) return r.blob();
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (r.status === 401 && path !== "/api/v1/login") {
    session.user = null;
    location.hash = "#/login";
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

const sql = (text, range, maxRows = 1000) =>
  api("POST", "/api/v1/query", { sql: text, start: range.start, end: range.end, max_rows: maxRows });

function quoteIdent(name) {
  return '"' + String(name).replace(/"/g, '""') + '"';
}

function fmtTime(v) {
  if (!v) return "";
  const s = String(v);
  return s.replace("T", " ").replace(/(\.\d{3})\d*/, "$1").replace(/Z$/, "");
}

function download(blob, name) {
  const a = h("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

function emptyState(text) {
  return h("div", { class: "empty" }, text);
}

function errorBox(e) {
  return h("div", { class: "error", role: "alert" }, e instanceof Error ? e.message : String(e));
}

function sparkline(values, width = 120, height = 24) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  if (values.length > 1) {
    const max = Math.max(1, ...values);
    const pts = values
      .map((v, i) => `${(i / (values.length - 1)) * width},${height - (v / max) * (height - 2) - 1}`)
      .join(" ");
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts);
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#4fb3ff");
    svg.append(line);
  }
  return svg;
}

// ---------------------------------------------------------------- routing

const routes = { login: loginView, tail: tailView, search: searchView, alerts: alertsView, pipelines: pipelinesView };

function parseHash() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  return { name: path || "tail", params: new URLSearchParams(query || "") };
}

async function render() {
  for (const f of cleanup) f();
  cleanup = [];
  const { name, params } = parseHash();
  if (!session.user && name !== "login") {
    try {
      const me = await api("GET", "/api/v1/session");
      Object.assign(session, { user: me.user, role: me.role, scope: me.scope, csrf: me.csrf_token });
    } catch {
      location.hash = "#/login";
      return;
    }
  }
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === "#/" + name));
  renderWho();
  const fn = routes[name] || tailView;
  const root = view();
  root.replaceChildren();
  try {
    await fn(root, params);
  } catch (e) {
    root.append(errorBox(e));
  }
}

function renderWho() {
  const who = document.getElementById("who");
  who.replaceChildren();
  if (!session.user) return;
  who.append(
    `${session.user} · ${session.role}${session.scope ? " · " + session.scope : ""}`,
    h("button", {
      onclick: async () => {
        await api("POST", "/api/v1/logout").catch(() => {});
        Object.assign(session, { user: null, csrf: null });
        location.hash = "#/login";
      },
    }, "Log out"),
  );
}

window.addEventListener("hashchange", render);
document.addEventListener("keydown", (e) => {
  const inField = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName) ||
    document.activeElement?.closest?.(".cm-editor");
  if (e.altKey && ["1", "2", "3", "4"].includes(e.key)) {
    location.hash = ["#/tail", "#/search", "#/alerts", "#/pipelines"][Number(e.key) - 1];
    e.preventDefault();
  } else if (e.key === "/" && !inField) {
    const f = document.querySelector("[data-focus]");
    if (f) { f.focus(); e.preventDefault(); }
  }
});

// ---------------------------------------------------------------- login

async function loginView(root) {
  const user = h("input", { name: "user", placeholder: "user", autocomplete: "username" });
  const password = h("input", { name: "password", type: "password", placeholder: "password", autocomplete: "current-password" });
  const msg = h("div");
  const form = h("form", {
    class: "login",
    onsubmit: async (e) => {
      e.preventDefault();
      msg.replaceChildren();
      try {
        const me = await api("POST", "/api/v1/login", { user: user.value, password: password.value });
        Object.assign(session, { user: me.user, role: me.role, scope: me.scope, csrf: me.csrf_token });
        location.hash = "#/tail";
      } catch (err) {
        msg.append(errorBox(err));
      }
    },
  }, h("h2", {}, "Log in to Weir"), user, password, h("button", { class: "primary", type: "submit" }, "Log in"), msg);
  root.append(form);
  user.focus();
}

// ---------------------------------------------------------------- live tail

async function tailView(root, params) {
  const { sources } = await api("GET", "/api/v1/sources");
  root.append(h("h2", {}, "Live tail"));
  if (!sources.length) {
    root.append(emptyState("No source is running. Submit rules on the Pipelines page, or start weir serve --demo."));
    return;
  }
  const pick = h("select", { name: "source" }, sources.map((s) => h("option", { value: s.name }, s.name)));
  if (params.get("source")) pick.value = params.get("source");
  const filter = h("input", {
    class: "wide", name: "filter", "data-focus": true,
    placeholder: 'a where condition, e.g. severity >= warn and service == "checkout"   (/ to focus)',
    value: params.get("filter") || "",
  });
  const pause = h("button", {}, "Pause");
  const follow = h("input", { type: "checkbox", checked: true });
  const status = h("span", { class: "muted" });
  const err = h("div");
  const body = h("tbody");
  const detail = h("div");
  const box = h("div", { class: "tail" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "time"), h("th", {}, "service"), h("th", {}, "severity"), h("th", {}, "message"))),
    body));
  root.append(
    h("div", { class: "row" }, pick, filter, h("button", { class: "primary", onclick: () => connect() }, "Apply"),
      pause, h("label", {}, follow, " follow"), h("button", { onclick: () => body.replaceChildren() }, "Clear"), status),
    err, detail, box);

  let ws = null;
  let paused = false;
  let shown = 0;
  let dropped = 0;
  const highlights = () => [...filter.value.matchAll(/"([^"]+)"/g)].map((m) => m[1]).filter((t) => t.length > 1);

  function mark(text, terms) {
    if (!terms.length || !text) return [text];
    const re = new RegExp("(" + terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|") + ")", "gi");
    return String(text).split(re).map((part, i) => (i % 2 ? h("mark", {}, part) : part));
  }

  function addEvents(events) {
    const terms = highlights();
    for (const ev of events) {
      const tr = h("tr", { class: "event", onclick: () => {
        detail.replaceChildren(h("div", { class: "detail" }, JSON.stringify(ev, null, 2)));
      } },
        h("td", { class: "mono" }, fmtTime(ev.timestamp)),
        h("td", {}, ev.service ?? ""),
        h("td", { class: "sev-" + (ev.severity || "") }, ev.severity ?? ""),
        h("td", { class: "mono" }, mark(ev.message ?? "", terms)));
      body.append(tr);
      shown++;
    }
    while (body.children.length > 1000) body.firstChild.remove();
    if (follow.checked) box.scrollTop = box.scrollHeight;
    status.textContent = `${shown} shown${dropped ? `, ${dropped} skipped to keep up` : ""}`;
  }

  function connect() {
    if (ws) ws.close();
    err.replaceChildren();
    const q = new URLSearchParams({ source: pick.value, filter: filter.value });
    history.replaceState(null, "", "#/tail?" + q);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/api/v1/tail?${q}`);
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.error) {
        err.append(errorBox(msg.col ? `${msg.error}\n${filter.value}\n${" ".repeat(msg.col - 1)}^` : msg.error));
        return;
      }
      dropped += msg.dropped || 0;
      if (!paused && msg.events) addEvents(msg.events);
    };
    ws.onclose = () => { status.textContent += " (disconnected)"; };
  }
  pause.onclick = () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
  };
  filter.addEventListener("keydown", (e) => { if (e.key === "Enter") connect(); });
  pick.onchange = connect;
  connect();
  cleanup.push(() => ws && ws.close());
}

// ---------------------------------------------------------------- search

const RANGES = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800, "30d": 2592000 };

function rangeOf(params) {
  const r = params.get("range") || "1h";
  if (r === "all") return { start: undefined, end: undefined, label: r };
  if (r === "abs") return { start: params.get("start") || undefined, end: params.get("end") || undefined, label: r };
  const now = Date.now();
  return { start: new Date(now - (RANGES[r] || 3600) * 1000).toISOString(), end: new Date(now).toISOString(), label: r };
}

async function searchView(root, params) {
  root.append(h("h2", {}, "Search"));
  const tables = await sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", {});
  const streams = tables.rows.map((r) => r.table_name).filter((n) => !n.startsWith("__"));
  if (!streams.length) {
    root.append(emptyState("The archive is empty so far: archived events show up here a few minutes after they arrive."));
    return;
  }
  const stream = h("select", { name: "stream" }, streams.map((s) => h("option", { value: s }, s)));
  stream.value = params.get("stream") || streams[0];
  const range = h("select", { name: "range" },
    [...Object.keys(RANGES), "all", "abs"].map((r) => h("option", { value: r }, r === "abs" ? "absolute…" : r === "all" ? "all time" : "last " + r)));
  range.value = params.get("range") || "1h";
  const start = h("input", { name: "start", placeholder: "start (RFC 3339)", value: params.get("start") || "" });
  const end = h("input", { name: "end", placeholder: "end (RFC 3339)", value: params.get("end") || "" });
  const mode = h("select", { name: "mode" }, h("option", { value: "filter" }, "filter"), h("option", { value: "sql" }, "SQL"));
  mode.value = params.get("sql") ? "sql" : "filter";
  const q = h("input", {
    class: "wide", name: "q", "data-focus": true,
    value: params.get("sql") || params.get("q") || "",
    placeholder: 'filter, e.g. severity >= warn and service == "checkout"   (or SQL mode: a whole statement)',
  });
  const words = h("input", { name: "words", placeholder: "words in the message", value: params.get("words") || "" });
  const run = h("button", { class: "primary" }, "Search");
  const out = h("div");
  const toggleAbs = () => { start.hidden = end.hidden = range.value !== "abs"; };
  const toggleMode = () => { words.hidden = mode.value === "sql"; };
  range.onchange = toggleAbs;
  mode.onchange = toggleMode;
  toggleAbs();
  toggleMode();
  root.append(h("div", { class: "row" }, stream, range, start, end, mode, q, words, run), out);

  function go() {
    const p = new URLSearchParams({ stream: stream.value, range: range.value });
    if (range.value === "abs") { p.set("start", start.value); p.set("end", end.value); }
    p.set(mode.value === "sql" ? "sql" : "q", q.value);
    if (mode.value !== "sql" && words.value.trim()) p.set("words", words.value.trim());
    location.hash = "#/search?" + p;
  }
  run.onclick = go;
  for (const box of [q, words]) box.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
  if (!params.has("stream")) {
    out.append(h("p", { class: "muted" }, "Pick a stream and a time range, then search. Drag across the histogram to zoom."));
    return;
  }

  const r = rangeOf(params);
  const table = quoteIdent(stream.value);
  out.append(h("p", { class: "muted" }, "Searching…"));
  if (params.get("sql")) {
    // SQL mode: the statement as written.
    try {
      const results = await sql(params.get("sql"), r, 200);
      out.replaceChildren(resultsTable(results, table, "", r, params.get("sql")));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
    return;
  }
  // Filter mode: one call to the search API — the filter in the rules
  // language's `where` syntax and the words, the newest events a page at a
  // time, the count and the histogram, with the SQL it ran.
  const request = {
    stream: stream.value, start: r.start, end: r.end, filter: params.get("q") || null,
    terms: (params.get("words") || "").split(/\s+/).filter(Boolean), limit: 200,
  };
  let res;
  try {
    res = await api("POST", "/api/v1/search", request);
  } catch (e) {
    const col = e.body && e.body.col;
    out.replaceChildren(errorBox(col ? `${e.message}\n${params.get("q")}\n${" ".repeat(col - 1)}^` : e));
    return;
  }
  const where = res.sql.where ? ` WHERE ${res.sql.where}` : "";
  let cursor = res.next_cursor;
  const more = async () => {
    const page = await api("POST", "/api/v1/search", { ...request, cursor });
    cursor = page.next_cursor;
    return { rows: page.events, done: !cursor };
  };
  out.replaceChildren();
  out.append(h("p", {}, h("strong", { "data-count": res.total }, String(res.total)), " events matched"));
  if (res.histogram.rows.length) out.append(histogram(res.histogram.rows, res.histogram.bucket_seconds, stream.value, params));
  out.append(resultsTable({ rows: res.events }, table, where, r,
    `SELECT * FROM ${table}${where} ORDER BY "timestamp" DESC`, cursor ? more : null));
  out.append(h("details", { class: "sql" }, h("summary", { class: "muted" }, "SQL"),
    h("pre", { class: "mono" }, [res.sql.events, res.sql.total, res.sql.histogram].filter(Boolean).join(";\n\n"))));
}

function histogram(rows, bucket, stream, params) {
  const times = [...new Set(rows.map((r) => Date.parse(r.t) / 1000))].sort((a, b) => a - b);
  const sevs = [...new Set(rows.map((r) => r.severity || "none"))];
  const index = new Map(times.map((t, i) => [t, i]));
  const series = sevs.map(() => new Array(times.length).fill(0));
  for (const r of rows) series[sevs.indexOf(r.severity || "none")][index.get(Date.parse(r.t) / 1000)] += Number(r.n);
  const colors = { ERROR: "#ff6b6b", FATAL: "#ff3b3b", WARN: "#ffb454", INFO: "#4fb3ff", DEBUG: "#8796a5", TRACE: "#5f6b77" };
  const el = h("div", { class: "histogram" });
  const plot = new uPlot({
    width: Math.min(1600, window.innerWidth - 48), height: 160,
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: true } },
    axes: [{ stroke: "#8796a5", grid: { stroke: "#2a333d" } }, { stroke: "#8796a5", grid: { stroke: "#2a333d" } }],
    series: [{}, ...sevs.map((s) => ({ label: s, stroke: colors[s] || "#7fd962", width: 1.5 }))],
    hooks: {
      setSelect: [(u) => {
        if (u.select.width < 5) return;
        const from = u.posToVal(u.select.left, "x");
        const to = u.posToVal(u.select.left + u.select.width, "x");
        const p = new URLSearchParams(params);
        p.set("range", "abs");
        p.set("start", new Date(from * 1000).toISOString());
        p.set("end", new Date((to + bucket) * 1000).toISOString());
        location.hash = "#/search?" + p;
      }],
    },
  }, [times, ...series], el);
  cleanup.push(() => plot.destroy());
  return el;
}

// `more` (optional) loads the next page: `{ rows, done }`.
function resultsTable(res, table, where, range, resultsSql, more) {
  const wrap = h("div");
  if (!res.rows.length) {
    wrap.append(emptyState("Nothing matched in this time range."));
    return wrap;
  }
  const cols = Object.keys(res.rows[0]).filter((c) => c !== "_raw");
  const detail = h("div");
  const side = h("div", { class: "sidebar" }, h("div", { class: "muted" }, "Fields"),
    cols.map((c) => h("button", { onclick: () => topValues(c) }, c)));
  const topBox = h("div");
  async function topValues(col) {
    topBox.replaceChildren(h("p", { class: "muted" }, "…"));
    try {
      const t = await sql(`SELECT CAST(${quoteIdent(col)} AS VARCHAR) AS value, count(*) AS n FROM ${table}${where} GROUP BY 1 ORDER BY 2 DESC LIMIT 10`, range);
      topBox.replaceChildren(h("div", { class: "card" }, h("h3", {}, `Top values of ${col}`),
        h("table", {}, h("tbody", {}, t.rows.map((r) => h("tr", {}, h("td", { class: "mono" }, r.value ?? "null"), h("td", {}, r.n)))))));
    } catch (e) {
      topBox.replaceChildren(errorBox(e));
    }
  }
  const exportAs = async (accept, ext) => {
    const blob = await api("POST", "/api/v1/query", { sql: resultsSql, start: range.start, end: range.end, max_rows: 100000 }, { accept, blob: true });
    download(blob, `weir-search.${ext}`);
  };
  const rowOf = (row) => h("tr", { class: "event", onclick: () => {
    detail.replaceChildren(h("div", { class: "detail" }, JSON.stringify(row, null, 2)));
  } }, cols.map((c) => h("td", { class: "mono" }, c === "timestamp" ? fmtTime(row[c]) : row[c] ?? "")));
  const body = h("tbody", {}, res.rows.map(rowOf));
  const shown = h("span", { class: "muted" }, `${res.rows.length} rows shown`);
  wrap.append(
    h("div", { class: "row" }, shown,
      h("button", { onclick: () => exportAs("text/csv", "csv") }, "Export CSV"),
      h("button", { onclick: () => exportAs("application/x-ndjson", "ndjson") }, "Export NDJSON")),
    h("div", { class: "split" }, h("div", {}, side, topBox),
      h("div", {}, detail, h("table", { class: "results" },
        h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c)))),
        body))));
  if (more) {
    const button = h("button", { "data-more": "" }, "Load more");
    button.onclick = async () => {
      button.disabled = true;
      try {
        const page = await more();
        body.append(...page.rows.map(rowOf));
        shown.textContent = `${body.children.length} rows shown`;
        if (page.done) button.remove(); else button.disabled = false;
      } catch (e) {
        button.replaceWith(errorBox(e));
      }
    };
    wrap.append(button);
  }
  return wrap;
}

// ---------------------------------------------------------------- alerts

// Why an alert fired: its sample events and the search that reproduces
// its window (opened here, in the search view).
function evidence(a) {
  const e = a.evidence;
  if (!e) return null;
  const p = new URLSearchParams({ stream: e.stream, range: "abs", start: a.window_start, end: a.window_end, sql: e.sql });
  return h("details", { class: "evidence" },
    h("summary", {}, `evidence: ${(e.samples || []).length} sample events`),
    (e.samples || []).length ? h("div", { class: "samples" }, e.samples.map((s) => {
      // Time, severity and message first; every field on hover and in the data.
      const rest = Object.entries(s).filter(([k]) => !["timestamp", "severity", "message", "_offset", "_partition"].includes(k));
      return h("div", { class: "mono sample", title: JSON.stringify(s, null, 2), "data-sample": JSON.stringify(s) },
        h("span", { class: "muted" }, fmtTime(s.timestamp) + " "), h("strong", {}, (s.severity || "") + " "), s.message || "",
        h("span", { class: "muted" }, rest.length ? "  " + rest.map(([k, v]) => `${k}=${v}`).join(" ") : ""));
    })) : null,
    h("div", {}, h("a", { href: "#/search?" + p, "data-evidence-search": "" }, "Search the window"),
      h("span", { class: "muted" }, " — the query reproduces its counts")),
    (e.caveats || []).length ? h("div", { class: "muted" }, "approximate: " + e.caveats.join("; ")) : null);
}

// A pipeline's shadow version: what it did differently, and the calls that
// end it (promote: it replaces the live pipeline; discard).
function shadowLine(p, canChange, refresh) {
  const s = p.shadow;
  const act = (what, method, path) => h("button", { "data-shadow": what, onclick: async () => {
    if (!confirm(`${what} the shadow of ${p.name}?`)) return;
    await api(method, `/api/v1/pipelines/${encodeURIComponent(p.name)}/shadow${path}`);
    refresh();
  } }, what);
  return h("div", { class: "shadow" },
    h("strong", {}, "shadow "), h("span", { class: "muted" }, `since ${fmtTime(s.since)}${s.running ? "" : " (ended)"} · `),
    `alerts only in the shadow ${s.only_shadow} · only live ${s.only_live} · both ${s.both}`,
    s.skipped_events ? h("span", { class: "muted" }, ` · ${s.skipped_events} events skipped`) : null,
    canChange ? h("span", {}, " ", act("Promote", "POST", "/promote"), act("Discard", "DELETE", "")) : null);
}

async function alertsView(root) {
  root.append(h("h2", {}, "Alerts"));
  const [{ alerts, history }, { silences }] = await Promise.all([
    api("GET", "/api/v1/alerts?limit=100"),
    api("GET", "/api/v1/silences"),
  ]);
  const canWrite = session.role === "admin" || session.role === "editor";
  const form = h("div");
  function silenceForm(a) {
    const matchers = [`alertname=${a.rule}`, ...Object.entries(a.labels || {}).map(([k, v]) => `${k}=${v}`)];
    const m = h("input", { class: "wide", name: "matchers", value: matchers.join(", ") });
    const d = h("input", { name: "duration", value: "2h", size: 6 });
    const c = h("input", { name: "comment", placeholder: "why", class: "wide" });
    const msg = h("div");
    form.replaceChildren(h("div", { class: "card" }, h("h3", {}, `Silence ${a.rule}`),
      h("div", { class: "row" }, m), h("div", { class: "row" }, "for", d, c,
        h("button", { class: "primary", onclick: async () => {
          try {
            await api("POST", "/api/v1/silences", {
              matchers: m.value.split(",").map((s) => s.trim()).filter(Boolean), duration: d.value, comment: c.value,
            });
            render();
          } catch (e) { msg.replaceChildren(errorBox(e)); }
        } }, "Create silence")), msg));
  }
  root.append(form);
  root.append(h("h3", {}, "Open"));
  root.append(alerts.length ? h("div", { class: "cards" }, alerts.map((a) => h("div", { class: "card alert" },
    h("h3", {}, a.rule, " ", h("span", { class: "state-" + a.state }, a.state), " ", h("span", { class: "muted" }, a.severity)),
    h("div", { class: "mono" }, Object.entries(a.labels || {}).map(([k, v]) => `${k}=${v}`).join("  ")),
    h("div", { class: "mono" }, Object.entries(a.values || {}).map(([k, v]) => `${k}: ${v}`).join("  ")),
    h("div", { class: "muted" }, `window ${fmtTime(a.window_start)} – ${fmtTime(a.window_end)} · pipeline ${a.pipeline}`),
    evidence(a),
    canWrite ? h("button", { onclick: () => silenceForm(a) }, "Silence…") : null)))
    : emptyState("No open alerts."));
  root.append(h("h3", {}, "Silences"));
  root.append(silences.length ? h("table", {}, h("thead", {}, h("tr", {}, ["matchers", "status", "ends", "by", "comment", ""].map((c) => h("th", {}, c)))),
    h("tbody", {}, silences.map((s) => h("tr", {},
      h("td", { class: "mono" }, s.matchers.map((m) => `${m.name}${m.op}${m.value}`).join(", ")),
      h("td", {}, s.status), h("td", {}, fmtTime(s.ends_at)), h("td", {}, s.created_by), h("td", {}, s.comment),
      h("td", {}, canWrite && s.status !== "expired" ? h("button", { onclick: async () => {
        await api("DELETE", "/api/v1/silences/" + encodeURIComponent(s.id));
        render();
      } }, "Expire") : null)))))
    : emptyState("No silences."));
  root.append(h("h3", {}, "History"));
  root.append(history.length ? h("table", {}, h("thead", {}, h("tr", {}, ["time", "event", "rule", "labels", "channel", "detail"].map((c) => h("th", {}, c)))),
    h("tbody", {}, history.map((e) => h("tr", {},
      h("td", { class: "mono" }, fmtTime(e.time)), h("td", {}, e.event), h("td", {}, e.alert.rule),
      h("td", { class: "mono" }, Object.entries(e.alert.labels || {}).map(([k, v]) => `${k}=${v}`).join(" ")),
      h("td", {}, e.channel || ""), h("td", { class: "muted" }, e.detail || "")))))
    : emptyState("Nothing has happened yet."));
  const timer = setInterval(() => { if (!form.children.length) render(); }, 10000);
  cleanup.push(() => clearInterval(timer));
}

// ---------------------------------------------------------------- pipelines

const EXAMPLE = `source web = http(listen: "127.0.0.1:9000") format json

pipeline web_errors {
  from web
  | where severity >= error
  | window tumbling 1m by service { errors = count() }
  | alert "error burst" when errors > 50 severity critical
}
`;

// `.rules` highlighting: declarations and stage keywords, strings,
// durations and numbers, comments, severities.
const KEYWORDS = new Set(["source", "output", "archive", "pipeline", "from", "where", "set", "rename", "drop",
  "parse", "geoip", "window", "alert", "to", "format", "fields", "tumbling", "sliding", "session", "by",
  "lateness", "max_keys", "when", "for", "resolve", "after", "severity", "labels", "annotations", "notify",
  "partition", "roll", "at", "every", "raw", "index", "none", "as", "and", "or", "not", "in", "contains", "is", "null",
  "true", "false", "timestamp_format", "timezone", "gap", "hop", "evidence"]);
const LEVELS = new Set(["trace", "debug", "info", "warn", "warning", "error", "fatal", "critical"]);
const rulesLanguage = StreamLanguage.define({
  token(stream) {
    if (stream.eatSpace()) return null;
    if (stream.match("//") || stream.match("#")) { stream.skipToEnd(); return "comment"; }
    if (stream.match(/^"(?:[^"\\]|\\.)*"?/)) return "string";
    if (stream.match(/^\d+(?:\.\d+)?(?:ms|s|m|h|d|w|KB|MB|GB)?\b/)) return "number";
    if (stream.match(/^[A-Za-z_][A-Za-z0-9_]*/)) {
      const w = stream.current();
      if (KEYWORDS.has(w)) return "keyword";
      if (LEVELS.has(w)) return "atom";
      if (stream.peek() === "(") return "variableName.function";
      return "variableName";
    }
    stream.next();
    return "operator";
  },
});
const rulesHighlight = syntaxHighlighting(HighlightStyle.define([
  { tag: tags.keyword, color: "#c792ea" },
  { tag: tags.string, color: "#c3e88d" },
  { tag: tags.number, color: "#f78c6c" },
  { tag: tags.comment, color: "#676e95", fontStyle: "italic" },
  { tag: tags.atom, color: "#ffcb6b" },
  { tag: tags.function(tags.variableName), color: "#82aaff" },
  { tag: tags.operator, color: "#89ddff" },
]));

async function pipelinesView(root) {
  root.append(h("h2", {}, "Pipelines"));
  const canWrite = session.role === "admin" || session.role === "editor";
  const list = h("div", { class: "cards" });
  const history = {};
  async function refresh() {
    const [{ pipelines }, { metrics }] = await Promise.all([api("GET", "/api/v1/pipelines"), api("GET", "/api/v1/stats")]);
    const value = (name, labels) => metrics
      .filter((m) => m.name === name && Object.entries(labels).every(([k, v]) => m.labels[k] === v))
      .reduce((s, m) => s + m.value, 0);
    if (!pipelines.length) {
      list.replaceChildren(emptyState("No pipeline runs. Write one below and deploy it."));
      return;
    }
    list.replaceChildren(...pipelines.map((p) => {
      // Per stage (operator): events in and out.
      const ops = [...new Set(metrics
        .filter((m) => m.name === "weir_operator_events_in_total" && m.labels.pipeline === p.name)
        .map((m) => m.labels.operator))];
      const stages = ops.map((op) => ({
        op,
        in: value("weir_operator_events_in_total", { pipeline: p.name, operator: op }),
        out: value("weir_operator_events_out_total", { pipeline: p.name, operator: op }),
      }));
      const inN = Math.max(0, ...stages.map((s) => s.in));
      const hist = (history[p.name] ||= []);
      hist.push(inN);
      if (hist.length > 30) hist.shift();
      const rates = hist.slice(1).map((v, i) => Math.max(0, (v - hist[i]) / 2));
      const lag = value("weir_source_lag_messages", { source: p.source });
      const dead = value("weir_dead_letters_total", { source: p.source });
      const failed = value("weir_pipeline_errors_total", { pipeline: p.name });
      return h("div", { class: "card pipeline" },
        h("h3", {}, p.name, " ", h("span", { class: p.running ? "ok" : "muted" }, p.running ? "running" : "ended")),
        h("div", { class: "muted" }, `from ${p.source} · ${p.file}`),
        h("div", {}, sparkline(rates), h("span", { class: "muted" }, ` ${rates.length ? rates[rates.length - 1].toFixed(0) : 0} ev/s in`)),
        h("table", { class: "stages" }, h("tbody", {}, stages.map((s) =>
          h("tr", { class: "stage" }, h("td", {}, s.op), h("td", {}, `${s.in} in`), h("td", {}, `${s.out} out`))))),
        h("div", { class: "muted" }, `windows open ${value("weir_windows_open", { pipeline: p.name })} · ` +
          `late ${value("weir_late_events_dropped_total", { pipeline: p.name })} · ` +
          `dead letters (source) ${dead} · lag ${lag} · errors ${failed}`),
        p.error ? h("div", { class: "error pipeline-error" }, `stopped: ${p.error}`) : null,
        p.shadow ? shadowLine(p, canWrite && !session.scope, refresh) : null,
        canWrite ? h("button", { onclick: async () => {
          if (!confirm(`Stop and delete ${p.name}?`)) return;
          await api("DELETE", "/api/v1/pipelines/" + encodeURIComponent(p.name));
          refresh();
        } }, "Delete") : null);
    }));
  }
  root.append(list);
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 2000);
  cleanup.push(() => clearInterval(timer));

  root.append(h("h3", {}, "Write rules"));
  const status = h("div", { class: "muted", id: "check-status" }, "Type: the rules are checked as you write.");
  const host = h("div", { class: "editor" });
  const toPos = (doc, line, col) => {
    const l = doc.line(Math.min(Math.max(1, line), doc.lines));
    return Math.min(l.from + Math.max(0, col - 1), l.to);
  };
  const check = linter(async (v) => {
    const text = v.state.doc.toString();
    try {
      const r = await api("POST", "/api/v1/check", text, { rules: true });
      status.className = r.valid ? "ok" : "error";
      status.textContent = r.valid ? "No problems." : r.diagnostics.map((d) => `${d.line}:${d.col}: ${d.message}`).join("\n");
      return r.diagnostics.map((d) => {
        const from = toPos(v.state.doc, d.line, d.col);
        let to = toPos(v.state.doc, d.end_line, d.end_col);
        if (to <= from) to = Math.min(from + 1, v.state.doc.length);
        return { from, to, severity: "error", message: d.message + (d.hint ? `\nhint: ${d.hint}` : "") };
      });
    } catch (e) {
      status.className = "error";
      status.textContent = e.message;
      return [];
    }
  }, { delay: 400 });
  const editor = new EditorView({ doc: EXAMPLE, extensions: [basicSetup, rulesLanguage, rulesHighlight, lintGutter(), check, EditorView.theme({}, { dark: true })], parent: host });
  cleanup.push(() => editor.destroy());
  const msg = h("div");
  root.append(host, status, canWrite ? h("div", { class: "row" },
    h("button", { class: "primary", onclick: async () => {
      msg.replaceChildren();
      try {
        const r = await api("POST", "/api/v1/pipelines?name=console.rules", editor.state.doc.toString(), { rules: true });
        msg.replaceChildren(h("span", { class: "ok" }, "Deployed: " + r.pipelines.join(", ")));
        refresh();
      } catch (e) {
        msg.replaceChildren(errorBox(e.body && e.body.text ? e.body.text : e));
      }
    } }, "Deploy"), msg) : h("p", { class: "muted" }, "Your role can read pipelines, not change them."));
  window.__weirEditor = editor;
}

render();
