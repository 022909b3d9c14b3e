// The analysis session of one player page: talks the protocol of docs/protocol.md, captures the
// assigned frames, runs them through the engine and streams quantised features in batches.

import { PlaybackCapture, SeekCapture } from './capture.js';
import { startInference } from './inference.js';
import { PROTOCOL_VERSION, encodeFeatureBatch } from './wire.js';

const CLOSE_SESSION_MISMATCH = 4409;
const FATAL_CLOSES = new Set([4404, 4429, 4503]);
const BATCH_TARGET = 64;
const FLUSH_AFTER_MS = 2000;
const LOOKAHEAD_SECONDS = 5;
// Frames waiting for the engine: captured while the model loads or while the engine rests (bitmaps, so bounded).
const MAX_QUEUED_FRAMES = 4;
// The engine's share of one core: after a frame that took d ms it rests d × (1 / share − 1) ms, so a device
// whose inference is slow relative to the sampling interval analyses fewer frames instead of queueing them.
const ENGINE_CORE_SHARE = 0.25;
const MAX_GRAB_FAILURES = 3;
const MAX_BACKOFF_MS = 30000;

class TokenBucket {
  constructor(rate, burst) {
    this.rate = rate;
    this.capacity = burst;
    this.tokens = burst;
    this.updated = performance.now();
  }

  take() {
    const now = performance.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.updated) / 1000) * this.rate);
    this.updated = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  msUntilNext() {
    return Math.ceil(((1 - this.tokens) / this.rate) * 1000);
  }
}

export class AnalysisClient {
  /**
   * video: the player's <video>; wsUrl: ws(s)://.../ws/analysis/<slug>/; workerUrl, wasmBase: built assets;
   * forcedBackend: null or a backend name; preferredBackend: last choice on this device; deviceId;
   * pageModel: null or the model the page names (the handshake's `model` shape), loaded while the socket connects;
   * seekerBytesPerVisit: the most bytes the hidden seeker may download on this page (Infinity: no bound);
   * mediaBytesPerSecond: the rendition's mean bytes per second of media (null: unknown), to count the seeker's;
   * onStatus({state, backend, done, total, detail, captured, seekerBytes, seeker, engineMs}).
   */
  constructor(options) {
    this.seekerBytesPerVisit = Infinity;
    Object.assign(this, options);
    this.sessionId = null;
    this.stopped = true;
    this.attempt = 0;
    this.inference = null;
    this.modelLoad = null;
    this.report = null;
    // Per visit, whatever stops and starts: why the work is held ('hidden', 'battery'), the seeker's bytes.
    this.holds = new Set();
    this.seekerBytes = 0;
    this.earlierSeekersBytes = 0;
    this.seekerSpent = false;
    this.engineMs = 0;
  }

  start() {
    this.stopped = false;
    this.done = new Set();
    this.claimed = new Set();
    this.refused = new Set();
    this.grabFailures = new Map();
    this.outbox = [];
    this.unacked = new Map();
    this.frames = [];
    this.seq = 0;
    this.assigned = [];
    this.captured = { playback: 0, seek: 0 };
    this.status('connecting');
    this.connect();
    // Load the model the page names while the socket connects and handshakes; the handshake waits
    // for the same load (same hash), and reports its failure if it failed.
    if (this.pageModel) this.loadModel(this.pageModel).catch(() => {});
  }

  /** Stop everything at once (opt-out, leaving, or all work done). */
  stop(state = 'off', detail = '') {
    this.stopped = true;
    clearTimeout(this.flushTimer);
    clearTimeout(this.reconnectTimer);
    this.playback?.stop();
    this.playback = null;
    this.disposeSeeker();
    this.inference?.dispose();
    this.inference = this.modelLoad = null;
    for (const event of ['play', 'pause', 'seeked', 'ended', 'timeupdate']) this.video.removeEventListener(event, this.onPlayerEvent);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
    this.ws = null;
    for (const { bitmapPromise } of this.frames.splice(0)) bitmapPromise.then((bitmap) => bitmap.close(), () => {});
    this.status(state, detail);
  }

  /** Hold the work for a reason ('hidden', 'battery') until release(reason): no capture, no seeking, no
   * inference; the socket stays open and the session resumes where it was. */
  hold(reason) {
    this.holds.add(reason);
    this.playback?.stop();
    if (!this.stopped) this.status(this.state, this.detail);
  }

  release(reason) {
    if (!this.holds.delete(reason) || this.stopped) return;
    if (this.holds.size === 0) {
      this.capturePlayback();
      this.drain();
      this.pump();
    }
    this.status(this.state, this.detail);
  }

  /** Reports `state`, except that 'running' reads 'paused' while a hold lasts (detail: its reasons). */
  status(state, detail = '') {
    this.state = state;
    this.detail = detail;
    const held = state === 'running' && this.holds.size > 0;
    this.onStatus?.({
      state: held ? 'paused' : state,
      detail: held ? [...this.holds].join(' ') : detail,
      seekerBytes: Math.round(this.seekerBytes),
      seeker: this.seekerSpent ? 'spent' : this.seeker ? 'on' : 'off',
      engineMs: Math.round(this.engineMs),
      backend: this.report?.backend ?? null,
      mode: this.report?.mode ?? null,
      session: this.sessionId,
      done: this.done?.size ?? 0,
      total: this.assigned?.length ?? 0,
      captured: this.captured,
    });
  }

  connect() {
    const url = new URL(this.wsUrl);
    if (this.sessionId) url.searchParams.set('resume', this.sessionId);
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (event) => {
      if (ws === this.ws && typeof event.data === 'string') this.onMessage(JSON.parse(event.data));
    };
    ws.onclose = (event) => {
      if (ws === this.ws) this.onClose(event);
    };
    this.ws = ws;
    this.ready = false;
  }

  onMessage(message) {
    if (message.type === 'handshake') this.onHandshake(message);
    else if (message.type === 'ready') this.onReady();
    else if (message.type === 'ack') this.onAck(message);
    else if (message.type === 'error') this.onError(message);
  }

  async onHandshake(handshake) {
    const ws = this.ws;
    if (handshake.protocol !== PROTOCOL_VERSION) {
      this.stop('error', `server speaks protocol ${handshake.protocol}`);
      return;
    }
    this.sessionId = handshake.session;
    this.fps = handshake.fps;
    this.limits = handshake.limits;
    this.featureSize = handshake.model.feature_size;
    this.assigned = handshake.sample_ms;
    const assigned = new Set(this.assigned);
    this.done = new Set(handshake.done_ms);
    this.outbox = this.outbox.filter((item) => assigned.has(item.sampleMs) && !this.done.has(item.sampleMs));
    for (const ms of this.claimed) if (!assigned.has(ms) || this.done.has(ms)) this.claimed.delete(ms);
    this.bucket = new TokenBucket(this.limits.rate_per_second, this.limits.burst);
    // The frames being played are captured from the assignment on: a short clip is not over before the model is.
    this.capturePlayback();
    try {
      await this.loadModel(handshake.model);
    } catch (error) {
      if (this.stopped) return;
      console.error('hydra analysis: the model could not be loaded', error);
      this.stop('error', String(error.message || error));
      return;
    }
    if (ws !== this.ws || this.stopped) return;
    this.bucket.take();
    ws.send(JSON.stringify({ type: 'hello', backend: this.report.backend, device_id: this.deviceId }));
  }

  /** One load per model hash: a reconnect during a load waits for the same load. */
  loadModel(model) {
    if (this.modelLoad?.hash !== model.hash) {
      const load = { hash: model.hash };
      load.promise = this.startModel(model, load);
      this.modelLoad = load;
    }
    return this.modelLoad.promise;
  }

  /** load: this load's entry; a load that is no longer the current one (stopped, or replaced) is discarded. */
  async startModel(model, load) {
    this.status('loading');
    this.inference?.dispose();
    this.inference = null;
    const { inference, report } = await startInference(this.workerUrl, {
      modelUrl: new URL(model.url, window.location.href).href,
      hash: model.hash,
      preprocessing: model.preprocessing,
      quantisation: model.quantisation,
      featureSize: model.feature_size,
      wasmBase: this.wasmBase,
      forced: this.forcedBackend,
      preferred: this.preferredBackend,
    });
    if (this.stopped || this.modelLoad !== load) {
      inference.dispose();
      throw new Error('analysis stopped');
    }
    this.inference = inference;
    this.report = report;
    this.onModelLoaded?.(report);
    this.drain();
  }

  onReady() {
    this.ready = true;
    this.attempt = 0;
    if (this.finishIfDone()) return;
    this.status('running');
    this.flush();
    this.capturePlayback();
    if (!this.seeker && !this.seekerSpent) {
      const source = this.video.currentSrc || this.video.src;
      this.seeker = new SeekCapture(source, this.fps, this.mediaBytesPerSecond, (bytes) => this.onSeekerBytes(bytes));
    }
    this.pump();
  }

  /** Capture the assigned frames the viewer's video presents (free: they are downloaded for playback anyway). */
  capturePlayback() {
    if (this.stopped || this.holds.size > 0) return;
    if (!this.playback) {
      this.playback = new PlaybackCapture(this.video, this.fps, () => this.wanted(), (ms, bitmap) =>
        this.enqueue(ms, bitmap, 'playback'),
      );
      this.onPlayerEvent = () => this.pump();
      for (const event of ['play', 'pause', 'seeked', 'ended', 'timeupdate']) this.video.addEventListener(event, this.onPlayerEvent);
    }
    this.playback.start();
  }

  /** The current seeker downloaded `bytes` in all; once this visit's seekers reach the budget, seeking ends. */
  onSeekerBytes(bytes) {
    this.seekerBytes = this.earlierSeekersBytes + bytes;
    if (this.seekerBytes >= this.seekerBytesPerVisit) {
      this.seekerSpent = true;
      this.disposeSeeker();
    }
    this.status(this.state, this.detail);
  }

  disposeSeeker() {
    this.seeker?.dispose();
    this.seeker = null;
    this.earlierSeekersBytes = this.seekerBytes;
  }

  /** Sample times still to compute: assigned, not delivered, not in progress, not given up. */
  wanted() {
    return this.assigned.filter((ms) => !this.done.has(ms) && !this.claimed.has(ms) && !this.refused.has(ms));
  }

  /** source: 'playback' (the viewer's video) or 'seek' (the hidden one); counted for the status. */
  enqueue(sampleMs, bitmapPromise, source) {
    if (this.stopped || this.holds.size > 0 || this.frames.length >= MAX_QUEUED_FRAMES) {
      bitmapPromise.then((bitmap) => bitmap.close(), () => {});
      return;
    }
    this.claimed.add(sampleMs);
    this.captured[source] += 1;
    this.frames.push({ sampleMs, bitmapPromise });
    this.drain();
  }

  /** Run the queued frames through the engine, resting after each so that it takes at most its share of a core. */
  async drain() {
    if (this.draining || !this.inference) return;
    this.draining = true;
    while (this.frames.length > 0 && !this.stopped && this.holds.size === 0) {
      const { sampleMs, bitmapPromise } = this.frames.shift();
      try {
        const { codes, inferenceMs } = await this.inference.infer(await bitmapPromise);
        this.engineMs += inferenceMs;
        this.outbox.push({ sampleMs, inferenceMs, codes });
        this.scheduleFlush();
        await new Promise((resolve) => setTimeout(resolve, inferenceMs * (1 / ENGINE_CORE_SHARE - 1)));
      } catch (error) {
        if (this.stopped) break;
        console.warn(`hydra analysis: frame ${sampleMs} ms failed`, error);
        this.claimed.delete(sampleMs);
      }
    }
    this.draining = false;
    this.pump();
  }

  /** While the engine is idle, fetch the next frame the viewer is not about to watch from the hidden video. */
  async pump() {
    if (this.stopped || !this.ready || !this.seeker || this.holds.size > 0) return;
    if (this.pumping || this.draining || this.frames.length > 0) return;
    const sampleMs = this.nextUnwatched();
    if (sampleMs === null) return;
    this.pumping = true;
    this.claimed.add(sampleMs);
    let bitmapPromise;
    try {
      bitmapPromise = Promise.resolve(await this.seeker.grab(sampleMs));
    } catch (error) {
      this.claimed.delete(sampleMs);
      const failures = (this.grabFailures.get(sampleMs) ?? 0) + 1;
      this.grabFailures.set(sampleMs, failures);
      if (failures >= MAX_GRAB_FAILURES) this.refused.add(sampleMs);
      console.warn(`hydra analysis: could not seek to ${sampleMs} ms`, error);
    } finally {
      this.pumping = false;
    }
    if (this.stopped) {
      bitmapPromise?.then((bitmap) => bitmap.close(), () => {});
      return;
    }
    if (bitmapPromise) {
      this.claimed.delete(sampleMs);
      this.enqueue(sampleMs, bitmapPromise, 'seek');
    } else {
      setTimeout(() => this.pump(), 1000);
    }
  }

  /** The seeker's next sample. Frames the viewer's video will present cost no extra bytes, so while it plays the
   * seeker takes only samples already passed (missed or skipped); paused, those beyond the next
   * LOOKAHEAD_SECONDS first; ended, any. */
  nextUnwatched() {
    const wanted = this.wanted();
    const video = this.video;
    const now = video.currentTime * 1000;
    const passed = wanted.find((ms) => ms < now);
    if (passed !== undefined || video.ended) return passed ?? wanted[0] ?? null;
    if (!video.paused) return null;
    const until = now + LOOKAHEAD_SECONDS * 1000 * (video.playbackRate || 1);
    return wanted.find((ms) => ms > until) ?? wanted[0] ?? null;
  }

  scheduleFlush() {
    const nothingLeft = this.wanted().length === 0 && this.frames.length === 0;
    if (this.outbox.length >= Math.min(BATCH_TARGET, this.limits.max_batch) || nothingLeft) this.flush();
    else if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), FLUSH_AFTER_MS);
  }

  flush() {
    clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (!this.ready || this.ws?.readyState !== WebSocket.OPEN) return;
    while (this.outbox.length > 0) {
      if (!this.bucket.take()) {
        this.flushTimer = setTimeout(() => this.flush(), this.bucket.msUntilNext());
        return;
      }
      const items = this.outbox.splice(0, this.limits.max_batch);
      this.seq += 1;
      this.unacked.set(this.seq, items);
      this.ws.send(encodeFeatureBatch(this.seq, items, this.featureSize));
    }
  }

  onAck(ack) {
    const items = this.unacked.get(ack.seq);
    this.unacked.delete(ack.seq);
    for (const ms of [...ack.accepted, ...ack.duplicates]) {
      this.done.add(ms);
      this.claimed.delete(ms);
    }
    if (!items) return;
    if (!this.finishIfDone()) this.status('running');
  }

  onError(error) {
    const items = this.unacked.get(error.seq);
    if (!items) {
      if (!error.fatal) console.warn('hydra analysis: server refused a message', error);
      return;
    }
    this.unacked.delete(error.seq);
    if (error.code === 'rate_limited') {
      this.outbox.unshift(...items);
      this.flushTimer = this.flushTimer || setTimeout(() => this.flush(), FLUSH_AFTER_MS);
      return;
    }
    console.warn(`hydra analysis: batch ${error.seq} refused (${error.code}): ${error.message}`);
    for (const item of items) {
      this.refused.add(item.sampleMs);
      this.claimed.delete(item.sampleMs);
    }
    this.finishIfDone();
  }

  finishIfDone() {
    if (this.assigned.length === 0 || this.wanted().length > 0 || this.claimed.size > 0) return false;
    this.stop('done');
    return true;
  }

  onClose(event) {
    this.ready = false;
    this.playback?.stop();
    for (const items of this.unacked.values()) this.outbox.unshift(...items);
    this.unacked.clear();
    if (this.stopped) return;
    if (FATAL_CLOSES.has(event.code)) {
      this.sessionId = null;
      this.stop('error', `closed by the server (${event.code})`);
      return;
    }
    if (event.code === CLOSE_SESSION_MISMATCH) {
      // A refused session is forgotten; a fresh one is tried once, and a refusal of that ends the page's work.
      const refusedFresh = !this.sessionId;
      this.sessionId = null;
      if (refusedFresh) {
        this.stop('error', `closed by the server (${event.code})`);
        return;
      }
    }
    const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.status('reconnecting');
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }
}
