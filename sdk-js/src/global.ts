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
  s = w.trackgate;
w.trackgate = api;
if (Array.isArray(s))
  s.sort((a, b) => +(b[0] == "init") - +(a[0] == "init")).map((c) => {
      try {
        api[c[0]](...c[1]);
      } catch {}
    });
