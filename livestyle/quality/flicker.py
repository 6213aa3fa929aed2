"""Temporal stability of a stylised video: the warping error of Lai et al. (ECCV 2018, "Learning
Blind Video Temporal Consistency"): how much a stylised frame differs from the previous stylised
frame carried along the motion of the *input*, over the pixels that motion explains (not occluded).
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from livestyle.errors import InputError
from livestyle.postprocess.flow import consistent_flow_mask, dis_flow, resize_flow, to_gray, warp_by_flow
from livestyle.postprocess.stabilizer import Stabilizer

def warping_error(previous_output: np.ndarray, output: np.ndarray, previous_input: np.ndarray,
                  current_input: np.ndarray) -> tuple[float, float]:
    """Warping error between two consecutive outputs (uint8 RGB), motion from the inputs (uint8 RGB).

    Returns (mean squared difference in [0, 1] units over non-occluded pixels and channels,
    fraction of pixels that were non-occluded). Outputs may be larger than inputs (SR): the flow
    is resized to the output's size.
    """
    gray_prev, gray_cur = to_gray(previous_input), to_gray(current_input)
    backward = dis_flow(gray_cur, gray_prev)
    forward = dis_flow(gray_prev, gray_cur)
    mask = consistent_flow_mask(backward, forward)
    oh, ow = output.shape[:2]
    if (oh, ow) != backward.shape[:2]:
        backward = resize_flow(backward, (ow, oh))
        mask = cv2.resize(mask.astype(np.uint8), (ow, oh), interpolation=cv2.INTER_NEAREST).astype(bool)
    warped = warp_by_flow(previous_output, backward) / 255.0
    diff = ((output.astype(np.float32) / 255.0 - warped) ** 2).mean(-1)
    valid = int(mask.sum())
    return (float(diff[mask].mean()) if valid else 0.0), valid / mask.size


class FlickerMeter:
    """Flicker score of a stylised video, fed frame by frame: ``meter.update(input_rgb, output_rgb)``.

    ``score``: the mean warping error over consecutive frame pairs (Lai et al. 2018; lower = steadier),
    in squared [0, 1] units; ``per_pair`` keeps each pair's value, ``coverage`` the mean fraction of
    non-occluded pixels. Both frames uint8 RGB (H, W, 3); the output may be larger (SR).
    """

    def __init__(self):
        self.per_pair: list[float] = []
        self.coverages: list[float] = []
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, input_rgb: np.ndarray, output_rgb: np.ndarray) -> None:
        if self._previous is not None:
            error, coverage = warping_error(self._previous[1], output_rgb, self._previous[0], input_rgb)
            self.per_pair.append(error)
            self.coverages.append(coverage)
        self._previous = (input_rgb, output_rgb)

    @property
    def score(self) -> float:
        return float(np.mean(self.per_pair)) if self.per_pair else 0.0

    @property
    def coverage(self) -> float:
        return float(np.mean(self.coverages)) if self.coverages else 0.0


@dataclass
class FlickerComparison:
    """Flicker score of one clip without and with the ``Stabilizer``, and what each costs per frame."""

    frames: int
    flicker: float  # mean warping error, squared [0, 1] units (FlickerMeter)
    flicker_stabilized: float
    coverage: float  # mean fraction of non-occluded pixels the score is taken over
    stylize_ms: float  # per frame, median
    stabilize_ms: float  # per frame, median
    cuts: int

    @property
    def reduction(self) -> float:
        """Fraction by which stabilising lowered the flicker score (0.3 = 30% lower)."""
        return 1.0 - self.flicker_stabilized / self.flicker if self.flicker > 0 else 0.0

    @property
    def extra_time(self) -> float:
        """Stabiliser time as a fraction of the stylising time per frame."""
        return self.stabilize_ms / self.stylize_ms if self.stylize_ms > 0 else 0.0

    def to_dict(self) -> dict:
        return {**self.__dict__, "reduction": self.reduction, "extra_time": self.extra_time}


def compare_flicker(frames, stylize: Callable[[np.ndarray], np.ndarray], *, stabilizer=None,
                    max_frames: int | None = None) -> FlickerComparison:
    """Stylise ``frames`` (iterable of uint8 RGB (H, W, 3)) once, score flicker without and with stabilising.

    ``stylize``: uint8 RGB frame → uint8 RGB stylised frame (any size); ``stabilizer``: a
    ``Stabilizer`` (default settings if None). Both outputs come from the same
    stylised frames, so the difference is the stabiliser's alone.
    """
    stabilizer = stabilizer or Stabilizer()
    raw, steady = FlickerMeter(), FlickerMeter()
    stylize_s, stabilize_s = [], []
    for count, frame in enumerate(frames):
        if max_frames is not None and count >= max_frames:
            break
        t0 = time.perf_counter()
        out = stylize(frame)
        t1 = time.perf_counter()
        steadied = stabilizer(frame, out)
        t2 = time.perf_counter()
        stylize_s.append(t1 - t0)
        stabilize_s.append(t2 - t1)
        raw.update(frame, out)
        steady.update(frame, steadied)
    if len(stylize_s) < 2:
        raise InputError("a flicker score needs at least two frames")
    return FlickerComparison(len(stylize_s), raw.score, steady.score, raw.coverage,
                             1000 * statistics.median(stylize_s), 1000 * statistics.median(stabilize_s),
                             stabilizer.cuts)
