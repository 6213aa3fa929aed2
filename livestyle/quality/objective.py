"""The perceptual objective of Johnson et al. (2016), shared by training and the Gatys baseline.

    total = content_weight · Σ_j ℓ_feat^{φ,j}(ŷ, y_c)
          + style_weight   · Σ_j w_j · ℓ_style^{φ,j}(ŷ, y_s)
          + tv_weight      · ℓ_TV(ŷ)

with the losses of ``livestyle.losses`` (paper eqs. 2–4) on the taps of a frozen loss network.
The same object scores a feed-forward output and an optimised image, so `livestyle eval style`
compares the two on one scale.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from livestyle.errors import InputError, LossNetWeightsError
from livestyle.quality.losses import feature_loss, gram_matrix, style_loss, total_variation_loss
from livestyle.models.lossnets import LOSS_NETWORKS, LossNetwork, loss_network

# Term weights per loss network. The feature scales differ by ~10⁶ (the SqueezeNet here sees Caffe
# 0..255 inputs, VGG-16 torchvision-normalised ones), hence the spread.
# squeezenet1_1: from short L-BFGS runs here (chicago + starry night, 192 px, content init): style
#   weights 2e-3…2e-1 all let style swamp the content; 1e-3 keeps the skyline with clear brush strokes.
# vgg16: not measurable here (no ImageNet VGG-16 weights); the per-tap balance of pytorch/examples'
#   fast_neural_style (content 1e5, style 1e10 on a C²-mean Gram loss) rewritten for this Frobenius
#   form is 1e5/C² per tap, i.e. 24 … 0.4 from relu1_2 to relu4_3; 5 sits between.
# Training settles its own defaults by measurement (issue 8) and may override these.
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "squeezenet1_1": {"content_weight": 1.0, "style_weight": 1e-3, "tv_weight": 1e4},
    "vgg16": {"content_weight": 1.0, "style_weight": 5.0, "tv_weight": 1e-2},
}


@dataclass(frozen=True)
class ObjectiveConfig:
    """Loss network, taps and term weights of the perceptual objective (a training recipe's losses).

    ``None`` taps take the loss network's defaults (``LOSS_NETWORKS[name].content_taps/style_taps``);
    ``None`` weights take ``DEFAULT_WEIGHTS[loss_net]``. ``style_tap_weights`` gives w_j per style
    tap (1.0 where absent). ``style_size``: long side the style image is resized to (None: as given).
    """

    loss_net: str = "squeezenet1_1"
    content_taps: tuple[str, ...] | None = None
    style_taps: tuple[str, ...] | None = None
    content_weight: float | None = None
    style_weight: float | None = None
    tv_weight: float | None = None
    style_tap_weights: Mapping[str, float] = field(default_factory=dict)
    style_size: int | None = None

    def resolved(self) -> ObjectiveConfig:
        """A copy with every ``None`` replaced by the loss network's defaults."""
        if self.loss_net not in LOSS_NETWORKS:
            raise LossNetWeightsError(f"unknown loss network {self.loss_net!r}; known: {', '.join(LOSS_NETWORKS)}")
        spec = LOSS_NETWORKS[self.loss_net]
        defaults = DEFAULT_WEIGHTS.get(self.loss_net, {"content_weight": 1.0, "style_weight": 1.0, "tv_weight": 0.0})
        resolved = replace(
            self,
            content_taps=tuple(self.content_taps) if self.content_taps else spec.content_taps,
            style_taps=tuple(self.style_taps) if self.style_taps else spec.style_taps,
            content_weight=defaults["content_weight"] if self.content_weight is None else float(self.content_weight),
            style_weight=defaults["style_weight"] if self.style_weight is None else float(self.style_weight),
            tv_weight=defaults["tv_weight"] if self.tv_weight is None else float(self.tv_weight),
            style_tap_weights={t: float(w) for t, w in self.style_tap_weights.items()},
        )
        resolved._check(spec.taps)
        return resolved

    def _check(self, known_taps) -> None:
        """User-given taps and weights that would train something else than asked: one clear error."""
        unknown = [t for t in (*self.content_taps, *self.style_taps) if t not in known_taps]
        if unknown:
            raise InputError(f"unknown tap(s) {', '.join(unknown)} for {self.loss_net}; known: {', '.join(known_taps)}")
        unused = [t for t in self.style_tap_weights if t not in self.style_taps]
        if unused:
            raise InputError(f"style tap weight(s) for {', '.join(unused)}, which is not a style tap; the style "
                             f"taps are {', '.join(self.style_taps)}")
        weights = {"content weight": self.content_weight, "style weight": self.style_weight,
                   "TV weight": self.tv_weight, **{f"style tap weight {t}": w for t, w in self.style_tap_weights.items()}}
        bad = [f"{name} {value:g}" for name, value in weights.items() if not math.isfinite(value) or value < 0]
        if bad:
            raise InputError(f"loss weights must be finite and ≥ 0; got {', '.join(bad)}")

    @property
    def taps(self) -> tuple[str, ...]:
        """Every tap the objective reads (content then style, no repeats)."""
        r = self.resolved()
        return tuple(dict.fromkeys(r.content_taps + r.style_taps))

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (for catalog recipes and reports)."""
        d = asdict(self.resolved())
        d["content_taps"], d["style_taps"] = list(d["content_taps"]), list(d["style_taps"])
        d["style_tap_weights"] = dict(d["style_tap_weights"])
        return d


@dataclass
class LossTerms:
    """The objective's value: ``total`` = ``content`` + ``style`` + ``tv`` (each already weighted).

    All are 0-dim tensors (``total`` carries the graph); ``style_per_tap`` holds the weighted
    style term of each tap.
    """

    total: torch.Tensor
    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor
    style_per_tap: dict[str, torch.Tensor] = field(default_factory=dict)

    def as_floats(self) -> dict[str, float]:
        """{"total", "content", "style", "tv"} as Python floats (for logs, progress bars, reports)."""
        return {k: float(getattr(self, k).detach()) for k in ("total", "content", "style", "tv")}


class PerceptualObjective(nn.Module):
    """Content + style + TV loss of images under a frozen loss network, with the style Grams precomputed.

    ``objective(output, content)``: output (N, 3, H, W) float RGB [0, 1] (gradients flow to it),
    content (N, 3, H, W) [0, 1] or precomputed content features → ``LossTerms``. Each loss is
    averaged over the batch (see ``livestyle.losses``), so the weights do not depend on batch size.
    """

    def __init__(
        self,
        lossnet: LossNetwork,
        *,
        style_image: torch.Tensor | None = None,
        content_taps: Sequence[str] | None = None,
        style_taps: Sequence[str] | None = None,
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        style_tap_weights: Mapping[str, float] | None = None,
        tv_weight: float = 0.0,
    ):
        super().__init__()
        spec = LOSS_NETWORKS.get(lossnet.name)
        self.lossnet = lossnet
        self.content_taps = tuple(content_taps) if content_taps else (spec.content_taps if spec else ())
        self.style_taps = tuple(style_taps) if style_taps else (spec.style_taps if spec else ())
        missing = [t for t in self.content_taps + self.style_taps if t not in lossnet.taps]
        if missing:  # a programming error: build the loss network with ``config.taps``
            raise ValueError(f"loss network {lossnet.name} does not expose tap(s) {', '.join(missing)}")
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        self.style_tap_weights = {t: float((style_tap_weights or {}).get(t, 1.0)) for t in self.style_taps}
        self.target_grams: dict[str, torch.Tensor] = {}
        if style_image is not None:
            self.set_style(style_image)

    @classmethod
    def from_config(cls, config: ObjectiveConfig, lossnet: LossNetwork,
                    style_image: torch.Tensor | None = None) -> PerceptualObjective:
        """Build from an ``ObjectiveConfig`` (its ``None`` fields take the loss network's defaults)."""
        r = config.resolved()
        return cls(lossnet, style_image=style_image, content_taps=r.content_taps, style_taps=r.style_taps,
                   content_weight=r.content_weight, style_weight=r.style_weight,
                   style_tap_weights=r.style_tap_weights, tv_weight=r.tv_weight)

    @torch.no_grad()
    def set_style(self, style_image: torch.Tensor) -> None:
        """Compute the target Grams G_j(y_s) of a (1, 3, H, W) [0, 1] style image (kept as (1, C, C))."""
        if style_image.dim() == 3:
            style_image = style_image.unsqueeze(0)
        h, w = style_image.shape[-2:]
        if min(h, w) < self.lossnet.min_side:
            raise InputError(f"the style image is {w}×{h} px as used; the loss network's taps need sides of at "
                             f"least {self.lossnet.min_side} px (a larger style size, or a less elongated image)")
        features = self.lossnet(style_image.to(self._device(), torch.float32))
        self.target_grams = {t: gram_matrix(features[t]).detach() for t in self.style_taps}

    @torch.no_grad()
    def content_features(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """Target features φ_j(y_c) of content images (N, 3, H, W) [0, 1], detached: compute once, reuse."""
        features = self.lossnet(content)
        return {t: features[t].detach() for t in self.content_taps}

    def forward(self, output: torch.Tensor, content: torch.Tensor | Mapping[str, torch.Tensor] | None = None
                ) -> LossTerms:
        if self.style_taps and self.style_weight and not self.target_grams:
            raise ValueError("no style target: pass style_image= or call set_style() first")
        features = self.lossnet(output)
        zero = output.new_zeros((), dtype=torch.float32)
        content_term = zero
        if self.content_weight and self.content_taps:
            if content is None:
                raise ValueError("the content term needs the content images (or their features)")
            targets = content if isinstance(content, Mapping) else self.content_features(content)
            content_term = self.content_weight * sum(
                feature_loss(features[t].float(), targets[t].float()) for t in self.content_taps)
        per_tap = {}
        if self.style_weight:
            per_tap = {t: self.style_weight * self.style_tap_weights[t]
                       * style_loss(gram_matrix(features[t]), self.target_grams[t]) for t in self.style_taps}
        style_term = sum(per_tap.values(), zero)
        tv_term = self.tv_weight * total_variation_loss(output.float()) if self.tv_weight else zero
        return LossTerms(content_term + style_term + tv_term, content_term, style_term, tv_term, per_tap)

    def _device(self) -> torch.device:
        return next(self.lossnet.parameters()).device


def build_objective(
    config: ObjectiveConfig,
    style_image: torch.Tensor | None = None,
    *,
    weights: str | os.PathLike | None = None,
    pretrained: bool = True,
    device: torch.device | str = "cpu",
) -> PerceptualObjective:
    """Loss network (exposing exactly the config's taps) + objective on ``device``, style Grams computed.

    ``weights``: loss-network weights file (else $LIVESTYLE_LOSSNET_WEIGHTS, torchvision's cache or
    download); ``pretrained=False``: random weights, for tests and timing only.
    """
    r = config.resolved()
    lossnet = loss_network(r.loss_net, taps=r.taps, weights=weights, pretrained=pretrained).to(device)
    if style_image is not None and r.style_size:
        style_image = resize_long_side(style_image, r.style_size)
    return PerceptualObjective.from_config(r, lossnet, style_image)


def resize_long_side(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) → (N, 3, h, w) with max(h, w) == size, aspect kept (antialiased bilinear)."""
    h, w = images.shape[-2:]
    factor = size / max(h, w)
    new = (max(1, round(h * factor)), max(1, round(w * factor)))
    if new == (h, w):
        return images
    return F.interpolate(images, size=new, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
