"""The browser's CNN chunk against the server's, on the same frames, in one run.

    .venv/bin/python -m bench.browser_cnn [--frames 8] [--backends wasm,litert,webgl,cpu] [--cpu-frames 2]

Prints:
- per-frame time of the CNN chunk in headless Chromium by TF.js backend (the production worker
  and engine from static/js/build, fed the frames as ImageBitmaps) and by the LiteRT.js candidate
  (``litert``: the server's float32 .tflite on LiteRT.js's XNNPACK wasm build, one thread, in the
  worker of ``bench/litert_worker.js``), side by side with the server's fastest single-thread path
  (TFLite/XNNPACK, one interpreter thread) and Keras at batch 1 and batch N on the same frames; the
  browser's CPU (every Chromium process) and the server thread's CPU over the same loop; the cosine
  to Keras and whether the nsfw head picks the same class;
- bytes per frame on the websocket (a uint8 feature vector in a batch) against a JPEG of the same
  frame at the CNN's 224x224 input size (what shipping pixels instead of features would cost);
- what a viewer downloads: the model files (raw and gzip), the TF.js bundle and the wasm binary.

Frames: crops of a real photograph (matplotlib's ``grace_hopper.jpg``, from a pinned dependency)
and frames of the synthetic clips the tests use, all 640x360. Needs the browser build
(``node static/js/build.mjs``) and Debian's chromium. No database: artefacts are read from disk.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from bench.measure import process_cpu_s, tree_cpu_s
from tests.browser import launch_chromium

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "static" / "js" / "build"
WIDTH, HEIGHT = 640, 360
BENCH_PAGE = """<!doctype html><meta charset="utf-8"><title>browser CNN bench</title>
<script type="module">
let worker = null;
let reply = null;
let bitmaps = [];
let loadedAfterMs = null;
const WARM_UP_FRAMES = 4;
function call(message, transfer = []) {
  return new Promise((resolve) => { reply = resolve; worker.postMessage(message, transfer); });
}
// Load the model in a worker and decode the frames; inferAll then times only the inference loop.
window.loadBench = async (workerUrl, moduleWorker, options, count) => {
  const workerStarted = performance.now();
  worker = new Worker(workerUrl, moduleWorker ? { type: 'module' } : {});
  worker.onmessage = ({ data }) => reply(data);
  const loaded = await call({ type: 'load', options });
  if (loaded.type !== 'loaded') return { error: loaded.message };
  loadedAfterMs = performance.now() - workerStarted;
  // Warm-up frames, untimed: V8 compiles hot wasm functions again with its optimising tier in background
  // threads during the first inferences, which would otherwise count as the loop's CPU.
  for (let i = 0; i < WARM_UP_FRAMES; i += 1) {
    const bitmap = await createImageBitmap(await (await fetch(`/frames/${i % count}.png`)).blob());
    const warm = await call({ type: 'infer', id: -1 - i, frame: bitmap }, [bitmap]);
    if (warm.type !== 'features') return { error: warm.message };
  }
  bitmaps = [];
  for (let i = 0; i < count; i += 1) {
    bitmaps.push(await createImageBitmap(await (await fetch(`/frames/${i}.png`)).blob()));
  }
  return { report: loaded.report, isolated: self.crossOriginIsolated };
};
window.inferAll = async () => {
  const frames = [];
  for (const [i, bitmap] of bitmaps.entries()) {
    const started = performance.now();
    const result = await call({ type: 'infer', id: i, frame: bitmap }, [bitmap]);
    if (result.type !== 'features') return { error: result.message };
    frames.push({ ms: result.inferenceMs, roundTripMs: performance.now() - started, codes: Array.from(result.codes) });
  }
  worker.terminate();
  return { frames, firstFeatureMs: loadedAfterMs + frames[0].roundTripMs };
};
window.benchReady = true;
</script>"""


def photo_frames(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    import matplotlib
    from PIL import Image

    photo = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    frames = []
    for _ in range(count):
        scale = float(rng.uniform(0.5, 1.0))
        width, height = int(photo.width * scale), int(photo.width * scale * HEIGHT / WIDTH)
        left, top = int(rng.integers(0, photo.width - width + 1)), int(rng.integers(0, photo.height - height + 1))
        crop = photo.crop((left, top, left + width, top + height)).resize((WIDTH, HEIGHT), Image.BILINEAR)
        frames.append(np.asarray(crop))
    return frames


def synthetic_frames(count: int) -> list[np.ndarray]:
    from videos.synthetic import PATTERNS, iter_frames

    frames = []
    for pattern in PATTERNS:
        frames.extend(iter_frames(pattern, seconds=max(1, count), fps=1, width=WIDTH, height=HEIGHT, seed=3))
    return frames[:: max(1, len(frames) // count)][:count]


def png_bytes(frame: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="PNG")
    return out.getvalue()


def jpeg_224_bytes(frame: np.ndarray, quality: int) -> int:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(frame).resize((224, 224), Image.BILINEAR).save(out, format="JPEG", quality=quality)
    return len(out.getvalue())


class BenchHandler(SimpleHTTPRequestHandler):
    """Serves the build, the model files and the frames, cross-origin isolated like the player page."""

    def __init__(self, *args, routes: dict[str, Path], frames: list[bytes], **kwargs) -> None:
        self.routes = routes
        self.frames = frames
        super().__init__(*args, directory=str(BUILD), **kwargs)

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        super().end_headers()

    def do_GET(self) -> None:
        if self.path == "/":
            return self.reply(BENCH_PAGE.encode(), "text/html")
        if self.path.startswith("/frames/"):
            return self.reply(self.frames[int(self.path.split("/")[-1].removesuffix(".png"))], "image/png")
        for prefix, directory in self.routes.items():
            if self.path.startswith(prefix):
                return self.reply((directory / self.path.removeprefix(prefix)).read_bytes(), self.guess_type(self.path))
        self.send_error(404)
        return None

    def reply(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


LITERT = "litert"
LITERT_WASM = ROOT / "node_modules" / "@litertjs" / "core" / "wasm"
LITERT_WORKER = Path(__file__).with_name("litert_worker.js")


def build_litert_worker(directory: Path) -> None:
    """Bundle the LiteRT.js candidate's worker (a classic script: LiteRT.js's loader calls importScripts)."""
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists() or not LITERT_WASM.is_dir():
        raise RuntimeError("no esbuild or @litertjs/core in node_modules: run `npm ci`")
    subprocess.run(
        [str(esbuild), str(LITERT_WORKER), "--bundle", "--format=iife", f"--outfile={directory / 'worker.js'}"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def descendants_cpu_s() -> float:
    """CPU seconds of this process's descendants: Playwright's driver and every Chromium process."""
    return tree_cpu_s(os.getpid()) - process_cpu_s(os.getpid())


def browser_runs(base_url: str, runtimes: list[str], count_for: dict[str, int], options: dict) -> dict[str, dict]:
    """Each runtime in a fresh page: load, then the timed loop, with the browser's CPU counted around the loop."""
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            for runtime in runtimes:
                page = browser.new_page()
                page.goto(base_url)
                page.wait_for_function("window.benchReady === true")
                if runtime == LITERT:
                    worker = ["/litert-worker/worker.js", False, options]
                else:
                    worker = ["/build/worker.js", True, {**options, "forced": runtime}]
                loaded = page.evaluate(
                    "([url, module, options, count]) => window.loadBench(url, module, options, count)",
                    [*worker, count_for[runtime]],
                )
                if "error" in loaded:
                    results[runtime] = loaded
                    page.close()
                    continue
                cpu, wall = descendants_cpu_s(), time.perf_counter()
                result = page.evaluate("() => window.inferAll()")
                result["cpuS"], result["wallS"] = descendants_cpu_s() - cpu, time.perf_counter() - wall
                results[runtime] = {**loaded, **result}
                page.close()
        finally:
            browser.close()
    return results


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def server_tflite_pass(flatbuffer: bytes, inputs: np.ndarray) -> tuple[np.ndarray, list[float], float]:
    """The server's fastest single-thread path on the browser's inputs: TFLite/XNNPACK, one interpreter thread.

    Features, wall ms per frame, and the calling thread's CPU ms per frame (the interpreter runs on it).
    """
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=1)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    interpreter.set_tensor(input_index, inputs[:1])
    interpreter.invoke()  # warm-up: XNNPACK packs its weights on the first run
    features, walls = [], []
    cpu = time.thread_time()
    for frame in inputs:
        started = time.perf_counter()
        interpreter.set_tensor(input_index, frame[None])
        interpreter.invoke()
        features.append(interpreter.get_tensor(output_index)[0].copy())
        walls.append((time.perf_counter() - started) * 1000)
    return np.stack(features), walls, (time.thread_time() - cpu) * 1000 / len(inputs)


def measure(frames: int = 8, backends: Sequence[str] = ("wasm", LITERT, "webgl", "cpu"), cpu_frames: int = 2) -> dict:
    """Keras, the server's TFLite and each browser runtime on the same frames, wire bytes and download sizes.

    ``backends``: TF.js backends through the production worker, and ``litert`` (LiteRT.js, one thread).
    """
    if not (BUILD / "worker.js").exists():
        raise RuntimeError("no browser build: run `node static/js/build.mjs` first")

    import django

    django.setup()
    from django.conf import settings

    from inference import protocol
    from inference.ml import cnn, export
    from inference.ml.artefacts import ensure_artefacts
    from inference.ml.nsfw_head import WEIGHTS_FILE, load_nsfw_head
    from inference.ml.quantise import dequantise, quantise

    artefacts = ensure_artefacts(settings.HYDRA_MODEL_ROOT, settings.HYDRA_NSFWJS_DIR)
    manifest = artefacts.manifest
    rng = np.random.default_rng(7)
    images = photo_frames(frames - frames // 2, rng) + synthetic_frames(frames // 2)
    batch = np.stack(images)

    # Keras, the server's path, on the same RGB frames.
    model = cnn.load_feature_extractor(artefacts.directory)
    cnn.compute_features(model, batch[:1])  # warm-up
    keras_batch1 = []
    for frame in batch:
        started = time.perf_counter()
        cnn.compute_features(model, frame[None])
        keras_batch1.append((time.perf_counter() - started) * 1000)
    cnn.compute_features(model, batch)  # warm-up at this batch size (a new shape compiles a new graph)
    started = time.perf_counter()
    keras_features = cnn.compute_features(model, batch)
    keras_batch_n = (time.perf_counter() - started) * 1000 / len(batch)
    keras_ms = statistics.median(keras_batch1)
    head = load_nsfw_head(artefacts.directory / WEIGHTS_FILE)
    keras_classes = head.predict(keras_features).argmax(axis=1)

    # The server's fastest single-thread path, on the model's own inputs, before and after the browser runs
    # (the machine's load changes over a run; both passes count).
    flatbuffer = export.tflite_flatbuffer(model)
    inputs = np.asarray(cnn.preprocess(batch), dtype=np.float32)
    tflite_features, server_walls, server_cpu_before = server_tflite_pass(flatbuffer, inputs)

    # The browser, through the production worker and engine (TF.js) and the LiteRT.js candidate's worker.
    with tempfile.TemporaryDirectory(prefix="hydra-litert-") as workdir:
        work = Path(workdir)
        (work / "model.tflite").write_bytes(flatbuffer)
        if LITERT in backends:
            build_litert_worker(work)
        server = ThreadingHTTPServer(
            ("127.0.0.1", 0),
            partial(
                BenchHandler,
                routes={
                    "/build/": BUILD,
                    f"/models/{artefacts.content_hash}/": artefacts.directory,
                    "/litert-worker/": work,
                    "/litert/": LITERT_WASM,
                },
                frames=[png_bytes(frame) for frame in images],
            ),
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base_url = f"http://127.0.0.1:{server.server_port}/"
        try:
            runs = browser_runs(
                base_url,
                list(backends),
                {b: (min(cpu_frames, len(images)) if b == "cpu" else len(images)) for b in backends},
                {
                    "modelUrl": f"{base_url}models/{artefacts.content_hash}/model.json",
                    "hash": artefacts.content_hash,
                    "preprocessing": manifest["preprocessing"],
                    "quantisation": manifest["quantisation"],
                    "featureSize": manifest["feature_size"],
                    "wasmBase": f"{base_url}build/tfjs/",
                    "litertBase": f"{base_url}litert/",
                    "tfliteUrl": f"{base_url}litert-worker/model.tflite",
                },
            )
        finally:
            server.shutdown()
    _, walls_after, server_cpu_after = server_tflite_pass(flatbuffer, inputs)
    server_walls += walls_after
    server_tflite = {
        "threads": 1,
        "ms_per_frame": statistics.median(server_walls),
        "cpu_ms_per_frame": statistics.median([server_cpu_before, server_cpu_after]),
        "min_cosine_to_keras": float(cosine(tflite_features, keras_features).min()),
        "model_bytes": len(flatbuffer),
    }

    by_backend = {}
    for backend, result in runs.items():
        if "error" in result:
            by_backend[backend] = {"error": result["error"]}
            continue
        times = [frame["ms"] for frame in result["frames"]]
        codes = np.array([frame["codes"] for frame in result["frames"]], dtype=np.uint8)
        features = dequantise(codes)
        similarity = cosine(features, keras_features[: len(codes)])
        cpu_ms = result["cpuS"] * 1000 / len(times)
        by_backend[backend] = {
            "runtime": result["report"].get("runtime", "tfjs"),
            "wasm_binary": result["report"].get("wasmBinary"),
            "wasm_threads": result["report"].get("wasmThreads"),
            "ms_per_frame": statistics.median(times),
            "cpu_ms_per_frame": cpu_ms,
            "ms_per_frame_over_keras": statistics.median(times) / keras_ms,
            "ms_per_frame_over_server_tflite": statistics.median(times) / server_tflite["ms_per_frame"],
            "cpu_over_server_tflite": cpu_ms / server_tflite["cpu_ms_per_frame"],
            "load_ms": result["report"]["loadMs"],
            "first_feature_ms": result["firstFeatureMs"],
            "min_cosine_to_keras": float(similarity.min()),
            "same_codes": float((codes == quantise(keras_features[: len(codes)])).mean()),
            "same_head_class": bool((head.predict(features).argmax(axis=1) == keras_classes[: len(codes)]).all()),
            "cross_origin_isolated": result["isolated"],
            "frames": len(times),
        }

    feature_size = manifest["feature_size"]
    model_files = [artefacts.directory / name for name in artefacts.browser_files]
    scripts = [BUILD / "analysis.js", BUILD / "worker.js", *sorted((BUILD / "chunks").glob("*.js"))]
    wasm = BUILD / "tfjs" / "tfjs-backend-wasm-threaded-simd.wasm"
    litert_wasm = LITERT_WASM / "litert_wasm_internal.wasm"
    return {
        "frames": len(images),
        "frame_size": [WIDTH, HEIGHT],
        "model": artefacts.content_hash,
        "keras_batch1_ms": keras_ms,
        "keras_batch_n_ms": keras_batch_n,
        "keras_batch_n": len(batch),
        "quantisation_min_cosine": float(cosine(dequantise(quantise(keras_features)), keras_features).min()),
        "server_tflite": server_tflite,
        # What the player page runs today: the engine's wasm backend (TF.js) where no GPU backend wins.
        "chosen": "wasm",
        "backends": by_backend,
        "wire": {
            "features_batch_of_8": protocol.batch_size_bytes(8, feature_size) / 8,
            "features_batch_of_1": protocol.batch_size_bytes(1, feature_size),
            "jpeg_224_q75": statistics.median(jpeg_224_bytes(frame, 75) for frame in images),
            "jpeg_224_q90": statistics.median(jpeg_224_bytes(frame, 90) for frame in images),
        },
        "downloads": {
            "model_files": list(artefacts.browser_files),
            "model_bytes": sum(path.stat().st_size for path in model_files),
            "model_gzip_bytes": sum(len(gzip.compress(path.read_bytes(), 9)) for path in model_files),
            "script_bytes": sum(path.stat().st_size for path in scripts),
            "script_gzip_bytes": sum(len(gzip.compress(path.read_bytes(), 9)) for path in scripts),
            "wasm_bytes": wasm.stat().st_size,
            "tflite_bytes": len(flatbuffer),
            "tflite_gzip_bytes": len(gzip.compress(flatbuffer, 9)),
            "litert_wasm_bytes": litert_wasm.stat().st_size if litert_wasm.exists() else None,
            "litert_wasm_gzip_bytes": len(gzip.compress(litert_wasm.read_bytes(), 9)) if litert_wasm.exists() else None,
        },
    }


def print_report(result: dict) -> None:
    print(f"Frames: {result['frames']} at {WIDTH}x{HEIGHT} (photo crops and synthetic), model {result['model'][:12]}")
    print("\nCNN chunk, ms per frame (median; browser = fromPixels + preprocessing + predict + readback, in a worker)")
    print(f"  {'Keras batch 1':<26}{result['keras_batch1_ms']:>9.1f}")
    batch_label = f"Keras batch {result['keras_batch_n']}"
    print(f"  {batch_label:<26}{result['keras_batch_n_ms']:>9.1f}")
    print(
        f"  (uint8 quantisation alone: min cosine {result['quantisation_min_cosine']:.6f} between Keras features "
        "and their wire form)"
    )
    tflite = result["server_tflite"]
    print(
        f"  {'server TFLite, 1 thread':<26}{tflite['ms_per_frame']:>9.1f}  ({tflite['cpu_ms_per_frame']:.1f} CPU ms; "
        f"min cosine to Keras {tflite['min_cosine_to_keras']:.7f})"
    )
    for backend, figures in result["backends"].items():
        label = "LiteRT.js wasm" if backend == LITERT else f"TF.js {backend}"
        if "error" in figures:
            print(f"  {label:<26}{'unavailable':>9}  ({figures['error']})")
            continue
        print(
            f"  {label:<26}{figures['ms_per_frame']:>9.1f}  ({figures['cpu_ms_per_frame']:.1f} CPU ms of the browser) "
            f"= {figures['ms_per_frame_over_server_tflite']:.1f}x the server's TFLite "
            f"({figures['cpu_over_server_tflite']:.1f}x in CPU), {figures['ms_per_frame_over_keras']:.1f}x "
            f"Keras batch 1; binary {figures['wasm_binary']}, {figures['wasm_threads']} thread(s); "
            f"min cosine to Keras {figures['min_cosine_to_keras']:.6f}, same head class {figures['same_head_class']}, "
            f"same uint8 codes {figures['same_codes']:.2%}; model load {figures['load_ms']:.0f} ms; "
            f"first feature {figures['first_feature_ms']:.0f} ms after the worker started; "
            f"cross-origin isolated {figures['cross_origin_isolated']}; frames {figures['frames']}"
        )
    wire = result["wire"]
    per_frame = wire["features_batch_of_8"]
    print("\nBytes per frame on the wire (websocket payload)")
    print(f"  features, batch of 8      {per_frame:>9.0f}")
    print(f"  features, batch of 1      {wire['features_batch_of_1']:>9.0f}")
    for quality in (75, 90):
        jpeg = wire[f"jpeg_224_q{quality}"]
        print(f"  JPEG 224x224 quality {quality}   {jpeg:>9.0f}  ({jpeg / per_frame:.1f}x the features)")
    downloads = result["downloads"]
    print("\nWhat a viewer downloads once (cached immutably)")
    print(
        f"  model ({', '.join(downloads['model_files'])}): {downloads['model_bytes'] / 1e6:.2f} MB, "
        f"{downloads['model_gzip_bytes'] / 1e6:.2f} MB gzip"
    )
    print(
        f"  scripts (TF.js + client): {downloads['script_bytes'] / 1e6:.2f} MB, "
        f"{downloads['script_gzip_bytes'] / 1e6:.2f} MB gzip"
    )
    print(f"  wasm binary (threaded SIMD): {downloads['wasm_bytes'] / 1e6:.2f} MB")
    if downloads["litert_wasm_bytes"]:
        print(
            f"  LiteRT.js instead: model.tflite {downloads['tflite_bytes'] / 1e6:.2f} MB "
            f"({downloads['tflite_gzip_bytes'] / 1e6:.2f} MB gzip), wasm {downloads['litert_wasm_bytes'] / 1e6:.2f} MB "
            f"({downloads['litert_wasm_gzip_bytes'] / 1e6:.2f} MB gzip)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8, help="frames per backend (half photo, half synthetic)")
    parser.add_argument(
        "--backends", default="wasm,litert,webgl,cpu", help="TF.js backends and litert (LiteRT.js) to time"
    )
    parser.add_argument("--cpu-frames", type=int, default=2, help="frames for the slow cpu backend")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    try:
        result = measure(args.frames, backends, args.cpu_frames)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    print_report(result)


if __name__ == "__main__":
    main()
