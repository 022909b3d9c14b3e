// bench.browser_cnn's LiteRT.js candidate: the CNN chunk's float32 .tflite (the server's TFLite file)
// run by LiteRT.js's XNNPACK wasm build on one thread, behind the production worker's message interface
// ({type:'load'} / {type:'infer', id, frame}), so the bench page drives both workers the same way.
// Built by the bench as a classic (IIFE) worker: LiteRT.js loads its Emscripten glue with importScripts,
// which module workers do not have.

import { loadAndCompile, loadLiteRt, supportsFeature, Tensor } from '@litertjs/core';
import { quantise } from '../static/js/src/wire.js';

let model = null;
let options = null;
let canvas = null;

/**
 * nsfwjs's preprocessing without TF.js: RGB / 255, then a bilinear resize with align_corners
 * (the formula of TF.js's resizeBilinear), into the model's NHWC float32 input.
 */
function preprocess(frame, size) {
  if (!canvas || canvas.width !== frame.width || canvas.height !== frame.height) {
    canvas = new OffscreenCanvas(frame.width, frame.height);
  }
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(frame, 0, 0);
  const { data, width, height } = context.getImageData(0, 0, frame.width, frame.height);
  const out = new Float32Array(size * size * 3);
  const rowScale = (height - 1) / (size - 1);
  const colScale = (width - 1) / (size - 1);
  for (let row = 0; row < size; row += 1) {
    const y = row * rowScale;
    const top = Math.floor(y);
    const bottom = Math.min(height - 1, Math.ceil(y));
    const rowFraction = y - top;
    for (let col = 0; col < size; col += 1) {
      const x = col * colScale;
      const left = Math.floor(x);
      const right = Math.min(width - 1, Math.ceil(x));
      const colFraction = x - left;
      for (let channel = 0; channel < 3; channel += 1) {
        const topLeft = data[(top * width + left) * 4 + channel] / 255;
        const topRight = data[(top * width + right) * 4 + channel] / 255;
        const bottomLeft = data[(bottom * width + left) * 4 + channel] / 255;
        const bottomRight = data[(bottom * width + right) * 4 + channel] / 255;
        const upper = topLeft + (topRight - topLeft) * colFraction;
        const lower = bottomLeft + (bottomRight - bottomLeft) * colFraction;
        out[(row * size + col) * 3 + channel] = upper + (lower - upper) * rowFraction;
      }
    }
  }
  return out;
}

async function run(input, size) {
  const tensor = new Tensor(input, [1, size, size, 3]);
  const outputs = await model.run([tensor]);
  tensor.delete();
  const values = outputs[0].toTypedArray().slice();
  for (const output of outputs) output.delete();
  return values;
}

async function load(loadOptions) {
  options = loadOptions;
  const started = performance.now();
  const relaxedSimd = await supportsFeature('relaxedSimd');
  // LiteRT.js's loader finds the .wasm next to the worker unless Emscripten is told where it is.
  self.Module = { locateFile: (name) => new URL(name, options.litertBase).href };
  await loadLiteRt(options.litertBase, { threads: false });
  const bytes = new Uint8Array(await (await fetch(options.tfliteUrl)).arrayBuffer());
  model = await loadAndCompile(bytes, { accelerator: 'wasm', cpuOptions: { numThreads: 1 } });
  const size = options.preprocessing.input_size;
  await run(new Float32Array(size * size * 3), size); // warm-up: XNNPACK packs its weights on the first run
  return {
    backend: 'wasm',
    runtime: 'litert',
    wasmBinary: relaxedSimd ? 'litert_wasm_internal.wasm' : 'litert_wasm_compat_internal.wasm',
    wasmThreads: 1,
    modelBytes: bytes.length,
    loadMs: performance.now() - started,
  };
}

self.onmessage = async ({ data }) => {
  if (data.type === 'load') {
    try {
      self.postMessage({ type: 'loaded', report: await load(data.options) });
    } catch (error) {
      self.postMessage({ type: 'failed', message: String(error?.message ?? error) });
    }
  } else if (data.type === 'infer') {
    try {
      const started = performance.now();
      const size = options.preprocessing.input_size;
      const values = await run(preprocess(data.frame, size), size);
      const codes = quantise(values, options.quantisation);
      self.postMessage({ type: 'features', id: data.id, codes, inferenceMs: performance.now() - started }, [codes.buffer]);
    } catch (error) {
      self.postMessage({ type: 'inferFailed', id: data.id, message: String(error) });
    } finally {
      data.frame.close();
    }
  }
};
