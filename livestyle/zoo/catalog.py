"""The weights catalog: shipped models described as data, verified by sha256 when loaded.

``catalog.json`` holds one record per model (as torchvision's weights enums do): name, task,
architecture, file, sha256, training recipe, measured quality, credit and licence. It is read and
written here only, in one encoding. Loading a model's weights lives in ``livestyle.zoo.modelfile``.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from livestyle.errors import OutputError, UnknownModelError, WeightsError
from livestyle.files import atomic_output, sha256_of, write_json

ENV_WEIGHTS_DIR = "LIVESTYLE_WEIGHTS_DIR"
CATALOG_FILE = "catalog.json"
TASKS = ("style", "superres")
SMALL_SUFFIX = "_small"  # catalog names of the small real-time variants: <style>_small
VARIANTS = ("full", "small")


def default_weights_dir() -> Path:
    """$LIVESTYLE_WEIGHTS_DIR, else the source tree's weights/, else the installed data folder."""
    if os.environ.get(ENV_WEIGHTS_DIR):
        return Path(os.environ[ENV_WEIGHTS_DIR])
    source_tree = Path(__file__).resolve().parents[2] / "weights"
    if source_tree.is_dir():
        return source_tree
    return Path(sys.prefix) / "share" / "livestyle" / "weights"


def catalog_path(catalog: str | os.PathLike) -> Path:
    """The catalog.json of a catalog folder, or the file itself."""
    path = Path(catalog)
    return path if path.suffix == ".json" and not path.is_dir() else path / CATALOG_FILE


def read_records(path: str | os.PathLike) -> dict:
    """The parsed catalog file ``{"models": [record, …], …}``; a missing file is an empty catalog."""
    path = Path(path)
    if not path.is_file():
        return {"models": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise WeightsError(f"weights catalog {path} is not valid: {exc}") from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise WeightsError(f"weights catalog {path} is not valid: expected an object with a 'models' list of objects")
    return data


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
        for record in read_records(path)["models"]:
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
            raise UnknownModelError(self._unknown(name, task))
        return entry

    def plain_names(self, task: str | None = None) -> list[str]:
        """Names as the README and users write them: a style with a small variant once, by its plain name
        (``kandinsky`` for ``kandinsky_small``), in catalog order."""
        return list(dict.fromkeys(n.removesuffix(SMALL_SUFFIX) for n in self.names(task)))

    def _unknown(self, name: str, task: str | None) -> str:
        """The message for a name the catalog lacks: the plain names it has, and close matches of a typo."""
        import difflib

        what = "style" if task == "style" else "model"
        known = self.plain_names(task)
        if not known:
            return f"unknown {what} {name!r}; no trained models are installed yet (see `livestyle styles`)"
        stem = name.removesuffix(SMALL_SUFFIX)  # a typo in the style, the suffix right (kandinski_small)
        close = difflib.get_close_matches(stem, known, n=3, cutoff=0.6)
        if stem != name:
            close = [c + SMALL_SUFFIX if c + SMALL_SUFFIX in self.entries else c for c in close]
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        return f"unknown {what} {name!r}; {hint}known: {', '.join(known)}"

    def style_names(self, variant: str = "full") -> list[str]:
        """One model per style, in catalog order: ``get(style, variant=variant)`` for each style's plain name."""
        names = []
        for name in self.names("style"):
            chosen = self.get(name.removesuffix(SMALL_SUFFIX), "style", variant).name
            if chosen not in names:
                names.append(chosen)
        return names

    def superres(self, which: int | str, variant: str = "full") -> ModelEntry:
        """An SR model: by catalog name (``x4_feat``), or for a scale (4) the ×N default of ``variant``:
        for "full" the entry named ``xN``, else the first full SR model of that scale; for "small" (the
        CPU-fast networks) the first small one of that scale. Either falls back to the other variant."""
        if variant not in VARIANTS:
            raise UnknownModelError(f"unknown model variant {variant!r}; known: {', '.join(VARIANTS)}")
        if isinstance(which, str):
            return self.get(which, task="superres")
        scale = which
        models = [e for e in self.entries.values() if e.task == "superres" and e.arch.get("scale") == scale]
        if models:
            # min keeps the first of equals: the asked-for variant first, then the one named xN
            return min(models, key=lambda e: (e.variant != variant, e.name != f"x{scale}"))
        raise UnknownModelError(f"no trained ×{scale} super-resolution model is installed (see `livestyle styles`)")

    def path(self, entry: ModelEntry) -> Path:
        return self.folder / entry.file

    def load(self, entry: ModelEntry):
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
        from livestyle.zoo.modelfile import load_model_file

        model, _ = load_model_file(path)
        return model


def check_entry(catalog: str | os.PathLike, name: str, file_name: str) -> Path:
    """Before any work: the catalog can be read and written, and its file ``file_name`` belongs to no
    entry other than ``name`` (a new model copied there would break that entry). Returns the file."""
    path = catalog_path(catalog)
    if not path.parent.is_dir():
        raise OutputError(f"catalog folder {path.parent} does not exist")
    models = read_records(path)["models"]
    owner = next((m.get("name") for m in models if m.get("file") == file_name and m.get("name") != name), None)
    if owner is not None:
        raise OutputError(f"{path.parent / file_name} is the model of catalog entry {owner!r}; "
                          "choose another -o file name")
    return path


def add_entry(catalog: str | os.PathLike, entry: dict, model_file: str | os.PathLike | None = None) -> Path:
    """Add ``entry`` to a catalog (folder or file), replacing the one of the same name in its place
    (the catalog's order is cam's n/p order); a new one goes last. Returns the catalog file.

    ``model_file``: copied into the catalog's folder as ``entry["file"]`` where it is not there yet.
    """
    path = check_entry(catalog, entry["name"], entry["file"])
    records = read_records(path)
    models = records["models"]
    # The model is copied only once the catalog is known to be good (no stray copy beside a bad catalog).
    if model_file is not None:
        target = path.parent / entry["file"]
        if not (target.exists() and os.path.samefile(model_file, target)):
            with atomic_output(target) as tmp:
                shutil.copyfile(model_file, tmp)
    position = next((i for i, m in enumerate(models) if m.get("name") == entry["name"]), len(models))
    kept = [m for m in models if m.get("name") != entry["name"]]
    records["models"] = kept[:position] + [entry] + kept[position:]
    write_json(path, records)
    return path


def entry_beside(model_file: str | os.PathLike) -> dict:
    """The entry `livestyle train` wrote beside a model file (FILE.json), or {} where there is none."""
    try:
        entry = json.loads(Path(model_file).with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return entry if isinstance(entry, dict) else {}


def describe_arch(arch: dict) -> str:
    """A catalog entry's arch in a few words, e.g. "×4, width 64, 4 blocks"."""
    words = []
    if "scale" in arch:
        words.append(f"×{arch['scale']}")
    if "width" in arch:
        words.append(f"width {arch['width']}")
    if "blocks" in arch:
        words.append(f"{arch['blocks']} blocks")
    if arch.get("pixel_shuffle") or arch.get("family") == "subpixel":
        words.append("pixel-shuffle")
    if arch.get("margin"):
        words.append(f"margin {arch['margin']}")
    return ", ".join(words) or "-"
