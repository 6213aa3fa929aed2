"""Live controls applied to each frame after the network: style strength, colour preservation, cross-fades.

Every function takes RGB frames as HWC numpy arrays, either uint8 (0–255) or float32 in [0, 1],
and returns the stylised frame's dtype and size. When the stylised frame is larger than the content
(super-resolution chains) the content is resized to it first.

``FramePostprocess`` bundles the three for the video/camera pipeline:
``post(content_rgb_uint8, stylised_rgb_uint8) -> uint8 frame``, the pipeline's ``PostProcess`` hook
(``InferStage(engine, postprocess=[post])`` in ``livestyle.pipeline.infer``). Its attributes may be
changed between frames (camera keys: ``adjust_strength(±0.1)``, ``preserve_colors = not …``), and
``switch_style()`` (e.g. from cam's style-switch hook) starts a cross-fade.
"""
from __future__ import annotations

import cv2
import numpy as np

from livestyle.errors import InputError
from livestyle.postprocess.stabilizer import Stabilizer


def _match_size(content: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """``content`` resized to (H, W): bicubic when enlarging, area-averaged when shrinking."""
    h, w = size_hw
    if content.shape[:2] == (h, w):
        return content
    enlarge = h * w > content.shape[0] * content.shape[1]
    resized = cv2.resize(content, (w, h), interpolation=cv2.INTER_CUBIC if enlarge else cv2.INTER_AREA)
    return np.clip(resized, 0.0, 1.0) if resized.dtype != np.uint8 else resized


def _as_dtype_of(frame: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``frame`` converted to ``like``'s representation (uint8 0–255 or float in [0, 1])."""
    if frame.dtype == like.dtype:
        return frame
    if like.dtype == np.uint8:
        return (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return frame.astype(like.dtype) / (255.0 if frame.dtype == np.uint8 else 1.0)


def _check_frames(content: np.ndarray, stylised: np.ndarray) -> None:
    for name, frame in (("content", content), ("stylised", stylised)):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"{name} frame must be (H, W, 3) RGB, got shape {frame.shape}")


def blend_strength(content: np.ndarray, stylised: np.ndarray, strength: float) -> np.ndarray:
    """``strength`` · stylised + (1 − strength) · content; strength in [0, 1] (clipped), content resized to fit."""
    _check_frames(content, stylised)
    strength = float(min(max(strength, 0.0), 1.0))
    if strength >= 1.0:
        return stylised
    content = _as_dtype_of(_match_size(content, stylised.shape[:2]), stylised)
    if strength <= 0.0:
        return content
    if stylised.dtype == np.uint8:
        return cv2.addWeighted(stylised, strength, content, 1.0 - strength, 0.0)
    return (strength * stylised + (1.0 - strength) * content).astype(stylised.dtype)


def preserve_colors(content: np.ndarray, stylised: np.ndarray) -> np.ndarray:
    """The stylised frame's luma with the content's chroma (YCrCb, BT.601): style as texture, colours kept.

    Luminance-only transfer as in Gatys et al., "Preserving Color in Neural Artistic Style Transfer" (2016).
    """
    _check_frames(content, stylised)
    content = _as_dtype_of(_match_size(content, stylised.shape[:2]), stylised)
    work = np.float32 if stylised.dtype != np.uint8 else np.uint8
    styled_ycc = cv2.cvtColor(stylised.astype(work, copy=False), cv2.COLOR_RGB2YCrCb)
    content_ycc = cv2.cvtColor(content.astype(work, copy=False), cv2.COLOR_RGB2YCrCb)
    content_ycc[..., 0] = styled_ycc[..., 0]
    rgb = cv2.cvtColor(content_ycc, cv2.COLOR_YCrCb2RGB)
    return np.clip(rgb, 0.0, 1.0).astype(stylised.dtype) if work is np.float32 else rgb


class CrossFade:
    """Fades from the last frame shown before a style switch to the new style's frames over ``frames`` frames.

    Call the object on every output frame; it returns the frame (blended during a fade) and
    remembers it. ``start()`` at the switch. The old frame is held still during the fade (running
    both styles at once would double the work), so keep fades short (a few tenths of a second).
    """

    def __init__(self, frames: int = 8):
        if frames < 1:
            raise ValueError(f"a cross-fade needs at least 1 frame, got {frames}")
        self.frames = frames
        self._last: np.ndarray | None = None
        self._from: np.ndarray | None = None
        self._step = 0

    @property
    def active(self) -> bool:
        return self._from is not None

    def start(self) -> None:
        """Begin a fade from the last frame returned (no-op before the first frame)."""
        if self._last is not None:
            self._from, self._step = self._last.copy(), 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self._from is not None:
            self._step += 1
            weight = self._step / (self.frames + 1)  # never all-old nor all-new mid-fade
            previous = _as_dtype_of(_match_size(self._from, frame.shape[:2]), frame)
            frame = blend_strength(previous, frame, weight)
            if self._step >= self.frames:
                self._from = None
        self._last = frame
        return frame


class FramePostprocess:
    """Per-frame effects for the pipeline: ``post(content_rgb_uint8, stylised_rgb_uint8) -> uint8``.

    ``strength`` in [0, 1] (1: the network's output), ``preserve_colors`` (keep the content's
    colours), ``crossfade`` (a ``CrossFade``, started by ``switch_style()``). Order: colours, then
    strength, then the fade. Attributes may be changed between calls (e.g. from camera keys).
    Content frames smaller than the stylised ones (SR chains) are resized up to them.
    """

    def __init__(self, *, strength: float = 1.0, preserve_colors: bool = False, fade_frames: int = 8):
        if not 0.0 <= strength <= 1.0:
            raise InputError(f"--strength must be a number in [0, 1], got {strength}")
        self.strength = strength
        self.preserve_colors = preserve_colors
        self.crossfade = CrossFade(fade_frames)

    @property
    def is_identity(self) -> bool:
        """True when the frame would pass through unchanged (callers may skip the call)."""
        return self.strength >= 1.0 and not self.preserve_colors and not self.crossfade.active

    def switch_style(self) -> None:
        """Call when the style changes: the next frames fade in from the current one."""
        self.crossfade.start()

    def adjust_strength(self, delta: float) -> float:
        """Change the strength by ``delta`` (clipped to [0, 1]); returns the new value."""
        self.strength = float(min(max(self.strength + delta, 0.0), 1.0))
        return self.strength

    def __call__(self, content: np.ndarray, stylised: np.ndarray) -> np.ndarray:
        frame = stylised
        if self.preserve_colors:
            frame = preserve_colors(content, frame)
        if self.strength < 1.0:
            frame = blend_strength(content, frame, self.strength)
        return self.crossfade(frame)


def frame_postprocessors(*, strength: float = 1.0, preserve_colors: bool = False, stabilize: bool = False,
                         live: bool = False) -> tuple[list, FramePostprocess]:
    """The per-frame hooks for these options, in order, and the ``FramePostprocess`` among them.

    Temporal stabilisation comes first (it compares raw network outputs), then the effects. The
    ``FramePostprocess`` is returned even when it does nothing; ``live`` keeps it in the hooks so
    that keys can change it and style switches cross-fade.
    """
    effects = FramePostprocess(strength=strength, preserve_colors=preserve_colors)
    hooks = [Stabilizer()] if stabilize else []
    if live or not effects.is_identity:
        hooks.append(effects)
    return hooks, effects
