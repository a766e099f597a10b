import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HOST, WK, installFakes, load, sentEvents, teardown } from "./harness";

const START = "http://127.0.0.1:8000/start?q=1";
const pushRaw = history.pushState.bind(history);

beforeEach(() => {
  installFakes();
  vi.useFakeTimers();
  pushRaw(null, "", START);
});
afterEach(teardown);

const pages = () => sentEvents().filter((e) => e.type == "page");

describe("automatic page views", () => {
  it("sends a page view on init with context.page", async () => {
    Object.defineProperty(document, "referrer", { configurable: true, value: "https://search.example/?q=x" });
    document.title = "Home";
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST });
    await vi.advanceTimersByTimeAsync(1000);
    expect(pages()).toHaveLength(1);
    expect(pages()[0].context.page).toEqual({
      url: START,
      path: "/start",
      referrer: "https://search.example/?q=x",
      title: "Home",
      search: "?q=1",
    });
    delete (document as any).referrer;
  });

  it("pushState produces a page view whose referrer is the previous URL", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST });
    history.pushState({ a: 1 }, "", "/products/42?color=red");
    document.title = "Product 42";
    await vi.advanceTimersByTimeAsync(1000);
    const [, p] = pages();
    expect(p.context.page).toMatchObject({
      url: "http://127.0.0.1:8000/products/42?color=red",
      path: "/products/42",
      search: "?color=red",
      referrer: START,
    });
    expect(location.pathname).toBe("/products/42"); // navigation itself unaffected
    expect(history.state).toEqual({ a: 1 });
  });

  it("replaceState sends a page view only when the URL changes", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST });
    history.replaceState({ scroll: 1 }, "");
    history.replaceState({ scroll: 2 }, "", location.href);
    await vi.advanceTimersByTimeAsync(1000);
    expect(pages()).toHaveLength(1);
    history.replaceState(null, "", "/login");
    await vi.advanceTimersByTimeAsync(1000);
    expect(pages().map((e) => e.context.page.path)).toEqual(["/start", "/login"]);
  });

  it("popstate (back/forward) produces a page view", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST });
    pushRaw(null, "", "/back-here"); // the browser moved the URL
    dispatchEvent(new PopStateEvent("popstate", { state: null }));
    await vi.advanceTimersByTimeAsync(1000);
    expect(pages().map((e) => e.context.page.path)).toEqual(["/start", "/back-here"]);
  });

  it("hash changes are ignored unless hashRouting is on", async () => {
    let tg = await load();
    tg.init({ writeKey: WK, host: HOST });
    history.pushState(null, "", "#section-2");
    dispatchEvent(new PopStateEvent("popstate"));
    await vi.advanceTimersByTimeAsync(1000);
    expect(pages()).toHaveLength(1);

    pushRaw(null, "", START);
    tg = await load();
    tg.init({ writeKey: WK, host: HOST, hashRouting: true });
    history.pushState(null, "", "#/settings");
    await vi.advanceTimersByTimeAsync(1000);
    expect(pages().map((e) => e.context.page.url).slice(1)).toEqual([START, START + "#/settings"]);
  });

  it("autoPage: false sends no page views and leaves history alone", async () => {
    const before = history.pushState;
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    expect(history.pushState).toBe(before);
    history.pushState(null, "", "/x");
    await vi.advanceTimersByTimeAsync(2000);
    expect(pages()).toEqual([]);
  });

  it("a failing SDK never breaks the app's navigation", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST });
    const desc = Object.getOwnPropertyDescriptor(globalThis, "screen")!;
    Object.defineProperty(globalThis, "screen", {
      configurable: true,
      get() {
        throw new Error("boom");
      },
    });
    try {
      expect(() => history.pushState(null, "", "/still-works")).not.toThrow();
      expect(location.pathname).toBe("/still-works");
      expect(() => dispatchEvent(new PopStateEvent("popstate"))).not.toThrow();
    } finally {
      Object.defineProperty(globalThis, "screen", desc);
    }
  });
});
