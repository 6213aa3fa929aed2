"""`livestyle import`: a community style model converted into a catalog model."""
from __future__ import annotations

import os
import re
from pathlib import Path

from livestyle.errors import OutputError, WeightsError
from livestyle.files import atomic_output, sha256_of
from livestyle.zoo.catalog import ModelEntry, add_entry, catalog_path, read_records
from livestyle.zoo.community import community_kind, community_net_from_onnx, load_community_checkpoint
from livestyle.zoo.modelfile import save_model_file

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def import_community_model(source: str | os.PathLike, name: str, folder: str | os.PathLike, *,
                           credit: str = "", licence: str = "", description: str = "",
                           value_range: float | None = None):
    """Convert a community model to ``folder/NAME.safetensors`` and add its entry to ``folder/catalog.json``.

    Returns the new ``ModelEntry``. ONNX files are rebuilt as a ``CommunityTransformNet`` (and
    checked against onnxruntime); the entry records the source file's sha256 in its recipe.
    """
    source, folder = Path(source), Path(folder)
    if not NAME_PATTERN.match(name):
        raise OutputError(f"model name {name!r} must be letters, digits, '_', '-' or '.' (at most 64)")
    if not folder.is_dir():
        raise OutputError(f"catalog folder {folder} does not exist")
    catalog = catalog_path(folder)
    if any(m.get("name") == name for m in read_records(catalog)["models"]):
        raise OutputError(f"a model named {name!r} is already in {catalog}; choose another --name")
    target = folder / f"{name}.safetensors"
    if target.exists():
        raise OutputError(f"{target} already exists; choose another --name")
    kind = community_kind(source) if source.is_file() else None
    if kind == "onnx":
        net = community_net_from_onnx(source, value_range=value_range)
    elif kind == "checkpoint":
        net = load_community_checkpoint(source)
    else:
        raise WeightsError(f"{source} is neither a pytorch/examples checkpoint nor an ONNX file")
    with atomic_output(target) as tmp:
        digest = save_model_file(net, tmp, **{"livestyle.source": kind})
    entry = ModelEntry(
        name=name, task="style", arch=net.config.to_dict(), file=target.name, sha256=digest,
        description=description or f"imported from {source.name} (pytorch/examples fast_neural_style layout)",
        recipe={"source": f"pytorch/examples fast_neural_style {kind}", "source_file": source.name,
                "source_sha256": sha256_of(source), "value_range": 255},
        credit=credit or f"imported by the user from {source.name}",
        licence=licence or "unknown: as stated by the model's authors",
    )
    try:
        add_entry(catalog, entry.to_dict())
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return entry
