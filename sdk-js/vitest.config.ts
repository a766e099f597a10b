import { readFileSync } from "node:fs";
import { defineConfig } from "vitest/config";

const pkg = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));

export default defineConfig({
  define: { __VERSION__: JSON.stringify(pkg.version) },
  test: {
    environment: "happy-dom",
    environmentOptions: {
      happyDOM: { url: "http://127.0.0.1:8000/start?q=1", settings: { handleDisabledFileLoadingAsSuccess: true } },
    },
    include: ["test/unit/**/*.test.ts"],
    // The snippet test runs the built IIFE: build it first.
    globalSetup: ["test/unit/global-setup.ts"],
  },
});
