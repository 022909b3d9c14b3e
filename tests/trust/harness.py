"""Adversarial simulation harness: honest and malicious viewers that speak the analysis websocket protocol.

Reusable by bench/. Three layers:

* **Ground truth** (``VideoTruth``): the server's own Keras features of a video's sample frames,
  and the features of the same frames as different browsers would paint them. Real browsers
  differ from the server mainly in how they convert YUV to RGB (Chromium's software path equals
  the server's libyuv emulation; GPU paths filter chroma bilinearly, round differently or use
  textbook float matrices): ``BROWSER_PROFILES`` are those paintings (inference.trust.paintings);
  an honest viewer sends the Keras features of its profile's frames, quantised like the browser
  does. docs/trust.md gives the measured spread.
* **Behaviours** (``Behaviour``): what a viewer sends for a sample: the honest features, or one
  of the lies of the threat model (random vectors, zeros, another video, another time, scaled,
  perturbed, crafted to flip the nudity head either way, or a lie shared by a colluding pair).
* **Viewers** (``run_viewer``): one websocket session that handshakes, says hello with its
  device id, and sends feature batches for exactly the sample times the server assigned. The
  transport is either a real websocket to a daphne process (``websockets``; the client address is
  given with X-Forwarded-For and daphne's ``--proxy-headers``) or Channels' in-process
  ``WebsocketCommunicator``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from inference.ml.nsfw_head import NsfwHead
from inference.ml.quantise import dequantise, quantise
from inference.trust import paintings
from inference.trust.agreement import Tolerance, compare_to_reference
from inference.trust.verification import configured_tolerance

# --- Ground truth: the server's features and those of different browsers ------------------------------------

BROWSER_PROFILES = tuple(paintings.PAINTINGS)
NUDE_CLASSES = ("hentai", "porn", "sexy")


@dataclass
class VideoTruth:
    """A video's sample times, the server's features for them, and each browser profile's features."""

    slug: str
    times: list[int]
    server: np.ndarray
    by_profile: dict[str, np.ndarray]

    def index(self, sample_ms: int) -> int:
        return self.times.index(sample_ms)


def video_truth(
    slug: str, path: Path, times: Sequence[int], features: Callable[[np.ndarray], np.ndarray]
) -> VideoTruth:
    """``features`` maps uint8 RGB frames to float32 features (the Keras CNN chunk)."""
    by_profile = {profile: features(paintings.painted_frames(path, times, profile)) for profile in BROWSER_PROFILES}
    return VideoTruth(slug=slug, times=list(times), server=by_profile["chromium-software"], by_profile=by_profile)


# --- Behaviours --------------------------------------------------------------------------------------------


class Behaviour(StrEnum):
    HONEST = "honest"
    RANDOM = "random"
    ZEROS = "zeros"
    OTHER_VIDEO = "other_video"
    OTHER_TIME = "other_time"
    SCALED = "scaled"
    PERTURBED = "perturbed"
    FLIP_TO_NUDE = "flip_to_nude"
    FLIP_TO_CLEAN = "flip_to_clean"
    COLLUDER = "colluder"
    IN_TOLERANCE = "in_tolerance"  # colluders' strongest lie toward clean that still agrees with the truth


MALICIOUS = tuple(b for b in Behaviour if b not in (Behaviour.HONEST, Behaviour.IN_TOLERANCE))
"""Lies the server can tell from an honest browser (an in-tolerance lie is by definition not one)."""


def crafted_toward(head: NsfwHead, vector: np.ndarray, classes: Sequence[str], *, steps: int = 60) -> np.ndarray:
    """Features pushed by gradient ascent until the head puts most probability on ``classes``.

    The attacker knows the head (it ships in the browser's nsfwjs): this is the strongest
    decision-flipping lie it can compute, kept inside the valid range [0, 6].
    """
    targets = [head.class_names.index(c) for c in classes]
    x = vector.astype(np.float64).copy()
    for _ in range(steps):
        activations = [x]
        for index, (kernel, bias) in enumerate(head.layers):
            z = activations[-1] @ kernel + bias
            activations.append(np.maximum(z, 0.0) if index < len(head.layers) - 1 else z)
        logits = activations[-1]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        mass = p[targets].sum()
        if mass > 0.95:
            break
        # d log(sum p_target) / d logits = p_target / mass - p (on target), -p elsewhere.
        grad = -p.copy()
        grad[targets] += p[targets] / mass
        for index in range(len(head.layers) - 1, -1, -1):
            kernel, _ = head.layers[index]
            grad_in = grad @ kernel.T
            if index > 0:
                grad_in = grad_in * (activations[index] > 0)
            grad = grad_in
        x = np.clip(x + 0.5 * grad / (np.abs(grad).max() + 1e-12), 0.0, 6.0)
    return x.astype(np.float32)


def strongest_in_tolerance(head: NsfwHead, truth: np.ndarray, target: np.ndarray, tolerance: Tolerance) -> np.ndarray:
    """The point nearest ``target`` on the segment from ``truth`` that still agrees with ``truth`` (bisection)."""
    low, high = 0.0, 1.0
    reference = dequantise(quantise(truth[None]))[0]
    for _ in range(30):
        middle = (low + high) / 2
        candidate = dequantise(quantise((truth + middle * (target - truth))[None]))
        if compare_to_reference(reference, candidate, head.predict, tolerance.window_weights)[0].within(tolerance):
            low = middle
        else:
            high = middle
    return (truth + low * (target - truth)).astype(np.float32)


def _seeded(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def lie(
    behaviour: Behaviour,
    truth: VideoTruth,
    sample_ms: int,
    *,
    others: Sequence[VideoTruth],
    head: NsfwHead,
    seed: str,
) -> np.ndarray:
    """The float32 features a malicious viewer sends for one sample. Colluders sharing ``seed`` send the same."""
    honest = truth.server[truth.index(sample_ms)]
    rng = _seeded(seed, truth.slug, sample_ms)
    if behaviour is Behaviour.RANDOM:
        return rng.uniform(0.0, 6.0, honest.shape).astype(np.float32)
    if behaviour is Behaviour.ZEROS:
        return np.zeros_like(honest)
    if behaviour is Behaviour.OTHER_VIDEO:
        other = others[int(rng.integers(len(others)))]
        return other.server[int(rng.integers(len(other.times)))]
    if behaviour is Behaviour.OTHER_TIME:
        return truth.server[(truth.index(sample_ms) + len(truth.times) // 2) % len(truth.times)]
    if behaviour is Behaviour.SCALED:
        return np.clip(honest * 1.4, 0.0, 6.0)
    if behaviour is Behaviour.PERTURBED:
        return np.clip(honest + rng.normal(0.0, 0.5, honest.shape), 0.0, 6.0).astype(np.float32)
    if behaviour is Behaviour.FLIP_TO_NUDE:
        return crafted_toward(head, honest, NUDE_CLASSES)
    if behaviour in (Behaviour.FLIP_TO_CLEAN, Behaviour.COLLUDER):
        return crafted_toward(head, honest, ("neutral",))
    if behaviour is Behaviour.IN_TOLERANCE:
        return strongest_in_tolerance(head, honest, crafted_toward(head, honest, ("neutral",)), configured_tolerance())
    raise ValueError(f"{behaviour} is not a lie")


# --- Viewers over a websocket -----------------------------------------------------------------------------


class Transport(Protocol):
    async def send_text(self, text: str) -> None: ...
    async def send_bytes(self, data: bytes) -> None: ...
    async def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next JSON message, or None when the server closed the connection."""

    async def close(self) -> None: ...


Connect = Callable[["Viewer", str], Awaitable[Transport]]


class WebsocketsTransport:
    """A real websocket (the ``websockets`` package) to a daphne process."""

    def __init__(self, connection) -> None:
        self.connection = connection

    @classmethod
    def connector(cls, base_url: str, origin: str) -> Connect:
        """``base_url`` like ws://127.0.0.1:PORT; the viewer's address travels in X-Forwarded-For."""
        import websockets

        async def connect(viewer: Viewer, path: str) -> Transport:
            headers = {"X-Forwarded-For": viewer.ip}
            connection = await websockets.connect(
                base_url + path, origin=origin, additional_headers=headers, max_size=2**20, open_timeout=30
            )
            return cls(connection)

        return connect

    async def send_text(self, text: str) -> None:
        await self.connection.send(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.connection.send(data)

    async def receive(self, timeout: float) -> dict[str, Any] | None:
        import websockets

        try:
            message = await asyncio.wait_for(self.connection.recv(), timeout)
        except websockets.ConnectionClosed:
            return None
        return json.loads(message)

    async def close(self) -> None:
        await self.connection.close()


class CommunicatorTransport:
    """Channels' in-process ``WebsocketCommunicator`` against the ASGI application."""

    def __init__(self, communicator) -> None:
        self.communicator = communicator

    @classmethod
    def connector(cls, application, origin: str = "http://testserver") -> Connect:
        from channels.testing import WebsocketCommunicator

        async def connect(viewer: Viewer, path: str) -> Transport:
            communicator = WebsocketCommunicator(application, path, headers=[(b"origin", origin.encode())])
            communicator.scope["client"] = [viewer.ip, 40000]
            connected, _ = await communicator.connect(timeout=30)
            if not connected:
                raise ConnectionError(f"{path} refused the websocket")
            return cls(communicator)

        return connect

    async def send_text(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def send_bytes(self, data: bytes) -> None:
        await self.communicator.send_to(bytes_data=data)

    async def receive(self, timeout: float) -> dict[str, Any] | None:
        message = await self.communicator.receive_output(timeout)
        if message["type"] == "websocket.close":
            return None
        return json.loads(message["text"])

    async def close(self) -> None:
        await self.communicator.disconnect()


@dataclass
class Viewer:
    """One simulated viewer: how it behaves and who it appears to be."""

    name: str
    behaviour: Behaviour
    profile: str = "chromium-software"
    device_id: str = ""
    ip: str = "127.0.0.1"
    seed: str = ""
    video: str = ""
    session_id: str = ""
    assigned: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    closed: bool = False

    @property
    def malicious(self) -> bool:
        return self.behaviour is not Behaviour.HONEST

    def features(self, truth: VideoTruth, sample_ms: int, others: Sequence[VideoTruth], head: NsfwHead) -> bytes:
        if self.behaviour is Behaviour.HONEST:
            vector = truth.by_profile[self.profile][truth.index(sample_ms)]
        else:
            vector = lie(self.behaviour, truth, sample_ms, others=others, head=head, seed=self.seed or self.name)
        return quantise(vector).tobytes()


async def run_viewer(
    viewer: Viewer,
    connect: Connect,
    truth: VideoTruth,
    *,
    others: Sequence[VideoTruth],
    head: NsfwHead,
    backend: str = "wasm",
    batch: int = 4,
    timeout: float = 60.0,
) -> Viewer:
    """Watch one video: handshake, hello, then send every assigned sample in batches and read the answers."""
    from inference import protocol

    viewer.video = truth.slug
    transport = await connect(viewer, f"/ws/analysis/{truth.slug}/")
    try:
        handshake = await transport.receive(timeout)
        if handshake is None or handshake.get("type") != "handshake":
            viewer.errors.append(f"no handshake: {handshake}")
            return viewer
        viewer.session_id = handshake["session"]
        viewer.assigned = [t for t in handshake["sample_ms"] if t not in set(handshake.get("done_ms", []))]
        await transport.send_text(json.dumps({"type": "hello", "backend": backend, "device_id": viewer.device_id}))
        ready = await transport.receive(timeout)
        if ready is None or ready.get("type") != "ready":
            viewer.errors.append(f"no ready: {ready}")
            return viewer
        size = handshake["model"]["feature_size"]
        for seq, start in enumerate(range(0, len(viewer.assigned), batch)):
            samples = [
                protocol.FrameSample(t, 50.0, viewer.features(truth, t, others, head))
                for t in viewer.assigned[start : start + batch]
            ]
            await transport.send_bytes(protocol.encode_feature_batch(seq, samples, size))
            answer = await transport.receive(timeout)
            if answer is None:
                viewer.closed = True
                break
            if answer.get("type") == "ack":
                viewer.accepted.extend(answer["accepted"])
            else:
                viewer.errors.append(str(answer.get("code")))
                if answer.get("fatal"):
                    viewer.closed = True
                    break
    finally:
        await transport.close()
    return viewer


async def watch_together(
    audiences: dict[str, list[Viewer]], truths: dict[str, VideoTruth], connect: Connect, head: NsfwHead
) -> None:
    """Every viewer of every video at the same time; ``audiences`` and ``truths`` are keyed alike."""
    await asyncio.gather(
        *(
            run_viewer(viewer, connect, truths[key], others=[t for k, t in truths.items() if k != key], head=head)
            for key, viewers in audiences.items()
            for viewer in viewers
        )
    )


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def wire_roundtrip(vector: np.ndarray) -> np.ndarray:
    """What the server reads back from a vector a browser sent (uint8 on the wire)."""
    return dequantise(quantise(vector))
