import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HOST, ISO, UUID, WK, beacons, installFakes, load, net, sentEvents, teardown } from "./harness";

beforeEach(() => {
  installFakes();
  vi.useFakeTimers();
});
afterEach(teardown);

describe("queue and batching", () => {
  it("flushes on the timer, about 1 s after the first event", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.track("a");
    tg.track("b", { n: 2 });
    await vi.advanceTimersByTimeAsync(900);
    expect(net.fetches).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(150);
    expect(net.fetches).toHaveLength(1);
    const c = net.fetches[0];
    expect(c.url).toBe(HOST + "/v1/batch");
    expect(c.init.method).toBe("POST");
    expect(c.contentType).toMatch(/^text\/plain/);
    expect(c.body.writeKey).toBe(WK);
    expect(c.body.sentAt).toMatch(ISO);
    expect(c.body.batch.map((e: any) => e.event)).toEqual(["a", "b"]);
    expect(c.body.batch[1].properties).toEqual({ n: 2 });
  });

  it("flushes at once when 20 events are queued", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    for (let i = 0; i < 19; i++) tg.track("e", { i });
    await vi.advanceTimersByTimeAsync(0);
    expect(net.fetches).toHaveLength(0);
    tg.track("e", { i: 19 });
    await vi.advanceTimersByTimeAsync(0);
    expect(net.fetches).toHaveLength(1);
    expect(net.fetches[0].body.batch.map((e: any) => e.properties.i)).toEqual([...Array(20).keys()]);
    // queue drained: nothing more goes out
    await vi.advanceTimersByTimeAsync(5000);
    expect(net.fetches).toHaveLength(1);
  });

  it("honours flushAt and flushInterval", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false, flushAt: 3, flushInterval: 5000 });
    tg.track("a");
    await vi.advanceTimersByTimeAsync(4000);
    expect(net.fetches).toHaveLength(0);
    tg.track("b");
    tg.track("c");
    await vi.advanceTimersByTimeAsync(0);
    expect(sentEvents().map((e) => e.event)).toEqual(["a", "b", "c"]);
  });

  it("builds complete events", async () => {
    document.title = "Start page";
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.track("Signed Up", { plan: "pro" });
    tg.identify("u-42", { email: "a@b.c" });
    tg.page("Pricing", { tier: 1 });
    tg.page({ onlyProps: true });
    await vi.advanceTimersByTimeAsync(1000);
    const [t, i, p, p2] = sentEvents();
    expect(t).toMatchObject({ type: "track", event: "Signed Up", properties: { plan: "pro" } });
    expect(t.messageId).toMatch(UUID);
    expect(t.timestamp).toMatch(ISO);
    expect(t.anonymousId).toMatch(UUID);
    expect(t.userId).toBeUndefined();
    expect(t.context).toEqual({
      page: {
        url: "http://127.0.0.1:8000/start?q=1",
        path: "/start",
        referrer: "",
        title: "Start page",
        search: "?q=1",
      },
      library: { name: "trackgate-js", version: expect.stringMatching(/^\d+\.\d+\.\d+/) },
      locale: navigator.language,
      screen: { width: screen.width, height: screen.height },
      privacy: { gpc: false, dnt: false },
    });
    expect(i).toMatchObject({ type: "identify", userId: "u-42", traits: { email: "a@b.c" }, anonymousId: t.anonymousId });
    expect(p).toMatchObject({ type: "page", name: "Pricing", properties: { tier: 1 }, userId: "u-42" });
    expect(p2).toMatchObject({ type: "page", properties: { onlyProps: true } });
    expect(p2.name).toBeUndefined();
    expect(new Set(sentEvents().map((e) => e.messageId)).size).toBe(4);
  });

  it("sends nothing before init and ignores a second init", async () => {
    const tg = await load();
    tg.track("early");
    tg.page();
    tg.identify("u");
    tg.flush();
    await vi.advanceTimersByTimeAsync(3000);
    expect(net.fetches).toHaveLength(0);
    expect(localStorage.getItem("tg_aid")).toBeNull();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.init({ writeKey: "other", host: "http://elsewhere" });
    tg.track("late");
    await vi.advanceTimersByTimeAsync(1000);
    expect(net.fetches.map((c) => c.url)).toEqual([HOST + "/v1/batch"]);
    expect(sentEvents().map((e) => e.event)).toEqual(["late"]);
    expect(net.fetches[0].body.writeKey).toBe(WK);
  });

  it("uses the page's own origin when no host is given", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, autoPage: false });
    tg.track("x");
    await vi.advanceTimersByTimeAsync(1000);
    expect(net.fetches[0].url).toBe("/v1/batch");
  });

  it("path moves every request under another API path", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, path: "/collect/v1", autoPage: false });
    tg.track("x");
    await vi.advanceTimersByTimeAsync(1000);
    expect(net.fetches.map((c) => c.url)).toEqual([HOST + "/collect/v1/batch"]);
    tg.optOut();
    expect((await beacons()).map((b) => b.url)).toEqual([HOST + "/collect/v1/optout"]);
  });

  it("flush() sends at once", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.track("x");
    tg.flush();
    await vi.advanceTimersByTimeAsync(0);
    expect(sentEvents().map((e) => e.event)).toEqual(["x"]);
  });

  it("identify persists the userId; reset clears userId and anonymousId", async () => {
    let tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.track("before");
    tg.identify("u-1");
    tg = await load(); // reload
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.track("after reload");
    tg.reset();
    tg.track("after reset");
    await vi.advanceTimersByTimeAsync(1000);
    const ev = Object.fromEntries(sentEvents().map((e) => [e.event ?? e.type, e]));
    expect(ev["before"].userId).toBeUndefined();
    expect(ev["after reload"].userId).toBe("u-1");
    expect(ev["after reload"].anonymousId).toBe(ev["before"].anonymousId);
    expect(ev["after reset"].userId).toBeUndefined();
    expect(ev["after reset"].anonymousId).toMatch(UUID);
    expect(ev["after reset"].anonymousId).not.toBe(ev["before"].anonymousId);
    expect(localStorage.getItem("tg_uid")).toBeNull();
    expect(localStorage.getItem("tg_aid")).toBe(ev["after reset"].anonymousId);
  });

  it("falls back to a v4 UUID without crypto.randomUUID (insecure contexts)", async () => {
    vi.spyOn(crypto, "randomUUID").mockImplementation(() => {
      throw new TypeError("not available");
    });
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    tg.track("x");
    await vi.advanceTimersByTimeAsync(1000);
    const [e] = sentEvents();
    expect(e.anonymousId).toMatch(UUID);
    expect(e.messageId).toMatch(UUID);
    expect(e.messageId).not.toBe(e.anonymousId);
  });
});
