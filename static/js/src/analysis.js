// Entry point on the player page (templates/inference/_analysis.html): shows the notice, honours
// the opt-out, and runs an AnalysisClient for the page's video.

import { AnalysisClient } from './client.js';
import { BACKENDS } from './backends.js';

const OPT_OUT_KEY = 'hydra.analysis.optOut';
const DEVICE_KEY = 'hydra.deviceId';
const BACKEND_KEY = 'hydra.analysis.backend';
// Below this charge, on battery, the work is held: the level at which Chrome, Android and iOS offer or start
// their battery saver by default. The saver itself is not visible to pages; only level and charging are
// (navigator.getBattery, Chromium-based browsers; Firefox and Safari expose nothing, so they are never held).
const LOW_BATTERY_LEVEL = 0.2;
const HOLD_REASONS = { hidden: 'the tab is hidden', battery: 'the battery is low' };

const storage = {
  get(key) {
    try {
      return window.localStorage.getItem(key);
    } catch {
      return null; // storage disabled: behave as a first visit
    }
  },
  set(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch {
      // storage disabled: the choice lasts for this page only
    }
  },
};

function deviceId() {
  let id = storage.get(DEVICE_KEY);
  if (!id || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    storage.set(DEVICE_KEY, id);
  }
  return id;
}

function forcedBackend() {
  const requested = new URLSearchParams(window.location.search).get('hydra_backend');
  return BACKENDS.includes(requested) ? requested : null;
}

/** The renderer behind WebGL, e.g. 'ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device ...))', or '' without WebGL. */
function webglRenderer() {
  const gl = document.createElement('canvas').getContext('webgl');
  if (!gl) return '';
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  return renderer;
}

/**
 * The backend to try first: the one this device chose last time; on a first visit without a GPU (WebGL drawn
 * in software by SwiftShader or llvmpipe), wasm, since racing webgl there compiles its shaders on the CPU
 * (about 14 s on the bench machine, docs/benchmarks.md) only for webgl to lose to wasm.
 */
function preferredBackend() {
  const remembered = storage.get(BACKEND_KEY);
  if (remembered) return remembered;
  return /swiftshader|llvmpipe|softpipe|software/i.test(webglRenderer()) ? 'wasm' : null;
}

/** The model the page names (templates/inference/_analysis.html), to load while the socket connects. */
function pageModel() {
  const element = document.getElementById('hydra-model');
  try {
    return element ? JSON.parse(element.textContent) : null;
  } catch {
    return null; // the handshake names the model anyway
  }
}

function describe({ state, backend, done, total, detail }) {
  switch (state) {
    case 'loading':
      return 'Preparing the model…';
    case 'running':
      return `${done} of ${total} frame${total === 1 ? '' : 's'} analysed${backend ? ` · ${backend}` : ''}`;
    case 'done':
      return `Done: ${done} of ${total} frame${total === 1 ? '' : 's'} analysed, thank you.`;
    case 'paused':
      return `Paused while ${detail
        .split(' ')
        .map((reason) => HOLD_REASONS[reason] ?? reason)
        .join(' and ')}.`;
    case 'reconnecting':
      return 'Reconnecting…';
    case 'error':
      return detail ? `Stopped: ${detail}` : 'Stopped.';
    default:
      return '';
  }
}

/** The bar under the notice: frames done of frames this browser was assigned, from the first assignment on. */
function showProgress(bar, { state, done, total }) {
  const counting = (state === 'running' || state === 'done') && total > 0;
  bar.hidden = !counting;
  if (!counting) return;
  bar.setAttribute('aria-valuemax', String(total));
  bar.setAttribute('aria-valuenow', String(done));
  bar.firstElementChild.style.width = `${Math.round((100 * done) / total)}%`;
}

/** Hold the work while the page is hidden (a background tab, a minimised window, a locked phone). */
function followVisibility(client) {
  const update = () => (document.visibilityState === 'hidden' ? client.hold('hidden') : client.release('hidden'));
  document.addEventListener('visibilitychange', update);
  update();
}

/** Hold the work on a low battery that is not charging, where the browser tells (see LOW_BATTERY_LEVEL). */
async function followBattery(client) {
  if (typeof navigator.getBattery !== 'function') return;
  const battery = await navigator.getBattery().catch(() => null);
  if (!battery) return;
  const update = () =>
    !battery.charging && battery.level <= LOW_BATTERY_LEVEL ? client.hold('battery') : client.release('battery');
  battery.addEventListener('chargingchange', update);
  battery.addEventListener('levelchange', update);
  update();
}

/** data-seeker-bytes-per-visit: the most bytes the hidden seeker may download on one visit (none: no bound). */
function seekerBytesPerVisit(root) {
  const value = Number.parseInt(root.dataset.seekerBytesPerVisit ?? '', 10);
  return Number.isFinite(value) && value >= 0 ? value : Infinity;
}

/** data-media-bytes-per-second: the rendition's mean bytes per second of media, or null. */
function mediaBytesPerSecond(root) {
  const value = Number.parseInt(root.dataset.mediaBytesPerSecond ?? '', 10);
  return Number.isFinite(value) && value > 0 ? value : null;
}

function setUp(root) {
  root.dataset.scriptMs = String(Math.round(performance.now())); // bench/page_ready.py: the page's part of the wait
  const video = document.querySelector(root.dataset.player);
  if (!video) return;
  const notice = root.querySelector('[data-role="notice"]');
  const off = root.querySelector('[data-role="off"]');
  const progress = root.querySelector('[data-role="status"]');
  const bar = root.querySelector('[data-role="progress"]');
  const wsUrl = new URL(root.dataset.wsPath, window.location.href);
  wsUrl.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  // The build's own folder (worker.js and tfjs/ sit next to this script, whatever name it is served under).
  const buildUrl = new URL('.', import.meta.url);

  const client = new AnalysisClient({
    video,
    wsUrl: wsUrl.href,
    workerUrl: new URL('worker.js', buildUrl).href,
    wasmBase: new URL('tfjs/', buildUrl).href,
    forcedBackend: forcedBackend(),
    preferredBackend: preferredBackend(),
    deviceId: deviceId(),
    pageModel: pageModel(),
    seekerBytesPerVisit: seekerBytesPerVisit(root),
    mediaBytesPerSecond: mediaBytesPerSecond(root),
    onModelLoaded: (report) => {
      // Milliseconds since navigation (bench/page_ready.py reads them).
      root.dataset.modelReadyMs = String(Math.round(performance.now()));
      if (!root.dataset.forced) storage.set(BACKEND_KEY, report.backend);
      root.dataset.mode = report.mode;
      root.dataset.modelBytes = String(report.modelBytes);
      root.dataset.modelLoad = JSON.stringify({ downloadMs: report.downloadMs, loadMs: report.loadMs, timings: report.timings });
    },
    onStatus: (status) => {
      root.dataset.state = status.state;
      root.dataset.backend = status.backend ?? '';
      root.dataset.done = String(status.done);
      if (status.done > 0 && !root.dataset.firstFeatureMs) root.dataset.firstFeatureMs = String(Math.round(performance.now()));
      root.dataset.total = String(status.total);
      root.dataset.detail = status.detail;
      root.dataset.capturedPlayback = String(status.captured?.playback ?? 0);
      root.dataset.capturedSeek = String(status.captured?.seek ?? 0);
      // For bench/playback.py: what the seeker downloaded, whether it may go on, the engine's busy time.
      root.dataset.seekerBytes = String(status.seekerBytes);
      root.dataset.seeker = status.seeker;
      root.dataset.engineMs = String(status.engineMs);
      progress.textContent = describe(status);
      showProgress(bar, status);
    },
  });
  if (client.forcedBackend) root.dataset.forced = client.forcedBackend;
  followVisibility(client);
  followBattery(client);

  function show(optedOut) {
    notice.hidden = optedOut;
    off.hidden = !optedOut;
    root.hidden = false;
  }

  root.querySelector('[data-action="opt-out"]').addEventListener('click', () => {
    storage.set(OPT_OUT_KEY, '1');
    client.stop('off');
    show(true);
  });
  root.querySelector('[data-action="opt-in"]').addEventListener('click', () => {
    storage.set(OPT_OUT_KEY, null);
    show(false);
    client.start();
  });
  // Another tab turned analysis off (or on): follow it at once.
  window.addEventListener('storage', (event) => {
    if (event.key !== OPT_OUT_KEY) return;
    const optedOut = event.newValue === '1';
    show(optedOut);
    if (optedOut) client.stop('off');
    else if (client.stopped) client.start();
  });
  window.addEventListener('pagehide', () => client.stop('off'));
  // Back/forward cache: the page comes back without reloading, so start again unless opted out.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted && storage.get(OPT_OUT_KEY) !== '1') client.start();
  });

  const optedOut = storage.get(OPT_OUT_KEY) === '1';
  show(optedOut);
  if (optedOut) root.dataset.state = 'off';
  else client.start();
}

const root = document.getElementById('hydra-analysis');
if (root) setUp(root);
