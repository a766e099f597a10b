// The gateway embeds release/trackgate.min.js (committed, so the Rust build
// needs no Node): it must be the build of the current source.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

describe("release bundle", () => {
  it("release/trackgate.min.js is the current build (run `npm run release` after changing src/)", () => {
    const built = readFileSync(join(root, "dist", "trackgate.min.js"), "utf8");
    const committed = readFileSync(join(root, "release", "trackgate.min.js"), "utf8");
    expect(committed).toBe(built);
  });
});
