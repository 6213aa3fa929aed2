"""The weights catalog: shipped models described as data, verified by sha256 when loaded.

``weights/catalog.json`` holds one record per model (like torchvision's weights enums): name,
task, architecture config, file, sha256, training recipe, measured quality, credit and licence.
Every model file is a safetensors file whose metadata also states its task and architecture, so a
``--model FILE`` outside the catalog loads the same way.
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ._files import sha256_of
from .errors import UnknownModelError, WeightsError
from .models import SRNet, SRNetConfig, TransformNet, TransformNetConfig

ENV_WEIGHTS_DIR = "LIVESTYLE_WEIGHTS_DIR"
CATALOG_FILE = "catalog.json"
TASKS = ("style", "superres")
SMALL_SUFFIX = "_small"  # catalog names of the small real-time variants: <style>_small
VARIANTS = ("full", "small")


def default_weights_dir() -> Path:
    """$LIVESTYLE_WEIGHTS_DIR, else the source tree's weights/, else the installed data folder."""
    if os.environ.get(ENV_WEIGHTS_DIR):
        return Path(os.environ[ENV_WEIGHTS_DIR])
    source_tree = Path(__file__).resolve().parent.parent / "weights"
    if source_tree.is_dir():
        return source_tree
    return Path(sys.prefix) / "share" / "livestyle" / "weights"


@dataclass(frozen=True)
class ModelEntry:
    """One catalog record. ``arch`` mirrors the network config's constructor arguments."""

    name: str
    task: str  # "style" | "superres"
    arch: dict
    file: str  # relative to the catalog's folder
    sha256: str
    variant: str = "full"  # "full" | "small" (real-time CPU variant)
    description: str = ""
    recipe: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)
    credit: str = ""
    licence: str = ""

    @classmethod
    def from_dict(cls, record: dict) -> ModelEntry:
        if not isinstance(record, dict):
            raise WeightsError(f"catalog entry {record!r} is not a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        missing = {"name", "task", "arch", "file", "sha256"} - set(record)
        if missing:
            raise WeightsError(f"catalog entry {record.get('name', '?')!r} lacks {', '.join(sorted(missing))}")
        if record["task"] not in TASKS:
            raise WeightsError(f"catalog entry {record['name']!r} has unknown task {record['task']!r}")
        wrong = [k for k, kind in (("name", str), ("file", str), ("sha256", str), ("arch", dict), ("recipe", dict),
                                   ("quality", dict)) if k in record and not isinstance(record[k], kind)]
        if wrong:
            raise WeightsError(f"catalog entry {record['name']!r} has a wrong type for {', '.join(wrong)}")
        return cls(**{k: v for k, v in record.items() if k in known})

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


class Catalog:
    """The models listed in a folder's catalog.json, by name."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder else default_weights_dir()
        if not folder and os.environ.get(ENV_WEIGHTS_DIR) and not self.folder.is_dir():
            # A typo here would otherwise look like an install without models.
            raise WeightsError(f"${ENV_WEIGHTS_DIR} is {self.folder}, which is not a folder")
        path = self.folder / CATALOG_FILE
        self.entries: dict[str, ModelEntry] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (ValueError, OSError) as exc:
                raise WeightsError(f"weights catalog {path} is not valid: {exc}") from exc
            records = data.get("models") if isinstance(data, dict) else None
            if not isinstance(records, list):
                raise WeightsError(f"weights catalog {path} is not valid: expected an object with a 'models' list")
            for record in records:
                try:
                    entry = ModelEntry.from_dict(record)
                except WeightsError as exc:
                    raise WeightsError(f"weights catalog {path} is not valid: {exc}") from exc
                self.entries[entry.name] = entry

    def names(self, task: str | None = None) -> list[str]:
        return [n for n, e in self.entries.items() if task is None or e.task == task]

    def get(self, name: str, task: str | None = None, variant: str = "full") -> ModelEntry:
        """The entry called ``name``. A style asked for by its plain name (``kandinsky``) means its full
        model or, with ``variant="small"``, its small real-time variant (``kandinsky_small``); either
        falls back to the other where only that one is installed."""
        if variant not in VARIANTS:
            raise UnknownModelError(f"unknown model variant {variant!r}; known: {', '.join(VARIANTS)}")
        exact, small = self.entries.get(name), self.entries.get(f"{name}{SMALL_SUFFIX}")
        entry = (small or exact) if variant == "small" else (exact or small)
        if entry is None or (task and entry.task != task):
            known = self.names(task)
            what = "style" if task == "style" else "model"
            listing = f"known: {', '.join(known)}" if known else "no trained models are installed yet (see `livestyle styles`)"
            raise UnknownModelError(f"unknown {what} {name!r}; {listing}")
        return entry

    def style_names(self, variant: str = "full") -> list[str]:
        """One model per style, in catalog order: ``get(style, variant=variant)`` for each style's plain name."""
        names = []
        for name in self.names("style"):
            chosen = self.get(name.removesuffix(SMALL_SUFFIX), "style", variant).name
            if chosen not in names:
                names.append(chosen)
        return names

    def superres(self, which: int | str) -> ModelEntry:
        """An SR model: by catalog name (``x4_feat``), or for a scale (4) the ×N default: the entry named
        ``xN``, else the first full SR model of that scale."""
        if isinstance(which, str):
            return self.get(which, task="superres")
        scale = which
        models = [e for e in self.entries.values()
                  if e.task == "superres" and e.arch.get("scale") == scale and e.variant == "full"]
        if models:
            return min(models, key=lambda e: e.name != f"x{scale}")  # min keeps the first of equals
        raise UnknownModelError(f"no trained ×{scale} super-resolution model is installed (see `livestyle styles`)")

    def path(self, entry: ModelEntry) -> Path:
        return self.folder / entry.file

    def load(self, entry: ModelEntry) -> nn.Module:
        """Verify the file's sha256 against the catalog, then build and load the network (eval mode)."""
        path = self.path(entry)
        if not path.is_file():
            raise WeightsError(f"weights file for {entry.name!r} is missing: {path}")
        digest = sha256_of(path)
        if digest != entry.sha256:
            raise WeightsError(
                f"weights file {path} fails its sha256 check (catalog {entry.sha256[:12]}…, file {digest[:12]}…): "
                "it is corrupt or was changed"
            )
        model, _ = load_model_file(path)
        return model


def build_model(task: str, arch: dict) -> nn.Module:
    """A fresh network for ``task`` with architecture ``arch`` (the config's fields)."""
    try:
        if task == "style" and arch.get("family") == "pytorch_examples":
            from .community import CommunityNetConfig, CommunityTransformNet

            return CommunityTransformNet(CommunityNetConfig(**arch))
        if task == "style":
            return TransformNet(TransformNetConfig(**arch))
        if task == "superres":
            return SRNet(SRNetConfig(**arch))
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"bad architecture {arch} for task {task!r}: {exc}") from exc
    raise WeightsError(f"unknown task {task!r}; known: {', '.join(TASKS)}")


def model_metadata(model: nn.Module, **extra: str) -> dict[str, str]:
    """Safetensors metadata that makes a model file self-describing (task + architecture)."""
    task = "superres" if isinstance(model, SRNet) else "style"
    return {"livestyle.task": task, "livestyle.arch": json.dumps(model.config.to_dict()), **extra}


def save_model_file(model: nn.Module, path: str | os.PathLike, **extra_metadata: str) -> str:
    """Write ``model`` as a self-describing safetensors file; returns its sha256.

    Written as bytes by Python, so the file gets the usual permissions (umask); safetensors' own
    ``save_file`` creates it readable by its owner only.
    """
    from safetensors.torch import save

    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    Path(path).write_bytes(save(state, metadata=model_metadata(model, **extra_metadata)))
    return sha256_of(path)


def load_model_file(path: str | os.PathLike) -> tuple[nn.Module, dict[str, str]]:
    """Load a model file (no pickle). Returns (model in eval mode, metadata).

    Livestyle safetensors files, and community style models detected from their content:
    pytorch/examples fast_neural_style checkpoints and fast-neural-style ONNX files (see community.py).
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from .community import OnnxFileNet, community_kind, load_community_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"model file not found: {path}")
    if community_kind(path) is not None:
        model = load_community_file(path)
        if isinstance(model, OnnxFileNet):
            return model, {"livestyle.task": "style", "livestyle.source": "onnx",
                           "livestyle.value_range": f"{model.value_range:g}"}
        return model, {"livestyle.task": "style", "livestyle.source": "pytorch_examples_checkpoint",
                       "livestyle.arch": json.dumps(model.config.to_dict())}
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors model file ({exc})") from exc
    if "livestyle.task" not in metadata or "livestyle.arch" not in metadata:
        raise WeightsError(f"{path} is not a livestyle model file (its metadata states no task/architecture)")
    model = build_model(metadata["livestyle.task"], json.loads(metadata["livestyle.arch"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not match the architecture its metadata states") from exc
    return model.eval(), metadata


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
    ``variant``: which model a plain style name means ("full" or "small"; see ``Catalog.get``).
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
        entry = catalog.superres(superres)
        model = catalog.load(entry)
        return ModelChoice(model, entry.name, "superres", model.scale)
    if isinstance(model, SRNet):
        if superres is not None:
            raise UnknownModelError(f"{name} is a super-resolution model; --superres chains after a style model")
        return ModelChoice(model, name, "superres", model.scale)
    if superres is None:
        return ModelChoice(model, name, "style", 1)
    sr_entry = catalog.superres(superres)
    sr_model = catalog.load(sr_entry)
    return ModelChoice(model, f"{name}+{sr_entry.name}", "chain", sr_model.scale, sr_model)
