// Segment's and RudderStack's browser libraries, unchanged, in real Chromium,
// pointed at the gateway. Run by tests/clients.rs:
//   node browser_clients.mjs RUN_ID
// with TRACKGATE_URL, TRACKGATE_WRITE_KEY and PAGE_PORT (the pages' origin,
// http://127.0.0.1:PAGE_PORT, is on the source's allowed origins).
// SCENARIOS=retries runs the per-event modes against a gateway that answers
// 429 to most requests: each library must retry (with its retry headers,
// which the preflight must allow) until every event is in.
//
// The npm packages are bundled as they are with esbuild (no CDN is reached:
// Segment's settings and RudderStack's source config are given at load),
// served from a local origin, and each delivery mode sends a page, a track
// and an identify. One JSON line per mode gives the Rust side the visitor to
// find in Kafka, the gateway paths the browser requested, and any request
// that failed or was blocked (CORS included) or answered other than 2xx.
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
const version = (pkg) => JSON.parse(readFileSync(join(HERE, "node_modules", pkg, "package.json"), "utf8")).version;
const [RUN_ID] = process.argv.slice(2);
const GATEWAY = process.env.TRACKGATE_URL;
const KEY = process.env.TRACKGATE_WRITE_KEY;
const PORT = Number(process.env.PAGE_PORT);
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
// The project's flags for Chromium (see HELPERS / sdk-js e2e harness).
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const DELIVERY_TIMEOUT_MS = 30_000;
const RETRIES = process.env.SCENARIOS === "retries";
/** Request headers the libraries add to a retry. */
const RETRY_HEADERS = ["x-retry-count", "rsa-retry-attempt"];

// What the page runs: the library loaded as a site would, then three calls.
const ENTRY = `
import { AnalyticsBrowser } from "@segment/analytics-next";
import { RudderAnalytics } from "@rudderstack/analytics-js/bundled";

window.runSegment = async ({ writeKey, apiHost, batching, run }) => {
  const integration = { apiKey: writeKey, apiHost, protocol: "http" };
  if (batching) integration.deliveryStrategy = { strategy: "batching", config: { size: 3, timeout: 500 } };
  const [analytics] = await AnalyticsBrowser.load(
    { writeKey, cdnSettings: { integrations: { "Segment.io": integration } } },
    { retryQueue: true },
  );
  analytics.page("Docs", "Install", { run });
  analytics.track("Order Completed", { total: 12.5, run });
  analytics.identify("user-" + run, { plan: "pro" });
  return analytics.user().anonymousId();
};

window.runRudder = ({ writeKey, dataPlaneUrl, beacon, batch, run }) =>
  new Promise((resolve) => {
    const ra = new RudderAnalytics();
    ra.load(writeKey, dataPlaneUrl, {
      logLevel: "ERROR",
      getSourceConfig: () => ({
        source: { id: "src-" + run, name: "compat", workspaceId: "ws", writeKey, enabled: true, config: {}, destinations: [] },
      }),
      useBeacon: beacon,
      beaconQueueOptions: { maxItems: 3, flushQueueInterval: 500 },
      queueOptions: batch ? { batch: { enabled: true, maxItems: 3, flushInterval: 500 } } : {},
    });
    ra.ready(() => {
      ra.page("Docs", "Install", { run });
      ra.track("Order Completed", { total: 12.5, run });
      ra.identify("user-" + run, { plan: "pro" });
      resolve(ra.getAnonymousId());
    });
  });
`;

const ALL_SCENARIOS = [
  { client: "@segment/analytics-next", mode: "standard (fetch per event)", fn: "runSegment", opts: { batching: false } },
  { client: "@segment/analytics-next", mode: "batching", fn: "runSegment", opts: { batching: true } },
  { client: "@rudderstack/analytics-js", mode: "xhr per event", fn: "runRudder", opts: { beacon: false, batch: false } },
  { client: "@rudderstack/analytics-js", mode: "xhr batch", fn: "runRudder", opts: { beacon: false, batch: true } },
  { client: "@rudderstack/analytics-js", mode: "beacon", fn: "runRudder", opts: { beacon: true, batch: false } },
];

const SCENARIOS = RETRIES ? ALL_SCENARIOS.filter((s) => !(s.opts.batching || s.opts.batch || s.opts.beacon)) : ALL_SCENARIOS;

async function bundle() {
  const dir = mkdtempSync(join(tmpdir(), "trackgate-clients-"));
  const outfile = join(dir, "libs.js");
  await build({
    stdin: { contents: ENTRY, resolveDir: HERE, loader: "js" },
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2020",
    outfile,
    logLevel: "error",
  });
  const js = readFileSync(outfile);
  rmSync(dir, { recursive: true, force: true });
  return js;
}

function serve(js) {
  const server = createServer((req, res) => {
    if (req.url.startsWith("/libs.js")) {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(js);
    } else {
      res.writeHead(200, { "content-type": "text/html" });
      res.end('<!doctype html><html><head><title>compat</title><script src="/libs.js"></script></head><body>compat</body></html>');
    }
  });
  return new Promise((resolve) => server.listen(PORT, "127.0.0.1", () => resolve(server)));
}

async function scenario(browser, s, i) {
  const run = `${RUN_ID}-${i}`;
  const context = await browser.newContext();
  const page = await context.newPage();
  const requests = [];
  const problems = [];
  const pending = new Set();
  let delivered = 0;
  let throttled = 0;
  let retries = 0;
  context.on("request", (r) => {
    if (!r.url().startsWith(GATEWAY)) return;
    requests.push(`${r.method()} ${new URL(r.url()).pathname}`);
    if (RETRY_HEADERS.some((h) => h in r.headers())) retries += 1;
    pending.add(r);
  });
  context.on("requestfinished", async (r) => {
    if (!pending.has(r)) return;
    const resp = await r.response();
    pending.delete(r);
    const status = resp ? resp.status() : 200; // a beacon's answer is not exposed
    if (status >= 200 && status <= 299) {
      if (r.method() === "POST") delivered += 1;
    } else if (status === 429 && RETRIES) {
      throttled += 1;
    } else {
      problems.push(`${r.url()} answered ${status}`);
    }
  });
  context.on("requestfailed", (r) => {
    if (!pending.delete(r)) return;
    problems.push(`${r.method()} ${r.url()} failed: ${r.failure()?.errorText}`);
  });
  page.on("console", (m) => {
    if (m.type() === "error" && /CORS|Access-Control/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  await page.goto(`http://127.0.0.1:${PORT}/${i}.html`);
  const opts = { ...s.opts, writeKey: KEY, apiHost: GATEWAY.replace(/^http:\/\//, "") + "/v1", dataPlaneUrl: GATEWAY, run };
  const visitor = await page.evaluate(({ fn, opts }) => window[fn](opts), { fn: s.fn, opts });
  // Delivered: three events' worth of POSTs answered 2xx, nothing pending.
  const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
  const batched = s.opts.batching || s.opts.batch || s.opts.beacon;
  while (Date.now() < deadline && (delivered < (batched ? 1 : 3) || pending.size > 0)) {
    await new Promise((r) => setTimeout(r, 100));
  }
  // The beacon queue also flushes when the page goes away.
  await page.close({ runBeforeUnload: true });
  await new Promise((r) => setTimeout(r, 300));
  await context.close();
  return { client: s.client, version: version(s.client), mode: s.mode, visitor, userId: `user-${run}`, run, events: 3, requests, problems, throttled, retries };
}

const js = await bundle();
const server = await serve(js);
const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
try {
  for (const [i, s] of SCENARIOS.entries()) {
    console.log(JSON.stringify(await scenario(browser, s, i)));
  }
} finally {
  await browser.close();
  server.close();
}
