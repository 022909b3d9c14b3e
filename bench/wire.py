"""(4) Bytes per frame on the websocket, against shipping the frame itself.

Features: the actual binary batch (``inference.protocol.encode_feature_batch``, docs/protocol.md)
of the client's usual batch (64 samples), plus the websocket frame header a browser adds to each message
(client frames are masked: 2 + 2 length + 4 mask bytes for 126..65535 bytes), per frame; the
server's JSON ack is counted separately. The alternatives are the same frame at the CNN's input
size, 224x224: as JPEG at quality 85 (PIL, ``bench.browser_cnn.jpeg_224_bytes``) and as raw RGB.
JPEG size depends on the picture, so it is measured on rendition frames and on crops of a real
photograph, medians reported.
"""

from __future__ import annotations

import json

import numpy as np

from bench.measure import median

CLIENT_BATCH = 64  # static/js/src/client.js BATCH_TARGET
JPEG_QUALITY = 85
INPUT_SIZE = 224  # the CNN input the JPEG and raw alternatives are sized to


def websocket_frame_overhead(payload_bytes: int, masked: bool) -> int:
    """RFC 6455 frame header bytes for one unfragmented message of this payload size."""
    length_bytes = 0 if payload_bytes < 126 else 2 if payload_bytes < 65536 else 8
    return 2 + length_bytes + (4 if masked else 0)


def feature_bytes_per_frame(feature_size: int, batch: int = CLIENT_BATCH) -> dict[str, float]:
    from inference import protocol

    samples = [
        protocol.FrameSample(sample_ms=1000 * i, inference_ms=50.0, vector=bytes(feature_size)) for i in range(batch)
    ]
    payload = len(protocol.encode_feature_batch(7, samples, feature_size))
    ack = len(json.dumps(protocol.ack_message(7, [s.sample_ms for s in samples], []), separators=(",", ":")))
    return {
        "batch": batch,
        "payload_bytes_per_frame": payload / batch,
        "websocket_bytes_per_frame": (payload + websocket_frame_overhead(payload, masked=True)) / batch,
        "ack_bytes_per_frame": (ack + websocket_frame_overhead(ack, masked=False)) / batch,
    }


def measure(frames_by_source: dict[str, np.ndarray], feature_size: int) -> dict:
    from bench.browser_cnn import jpeg_224_bytes

    features = feature_bytes_per_frame(feature_size)
    jpeg = {
        name: median(jpeg_224_bytes(frame, JPEG_QUALITY) for frame in frames)
        for name, frames in frames_by_source.items()
    }
    raw = INPUT_SIZE * INPUT_SIZE * 3
    per_frame = features["websocket_bytes_per_frame"]
    return {
        "features": features,
        "bytes_per_frame": per_frame,
        "jpeg_q85_224_bytes": jpeg,
        "jpeg_q85_224_bytes_median": median(jpeg.values()),
        "raw_rgb_224_bytes": raw,
        "jpeg_over_features": {name: size / per_frame for name, size in jpeg.items()},
        "raw_over_features": raw / per_frame,
    }
