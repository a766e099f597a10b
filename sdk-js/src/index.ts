/**
 * trackgate browser SDK: page views, clicks, custom events and identity,
 * batched to a trackgate gateway (`POST {host}/v1/batch`).
 *
 * Written for size: short internal names, no classes. Every byte of the
 * minified+gzipped IIFE counts against a 2 KB budget (see scripts/size.mjs).
 */

export interface Options {
  /** Write key of the gateway source (required). */
  writeKey: string;
  /** Gateway origin, e.g. "https://t.example.com". Default: same origin. */
  host?: string;
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

const AID = "tg_aid";
const UID = "tg_uid";
const OPT = "tg_optout";
const QK = "tg_q";

let C: Options | undefined; // config; nothing is sent before init
let B: string; // "{host}/v1/"
let Q: Ev[] = []; // queue, mirrored in localStorage
let F: Ev[] = []; // batch in flight
let T: any = 0; // flush timer
let H: any = 0; // retry (backoff) timer
let R = 0; // failed attempts in a row
let A: string; // anonymousId
let U: string | null | undefined; // userId
let P: string; // current page key (URL)
let RF: string; // referrer of the current page

// ---- storage: localStorage, first-party cookie fallback ----
const cookie = (k: string, v?: string | null) => {
  document.cookie = k + "=" + (v || "") + ";path=/;max-age=" + (v ? 3e7 : -1);
};
const get = (k: string): string | null | undefined => {
  let v;
  try {
    v = localStorage.getItem(k);
  } catch {}
  return v ?? (document.cookie.match("(?:^|; )" + k + "=([^;]+)") || [])[1];
};
const set = (k: string, v?: string | null) => {
  try {
    v ? localStorage.setItem(k, v) : (localStorage.removeItem(k), cookie(k));
  } catch {
    cookie(k, v);
  }
};
const save = () => {
  try {
    localStorage.setItem(QK, JSON.stringify(Q));
  } catch {}
};

const uuid = (): string => {
  try {
    return crypto.randomUUID();
  } catch {
    return ([1e7] as any + -1e3 + -4e3 + -8e3 + -1e11).replace(/[018]/g, (c: any) =>
      (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16),
    );
  }
};
const now = () => new Date().toISOString();

// ---- privacy ----
const gpc = () => !!(navigator as any).globalPrivacyControl;
const dnt = () => navigator.doNotTrack == "1";

/** True when nothing is sent: explicit opt-out, or GPC / DNT honoured. */
export const isOptedOut = (): boolean =>
  !!get(OPT) || (!!C && ((C.respectGPC != false && gpc()) || (C.respectDNT != false && dnt())));

// ---- delivery ----
const body = (b: Ev[]) => JSON.stringify({ batch: b, sentAt: now(), writeKey: C!.writeKey });
/** A prefix of `b` (halved until it fits) whose request body is under 64 KB: one beacon. */
const fit = (b: Ev[]) => {
  b = b.slice(); // a copy: the queue keeps growing while this batch is out
  while (b[1] && new Blob([body(b)]).size > 64e3) b = b.slice(0, b.length >> 1);
  return b;
};
const done = (b: Ev[]) => {
  Q = Q.filter((e) => !b.includes(e));
  save();
};
const post = (p: string, s: string, k?: boolean) =>
  fetch(B + p, {
    method: "POST",
    body: s, // a string body is sent as text/plain: no CORS preflight
    keepalive: k,
  });

const send = (): void => {
  clearTimeout(T);
  T = 0;
  if (!C || F[0] || H || !Q[0] || isOptedOut()) return;
  const b = (F = fit(Q));
  post("batch", body(b))
    .then((r) => {
      const s = r.status;
      if (s == 429 || s > 499) throw r;
      if (s > 299 && C!.debug) console.warn("trackgate dropped", s); // other 4xx: not retried
      F = [];
      R = 0;
      done(b);
      send();
    })
    .catch((r) => {
      F = [];
      const a = r.headers?.get("Retry-After");
      H = setTimeout(
        () => {
          H = 0;
          send();
        },
        a ? a * 1e3 : Math.min(3e4, 1e3 * 2 ** R) * (0.5 + Math.random() / 2),
      );
      R++;
    });
};
const sched = () =>
  Q.length >= (C!.flushAt || 20) ? send() : T || (T = setTimeout(send, C!.flushInterval || 1e3));

/** Page hidden or unloading: hand the queue to sendBeacon. */
const bye = () => {
  // While the gateway fails or the browser is offline, keep the events
  // in localStorage for the next visit instead.
  if (!C || H || !navigator.onLine || isOptedOut()) return;
  let l = Q.filter((e) => !F.includes(e)),
    b: Ev[],
    s: string;
  for (; l[0]; l = l.slice(b.length)) {
    b = fit(l);
    s = body(b);
    done(b);
    navigator.sendBeacon?.(B + "batch", new Blob([s], { type: "text/plain" })) ||
      post("batch", s, true).catch(() => {
        Q.unshift(...b);
        save();
      });
  }
};

const enqueue = (e: Ev) => {
  if (!C || isOptedOut()) return;
  // ids are stored only once something may be sent
  set(AID, A);
  set(UID, U);
  e.messageId = uuid();
  e.timestamp = now();
  e.anonymousId = A;
  if (U) e.userId = U;
  e.context = {
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
  };
  Q.push(e);
  Q.splice(0, Q.length - (C.maxQueue || 500)); // bound: oldest dropped
  save();
  sched();
};

// ---- automatic page views (SPA) and clicks ----
const key = () => (C!.hashRouting ? location.href : location.href.split("#")[0]);
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
const hide = () => document.hidden && bye();
const click = (e: Event) => {
  try {
    const el = (e.target as Element).closest(C!.clickSelector || "a,button,[data-track]") as HTMLAnchorElement;
    if (!el) return;
    const d = el.dataset,
      p: Properties = {
        tag: el.localName,
        text: el.textContent!.trim().slice(0, 100),
        href: el.href,
      };
    for (const k in d) if (/^track./.test(k)) p[k[5].toLowerCase() + k.slice(6)] = d[k];
    if (d.track) p.name = d.track;
    track("click", p);
  } catch {}
};
const CAP = { capture: true, passive: true };

// ---- public API ----

/** Starts the SDK. Nothing is queued or sent before this call; later calls are ignored. */
export const init = (o: Options): void => {
  if (C) return;
  C = o;
  B = (o.host || "") + "/v1/";
  A = get(AID) || uuid();
  U = get(UID);
  RF = document.referrer;
  P = key();
  try {
    Q = JSON.parse(localStorage.getItem(QK)!) || [];
  } catch {}
  addEventListener("pagehide", bye);
  document.addEventListener("visibilitychange", hide);
  if (o.autoPage != false) {
    for (const m of ["pushState", "replaceState"]) {
      const h = history as any,
        f = h[m];
      h[m] = function (this: History) {
        f.apply(this, arguments);
        nav();
      };
    }
    addEventListener("popstate", nav);
    page();
  }
  if (o.autoClicks != false) document.addEventListener("click", click, CAP);
  sched();
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
  set(UID);
  set(AID);
  U = null;
  A = uuid();
};

const ping = (p: string) =>
  C && post(p, JSON.stringify({ writeKey: C.writeKey, anonymousId: A, userId: U || undefined }), true).catch(() => {});

/** Stops all sending, now and on later visits; clears the queue; tells the gateway. */
export const optOut = (): void => {
  set(OPT, "1");
  cookie(OPT, "1");
  Q = []; // pending timers find nothing to send
  save();
  ping("optout");
};

/** Reverses optOut() and tells the gateway. */
export const optIn = (): void => {
  set(OPT);
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
  removeEventListener("pagehide", bye);
  removeEventListener("popstate", nav);
  document.removeEventListener("visibilitychange", hide);
  document.removeEventListener("click", click, CAP);
  clearTimeout(T);
  clearTimeout(H);
  C = U = undefined;
  Q = [];
  F = [];
  T = H = R = 0;
};
