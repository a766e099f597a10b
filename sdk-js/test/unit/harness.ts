// Fakes for fetch and sendBeacon that record exactly what the SDK handed the
// browser, and a loader that gives each test (and each simulated reload) a
// fresh copy of the SDK module while localStorage and cookies persist.
import { vi } from "vitest";

export type SDK = typeof import("../../src/index");

export interface Call {
  url: string;
  raw: string;
  body: any;
  keepalive?: boolean;
  /** Content-Type the browser derives from the request as made. */
  contentType: string | null;
  init: RequestInit;
}
export interface Beacon {
  url: string;
  type: string;
  size: number;
  body: any;
}
/** What the fake gateway answers: a status, optional headers, or a failure mode. */
export type Reply = number | { status: number; headers?: Record<string, string> } | "network" | "hang";

export const net = {
  fetches: [] as Call[],
  beacons: [] as Beacon[],
  reply: (_c: Call): Reply => 200,
  beaconOk: true,
};

const origPush = history.pushState;
const origReplace = history.replaceState;
let current: SDK | undefined;

export const HOST = "http://127.0.0.1:9000";
export const WK = "wk_test";

export function installFakes() {
  net.fetches = [];
  net.beacons = [];
  net.reply = () => 200;
  net.beaconOk = true;
  globalThis.fetch = vi.fn(async (url: any, init: any = {}) => {
    const raw = init.body as string;
    const c: Call = {
      url: String(url),
      raw,
      body: JSON.parse(raw),
      keepalive: init.keepalive,
      contentType: new Request("http://x/", { method: "POST", body: init.body, headers: init.headers }).headers.get(
        "content-type",
      ),
      init,
    };
    net.fetches.push(c);
    const r = net.reply(c);
    if (r === "network") throw new TypeError("Failed to fetch");
    if (r === "hang") return new Promise<Response>(() => {});
    const { status, headers } = typeof r == "number" ? { status: r, headers: {} } : r;
    return { status, ok: status < 300, headers: new Headers(headers) } as Response;
  }) as any;
  Object.defineProperty(navigator, "sendBeacon", {
    configurable: true,
    writable: true,
    value: vi.fn((url: string, data: BodyInit) => {
      if (!net.beaconOk) return false;
      // What the browser would send: the Content-Type it derives from the
      // data (a string is text/plain;charset=UTF-8), the size in bytes, the text.
      const req = new Request("http://x/", { method: "POST", body: data });
      const type = req.headers.get("content-type")!.split(";")[0];
      net.beacons.push({ url, type, size: 0, body: undefined });
      const b = net.beacons[net.beacons.length - 1];
      pending.push(req.text().then((t) => ((b.size = new Blob([t]).size), (b.body = JSON.parse(t)))));
      return true;
    }),
  });
}
const pending: Promise<unknown>[] = [];
/** Resolves once every beacon body recorded so far has been read. */
export async function beacons(): Promise<Beacon[]> {
  await Promise.all(pending.splice(0));
  return net.beacons;
}

/** Loads a fresh SDK module, as a new page load would. */
export async function load(): Promise<SDK> {
  current?._stop();
  history.pushState = origPush;
  history.replaceState = origReplace;
  vi.resetModules();
  current = await import("../../src/index");
  return current;
}

export function clearCookies() {
  for (const c of document.cookie.split("; ")) {
    const k = c.split("=")[0];
    if (k) document.cookie = k + "=;path=/;max-age=-1";
  }
}

export function teardown() {
  current?._stop();
  current = undefined;
  history.pushState = origPush;
  history.replaceState = origReplace;
  localStorage.clear();
  clearCookies();
  vi.restoreAllMocks();
  vi.useRealTimers();
  delete (navigator as any).globalPrivacyControl;
  delete (document as any).hidden;
  document.body.innerHTML = "";
}

/** The page is hidden (switched away from, left or closed): what the browser signals. */
export function hidePage() {
  Object.defineProperty(document, "hidden", { configurable: true, value: true });
  document.dispatchEvent(new Event("visibilitychange"));
}

/** Every event the fake gateway received through fetch to /v1/batch. */
export const sentEvents = () =>
  net.fetches.filter((c) => c.url.endsWith("/v1/batch")).flatMap((c) => c.body.batch as any[]);

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
