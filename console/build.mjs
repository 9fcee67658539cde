// Builds the console into dist/ (index.html, app.js, app.css), which the
// weir binary embeds (src/api/console.rs). Deterministic: the same sources
// and lockfile give the same bytes, so CI can rebuild and compare.
import { build } from "esbuild";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  legalComments: "none",
  outfile: "dist/app.js",
  logLevel: "warning",
});
const css = [
  readFileSync("node_modules/uplot/dist/uPlot.min.css", "utf8"),
  readFileSync("src/app.css", "utf8"),
].join("\n");
writeFileSync("dist/app.css", css);
writeFileSync("dist/index.html", readFileSync("src/index.html", "utf8"));
console.log("console built into dist/");
