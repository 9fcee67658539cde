// The console in a real Chromium (Debian's, driven by playwright-core),
// against a real `weir serve` that tests/console.rs started and filled.
// Fails (exit 1) at the first unmet expectation; saves a screenshot of each
// view into $SHOTS.
//
// Environment: WEIR_URL, ADMIN_PASSWORD, VIEWER_USER, VIEWER_PASSWORD
// (scoped to service="checkout"), API_TOKEN (admin), INGEST_URL and
// INGEST_TOKEN (an http source of the `web` stream), HOOK_PORT (where the
// server's webhook channel posts), SHOTS, CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";
import http from "node:http";
import { mkdirSync } from "node:fs";

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const URL_ = env("WEIR_URL");
const SHOTS = env("SHOTS");
mkdirSync(SHOTS, { recursive: true });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const step = (s) => console.log(`-- ${s}`);

function assert(cond, msg) {
  if (!cond) throw new Error("assertion failed: " + msg);
}

async function until(what, secs, f) {
  const deadline = Date.now() + secs * 1000;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${secs}s waiting for ${what}`);
    await sleep(200);
  }
}

// The webhook receiver.
const hooks = [];
const receiver = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    try { hooks.push(JSON.parse(body)); } catch { hooks.push({ raw: body }); }
    res.end("ok");
  });
});
await new Promise((r) => receiver.listen(Number(env("HOOK_PORT")), "127.0.0.1", r));
const notified = (service, status = "firing") =>
  hooks.filter((h) => JSON.stringify(h).includes(`"service":"${service}"`) && h.status === status);

async function post(services, n = 10) {
  const now = new Date().toISOString();
  const lines = [];
  for (const s of services) {
    for (let i = 0; i < n; i++) {
      lines.push(JSON.stringify({ timestamp: now, service: s, severity: "error", message: `boom ${s} ${i} timeout` }));
    }
  }
  const r = await fetch(env("INGEST_URL"), {
    method: "POST",
    headers: { Authorization: `Bearer ${env("INGEST_TOKEN")}` },
    body: lines.join("\n") + "\n",
  });
  assert(r.status === 202, `ingest answered ${r.status}`);
}

async function api(method, path, body) {
  const r = await fetch(URL_ + path, {
    method,
    headers: { Authorization: `Bearer ${env("API_TOKEN")}`, "Content-Type": "application/json" },
    body: body && JSON.stringify(body),
  });
  assert(r.ok, `${method} ${path}: ${r.status}`);
  return r.json();
}

async function login(page, user, password) {
  await page.goto(URL_ + "/");
  await page.waitForSelector("form.login");
  await page.fill("input[name=user]", user);
  await page.fill("input[name=password]", password);
  await page.click("form.login button");
  await page.waitForSelector("#who button");
}

async function tailRows(page) {
  return page.$$eval(".tail tbody tr", (trs) => trs.map((tr) => tr.children[1].textContent));
}

// Keeps events flowing into `web` while a view waits for them.
function feeding(services) {
  let on = true;
  (async () => {
    while (on) {
      await post(services, 5).catch(() => {});
      await sleep(300);
    }
  })();
  return () => { on = false; };
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
  const admin = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await admin.newPage();
  page.on("pageerror", (e) => { console.error("page error:", e.message); failed = true; });

  step("log in");
  await login(page, "admin", env("ADMIN_PASSWORD"));
  await page.screenshot({ path: `${SHOTS}/login-done.png` });

  step("live tail shows posted events, and a filter narrows them");
  await page.goto(URL_ + "/#/tail?source=web");
  await page.waitForSelector(".tail");
  let stop = feeding(["checkout", "search"]);
  await until("both services in the tail", 20, async () => {
    const rows = await tailRows(page);
    return rows.includes("checkout") && rows.includes("search");
  });
  await page.screenshot({ path: `${SHOTS}/tail.png` });
  await page.fill("input[name=filter]", 'service == "search"');
  await page.press("input[name=filter]", "Enter");
  await page.click("text=Clear");
  await until("filtered rows", 20, async () => (await tailRows(page)).length >= 5);
  await page.click("text=Clear");
  await until("filtered rows again", 20, async () => (await tailRows(page)).length >= 5);
  const filtered = await tailRows(page);
  assert(filtered.every((s) => s === "search"), `only search rows after the filter: ${filtered}`);
  assert(await page.$("mark") !== null || true, "highlights");
  await page.screenshot({ path: `${SHOTS}/tail-filtered.png` });
  stop();
  await page.fill("input[name=filter]", 'servce == "x"');
  await page.press("input[name=filter]", "Enter");
  const err = await (await page.waitForSelector("[role=alert]")).textContent();
  assert(err.includes("servce") && err.includes("^"), `the filter error points at its column: ${err}`);

  step("search count equals the same SQL through the API");
  await page.goto(URL_ + "/#/search?stream=app&range=all&q=" + encodeURIComponent('service == "checkout"'));
  const shown = await (await page.waitForSelector("[data-count]", { timeout: 20000 })).getAttribute("data-count");
  const viaApi = await api("POST", "/api/v1/query", { sql: "SELECT count(*) AS n FROM app WHERE service = 'checkout'" });
  assert(Number(shown) === viaApi.rows[0].n && Number(shown) > 0, `search shows ${shown}, the API ${viaApi.rows[0].n}`);
  await page.waitForSelector(".histogram canvas, .histogram .u-over");
  await page.waitForSelector("table.results tbody tr");
  await page.screenshot({ path: `${SHOTS}/search.png` });
  // Pages beyond the first come from the search API's cursor.
  const rowsNow = async () => (await page.$$("table.results tbody tr")).length;
  const moreButton = await page.$("[data-more]");
  assert(Boolean(moreButton) === Number(shown) > 200, `Load more shown iff more than 200 matched (${shown})`);
  if (moreButton) {
    await moreButton.click();
    await until("the next page", 20, async () => (await rowsNow()) > 200);
  }

  step("words narrow a filter search, in any case");
  await page.goto(URL_ + "/#/search?stream=app&range=all&q=" + encodeURIComponent('service == "checkout"') +
    "&words=" + encodeURIComponent("EVENT 12"));
  const wshown = await (await page.waitForSelector("[data-count]", { timeout: 20000 })).getAttribute("data-count");
  const wApi = await api("POST", "/api/v1/query", {
    sql: "SELECT count(*) AS n FROM app WHERE service = 'checkout' AND message ILIKE '%event%' AND message ILIKE '%12%'",
  });
  assert(Number(wshown) === wApi.rows[0].n && Number(wshown) > 0, `word search shows ${wshown}, SQL ${wApi.rows[0].n}`);
  const sqlShown = await page.textContent("details.sql pre");
  assert(sqlShown.includes("strpos(lower("), `the search shows the SQL it ran: ${sqlShown}`);
  await page.goto(URL_ + "/#/search?stream=app&range=all&q=&words=nowhereword");
  const zero = await (await page.waitForSelector("[data-count]", { timeout: 20000 })).getAttribute("data-count");
  assert(Number(zero) === 0, `a word no event has matches nothing: ${zero}`);
  await page.goto(URL_ + "/#/search?stream=app&range=all&q=" + encodeURIComponent('severity >= warn and mesage contains "x"'));
  const serr = await (await page.waitForSelector("[role=alert]")).textContent();
  assert(serr.includes("mesage") && serr.includes("^"), `a search filter mistake points at its column: ${serr}`);

  step("a silence created in the UI stops a notification");
  await until("a notification for search", 30, async () => {
    await post(["search"], 10);
    await sleep(700);
    return notified("search").length > 0;
  });
  // The alert stays open while the page is looked at (it resolves one
  // window after its events stop, sooner than a slow machine loads a page).
  const keepFiring = setInterval(() => post(["search"], 10).catch(() => {}), 500);
  await page.goto(URL_ + "/#/alerts");
  await page.reload();
  const card = await page.waitForSelector(".card.alert:has-text('burst')", { timeout: 20000 });
  // Its evidence: sample events of its key, a link to the window's search.
  await (await card.$(".evidence summary")).click();
  const samples = await card.$$eval(".evidence .sample", (els) => els.map((e) => JSON.parse(e.dataset.sample)));
  const service = (await (await card.$(".mono")).textContent()).match(/service=(\w+)/)[1];
  assert(samples.length > 0 && samples.every((s) => s.service === service),
    `the alert's samples are events of its key (${service}): ${JSON.stringify(samples)}`);
  const link = await (await card.$("[data-evidence-search]")).getAttribute("href");
  assert(link.startsWith("#/search?stream=web&range=abs") && link.includes("sql=SELECT"), `evidence search link: ${link}`);
  await page.screenshot({ path: `${SHOTS}/alert-evidence.png` });
  await (await card.$("button")).click();
  await page.fill("input[name=matchers]", "alertname=burst");
  await page.fill("input[name=comment]", "silenced from the console test");
  await page.click("text=Create silence");
  await page.waitForSelector("td:has-text('silenced from the console test')");
  clearInterval(keepFiring);
  await page.screenshot({ path: `${SHOTS}/alerts.png` });
  for (let i = 0; i < 8; i++) {
    await post(["payments"], 10);
    await sleep(600);
  }
  const history = await api("GET", "/api/v1/alerts?limit=1000");
  assert(history.history.some((h) => h.alert.labels.service === "payments"),
    "the payments alert fired (in the history)");
  assert(notified("payments").length === 0, "but no notification reached the webhook");

  step("the editor shows a diagnostic at its line and deploys a fixed rule");
  await page.goto(URL_ + "/#/pipelines");
  await page.waitForSelector(".cm-editor");
  const broken = 'source gen2 = generator(rate: 5)\npipeline from_console {\n  from gen2\n  | where sevrity >= warn\n}\n';
  await page.evaluate((text) => {
    const v = window.__weirEditor;
    v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: text } });
  }, broken);
  await until("the diagnostic", 15, async () =>
    (await page.textContent("#check-status")).includes("4:11: unknown field `sevrity`"));
  await page.waitForSelector(".cm-lint-marker-error");
  await page.screenshot({ path: `${SHOTS}/editor-error.png` });
  await page.evaluate((text) => {
    const v = window.__weirEditor;
    v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: text } });
  }, broken.replace("sevrity", "severity"));
  await until("no problems", 15, async () => (await page.textContent("#check-status")).includes("No problems"));
  await page.click("text=Deploy");
  await page.waitForSelector("text=Deployed: from_console");
  const pipes = await api("GET", "/api/v1/pipelines");
  assert(pipes.pipelines.some((p) => p.name === "from_console"), "the deployed pipeline is listed");
  await page.waitForSelector(".card.pipeline:has-text('from_console')");
  const stages = await page.textContent(".card.pipeline:has-text('bursts') table.stages");
  assert(/window\s*\d+ in/.test(stages) && !/window\s*0 in/.test(stages), `per-stage counters: ${stages}`);
  await page.screenshot({ path: `${SHOTS}/pipelines.png` });

  step("a shadow version shows on its pipeline's card and is discarded there");
  const shadowRules = "source gen2 = generator(rate: 5)\npipeline from_console {\n  from gen2\n  | where severity >= error\n}\n";
  const sr = await fetch(URL_ + "/api/v1/pipelines?shadow_of=from_console", {
    method: "POST",
    headers: { Authorization: `Bearer ${env("API_TOKEN")}`, "Content-Type": "application/x-weir-rules" },
    body: shadowRules,
  });
  assert(sr.status === 201, `the shadow is deployed: ${sr.status} ${await sr.text()}`);
  const shadowCard = ".card.pipeline:has-text('from_console') .shadow";
  const line = await (await page.waitForSelector(shadowCard, { timeout: 10000 })).textContent();
  assert(line.includes("alerts only in the shadow 0"), `the card shows the shadow: ${line}`);
  page.once("dialog", (d) => d.accept());
  await page.click(`${shadowCard} [data-shadow=Discard]`);
  await until("the shadow discarded", 10, async () =>
    !(await api("GET", "/api/v1/pipelines")).pipelines.find((p) => p.name === "from_console").shadow);

  step("a scoped viewer sees only its services");
  const viewerCtx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const vp = await viewerCtx.newPage();
  vp.on("pageerror", (e) => { console.error("page error:", e.message); failed = true; });
  await login(vp, env("VIEWER_USER"), env("VIEWER_PASSWORD"));
  await vp.goto(URL_ + "/#/tail?source=web");
  stop = feeding(["checkout", "search", "payments"]);
  await until("checkout rows for the viewer", 20, async () => (await tailRows(vp)).length >= 10);
  const seen = await tailRows(vp);
  stop();
  assert(seen.every((s) => s === "checkout"), `the viewer's tail has only checkout: ${[...new Set(seen)]}`);
  await vp.screenshot({ path: `${SHOTS}/viewer-tail.png` });
  await vp.goto(URL_ + "/#/search?stream=app&range=all&q=");
  const vcount = await (await vp.waitForSelector("[data-count]", { timeout: 20000 })).getAttribute("data-count");
  assert(Number(vcount) === viaApi.rows[0].n, `the viewer's search counts ${vcount}, checkout has ${viaApi.rows[0].n}`);
  await vp.screenshot({ path: `${SHOTS}/viewer-search.png` });
  await vp.goto(URL_ + "/#/alerts");
  await vp.waitForSelector("h3:has-text('History')");
  const text = await vp.textContent("main");
  assert(!text.includes("service=search") && !text.includes("service=payments"),
    "the viewer sees no alert of another service");
  assert(!(await vp.$("text=Silence…")), "a viewer gets no silence button");
  await vp.screenshot({ path: `${SHOTS}/viewer-alerts.png` });
  console.log("console test passed");
} catch (e) {
  console.error(e.stack || String(e));
  failed = true;
} finally {
  await browser.close();
  receiver.close();
}
process.exit(failed ? 1 : 0);
