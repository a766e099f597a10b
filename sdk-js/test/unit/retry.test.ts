import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HOST, WK, installFakes, load, net, sentEvents, teardown } from "./harness";

beforeEach(() => {
  installFakes();
  vi.useFakeTimers();
});
afterEach(teardown);

/** Times (ms since start) at which batch requests were made. */
function recordTimes() {
  const t0 = Date.now();
  const times: number[] = [];
  const reply = net.reply;
  return {
    times,
    wrap(fn: typeof reply) {
      net.reply = (c) => {
        times.push(Date.now() - t0);
        return fn(c);
      };
    },
  };
}

describe("retry and backoff", () => {
  it("retries network failures with exponential backoff and jitter", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5); // jitter factor 0.75
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    const rec = recordTimes();
    let n = 0;
    rec.wrap(() => (++n <= 4 ? "network" : 200));
    tg.track("x");
    await vi.advanceTimersByTimeAsync(60_000);
    // first send at 1000 (flush timer), then waits of 750, 1500, 3000, 6000
    expect(rec.times).toEqual([1000, 1750, 3250, 6250, 12250]);
    // every attempt carried the same event (same messageId: deduplicable)
    const ids = net.fetches.map((c) => c.body.batch[0].messageId);
    expect(new Set(ids).size).toBe(1);
    // sentAt is set per attempt
    expect(new Set(net.fetches.map((c) => c.body.sentAt)).size).toBe(5);
    expect(localStorage.getItem("tg_q")).toBe("[]");
  });

  it("jitter spreads waits between half and all of the backoff, capped at 30 s", async () => {
    const rand = vi.spyOn(Math, "random").mockReturnValue(0);
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    const rec = recordTimes();
    rec.wrap(() => 503);
    tg.track("x");
    await vi.advanceTimersByTimeAsync(1000 + 500 + 1000 + 2000);
    expect(rec.times).toEqual([1000, 1500, 2500, 4500]);
    rand.mockReturnValue(0.999999);
    await vi.advanceTimersByTimeAsync(600_000);
    const gaps = rec.times.slice(1).map((t, i) => t - rec.times[i]);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(30_000);
    expect(gaps.slice(-1)[0]).toBeGreaterThan(29_000);
  });

  it("honours Retry-After on 429 and 503", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    const rec = recordTimes();
    let n = 0;
    rec.wrap(() => {
      n++;
      if (n == 1) return { status: 429, headers: { "Retry-After": "7" } };
      if (n == 2) return { status: 503, headers: { "Retry-After": "3" } };
      return 200;
    });
    tg.track("x");
    await vi.advanceTimersByTimeAsync(20_000);
    expect(rec.times).toEqual([1000, 8000, 11000]);
    expect(sentEvents()).toHaveLength(3);
  });

  it("does not retry other 4xx answers: the batch is dropped", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    net.reply = () => 400;
    tg.track("bad");
    await vi.advanceTimersByTimeAsync(60_000);
    expect(net.fetches).toHaveLength(1);
    expect(JSON.parse(localStorage.getItem("tg_q")!)).toEqual([]);
    expect(warn).not.toHaveBeenCalled(); // console only in debug mode
    net.reply = () => 200;
    tg.track("good");
    await vi.advanceTimersByTimeAsync(1000);
    expect(net.fetches.map((c) => c.body.batch.map((e: any) => e.event))).toEqual([["bad"], ["good"]]);
  });

  it("logs dropped batches in debug mode", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false, debug: true });
    net.reply = () => 401;
    tg.track("x");
    await vi.advanceTimersByTimeAsync(1000);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining("dropped"), 401);
  });

  it("holds new events during a backoff wait and sends them with the retry", async () => {
    vi.spyOn(Math, "random").mockReturnValue(1);
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    net.reply = () => ({ status: 503, headers: { "Retry-After": "10" } });
    tg.track("first");
    await vi.advanceTimersByTimeAsync(1000);
    expect(net.fetches).toHaveLength(1);
    net.reply = () => 200;
    for (let i = 0; i < 25; i++) tg.track("more");
    await vi.advanceTimersByTimeAsync(9000);
    expect(net.fetches).toHaveLength(1); // 25 events did not jump the wait
    await vi.advanceTimersByTimeAsync(1000);
    expect(net.fetches).toHaveLength(2);
    expect(sentEvents().slice(1).map((e) => e.event)).toEqual(["first", ...Array(25).fill("more")]);
  });

  it("one success resets the backoff", async () => {
    vi.spyOn(Math, "random").mockReturnValue(1);
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    const rec = recordTimes();
    let fail = 3;
    rec.wrap(() => (fail-- > 0 ? "network" : 200));
    tg.track("a");
    await vi.advanceTimersByTimeAsync(1000 + 1000 + 2000 + 4000);
    expect(rec.times).toEqual([1000, 2000, 4000, 8000]);
    fail = 1;
    tg.track("b");
    await vi.advanceTimersByTimeAsync(1000 + 1000);
    expect(rec.times.slice(4)).toEqual([9000, 10000]); // waited 1 s again, not 8 s
  });

  it("flush() cuts a retry wait short", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    let n = 0;
    net.reply = () => (n++ == 0 ? { status: 503, headers: { "Retry-After": "60" } } : 200);
    tg.track("x");
    await vi.advanceTimersByTimeAsync(1000);
    tg.flush();
    await vi.advanceTimersByTimeAsync(0);
    expect(net.fetches).toHaveLength(2);
    expect(sentEvents().map((e) => e.event)).toEqual(["x", "x"]);
  });

  it("keeps one request in flight at a time and drains the backlog after it", async () => {
    const tg = await load();
    tg.init({ writeKey: WK, host: HOST, autoPage: false });
    let release!: () => void;
    let n = 0;
    globalThis.fetch = vi.fn(async (_u: any, init: any) => {
      net.fetches.push({ body: JSON.parse(init.body) } as any);
      if (n++ == 0) await new Promise<void>((r) => (release = r));
      return { status: 200, headers: new Headers() } as Response;
    }) as any;
    for (let i = 0; i < 20; i++) tg.track("a");
    for (let i = 0; i < 30; i++) tg.track("b");
    await vi.advanceTimersByTimeAsync(5000);
    expect(net.fetches).toHaveLength(1);
    expect(net.fetches[0].body.batch).toHaveLength(20);
    release();
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(net.fetches).toHaveLength(2);
    expect(net.fetches[1].body.batch.map((e: any) => e.event)).toEqual(Array(30).fill("b"));
  });
});
