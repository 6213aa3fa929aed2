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
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ._files import atomic_output, write_json_and_markdown
from .engines import create_engine, resolve_device
from .engines.benchmark import cpu_model
from .errors import InsufficientMemoryError, is_out_of_memory
from .gatys import GatysConfig, optimize_image
from .models import transform_net
from .objective import ObjectiveConfig, build_objective

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
    fp16: bool = False
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


# --- the machine ---------------------------------------------------------------------------------

def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(device: torch.device) -> dict:
    """CPU model and cores, GPU name/driver/CUDA/cuDNN where used, OS and library versions."""
    info = {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # Other work on the machine slows CPU timings; the load when the run started says how much.
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": {p: v for p in ("livestyle", "torch", "torchvision", "numpy", "opencv-python",
                                     "onnxruntime", "onnxruntime-gpu", "tensorrt")
                      if (v := _version(p)) is not None},
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update({
            "gpu": torch.cuda.get_device_name(device),
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "gpu_driver": _nvidia_driver(),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        })
    return info


def machine_label(info: dict) -> str:
    """A short human name for the machine that ran a bench: the GPU, else CPU model and cores."""
    if info.get("gpu"):
        return f"{info['gpu']} (driver {info.get('gpu_driver') or '?'}, CUDA {info.get('cuda')})"
    return f"{info['cpu']}, {info['cpu_cores']} cores (CPU)"


# --- timing -------------------------------------------------------------------------------------

def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
            _synchronize(device)
            checkpoints[i] = time.perf_counter() - started
            if progress:
                progress(f"gatys {size}²: {i} iterations in {checkpoints[i]:.2f} s")

    _synchronize(device)
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
    _synchronize(device)
    times: list[float] = []
    budget_end = time.perf_counter() + config.feedforward_seconds
    use_events = device.type == "cuda"
    while len(times) < config.feedforward_runs and (len(times) < 3 or time.perf_counter() < budget_end):
        if use_events:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            engine(frame)
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end) / 1000.0)
        else:
            t0 = time.perf_counter()
            engine(frame)
            times.append(time.perf_counter() - t0)
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return FeedForwardTiming(getattr(engine, "name", "engine"), statistics.median(times), ordered[0], p90,
                             len(times), "cuda-events" if use_events else "perf_counter")


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
        engine_factories = {b: (lambda m, d, b=b: create_engine(m, backend=b, device=str(d), fp16=config.fp16))
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


# --- reports ------------------------------------------------------------------------------------

def _fmt_s(seconds: float, extrapolated: bool = False) -> str:
    text = f"{seconds:.3g}" if seconds < 1 else f"{seconds:.2f}"
    return (EXTRAPOLATED_MARK + text) if extrapolated else text


def table_markdown(report: dict) -> str:
    """The paper-shaped table (Markdown) from a report dict: paper rows beside ours, per size and engine."""
    iterations = [int(n) for n in report["settings"]["iterations"]]
    head = (["image size", "source"] + [f"Gatys {n} it (s)" for n in iterations] + ["feed-forward (s)"]
            + [f"speedup {n} it" for n in iterations])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ours_label = machine_label(report["machine"])
    for row in report["rows"]:
        size = row["size"]
        if size in PAPER_GATYS:
            paper_g = PAPER_GATYS[size]
            ff = PAPER_FEEDFORWARD[size]
            cells = [f"{size}²", "paper (Titan X)"]
            cells += [_fmt_s(paper_g[n]) if n in paper_g else "–" for n in iterations]
            cells += [_fmt_s(ff)] + [f"{paper_g[n] / ff:.0f}×" if n in paper_g else "–" for n in iterations]
            lines.append("| " + " | ".join(cells) + " |")
        extrapolated = row["gatys"]["extrapolated"]
        for ff in row["feedforward"] or [None]:
            cells = [f"{size}²", f"ours ({ff['engine'] if ff else 'no engine'})"]
            cells += [_fmt_s(row["gatys"]["seconds"][str(n)], extrapolated) for n in iterations]
            if ff:
                cells += [_fmt_s(ff["median_s"])]
                cells += [(EXTRAPOLATED_MARK if extrapolated else "")
                          + f"{row['speedup'][ff['engine']][str(n)]:.0f}×" for n in iterations]
            else:
                cells += ["–"] * (1 + len(iterations))
            lines.append("| " + " | ".join(cells) + " |")
    notes = [f"Ours: {ours_label}; loss network {report['settings']['loss_net']}, weights: "
             f"{report['settings']['loss_net_weights']}; optimiser {report['settings']['optimizer']}; "
             f"feed-forward = median of ≥3 runs after warm-up, batch 1, transform net width "
             f"{report['settings']['width']}, {report['settings']['blocks']} residual blocks, random weights."]
    load, cores = report["machine"].get("load_average_1m"), report["machine"].get("cpu_cores")
    if load is not None and cores and load > 0.5 * cores:
        notes.append(f"Load average when the run started: {load} on {cores} cores — other work shared the CPU, "
                     "so CPU timings here are slower than this machine alone would give.")
    if any(r["gatys"]["extrapolated"] for r in report["rows"]):
        n = report["rows"][0]["gatys"]["measured_iterations"]
        notes.append(f"{EXTRAPOLATED_MARK} EXTRAPOLATED: Gatys times (and the speedups from them) are "
                     f"{n} measured iterations scaled linearly, not full runs.")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def report_markdown(report: dict) -> str:
    """A whole Markdown report: title, machine, the table, settings."""
    m = report["machine"]
    title = "Gatys vs feed-forward timing (Johnson et al. 2016, Table 1)"
    if any(r["gatys"]["extrapolated"] for r in report["rows"]):
        title += " — EXTRAPOLATED Gatys times"
    lines = [f"# {title}", "", f"Run {report['created']} on **{machine_label(m)}**.", "",
             table_markdown(report), "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in m.items() if k != "libraries"]
    lines += ["- libraries: " + ", ".join(f"{k} {v}" for k, v in m.get("libraries", {}).items()), "",
              "## Settings", "", "```json", json.dumps(report["settings"], indent=1), "```", ""]
    return "\n".join(lines)


def plot_png(report: dict, path: str | os.PathLike) -> None:
    """Log-log plot of seconds vs image size: Gatys per iteration count and feed-forward, ours and the paper's."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    rows = report["rows"]
    sizes = [r["size"] for r in rows]
    iterations = [int(n) for n in report["settings"]["iterations"]]
    extrapolated = any(r["gatys"]["extrapolated"] for r in rows)
    colours = ["tab:red", "tab:orange", "tab:olive", "tab:brown", "tab:pink"]
    for colour, n in zip(colours * 4, iterations):
        label = f"Gatys {n} it, ours" + (" (extrapolated)" if extrapolated else "")
        ax.plot(sizes, [r["gatys"]["seconds"][str(n)] for r in rows], "o-", color=colour, label=label)
        paper = [(s, PAPER_GATYS[s][n]) for s in sorted(PAPER_GATYS) if n in PAPER_GATYS[s]]
        if paper:
            ax.plot(*zip(*paper), "s--", color=colour, alpha=0.5, label=f"Gatys {n} it, paper")
    engines = [ff["engine"] for ff in rows[0]["feedforward"]] if rows else []
    for colour, engine in zip(["tab:blue", "tab:cyan", "tab:purple", "tab:green"] * 4, engines):
        points = [(r["size"], ff["median_s"]) for r in rows for ff in r["feedforward"] if ff["engine"] == engine]
        ax.plot(*zip(*points), "o-", color=colour, label=f"feed-forward, ours ({engine})")
    ax.plot(sorted(PAPER_FEEDFORWARD), [PAPER_FEEDFORWARD[s] for s in sorted(PAPER_FEEDFORWARD)],
            "s--", color="tab:blue", alpha=0.5, label="feed-forward, paper")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted(set(sizes) | set(PAPER_FEEDFORWARD)))
    ax.set_xticklabels([str(s) for s in sorted(set(sizes) | set(PAPER_FEEDFORWARD))])
    ax.set_xlabel("image size (pixels per side)")
    ax.set_ylabel("seconds")
    ax.set_title(f"ours: {machine_label(report['machine'])}\npaper: GTX Titan X", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(str(path), format="png")


def report_stem(report: dict) -> str:
    """A file name stem: bench-<gpu or cpu>-<loss net>-<YYYYmmdd-HHMMSS>[-extrapolated]."""
    m = report["machine"]
    name = m.get("gpu") or f"cpu-{m['cpu']}-{m['cpu_cores']}c"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]
    stamp = re.sub(r"[^0-9]", "", report["created"])[:14]
    stamp = f"{stamp[:8]}-{stamp[8:]}"
    extrapolated = "-extrapolated" if any(r["gatys"]["extrapolated"] for r in report["rows"]) else ""
    return f"bench-{slug}-{report['settings']['loss_net']}-{stamp}{extrapolated}"


def write_reports(report: BenchReport | dict, folder: str | os.PathLike, stem: str | None = None, *,
                  plot: bool = True) -> list[Path]:
    """Write <stem>.json, <stem>.md and (``plot``) <stem>.png into ``folder`` (created), each atomically."""
    data = report.to_dict() if isinstance(report, BenchReport) else report
    stem = stem or report_stem(data)
    paths = write_json_and_markdown(folder, stem, data, report_markdown(data))
    if plot:
        paths.append(Path(folder) / f"{stem}.png")
        with atomic_output(paths[2]) as tmp:
            plot_png(data, tmp)
    return paths
