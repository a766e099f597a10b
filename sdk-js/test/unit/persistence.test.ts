import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HOST, WK, installFakes, load, net, sentEvents, teardown } from "./harness";

beforeEach(() => {
  installFakes();
  vi.useFakeTimers();
});
afterEach(teardown);

describe("persistence", () => {
  it("events unsent before a reload are delivered after it", async () => {
    let tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    net.reply = () => "network"; // offline
    tg.track("one");
    tg.track("two");
    await vi.advanceTimersByTimeAsync(5000);
    const tried = sentEvents().map((e) => e.messageId);
    expect(tried.length).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(localStorage.getItem("tg_q")!)).toHaveLength(2);

    // reload, back online
    net.fetches = [];
    net.reply = () => 200;
    tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.track("three");
    await vi.advanceTimersByTimeAsync(1000);
    const got = sentEvents();
    expect(got.map((e) => e.event)).toEqual(["one", "two", "three"]);
    expect(got.slice(0, 2).map((e) => e.messageId)).toEqual(tried.slice(0, 2)); // same ids: deduplicable
    expect(localStorage.getItem("tg_q")).toBe("[]");
  });

  it("the stored queue is bounded: the oldest events are dropped", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    net.reply = () => "hang"; // one batch stuck in flight, the rest waits
    for (let i = 0; i < 520; i++) tg.track("e", { i });
    const stored = JSON.parse(localStorage.getItem("tg_q")!);
    expect(stored).toHaveLength(500);
    expect(stored[0].properties.i).toBe(20);
    expect(stored[499].properties.i).toBe(519);
  });

  it("maxQueue is configurable", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false, maxQueue: 5, flushAt: 100 });
    net.reply = () => "network";
    for (let i = 0; i < 8; i++) tg.track("e", { i });
    expect(JSON.parse(localStorage.getItem("tg_q")!).map((e: any) => e.properties.i)).toEqual([3, 4, 5, 6, 7]);
  });

  it("keeps the anonymousId across reloads", async () => {
    let tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.track("a");
    tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.track("b");
    await vi.advanceTimersByTimeAsync(1000);
    const [a, b] = sentEvents();
    expect(a.anonymousId).toBe(b.anonymousId);
    expect(localStorage.getItem("tg_aid")).toBe(a.anonymousId);
  });

  it("falls back to a first-party cookie when localStorage is unavailable", async () => {
    // As in a sandboxed frame or with site data blocked: touching localStorage throws.
    const desc = Object.getOwnPropertyDescriptor(globalThis, "localStorage")!;
    Object.defineProperty(globalThis, "localStorage", {
      configurable: true,
      get() {
        throw new DOMException("denied", "SecurityError");
      },
    });
    try {
      let tg = await load();
      tg.init({ writeKey: WK, host: HOST, autoPage: false });
      tg.identify("u-9");
      await vi.advanceTimersByTimeAsync(1000);
      const [first] = sentEvents();
      expect(document.cookie).toContain("tg_aid=" + first.anonymousId);
      expect(document.cookie).toContain("tg_uid=u-9");
      tg = await load();
      tg.init({ writeKey: WK, host: HOST, autoPage: false });
      tg.track("again");
      await vi.advanceTimersByTimeAsync(1000);
      const again = sentEvents()[1];
      expect(again).toMatchObject({ anonymousId: first.anonymousId, userId: "u-9" });
      tg.reset();
      expect(document.cookie).not.toContain("tg_uid");
      expect(document.cookie).not.toContain("tg_aid");
    } finally {
      Object.defineProperty(globalThis, "localStorage", desc);
    }
  });
});
