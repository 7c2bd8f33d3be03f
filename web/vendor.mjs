// Copies the browser builds the screens use from node_modules (installed by `npm ci` from
// package-lock.json) into the Python package, which serves them itself: nothing is fetched at run
// time. `make web` runs it; tests/http/test_browser_board.py checks the copies match the lock.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "depot", "web", "static", "vendor");
const files = {
  "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
};
mkdirSync(out, { recursive: true });
const versions = {};
for (const [name, source] of Object.entries(files)) {
  copyFileSync(join(here, "node_modules", source), join(out, name));
  const pkg = source.split("/")[0];
  versions[name] = { package: pkg,
    version: JSON.parse(readFileSync(join(here, "node_modules", pkg, "package.json"))).version };
}
writeFileSync(join(out, "VERSIONS.json"), JSON.stringify(versions, null, 2) + "\n");
console.log(`vendored ${Object.keys(files).join(", ")} into ${out}`);
