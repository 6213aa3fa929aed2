"""livestyle: real-time neural style transfer and super-resolution with perceptual-loss networks.

The names below load on first use, so ``import livestyle`` (and the command line's start, where
Ctrl-C must stay clean) does not wait for torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Catalog": "livestyle.zoo.catalog", "ModelEntry": "livestyle.zoo.catalog",
    "choose_model": "livestyle.zoo.choice", "load_model_file": "livestyle.zoo.modelfile",
    "save_model_file": "livestyle.zoo.modelfile", "ChainEngine": "livestyle.engines.chain",
    "build_engine": "livestyle.engines.factory", "create_engine": "livestyle.engines.factory",
    "LivestyleError": "livestyle.errors", "feature_loss": "livestyle.quality.losses",
    "gram_matrix": "livestyle.quality.losses", "pixel_loss": "livestyle.quality.losses",
    "style_loss": "livestyle.quality.losses", "total_variation_loss": "livestyle.quality.losses",
    "SRNet": "livestyle.models.superres", "TransformNet": "livestyle.models.transform",
    "sr_net": "livestyle.models.superres", "transform_net": "livestyle.models.transform",
    "VGG16Features": "livestyle.models.lossnets", "loss_network": "livestyle.models.lossnets",
    "stylize_image": "livestyle.pipeline.still", "train_style": "livestyle.training.run",
    "train_superres": "livestyle.training.run",
    "SubpixelSRNet": "livestyle.models.subpixel_sr",
    "subpixel_sr_net": "livestyle.models.subpixel_sr",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'livestyle' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
