// IIFE entry: installs `window.trackgate` and replays the calls the snippet's
// stub queued before this script loaded (init calls first).
import { flush, identify, init, isOptedOut, optIn, optOut, page, reset, track } from "./index";

const api: Record<string, (...a: any[]) => unknown> = {
  init,
  page,
  track,
  identify,
  reset,
  optOut,
  optIn,
  isOptedOut,
  flush,
};
const w = window as any,
  s: [string, any[]][] | undefined = w.trackgate;
w.trackgate = api;
s?.filter?.((c) => c[0] == "init").concat(s).map((c) => { // init first (a second init is ignored)
      try {
        api[c[0]](...c[1]);
      } catch {}
    });
