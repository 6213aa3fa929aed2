"""Frozen ImageNet loss networks with named taps (the φ of Johnson et al. 2016).

A loss network takes the project's float RGB [0, 1] images and converts them to the input
convention of *its weights* inside itself: torchvision's weights want RGB normalised by the
ImageNet mean/std; the Caffe-converted SqueezeNet in ../shared wants BGR 0..255 minus a mean,
and says so in its safetensors metadata. A wrong convention still gives features, only bad ones,
so the convention is read from the weights, never assumed.

Weights are resolved in this order: an explicit path (``--loss-net-weights``), the environment
variable ``LIVESTYLE_LOSSNET_WEIGHTS`` (``LIVESTYLE_VGG16`` for vgg16; a variable naming another
network's weights is passed over with a warning), torchvision's cache file, then torchvision's
download for real users.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision
from torch import nn

from livestyle.errors import LossNetWeightsError
from livestyle.models import ENV_LOSSNET_WEIGHTS

ENV_VGG16 = "LIVESTYLE_VGG16"


@dataclass(frozen=True)
class InputConvention:
    """How a network's weights expect pixels: channel order, value scale, per-channel mean/std.

    ``mean`` and ``std`` are given in the network's own channel order and value scale.
    """

    channel_order: str  # "RGB" or "BGR"
    scale: float  # 1.0 for [0, 1] inputs, 255.0 for [0, 255]
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float RGB in [0, 1] → the network's input convention."""
        if self.channel_order == "BGR":
            images = images.flip(1)
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return (images * self.scale - mean) / std


TORCHVISION = InputConvention("RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def convention_from_metadata(metadata: dict[str, str] | None) -> InputConvention:
    """Read the input convention a weights file states; files without one follow torchvision's.

    Understands the Caffe statement of ../shared's SqueezeNet ("BGR …, values 0..255, minus
    per-channel mean B=104 G=117 R=123"). An ``input`` entry it cannot read is an error, not a guess.
    """
    text = (metadata or {}).get("input")
    if text is None:
        return TORCHVISION
    mean = dict(re.findall(r"\b([BGR])\s*=\s*([\d.]+)", text))
    if "BGR" in text and "255" in text and set(mean) == {"B", "G", "R"}:
        return InputConvention("BGR", 255.0, (float(mean["B"]), float(mean["G"]), float(mean["R"])))
    raise LossNetWeightsError(f"cannot understand the input convention stated by the weights file: {text!r}")


@dataclass(frozen=True)
class LossNetSpec:
    """A loss-network family: how to build it, where its taps are, its defaults and weights."""

    build: Callable[[], nn.Module]  # torchvision constructor, weights=None
    taps: dict[str, int]  # tap name → index in ``.features`` (output of that module)
    content_taps: tuple[str, ...]
    style_taps: tuple[str, ...]
    torchvision_weights: Callable[[], object]  # → torchvision WeightsEnum member
    env_vars: tuple[str, ...] = field(default=(ENV_LOSSNET_WEIGHTS,))


LOSS_NETWORKS: dict[str, LossNetSpec] = {
    "vgg16": LossNetSpec(
        build=lambda: torchvision.models.vgg16(weights=None),
        taps={"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22},
        content_taps=("relu2_2",),
        style_taps=("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
        torchvision_weights=lambda: torchvision.models.VGG16_Weights.IMAGENET1K_V1,
        env_vars=(ENV_VGG16, ENV_LOSSNET_WEIGHTS),
    ),
    "squeezenet1_1": LossNetSpec(
        build=lambda: torchvision.models.squeezenet1_1(weights=None),
        taps={"conv1": 1, "fire2": 3, "fire3": 4, "fire4": 6, "fire5": 7,
              "fire6": 9, "fire7": 10, "fire8": 11, "fire9": 12},
        content_taps=("fire4",),
        style_taps=("conv1", "fire2", "fire3", "fire4", "fire5"),
        torchvision_weights=lambda: torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1,
    ),
}


def _spec(name: str) -> LossNetSpec:
    if name not in LOSS_NETWORKS:
        raise LossNetWeightsError(f"unknown loss network {name!r}; known: {', '.join(LOSS_NETWORKS)}")
    return LOSS_NETWORKS[name]


@dataclass(frozen=True)
class LossNetWeights:
    """A resolved state dict with its input convention and where it came from."""

    state_dict: dict[str, torch.Tensor]
    convention: InputConvention
    source: str  # a file path or a URL
    sha256: str | None  # of the file, where there is one


@contextlib.contextmanager
def _reading_weights(path: str | os.PathLike) -> Iterator[Path]:
    """The weights file as a Path, with a missing, corrupt or foreign file made one error naming it."""
    path = Path(path)
    if not path.is_file():
        raise LossNetWeightsError(f"loss-network weights file not found: {path}")
    try:
        yield path
    except LossNetWeightsError:
        raise
    except Exception as exc:  # corrupt or foreign file: say which, not a traceback
        raise LossNetWeightsError(f"cannot read loss-network weights {path}: {exc}") from exc


def read_weights_file(path: str | os.PathLike) -> LossNetWeights:
    """Load loss-network weights from .safetensors (convention from metadata) or a torchvision .pth."""
    from livestyle.files import sha256_of

    with _reading_weights(path) as path:
        if path.suffix == ".safetensors":
            from safetensors import safe_open
            from safetensors.torch import load_file

            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata()
            state, convention = load_file(str(path)), convention_from_metadata(metadata)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            convention = TORCHVISION
    return LossNetWeights(state, convention, str(path), sha256_of(path))


def file_network(path: str | os.PathLike) -> str | None:
    """Which loss network (a ``LOSS_NETWORKS`` name) a weights file holds, from its feature layers'
    names and shapes (a .safetensors file's header only), or None where it is none of them."""
    with _reading_weights(path) as path:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            shapes = {k: tuple(v.shape) for k, v in state.items()}
    features = {k: v for k, v in shapes.items() if k.startswith("features.")}
    for name, spec in LOSS_NETWORKS.items():
        with torch.device("meta"):  # the layer shapes without allocating the network
            own = {k: tuple(v.shape) for k, v in spec.build().state_dict().items() if k.startswith("features.")}
        if own == features:
            return name
    return None


def environment_weights(name: str) -> str | None:
    """The weights file the environment names for loss network ``name``: the first of its variables
    that is set (``LIVESTYLE_VGG16``, then ``LIVESTYLE_LOSSNET_WEIGHTS``), unless that file holds
    another loss network's weights: then it is passed over with a warning (it is meant for that one)."""
    for var in _spec(name).env_vars:
        path = os.environ.get(var)
        if not path:
            continue
        held = file_network(path)
        if held in (None, name):  # None: no known network; loading it says what is wrong
            return path
        warnings.warn(f"${var} holds {held} weights ({path}); the {name} loss network does not use them")
    return None


def resolve_weights(name: str, path: str | os.PathLike | None = None) -> LossNetWeights:
    """Find weights for loss network ``name``: explicit path, env variables, torchvision cache, download."""
    spec = _spec(name)
    if path:
        return read_weights_file(path)
    from_environment = environment_weights(name)
    if from_environment:
        return read_weights_file(from_environment)
    weights = spec.torchvision_weights()
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if cached.is_file():
        return read_weights_file(cached)
    try:
        # through torch.hub's module attribute (what torchvision calls too), so tests can stand in for the network
        state = torch.hub.load_state_dict_from_url(weights.url, progress=True, check_hash=True)
    except Exception as exc:  # no network, hub unreachable, partial download
        raise LossNetWeightsError(
            f"no ImageNet weights for loss network {name!r}: pass --loss-net-weights FILE or set "
            f"{ENV_LOSSNET_WEIGHTS}=FILE (download of {weights.url} failed: {type(exc).__name__})"
        ) from exc
    return LossNetWeights(state, TORCHVISION, weights.url, None)


class LossNetwork(nn.Module):
    """A frozen feature extractor with named taps: [0, 1] RGB (N, 3, H, W) → {tap: (N, C, h, w)}.

    Truncated after the deepest tap requested; always in eval mode; its weights never get gradients
    (gradients still flow to the input, which is what training needs).
    """

    def __init__(self, name: str, features: nn.Sequential, taps: dict[str, int],
                 convention: InputConvention, weights_sha256: str | None = None):
        super().__init__()
        self.name = name
        self.convention = convention
        self.weights_sha256 = weights_sha256
        self.taps = dict(sorted(taps.items(), key=lambda kv: kv[1]))
        self.features = features[: max(self.taps.values()) + 1]
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LossNetwork:
        return super().train(False)  # frozen: dropout/normalisation never switch to training

    @functools.cached_property
    def min_side(self) -> int:
        """The smallest image side its taps are defined for (found by trying: each network's strides,
        pooling and padding give another number, e.g. 8 for VGG-16, 17 for all of SqueezeNet's taps)."""
        device = next(self.parameters()).device
        with torch.no_grad():
            for side in range(1, 64):
                try:
                    self(torch.zeros(1, 3, side, side, device=device))
                    return side
                except RuntimeError:  # "output size is too small" / "kernel size can't be greater"
                    continue
        return 64

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.convention.apply(images)
        by_index = {index: tap for tap, index in self.taps.items()}
        out = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in by_index:
                out[by_index[index]] = x
        return out


def _load_into(model: nn.Module, weights: LossNetWeights, name: str, prefix: str = "features.") -> None:
    wanted = {k: v for k, v in weights.state_dict.items() if k.startswith(prefix)}
    own = {k for k in model.state_dict() if k.startswith(prefix)}
    if set(wanted) != own:
        raise LossNetWeightsError(f"{weights.source} does not hold {name} weights (its keys do not match)")
    model.load_state_dict(wanted, strict=False)


def loss_network(
    name: str = "squeezenet1_1",
    *,
    taps: Sequence[str] | None = None,
    weights: str | os.PathLike | None = None,
    pretrained: bool = True,
) -> LossNetwork:
    """Build frozen loss network ``name`` exposing ``taps`` (default: its content and style taps).

    ``pretrained=False`` gives random weights with torchvision's convention, for tests and timing.
    """
    spec = _spec(name)
    taps = tuple(taps) if taps else tuple(dict.fromkeys(spec.content_taps + spec.style_taps))
    unknown = [t for t in taps if t not in spec.taps]
    if unknown:
        raise LossNetWeightsError(f"unknown tap(s) {', '.join(unknown)} for {name}; known: {', '.join(spec.taps)}")
    model = spec.build()
    convention, sha = TORCHVISION, None
    if pretrained:
        resolved = resolve_weights(name, weights)
        _load_into(model, resolved, name)
        convention, sha = resolved.convention, resolved.sha256
    return LossNetwork(name, model.features, {t: spec.taps[t] for t in taps}, convention, sha)


class VGG16Features(LossNetwork):
    """The paper's loss network: VGG-16 with taps relu1_2, relu2_2, relu3_3, relu4_3."""

    def __init__(self, taps: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3"), *,
                 weights: str | os.PathLike | None = None, pretrained: bool = True):
        built = loss_network("vgg16", taps=taps, weights=weights, pretrained=pretrained)
        super().__init__("vgg16", built.features, built.taps, built.convention, built.weights_sha256)
