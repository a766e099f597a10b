// End-to-end harness: a real Tansu broker, the real trackgate gateway, a
// live `trackgate tail` reader of the raw topics, a tiny page server, and
// Debian's Chromium driven by playwright-core.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const SDK_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const WRITE_KEY = "wk_test";
export const TOPICS = {
  pageviews: "tracking.raw.pageviews",
  clicks: "tracking.raw.clicks",
  events: "tracking.raw.events",
  identities: "tracking.raw.identities",
  invalid: "tracking.raw.invalid",
};
export const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function gatewayBin() {
  return process.env.TRACKGATE_BIN || join(SDK_ROOT, "..", "target", "debug", "trackgate");
}

export function tansuBin() {
  if (process.env.TANSU_BIN) return process.env.TANSU_BIN;
  const home = process.env.HOME && join(process.env.HOME, ".cargo", "bin", "tansu");
  if (home && existsSync(home)) return home;
  for (const d of (process.env.PATH || "").split(delimiter)) {
    if (d && existsSync(join(d, "tansu"))) return join(d, "tansu");
  }
  return undefined;
}

/** What is missing to run the suite, as human-readable lines. */
export function missingPrerequisites() {
  const out = [];
  if (!existsSync(gatewayBin())) out.push(`gateway binary not found at ${gatewayBin()} (build it: cargo build --bin trackgate, or set TRACKGATE_BIN)`);
  if (!tansuBin()) out.push("tansu broker not found (cargo install tansu --version 0.6.0 --features dynostore, or set TANSU_BIN)");
  if (!existsSync(CHROMIUM)) out.push(`chromium not found at ${CHROMIUM} (bash scripts/ensure-chromium.sh)`);
  if (!existsSync(join(SDK_ROOT, "dist", "trackgate.min.js"))) out.push("dist/trackgate.min.js missing (npm run build)");
  return out;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(what, fn, timeoutMs = 30_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? ": " + last.message : ""}`);
}

function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

// Started processes die with the test process, however it ends.
const children = new Set();
const killAll = () => {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {}
  }
};
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"]) process.once(sig, () => (killAll(), process.exit(130)));

/** A child process whose output is kept (last lines) for failure messages. */
function run(name, bin, args, env = {}) {
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  const log = [];
  const keep = (buf) => {
    for (const l of buf.toString().split("\n")) if (l) log.push(l);
    if (log.length > 200) log.splice(0, log.length - 200);
  };
  child.stderr.on("data", keep);
  const exited = new Promise((r) => child.once("exit", (code, sig) => (children.delete(child), r({ code, sig }))));
  return { name, child, log, exited };
}

async function stop(p, graceMs = 15_000) {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill("SIGTERM");
  const t = setTimeout(() => p.child.kill("SIGKILL"), graceMs);
  await p.exited;
  clearTimeout(t);
}

export class Broker {
  async start() {
    this.port = await freePort();
    const url = `tcp://127.0.0.1:${this.port}`;
    this.p = run("tansu", tansuBin(), ["broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"], {
      RUST_LOG: "warn",
    });
    this.p.child.stdout.resume();
    await waitFor(`tansu on port ${this.port}`, () => tcpOpen(this.port));
    return this;
  }
  get addr() {
    return `127.0.0.1:${this.port}`;
  }
  stop() {
    return this.p && stop(this.p);
  }
}

export class Gateway {
  constructor(broker, pageOrigin) {
    this.broker = broker;
    this.pageOrigin = pageOrigin;
    this.dir = mkdtempSync(join(tmpdir(), "trackgate-e2e-"));
  }
  async start() {
    if (!this.port) {
      this.port = await freePort();
      this.adminPort = await freePort();
      this.config = join(this.dir, "trackgate.toml");
      writeFileSync(
        this.config,
        `[server]
listen = "127.0.0.1:${this.port}"
admin_listen = "127.0.0.1:${this.adminPort}"
shutdown_grace_ms = 1000

[kafka]
brokers = "${this.broker.addr}"
linger_ms = 1

[[sources]]
id = "web"
write_key = "${WRITE_KEY}"
allowed_origins = ["${this.pageOrigin}"]
`,
      );
    }
    this.p = run("trackgate", gatewayBin(), ["--config", this.config], { TRACKGATE_LOG: "info,librdkafka=warn", NO_COLOR: "1" });
    this.p.child.stdout.on("data", () => {});
    await waitFor(
      `gateway /readyz on ${this.adminPort}`,
      async () => {
        if (this.p.child.exitCode !== null) throw new Error("gateway exited:\n" + this.p.log.join("\n"));
        return (await fetch(`http://127.0.0.1:${this.adminPort}/readyz`)).status == 200;
      },
      60_000,
    );
    return this;
  }
  get url() {
    return `http://127.0.0.1:${this.port}`;
  }
  async stop() {
    if (this.p) await stop(this.p);
  }
  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs `trackgate tail` on every raw topic for the whole suite; records accumulate. */
export class Tail {
  constructor(broker) {
    this.broker = broker;
    this.records = [];
    this.waiters = new Set();
  }
  start() {
    const args = ["tail", "--brokers", this.broker.addr, "--from-beginning", "--format", "json"];
    for (const t of Object.values(TOPICS)) args.push("--topic", t);
    this.p = run("tail", gatewayBin(), args, { NO_COLOR: "1" });
    let buf = "";
    this.p.child.stdout.on("data", (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.trim()) continue;
        try {
          this.records.push(JSON.parse(line));
        } catch {
          this.p.log.push("unparsable: " + line);
        }
      }
      for (const w of this.waiters) w();
    });
    return this;
  }
  /** Records matching `pred`. */
  find(pred) {
    return this.records.filter(pred);
  }
  /** Waits until at least `n` records match; returns them. */
  async waitFor(pred, { n = 1, timeoutMs = 30_000, what = "records" } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.find(pred);
      if (got.length >= n) return got;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${n} ${what}; got ${got.length}. ` +
            `All records so far: ${this.records.length}. tail stderr: ${this.p.log.slice(-5).join(" | ")}`,
        );
      }
      await new Promise((r) => {
        const w = () => (this.waiters.delete(w), clearTimeout(t), r());
        const t = setTimeout(w, Math.min(left, 500));
        this.waiters.add(w);
      });
    }
  }
  stop() {
    return this.p && stop(this.p, 3000);
  }
}

/**
 * Serves the built SDK and test pages. A page is the real snippet
 * (snippet.html) pointing at the gateway, with init options from the `o`
 * query parameter (JSON), plus a link, a data-track button and a plain button.
 */
export async function startPageServer(getGatewayUrl) {
  const snippet = readFileSync(join(SDK_ROOT, "snippet.html"), "utf8");
  const script = snippet.match(/<script>([\s\S]*?)<\/script>/)[1];
  const port = await freePort();
  const server = createServer((req, res) => {
    const u = new URL(req.url, `http://127.0.0.1:${port}`);
    if (u.pathname == "/sdk/trackgate.min.js") {
      const delay = Number(u.searchParams.get("delay") || 0);
      setTimeout(() => {
        res.writeHead(200, { "content-type": "text/javascript", "cache-control": "no-store" });
        res.end(readFileSync(join(SDK_ROOT, "dist", "trackgate.min.js")));
      }, delay);
      return;
    }
    if (u.pathname == "/favicon.ico") return res.writeHead(404).end();
    const opts = { writeKey: WRITE_KEY, host: getGatewayUrl(), ...JSON.parse(u.searchParams.get("o") || "{}") };
    const early = u.searchParams.get("early"); // a track call made before the SDK has loaded
    // ?fromGateway=1: the snippet loads the SDK the gateway itself serves.
    const sdkUrl = u.searchParams.get("fromGateway")
      ? getGatewayUrl() + "/sdk/trackgate.min.js"
      : "/sdk/trackgate.min.js?delay=" + (u.searchParams.get("sdkDelay") || 0);
    const code = script
      .replace("https://YOUR_GATEWAY_HOST/sdk/trackgate.min.js", sdkUrl)
      .replace(/trackgate\.init\(\{[^)]*\}\);/, `trackgate.init(${JSON.stringify(opts)});`)
      .concat(early ? `\ntrackgate.track(${JSON.stringify(early)}, {queuedBeforeLoad: true});\n` : "");
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    res.end(`<!doctype html>
<html><head><meta charset="utf-8"><title>E2E ${u.pathname}</title>
<script>${code}</script></head>
<body>
<h1>trackgate e2e</h1>
<a id="next" href="/next${u.search}">Next page</a>
<button id="buy" data-track="buy-cta" data-track-plan="pro" data-track-seats="5"><span>Buy now</span></button>
<button id="plain">Plain</button>
</body></html>`);
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { server, port, origin: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}
