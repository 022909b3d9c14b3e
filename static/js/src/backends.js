// TF.js backends Hydra may use, fastest first on real hardware (cpu is the last resort).
export const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'];
