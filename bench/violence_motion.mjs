// The motion descriptors of inference/ml/motion.py in plain JavaScript: what a browser would run per sample.
//
//   node bench/violence_motion.mjs <folder>      (bench.violence_motion --js writes the folder and runs this)
//
// <folder>/frames.json lists frames as {file, width, height} (raw RGB, 3 bytes a pixel, as a canvas's
// getImageData gives RGBA with alpha dropped) and pairs as [first, second]. Prints one JSON object: the
// thumbnails and pair counts (so the caller checks them against numpy's, integer for integer) and the time
// per thumbnail and per pair, the best of REPEATS runs. Not shipped: a measurement of cost and exactness.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const SIZE = 64;
const EDGES = [2, 4, 8, 16, 32, 64];
const CELLS = 4;
const BLOCK = 8;
const SEARCH = 4;
const DIRECTIONS = 8;
const REPEATS = 20;

export function greyThumbnail(rgb, width, height, channels = 3) {
  const rowCell = new Int32Array(height);
  const colCell = new Int32Array(width);
  const rowEdges = [];
  const colEdges = [];
  for (let i = 0; i <= SIZE; i += 1) {
    rowEdges.push(Math.floor((i * height) / SIZE));
    colEdges.push(Math.floor((i * width) / SIZE));
  }
  for (let i = 0; i < SIZE; i += 1) {
    for (let y = rowEdges[i]; y < rowEdges[i + 1]; y += 1) rowCell[y] = i;
    for (let x = colEdges[i]; x < colEdges[i + 1]; x += 1) colCell[x] = i;
  }
  const sums = new Uint32Array(SIZE * SIZE);
  let at = 0;
  for (let y = 0; y < height; y += 1) {
    const base = rowCell[y] * SIZE;
    for (let x = 0; x < width; x += 1, at += channels) {
      sums[base + colCell[x]] += (77 * rgb[at] + 150 * rgb[at + 1] + 29 * rgb[at + 2] + 128) >> 8;
    }
  }
  const out = new Uint8Array(SIZE * SIZE);
  for (let i = 0; i < SIZE; i += 1) {
    for (let j = 0; j < SIZE; j += 1) {
      const count = (rowEdges[i + 1] - rowEdges[i]) * (colEdges[j + 1] - colEdges[j]);
      out[i * SIZE + j] = Math.floor((sums[i * SIZE + j] + Math.floor(count / 2)) / count);
    }
  }
  return out;
}

const DISPLACEMENTS = (() => {
  const list = [];
  for (let dy = -SEARCH; dy <= SEARCH; dy += 1) for (let dx = -SEARCH; dx <= SEARCH; dx += 1) list.push([dy, dx]);
  const key = ([dy, dx]) => [Math.abs(dy) + Math.abs(dx), dy, dx];
  return list.sort((a, b) => {
    const [ka, kb] = [key(a), key(b)];
    return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2];
  });
})();

function direction(dy, dx) {
  const up = -dy;
  const upper = up > 0 || (up === 0 && dx > 0);
  const x = upper ? dx : -dx;
  const y = upper ? up : -up;
  const quarter = x > 0 ? (x > y ? 0 : 1) : -x < y ? 2 : 3;
  return (upper ? 0 : 4) + quarter;
}

export function pairCounts(a, b) {
  const histogram = new Array(EDGES.length + 1).fill(0);
  const cells = new Array(CELLS * CELLS).fill(0);
  const cell = SIZE / CELLS;
  for (let y = 0; y < SIZE; y += 1) {
    for (let x = 0; x < SIZE; x += 1) {
      const d = Math.abs(b[y * SIZE + x] - a[y * SIZE + x]);
      let bin = 0;
      while (bin < EDGES.length && d >= EDGES[bin]) bin += 1;
      histogram[bin] += 1;
      cells[Math.floor(y / cell) * CELLS + Math.floor(x / cell)] += d;
    }
  }
  const blocks = SIZE / BLOCK;
  const vy = new Int32Array(blocks * blocks);
  const vx = new Int32Array(blocks * blocks);
  let rest = 0;
  let residual = 0;
  for (let by = 0; by < blocks; by += 1) {
    for (let bx = 0; bx < blocks; bx += 1) {
      let best = Infinity;
      for (const [dy, dx] of DISPLACEMENTS) {
        const top = by * BLOCK + dy;
        const left = bx * BLOCK + dx;
        if (top < 0 || left < 0 || top + BLOCK > SIZE || left + BLOCK > SIZE) continue;
        let sad = 0;
        for (let y = 0; y < BLOCK; y += 1) {
          const rowA = (by * BLOCK + y) * SIZE + bx * BLOCK;
          const rowB = (top + y) * SIZE + left;
          for (let x = 0; x < BLOCK; x += 1) sad += Math.abs(b[rowB + x] - a[rowA + x]);
        }
        if (dy === 0 && dx === 0) rest += sad;
        if (sad < best) {
          best = sad;
          vy[by * blocks + bx] = dy;
          vx[by * blocks + bx] = dx;
        }
      }
      residual += best;
    }
  }
  const magnitudes = new Array(SEARCH + 1).fill(0);
  const directions = new Array(DIRECTIONS).fill(0);
  let netY = 0;
  let netX = 0;
  let total = 0;
  const moving = (i) => vy[i] !== 0 || vx[i] !== 0;
  for (let i = 0; i < blocks * blocks; i += 1) {
    magnitudes[Math.max(Math.abs(vy[i]), Math.abs(vx[i]))] += 1;
    total += Math.abs(vy[i]) + Math.abs(vx[i]);
    if (!moving(i)) continue;
    directions[direction(vy[i], vx[i])] += 1;
    netY += vy[i];
    netX += vx[i];
  }
  let disagreements = 0;
  for (let by = 0; by < blocks; by += 1) {
    for (let bx = 0; bx < blocks; bx += 1) {
      const i = by * blocks + bx;
      for (const j of [bx + 1 < blocks ? i + 1 : -1, by + 1 < blocks ? i + blocks : -1]) {
        if (j < 0) continue;
        if ((vy[i] !== vy[j] || vx[i] !== vx[j]) && (moving(i) || moving(j))) disagreements += 1;
      }
    }
  }
  return [
    ...histogram,
    ...cells,
    ...magnitudes,
    ...directions,
    rest,
    residual,
    netY,
    netX,
    total,
    disagreements,
  ];
}

function bestMs(run) {
  let best = Infinity;
  for (let i = 0; i < REPEATS; i += 1) {
    const started = process.hrtime.bigint();
    run();
    best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e6);
  }
  return best;
}

if (process.argv[2]) {
  const folder = process.argv[2];
  const spec = JSON.parse(readFileSync(join(folder, 'frames.json'), 'utf8'));
  const thumbnails = [];
  const thumbnailMs = [];
  for (const frame of spec.frames) {
    const rgb = readFileSync(join(folder, frame.file));
    thumbnails.push(greyThumbnail(rgb, frame.width, frame.height));
    thumbnailMs.push(bestMs(() => greyThumbnail(rgb, frame.width, frame.height)));
  }
  const counts = spec.pairs.map(([i, j]) => pairCounts(thumbnails[i], thumbnails[j]));
  const pairMs = spec.pairs.map(([i, j]) => bestMs(() => pairCounts(thumbnails[i], thumbnails[j])));
  console.log(
    JSON.stringify({ thumbnails: thumbnails.map((t) => Array.from(t)), counts, thumbnailMs, pairMs }),
  );
}
