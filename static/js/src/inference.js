// Runs the engine in a Web Worker when the browser can draw frames there (OffscreenCanvas),
// otherwise on the main thread, yielding between frames so playback keeps its time.

function workerSupported() {
  return typeof Worker !== 'undefined' && typeof OffscreenCanvas !== 'undefined' && typeof createImageBitmap === 'function';
}

class WorkerInference {
  constructor(workerUrl) {
    this.worker = new Worker(workerUrl, { type: 'module', name: 'hydra-analysis' });
    this.nextId = 1;
    this.waiting = new Map();
    this.worker.onmessage = ({ data }) => this.settle(data);
    this.worker.onerror = (event) => this.failAll(new Error(event.message || 'analysis worker failed'));
  }

  settle(data) {
    const key = data.type === 'loaded' || data.type === 'failed' ? 'load' : data.id;
    const pending = this.waiting.get(key);
    if (!pending) return;
    this.waiting.delete(key);
    if (data.type === 'loaded') pending.resolve(data.report);
    else if (data.type === 'features') pending.resolve({ codes: data.codes, inferenceMs: data.inferenceMs });
    else pending.reject(Object.assign(new Error(data.message), { name: data.name || 'Error' }));
  }

  failAll(error) {
    for (const pending of this.waiting.values()) pending.reject(error);
    this.waiting.clear();
  }

  call(key, message, transfer = []) {
    return new Promise((resolve, reject) => {
      this.waiting.set(key, { resolve, reject });
      this.worker.postMessage(message, transfer);
    });
  }

  load(options) {
    return this.call('load', { type: 'load', options });
  }

  /** frame: an ImageBitmap, transferred to the worker (which closes it). */
  infer(frame) {
    const id = this.nextId++;
    return this.call(id, { type: 'infer', id, frame }, [frame]);
  }

  dispose() {
    this.worker.terminate();
    this.failAll(new Error('analysis stopped'));
  }
}

class MainThreadInference {
  async load(options) {
    const { Engine } = await import('./engine.js');
    this.engine = new Engine();
    return this.engine.load(options);
  }

  async infer(frame) {
    await new Promise((resolve) => setTimeout(resolve, 0)); // let the page paint between frames
    try {
      return await this.engine.infer(frame);
    } finally {
      frame.close?.();
    }
  }

  dispose() {
    this.engine = null;
  }
}

/** Load the engine where it runs best; the returned object has load(options), infer(frame), dispose() and mode. */
export async function startInference(workerUrl, options) {
  if (workerSupported()) {
    const inference = new WorkerInference(workerUrl);
    try {
      const report = await inference.load(options);
      return { inference, report: { ...report, mode: 'worker' } };
    } catch (error) {
      inference.dispose();
      if (error.name === 'ModelIntegrityError') throw error;
      console.warn('hydra analysis: worker unavailable, using the main thread', error);
    }
  }
  const inference = new MainThreadInference();
  const report = await inference.load(options);
  return { inference, report: { ...report, mode: 'main-thread' } };
}
