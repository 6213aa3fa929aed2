"""What a pipeline run measured: per-stage fps, drops, end-to-end latency and throughput."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from livestyle.io.sinks import RunStatus
from livestyle.io.sources import Frame
from livestyle.io.progress import format_rate


@dataclass
class StageStats:
    """Frames handled by one stage and the time it spent working on them (waiting excluded)."""

    name: str
    frames: int = 0
    busy_s: float = 0.0

    def add(self, frames: int, seconds: float) -> None:
        self.frames += frames
        self.busy_s += seconds

    @property
    def fps(self) -> float:
        return self.frames / self.busy_s if self.busy_s > 0 else 0.0


@dataclass
class PipelineStats:
    """Live and final numbers: per-stage fps, drops, end-to-end latency and throughput."""

    stages: dict[str, StageStats] = field(default_factory=dict)
    frames_out: int = 0
    dropped: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    latency_last_s: float = 0.0
    latency_total_s: float = 0.0
    recent_fps: float = 0.0  # exponential moving average of the output rate (the overlay's FPS)
    _last_out: float | None = None

    def stage(self, name: str) -> StageStats:
        if name not in self.stages:
            self.stages[name] = StageStats(name)
        return self.stages[name]

    def frame_out(self, frame: Frame) -> None:
        now = time.perf_counter()
        self.frames_out += 1
        self.latency_last_s = now - frame.captured_at
        self.latency_total_s += self.latency_last_s
        if self._last_out is not None and now > self._last_out:
            instant = 1.0 / (now - self._last_out)
            self.recent_fps = instant if self.recent_fps == 0 else 0.9 * self.recent_fps + 0.1 * instant
        self._last_out = now

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def fps(self) -> float:
        """End-to-end frames per second over the whole run."""
        return self.frames_out / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def latency_mean_s(self) -> float:
        return self.latency_total_s / self.frames_out if self.frames_out else 0.0

    def summary(self) -> str:
        """One line: frames, drops, end-to-end fps and latency, average fps of each stage."""
        stages = ", ".join(f"{s.name} {format_rate(s.fps, 'frame')}" for s in self.stages.values() if s.frames)
        return (f"{self.frames_out} frames, {self.dropped} dropped, {self.elapsed_s:.2f} s, end-to-end "
                f"{format_rate(self.fps, 'frame')}, latency {1000 * self.latency_mean_s:.0f} ms; stages: {stages}")

    def to_dict(self) -> dict:
        return {
            "frames": self.frames_out, "dropped": self.dropped, "seconds": round(self.elapsed_s, 4),
            "fps": round(self.fps, 3), "latency_mean_ms": round(1000 * self.latency_mean_s, 3),
            "stages": {s.name: {"frames": s.frames, "busy_s": round(s.busy_s, 4), "fps": round(s.fps, 3)}
                       for s in self.stages.values()},
        }


@dataclass
class PipelineResult:
    """How a run ended: ``status`` is "complete" (end of input or quit key), "interrupted" or "failed"."""

    status: RunStatus
    stats: PipelineStats
    stuck_threads: list[str] = field(default_factory=list)
