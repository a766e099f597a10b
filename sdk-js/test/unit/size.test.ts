// The size budget check itself: passes for the built IIFE, fails past 1800 bytes.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const script = join(root, "scripts", "size.mjs");
const size = (file?: string) =>
  execFileSync(process.execPath, file ? [script, file] : [script], { encoding: "utf8", stdio: "pipe" });

describe("size budget", () => {
  it("the built IIFE is within 1800 bytes minified+gzipped", () => {
    const gz = gzipSync(readFileSync(join(root, "dist", "trackgate.min.js")), { level: 9 }).length;
    expect(gz).toBeLessThanOrEqual(1800);
    expect(size()).toMatch(/min\+gzip \(budget 1800\)/);
  });

  it("the check fails for a file over budget", () => {
    const dir = mkdtempSync(join(tmpdir(), "tg-size-"));
    const big = join(dir, "big.js");
    // Random text does not compress: well over 1,800 bytes gzipped.
    writeFileSync(big, Array.from({ length: 4000 }, () => Math.random().toString(36).slice(2, 4)).join(""));
    expect(() => size(big)).toThrow(/size budget exceeded/);
  });
});
