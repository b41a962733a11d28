// Build the dashboard into the Python package (src/truceline/web/static): one JS bundle, one CSS
// file, Leaflet's images, the Natural Earth countries (world-atlas, 1:10m) and index.html with
// cache-busting hashes; and Swagger UI (swagger-ui-dist, as published) under swagger/ for the
// API's docs page. Run with `npm run build` (or `make web`). The output is committed, so the
// Python package serves the dashboard without Node.js; build-info.json records the digest of the
// sources it was built from (tests/web/test_assets.py recomputes it).

import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "truceline", "web", "static");

/** The files whose content the build depends on, as sorted POSIX paths relative to web/. */
export function sourceFiles() {
  const files = ["build.mjs", "index.html", "package.json", "package-lock.json"];
  const walk = (dir) => {
    for (const name of readdirSync(join(here, dir)).sort()) {
      const rel = `${dir}/${name}`;
      if (statSync(join(here, rel)).isDirectory()) walk(rel);
      else files.push(rel);
    }
  };
  walk("src");
  return files.sort();
}

/** SHA-256 over each file's path and bytes (the same recipe as tests/web/test_assets.py). */
export function sourcesDigest() {
  const h = createHash("sha256");
  for (const f of sourceFiles()) {
    h.update(f);
    h.update("\0");
    h.update(readFileSync(join(here, f)));
    h.update("\0");
  }
  return h.digest("hex");
}

const short = (buf) => createHash("sha256").update(buf).digest("hex").slice(0, 12);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await esbuild.build({
  entryPoints: { app: join(here, "src", "main.js") },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome100", "firefox100", "safari15"],
  outdir: out,
  loader: { ".png": "file", ".svg": "file" },
  assetNames: "images/[name]",
  legalComments: "linked",
  metafile: true,
  logLevel: "warning",
});
// The worker that decodes the base map off the page's thread: a classic worker (one file, no
// imports), which every browser of the target list runs.
await esbuild.build({
  entryPoints: { "basemap-worker": join(here, "src", "basemap-worker.js") },
  bundle: true,
  minify: true,
  format: "iife",
  target: ["chrome100", "firefox100", "safari15"],
  outdir: out,
  legalComments: "linked",
  logLevel: "warning",
});
copyFileSync(join(here, "node_modules", "world-atlas", "countries-10m.json"), join(out, "countries-10m.json"));
copyFileSync(join(here, "node_modules", "world-atlas", "LICENSE"), join(out, "world-atlas-LICENSE.txt"));
// Swagger UI for the API's docs page (/api/v1/docs), served from the package: no CDN, works offline.
const swagger = join(here, "node_modules", "swagger-ui-dist");
mkdirSync(join(out, "swagger"), { recursive: true });
for (const [from, to] of [
  ["swagger-ui-bundle.js", "swagger-ui-bundle.js"],
  ["swagger-ui.css", "swagger-ui.css"],
  ["favicon-32x32.png", "favicon-32x32.png"],
  ["LICENSE", "LICENSE.txt"],
  ["NOTICE", "NOTICE.txt"],
]) {
  copyFileSync(join(swagger, from), join(out, "swagger", to));
}
const js = readFileSync(join(out, "app.js"));
const css = readFileSync(join(out, "app.css"));
const html = readFileSync(join(here, "index.html"), "utf8").replace("__JS_HASH__", short(js)).replace("__CSS_HASH__", short(css));
writeFileSync(join(out, "index.html"), html);
const pkg = JSON.parse(readFileSync(join(here, "package-lock.json"), "utf8"));
const versions = Object.fromEntries(
  Object.entries(pkg.packages || {})
    .filter(([k]) => k.startsWith("node_modules/") && !k.slice(13).includes("node_modules/"))
    .map(([k, v]) => [k.slice(13), v.version]),
);
const files = Object.fromEntries(
  Object.keys(result.metafile.outputs)
    .concat([join(out, "countries-10m.json"), join(out, "index.html")])
    .concat(["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"].map((f) => join(out, "swagger", f)))
    .map((p) => [relative(out, p).split(sep).join("/"), statSync(p).size]),
);
writeFileSync(
  join(out, "build-info.json"),
  `${JSON.stringify({ sources_sha256: sourcesDigest(), packages: versions, files }, null, 2)}\n`,
);
console.log(`built ${Object.keys(files).length} files into ${relative(process.cwd(), out) || out}`);
for (const [f, n] of Object.entries(files)) console.log(`  ${f.padEnd(28)} ${(n / 1024).toFixed(0).padStart(6)} KiB`);
