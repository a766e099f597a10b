// Builds dist/trackgate.min.js (IIFE, global `trackgate`), dist/trackgate.esm.js
// and dist/trackgate.d.ts.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { readFileSync, renameSync, rmSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);

const common = {
  bundle: true,
  minify: true,
  target: "es2020",
  legalComments: "none",
  define: { __VERSION__: JSON.stringify(pkg.version) },
  logLevel: "warning",
  tsconfigRaw: { compilerOptions: { alwaysStrict: false } },
};
await build({
  ...common,
  entryPoints: [join(root, "src/global.ts")],
  format: "iife",
  outfile: join(dist, "trackgate.min.js"),
});
await build({
  ...common,
  entryPoints: [join(root, "src/index.ts")],
  format: "esm",
  outfile: join(dist, "trackgate.esm.js"),
});

// Declarations from the TypeScript source (also type-checks it).
const tmp = join(dist, ".types");
execFileSync(
  process.execPath,
  [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.json"), "--declaration", "--emitDeclarationOnly", "--outDir", tmp],
  { stdio: "inherit" },
);
renameSync(join(tmp, "index.d.ts"), join(dist, "trackgate.d.ts"));
rmSync(tmp, { recursive: true, force: true });
writeFileSync(
  join(dist, "trackgate.d.ts"),
  readFileSync(join(dist, "trackgate.d.ts"), "utf8") +
    `
/** The IIFE build (trackgate.min.js) installs the API as \`window.trackgate\`. */
declare global {
  interface Window {
    trackgate: {
      init: typeof init; page: typeof page; track: typeof track; identify: typeof identify;
      reset: typeof reset; optOut: typeof optOut; optIn: typeof optIn;
      isOptedOut: typeof isOptedOut; flush: typeof flush;
    };
  }
}
`,
);
