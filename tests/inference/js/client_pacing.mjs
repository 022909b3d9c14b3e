// Drives static/js/src/client.js with a fake engine, seeker, WebSocket and timers: how long the engine rests
// after each frame, how many frames may wait, what a hold does, and what the seeker's byte budget does.
// Prints one JSON line.
import { AnalysisClient } from '../../../static/js/src/client.js';

const delays = [];
globalThis.setTimeout = (fn, ms) => {
  delays.push(ms);
  queueMicrotask(fn);
  return delays.length;
};
globalThis.clearTimeout = () => {};
globalThis.WebSocket = class {
  static OPEN = 1;
  constructor() {
    this.readyState = 0;
  }
  send() {}
  close() {}
};

const settle = () => new Promise((resolve) => setImmediate(resolve));

function bitmap(log) {
  return Promise.resolve({ close: () => log.closed++ });
}

function client({ inferenceMs = [], stuck = false } = {}) {
  const video = { addEventListener() {}, removeEventListener() {}, currentTime: 0, paused: true, ended: false };
  const made = new AnalysisClient({ video, wsUrl: 'ws://example.test/ws/analysis/x/', seekerBytesPerVisit: 1000 });
  made.start();
  Object.assign(made, {
    fps: 10,
    limits: { max_batch: 16, rate_per_second: 4, burst: 16 },
    assigned: Array.from({ length: 20 }, (_, i) => i * 1000),
  });
  const times = [...inferenceMs];
  made.inference = {
    calls: 0,
    infer(frame) {
      this.calls++;
      frame.close();
      if (stuck) return new Promise(() => {});
      return Promise.resolve({ codes: new Uint8Array(4), inferenceMs: times.shift() ?? 10 });
    },
  };
  return made;
}

async function pacing() {
  const made = client({ inferenceMs: [100, 40, 400] });
  const log = { closed: 0 };
  delays.length = 0;
  for (const ms of [0, 1000, 2000]) made.enqueue(ms, bitmap(log), 'playback');
  await settle();
  return { rests: delays.filter((ms) => ms !== 2000), engineMs: made.engineMs, computed: made.outbox.length };
}

async function boundedQueue() {
  const made = client({ stuck: true });
  const log = { closed: 0 };
  for (let ms = 0; ms < 10000; ms += 1000) made.enqueue(ms, bitmap(log), 'playback');
  await settle();
  return { waiting: made.frames.length, inEngine: made.inference.calls, dropped: log.closed - made.inference.calls };
}

async function hold() {
  const made = client();
  const log = { closed: 0 };
  const states = [];
  made.onStatus = (status) => states.push(`${status.state}:${status.detail}`);
  made.status('running');
  made.hold('hidden');
  made.enqueue(0, bitmap(log), 'playback');
  await settle();
  const whileHeld = { calls: made.inference.calls, closed: log.closed, state: states.at(-1) };
  made.release('hidden');
  made.enqueue(1000, bitmap(log), 'playback');
  await settle();
  return { whileHeld, afterRelease: { calls: made.inference.calls, state: states.at(-1) } };
}

async function budget() {
  const made = client();
  let grabs = 0;
  let disposed = false;
  made.seeker = { grab: async () => (grabs++, { close() {} }), dispose: () => (disposed = true) };
  made.ready = true;
  made.onSeekerBytes(600);
  const before = { seeker: made.seeker !== null, spent: made.seekerSpent };
  made.onSeekerBytes(1200); // the seeker's total so far
  await made.pump();
  return { before, after: { seeker: made.seeker !== null, spent: made.seekerSpent, disposed, grabs } };
}

console.log(JSON.stringify({ pacing: await pacing(), boundedQueue: await boundedQueue(), hold: await hold(), budget: await budget() }));
