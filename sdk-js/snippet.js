// trackgate loader snippet, readable form. snippet.html holds the minified
// copy to paste into a page's <head>. It defines a stub `window.trackgate`
// that records calls until the SDK has loaded; the SDK then replays them
// (init first). Replace YOUR_GATEWAY_HOST (the gateway serves the SDK at
// /sdk/trackgate.min.js, see its `sdk.path`) and YOUR_WRITE_KEY.
(function (w, d, name, src) {
  var t = (w[name] = w[name] || []);
  // Real SDK already installed (t.push missing) or snippet already ran.
  if (!t.push || t.loaded) return;
  t.loaded = 1;
  "init page track identify reset optOut optIn flush".split(" ").forEach(function (m) {
    t[m] = function () {
      t.push([m, [].slice.call(arguments)]);
    };
  });
  // Answers before the SDK has loaded: the opt-out cookie is always set.
  t.isOptedOut = function () {
    return /(^|; )tg_optout=1/.test(d.cookie);
  };
  var s = d.createElement("script");
  s.async = 1;
  s.src = src;
  d.head.appendChild(s);
})(window, document, "trackgate", "https://YOUR_GATEWAY_HOST/sdk/trackgate.min.js");
trackgate.init({ writeKey: "YOUR_WRITE_KEY", host: "https://YOUR_GATEWAY_HOST" });
