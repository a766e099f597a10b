// The copy-paste snippet: a stub queues calls made before the SDK loads; the
// built IIFE (dist/trackgate.min.js, built by the global setup) replays them.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HOST, WK, installFakes, net, sentEvents, teardown } from "./harness";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const html = readFileSync(join(root, "snippet.html"), "utf8");
const iife = readFileSync(join(root, "dist", "trackgate.min.js"), "utf8");
/** The snippet's script, pointed at a test host. */
const snippet = html
  .match(/<script>([\s\S]*?)<\/script>/)![1]
  .replace("https://YOUR_GATEWAY_HOST/sdk/trackgate.min.js", "http://127.0.0.1:8000/sdk/trackgate.min.js")
  .replace("YOUR_WRITE_KEY", WK)
  .replace("https://YOUR_GATEWAY_HOST", HOST);
const run = (code: string) => (0, eval)(code);

beforeEach(() => {
  installFakes();
  vi.useFakeTimers();
  delete (window as any).trackgate;
});
afterEach(() => {
  document.head.innerHTML = "";
  teardown();
});

describe("snippet", () => {
  it("queues calls before the SDK loads and the SDK replays them, init first", async () => {
    run(snippet);
    const stub = (window as any).trackgate;
    expect(Array.isArray(stub)).toBe(true);
    const s = document.head.querySelector("script")!;
    expect(s.src).toBe("http://127.0.0.1:8000/sdk/trackgate.min.js");
    expect(s.async).toBe(true);
    s.remove();
    stub.identify("u-1", { plan: "free" });
    stub.track("Early Event", { a: 1 });
    stub.page("Landing");
    expect(stub.isOptedOut()).toBe(false);
    await vi.advanceTimersByTimeAsync(5000);
    expect(net.fetches).toEqual([]); // nothing before the SDK is there

    run(iife); // the script has loaded
    const tg = (window as any).trackgate;
    expect(Array.isArray(tg)).toBe(false);
    expect(Object.keys(tg).sort()).toEqual(
      ["flush", "identify", "init", "isOptedOut", "optIn", "optOut", "page", "reset", "track"],
    );
    await vi.advanceTimersByTimeAsync(1000);
    const ev = sentEvents();
    expect(ev.map((e) => e.type + ":" + (e.event ?? e.name ?? ""))).toEqual([
      "page:", // automatic page view from init
      "identify:",
      "track:Early Event",
      "page:Landing",
    ]);
    expect(ev[2]).toMatchObject({ userId: "u-1", properties: { a: 1 } });
    expect(net.fetches[0].url).toBe(HOST + "/v1/batch");
    expect(net.fetches[0].body.writeKey).toBe(WK);

    // after load the real API answers directly
    tg.track("Later");
    await vi.advanceTimersByTimeAsync(1000);
    expect(sentEvents().slice(-1)[0].event).toBe("Later");

    // running the snippet again (or loading the SDK twice) changes nothing
    run(snippet);
    expect((window as any).trackgate).toBe(tg);
    expect(document.head.querySelector("script")).toBeNull();
    tg.optOut();
    expect(tg.isOptedOut()).toBe(true);
  });

  it("the stub answers isOptedOut from the opt-out cookie", () => {
    document.cookie = "tg_optout=1;path=/";
    run(snippet);
    expect((window as any).trackgate.isOptedOut()).toBe(true);
  });
});
