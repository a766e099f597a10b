// Size budget: the minified+gzipped IIFE must stay within 1800 bytes.
//   node scripts/size.mjs [file]   (default: dist/trackgate.min.js)
// Exits 1 when the file is over budget.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const BUDGET = 1800;
const file = process.argv[2] || join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "trackgate.min.js");
const min = readFileSync(file);
const gz = gzipSync(min, { level: 9 }).length;
console.log(`${basename(file)}: ${min.length} bytes minified, ${gz} bytes min+gzip (budget ${BUDGET})`);
if (gz > BUDGET) {
  console.error(`size budget exceeded by ${gz - BUDGET} bytes`);
  process.exit(1);
}
