"""livestyle: real-time neural style transfer and super-resolution with perceptual-loss networks.

The names below load on first use, so ``import livestyle`` (and the command line's start, where
Ctrl-C must stay clean) does not wait for torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Catalog": ".catalog", "ModelEntry": ".catalog", "choose_model": ".catalog", "load_model_file": ".catalog",
    "save_model_file": ".catalog", "ChainEngine": ".chain", "build_engine": ".chain", "create_engine": ".engines",
    "LivestyleError": ".errors", "feature_loss": ".losses", "gram_matrix": ".losses", "pixel_loss": ".losses",
    "style_loss": ".losses", "total_variation_loss": ".losses", "SRNet": ".models", "TransformNet": ".models",
    "sr_net": ".models", "transform_net": ".models", "VGG16Features": ".models.lossnets",
    "loss_network": ".models.lossnets",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'livestyle' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
