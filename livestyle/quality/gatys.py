"""The optimisation baseline of Gatys, Ecker & Bethge (CVPR 2016), as Johnson et al. (2016) compare against.

An image ŷ is optimised directly to minimise the perceptual objective (``livestyle.objective``: the
same content, Gram style and TV losses, on the same loss network, as training uses). L-BFGS as in
both papers; Adam as an option. Slow (hundreds of loss-network forward/backward passes per image)
and the best quality the objective can give: this is what the feed-forward networks approximate.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import torch

from livestyle.engines.device import synchronize
from livestyle.errors import InputError
from livestyle.models.convention import image_to_batch
from livestyle.quality.objective import PerceptualObjective, build_objective, resize_long_side

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}


@dataclass(frozen=True)
class GatysConfig:
    """Optimisation settings: iterations, optimiser (``lbfgs`` | ``adam``), start image, learning rate.

    ``init="noise"``: uniform white noise (Gatys et al.); ``"content"``: the content image (converges
    in fewer iterations). ``lr=None`` takes ``DEFAULT_LR[optimizer]`` (pixels are in [0, 1]).
    """

    iterations: int = 500
    optimizer: str = "lbfgs"
    init: str = "content"
    lr: float | None = None
    seed: int = 0
    history_size: int = 100  # L-BFGS memory

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be ≥ 0, got {self.iterations}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lr"] = self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]
        return d


@dataclass
class GatysResult:
    """The optimised image (1, 3, H, W) float [0, 1] (clamped), its final loss terms and the run's record.

    ``history``: the total loss after each iteration (empty unless asked for); ``seconds``: wall
    time of the iterations (device synchronised at the end); ``snapshots``: iteration → clamped
    image (1, 3, H, W), for the counts asked for. ``memory_pairs``: the (s, y) pairs L-BFGS kept at
    the end (it skips a pair whose curvature y·s is below 1e-10, e.g. on a nearly flat loss; None for Adam).
    """

    image: torch.Tensor
    terms: dict[str, float]
    iterations: int
    seconds: float
    config: GatysConfig
    history: list[float] = field(default_factory=list)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    memory_pairs: int | None = None


def initial_image(content: torch.Tensor, init: str, seed: int = 0) -> torch.Tensor:
    """Start image for the optimisation: a copy of ``content`` (N, 3, H, W) or seeded uniform noise of its shape."""
    if init == "content":
        return content.detach().clone(memory_format=torch.contiguous_format)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.rand(content.shape, generator=generator).to(content.device)


def make_optimizer(image: torch.Tensor, config: GatysConfig) -> torch.optim.Optimizer:
    """The optimiser of ``config`` over ``image`` (a leaf that requires grad), one iteration per ``step()``.

    L-BFGS: one iteration per step(), which evaluates the loss once (torch re-evaluates only between
    iterations of one call); its state (memory, direction, step count) persists between calls, so N
    calls equal one call with max_iter=N, and each iteration is visible. Each step also runs the
    two-loop recursion over every stored pair, so it costs more as the memory fills (``history_size``).
    """
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.optimizer]
    if config.optimizer == "lbfgs":
        # Tolerances below zero: always run the requested number of iterations (timing needs that).
        return torch.optim.LBFGS([image], lr=lr, max_iter=1, max_eval=2, history_size=config.history_size,
                                 tolerance_grad=-1.0, tolerance_change=-1.0)
    return torch.optim.Adam([image], lr=lr)


def optimize_image(
    objective: PerceptualObjective,
    content: torch.Tensor,
    config: GatysConfig = GatysConfig(),
    *,
    on_iteration: Callable[[int, float | None], None] | None = None,
    record_history: bool = False,
    snapshots: Sequence[int] = (),
) -> GatysResult:
    """Optimise an image for ``objective`` given content (1, 3, H, W) float [0, 1] on the objective's device.

    ``on_iteration(i, total_or_None)`` runs after iteration i (1-based); the loss is passed only
    with ``record_history`` (reading it synchronises a GPU, which timing runs avoid). ``snapshots``:
    iteration counts at which to keep a copy of the image (0 = the start image).
    """
    content = content.detach()
    targets = objective.content_features(content)
    image = initial_image(content, config.init, config.seed).requires_grad_(True)
    optimizer = make_optimizer(image, config)

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = objective(image, targets).total
        loss.backward()
        return loss

    history: list[float] = []
    wanted = set(snapshots)
    kept = {0: image.detach().clamp(0.0, 1.0)} if 0 in wanted else {}
    synchronize(content.device)
    start = time.perf_counter()
    for i in range(1, config.iterations + 1):
        loss = optimizer.step(closure)
        value = None
        if record_history:
            value = float(loss.detach())
            history.append(value)
        if i in wanted:
            kept[i] = image.detach().clamp(0.0, 1.0)
        if on_iteration is not None:
            on_iteration(i, value)
    synchronize(content.device)
    seconds = time.perf_counter() - start

    result = image.detach().clamp(0.0, 1.0)
    with torch.no_grad():
        terms = objective(result, targets).as_floats()
    pairs = None
    if config.optimizer == "lbfgs":
        state = optimizer.state_dict()["state"]  # torch keeps the pairs as "old_dirs" / "old_stps"
        pairs = len(state[0].get("old_dirs", ())) if state else 0
    return GatysResult(result, terms, config.iterations, seconds, config, history, kept, pairs)


def stylize_by_optimization(
    content_rgb,
    style_rgb,
    objective_config,
    config: GatysConfig = GatysConfig(),
    *,
    weights=None,
    pretrained: bool = True,
    device: torch.device | str = "cpu",
    size: int | None = None,
    style_size: int | None = None,
    on_iteration: Callable[[int, float | None], None] | None = None,
) -> GatysResult:
    """Gatys style transfer of one image: float RGB (H, W, 3) [0, 1] arrays in, result image (1, 3, h, w) out.

    ``size``: long side to optimise at (None: the content's own); ``style_size``: the style
    image's long side (None: ``objective_config.style_size``, else the same as the content's).
    ``weights``: loss-network weights file (see ``livestyle.models.lossnets``); ``pretrained=False``:
    random loss-network weights (tests only).
    """
    content = image_to_batch(content_rgb, device)
    if size:
        content = resize_long_side(content, size)
    style = image_to_batch(style_rgb, device)
    long_side = style_size or objective_config.style_size or max(content.shape[-2:])
    style = resize_long_side(style, long_side)
    objective = build_objective(replace(objective_config, style_size=None), None, weights=weights,
                                pretrained=pretrained, device=device)
    min_side = objective.lossnet.min_side
    for what, image in (("content image", content), ("style image", style)):
        if min(image.shape[-2:]) < min_side:
            h, w = image.shape[-2:]
            raise InputError(f"the {what} is {w}×{h} px as optimised; the loss network's taps need sides of at "
                             f"least {min_side} px (--size sets the long side)")
    objective.set_style(style)
    return optimize_image(objective, content, config, on_iteration=on_iteration, record_history=True)
