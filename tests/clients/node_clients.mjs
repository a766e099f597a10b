// Segment's and RudderStack's Node.js libraries, unchanged, pointed at the
// gateway. Run by tests/clients.rs: `node node_clients.mjs RUN_ID`, with
// TRACKGATE_URL and TRACKGATE_WRITE_KEY in the environment.
//
// Each library sends a track, a page and an identify per delivery mode and
// flushes; one JSON line per mode tells the Rust side which visitor to look
// for in Kafka, with the errors the library reported.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Analytics } from "@segment/analytics-node";
import RudderAnalytics from "@rudderstack/rudder-sdk-node";

const HERE = dirname(fileURLToPath(import.meta.url));
const version = (pkg) => JSON.parse(readFileSync(join(HERE, "node_modules", pkg, "package.json"), "utf8")).version;
const [RUN_ID] = process.argv.slice(2);
const URL = process.env.TRACKGATE_URL;
const KEY = process.env.TRACKGATE_WRITE_KEY;
const out = (o) => console.log(JSON.stringify(o));

async function segment() {
  const visitor = `segment-node-${RUN_ID}`;
  const errors = [];
  const a = new Analytics({ writeKey: KEY, host: URL, flushAt: 3, flushInterval: 200, maxRetries: 2 });
  a.on("error", (e) => errors.push(String(e?.reason ?? e)));
  const userId = `user-${visitor}`;
  a.track({ userId, anonymousId: visitor, event: "Order Completed", properties: { total: 12.5, run: RUN_ID } });
  a.page({ userId, anonymousId: visitor, name: "Install", properties: { run: RUN_ID } });
  a.identify({ userId, anonymousId: visitor, traits: { plan: "pro" } });
  await a.closeAndFlush({ timeout: 20_000 });
  out({ client: "@segment/analytics-node", version: version("@segment/analytics-node"), mode: "batch", visitor, events: 3, errors });
}

async function rudderstack(mode, gzip) {
  const visitor = `rudder-node-${mode}-${RUN_ID}`;
  const errors = [];
  const a = new RudderAnalytics(KEY, {
    dataPlaneUrl: URL,
    flushAt: 3,
    flushInterval: 200,
    gzip,
    logLevel: "error",
    errorHandler: (e) => errors.push(String(e?.response?.status ?? e)),
  });
  const userId = `user-${visitor}`;
  a.track({ userId, anonymousId: visitor, event: "Order Completed", properties: { total: 12.5, run: RUN_ID } });
  a.page({ userId, anonymousId: visitor, name: "Install", properties: { run: RUN_ID } });
  a.identify({ userId, anonymousId: visitor, traits: { plan: "pro" } });
  await a.flush();
  out({ client: "@rudderstack/rudder-sdk-node", version: version("@rudderstack/rudder-sdk-node"), mode, visitor, events: 3, errors });
}

await segment();
await rudderstack("batch+gzip", true);
await rudderstack("batch", false);
