"""Training of the feed-forward networks (Johnson et al. 2016, Sec. 4): style transfer and super-resolution.

The paper's recipe: batch 4, Adam lr 1e-3; style 40k iterations on 256×256 photos with content +
Gram style + TV losses; SR 200k iterations on 288×288 patches with a pixel or feature loss. One
loop serves both tasks: data decoded once into memory on the device (``livestyle.data``), AMP and
channels_last on CUDA where measured faster, a progress bar with the loss terms and images/s,
checkpoints that resume the same run (on CPU bit for bit), previews, and at the end a livestyle
model file plus its catalog entry.

Checkpoints are ``torch.save`` files of plain tensors, numbers and strings, read back with
``weights_only=True`` (never a pickle of objects).
"""
from __future__ import annotations

import copy
import json
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._files import atomic_output, check_output_path, is_within, sha256_of
from .catalog import CATALOG_FILE, load_model_file, save_model_file
from .data import ImageBank, StyleData, SuperResData, decode_images, make_low_resolution
from .errors import InputError, OutputError, TrainingError
from .losses import pixel_loss, total_variation_loss
from .models import sr_net, transform_net
from .objective import ObjectiveConfig, PerceptualObjective, build_objective, image_to_batch

CHECKPOINT_FORMAT = "livestyle-train-checkpoint/1"
AMP_CHOICES = ("auto", "off", "bf16", "fp16")
LAYOUT_CHOICES = ("auto", "off", "on")

# Style-training term weights per loss network. SqueezeNet's were chosen by measurement
# (bench/results/squeezenet_taps.md, setting E: six short runs with different taps/weights on the
# same photos; E kept the content best and matched the painting's colours best). The per-tap weights
# make each tap's Gram loss start at a similar size (conv1's raw loss is ~20× smaller than fire4's),
# so colour and large shapes count as much as the middle taps. The objective's own defaults
# (livestyle.objective.DEFAULT_WEIGHTS) are tuned for Gatys runs, which start from the content image.
STYLE_TRAINING_WEIGHTS: dict[str, dict] = {
    "squeezenet1_1": {"content_weight": 1.0, "style_weight": 5e-4, "tv_weight": 1e4,
                      "style_tap_weights": {"conv1": 20.0, "fire2": 1.5, "fire3": 1.5, "fire4": 1.0, "fire5": 5.0}},
}
# The feature loss of SR: paper relu2_2 of VGG-16 (stride 2). For SqueezeNet, fire2 (stride 4) alone
# left a 4-pixel cross-hatch on smooth areas; with conv1 (stride 2) as well it was fainter and Set5
# scored higher (bench/results/sr-feat/findings.md). TV weights are not tuned by measurement.
SR_FEATURE_TAPS = {"vgg16": ("relu2_2",), "squeezenet1_1": ("conv1", "fire2")}
SR_TV_WEIGHT = {"pixel": 0.0, "feat": 1e3}

# Credit and licence of the paper's style images and of the training sets here (../shared/data/MANIFEST.md).
KNOWN_STYLES = {
    "composition_vii": "Wassily Kandinsky, Composition VII (1913)",
    "starry_night": "Vincent van Gogh, The Starry Night (1889)",
    "starry_night_crop": "Vincent van Gogh, The Starry Night (1889), crop",
    "the_scream": "Edvard Munch, The Scream (1893)",
    "wave": "Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831)",
    "wave_crop": "Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831), crop",
}
STYLE_IMAGE_LICENCE = "painting in the public domain; image file from jcjohnson/fast-neural-style (images/styles/)"
KNOWN_DATASETS = {
    "caltech101": "Caltech-101 (Fei-Fei, Fergus, Perona 2004), subset; research use",
    "bsds500": "BSDS500 train+test photos (Berkeley, Corel images); research use",
}


@dataclass(frozen=True)
class RunOptions:
    """How one training run is executed (not what it learns): device, precision, bookkeeping.

    ``amp``: "auto" (CUDA: the faster of fp32/TF32 and bf16, measured on a few steps; CPU: off),
    "off", "bf16", "fp16". ``channels_last``: "auto" (CUDA: measured; CPU: off), "on", "off". A resumed
    run on the same kind of device keeps the choices it started with.
    ``checkpoint``: file written every ``checkpoint_every`` steps and at the end (None: no checkpoints);
    ``resume``: continue from it. ``preview_dir``: where a preview PNG goes every ``preview_every`` steps.
    ``time_limit_s``: end early once training has run this long (a device call has a fixed length);
    the result then says how many steps were done.
    """

    device: str = "auto"
    amp: str = "auto"
    channels_last: str = "auto"
    checkpoint: str | None = None
    checkpoint_every: int = 1000
    resume: bool = False
    preview_dir: str | None = None
    preview_every: int = 0
    log_every: int = 10
    progress: bool = True
    workers: int | None = None
    time_limit_s: float | None = None  # stop (checkpointed, model written) after this much training time


@dataclass(frozen=True)
class StyleRecipe:
    """What a style model learns from; defaults: the paper's (width 32, 5 blocks, 256², batch 4, 40k, Adam 1e-3)."""

    style_image: str
    dataset: str
    objective: ObjectiveConfig = ObjectiveConfig(style_size=256)
    width: int = 32
    blocks: int = 5
    pixel_shuffle: bool = False  # the CPU-fast architecture (TransformNetConfig)
    margin: int = 16  # the inference border margin (TransformNetConfig); training runs without it
    image_size: int = 256
    batch_size: int = 4
    iterations: int = 40_000
    lr: float = 1e-3
    seed: int = 0
    data_limit: int | None = None
    loss_net_weights: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["objective"] = self.objective.to_dict()
        return d


@dataclass(frozen=True)
class SuperResRecipe:
    """What an SR model learns from: the paper's recipe (288² patches, batch 4, 200k steps, Adam) with the
    changes measured to train faster here: ``SRNet``'s bicubic skip without norms (Adam at 1e-4), and
    antialiased bicubic inputs without the paper's σ=1 blur (``blur_sigma=1.0`` restores it)."""

    dataset: str
    scale: int = 4
    loss: str = "pixel"  # "pixel" | "feat"
    loss_net: str = "squeezenet1_1"
    feature_taps: tuple[str, ...] | None = None  # None: SR_FEATURE_TAPS[loss_net]
    tv_weight: float | None = None  # None: SR_TV_WEIGHT[loss]
    width: int = 64
    blocks: int = 4
    residual: bool = True  # bicubic skip (see SRNet); False: the paper's network exactly
    norm: str = "none"  # "batch": the paper's
    patch_size: int = 288
    blur_sigma: float = 0.0  # the paper: 1.0
    batch_size: int = 4
    iterations: int = 200_000
    lr: float | None = None  # None: 1e-4 with the bicubic skip (at 1e-3 Adam's first steps overshoot), else 1e-3
    seed: int = 0
    data_limit: int | None = None
    loss_net_weights: str | None = None

    def resolved(self) -> SuperResRecipe:
        if self.loss not in ("pixel", "feat"):
            raise TrainingError(f"SR loss must be pixel or feat, got {self.loss!r}")
        taps = tuple(self.feature_taps) if self.feature_taps else SR_FEATURE_TAPS.get(self.loss_net, ())
        tv = SR_TV_WEIGHT[self.loss] if self.tv_weight is None else float(self.tv_weight)
        lr = (1e-4 if self.residual else 1e-3) if self.lr is None else float(self.lr)
        return replace(self, feature_taps=taps if self.loss == "feat" else (), tv_weight=tv, lr=lr)

    def to_dict(self) -> dict:
        d = asdict(self.resolved())
        d["feature_taps"] = list(d["feature_taps"])
        if self.loss == "pixel":
            d.pop("loss_net"), d.pop("loss_net_weights")
        return d


def style_objective_config(recipe: StyleRecipe) -> ObjectiveConfig:
    """The recipe's objective with training's measured weights filling the ``None`` fields.

    Per-tap style weights come from ``STYLE_TRAINING_WEIGHTS`` only where the recipe gives none at all.
    """
    config = recipe.objective
    defaults = STYLE_TRAINING_WEIGHTS.get(config.loss_net, {})
    fill = {k: v for k, v in defaults.items() if k != "style_tap_weights" and getattr(config, k) is None}
    if not config.style_tap_weights and defaults.get("style_tap_weights"):
        # Only for the taps in use: --style-taps alone would otherwise get weights for taps it left out.
        taps = config.style_taps or fill.get("style_taps") or ()
        fill["style_tap_weights"] = {k: v for k, v in defaults["style_tap_weights"].items() if not taps or k in taps}
    return replace(config, **fill).resolved()


def resolve_device(device: str) -> torch.device:
    """"auto" → cuda where present, else cpu; an unavailable CUDA device is an error, not a fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {device} asked for, but CUDA is not available here")
    return resolved


@dataclass
class TrainingResult:
    """What a finished (or stopped) run gives: the model, its file, entry and measurements."""

    model: nn.Module
    steps: int
    final_losses: dict[str, float]
    images_per_second: float
    seconds: float
    amp: str
    channels_last: bool
    history: dict[str, list[float]] = field(default_factory=dict)
    skipped_images: list[str] = field(default_factory=list)
    dataset_images: int = 0
    entry: dict | None = None


class _Task:
    """One task's model, data and loss: ``loss(batch) → (total, {term: tensor})``, ``batch(gen)``."""

    model: nn.Module
    name: str
    objective: PerceptualObjective | None = None
    channels_last: bool = False

    def set_layout(self, channels_last: bool) -> None:
        """Put the model, the loss network and every batch in channels_last (NHWC) or the default layout."""
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=layout)
        if self.objective is not None:
            self.objective.lossnet.to(memory_format=layout)
        self.channels_last = channels_last

    def batch(self, generator: torch.Generator):
        raise NotImplementedError

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def preview(self) -> np.ndarray:
        """float RGB (H, W, 3) [0, 1] showing what the model does now."""
        raise NotImplementedError


def _to_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class StyleTask(_Task):
    name = "style"

    def __init__(self, recipe: StyleRecipe, objective: PerceptualObjective, bank: ImageBank, device: torch.device,
                 preview_image: torch.Tensor):
        self.recipe = recipe
        self.config = style_objective_config(recipe)
        self.objective = objective
        self.model = transform_net(width=recipe.width, blocks=recipe.blocks,
                                   pixel_shuffle=recipe.pixel_shuffle, margin=recipe.margin).to(device)
        self.data = StyleData(bank, recipe.image_size)
        self.batch_size = recipe.batch_size
        self.preview_image = preview_image

    def batch(self, generator):
        return _to_layout(self.data.batch(self.batch_size, generator), self.channels_last)

    def loss(self, content):
        terms = self.objective(self.model(content), content)
        return terms.total, {"content": terms.content, "style": terms.style, "tv": terms.tv}

    @torch.no_grad()
    def preview(self):
        return self.model(self.preview_image)[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def superres_objective(recipe: SuperResRecipe, device: torch.device) -> PerceptualObjective | None:
    """The feature loss (plus TV) of an ``feat`` SR recipe on its loss network; None for ``pixel``."""
    if recipe.loss != "feat":
        return None
    config = ObjectiveConfig(loss_net=recipe.loss_net, content_taps=recipe.feature_taps,
                             style_taps=recipe.feature_taps, content_weight=1.0, style_weight=0.0,
                             tv_weight=recipe.tv_weight)
    return build_objective(config, weights=recipe.loss_net_weights, device=device)


class SuperResTask(_Task):
    name = "superres"

    def __init__(self, recipe: SuperResRecipe, objective: PerceptualObjective | None, bank: ImageBank,
                 device: torch.device, preview_image: torch.Tensor):
        self.recipe = recipe = recipe.resolved()
        self.model = sr_net(scale=recipe.scale, width=recipe.width, blocks=recipe.blocks, norm=recipe.norm,
                            residual=recipe.residual).to(device)
        self.data = SuperResData(bank, recipe.scale, recipe.patch_size, recipe.blur_sigma)
        self.batch_size = recipe.batch_size
        self.objective = objective
        self.preview_high = preview_image
        self.preview_low = make_low_resolution(preview_image, recipe.scale, recipe.blur_sigma)

    def batch(self, generator):
        low, high = self.data.batch(self.batch_size, generator)
        return _to_layout(low, self.channels_last), _to_layout(high, self.channels_last)

    def loss(self, batch):
        low, high = batch
        output = self.model(low)
        if self.objective is not None:
            terms = self.objective(output, high)
            return terms.total, {"feat": terms.content, "tv": terms.tv}
        pixel = pixel_loss(output.float(), high.float())
        tv = self.recipe.tv_weight * total_variation_loss(output.float()) if self.recipe.tv_weight else pixel * 0
        return pixel + tv, {"pixel": pixel, "tv": tv}

    @torch.no_grad()
    def preview(self):
        """Bicubic | network | original, side by side."""
        import torch.nn.functional as F

        size = self.preview_high.shape[-2:]
        bicubic = F.interpolate(self.preview_low, size=size, mode="bicubic", align_corners=False)
        row = torch.cat([bicubic, self.model(self.preview_low).float(), self.preview_high], dim=3)
        return row[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def _center_crop(bank: ImageBank, size: int, device: torch.device) -> torch.Tensor:
    """A fixed preview: the centre ``size``² crop of the data set's first photo, float (1, 3, size, size)."""
    image = bank.images[0]
    h, w = image.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return image[:, top:top + size, left:left + size].unsqueeze(0).to(device).float() / 255.0


class _Precision:
    """Autocast + (fp16 only) gradient scaling for one AMP choice."""

    def __init__(self, amp: str, device: torch.device):
        self.amp, self.device = amp, device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(task: _Task, amp: str, channels_last: bool, device: torch.device, steps: int = 6) -> float:
    """Seconds per training step of a throwaway copy of the model (the run's state is untouched)."""
    model, saved_layout = task.model, task.channels_last
    task.model = copy.deepcopy(model)
    task.set_layout(channels_last)
    trial = task.model
    try:
        generator = torch.Generator().manual_seed(12345)
        optimizer = torch.optim.Adam(trial.parameters(), lr=1e-6)
        precision = _Precision(amp, device)
        times = []
        for _ in range(steps + 3):  # the first steps pay for cuDNN's algorithm search
            batch = task.batch(generator)
            _synchronize(device)
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                total, _ = task.loss(batch)
            precision.step(total, optimizer)
            _synchronize(device)
            times.append(time.perf_counter() - start)
        return float(np.median(times[3:]))
    finally:
        task.model = model
        task.set_layout(saved_layout)


def choose_precision_and_layout(task: _Task, options: RunOptions, device: torch.device) -> tuple[str, bool, dict]:
    """Resolve "auto" AMP / channels_last: off on CPU; on CUDA the fastest of the candidates, timed.

    On the CPU, bf16 trains 1.6× faster at full width where the CPU has native BF16, but both full-width
    runs made that way here had a loss spike that FP32 runs did not (bench/results/cpu-realtime/
    small-vs-full/), so it stays opt-in (``--amp bf16``).
    """
    amps = [options.amp] if options.amp != "auto" else (["off", "bf16"] if device.type == "cuda" else ["off"])
    layouts = {"on": [True], "off": [False]}.get(options.channels_last,
                                                [False, True] if device.type == "cuda" else [False])
    if len(amps) * len(layouts) == 1:
        return amps[0], layouts[0], {}
    timings = {(a, c): _time_steps(task, a, c, device) for a in amps for c in layouts}
    amp, channels_last = min(timings, key=timings.get)
    report = {f"{a}{'+channels_last' if c else ''}": round(1000 * t, 2) for (a, c), t in timings.items()}
    return amp, channels_last, report


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write a checkpoint atomically (plain tensors, numbers, strings: loadable with weights_only=True)."""
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (weights_only: no objects are unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"cannot resume: checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or not a torch file
        raise TrainingError(f"cannot resume from {path}: not a readable checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"cannot resume from {path}: not a livestyle training checkpoint")
    return state


def _recipe_identity(recipe: dict) -> dict:
    """The recipe fields that must match for a resume to continue the same run: iterations may grow,
    the inference margin does not change training, the checkpoint replaces --init's weights, and a
    path is the same however it is spelled (``./photos/`` or absolute)."""
    same = {k: v for k, v in recipe.items() if k not in ("iterations", "margin", "init")}
    for key in ("dataset", "style_image", "loss_net_weights"):
        if isinstance(same.get(key), str):
            same[key] = os.path.realpath(same[key])
    return same


def load_initial_weights(model: nn.Module, path: str | os.PathLike) -> dict:
    """Start ``model`` from a trained model file of the same architecture (``--init``: fine-tuning a model,
    or continuing one whose checkpoint is gone; Adam starts afresh). Returns the recipe's record of the file."""
    source, _ = load_model_file(path)

    def architecture(net: nn.Module) -> dict | None:
        config = getattr(net, "config", None)  # the margin is not a weight: it may differ
        return {k: v for k, v in config.to_dict().items() if k != "margin"} if config is not None else None

    if type(source) is not type(model) or architecture(source) != architecture(model):
        raise TrainingError(f"--init {path}: its network ({type(source).__name__} {architecture(source)}) is not "
                            f"the one this run trains ({type(model).__name__} {architecture(model)}); "
                            "give the same architecture options")
    model.load_state_dict(source.state_dict())
    return {"file": Path(path).name, "sha256": sha256_of(path)}


def _write_preview(path: Path, rgb: np.ndarray) -> None:
    from .io.images import Image, write_image

    write_image(path, Image(rgb.astype(np.float32)))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training: the step in progress was finished and the checkpoint written."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


class _StopBetweenSteps:
    """Ctrl-C or SIGTERM asks the training loop to stop after the step in progress (an interrupt inside
    the optimizer's update would leave the weights half-updated, not fit to checkpoint); a second
    Ctrl-C stops at once. Only on the main thread, where Python delivers signals."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested: int | None = None  # the signal that asked
        self._previous: dict = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _on_signal(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = self.requested or signum


def train_loop(task: _Task, recipe_dict: dict, *, iterations: int, lr: float, seed: int, device: torch.device,
               options: RunOptions, data_info: dict,
               on_log: Callable[[int, dict[str, float]], None] | None = None) -> TrainingResult:
    """Run Adam on ``task`` for ``iterations`` steps with checkpoints, resume, previews and a progress bar."""
    from tqdm import tqdm

    state = None
    if options.resume:
        if not options.checkpoint:
            raise TrainingError("--resume needs a checkpoint file (--checkpoint)")
        state = load_checkpoint(options.checkpoint)
        saved = json.loads(state["recipe"])
        before, now = _recipe_identity(saved), _recipe_identity(recipe_dict)
        if state["task"] != task.name or before != now:
            differ = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            raise TrainingError(f"cannot resume from {options.checkpoint}: it belongs to another run "
                                f"(differs in {', '.join(differ) or 'task'})")
        if state.get("device_type") == device.type:  # on the same kind of device, "auto" keeps the run's choices
            saved_layout = "on" if state["channels_last"] else "off"
            options = replace(options, amp=state["amp"] if options.amp == "auto" else options.amp,
                              channels_last=saved_layout if options.channels_last == "auto" else options.channels_last)
    amp, channels_last, layout_timings = choose_precision_and_layout(task, options, device)
    task.set_layout(channels_last)
    precision = _Precision(amp, device)
    optimizer = torch.optim.Adam(task.model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"step": []}
    start_step, elapsed_before, images_before = 0, 0.0, 0

    if state is not None:
        task.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        if precision.scaler is not None and state.get("scaler"):
            precision.scaler.load_state_dict(state["scaler"])
        history = {k: list(v) for k, v in state["history"].items()}
        start_step, elapsed_before = int(state["step"]), float(state["seconds"])
        images_before = int(state["images"])
        if start_step > iterations:
            raise TrainingError(f"checkpoint is at step {start_step}, beyond the {iterations} iterations asked for")
        then, now = int(state.get("photos", 0)), int(data_info.get("images", 0))
        if then and now != then:  # the batches would differ from the run's own: not the same run any more
            raise TrainingError(f"cannot resume from {options.checkpoint}: the training photos changed "
                                f"({then} then, {now} now)")

    def checkpoint(step: int, seconds: float, images: int) -> None:
        save_checkpoint(options.checkpoint, {
            "format": CHECKPOINT_FORMAT, "task": task.name, "recipe": json.dumps(recipe_dict, sort_keys=True),
            "step": step, "seconds": seconds, "images": images, "photos": data_info.get("images", 0),
            "device_type": device.type, "amp": amp, "channels_last": channels_last,
            "model": {k: v.detach().cpu() for k, v in task.model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
            "scaler": precision.scaler.state_dict() if precision.scaler is not None else {},
            "history": history,
        })

    if options.preview_dir and options.preview_every:
        try:
            Path(options.preview_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(f"cannot create preview folder {options.preview_dir}: {exc.strerror}") from exc
    task.model.train()
    bar = tqdm(total=iterations, initial=start_step, disable=not options.progress, unit="it", dynamic_ncols=True,
               desc=f"train {task.name}")
    pending: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] = []
    _synchronize(device)
    run_start = window_start = time.perf_counter()
    window_images = 0
    step = start_step
    stop = _StopBetweenSteps()
    try:
        stop.install()
        for step in range(start_step + 1, iterations + 1):
            batch = task.batch(generator)
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                total, terms = task.loss(batch)
            precision.step(total, optimizer)
            window_images += task.batch_size
            # Reading losses forces a GPU sync, so the terms are collected as tensors and read every log_every steps.
            pending.append((total.detach(), {k: v.detach() for k, v in terms.items()}))
            out_of_time = options.time_limit_s is not None and time.perf_counter() - run_start > options.time_limit_s
            if step % options.log_every == 0 or step == iterations or out_of_time:
                values = {"total": float(torch.stack([t for t, _ in pending]).float().mean())}
                for key in pending[0][1]:
                    values[key] = float(torch.stack([d[key].float() for _, d in pending]).mean())
                pending.clear()
                if not math.isfinite(values["total"]):
                    raise TrainingError(f"loss became {values['total']} by step {step}; lower --lr or the loss weights")
                now = time.perf_counter()
                rate = window_images / max(now - window_start, 1e-9)
                window_start, window_images = now, 0
                history["step"].append(step)
                for key, value in values.items():
                    history.setdefault(key, []).append(value)
                bar.set_postfix({**{k: f"{v:.4g}" for k, v in values.items()}, "img/s": f"{rate:.1f}"}, refresh=False)
                if on_log is not None:
                    on_log(step, {**values, "images_per_second": rate})
            bar.update(1)
            if options.preview_dir and options.preview_every and step % options.preview_every == 0:
                task.model.eval()  # as at inference: batch norms use (and do not update) their running statistics
                _write_preview(Path(options.preview_dir) / f"{task.name}_{step:07d}.png", task.preview())
                task.model.train()
            if out_of_time or stop.requested:
                break
            if options.checkpoint and options.checkpoint_every and step % options.checkpoint_every == 0 \
                    and step != iterations:
                _synchronize(device)
                checkpoint(step, elapsed_before + time.perf_counter() - run_start,
                           images_before + (step - start_step) * task.batch_size)
    finally:
        stop.uninstall()
        bar.close()
    _synchronize(device)
    seconds = time.perf_counter() - run_start
    images = (step - start_step) * task.batch_size
    if options.checkpoint:
        checkpoint(step, elapsed_before + seconds, images_before + images)
    if stop.requested:
        kept = (f"checkpoint at step {step} in {options.checkpoint}; --resume continues" if options.checkpoint
                else "no checkpoint was asked for (--checkpoint FILE keeps a run's progress)")
        raise TrainingInterrupted(f"stopped after step {step} of {iterations}; {kept}", stop.requested)
    tail = {k: v[-10:] for k, v in history.items() if k != "step"}
    final = {k: float(np.mean(v)) for k, v in tail.items() if v}
    extra = {"layout_timings_ms": layout_timings} if layout_timings else {}
    if step < iterations:
        extra["stopped_at_time_limit"] = True
    return TrainingResult(task.model.eval(), step, final, images / max(seconds, 1e-9), elapsed_before + seconds,
                          amp, channels_last, history, data_info.get("skipped", []), data_info.get("images", 0),
                          entry=extra or None)


def _dataset_note(dataset: str) -> str:
    name = Path(dataset).name.lower()
    for key, note in KNOWN_DATASETS.items():
        if key in name:
            return note
    return "user-supplied photos (licence not recorded)"


def _style_credit(style_image: str) -> str:
    return KNOWN_STYLES.get(Path(style_image).stem, f"style image {Path(style_image).name}")


def _load_bank(dataset: str, device: torch.device, *, short_side: int | None, min_side: int | None,
               limit: int | None, workers: int | None) -> tuple[ImageBank, dict]:
    decoded = decode_images(dataset, short_side=short_side, min_side=min_side, limit=limit, workers=workers)
    bank = ImageBank(decoded, device)
    return bank, {"images": len(decoded), "skipped": decoded.skipped, "enlarged": decoded.enlarged}


def check_run_files(output: str | os.PathLike, options: RunOptions, inputs: list[str | os.PathLike | None],
                    dataset: str | os.PathLike | None = None) -> Path:
    """Before any work: the model, its entry (OUT.json), the checkpoint and the preview folder can be
    written and overwrite neither an input nor each other; previews do not go into ``dataset`` (where
    a later run, or a resume, would train on them)."""
    output = Path(output)
    if output.suffix != ".safetensors":
        raise OutputError(f"{output}: a model file must end in .safetensors (its entry goes beside it as .json)")
    entry = output.with_suffix(".json")
    for path in (output, entry):
        check_output_path(path, *inputs)
    if options.checkpoint:
        checkpoint = Path(options.checkpoint)
        if checkpoint.resolve() in (output.resolve(), entry.resolve()):
            raise OutputError(f"checkpoint {checkpoint} would overwrite the model or its entry; choose another name")
        check_output_path(checkpoint, *inputs)
    if options.preview_dir and options.preview_every:
        folder = Path(options.preview_dir)
        if dataset is not None and Path(dataset).is_dir() and is_within(folder, dataset):
            raise OutputError(f"preview folder {folder} is inside the training photos {dataset}, which would then "
                              "hold the previews; choose --preview-dir (or -o) elsewhere")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create preview folder {folder}: {exc.strerror}") from exc
        if not os.access(folder, os.W_OK):
            raise OutputError(f"preview folder {folder} is not writable")
    return output


def _check_learning_rate(lr: float) -> None:
    if not (math.isfinite(lr) and lr >= 0):
        raise TrainingError(f"the learning rate must be a finite number ≥ 0, got {lr}")


def train_style(recipe: StyleRecipe, output: str | os.PathLike, options: RunOptions = RunOptions(), *,
                name: str | None = None, variant: str = "full", quality_images: list[str] | None = None,
                gatys_iterations: tuple[int, ...] = (), init: str | None = None, on_log=None) -> TrainingResult:
    """Train a style network per ``recipe`` and write ``output`` (safetensors) and ``output``.json (catalog entry).

    ``init``: a model file of the same architecture to start from (:func:`load_initial_weights`).
    """
    from .io.images import read_image

    output = check_run_files(output, options, [recipe.style_image, recipe.dataset, init, recipe.loss_net_weights,
                                               *(quality_images or ())], dataset=recipe.dataset)
    _check_learning_rate(recipe.lr)
    if not Path(recipe.style_image).is_file():
        raise InputError(f"style image not found: {recipe.style_image}")
    for path in quality_images or ():  # read now: a bad photo should fail before training, not after
        read_image(path)
    device = resolve_device(options.device)
    torch.manual_seed(recipe.seed)  # the network's initial weights
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # the loss network first: a missing weights file should fail before minutes of decoding
    style = image_to_batch(read_image(recipe.style_image).rgb, device)
    objective = build_objective(style_objective_config(recipe), style, weights=recipe.loss_net_weights, device=device)
    if recipe.image_size < objective.lossnet.min_side:
        raise TrainingError(f"--image-size {recipe.image_size} is below the {objective.lossnet.min_side} px "
                            "the loss network's taps need")
    bank, data_info = _load_bank(recipe.dataset, device, short_side=recipe.image_size, min_side=None,
                                 limit=recipe.data_limit, workers=options.workers)
    task = StyleTask(recipe, objective, bank, device, _center_crop(bank, recipe.image_size, device))
    recipe_dict = recipe.to_dict()
    recipe_dict["objective"] = task.config.to_dict()
    if init:
        recipe_dict["init"] = load_initial_weights(task.model, init)
    result = train_loop(task, recipe_dict, iterations=recipe.iterations, lr=recipe.lr, seed=recipe.seed,
                        device=device, options=options, data_info=data_info, on_log=on_log)
    name = name or Path(output).stem
    credit = _style_credit(recipe.style_image)
    entry = _finish(result, output, name=name, task="style", arch=result.model.config.to_dict(),
                    variant=variant, recipe=recipe_dict, recipe_extra={
                        "loss_net": task.config.loss_net,
                        "loss_net_weights_sha256": task.objective.lossnet.weights_sha256,
                        "style_image": {"file": Path(recipe.style_image).name,
                                        "sha256": sha256_of(recipe.style_image), "credit": credit},
                    }, device=device,
                    description=f"{credit}: feed-forward style transfer (Johnson et al. 2016)",
                    credit=f"style: {credit}; training photos: {_dataset_note(recipe.dataset)}",
                    licence=f"style image: {STYLE_IMAGE_LICENCE}; training data: {_dataset_note(recipe.dataset)}")
    if quality_images:  # after the model is on disk: this can take minutes (Gatys)
        entry = _write_entry(output, {**entry, "quality": measure_style_quality(
            result.model, task.objective, quality_images, device, gatys_iterations)})
    result.entry = entry
    return result


def train_superres(recipe: SuperResRecipe, output: str | os.PathLike, options: RunOptions = RunOptions(), *,
                   name: str | None = None, quality_sets: dict[str, str] | None = None, init: str | None = None,
                   on_log=None) -> TrainingResult:
    """Train an SR network per ``recipe``; write ``output`` (safetensors) and ``output``.json (catalog entry).

    ``init``: a model file of the same architecture to start from (:func:`load_initial_weights`).
    """
    from .evaluate import dataset_images

    recipe = recipe.resolved()
    output = check_run_files(output, options, [recipe.dataset, init, recipe.loss_net_weights], dataset=recipe.dataset)
    _check_learning_rate(recipe.lr)
    for set_name, folder in (quality_sets or {}).items():  # checked now: a bad folder should fail before training
        dataset_images(folder)
        if Path(recipe.dataset).is_dir() and is_within(folder, recipe.dataset):
            warnings.warn(f"eval set {set_name} ({folder}) is among the training photos: its scores measure how "
                          "well the model fits them, not how it does on new images")
    device = resolve_device(options.device)
    torch.manual_seed(recipe.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    objective = superres_objective(recipe, device)  # first: missing weights fail before the decoding
    bank, data_info = _load_bank(recipe.dataset, device, short_side=None, min_side=recipe.patch_size,
                                 limit=recipe.data_limit, workers=options.workers)
    if data_info["enlarged"]:
        warnings.warn(f"{data_info['enlarged']} of {data_info['images']} photos are smaller than the "
                      f"{recipe.patch_size}² patches and were enlarged, so their HR targets are blurry; "
                      "a smaller --patch-size avoids it")
    task = SuperResTask(recipe, objective, bank, device, _center_crop(bank, recipe.patch_size, device))
    recipe_dict = recipe.to_dict()
    if init:
        recipe_dict["init"] = load_initial_weights(task.model, init)
    result = train_loop(task, recipe_dict, iterations=recipe.iterations, lr=recipe.lr, seed=recipe.seed,
                        device=device, options=options, data_info=data_info, on_log=on_log)
    extra = {}
    if task.objective is not None:
        extra = {"loss_net": recipe.loss_net, "loss_net_weights_sha256": task.objective.lossnet.weights_sha256}
    entry = _finish(result, output, name=name or Path(output).stem, task="superres",
                    arch=result.model.config.to_dict(), variant="full", recipe=recipe_dict, recipe_extra=extra,
                    device=device,
                    description=f"×{recipe.scale} super-resolution, {recipe.loss} loss (Johnson et al. 2016)",
                    credit=f"training photos: {_dataset_note(recipe.dataset)}",
                    licence=f"training data: {_dataset_note(recipe.dataset)}")
    if quality_sets:  # after the model is on disk
        entry = _write_entry(output, {**entry, "quality": measure_superres_quality(result.model, quality_sets,
                                                                                   device)})
    result.entry = entry
    return result


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def _finish(result: TrainingResult, output: Path, *, name: str, task: str, arch: dict, variant: str, recipe: dict,
            recipe_extra: dict, device: torch.device, description: str, credit: str, licence: str) -> dict:
    """Write the model file and its catalog entry (``output`` with suffix .json, quality not measured yet);
    return the entry."""
    model = result.model.to(memory_format=torch.contiguous_format)
    with atomic_output(output) as tmp:
        sha = save_model_file(model, tmp, **{"livestyle.name": name})
    recipe = {k: v for k, v in recipe.items() if k != "loss_net_weights"}  # a local path; its sha256 is kept
    recipe = {**recipe, **recipe_extra,
              "dataset": {"source": Path(recipe["dataset"]).name, "images": result.dataset_images,
                          "skipped": len(result.skipped_images), "note": _dataset_note(recipe["dataset"])},
              "trained_on": _device_name(device), "steps": result.steps, "amp": result.amp,
              "channels_last": result.channels_last, "images_per_second": round(result.images_per_second, 2),
              "train_seconds": round(result.seconds, 1), "final_losses": result.final_losses}
    if result.entry:
        recipe.update(result.entry)
    entry = {"name": name, "task": task, "arch": arch, "file": Path(output).name, "sha256": sha, "variant": variant,
             "description": description, "recipe": recipe, "quality": {}, "credit": credit, "licence": licence}
    return _write_entry(output, entry)


def _write_entry(output: Path, entry: dict) -> dict:
    """Write a model's catalog entry beside it (``output`` with suffix .json); return the entry."""
    with atomic_output(Path(output).with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(entry, indent=2, sort_keys=False) + "\n")
    return entry


def _read_catalog(catalog: str | os.PathLike) -> tuple[Path, dict, list[dict]]:
    """(catalog.json path, its record, its models) for a catalog folder or file; a missing file is empty."""
    path = Path(catalog)
    if path.is_dir() or path.suffix != ".json":
        path = path / CATALOG_FILE
    if not path.parent.is_dir():
        raise TrainingError(f"catalog folder {path.parent} does not exist")
    records = {"models": []}
    if path.is_file():
        try:
            records = json.loads(path.read_text())
        except ValueError as exc:
            raise TrainingError(f"catalog {path} is not valid JSON: {exc}") from exc
    models = records.get("models") if isinstance(records, dict) else None
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise TrainingError(f"catalog {path} is not a JSON object with a 'models' list of objects")
    return path, records, models


def check_catalog_entry(catalog: str | os.PathLike, name: str, file_name: str) -> None:
    """Before training: the catalog is readable, and its file ``file_name`` belongs to no other entry
    (copying the new model there would break that entry, a shipped model say)."""
    path, _, models = _read_catalog(catalog)
    owner = next((m.get("name") for m in models if m.get("file") == file_name and m.get("name") != name), None)
    if owner is not None:
        raise TrainingError(f"{path.parent / file_name} is the model of catalog entry {owner!r}; "
                            "choose another -o file name")


def add_catalog_entry(catalog: str | os.PathLike, entry: dict, model_file: str | os.PathLike | None = None) -> Path:
    """Add ``entry`` to a catalog.json (a folder or the file), replacing one of the same name. Returns the file.

    ``model_file``: copied into the catalog's folder (as ``entry["file"]``) where it is not there yet.
    """
    check_catalog_entry(catalog, entry["name"], entry["file"])
    path, records, models = _read_catalog(catalog)
    # The model is copied only once the catalog is known to be good (no stray copy beside a bad catalog).
    if model_file is not None:
        import shutil

        target = path.parent / entry["file"]
        if not (target.exists() and os.path.samefile(model_file, target)):
            with atomic_output(target) as tmp:
                shutil.copyfile(model_file, tmp)
    # A replaced entry keeps its place (the catalog's order is the cam's n/p order); a new one goes last.
    position = next((i for i, m in enumerate(models) if m.get("name") == entry["name"]), len(models))
    kept = [m for m in models if m.get("name") != entry["name"]]
    records["models"] = kept[:position] + [entry] + kept[position:]
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(records, indent=2) + "\n")
    return path


def measure_style_quality(model: nn.Module, objective: PerceptualObjective, images: list[str],
                          device: torch.device, gatys_iterations: tuple[int, ...] = (),
                          long_side: int = 512) -> dict:
    """Objective terms of the feed-forward output on content photos (long side ``long_side``), mean over photos,
    beside Gatys (L-BFGS from the content image, same objective) after each of ``gatys_iterations``.

    Delegates to ``livestyle.evaluate.compare_style`` (what `livestyle eval style` reports).
    """
    from .evaluate import compare_style
    from .io.images import read_image
    from .objective import resize_long_side

    contents = [resize_long_side(image_to_batch(read_image(path).rgb, device), long_side) for path in images]
    comparison = compare_style(model, objective, contents, [Path(p).name for p in images], gatys_iterations)
    return {"style_losses": {"images": comparison.images, "long_side": long_side, "mean": comparison.means()}}


def measure_superres_quality(model: nn.Module, sets: dict[str, str], device: torch.device) -> dict:
    """PSNR/SSIM (Y, border = scale) of the model beside bicubic on named HR folders (``livestyle.evaluate``)."""
    from .evaluate import evaluate_superres

    return evaluate_superres(model, sets, device=device)
