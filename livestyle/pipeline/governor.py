"""A frame-rate governor for live sources: it holds the source's frame rate (at most 30 fps) by
changing the inference scale in steps, and gives the scale back when the machine has room again.

It is fed the inference time of each frame. When the median over a short window passes the frame
interval (less a little headroom), it steps the scale down, as far as its model of the time says
is needed; it steps up one step at a time, only after a second or so at a scale, and only when the
next scale up would still leave a clear margin (hysteresis, so that a noisy load does not swing it
between two scales). After each change it waits for a few frames before it judges again.

The model: time = fixed + variable × scale². The fixed part (resizing, the upsample at full size,
conversions) is fitted to the median times last seen at each scale; before two scales have been
seen it is taken as zero, which predicts too little gain from stepping down and too much cost from
stepping up, so the first steps are cautious ones.
"""
from __future__ import annotations

import statistics
from collections import deque

from livestyle.errors import EngineOptionError

SCALES = (1.0, 0.85, 0.7, 0.6, 0.5, 0.4)  # pixel counts 100, 72, 49, 36, 25, 16%
MAX_FPS = 30.0
HEADROOM = 0.9  # step down when a frame takes more than this share of the frame interval
UP_MARGIN = 0.8  # step up when the next scale up is predicted to fit in this share of that budget
WINDOW = 8  # frames whose median time is judged
SETTLE = 6  # frames at a new scale before judging again
UP_SETTLE = 30  # frames at a scale before stepping up: down fast, up slowly, so a noisy load does not swing it


class FrameRateGovernor:
    """Chooses the inference scale from measured inference times (seconds per frame).

    ``target_fps``: the source's frame rate (capped at MAX_FPS). ``scales``: the steps, from 1 down.
    ``observe(seconds)`` returns the new scale when it changes, else None; ``apply(engine)`` sets the
    current scale on an engine (one with ``set_infer_scale``, or a chain whose style stage has it).
    """

    def __init__(self, target_fps: float, *, scales: tuple[float, ...] = SCALES, headroom: float = HEADROOM,
                 up_margin: float = UP_MARGIN, window: int = WINDOW, settle: int = SETTLE,
                 up_settle: int = UP_SETTLE):
        if not target_fps > 0:
            raise EngineOptionError(f"the governor needs a positive frame rate, got {target_fps}")
        if not scales or scales[0] != 1.0 or any(b >= a for a, b in zip(scales, scales[1:])) or scales[-1] <= 0:
            raise EngineOptionError(f"governor scales must start at 1 and fall, got {scales}")
        self.target_fps = min(float(target_fps), MAX_FPS)
        self.budget_s = headroom / self.target_fps
        self.scales, self.up_margin, self.settle, self.up_settle = tuple(scales), up_margin, settle, up_settle
        self.index = 0
        self.changes = 0
        self.lowest = 1.0
        self._times: deque[float] = deque(maxlen=window)
        self._since_change = 0
        self._seen: dict[int, float] = {}  # scale index → the median time last judged there

    @property
    def scale(self) -> float:
        return self.scales[self.index]

    def observe(self, seconds: float) -> float | None:
        """One frame's inference time; returns the new scale where the governor changes it."""
        self._times.append(seconds)
        self._since_change += 1
        if self._since_change < self.settle or len(self._times) < self._times.maxlen // 2:
            return None
        typical = statistics.median(self._times)
        self._seen[self.index] = typical
        index = self.index
        if typical > self.budget_s and index < len(self.scales) - 1:
            # the first scale predicted to fit, at least one step down
            index += 1
            while index < len(self.scales) - 1 and self.predict(typical, index) > self.budget_s:
                index += 1
        elif (index > 0 and self._since_change >= self.up_settle
              and self.predict(typical, index - 1) < self.up_margin * self.budget_s):
            index -= 1
        if index == self.index:
            return None
        self.index = index
        self.changes += 1
        self.lowest = min(self.lowest, self.scale)
        self._times.clear()
        self._since_change = 0
        return self.scale

    def fixed_seconds(self, typical: float) -> float:
        """The part of a frame's time that does not shrink with the scale: a least-squares fit of
        time = fixed + variable × scale² over the scales seen (0 until two have been), kept within
        [0, 0.8 × ``typical``] (the current time) so that a stale figure cannot stop all steps."""
        if len(self._seen) < 2:
            return 0.0
        xs = [self.scales[i] ** 2 for i in self._seen]
        ys = list(self._seen.values())
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        return min(max(0.0, my - slope * mx), 0.8 * typical)

    def predict(self, typical: float, index: int) -> float:
        """Seconds a frame would take at ``scales[index]``, from ``typical`` at the current scale."""
        fixed = self.fixed_seconds(typical)
        return fixed + (typical - fixed) * (self.scales[index] / self.scale) ** 2

    def apply(self, engine) -> bool:
        """Set the current scale on ``engine`` (or its style stage); False where it has no variable scale."""
        target = engine if hasattr(engine, "set_infer_scale") else getattr(engine, "style_engine", None)
        if target is None or not hasattr(target, "set_infer_scale"):
            return False
        target.set_infer_scale(self.scale)
        return True

    def summary(self) -> str:
        """One line for the end of a run: the scale in use, and how it moved."""
        moved = f", lowest {self.lowest:.0%}, {self.changes} change{'' if self.changes == 1 else 's'}" \
            if self.changes else ", never changed"
        return f"inference scale {self.scale:.0%} (governor for {self.target_fps:g} fps{moved})"
