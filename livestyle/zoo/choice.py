"""Model choice: what `--style NAME`, `--model FILE` and `--superres 4|8|NAME` load."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from livestyle.errors import UnknownModelError
from livestyle.zoo.catalog import Catalog
from livestyle.zoo.modelfile import load_model_file
from livestyle.zoo.registry import task_of


def resolve_variant(variant: str, device_type: str) -> str:
    """``--variant``: "auto" means the small real-time model where the network runs on the CPU, else the full one."""
    if variant != "auto":
        return variant
    return "small" if device_type == "cpu" else "full"


@dataclass(frozen=True)
class ModelChoice:
    """A loaded network ready for inference, with a name to show the user."""

    model: nn.Module
    name: str
    task: str  # "style" | "superres" | "chain" (style, then ``superres_model``)
    scale: int = 1  # output size / input size
    superres_model: nn.Module | None = None  # the chain's second network


def choose_model(*, style: str | None = None, model_file: str | os.PathLike | None = None,
                 superres: int | str | None = None, catalog: Catalog | None = None,
                 variant: str = "full") -> ModelChoice:
    """Load one of: a catalog style by name, a model file, or a catalog SR model (the ×N default for a
    scale, or one by name: see ``Catalog.superres``).

    A style (by name or file) together with ``superres`` is a chain: stylise, then upscale.
    ``variant``: which model a plain style name, and a plain SR scale, means ("full" or "small"; see
    ``Catalog.get`` and ``Catalog.superres``).
    """
    if style is not None and model_file is not None:
        raise UnknownModelError("choose exactly one of --style NAME, --model FILE (add --superres 4|8 to upscale)")
    if style is None and model_file is None and superres is None:
        raise UnknownModelError("choose exactly one of --style NAME, --model FILE, --superres 4|8")
    if catalog is None and (style is not None or superres is not None):
        catalog = Catalog()
    if model_file is not None:
        model, metadata = load_model_file(model_file)
        name = Path(model_file).stem
    elif style is not None:
        entry = catalog.get(style, task="style", variant=variant)
        if entry.name != style and entry.variant != variant:  # a plain name, and only the other variant is here
            warnings.warn(f"no {variant} model of {style!r} is installed; running {entry.name}", stacklevel=2)
        model, name = catalog.load(entry), entry.name
    else:
        entry = catalog.superres(superres, variant)
        model = catalog.load(entry)
        return ModelChoice(model, entry.name, "superres", model.scale)
    if task_of(model) == "superres":
        if superres is not None:
            raise UnknownModelError(f"{name} is a super-resolution model; --superres chains after a style model")
        return ModelChoice(model, name, "superres", model.scale)
    if superres is None:
        return ModelChoice(model, name, "style", 1)
    sr_entry = catalog.superres(superres, variant)
    sr_model = catalog.load(sr_entry)
    return ModelChoice(model, f"{name}+{sr_entry.name}", "chain", sr_model.scale, sr_model)
