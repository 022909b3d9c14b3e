// Builds the browser side of Hydra from npm packages into static/js/build/ (no CDN at run time):
// analysis.js (page entry), worker.js (TF.js engine in a Web Worker), shared chunks, and the
// TF.js wasm binaries in build/tfjs/ (the engine points tf.wasm.setWasmPaths there).
// Usage: node static/js/build.mjs

import { cp, mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const outdir = path.join(here, 'build');
const wasmSource = path.join(root, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');

await rm(outdir, { recursive: true, force: true });
await esbuild.build({
  entryPoints: {
    analysis: path.join(here, 'src', 'analysis.js'),
    worker: path.join(here, 'src', 'worker.js'),
  },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome102', 'firefox114', 'safari16.4'],
  chunkNames: 'chunks/[name]-[hash]',
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  // Emscripten glue inside tfjs-backend-wasm mentions Node modules it never loads in a browser.
  external: ['fs', 'path', 'worker_threads', 'perf_hooks', 'os', 'crypto'],
  logLevel: 'warning',
});

const wasmDir = path.join(outdir, 'tfjs');
await mkdir(wasmDir, { recursive: true });
const binaries = (await readdir(wasmSource)).filter((name) => name.endsWith('.wasm'));
if (binaries.length === 0) throw new Error(`no .wasm files in ${wasmSource}: run npm ci`);
await Promise.all(binaries.map((name) => cp(path.join(wasmSource, name), path.join(wasmDir, name))));
console.log(`built ${path.relative(root, outdir)}: analysis.js, worker.js, ${binaries.length} wasm binaries`);
