"""The CPU engine chosen by measurement, per machine.

No fixed rule picks the fastest CPU engine: it depends on the CPU (AVX2, AVX-512, BF16, AMX), on
the libraries, on the network and frame size, and on how busy the machine is (with one of two
cores taken by other work, two threads wait on each other at every barrier and run many times
slower than one; bench/README.md links the measurements). So the first use of a model
family (architecture) at a size class (pixel count rounded to a power of two) on a CPU times the
candidates briefly — torch, ONNX Runtime and OpenVINO, FP32 and BF16 where the CPU has it, each
with all cores or half of them — and keeps the winner in the export cache, keyed by the CPU model,
its instruction-set caps and the library versions.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from livestyle.engines.base import Engine
from livestyle.engines.device import cpu_caps, cpu_has_native_bf16, cpu_model
from livestyle.engines.export.cache import EXPORT_VERSION, default_cache_dir, model_scale, writable_cache_dir
from livestyle.errors import BackendUnavailableError, LivestyleError
from livestyle.files import write_json

CHOICE_FILE = "cpu-engine-choices.json"
CHOICE_VERSION = 1  # part of every key: bump when the candidates or the timing change meaning
MEASURED_BACKENDS = ("torch", "onnx", "openvino")
ONNX_MIN_WIDTH = 8  # narrower style nets gain nothing from an export: torch only (bench/README.md)
BUDGET_S = 3.0  # timing time for one choice, building the engines and ONNX exports not counted
KEEP_WITHIN = 1.25  # after two rounds, candidates slower than this × the best drop out
LIBRARIES = ("torch", "onnxruntime", "openvino")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CpuCandidate:
    """One CPU engine setting to time: backend, precision and thread count."""

    backend: str  # "torch" | "onnx" | "openvino"
    precision: str  # "fp32" | "bf16"
    threads: int

    @property
    def label(self) -> str:
        return f"{self.backend}-{self.precision}-t{self.threads}"


def thread_counts(cores: int | None = None) -> list[int]:
    """The thread counts worth timing: every core, and half of them (a busy machine wants fewer)."""
    cores = cores or os.cpu_count() or 1
    return sorted({cores, max(1, cores // 2)})


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (onnxruntime-gpu installs the module "onnxruntime" too)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError, AttributeError):  # a module blanked out in sys.modules
        return False


def exports_pay_off(model: nn.Module) -> bool:
    """Whether ONNX Runtime and OpenVINO are worth timing for ``model``: SR nets and style nets of
    width ≥ ONNX_MIN_WIDTH (an export takes seconds; the tiniest nets run as fast in torch)."""
    width = getattr(getattr(model, "config", None), "width", 0)
    return model_scale(model) > 1 or width >= ONNX_MIN_WIDTH


def cpu_candidates(model: nn.Module, *, precision: str = "auto", cores: int | None = None) -> list[CpuCandidate]:
    """The CPU engines to time for ``model``: torch, and ONNX Runtime and OpenVINO where installed and
    worth an export; FP32, and BF16 where the CPU has it natively (OpenVINO and torch); each at
    ``thread_counts``. ``precision`` "fp32" or "bf16" keeps only that precision."""
    if precision not in ("auto", "fp32", "bf16"):
        raise BackendUnavailableError(f"the CPU runs FP32 or BF16, not {precision!r}")
    bf16 = cpu_has_native_bf16()
    if precision == "bf16" and not bf16:
        raise BackendUnavailableError("BF16 on the CPU needs AVX512-BF16 or AMX, which this CPU lacks")
    precisions = [p for p in ("fp32", "bf16") if precision in ("auto", p) and (p == "fp32" or bf16)]
    backends = ["torch"]
    if exports_pay_off(model):
        backends += [b for b, package in (("onnx", "onnxruntime"), ("openvino", "openvino")) if _installed(package)]
    found = []
    for backend in backends:
        for p in precisions:
            if backend == "onnx" and p == "bf16":
                continue  # ONNX Runtime's CPU provider has no BF16 convolutions
            found += [CpuCandidate(backend, p, threads) for threads in thread_counts(cores)]
    return found


def build_candidate(model: nn.Module, candidate: CpuCandidate, *, cache_dir: str | os.PathLike | None = None,
                    progress: Progress | None = None) -> Engine:
    """The engine a candidate names, on the CPU."""
    options = {"device": "cpu", "precision": candidate.precision, "threads": candidate.threads}
    if candidate.backend == "torch":
        from livestyle.engines.torch_engine import TorchEngine

        return TorchEngine(model, **options)
    if candidate.backend == "onnx":
        from livestyle.engines.onnx_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(model, cache_dir=cache_dir, progress=progress, **options)
    if candidate.backend == "openvino":
        from livestyle.engines.openvino_engine import OpenVinoEngine

        return OpenVinoEngine(model, cache_dir=cache_dir, progress=progress, **options)
    raise BackendUnavailableError(f"unknown CPU backend {candidate.backend!r}; known: {', '.join(MEASURED_BACKENDS)}")


def size_class(height: int, width: int) -> int:
    """A frame's pixel count rounded to the nearest power of two (640×480 → 2^18)."""
    return 1 << max(0, round(math.log2(max(1, height * width))))


def library_versions() -> dict[str, str]:
    versions = {"livestyle-export": str(EXPORT_VERSION), "choice": str(CHOICE_VERSION)}
    for package in LIBRARIES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def choice_key(model: nn.Module, shape: tuple[int, ...], candidates: list[CpuCandidate]) -> dict:
    """What a choice depends on: the network's family (class and architecture, not its weights), the
    size class and batch, the CPU (model, cores, instruction-set caps), library versions, candidates."""
    config = getattr(model, "config", None)
    arch = config.to_dict() if hasattr(config, "to_dict") else {}
    n, _, h, w = shape
    return {"family": {"class": type(model).__name__, "arch": arch}, "size_class": size_class(h, w), "batch": n,
            "cpu": cpu_model(), "cores": os.cpu_count(), "caps": cpu_caps(), "versions": library_versions(),
            "candidates": [c.label for c in candidates]}


class ChoiceCache:
    """The measured winners, one JSON file in the export cache (``cpu-engine-choices.json``)."""

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.folder = Path(cache_dir) if cache_dir else default_cache_dir()

    @staticmethod
    def digest(key: dict) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def _read(self, folder: Path) -> dict:
        try:
            data = json.loads((folder / CHOICE_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return data.get("choices", {}) if isinstance(data, dict) else {}

    def get(self, key: dict) -> dict | None:
        entry = self._read(self.folder).get(self.digest(key))
        return entry if isinstance(entry, dict) and isinstance(entry.get("winner"), str) else None

    def put(self, key: dict, record: dict) -> None:
        """Add a choice (read, add, write atomically; a lost race only costs a second measurement)."""
        folder = writable_cache_dir(self.folder)
        choices = self._read(folder)
        choices[self.digest(key)] = {"key": key, **record}
        write_json(folder / CHOICE_FILE, {"version": CHOICE_VERSION, "choices": choices})
        self.folder = folder


def time_engines(engines: dict[str, Engine], x: torch.Tensor, *, budget_s: float = BUDGET_S,
                 keep_within: float = KEEP_WITHIN, warm_up: bool = True) -> dict[str, list[float]]:
    """Milliseconds per call of each engine on ``x``: one untimed warm-up call each (unless ``warm_up``
    is False), then rounds of one call each, interleaved, until ``budget_s`` runs out (at least two
    rounds); after two rounds, engines slower than ``keep_within`` × the best median drop out."""
    for engine in engines.values() if warm_up else ():
        engine(x)
    times: dict[str, list[float]] = {label: [] for label in engines}
    alive = list(engines)
    deadline = time.perf_counter() + budget_s
    rounds = 0
    while alive and (rounds < 2 or time.perf_counter() < deadline):
        for label in alive:
            started = time.perf_counter()
            engines[label](x)
            times[label].append((time.perf_counter() - started) * 1000.0)
        rounds += 1
        if rounds >= 2 and len(alive) > 1:
            best = min(statistics.median(times[label]) for label in alive)
            alive = [label for label in alive if statistics.median(times[label]) <= keep_within * best]
            if len(alive) == 1 and rounds >= 3:
                break
    return times


def probe_shape(shape: tuple[int, ...], call_ms: float, calls: int, budget_s: float, stride: int = 8) -> tuple[int, ...]:
    """The shape to time on: ``shape`` where ``calls`` calls of ``call_ms`` fit in ``budget_s``; else a
    smaller frame of the same aspect (convolutions cost in proportion to pixels), at least 64 px a side."""
    n, c, h, w = shape
    factor = math.sqrt(min(1.0, budget_s * 1000.0 / max(call_ms * calls, 1e-6)))
    if factor >= 1.0:
        return shape
    ph, pw = (max(64, int(side * factor) // stride * stride) for side in (h, w))
    return (n, c, min(h, ph), min(w, pw))


class MeasuredCpuEngine:
    """The fastest CPU engine for each size class of input, chosen by timing (Engine interface).

    On the first input of a size class, the choice comes from the cache, or from timing
    ``cpu_candidates`` (``prepare(shape)`` does this before the first frame, so that a command can
    say which engine runs). ``name`` is the chosen engine's; ``choice`` says how it was chosen.
    ``measure_new_sizes=False``: after the first choice, a size class that the cache does not hold
    reuses the engine of the nearest size chosen (live sources whose inference scale changes must
    not stall for a timing). ``progress``: one-line messages (exports, timing, the result).
    Input/output: float32 (N, 3, H, W) in [0, 1] on the CPU.
    """

    def __init__(self, model: nn.Module, *, precision: str = "auto", cache_dir: str | os.PathLike | None = None,
                 progress: Progress | None = None, budget_s: float = BUDGET_S,
                 candidates: list[CpuCandidate] | None = None, measure_new_sizes: bool = True):
        self.model = model
        self.candidates = candidates if candidates is not None else cpu_candidates(model, precision=precision)
        self.cache_dir, self.progress, self.budget_s = cache_dir, progress, budget_s
        self.measure_new_sizes = measure_new_sizes
        self.cache = ChoiceCache(cache_dir)
        self.scale = model_scale(model)
        self.device = torch.device("cpu")
        self.name = "auto-cpu"
        self.choice: dict | None = None  # the last choice: winner, times_ms, measured (False: from the cache)
        self._built: dict[str, Engine] = {}
        self._by_class: dict[tuple[int, int], Engine] = {}

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    def _engine(self, candidate: CpuCandidate) -> Engine:
        if candidate.label not in self._built:
            self._built[candidate.label] = build_candidate(self.model, candidate, cache_dir=self.cache_dir,
                                                           progress=self.progress)
        return self._built[candidate.label]

    def prepare(self, shape: tuple[int, ...]) -> Engine:
        """Choose (cache or timing) the engine for inputs of ``shape`` (N, 3, H, W) now; returns it."""
        n, _, h, w = shape
        slot = (n, size_class(h, w))
        if slot in self._by_class:
            return self._by_class[slot]
        key = choice_key(self.model, tuple(shape), self.candidates)
        record = self.cache.get(key)
        by_label = {c.label: c for c in self.candidates}
        if record is not None and record["winner"] in by_label:
            record = {**record, "measured": False}
        elif not self.measure_new_sizes and self._by_class:
            nearest = min(self._by_class, key=lambda s: (s[0] != n, abs(math.log2(s[1]) - math.log2(slot[1]))))
            self._by_class[slot] = self._by_class[nearest]
            return self._by_class[slot]
        else:
            record = self._measure(tuple(shape))
            self.cache.put(key, {k: v for k, v in record.items() if k != "measured"})
        engine = self._engine(by_label[record["winner"]])
        self._by_class[slot] = engine
        self._forget_losers()
        self.choice, self.name = record, engine.name
        return engine

    def _measure(self, shape: tuple[int, ...]) -> dict:
        n, c, h, w = shape
        # Said where it takes seconds (exports, bigger nets); the tiniest nets are timed in a blink.
        loud = exports_pay_off(self.model)
        if loud:
            self._say(f"choosing the CPU engine for {type(self.model).__name__} at {w}×{h}: timing "
                      f"{len(self.candidates)} candidates (first run at this size on this CPU; the choice is cached)")
        engines: dict[str, Engine] = {}
        skipped: dict[str, str] = {}
        for candidate in self.candidates:
            try:
                engines[candidate.label] = self._engine(candidate)
            except LivestyleError as exc:  # not installed, no BF16 here, an export that failed
                skipped[candidate.label] = str(exc)
        if not engines:
            raise BackendUnavailableError("no CPU engine could be built: " + "; ".join(skipped.values()))
        frame = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        probe = probe_shape(shape, self._estimate_ms(next(iter(engines.values())), frame), calls=len(engines),
                            budget_s=self.budget_s)
        if probe != shape:
            frame = F.interpolate(frame, size=probe[-2:], mode="bilinear", align_corners=False)
        for label, engine in list(engines.items()):  # the warm-up call: an engine that fails here is left out
            try:
                engine(frame)
            except (LivestyleError, RuntimeError) as exc:
                skipped[label] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                del engines[label]
        if not engines:
            raise BackendUnavailableError("no CPU engine could run: " + "; ".join(skipped.values()))
        times = time_engines(engines, frame, budget_s=self.budget_s, warm_up=False)
        medians = {label: round(statistics.median(values), 3) for label, values in times.items()}
        winner = min(medians, key=medians.get)
        ranked = sorted(medians.items(), key=lambda item: item[1])
        if loud:
            self._say("chose " + ", ".join(f"{label} {ms:.1f} ms" for label, ms in ranked[:4])
                      + (f" (timed at {probe[3]}×{probe[2]})" if probe != shape else ""))
        return {"winner": winner, "times_ms": medians, "timed_shape": list(probe), "skipped": skipped,
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
                "measured": True}

    @staticmethod
    def _estimate_ms(engine: Engine, frame: torch.Tensor, side: int = 192) -> float:
        """Milliseconds per call on ``frame``, extrapolated from a small copy (convolutions cost in
        proportion to pixels; a small frame's fixed costs make this an overestimate)."""
        h, w = frame.shape[-2:]
        factor = min(1.0, side / max(h, w))
        small = F.interpolate(frame, size=(max(8, round(h * factor)), max(8, round(w * factor))), mode="bilinear",
                              align_corners=False)
        engine(small)  # the first call pays for allocations (and compiling, for OpenVINO)
        started = time.perf_counter()
        engine(small)
        return (time.perf_counter() - started) * 1000.0 * (h * w) / (small.shape[-2] * small.shape[-1])

    def _forget_losers(self) -> None:
        """Drop the engines no size class uses (their sessions and compiled graphs hold memory)."""
        used = {id(engine) for engine in self._by_class.values()}
        self._built = {label: e for label, e in self._built.items() if id(e) in used}

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        n, _, h, w = batch.shape
        engine = self._by_class.get((n, size_class(h, w))) or self.prepare(tuple(batch.shape))
        return engine(batch)
