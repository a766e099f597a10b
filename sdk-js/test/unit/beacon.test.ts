import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HOST, WK, beacons, hidePage, installFakes, load, net, sentEvents, teardown } from "./harness";

beforeEach(() => {
  installFakes();
  vi.useFakeTimers();
});
afterEach(() => {
  delete (document as any).hidden;
  teardown();
});

describe("page hide: sendBeacon", () => {
  it("a hidden page hands the queue to sendBeacon as text/plain", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.track("a");
    tg.track("b");
    hidePage();
    const bs = await beacons();
    expect(bs).toHaveLength(1);
    expect(bs[0].url).toBe(HOST + "/v1/batch");
    expect(bs[0].type).toBe("text/plain");
    expect(bs[0].body.writeKey).toBe(WK);
    expect(bs[0].body.sentAt).toMatch(/Z$/);
    expect(bs[0].body.batch.map((e: any) => e.event)).toEqual(["a", "b"]);
    expect(localStorage.getItem("tg_q")).toBe("[]");
    await vi.advanceTimersByTimeAsync(5000);
    expect(net.fetches).toEqual([]); // not sent twice
  });

  it("visibilitychange to hidden does the same", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.track("a");
    document.dispatchEvent(new Event("visibilitychange")); // still visible: nothing
    expect(await beacons()).toEqual([]);
    Object.defineProperty(document, "hidden", { configurable: true, value: true });
    document.dispatchEvent(new Event("visibilitychange"));
    expect((await beacons()).flatMap((b) => b.body.batch.map((e: any) => e.event))).toEqual(["a"]);
  });

  it("chunks the queue so every beacon body is under 64 KB", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false, flushAt: 1000 });
    const pad = "x".repeat(1500);
    for (let i = 0; i < 200; i++) tg.track("big", { i, pad });
    hidePage();
    const bs = await beacons();
    expect(bs.length).toBeGreaterThan(4);
    for (const b of bs) expect(b.size).toBeLessThan(64 * 1024);
    const got = bs.flatMap((b) => b.body.batch.map((e: any) => e.properties.i));
    expect(got).toEqual([...Array(200).keys()]);
  });

  it("a refused beacon leaves its events in storage for the next visit", async () => {
    let tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    net.beaconOk = false;
    tg.track("a");
    hidePage();
    expect(net.fetches).toEqual([]);
    expect(JSON.parse(localStorage.getItem("tg_q")!).map((e: any) => e.event)).toEqual(["a"]);
    // the next visit sends it
    delete (document as any).hidden;
    tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    await vi.advanceTimersByTimeAsync(0);
    expect(sentEvents().map((e) => e.event)).toEqual(["a"]);
  });

  it("while retrying after failures, keeps events in storage instead of beaconing", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    net.reply = () => 503;
    tg.track("a");
    await vi.advanceTimersByTimeAsync(1000); // failed once, now waiting
    tg.track("b");
    hidePage();
    expect(await beacons()).toEqual([]);
    expect(JSON.parse(localStorage.getItem("tg_q")!).map((e: any) => e.event)).toEqual(["a", "b"]);
  });

  it("does not beacon the batch already in flight", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    net.reply = () => "hang";
    tg.track("in-flight");
    await vi.advanceTimersByTimeAsync(1000);
    tg.track("queued");
    hidePage();
    const bs = await beacons();
    expect(bs.flatMap((b) => b.body.batch.map((e: any) => e.event))).toEqual(["queued"]);
  });

  it("does nothing with an empty queue", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    hidePage();
    expect(await beacons()).toEqual([]);
    expect(net.fetches).toEqual([]);
  });
});
