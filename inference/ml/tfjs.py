"""Run a TF.js layers model in node (plain @tensorflow/tfjs, cpu backend) from Python.

Used by the parity tests and bench scripts to compare what the browser's library computes
with Keras, without a browser: ``tfjs_run.cjs`` preprocesses frames exactly as nsfwjs does.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

RUNNER = Path(__file__).with_name("tfjs_run.cjs")


def run_tfjs(
    frames_rgb: np.ndarray, outputs: list[str], *, model_dir: Path | None = None, nsfwjs_dir: Path | None = None
) -> dict[str, np.ndarray]:
    """Layer outputs float32[N, ...] for uint8 frames [N, H, W, 3], from an exported model or nsfwjs's own."""
    if (model_dir is None) == (nsfwjs_dir is None):
        raise ValueError("give exactly one of model_dir and nsfwjs_dir")
    frames = np.ascontiguousarray(frames_rgb, dtype=np.uint8)
    with tempfile.TemporaryDirectory(prefix="tfjs-") as workdir:
        work = Path(workdir)
        frames.tofile(work / "frames.u8")
        spec = {
            "frames": str(work / "frames.u8"),
            "shape": list(frames.shape),
            "outputs": outputs,
            "out": str(work / "out.json"),
        }
        spec["model_dir" if model_dir is not None else "nsfwjs_dir"] = str(model_dir or nsfwjs_dir)
        (work / "spec.json").write_text(json.dumps(spec))
        result = subprocess.run(
            ["node", str(RUNNER), str(work / "spec.json")], capture_output=True, text=True, timeout=900
        )
        if result.returncode != 0:
            raise RuntimeError(f"TF.js run failed: {result.stderr[-2000:]}")
        values = json.loads((work / "out.json").read_text())["outputs"]
    return {name: np.asarray(rows, dtype=np.float32) for name, rows in values.items()}
