// The live inspector (admin listener, /inspect) in real Chromium: events sent
// to the gateway appear on the page as written to Kafka, within a second;
// rejected events with their reason; privacy rules that fired; filters,
// pause/resume and the per-source sparkline. A screenshot of the page is
// kept as a test artifact (target/artifacts/inspector.png).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { Broker, CHROMIUM, CHROMIUM_ARGS, Gateway, SDK_ROOT, TOPICS, Tail, WRITE_KEY, missingPrerequisites, sleep } from "./harness.mjs";

const SKIP = process.env.TRACKGATE_E2E_SKIP === "1";
const T = { timeout: 120_000 };
const ARTIFACTS = join(SDK_ROOT, "..", "target", "artifacts");

let broker, gateway, tail, browser, context, page;

/** Posts one batch to the gateway as a server would (no Origin). */
async function send(events) {
  const r = await fetch(gateway.url + "/v1/batch", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Basic " + Buffer.from(WRITE_KEY + ":").toString("base64") },
    body: JSON.stringify({ batch: events }),
  });
  const text = await r.text();
  assert.equal(r.status, 200, text);
  return JSON.parse(text);
}

/** Rows of the event table as text. */
const rows = () => page.$$eval("#events tr.ev", (trs) => trs.map((tr) => tr.innerText));

describe("live inspector in Chromium", { skip: SKIP && "TRACKGATE_E2E_SKIP=1" }, () => {
  before(async () => {
    const missing = missingPrerequisites();
    if (missing.length) throw new Error("end-to-end prerequisites missing:\n  " + missing.join("\n  "));
    broker = await new Broker().start();
    gateway = await new Gateway(broker, "http://127.0.0.1:1").start();
    tail = new Tail(broker).start();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    context = await browser.newContext({ viewport: { width: 1400, height: 820 } });
    page = await context.newPage();
    await page.goto(`http://127.0.0.1:${gateway.adminPort}/inspect`);
    await page.waitForSelector("#status.live");
  }, T);

  after(async () => {
    await browser?.close();
    await tail?.stop();
    await gateway?.stop();
    gateway?.cleanup();
    await broker?.stop();
  }, T);

  test("an event sent to the gateway appears within a second, as written to Kafka", T, async () => {
    const visitor = "v-" + randomUUID().slice(0, 8);
    const name = "Inspector Check " + visitor;
    const t0 = Date.now();
    await send([{ type: "track", event: name, anonymousId: visitor, properties: { plan: "pro" } }]);
    await page.waitForSelector(`#events tr.ev:has-text("${name}")`, { timeout: 1000 });
    const shownAfter = Date.now() - t0;
    assert.ok(shownAfter <= 1000, `shown after ${shownAfter} ms`);
    const [row] = (await rows()).filter((r) => r.includes(name));
    assert.match(row, /track/);
    assert.match(row, /tracking\.raw\.events/);
    assert.ok(row.includes(visitor));
    // The page shows the record Kafka holds: the same messageId and receivedAt.
    const [rec] = await tail.waitFor((r) => r.topic == TOPICS.events && r.value.anonymousId == visitor, { what: "the record" });
    await page.click(`#events tr.ev:has-text("${name}")`);
    const detail = JSON.parse(await page.textContent("#events tr.detail pre"));
    assert.deepEqual(detail, rec.value);
  });

  test("privacy rules that fired and rejected events with their reason are shown", T, async () => {
    const visitor = "v-" + randomUUID().slice(0, 8);
    await send([
      { type: "track", event: "Contact " + visitor, anonymousId: visitor, properties: { note: "write to jane.doe@example.com" } },
      { type: "track", anonymousId: visitor + "-bad" }, // no event name: rejected
    ]);
    const row = page.locator(`#events tr.ev:has-text("Contact ${visitor}")`);
    await row.waitFor({ timeout: 5000 });
    assert.match(await row.locator("td").last().innerText(), /email/);
    assert.ok(!(await row.innerText()).includes("jane.doe@example.com"));
    const rejected = page.locator(`#events tr.rejected:has-text("missing_event_name")`).first();
    await rejected.waitFor({ timeout: 5000 });
  });

  test("filters, pause and resume, and the per-source sparkline", T, async () => {
    const a = "v-" + randomUUID().slice(0, 8), b = "v-" + randomUUID().slice(0, 8);
    await send([
      { type: "page", name: "Filter A", anonymousId: a },
      { type: "page", name: "Filter B", anonymousId: b },
    ]);
    await page.waitForSelector(`#events tr.ev:has-text("Filter B")`, { timeout: 5000 });
    await page.fill("#f-visitor", a);
    let shown = await rows();
    assert.ok(shown.some((r) => r.includes("Filter A")));
    assert.ok(!shown.some((r) => r.includes("Filter B")));
    await page.fill("#f-visitor", "");
    await page.selectOption("#f-type", "page");
    shown = await rows();
    assert.ok(shown.length > 0 && shown.every((r) => /\bpage\b/.test(r)), shown.join("\n"));
    await page.selectOption("#f-type", "");

    await page.click("#pause");
    await page.waitForSelector("#status.paused");
    await send([{ type: "track", event: "While Paused", anonymousId: a }]);
    await tail.waitFor((r) => r.value.event == "While Paused", { what: "the paused-period event in Kafka" });
    await sleep(300);
    assert.ok(!(await rows()).some((r) => r.includes("While Paused")), "not shown while paused");
    await page.click("#pause");
    await page.waitForSelector(`#events tr.ev:has-text("While Paused")`, { timeout: 1000 });

    // One stats message per second draws the source's rate.
    await page.waitForSelector("#sources .src svg polyline", { timeout: 5000 });
    assert.match(await page.textContent("#sources"), /web/);
    for (let i = 0; i < 5; i++) {
      await send(Array.from({ length: 20 }, (_, n) => ({ type: "track", event: "Load", anonymousId: a, properties: { n } })));
      await sleep(250);
    }
    await page.waitForFunction(() => /[1-9][0-9.]*\/s/.test(document.querySelector("#sources").textContent), null, { timeout: 5000 });
    // A varied last screenful for the screenshot.
    await send([
      { type: "identify", userId: "user-42", anonymousId: a, traits: { plan: "team" } },
      { type: "track", event: "Signed Up", anonymousId: a, properties: { plan: "pro", contact: "jane.doe@example.com" } },
      { type: "track", anonymousId: a },
      { type: "page", name: "Pricing", anonymousId: b, context: { page: { path: "/pricing" } } },
    ]);
    await page.waitForSelector(`#events tr.ev:has-text("Pricing")`, { timeout: 5000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "inspector.png") });
    // What the page got is counted (the ticker publishes once per second).
    const metric = async (name) => {
      const text = await (await fetch(`http://127.0.0.1:${gateway.adminPort}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(name));
      return line ? Number(line.split(" ").pop()) : 0;
    };
    const deadline = Date.now() + 5000;
    while ((await metric('trackgate_inspector_messages_total{result="sent"}')) < 100 && Date.now() < deadline) await sleep(200);
    assert.ok((await metric('trackgate_inspector_messages_total{result="sent"}')) >= 100);
    assert.equal(await metric("trackgate_inspector_clients"), 1);
  });
});
