"""The paper's speed comparison (Johnson et al. 2016, Table 1): Gatys optimisation vs one feed-forward pass.

For each image size: the time of Gatys et al.'s L-BFGS optimisation after each iteration count,
the median time of one forward pass of the style transform network per backend, and the speedup;
reported beside the paper's GTX Titan X figures as JSON, Markdown and a PNG plot, with the machine.

Timing does not depend on weight values, so the transform net has random weights and the loss
network random ones too unless a weights file is given (either way the report says which).
Before any run, every size is warmed up and the whole bench's time estimated (``bench_plan``).
``extrapolate``: time a few Gatys iterations and predict the rest (``gatys_timing``); every such
figure is marked.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from livestyle.benchmarks.gatys_timing import GatysSetup, GatysTiming, prepare_gatys, time_gatys
from livestyle.benchmarks.machine import machine_info
from livestyle.benchmarks.memory import PeakMemory
from livestyle.benchmarks.timing import p90, timer
from livestyle.engines.device import resolve_device, synchronize
from livestyle.engines.factory import create_engine
from livestyle.errors import InsufficientMemoryError, is_out_of_memory
from livestyle.models.transform import transform_net
from livestyle.io.progress import Progress, duration_in_words
from livestyle.quality.gatys import GatysConfig

# Johnson et al. 2016, Table 1 (GTX Titan X, VGG-16 loss network, L-BFGS): seconds.
PAPER_DEVICE = "NVIDIA GTX Titan X (paper, Table 1)"
PAPER_GATYS = {256: {100: 3.17, 300: 9.52, 500: 15.86},
               512: {100: 10.97, 300: 32.91, 500: 54.85},
               1024: {100: 42.89, 300: 128.66, 500: 214.44}}
PAPER_FEEDFORWARD = {256: 0.015, 512: 0.05, 1024: 0.21}
SCHEMA = "livestyle.bench/1"
EXTRAPOLATED_MARK = "≈"  # prefixed to every extrapolated figure in text outputs
LONG_RUN_S = 600.0  # a bench estimated to take longer says so, and what --extrapolate would take


@dataclass(frozen=True)
class BenchConfig:
    """What to time. ``backends``: engine backends for the feed-forward pass (``livestyle.engines``).

    ``extrapolate``: time ``extrapolate_iterations`` Gatys iterations and predict the counts asked for
    from them and the optimiser's own steps (marked in every output).
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
        if self.extrapolate_iterations < 2:
            raise ValueError("extrapolate_iterations must be ≥ 2 (the first iteration has no start mark)")


@dataclass
class FeedForwardTiming:
    """Seconds per forward pass of one engine at one size: median (reported), min, p90, runs, timer."""

    engine: str
    median_s: float
    min_s: float
    p90_s: float
    runs: int
    timer: str  # "cuda-events" or "perf_counter"
    peak_mb: float | None = None  # peak resident memory (CPU) or allocation (CUDA) during the warm-up, MiB


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
                    "evaluation_s": row.gatys.evaluation_s,
                    "optimizer_step_s": row.gatys.step_s,
                },
                "feedforward": [asdict(ff) for ff in row.feedforward],
                "speedup": {e: {str(n): v for n, v in d.items()} for e, d in row.speedups().items()},
            })
        paper = {str(s): {"gatys": {str(n): v for n, v in PAPER_GATYS[s].items()},
                          "feedforward": PAPER_FEEDFORWARD[s]} for s in PAPER_GATYS}
        return {"schema": SCHEMA, "created": self.created, "machine": self.machine, "settings": self.settings,
                "rows": rows, "paper": {"device": PAPER_DEVICE, "sizes": paper}}


def time_engine(engine, size: int, config: BenchConfig,
                tick: Callable[[], None] | None = None) -> FeedForwardTiming:
    """Median seconds of ``engine`` on one (1, 3, size, size) frame already on its device, after warm-up."""
    device = torch.device(getattr(engine, "device", "cpu"))
    frame = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(config.seed)).to(device)
    with PeakMemory(device) as peak:
        for _ in range(config.feedforward_warmup):
            engine(frame)
        synchronize(device)
    timed = timer(device)
    times: list[float] = []
    budget_end = time.perf_counter() + config.feedforward_seconds
    while len(times) < config.feedforward_runs and (len(times) < 3 or time.perf_counter() < budget_end):
        times.append(timed(lambda: engine(frame)) / 1000.0)
        if tick:
            tick()
    return FeedForwardTiming(getattr(engine, "name", "engine"), statistics.median(times), min(times), p90(times),
                             len(times), "cuda-events" if device.type == "cuda" else "perf_counter", peak.peak_mb)


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


def gatys_config(config: BenchConfig) -> GatysConfig:
    """The optimisation every Gatys run of the bench makes (iterations set per run)."""
    return GatysConfig(iterations=max(config.iterations), optimizer=config.optimizer, seed=config.seed)


def bench_plan(config: BenchConfig, setups: dict[int, GatysSetup], engines: int) -> list[str]:
    """What the runs ahead will take, in one or two lines: the estimate per size, and where it passes
    ``LONG_RUN_S`` without ``extrapolate``, what ``--extrapolate`` would take instead."""
    most = max(config.iterations)
    full = {size: setup.predicted(most) for size, setup in setups.items()}
    short = {size: setup.predicted(config.extrapolate_iterations) for size, setup in setups.items()}
    gatys = short if config.extrapolate else full
    # Feed-forward: each engine at each size runs until its time budget is spent (or its runs are done).
    feedforward = engines * len(setups) * config.feedforward_seconds
    total = sum(gatys.values()) + feedforward
    how = f"extrapolated from {config.extrapolate_iterations} iterations" if config.extrapolate else \
        f"{most} iterations"
    lines = [f"estimated time: about {duration_in_words(total)} (gatys, {how}: "
             + ", ".join(f"{size}² {duration_in_words(t)}" for size, t in gatys.items())
             + f"; feed-forward up to {duration_in_words(feedforward)})"]
    if not config.extrapolate and total > LONG_RUN_S:
        quick = sum(short.values()) + feedforward
        lines.append(f"that is more than {LONG_RUN_S / 60:.0f} minutes: --extrapolate times "
                     f"{config.extrapolate_iterations} Gatys iterations a size and predicts the rest "
                     f"(about {duration_in_words(quick)} in all)")
    return lines


def busy_cpu_note(device: torch.device) -> str | None:
    """A line where other work keeps the CPU busy beside torch's threads, or None: timings swing then,
    the extrapolated ones too (threads of one operation wait for each other behind that work)."""
    if device.type != "cpu" or not hasattr(os, "getloadavg"):
        return None
    load, cores, threads = os.getloadavg()[0], os.cpu_count() or 1, torch.get_num_threads()
    if load + threads <= cores + 0.5:
        return None
    return (f"other work keeps the CPU busy (load average {load:.1f} on {cores} cores, torch runs {threads} "
            "thread(s)): times will be slower than this machine alone gives and swing from run to run, the "
            "extrapolated ones too" + ("; one thread (OMP_NUM_THREADS=1) is steadier" if threads > 1 else ""))


def run_bench(config: BenchConfig, *, engine_factories: dict[str, EngineFactory] | None = None,
              progress: Callable[[str], None] | None = None, show_bars: bool = False) -> BenchReport:
    """Time Gatys and the feed-forward net at every size; ``engine_factories`` replaces ``config.backends``.

    ``engine_factories``: label → ``factory(model, device)`` returning an engine (``engine(batch)``).
    ``progress``: called with one-line status messages, the time estimate first (the library itself
    never prints); ``show_bars``: a progress display on stderr for every warm-up and run.
    """
    say = progress or (lambda message: None)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = transform_net(width=config.width, blocks=config.blocks).eval()
    if engine_factories is None:
        engine_factories = {b: (lambda m, d, b=b: create_engine(m, backend=b, device=str(d), precision=config.precision))
                            for b in config.backends}
    engines = {label: factory(model, device) for label, factory in engine_factories.items()}
    if note := busy_cpu_note(device):
        say(note)
    optimisation = gatys_config(config)
    most = max(config.iterations)
    setups: dict[int, GatysSetup] = {}
    for size in config.sizes:
        memory = optimisation.history_size if optimisation.optimizer == "lbfgs" else 1
        steps = max(2, config.gatys_warmup_iterations) + min(most, memory + 1)  # as prepare_gatys takes them
        with _out_of_memory_is_an_error(size, device), \
                Progress(steps, desc=f"gatys {size}² warm-up", unit="step", enabled=show_bars) as bar:
            setups[size] = prepare_gatys(size, loss_net=config.loss_net, weights=config.loss_net_weights,
                                         device=device, config=optimisation,
                                         warmup_iterations=config.gatys_warmup_iterations, max_iterations=most,
                                         tick=bar.update)
    for line in bench_plan(config, setups, len(engines)):
        say(line)
    rows = []
    for size in config.sizes:
        setup = setups.pop(size)  # each objective goes once its size is done
        with _out_of_memory_is_an_error(size, device):
            count = config.extrapolate_iterations if config.extrapolate else most
            with Progress(count, desc=f"gatys {size}²", unit="it", enabled=show_bars) as bar:
                gatys = time_gatys(setup, config.iterations, tick=bar.update,
                                   extrapolate_from=config.extrapolate_iterations if config.extrapolate else None)
            say(_gatys_line(size, gatys))
            feedforward = []
            for label, engine in engines.items():
                with Progress(config.feedforward_runs, desc=f"feed-forward {size}² {label}", unit="run",
                              enabled=show_bars) as bar:
                    timing = time_engine(engine, size, config, tick=bar.update)
                say(f"feed-forward {size}² {timing.engine}: {timing.median_s * 1000:.1f} ms median of {timing.runs}")
                feedforward.append(timing)
        rows.append(BenchRow(size, gatys, feedforward))
    settings = asdict(config)
    settings["loss_net_weights"] = config.loss_net_weights or "random (pretrained=False; timing does not depend on weights)"
    settings["device"] = str(device)
    settings["engines"] = list(engines)
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    return BenchReport(machine_info(device), settings, rows, created)


def _gatys_line(size: int, gatys: GatysTiming) -> str:
    """'gatys 256²: 100 iterations in 54.2 s, 300 …' (extrapolated: marked, with what it rests on)."""
    mark = EXTRAPOLATED_MARK if gatys.extrapolated else ""
    times = ", ".join(f"{n} iteration{'' if n == 1 else 's'} in {mark}{s:.2f} s" for n, s in gatys.seconds.items())
    if not gatys.extrapolated:
        return f"gatys {size}²: {times}"
    first, last = gatys.step_s["first"], gatys.step_s["last"]
    steps = f"{first:.3f} s" if round(first, 3) == round(last, 3) else f"{first:.3f} s growing to {last:.3f} s"
    return (f"gatys {size}²: {times} (extrapolated from {gatys.measured_iterations} iterations: "
            f"{gatys.evaluation_s:.3f} s an evaluation, the optimiser's own step {steps})")
