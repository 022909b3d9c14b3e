// Grabbing exactly the frames the server assigned (a sample = the presentation time of one frame).
// While the viewer watches, requestVideoFrameCallback reports each presented frame's mediaTime;
// frames the viewer does not watch are fetched by seeking a hidden second <video> to the middle
// of the frame's display interval, which lands on exactly that frame (inference/sampling.py).

/** Where to seek to show the frame whose presentation time is sampleMs (mirrors seek_time_seconds). */
export function seekTimeSeconds(sampleMs, fps) {
  return (sampleMs + 1000 / fps / 2) / 1000;
}

/** The sample in `samples` shown by a frame presented at mediaTime, or null. */
export function sampleAt(mediaTime, fps, samples) {
  const ms = mediaTime * 1000;
  const half = 1000 / fps / 2;
  for (const sample of samples) if (Math.abs(sample - ms) < half) return sample;
  return null;
}

function once(target, event, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      target.removeEventListener(event, done);
      reject(new Error(`${event} did not happen within ${timeoutMs} ms`));
    }, timeoutMs);
    function done() {
      clearTimeout(timer);
      resolve();
    }
    target.addEventListener(event, done, { once: true });
  });
}

export class PlaybackCapture {
  /** onFrame(sampleMs, bitmap) is called for presented frames that `wants(sampleMs)` (sampleAt over wanted samples). */
  constructor(video, fps, wanted, onFrame) {
    this.video = video;
    this.fps = fps;
    this.wanted = wanted;
    this.onFrame = onFrame;
    this.handle = null;
  }

  start() {
    if (this.handle !== null || typeof this.video.requestVideoFrameCallback !== 'function') return;
    const onPresented = (_now, metadata) => {
      this.handle = this.video.requestVideoFrameCallback(onPresented);
      const sample = sampleAt(metadata.mediaTime, this.fps, this.wanted());
      if (sample === null) return;
      // createImageBitmap snapshots the frame being presented now.
      this.onFrame(sample, createImageBitmap(this.video));
    };
    this.handle = this.video.requestVideoFrameCallback(onPresented);
  }

  stop() {
    if (this.handle !== null) this.video.cancelVideoFrameCallback(this.handle);
    this.handle = null;
  }
}

// The seeker's URL differs from the player's by a fragment (never sent, ignored as a media fragment), so that
// the Resource Timing entries of its downloads can be told from the player's.
const SEEKER_FRAGMENT = '#hydra-seeker';

/** Bytes a Resource Timing entry cost the network: 0 when served from the HTTP cache; null when the browser
 * withholds the sizes (a cross-origin response without Timing-Allow-Origin). */
export function transferredBytes(entry) {
  if (entry.transferSize > 0) return entry.transferSize;
  return entry.encodedBodySize > 0 || entry.decodedBodySize > 0 ? 0 : null;
}

/** Seconds of media a TimeRanges holds. */
function rangesSeconds(ranges) {
  let seconds = 0;
  for (let i = 0; i < ranges.length; i++) seconds += ranges.end(i) - ranges.start(i);
  return seconds;
}

export class SeekCapture {
  /**
   * A muted, invisible copy of the player's video that is only ever seeked, never played; it preloads only its
   * metadata. What it downloaded is reported to onBytes(total) as it grows: the larger of its finished downloads
   * (Resource Timing; Infinity where the browser withholds their sizes) and the media it holds (its buffered
   * seconds at the rendition's mean mediaBytesPerSecond), since a response still streaming, as a media
   * element's long range request is, has no Resource Timing entry until it ends.
   */
  constructor(source, fps, mediaBytesPerSecond, onBytes) {
    this.fps = fps;
    this.mediaBytesPerSecond = mediaBytesPerSecond ?? 0;
    this.onBytes = onBytes;
    this.finishedBytes = 0;
    const url = new URL(source, window.location.href);
    url.hash = '';
    this.url = url.href + SEEKER_FRAGMENT;
    this.observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        if (entry.name !== this.url) continue;
        this.finishedBytes += transferredBytes(entry) ?? Infinity;
        this.report();
      }
    });
    this.observer.observe({ type: 'resource' });
    this.video = document.createElement('video');
    this.video.muted = true;
    this.video.playsInline = true;
    this.video.preload = 'metadata';
    this.video.setAttribute('aria-hidden', 'true');
    this.video.className = 'analysis__seeker';
    this.onProgress = () => this.report();
    this.video.addEventListener('progress', this.onProgress);
    this.video.src = this.url;
    document.body.append(this.video);
    this.ready = once(this.video, 'loadedmetadata', 30000);
  }

  /** The bytes this seeker downloaded so far, as counted above. */
  bytes() {
    return Math.max(this.finishedBytes, rangesSeconds(this.video.buffered) * this.mediaBytesPerSecond);
  }

  report() {
    if (!this.disposed) this.onBytes(this.bytes());
  }

  /** The bitmap of the frame presented at sampleMs. */
  async grab(sampleMs) {
    await this.ready;
    const video = this.video;
    const presented = new Promise((resolve) => {
      if (typeof video.requestVideoFrameCallback === 'function') {
        video.requestVideoFrameCallback((_now, metadata) => resolve(metadata.mediaTime));
      }
    });
    const seeked = once(video, 'seeked', 15000);
    video.currentTime = seekTimeSeconds(sampleMs, this.fps);
    await seeked;
    // The callback tells which frame is on screen; without it, 'seeked' guarantees the frame at currentTime.
    const mediaTime = await Promise.race([presented, new Promise((resolve) => setTimeout(resolve, 500, null))]);
    if (mediaTime !== null && sampleAt(mediaTime, this.fps, [sampleMs]) === null) {
      throw new Error(`seek to ${sampleMs} ms showed the frame at ${Math.round(mediaTime * 1000)} ms`);
    }
    const bitmap = await createImageBitmap(video);
    this.report();
    return bitmap;
  }

  dispose() {
    this.disposed = true;
    this.observer.disconnect();
    this.video.removeEventListener('progress', this.onProgress);
    this.video.removeAttribute('src');
    this.video.load();
    this.video.remove();
  }
}
