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

export class SeekCapture {
  /** A muted, invisible copy of the player's video that is only ever seeked, never played. */
  constructor(source, fps) {
    this.fps = fps;
    this.video = document.createElement('video');
    this.video.muted = true;
    this.video.playsInline = true;
    this.video.preload = 'auto';
    this.video.setAttribute('aria-hidden', 'true');
    this.video.className = 'hydra-analysis__seeker';
    this.video.src = source;
    document.body.append(this.video);
    this.ready = this.video.readyState >= 2 ? Promise.resolve() : once(this.video, 'loadeddata', 30000);
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
    return createImageBitmap(video);
  }

  dispose() {
    this.video.removeAttribute('src');
    this.video.load();
    this.video.remove();
  }
}
