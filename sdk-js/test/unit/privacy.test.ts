import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HOST, WK, beacons, hidePage, installFakes, load, net, sentEvents, teardown } from "./harness";

beforeEach(() => {
  installFakes();
  vi.useFakeTimers();
});
afterEach(() => {
  delete (navigator as any).doNotTrack;
  teardown();
});

const setGPC = (v: boolean) => Object.defineProperty(navigator, "globalPrivacyControl", { configurable: true, value: v });
const setDNT = (v: string) => Object.defineProperty(navigator, "doNotTrack", { configurable: true, value: v });

describe("opt-out", () => {
  it("stops sending at once, clears the queue and tells the gateway", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.identify("u-7");
    tg.track("queued");
    expect(tg.isOptedOut()).toBe(false);
    tg.optOut();
    expect(tg.isOptedOut()).toBe(true);
    expect(JSON.parse(localStorage.getItem("tg_q")!)).toEqual([]);
    tg.track("after");
    tg.page();
    tg.flush();
    hidePage();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sentEvents()).toEqual([]);
    expect(net.fetches).toEqual([]);
    // The gateway is told by a beacon: it carries the browser's cookies for the
    // gateway's origin and the answer's Set-Cookie is stored there.
    const bs = await beacons();
    expect(bs.map((b) => b.url)).toEqual([HOST + "/v1/optout"]);
    expect(bs[0].body).toEqual({ writeKey: WK, anonymousId: localStorage.getItem("tg_aid"), userId: "u-7" });
    expect(bs[0].type).toBe("text/plain");
    expect(document.cookie).toContain("tg_optout=1");
  });

  it("persists across reloads, and optIn reverses it", async () => {
    let tg = await load();
    tg.init({ writeKey: WK, host: HOST });
    tg.optOut();
    net.fetches = [];
    tg = await load();
    tg.init({ writeKey: WK, host: HOST });
    expect(tg.isOptedOut()).toBe(true);
    tg.track("x");
    await vi.advanceTimersByTimeAsync(5000);
    expect(net.fetches).toEqual([]);

    tg.optIn();
    expect(tg.isOptedOut()).toBe(false);
    expect(localStorage.getItem("tg_optout")).toBeNull();
    expect(document.cookie).not.toContain("tg_optout");
    tg.track("y");
    await vi.advanceTimersByTimeAsync(1000);
    const bs = await beacons();
    expect(bs.map((b) => b.url)).toEqual([HOST + "/v1/optout", HOST + "/v1/optin"]);
    expect(bs[1].body.anonymousId).toBe(sentEvents()[0].anonymousId);
    expect(bs[1].body.userId).toBeUndefined();
    expect(net.fetches.map((c) => c.url)).toEqual([HOST + "/v1/batch"]);
    expect(sentEvents().map((e) => e.event)).toEqual(["y"]);
  });

  it("the opt-out cookie alone is enough (localStorage wiped)", async () => {
    let tg = await load();
    tg.init({ writeKey: WK, host: HOST });
    tg.optOut();
    localStorage.clear();
    net.fetches = [];
    tg = await load();
    tg.init({ writeKey: WK, host: HOST });
    tg.track("x");
    await vi.advanceTimersByTimeAsync(5000);
    expect(net.fetches).toEqual([]);
  });

  it("optOut before init only sets the flag", async () => {
    const tg = await load();
    tg.optOut();
    expect(net.fetches).toEqual([]);
    expect(await beacons()).toEqual([]);
    tg.init({ writeKey: WK, host: HOST });
    await vi.advanceTimersByTimeAsync(5000);
    expect(net.fetches).toEqual([]);
  });
});

describe("Global Privacy Control and Do Not Track", () => {
  it("with GPC on nothing is sent or stored", async () => {
    setGPC(true);
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST });
    tg.track("x");
    tg.identify("u");
    history.pushState({}, "", "/gpc-next");
    document.body.innerHTML = "<button id=b>b</button>";
    document.getElementById("b")!.click();
    tg.flush();
    hidePage();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(net.fetches).toEqual([]);
    expect(await beacons()).toEqual([]);
    expect(tg.isOptedOut()).toBe(true);
    expect(localStorage.getItem("tg_aid")).toBeNull();
    expect(localStorage.getItem("tg_q")).toBeNull();
    expect(localStorage.getItem("tg_uid")).toBeNull();
    expect(document.cookie).toBe("");
  });

  it("with DNT=1 nothing is sent", async () => {
    setDNT("1");
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST });
    tg.track("x");
    await vi.advanceTimersByTimeAsync(10_000);
    expect(net.fetches).toEqual([]);
  });

  it("respectGPC / respectDNT false: events are sent and report the signals", async () => {
    setGPC(true);
    setDNT("1");
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false, respectGPC: false, respectDNT: false });
    tg.track("x");
    await vi.advanceTimersByTimeAsync(1000);
    expect(sentEvents()[0].context.privacy).toEqual({ gpc: true, dnt: true });
  });

  it("respecting only one signal still blocks on it", async () => {
    setDNT("1");
    let tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false, respectGPC: false });
    tg.track("x");
    await vi.advanceTimersByTimeAsync(1000);
    expect(net.fetches).toEqual([]);
    setDNT("0");
    setGPC(true);
    tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false, respectDNT: false });
    tg.track("x");
    await vi.advanceTimersByTimeAsync(1000);
    expect(net.fetches).toEqual([]);
  });
});
