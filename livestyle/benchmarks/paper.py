"""The paper's speed comparison (Johnson et al. 2016, Table 1): Gatys optimisation vs one feed-forward pass.

For each image size: the time of Gatys et al.'s L-BFGS optimisation after each iteration count,
the median time of one forward pass of the style transform network per backend, and the speedup;
reported beside the paper's GTX Titan X figures as JSON, Markdown and a PNG plot, with the machine.

Timing does not depend on weight values, so the transform net has random weights and the loss
network random ones too unless a weights file is given (either way the report says which).
``extrapolate``: time a few Gatys iterations and scale them linearly; every such figure is marked.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from livestyle.benchmarks.machine import machine_info
from livestyle.benchmarks.timing import p90, timer
from livestyle.engines.device import resolve_device, synchronize
from livestyle.engines.factory import create_engine
from livestyle.errors import InsufficientMemoryError, is_out_of_memory
from livestyle.models.transform import transform_net
from livestyle.quality.gatys import GatysConfig, optimize_image
from livestyle.quality.objective import ObjectiveConfig, build_objective

# Johnson et al. 2016, Table 1 (GTX Titan X, VGG-16 loss network, L-BFGS): seconds.
PAPER_DEVICE = "NVIDIA GTX Titan X (paper, Table 1)"
PAPER_GATYS = {256: {100: 3.17, 300: 9.52, 500: 15.86},
               512: {100: 10.97, 300: 32.91, 500: 54.85},
               1024: {100: 42.89, 300: 128.66, 500: 214.44}}
PAPER_FEEDFORWARD = {256: 0.015, 512: 0.05, 1024: 0.21}
SCHEMA = "livestyle.bench/1"
EXTRAPOLATED_MARK = "≈"  # prefixed to every extrapolated figure in text outputs


@dataclass(frozen=True)
class BenchConfig:
    """What to time. ``backends``: engine backends for the feed-forward pass (``livestyle.engines``).

    ``extrapolate``: time ``extrapolate_iterations`` Gatys iterations and scale (marked in every output).
    ``loss_net_weights=None``: random loss-network weights (timing does not depend on them).
    """

    sizes: tuple[int, ...] = (256, 512, 1024)
    iterations: tuple[int, ...] = (100, 300, 500)
    backends: tuple[str, ...] = ("torch",)
    device: str = "auto"
    precision: str = "auto"
    loss_net: str = "vgg16"  # the paper's, so the Gatys times compare with its table
    loss_net_weights: str | None = None
    optimizer: str = "lbfgs"
    extrapolate: bool = False
    extrapolate_iterations: int = 5
    gatys_warmup_iterations: int = 2
    feedforward_warmup: int = 3
    feedforward_runs: int = 30  # at most; fewer where ``feedforward_seconds`` runs out (≥ 3)
    feedforward_seconds: float = 20.0
    width: int = 32  # transform net (the paper's: 32, 5 blocks)
    blocks: int = 5
    seed: int = 0

    def __post_init__(self):
        if not self.sizes or min(self.sizes) < 16:
            raise ValueError(f"sizes must be ≥ 16 pixels, got {self.sizes}")
        if not self.iterations or min(self.iterations) < 1:
            raise ValueError(f"iteration counts must be ≥ 1, got {self.iterations}")
        if self.extrapolate_iterations < 1:
            raise ValueError("extrapolate_iterations must be ≥ 1")


@dataclass
class FeedForwardTiming:
    """Seconds per forward pass of one engine at one size: median (reported), min, p90, runs, timer."""

    engine: str
    median_s: float
    min_s: float
    p90_s: float
    runs: int
    timer: str  # "cuda-events" or "perf_counter"


@dataclass
class GatysTiming:
    """Gatys seconds per iteration count; ``extrapolated`` when scaled from ``measured_iterations``."""

    seconds: dict[int, float]
    seconds_per_iteration: float
    measured_iterations: int
    extrapolated: bool


@dataclass
class BenchRow:
    """One image size: Gatys times, feed-forward timings per engine, speedups per engine and count."""

    size: int
    gatys: GatysTiming
    feedforward: list[FeedForwardTiming] = field(default_factory=list)

    def speedups(self) -> dict[str, dict[int, float]]:
        return {ff.engine: {n: s / ff.median_s for n, s in self.gatys.seconds.items()} for ff in self.feedforward}


@dataclass
class BenchReport:
    """A whole run: machine, settings, rows; ``to_dict`` gives the JSON layout (schema livestyle.bench/1)."""

    machine: dict
    settings: dict
    rows: list[BenchRow]
    created: str

    def to_dict(self) -> dict:
        rows = []
        for row in self.rows:
            rows.append({
                "size": row.size,
                "gatys": {
                    "seconds": {str(n): s for n, s in row.gatys.seconds.items()},
                    "seconds_per_iteration": row.gatys.seconds_per_iteration,
                    "measured_iterations": row.gatys.measured_iterations,
                    "extrapolated": row.gatys.extrapolated,
                },
                "feedforward": [asdict(ff) for ff in row.feedforward],
                "speedup": {e: {str(n): v for n, v in d.items()} for e, d in row.speedups().items()},
            })
        paper = {str(s): {"gatys": {str(n): v for n, v in PAPER_GATYS[s].items()},
                          "feedforward": PAPER_FEEDFORWARD[s]} for s in PAPER_GATYS}
        return {"schema": SCHEMA, "created": self.created, "machine": self.machine, "settings": self.settings,
                "rows": rows, "paper": {"device": PAPER_DEVICE, "sizes": paper}}


def time_gatys(size: int, config: BenchConfig, device: torch.device,
               progress: Callable[[str], None] | None = None) -> GatysTiming:
    """Gatys optimisation time at ``size``² for each of ``config.iterations`` (measured or extrapolated)."""
    generator = torch.Generator().manual_seed(config.seed)
    content = torch.rand(1, 3, size, size, generator=generator).to(device)
    style = torch.rand(1, 3, size, size, generator=generator).to(device)
    objective = build_objective(ObjectiveConfig(loss_net=config.loss_net), style,
                                weights=config.loss_net_weights, pretrained=config.loss_net_weights is not None,
                                device=device)
    # Warm-up (cuDNN algorithm choice, allocator growth) is not timed.
    if config.gatys_warmup_iterations:
        optimize_image(objective, content, GatysConfig(iterations=config.gatys_warmup_iterations,
                                                       optimizer=config.optimizer))
    wanted = sorted(set(config.iterations))
    if config.extrapolate:
        n = config.extrapolate_iterations
        if progress:
            progress(f"gatys {size}²: timing {n} iterations to extrapolate")
        run = optimize_image(objective, content, GatysConfig(iterations=n, optimizer=config.optimizer))
        per_iteration = run.seconds / n
        return GatysTiming({k: per_iteration * k for k in wanted}, per_iteration, n, True)

    checkpoints: dict[int, float] = {}
    started = 0.0

    def on_iteration(i: int, _loss) -> None:
        if i in wanted:
            synchronize(device)
            checkpoints[i] = time.perf_counter() - started
            if progress:
                progress(f"gatys {size}²: {i} iterations in {checkpoints[i]:.2f} s")

    synchronize(device)
    started = time.perf_counter()
    # One run to the largest count; the times at smaller counts are read on the way (no scaling).
    optimize_image(objective, content, GatysConfig(iterations=wanted[-1], optimizer=config.optimizer),
                   on_iteration=on_iteration)
    return GatysTiming(checkpoints, checkpoints[wanted[-1]] / wanted[-1], wanted[-1], False)


def time_engine(engine, size: int, config: BenchConfig) -> FeedForwardTiming:
    """Median seconds of ``engine`` on one (1, 3, size, size) frame already on its device, after warm-up."""
    device = torch.device(getattr(engine, "device", "cpu"))
    frame = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(config.seed)).to(device)
    for _ in range(config.feedforward_warmup):
        engine(frame)
    synchronize(device)
    timed = timer(device)
    times: list[float] = []
    budget_end = time.perf_counter() + config.feedforward_seconds
    while len(times) < config.feedforward_runs and (len(times) < 3 or time.perf_counter() < budget_end):
        times.append(timed(lambda: engine(frame)) / 1000.0)
    return FeedForwardTiming(getattr(engine, "name", "engine"), statistics.median(times), min(times), p90(times),
                             len(times), "cuda-events" if device.type == "cuda" else "perf_counter")


EngineFactory = Callable[[nn.Module, torch.device], object]


@contextlib.contextmanager
def _out_of_memory_is_an_error(size: int, device: torch.device) -> Iterator[None]:
    """Turn torch's out-of-memory errors (CUDA, and CPU allocation failures) into one line for the user."""
    try:
        yield
    except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError; CPU failures are plain ones
        if not is_out_of_memory(exc):
            raise
        raise InsufficientMemoryError(f"out of memory timing {size}² images on {device}; "
                                      "try smaller --sizes") from exc


def run_bench(config: BenchConfig, *, engine_factories: dict[str, EngineFactory] | None = None,
              progress: Callable[[str], None] | None = None) -> BenchReport:
    """Time Gatys and the feed-forward net at every size; ``engine_factories`` replaces ``config.backends``.

    ``engine_factories``: label → ``factory(model, device)`` returning an engine (``engine(batch)``).
    ``progress``: called with one-line status messages (the library itself never prints).
    """
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = transform_net(width=config.width, blocks=config.blocks).eval()
    if engine_factories is None:
        engine_factories = {b: (lambda m, d, b=b: create_engine(m, backend=b, device=str(d), precision=config.precision))
                            for b in config.backends}
    engines = {label: factory(model, device) for label, factory in engine_factories.items()}
    rows = []
    for size in config.sizes:
        with _out_of_memory_is_an_error(size, device):
            gatys = time_gatys(size, config, device, progress)
            feedforward = []
            for label, engine in engines.items():
                timing = time_engine(engine, size, config)
                if progress:
                    progress(f"feed-forward {size}² {timing.engine}: {timing.median_s * 1000:.1f} ms median of {timing.runs}")
                feedforward.append(timing)
        rows.append(BenchRow(size, gatys, feedforward))
    settings = asdict(config)
    settings["loss_net_weights"] = config.loss_net_weights or "random (pretrained=False; timing does not depend on weights)"
    settings["device"] = str(device)
    settings["engines"] = list(engines)
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    return BenchReport(machine_info(device), settings, rows, created)
