"""Training recipes: what a model learns from (data, objective, architecture, steps) and how a run
is executed (device, precision, bookkeeping). Defaults follow the paper (Johnson et al. 2016, Sec. 4):
batch 4, Adam 1e-3; style 40k steps on 256² crops; SR 200k steps on 288² patches."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from livestyle.errors import TrainingError
from livestyle.models.subpixel_sr import SubpixelSRNetConfig
from livestyle.models.superres import SRNetConfig
from livestyle.quality.objective import ObjectiveConfig

# Style-training objective per loss network: what `train style` uses where the recipe gives nothing.
# SqueezeNet's taps conv1..fire5 and their weights were chosen by measurement (bench/experiments/
# squeezenet-taps/findings.md): the per-tap weights make each tap's Gram loss start at a similar size, so
# colour and large shapes count as much as the middle taps. Its style weight (3× the first choice) and
# style image size (384 px) make the models repaint the frame with motifs at the painting's scale instead
# of laying a fine texture over the photo; the deep taps fire6..fire9, at 1/12 of the weights that would
# balance them with the others, make a network learn the painting's large motifs, which the shallow taps
# alone teach it far less than they teach a Gatys optimisation; the content weight at 0.5 lets them repaint
# more of the frame at a content loss still under 2x Gatys' (bench/experiments/style-objective/
# findings.md). The objective's own defaults (livestyle.quality.objective.DEFAULT_WEIGHTS) are tuned for
# Gatys runs from the content image.
STYLE_TRAINING_DEFAULTS: dict[str, dict] = {
    "squeezenet1_1": {"content_weight": 0.5, "style_weight": 1.5e-3, "tv_weight": 1e4, "style_size": 384,
                      "style_taps": ("conv1", "fire2", "fire3", "fire4", "fire5", "fire6", "fire7", "fire8", "fire9"),
                      "style_tap_weights": {"conv1": 20.0, "fire2": 1.5, "fire3": 1.5, "fire4": 1.0, "fire5": 5.0,
                                            "fire6": 0.417, "fire7": 8.33, "fire8": 8.33, "fire9": 250.0}},
}
STYLE_SIZE = 256  # the style image's long side where a loss network has no measured default (the paper's)
# The feature loss of SR: paper relu2_2 of VGG-16 (stride 2). For SqueezeNet, fire2 (stride 4) alone
# left a 4-pixel cross-hatch on smooth areas; with conv1 (stride 2) as well it was fainter and Set5
# scored higher (bench/experiments/sr-feat/findings.md). TV weights are not tuned by measurement.
SR_FEATURE_TAPS = {"vgg16": ("relu2_2",), "squeezenet1_1": ("conv1", "fire2")}
SR_TV_WEIGHT = {"pixel": 0.0, "feat": 1e3}
# (width, blocks) of each SR network family when a recipe gives none, its config's defaults: the paper's
# SRNet (64, 4), and the CPU-fast SubpixelSRNet of x4_fast (bench/experiments/fast-sr/findings.md).
SR_FAMILY_DEFAULTS = {"srnet": (SRNetConfig.width, SRNetConfig.blocks),
                      "subpixel": (SubpixelSRNetConfig.width, SubpixelSRNetConfig.blocks)}


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
    objective: ObjectiveConfig = ObjectiveConfig()
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
    family: str = "srnet"  # the network: "srnet" (the paper's, SRNet) | "subpixel" (CPU-fast, SubpixelSRNet)
    width: int | None = None  # None: the family's default (SR_FAMILY_DEFAULTS)
    blocks: int | None = None
    residual: bool = True  # bicubic skip (see SRNet); False: the paper's network exactly
    norm: str = "none"  # "batch": the paper's
    patch_size: int = 288
    blur_sigma: float = 0.0  # the paper: 1.0
    batch_size: int = 4
    iterations: int = 200_000
    lr: float | None = None  # None: 1e-4 for SRNet with the bicubic skip (at 1e-3 Adam's first steps overshoot), else 1e-3
    seed: int = 0
    data_limit: int | None = None
    loss_net_weights: str | None = None

    def resolved(self) -> SuperResRecipe:
        if self.loss not in ("pixel", "feat"):
            raise TrainingError(f"SR loss must be pixel or feat, got {self.loss!r}")
        if self.family not in SR_FAMILY_DEFAULTS:
            raise TrainingError(f"unknown SR network family {self.family!r}; known: {', '.join(SR_FAMILY_DEFAULTS)}")
        if self.family == "subpixel" and (self.norm != "none" or not self.residual):
            raise TrainingError("the subpixel family has no norms and always adds the bicubic upscale; "
                                "leave out --norm and --no-residual")
        taps = tuple(self.feature_taps) if self.feature_taps else SR_FEATURE_TAPS.get(self.loss_net, ())
        tv = SR_TV_WEIGHT[self.loss] if self.tv_weight is None else float(self.tv_weight)
        # SRNet with its bicubic skip overshoots at 1e-3; the subpixel net trained fastest there (fast-sr/findings.md)
        lr = (1e-4 if self.residual and self.family == "srnet" else 1e-3) if self.lr is None else float(self.lr)
        width, blocks = SR_FAMILY_DEFAULTS[self.family]
        return replace(self, feature_taps=taps if self.loss == "feat" else (), tv_weight=tv, lr=lr,
                       width=width if self.width is None else self.width,
                       blocks=blocks if self.blocks is None else self.blocks)

    def arch(self) -> dict:
        """The network's architecture record (its config's fields; see ``livestyle.zoo.registry``)."""
        r = self.resolved()
        if r.family == "srnet":
            return {"scale": r.scale, "width": r.width, "blocks": r.blocks, "norm": r.norm, "residual": r.residual}
        return {"family": r.family, "scale": r.scale, "width": r.width, "blocks": r.blocks}

    def to_dict(self) -> dict:
        d = asdict(self.resolved())
        d["feature_taps"] = list(d["feature_taps"])
        if self.loss == "pixel":
            d.pop("loss_net"), d.pop("loss_net_weights")
        if self.family == "srnet":  # recipes from before the families: resuming their checkpoints matches
            d.pop("family")
        return d


def style_objective_config(recipe: StyleRecipe) -> ObjectiveConfig:
    """The recipe's objective with training's defaults for its loss network filling the ``None`` fields.

    Per-tap style weights come from ``STYLE_TRAINING_DEFAULTS`` only where the recipe gives none at all.
    """
    config = recipe.objective
    defaults = {"style_size": STYLE_SIZE, **STYLE_TRAINING_DEFAULTS.get(config.loss_net, {})}
    fill = {k: v for k, v in defaults.items() if k != "style_tap_weights" and getattr(config, k) is None}
    if not config.style_tap_weights and defaults.get("style_tap_weights"):
        # Only for the taps in use: --style-taps alone would otherwise get weights for taps it left out.
        taps = config.style_taps or fill.get("style_taps") or ()
        fill["style_tap_weights"] = {k: v for k, v in defaults["style_tap_weights"].items() if not taps or k in taps}
    return replace(config, **fill).resolved()


def superres_objective_config(recipe: SuperResRecipe) -> ObjectiveConfig | None:
    """The feature loss (plus TV) of a ``feat`` SR recipe, as an objective; None for ``pixel``."""
    recipe = recipe.resolved()
    if recipe.loss != "feat":
        return None
    return ObjectiveConfig(loss_net=recipe.loss_net, content_taps=recipe.feature_taps,
                           style_taps=recipe.feature_taps, content_weight=1.0, style_weight=0.0,
                           tv_weight=recipe.tv_weight)
