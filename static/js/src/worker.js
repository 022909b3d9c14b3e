// Web Worker side of the analysis: owns the TF.js engine so inference never blocks playback.
// Messages: {type:'load', options} -> {type:'loaded', report} | {type:'failed', message};
//           {type:'infer', id, frame: ImageBitmap} -> {type:'features', id, codes, inferenceMs} | {type:'inferFailed', id, message}

import { Engine } from './engine.js';

const engine = new Engine();

self.onmessage = async ({ data }) => {
  if (data.type === 'load') {
    try {
      self.postMessage({ type: 'loaded', report: await engine.load(data.options) });
    } catch (error) {
      self.postMessage({ type: 'failed', name: error?.name, message: String(error?.message ?? error) });
    }
  } else if (data.type === 'infer') {
    try {
      const { codes, inferenceMs } = await engine.infer(data.frame);
      self.postMessage({ type: 'features', id: data.id, codes, inferenceMs }, [codes.buffer]);
    } catch (error) {
      self.postMessage({ type: 'inferFailed', id: data.id, message: String(error) });
    } finally {
      data.frame.close();
    }
  }
};
