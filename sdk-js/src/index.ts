/**
 * trackgate browser SDK: page views, clicks, custom events and identity,
 * batched to a trackgate gateway (`POST {host}{path}/batch`, path "/v1" by default).
 *
 * Written for size: short internal names, no classes. Every byte of the
 * minified+gzipped IIFE counts against a 1,800-byte budget (see scripts/size.mjs).
 */

export interface Options {
  /** Write key of the gateway source (required). */
  writeKey: string;
  /** Gateway origin, e.g. "https://t.example.com". Default: same origin. */
  host?: string;
  /** Path of the gateway's ingestion API, no trailing slash. Default "/v1". */
  path?: string;
  /** Send a page view on init and on SPA navigation. Default true. */
  autoPage?: boolean;
  /** Treat a change of the URL hash as a navigation. Default false. */
  hashRouting?: boolean;
  /** Send a `click` track event for clicks on matching elements. Default true. */
  autoClicks?: boolean;
  /** Elements whose clicks are tracked. Default "a,button,[data-track]". */
  clickSelector?: string;
  /** Send nothing when navigator.globalPrivacyControl is true. Default true. */
  respectGPC?: boolean;
  /** Send nothing when navigator.doNotTrack is "1". Default true. */
  respectDNT?: boolean;
  /** Flush as soon as this many events are queued. Default 20. */
  flushAt?: number;
  /** Flush queued events after this many milliseconds. Default 1000. */
  flushInterval?: number;
  /** Most events kept while the gateway is unreachable; oldest dropped. Default 500. */
  maxQueue?: number;
  /** Log dropped batches and errors to the console. Default false. */
  debug?: boolean;
}

export type Properties = Record<string, unknown>;

declare const __VERSION__: string;

type Ev = Record<string, any>;

// Storage keys (localStorage, cookies): tg_aid, tg_uid, tg_optout, tg_q;
// written as literals, which compress better than shared constants.

let C: Options | undefined; // config; nothing is sent before init
let B: string; // "{host}{path}/"
let Q: Ev[] = []; // queue, mirrored in localStorage
let F: Ev[] = []; // batch in flight
let T: any; // flush timer
let H: any; // retry (backoff) timer
let R = 0; // failed attempts in a row
let A: string; // anonymousId
let U: string | undefined; // userId
let P: string; // current page key (URL)
let RF: string; // referrer of the current page

// ---- storage: localStorage, first-party cookie fallback ----
const cookie = (k: string, v?: string) => {
  // without a value: expired at once (the value written does not matter)
  document.cookie = k + "=" + v + ";path=/;max-age=" + (v ? 3e7 : -1);
};
const get = (k: string): string | undefined => {
  try {
    var v = localStorage[k];
  } catch {}
  return v ?? document.cookie.match("(^|; )" + k + "=([^;]+)")?.[2];
};
/** Stores `v` (removes the key without one); the cookie when storage fails. */
const set = (k: string, v?: string) => {
  try {
    v ? (localStorage[k] = v) : (delete localStorage[k], cookie(k));
  } catch {
    cookie(k, v);
  }
};
const save = () => {
  try {
    localStorage["tg_q"] = JSON.stringify(Q);
  } catch {}
};

/**
 * A random v4 UUID: the last 36 characters of a blob URL (every browser makes
 * them random v4 UUIDs, in insecure contexts too, where crypto.randomUUID is
 * missing), revoked at once.
 */
const uuid = (u = URL.createObjectURL(new Blob())): string => (URL.revokeObjectURL(u), u.slice(-36));
const now = () => new Date().toISOString();

// ---- privacy ----
const gpc = () => !!(navigator as any).globalPrivacyControl;
const dnt = () => navigator.doNotTrack == "1";

/** True when nothing is sent: explicit opt-out, or GPC / DNT honoured. */
export const isOptedOut = (): boolean =>
  !!(get("tg_optout") || (C && ((C.respectGPC != false && gpc()) || (C.respectDNT != false && dnt()))));

// ---- delivery ----
const body = (b: Ev[]) => JSON.stringify({ batch: b, sentAt: now(), writeKey: C!.writeKey });
/**
 * A prefix of `b` (halved until it fits) whose request body is under 64 KB,
 * a beacon's limit: at most 21,000 UTF-16 units, at most 3 UTF-8 bytes each.
 */
const fit = (b: Ev[], n = b.length) => {
  while (n > 1 && body(b.slice(0, n)).length > 21e3) n >>= 1;
  return b.slice(0, n); // a copy: the queue keeps growing while this batch is out
};
const done = (b: Ev[]) => {
  Q = Q.filter((e) => !b.includes(e));
  save();
};

const send = (): void => {
  clearTimeout(T);
  T = 0;
  if (!C || F[0] || H || !Q[0] || isOptedOut()) return;
  const b = (F = fit(Q));
  // a string body is sent as text/plain: no CORS preflight
  fetch(B + "batch", { method: "POST", body: body(b) })
    .then((r) => {
      const s = r.status;
      if (s == 429 || s > 499) throw r;
      if (s > 299 && C!.debug) console.warn("trackgate dropped", s); // other 4xx: not retried
      R = 0;
      done(b);
    })
    .catch((r) => {
      const a = r.headers?.get("Retry-After");
      H = setTimeout(flush, a ? a * 1e3 : (Math.min(3e4, 1e3 * 2 ** R++) * (1 + Math.random())) / 2);
    })
    .then(() => {
      F = [];
      send(); // the next batch; returns at once while a retry waits
    });
};

/** Page hidden (also when it is left or closed): hand the queue to sendBeacon. */
const bye = () => {
  // While the gateway fails or the browser is offline, keep the events
  // in localStorage for the next visit instead.
  if (!document.hidden || !C || H || !navigator.onLine || isOptedOut()) return;
  for (let l = Q.filter((e) => !F.includes(e)), b: Ev[]; l[0]; l = l.slice(b.length))
    // a string is sent as text/plain; a refused beacon (over the browser's
    // quota) leaves its events in storage for the next visit
    done((b = fit(l))), navigator.sendBeacon(B + "batch", body(b)) || (Q.unshift(...b), save());
};

const enqueue = (e: Ev) => {
  if (!C || isOptedOut()) return;
  // ids are stored only once something may be sent
  set("tg_aid", A);
  set("tg_uid", U);
  Q.push({
    ...e,
    messageId: uuid(),
    timestamp: now(),
    anonymousId: A,
    userId: U, // left out of the JSON when undefined
    context: {
    page: {
      url: location.href,
      path: location.pathname,
      referrer: RF,
      title: document.title,
      search: location.search,
    },
    library: { name: "trackgate-js", version: __VERSION__ },
    locale: navigator.language,
    screen: { width: screen.width, height: screen.height },
    privacy: { gpc: gpc(), dnt: dnt() },
    },
  });
  Q.splice(0, Q.length - (C.maxQueue || 500)); // bound: oldest dropped
  save();
  Q.length >= (C.flushAt || 20) ? send() : T || (T = setTimeout(send, C.flushInterval || 1e3));
};

// ---- automatic page views (SPA) and clicks ----
const key = () => location.href.replace(C!.hashRouting ? "" : /#.*/, "");
const nav = () => {
  try {
    const k = key();
    if (k != P) {
      RF = P;
      P = k;
      page();
    }
  } catch {}
};
const click = (e: Event) => {
  try {
    // no match: `el` is null and reading it throws, caught below
    const el = (e.target as Element).closest(C!.clickSelector || "a,button,[data-track]") as HTMLAnchorElement,
      d = el.dataset,
      p: Properties = {
        tag: el.localName,
        text: el.textContent!.trim().slice(0, 100),
        href: el.href,
      };
    // data-track → name, data-track-plan-id → planId
    for (const k in d) if (/^track/.test(k)) p[k[5] ? k[5].toLowerCase() + k.slice(6) : "name"] = d[k];
    track("click", p);
  } catch {}
};

// ---- public API ----

/** Starts the SDK. Nothing is queued or sent before this call; later calls are ignored. */
export const init = (o: Options): void => {
  if (C) return;
  C = o;
  B = [o.host] + (o.path || "/v1") + "/"; // [undefined] + "" is ""
  A = get("tg_aid") || uuid();
  U = get("tg_uid");
  RF = document.referrer;
  P = key();
  try {
    Q = JSON.parse(get("tg_q")!) || [];
  } catch {}
  // the page is hidden before it is left or closed (also on mobile, where pagehide may never fire)
  document.addEventListener("visibilitychange", bye);
  if (o.autoPage != false) {
    for (const m of ["pushState", "replaceState"] as const) {
      const f = history[m];
      history[m] = function (this: History) {
        f.apply(this, arguments as any);
        nav();
      };
    }
    addEventListener("popstate", nav);
    page();
  }
  // capture: seen even when the page stops propagation
  if (o.autoClicks != false) document.addEventListener("click", click, true);
  send(); // what an earlier visit left in storage
};

/** Records a page view. `name` may be omitted: page(props). */
export const page = (name?: string | Properties, properties?: Properties): void => {
  if (typeof name == "object") (properties = name), (name = undefined);
  enqueue({ type: "page", name, properties });
};

/** Records a custom event. */
export const track = (event: string, properties?: Properties): void =>
  enqueue({ type: "track", event, properties });

/** Sets the user id (persisted) and records an identify event. */
export const identify = (userId: string, traits?: Properties): void => {
  U = "" + userId;
  enqueue({ type: "identify", traits });
};

/** Forgets the user id and starts a new anonymous id. */
export const reset = (): void => {
  set("tg_uid");
  set("tg_aid");
  U = undefined;
  A = uuid();
};

/**
 * Tells the gateway. A beacon carries credentials (cookies) and survives the
 * page: the gateway's answer sets or clears its opt-out cookie on its own
 * origin, and an opt-in is accepted only with that cookie as proof.
 */
const ping = (p: string) =>
  C && navigator.sendBeacon(B + p, JSON.stringify({ writeKey: C.writeKey, anonymousId: A, userId: U }));

/** Stops all sending, now and on later visits; clears the queue; tells the gateway. */
export const optOut = (): void => {
  cookie("tg_optout", "1"); // the snippet's stub reads it too
  done(Q); // pending timers find nothing to send
  ping("optout");
};

/**
 * Reverses optOut() and tells the gateway, which accepts an opt-in only with
 * the proof its opt-out cookie holds (sent along: the request has credentials).
 */
export const optIn = (): void => {
  set("tg_optout");
  ping("optin");
};

/** Sends queued events now (also cuts short a pending retry wait). */
export const flush = (): void => {
  clearTimeout(H);
  H = 0;
  send();
};

/**
 * Test hook: removes listeners and timers and forgets all in-memory state, as if
 * the page had been unloaded. Not part of the IIFE build.
 * @internal
 */
export const _stop = (): void => {
  removeEventListener("popstate", nav);
  document.removeEventListener("visibilitychange", bye);
  document.removeEventListener("click", click, true);
  clearTimeout(T);
  clearTimeout(H);
  C = U = undefined;
  Q = [];
  F = [];
  T = H = R = 0;
};
