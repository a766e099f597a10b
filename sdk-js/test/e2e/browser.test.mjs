// End-to-end: the built IIFE, loaded through the real snippet in real
// Chromium, against the real gateway and a real Tansu broker. Assertions read
// the Kafka topics (through `trackgate tail`) and the browser's own requests.
//
// Prerequisites: target/debug/trackgate (or TRACKGATE_BIN), tansu (PATH,
// ~/.cargo/bin or TANSU_BIN), /usr/bin/chromium, dist/ (npm run build).
// TRACKGATE_E2E_SKIP=1 skips the suite; otherwise anything missing fails it.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import {
  Broker,
  CHROMIUM,
  CHROMIUM_ARGS,
  Gateway,
  SDK_ROOT,
  TOPICS,
  Tail,
  WRITE_KEY,
  missingPrerequisites,
  sleep,
  startPageServer,
} from "./harness.mjs";

const SKIP = process.env.TRACKGATE_E2E_SKIP === "1";
if (SKIP) console.log("# TRACKGATE_E2E_SKIP=1: end-to-end suite skipped");
const VERSION = JSON.parse(readFileSync(join(SDK_ROOT, "package.json"), "utf8")).version;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const T = { timeout: 120_000 };

let broker, gateway, tail, pages, browser;
const marker = () => "e2e" + randomUUID().slice(0, 8);
const loaded = () => window.trackgate && !Array.isArray(window.trackgate);
const of = (aid, topic) => (r) => r.value.anonymousId === aid && (!topic || r.topic === topic);

/** Opens a test page in a fresh browser context (fresh storage). */
async function openPage(path, { m = marker(), o, initScript, query = "" } = {}) {
  const context = await browser.newContext();
  if (initScript) await context.addInitScript(initScript);
  const page = await context.newPage();
  const requests = [];
  const failed = [];
  const errors = [];
  context.on("request", (r) => {
    if (r.url().startsWith(gateway.url))
      requests.push({ url: r.url(), method: r.method(), type: r.resourceType(), body: r.postData(), at: Date.now() });
  });
  context.on("requestfailed", (r) => r.url().startsWith(gateway.url) && failed.push(r.url()));
  page.on("pageerror", (e) => errors.push(e));
  const q = `?m=${m}` + (o ? "&o=" + encodeURIComponent(JSON.stringify(o)) : "") + query;
  await page.goto(pages.origin + path + q);
  await page.waitForFunction(loaded);
  const aid = await page.evaluate(() => localStorage.getItem("tg_aid"));
  return { context, page, requests, failed, errors, aid, m, url: pages.origin + path + q };
}

/** Events from the browser's recorded requests to /v1/batch. */
const batchEvents = (requests) =>
  requests.filter((r) => r.url.endsWith("/v1/batch") && r.body).flatMap((r) => JSON.parse(r.body).batch);

async function until(what, fn, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await sleep(100);
  }
}

describe("trackgate-js in Chromium against the real gateway and broker", { skip: SKIP && "TRACKGATE_E2E_SKIP=1" }, () => {
  before(async () => {
    const missing = missingPrerequisites();
    if (missing.length) throw new Error("end-to-end prerequisites missing:\n  " + missing.join("\n  "));
    broker = await new Broker().start();
    pages = await startPageServer(() => gateway.url);
    gateway = await new Gateway(broker, pages.origin).start();
    tail = new Tail(broker).start();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, T);

  after(async () => {
    await browser?.close();
    await tail?.stop();
    await gateway?.stop();
    gateway?.cleanup();
    await broker?.stop();
    await pages?.close();
  }, T);

  test("the page view arrives, with its context; calls queued by the snippet stub are replayed", T, async () => {
    // The SDK script is served 300 ms late: the early track call hits the stub.
    const p = await openPage("/home", { query: "&early=Early%20Event&sdkDelay=300" });
    assert.match(p.aid, UUID);
    const [r] = await tail.waitFor(of(p.aid, TOPICS.pageviews), { what: "page view" });
    const v = r.value;
    assert.equal(v.type, "page");
    assert.match(v.messageId, UUID);
    assert.ok(v.timestamp && v.sentAt && v.receivedAt);
    assert.deepEqual(v.context.page, {
      url: p.url,
      path: "/home",
      referrer: "",
      title: "E2E /home",
      search: p.url.slice(p.url.indexOf("?")),
    });
    assert.deepEqual(v.context.library, { name: "trackgate-js", version: VERSION });
    // `context.privacy` is the gateway's: the SDK's signals are read, never stored.
    assert.equal(v.context.privacy, undefined);
    assert.equal(typeof v.context.locale, "string");
    assert.equal(typeof v.context.screen.width, "number");
    assert.equal(r.headers.source, "web");

    const [e] = await tail.waitFor(of(p.aid, TOPICS.events), { what: "event queued before load" });
    assert.equal(e.value.event, "Early Event");
    assert.deepEqual(e.value.properties, { queuedBeforeLoad: true });
    // the automatic page view (from the replayed init) and the event share one batch
    assert.deepEqual(p.errors, []);
    await p.context.close();
  });

  test("the gateway serves the SDK: a page needs only the gateway's origin and a write key", T, async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const sdk = page.waitForResponse((r) => r.url() == gateway.url + "/sdk/trackgate.min.js");
    await page.goto(pages.origin + "/served?fromGateway=1");
    const r = await sdk;
    assert.equal(r.status(), 200);
    const h = await r.allHeaders();
    // compressed: Brotli where Chromium offers it (HTTPS and localhost), else gzip
    assert.ok(["br", "gzip"].includes(h["content-encoding"]), h["content-encoding"]);
    assert.match(h["etag"], /^"[0-9a-f]{16}"$/);
    assert.match(h["cache-control"], /max-age=\d{5,}/);
    assert.equal(await r.text(), readFileSync(join(SDK_ROOT, "dist", "trackgate.min.js"), "utf8"));
    await page.waitForFunction(loaded);
    const aid = await page.evaluate(() => localStorage.getItem("tg_aid"));
    const [pv] = await tail.waitFor(of(aid, TOPICS.pageviews), { what: "page view from the served SDK" });
    assert.equal(pv.value.context.page.path, "/served");
    await context.close();
  });

  test("a click arrives with its data-track attributes", T, async () => {
    const p = await openPage("/click");
    await p.page.click("#buy span");
    await p.page.click("#plain");
    const got = await tail.waitFor(of(p.aid, TOPICS.clicks), { n: 2, what: "clicks" });
    const buy = got.find((r) => r.value.properties.name == "buy-cta");
    assert.ok(buy, "data-track click arrived");
    assert.equal(buy.value.type, "track");
    assert.equal(buy.value.event, "click");
    assert.deepEqual(buy.value.properties, { name: "buy-cta", plan: "pro", seats: "5", tag: "button", text: "Buy now" });
    assert.equal(buy.value.context.page.path, "/click");
    const plain = got.find((r) => r.value.properties.text == "Plain");
    assert.deepEqual(plain.value.properties, { tag: "button", text: "Plain" });
    assert.deepEqual(p.errors, []);
    await p.context.close();
  });

  test("pushState navigation produces a page view", T, async () => {
    const p = await openPage("/spa");
    await tail.waitFor(of(p.aid, TOPICS.pageviews), { what: "first page view" });
    await p.page.evaluate(() => history.pushState({ step: 2 }, "", "/spa/checkout?tab=billing"));
    assert.equal(await p.page.evaluate(() => location.pathname), "/spa/checkout");
    const got = await tail.waitFor((r) => of(p.aid, TOPICS.pageviews)(r) && r.value.context.page.path == "/spa/checkout", {
      what: "SPA page view",
    });
    assert.deepEqual(got[0].value.context.page, {
      url: pages.origin + "/spa/checkout?tab=billing",
      path: "/spa/checkout",
      referrer: p.url,
      title: "E2E /spa",
      search: "?tab=billing",
    });
    // back: popstate
    await p.page.goBack();
    await tail.waitFor(of(p.aid, TOPICS.pageviews), { n: 3, what: "page view after back" });
    await p.context.close();
  });

  test("events queued right before navigating away arrive (beacon on page hide)", T, async () => {
    // Beacons sent by an unloading page are not reported by Playwright's
    // request events: record sendBeacon calls in the page's own storage.
    const p = await openPage("/leave", {
      initScript: () => {
        const send = navigator.sendBeacon.bind(navigator);
        navigator.sendBeacon = (url, data) => {
          const ok = send(url, data);
          const log = JSON.parse(localStorage.getItem("beacons") || "[]");
          log.push({ url, kind: typeof data, size: new Blob([data]).size, ok });
          localStorage.setItem("beacons", JSON.stringify(log));
          return ok;
        };
      },
    });
    await tail.waitFor(of(p.aid, TOPICS.pageviews), { what: "first page view" });
    await until("the first batch to be sent", () => p.requests.length >= 1);
    // Well within the 1 s flush interval: only the page-hide path can send these.
    await p.page.evaluate(() => {
      for (let i = 0; i < 3; i++) window.trackgate.track("Leaving", { i });
      setTimeout(() => (location.href = "/elsewhere"), 0);
    });
    await p.page.waitForURL(/\/elsewhere/);
    const got = await tail.waitFor((r) => of(p.aid, TOPICS.events)(r) && r.value.event == "Leaving", {
      n: 3,
      what: "events sent on page hide",
    });
    assert.deepEqual(got.map((r) => r.value.properties.i).sort(), [0, 1, 2]);
    const beacons = await p.page.evaluate(() => JSON.parse(localStorage.getItem("beacons") || "[]"));
    assert.equal(beacons.length, 1, "one beacon: " + JSON.stringify(beacons));
    assert.equal(beacons[0].url, gateway.url + "/v1/batch");
    assert.equal(beacons[0].kind, "string"); // sent as text/plain: no preflight
    assert.equal(beacons[0].ok, true);
    assert.ok(beacons[0].size < 64 * 1024);
    assert.equal(batchEvents(p.requests).filter((e) => e.event == "Leaving").length, 0, "not sent by fetch");

    // A link click that navigates: its click event rides the same path.
    await p.page.waitForFunction(loaded);
    await p.page.click("#next");
    await p.page.waitForURL(/\/next/);
    const [c] = await tail.waitFor((r) => of(p.aid, TOPICS.clicks)(r) && r.value.properties.tag == "a", { what: "link click" });
    assert.equal(c.value.properties.href, pages.origin + "/next"); // link on the /elsewhere page
    assert.deepEqual(p.errors, []);
    await p.context.close();
  });

  test("after optOut() nothing more arrives, also after a reload", T, async () => {
    const p = await openPage("/optout");
    await tail.waitFor(of(p.aid, TOPICS.pageviews), { what: "page view before opting out" });
    const t0 = Date.now();
    await p.page.evaluate(() => {
      const tg = window.trackgate;
      tg.track("Queued Then Opted Out");
      tg.optOut();
      tg.track("After Opt Out");
      tg.identify("user-after-optout");
      history.pushState({}, "", "/optout/2");
    });
    await p.page.click("#buy");
    assert.equal(await p.page.evaluate(() => window.trackgate.isOptedOut()), true);
    assert.match(await p.page.evaluate(() => document.cookie), /(^|; )tg_optout=1/);
    await until("the opt-out call", () => p.requests.some((r) => r.url.endsWith("/v1/optout")));
    const o = p.requests.find((r) => r.url.endsWith("/v1/optout"));
    assert.deepEqual(JSON.parse(o.body), { writeKey: WRITE_KEY, anonymousId: p.aid });
    // The call had credentials: the gateway's answer set its cookie on its own origin.
    await until("the gateway's opt-out cookie", async () =>
      (await p.context.cookies(gateway.url)).some((c) => c.name == "tg_optout" && c.value == "1"),
    );

    await p.page.reload();
    await p.page.waitForFunction(loaded);
    await p.page.click("#buy");
    await p.page.evaluate(() => window.trackgate.track("After Reload"));
    await sleep(2500); // > flush interval
    assert.deepEqual(
      p.requests.filter((r) => r.at >= t0 && r.url.includes("/v1/batch")),
      [],
      "no batch request after optOut()",
    );
    // A later visitor's page view arriving proves the pipeline was flowing.
    const s = await openPage("/sentinel");
    await tail.waitFor(of(s.aid, TOPICS.pageviews), { what: "sentinel page view" });
    await sleep(500);
    assert.deepEqual(
      tail.find(of(p.aid)).map((r) => r.value.type + ":" + (r.value.event || r.value.context.page.path)),
      ["page:/optout"],
    );
    await s.context.close();
    await p.context.close();
  });

  test("optIn() after optOut(): the gateway's cookie is the proof, and events flow again", T, async () => {
    const p = await openPage("/optin");
    await tail.waitFor(of(p.aid, TOPICS.pageviews), { what: "page view before opting out" });
    await p.page.evaluate(() => window.trackgate.optOut());
    const cookie = async (name) => (await p.context.cookies(gateway.url)).find((c) => c.name == name);
    const gatewayCookie = () => cookie("tg_optout");
    // The page and the gateway share a host (cookies ignore ports), so the SDK's own
    // tg_optout does not show that the gateway answered: its HttpOnly proof cookie does.
    await until("the gateway's opt-out proof cookie", async () => (await cookie("tg_optout_proof")) != null);
    await until("the gateway's opt-out cookie", async () => (await gatewayCookie())?.value == "1");
    await p.page.evaluate(() => window.trackgate.optIn());
    // Accepted only with the cookie (sent along by the credentialed beacon); the answer clears it.
    await until("the opt-in to clear the gateway's cookie", async () => !(await gatewayCookie()));
    await p.page.evaluate(() => window.trackgate.track("After Opt In"));
    const [e] = await tail.waitFor((r) => of(p.aid, TOPICS.events)(r) && r.value.event == "After Opt In", {
      what: "event after opting back in",
    });
    assert.equal(e.headers.source, "web");
    assert.deepEqual(p.errors, []);
    await p.context.close();
  });

  test("with Global Privacy Control on nothing arrives", T, async () => {
    const gpcMarker = marker();
    const p = await openPage("/gpc", {
      m: gpcMarker,
      initScript: () => Object.defineProperty(Navigator.prototype, "globalPrivacyControl", { configurable: true, get: () => true }),
    });
    assert.equal(await p.page.evaluate(() => navigator.globalPrivacyControl), true);
    assert.equal(p.aid, null, "no identifier stored");
    assert.equal(await p.page.evaluate(() => window.trackgate.isOptedOut()), true);
    await p.page.click("#buy");
    await p.page.evaluate(() => {
      window.trackgate.track("GPC Event");
      history.pushState({}, "", "/gpc/2?m=" + new URLSearchParams(location.search).get("m"));
    });
    await sleep(1500);
    await p.page.click("#next"); // page hide
    await p.page.waitForURL(/\/next/);
    await p.page.waitForFunction(loaded);
    await sleep(1500);
    assert.deepEqual(p.requests, [], "the browser sent nothing to the gateway");
    const s = await openPage("/sentinel");
    await tail.waitFor(of(s.aid, TOPICS.pageviews), { what: "sentinel page view" });
    await sleep(500);
    assert.deepEqual(
      tail.find((r) => JSON.stringify(r.value).includes(gpcMarker)),
      [],
    );
    await s.context.close();
    await p.context.close();
  });

  test("with the gateway briefly down, events are delivered after it comes back", T, async () => {
    const p = await openPage("/down");
    await tail.waitFor(of(p.aid, TOPICS.pageviews), { what: "page view before the outage" });
    await gateway.stop();
    await p.page.evaluate(() => {
      for (let i = 0; i < 5; i++) window.trackgate.track("During Outage", { i });
    });
    await until("a failed delivery attempt", () => p.failed.length >= 1);
    await sleep(1000);
    await gateway.start(); // same ports, same broker
    const got = await tail.waitFor((r) => of(p.aid, TOPICS.events)(r) && r.value.event == "During Outage", {
      n: 5,
      timeoutMs: 60_000,
      what: "events sent during the outage",
    });
    assert.deepEqual(got.map((r) => r.value.properties.i).sort(), [0, 1, 2, 3, 4]);
    assert.equal(new Set(got.map((r) => r.value.messageId)).size, 5);
    // The retries carried the same messageIds as the failed attempts.
    const tried = new Set(batchEvents(p.requests).map((e) => e.messageId));
    for (const r of got) assert.ok(tried.has(r.value.messageId));
    await p.context.close();
  });

  test("events queued while the gateway is down survive a reload", T, async () => {
    const p = await openPage("/reload");
    await tail.waitFor(of(p.aid, TOPICS.pageviews), { what: "page view before the outage" });
    await gateway.stop();
    await p.page.evaluate(() => {
      window.trackgate.track("Before Reload", { n: 1 });
      window.trackgate.track("Before Reload", { n: 2 });
    });
    await until("a failed delivery attempt", () => p.failed.length >= 1);
    const stored = await p.page.evaluate(() => JSON.parse(localStorage.getItem("tg_q")).map((e) => e.messageId));
    assert.equal(stored.length, 2);
    await p.page.reload();
    await p.page.waitForFunction(loaded);
    await sleep(1500);
    await gateway.start();
    const got = await tail.waitFor((r) => of(p.aid, TOPICS.events)(r) && r.value.event == "Before Reload", {
      n: 2,
      timeoutMs: 60_000,
      what: "events from before the reload",
    });
    assert.deepEqual(got.map((r) => r.value.messageId).sort(), stored.sort());
    await tail.waitFor(of(p.aid, TOPICS.pageviews), { n: 2, what: "page view of the reloaded page" });
    await p.context.close();
  });

  test("identify: the user id reaches the identities topic and later events", T, async () => {
    const p = await openPage("/identify");
    await p.page.evaluate(() => {
      window.trackgate.identify("user-42", { plan: "team" });
      window.trackgate.track("After Identify");
    });
    const [i] = await tail.waitFor(of(p.aid, TOPICS.identities), { what: "identify" });
    assert.equal(i.value.userId, "user-42");
    assert.deepEqual(i.value.traits, { plan: "team" });
    const [e] = await tail.waitFor(of(p.aid, TOPICS.events), { what: "event after identify" });
    assert.equal(e.value.userId, "user-42");
    await p.context.close();
  });
});
