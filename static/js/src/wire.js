// The analysis websocket's binary feature batch (docs/protocol.md, inference/protocol.py).
// Little-endian: header 12 bytes (magic "HF", version u8, kind u8, seq u32, count u16,
// feature_size u16), then per sample (sample_ms u32, inference_ms f32), then the uint8 vectors.

export const PROTOCOL_VERSION = 1;
const KIND_FEATURE_BATCH = 1;
const HEADER_BYTES = 12;
const ITEM_BYTES = 8;

/** Quantise float features to uint8 codes over [min, max] (as inference.ml.quantise does). */
export function quantise(features, { min, max }) {
  const step = (max - min) / 255;
  const codes = new Uint8Array(features.length);
  for (let i = 0; i < features.length; i += 1) {
    const q = Math.round((features[i] - min) / step);
    codes[i] = q < 0 ? 0 : q > 255 ? 255 : q;
  }
  return codes;
}

/** samples: [{sampleMs, inferenceMs, codes: Uint8Array(featureSize)}] -> ArrayBuffer */
export function encodeFeatureBatch(seq, samples, featureSize) {
  const count = samples.length;
  const buffer = new ArrayBuffer(HEADER_BYTES + count * (ITEM_BYTES + featureSize));
  const view = new DataView(buffer);
  view.setUint8(0, 0x48); // "H"
  view.setUint8(1, 0x46); // "F"
  view.setUint8(2, PROTOCOL_VERSION);
  view.setUint8(3, KIND_FEATURE_BATCH);
  view.setUint32(4, seq >>> 0, true);
  view.setUint16(8, count, true);
  view.setUint16(10, featureSize, true);
  const vectors = new Uint8Array(buffer, HEADER_BYTES + count * ITEM_BYTES);
  samples.forEach((sample, i) => {
    if (sample.codes.length !== featureSize) throw new Error(`sample ${sample.sampleMs}: wrong feature size`);
    view.setUint32(HEADER_BYTES + i * ITEM_BYTES, sample.sampleMs, true);
    view.setFloat32(HEADER_BYTES + i * ITEM_BYTES + 4, sample.inferenceMs, true);
    vectors.set(sample.codes, i * featureSize);
  });
  return buffer;
}
