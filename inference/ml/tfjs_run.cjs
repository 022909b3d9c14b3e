// Run a TF.js layers model in node on uint8 RGB frames, preprocessed exactly as nsfwjs does
// in the browser (divide by 255, resizeBilinear to 224x224 with alignCorners=true).
// Used by the tests and bench/ to compare TF.js with Keras. Plain @tensorflow/tfjs, cpu backend.
//
//   node tfjs_run.cjs spec.json
//   spec: {"model_dir": dir with model.json + shards}  or  {"nsfwjs_dir": the npm package dir},
//         "frames": raw uint8 file, "shape": [N, H, W, 3], "outputs": [layer names], "out": result .json
// Result: {"outputs": {layer: [[...N rows...]]}, "load_ms": ..., "ms_per_frame": ...}
"use strict";
const fs = require("fs");
const path = require("path");
const tf = require("@tensorflow/tfjs");

function fromModelDir(dir) {
  const modelJson = JSON.parse(fs.readFileSync(path.join(dir, "model.json"), "utf8"));
  const groups = modelJson.weightsManifest;
  const shards = groups.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p))));
  return { modelTopology: modelJson.modelTopology, weightSpecs: groups.flatMap((g) => g.weights), data: Buffer.concat(shards) };
}

function fromNsfwjs(dir) {
  const modelDir = path.resolve(dir, "dist", "models", "mobilenet_v2");
  const model = require(path.join(modelDir, "model.min.js"));
  const shard = require(path.join(modelDir, "group1-shard1of1.min.js"));
  const weightSpecs = model.weightsManifest.flatMap((g) => g.weights);
  return { modelTopology: model.modelTopology, weightSpecs, data: Buffer.from(shard, "base64") };
}

function preprocess(pixels) {
  return tf.tidy(() => {
    const normalized = pixels.toFloat().div(tf.scalar(255));
    const [h, w] = pixels.shape;
    const resized = h !== 224 || w !== 224 ? tf.image.resizeBilinear(normalized, [224, 224], true) : normalized;
    return resized.reshape([1, 224, 224, 3]);
  });
}

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  await tf.setBackend("cpu");
  const source = spec.model_dir ? fromModelDir(spec.model_dir) : fromNsfwjs(spec.nsfwjs_dir);
  const weightData = source.data.buffer.slice(source.data.byteOffset, source.data.byteOffset + source.data.byteLength);
  const t0 = Date.now();
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: source.modelTopology, weightSpecs: source.weightSpecs, weightData }),
  );
  const loadMs = Date.now() - t0;
  const outputs = spec.outputs.map((name) => model.getLayer(name).output);
  const probe = tf.model({ inputs: model.inputs, outputs });
  const [n, h, w, c] = spec.shape;
  const raw = fs.readFileSync(spec.frames);
  const frameBytes = h * w * c;
  const result = Object.fromEntries(spec.outputs.map((name) => [name, []]));
  const t1 = Date.now();
  for (let i = 0; i < n; i++) {
    const pixels = tf.tensor3d(new Int32Array(raw.subarray(i * frameBytes, (i + 1) * frameBytes)), [h, w, c], "int32");
    const input = preprocess(pixels);
    let predicted = probe.predict(input);
    if (!Array.isArray(predicted)) predicted = [predicted];
    spec.outputs.forEach((name, k) => result[name].push(Array.from(predicted[k].dataSync())));
    tf.dispose([pixels, input, ...predicted]);
  }
  const msPerFrame = n ? (Date.now() - t1) / n : 0;
  fs.writeFileSync(spec.out, JSON.stringify({ outputs: result, load_ms: loadMs, ms_per_frame: msPerFrame }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
