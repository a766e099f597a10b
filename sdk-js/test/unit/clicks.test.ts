import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HOST, WK, installFakes, load, sentEvents, teardown } from "./harness";

beforeEach(() => {
  installFakes();
  vi.useFakeTimers();
});
afterEach(teardown);

const clicks = () => sentEvents().filter((e) => e.type == "track" && e.event == "click");

describe("click tracking", () => {
  it("sends data-track name and data-track-* attributes as properties", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    document.body.innerHTML = `<div data-track="pricing-cta" data-track-plan="pro" data-track-plan-id="7" data-other="no" id="cta">
        <span id="inner">  Buy   now </span></div>`;
    document.getElementById("inner")!.click();
    await vi.advanceTimersByTimeAsync(1000);
    expect(clicks()).toHaveLength(1);
    expect(clicks()[0].properties).toEqual({
      name: "pricing-cta",
      plan: "pro",
      planId: "7",
      tag: "div",
      text: "Buy   now",
    });
  });

  it("tracks links and buttons without data-track", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    document.body.innerHTML = `<a id="l" href="/docs#intro"><b>Docs</b></a><button id="b">Save</button><p id="p">plain</p>`;
    document.querySelector("b")!.click();
    document.getElementById("b")!.click();
    document.getElementById("p")!.click();
    await vi.advanceTimersByTimeAsync(1000);
    expect(clicks().map((e) => e.properties)).toEqual([
      { tag: "a", text: "Docs", href: "http://127.0.0.1:8000/docs#intro" },
      { tag: "button", text: "Save" },
    ]);
  });

  it("the nearest matching element wins", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    document.body.innerHTML = `<section data-track="card"><button data-track="add" data-track-sku="A1">Add</button></section>`;
    document.querySelector("button")!.click();
    await vi.advanceTimersByTimeAsync(1000);
    expect(clicks()[0].properties).toMatchObject({ name: "add", sku: "A1", tag: "button" });
  });

  it("clickSelector narrows what is tracked", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false, clickSelector: "[data-track]" });
    document.body.innerHTML = `<button id="b">Save</button><span id="s" data-track="x">x</span>`;
    document.getElementById("b")!.click();
    document.getElementById("s")!.click();
    await vi.advanceTimersByTimeAsync(1000);
    expect(clicks().map((e) => e.properties.name)).toEqual(["x"]);
  });

  it("autoClicks: false turns click tracking off", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false, autoClicks: false });
    document.body.innerHTML = `<button data-track="x">x</button>`;
    document.querySelector("button")!.click();
    await vi.advanceTimersByTimeAsync(2000);
    expect(clicks()).toEqual([]);
  });

  it("never prevents the default action nor stops propagation", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    document.body.innerHTML = `<a href="/next" data-track="go">go</a>`;
    const a = document.querySelector("a")!;
    let seen: MouseEvent | undefined;
    a.addEventListener("click", (e) => (seen = e));
    const ev = new MouseEvent("click", { bubbles: true, cancelable: true });
    const notCancelled = a.dispatchEvent(ev);
    expect(notCancelled).toBe(true);
    expect(ev.defaultPrevented).toBe(false);
    expect(seen).toBe(ev);
    await vi.advanceTimersByTimeAsync(1000);
    expect(clicks()).toHaveLength(1);
  });

  it("registers a capture-phase listener", async () => {
    const spy = vi.spyOn(document, "addEventListener");
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    const call = spy.mock.calls.find((c) => c[0] == "click")!;
    expect(call[2]).toBe(true);
  });

  it("odd targets never throw into the page", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    const errors: unknown[] = [];
    const onErr = (e: ErrorEvent) => errors.push(e.error);
    addEventListener("error", onErr);
    expect(() => document.dispatchEvent(new MouseEvent("click", { bubbles: true }))).not.toThrow();
    const txt = document.createTextNode("t");
    document.body.appendChild(txt);
    expect(() => txt.dispatchEvent(new MouseEvent("click", { bubbles: true }))).not.toThrow();
    removeEventListener("error", onErr);
    expect(errors).toEqual([]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(clicks()).toEqual([]);
  });
});
