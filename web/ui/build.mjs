// Builds the pacsnet web front end into ../dist (served by the node at /app/).
//
//   cd web/ui && npm ci && node build.mjs
//
// Outputs (all flat in ../dist, because the viewer bundle finds its decode
// worker at new URL('./decodeImageFrameWorker.js', import.meta.url) and the
// worker finds the codecs' .wasm files through wasmBasePath '/app/'):
//   app.js                        src/app/main.js (if present), ESM, minified
//   viewer.js                     src/viewer/main.js, ESM, minified
//   decodeImageFrameWorker.js     the dicom-image-loader's decode worker, ESM
//   *.wasm                        the decoders the worker may load
//   everything under src/static/  copied verbatim
// Only those files are removed before building; anything else in ../dist
// (README.md) is left alone. Nothing is fetched at build or run time.
import * as esbuild from 'esbuild';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(here, '..', 'dist');
const require = createRequire(import.meta.url);
const started = Date.now();

// The decode wasm of each codec the worker imports (decodeImageFrameWorker.js
// and shared/decoders/*.js name these files in their locateFile).
const wasmFiles = [
  '@cornerstonejs/codec-charls/decodewasm',          // charlswasm_decode.wasm (JPEG-LS)
  '@cornerstonejs/codec-openjpeg/decodewasm',        // openjpegwasm_decode.wasm (JPEG 2000)
  '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasm', // libjpegturbowasm_decode.wasm (JPEG baseline)
  '@cornerstonejs/codec-openjph/wasm',               // openjphjs.wasm (HTJ2K)
  '@cornerstonejs/codec-libjxl/decodewasm',          // jpegxlwasm_decode.wasm (JPEG XL)
];

// What this script produces, so that it removes exactly that.
const produced = new Set(['app.js', 'app.js.map', 'viewer.js', 'viewer.js.map',
  'decodeImageFrameWorker.js', 'decodeImageFrameWorker.js.map']);
for (const w of wasmFiles) produced.add(path.basename(require.resolve(w)));
const staticDir = path.join(here, 'src', 'static');
const staticFiles = fs.existsSync(staticDir)
  ? fs.readdirSync(staticDir, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile())
      .map((d) => path.relative(staticDir, path.join(d.parentPath ?? d.path, d.name)))
      .sort()
  : [];
for (const f of staticFiles) produced.add(f);

fs.mkdirSync(dist, { recursive: true });
for (const f of produced) fs.rmSync(path.join(dist, f), { force: true });
// Chunks of an earlier code-split build, if any.
for (const f of fs.readdirSync(dist)) {
  if (/^chunk-[A-Z0-9]+\.js(\.map)?$/.test(f)) fs.rmSync(path.join(dist, f));
}

// Node's built-in modules are named by code that never runs in a browser:
// the codecs' emscripten glue (its Node branch) and xmlbuilder2 (under
// vtk.js; only its URL host-name helpers, never called by the viewer).
// They become empty modules rather than external imports, which would
// throw "Dynamic require ... is not supported" when the bundle loads.
const nodeBuiltinStub = {
  name: 'node-builtin-stub',
  setup(b) {
    b.onResolve({ filter: /^(node:)?(fs|path|crypto|module|worker_threads|url|perf_hooks|os|util)$/ },
      (a) => ({ path: a.path, namespace: 'node-builtin-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'node-builtin-stub' },
      () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

// CSP style-src 'self' blocks style attributes set with setAttribute (but
// not CSSOM). Cornerstone's SVG text boxes (the Length tool's label) set
// theirs with setAttribute('style', ...): set the same text through
// element.style.cssText instead. The build fails if the code changes.
const cspStylePatch = {
  name: 'csp-style-patch',
  setup(b) {
    b.onLoad({ filter: /[\\/]@cornerstonejs[\\/]tools[\\/]dist[\\/]esm[\\/]drawingSvg[\\/]drawTextBox\.js$/ }, async (a) => {
      const src = await fs.promises.readFile(a.path, 'utf8');
      const from = "textElement.setAttribute('style', combinedStyle);";
      if (!src.includes(from)) throw new Error(`csp-style-patch: "${from}" not found in ${a.path}`);
      return { contents: src.replace(from, 'textElement.style.cssText = combinedStyle;'), loader: 'js' };
    });
  },
};

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox115', 'safari16.4'],
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  absWorkingDir: here,
  outdir: dist,
  define: { 'process.env.NODE_ENV': '"production"' },
  plugins: [nodeBuiltinStub, cspStylePatch],
  alias: { events: './src/shims/events.cjs' },
  metafile: true,
};

const entryPoints = { viewer: 'src/viewer/main.js' };
if (fs.existsSync(path.join(here, 'src', 'app', 'main.js'))) entryPoints.app = 'src/app/main.js';
// Not in the package's "exports": find it beside the resolved entry point.
entryPoints.decodeImageFrameWorker = path.join(
  path.dirname(require.resolve('@cornerstonejs/dicom-image-loader')), 'decodeImageFrameWorker.js');

const result = await esbuild.build({ ...common, entryPoints, splitting: false });

for (const w of wasmFiles) {
  const src = require.resolve(w);
  fs.copyFileSync(src, path.join(dist, path.basename(src)));
}
for (const f of staticFiles) {
  fs.mkdirSync(path.dirname(path.join(dist, f)), { recursive: true });
  fs.copyFileSync(path.join(staticDir, f), path.join(dist, f));
}

const kb = (n) => `${(n / 1024).toFixed(0)} KiB`;
const size = (f) => fs.statSync(path.join(dist, f)).size;
const outs = Object.keys(result.metafile.outputs).map((o) => path.basename(o));
const wasm = [...produced].filter((f) => f.endsWith('.wasm'));
const total = [...outs, ...wasm, ...staticFiles].reduce((s, f) => s + size(f), 0);
console.log(`web/dist: ${outs.map((f) => `${f} ${kb(size(f))}`).join(', ')}, ` +
  `${wasm.length} wasm ${kb(wasm.reduce((s, f) => s + size(f), 0))}, ` +
  `${staticFiles.length} static ${kb(staticFiles.reduce((s, f) => s + size(f), 0))}; ` +
  `total ${kb(total)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
