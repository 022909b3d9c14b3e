// The CNN chunk in the browser: fetch it, verify its hash, pick a backend, compute features.
// Runs inside a Web Worker (worker.js) or, where workers cannot draw frames, on the main thread.

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { getThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
import { quantise } from './wire.js';

// cpu is never raced: it is the last resort (about 2 s a frame).
const RACED = ['webgpu', 'webgl', 'wasm'];
const KNOWN_PREPROCESSING = { scale: 'divide_255', resize: 'bilinear_align_corners' };

/**
 * TF.js initialises its highest-priority backend, webgpu, first and logs two errors wherever no GPU
 * adapter exists (headless browsers, many real ones). Without an adapter it is unregistered instead.
 */
async function dropWebgpuWithoutAdapter() {
  const adapter = await (navigator.gpu?.requestAdapter() ?? Promise.resolve(null)).catch(() => null);
  if (!adapter && tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
}

/**
 * Which of TF.js's three wasm binaries runs and on how many threads: it picks threaded SIMD where the
 * page is cross-origin isolated, and sizes its pool as hardwareConcurrency / 2 (one thread on two cores).
 */
async function wasmBinary() {
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = simd && (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
  const name = threads ? 'threaded-simd' : simd ? 'simd' : '';
  return { wasmBinary: `tfjs-backend-wasm${name ? `-${name}` : ''}.wasm`, wasmThreads: getThreadsCount() };
}

export class ModelIntegrityError extends Error {
  name = 'ModelIntegrityError';
}

async function fetchBytes(url) {
  const response = await fetch(url, { credentials: 'same-origin' });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

function concatenate(parts) {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Download model.json and its weight shards, and check that sha256(model.json bytes + shard bytes
 * in manifest order) is the hash the server named. Nothing unverified ever reaches TF.js.
 */
export async function fetchVerifiedModel(modelUrl, expectedHash) {
  const jsonBytes = await fetchBytes(modelUrl);
  const manifest = JSON.parse(new TextDecoder().decode(jsonBytes));
  const paths = manifest.weightsManifest.flatMap((group) => group.paths);
  const shards = await Promise.all(paths.map((path) => fetchBytes(new URL(path, modelUrl))));
  const everything = concatenate([jsonBytes, ...shards]);
  const actual = await sha256Hex(everything);
  if (actual !== expectedHash) throw new ModelIntegrityError(`model hash ${actual} is not ${expectedHash}`);
  const weightData = concatenate(shards).buffer;
  return {
    artifacts: {
      modelTopology: manifest.modelTopology,
      weightSpecs: manifest.weightsManifest.flatMap((group) => group.weights),
      weightData,
    },
    bytes: everything.length,
  };
}

function checkPreprocessing(preprocessing) {
  for (const [key, value] of Object.entries(KNOWN_PREPROCESSING)) {
    if (preprocessing[key] !== value) throw new Error(`unsupported preprocessing ${key}=${preprocessing[key]}`);
  }
  if (!Number.isInteger(preprocessing.input_size)) throw new Error('preprocessing needs an integer input_size');
}

export class Engine {
  /**
   * options: {modelUrl, hash, preprocessing, quantisation, featureSize, wasmBase, forced, preferred}
   * forced: use exactly this backend or fail (tests); preferred: try it first (the last choice).
   */
  async load(options) {
    checkPreprocessing(options.preprocessing);
    this.options = options;
    this.size = options.preprocessing.input_size;
    setWasmPaths(options.wasmBase);
    await dropWebgpuWithoutAdapter();
    const started = performance.now();
    const { artifacts, bytes } = await fetchVerifiedModel(options.modelUrl, options.hash);
    const downloadMs = performance.now() - started;
    // Weights are created on the current backend (and moved if another one wins the race).
    if (options.forced) {
      if (!(await tf.setBackend(options.forced))) throw new Error(`backend ${options.forced} does not work here`);
    } else {
      await tf.ready();
    }
    this.model = await loadLayersModel({ load: async () => artifacts });
    const timings = await this.chooseBackend(options.forced, options.preferred);
    return {
      backend: tf.getBackend(),
      ...(tf.getBackend() === 'wasm' ? await wasmBinary() : {}),
      timings,
      modelBytes: bytes,
      downloadMs,
      loadMs: performance.now() - started,
    };
  }

  async chooseBackend(forced, preferred) {
    const timings = {};
    if (forced) {
      timings[forced] = await this.tryBackend(forced);
      if (timings[forced] === null) throw new Error(`backend ${forced} does not work here`);
      return timings;
    }
    if (preferred && (await this.tryBackend(preferred)) !== null) return timings;
    for (const name of RACED.filter((backend) => tf.findBackendFactory(backend))) timings[name] = await this.tryBackend(name);
    const working = Object.entries(timings).filter(([, ms]) => ms !== null);
    if (working.length === 0) {
      timings.cpu = await this.tryBackend('cpu');
      if (timings.cpu === null) throw new Error('no TensorFlow.js backend works here');
      return timings;
    }
    working.sort((a, b) => a[1] - b[1]);
    await tf.setBackend(working[0][0]);
    return timings;
  }

  /** Switch to a backend and time one warmed-up inference; null when it fails or computes garbage. */
  async tryBackend(name) {
    if (!tf.findBackendFactory(name)) return null; // a remembered choice that this browser cannot offer
    try {
      if (!(await tf.setBackend(name))) return null;
      await tf.ready();
      const input = tf.zeros([1, this.size, this.size, 3]);
      await this.runModel(input); // warm-up: shader compilation, weight upload
      const started = performance.now();
      const values = await this.runModel(input);
      const ms = performance.now() - started;
      input.dispose();
      if (values.length !== this.options.featureSize || !values.every(Number.isFinite)) return null;
      return ms;
    } catch (error) {
      console.warn(`hydra analysis: backend ${name} unavailable`, error);
      return null;
    }
  }

  async runModel(batch) {
    const output = this.model.predict(batch);
    const values = await output.data();
    output.dispose();
    return values;
  }

  /** Features of one frame (ImageBitmap, ImageData or a video element), quantised for the wire. */
  async infer(source) {
    const started = performance.now();
    const input = tf.tidy(() => {
      // nsfwjs's own preprocessing: RGB / 255, then bilinear resize with align_corners.
      const pixels = tf.cast(tf.browser.fromPixels(source), 'float32');
      const scaled = tf.div(pixels, 255);
      const resized = tf.image.resizeBilinear(scaled, [this.size, this.size], true);
      return tf.reshape(resized, [1, this.size, this.size, 3]);
    });
    const values = await this.runModel(input);
    input.dispose();
    return { codes: quantise(values, this.options.quantisation), inferenceMs: performance.now() - started };
  }
}
