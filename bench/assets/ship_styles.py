"""Ship retrained style models into the catalog, keeping each model they replace as NAME_v1.

    python bench/assets/ship_styles.py --trained bench/experiments/style-objective/train \
        [--names kandinsky_small,starry_night_small] [--suffix _deep12] [--weights weights]

For each name whose trained run finished all its steps (``<trained>/<name><suffix>.json`` is the
entry `livestyle train` wrote): the catalog's current model is copied to ``NAME_v1.safetensors`` with
its entry renamed NAME_v1 (added once; a later shipping keeps the first one), then the trained model
becomes ``NAME.safetensors`` and its entry NAME, in place, so plain names (``--style kandinsky``)
run the new model. The catalog is written through ``livestyle.zoo.catalog.add_entry`` only. Then run
``bench/assets/style_quality.py --names …`` (quality beside Gatys on the new objective) and
``bench/assets/gallery.py`` (the README's painting | new | old sheet).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from livestyle.files import atomic_output, sha256_of
from livestyle.zoo.catalog import Catalog, add_entry

ROOT = Path(__file__).resolve().parents[2]
RETIRED = "_v1"


def finished(entry: dict) -> bool:
    """Whether a trained model's entry says it ran all the steps its recipe asked for."""
    recipe = entry.get("recipe", {})
    return recipe.get("steps", 0) >= recipe.get("iterations", 1) and not recipe.get("stopped_at_time_limit")


def copy_into(source: Path, target: Path) -> None:
    with atomic_output(target) as tmp:
        shutil.copyfile(source, tmp)


def retire(catalog: Catalog, name: str) -> None:
    """Keep the catalog's current NAME as NAME_v1 (its file copied, its entry renamed), once."""
    old = name + RETIRED
    if old in catalog.entries:
        return
    entry = catalog.entries[name].to_dict()
    copy_into(catalog.path(catalog.entries[name]), catalog.folder / f"{old}.safetensors")
    entry.update(name=old, file=f"{old}.safetensors",
                 description=entry["description"] + " (before issue 23's objective; replaced by " + name + ")")
    add_entry(catalog.folder, entry)


def describe(entry: dict, start: str) -> str:
    """The catalog description of a model trained by train.sh: the painting, then how it was trained."""
    r, objective = entry["recipe"], entry["recipe"]["objective"]
    painting = entry["description"].split(":")[0]
    deep = [t for t in objective["style_taps"] if t in ("fire6", "fire7", "fire8", "fire9")]
    taps = f", deep taps {deep[0]}–{deep[-1]}" if deep else ""
    if objective.get("content_weight", 1.0) != 1.0:  # 0.5 for the shipped four (findings.md)
        taps += f", content weight {objective['content_weight']:g}"
    return (f"{painting}: small real-time variant (width {r['width']}, pixel-shuffle architecture), CPU-trained "
            f"— {r['steps']:,} steps of batch {r['batch_size']} at {r['image_size']}² at Adam {r['lr']:g} "
            f"{start}, with issue 23's objective (style weight {objective['style_weight']:g}, style image at "
            f"{objective['style_size']} px{taps}; bench/experiments/style-objective/findings.md); the paper trains 40k")


def install(catalog: Catalog, name: str, model: Path, entry: dict, trained: Path) -> None:
    """The trained model becomes NAME: its file over NAME.safetensors, its entry in NAME's place.

    The recipe's ``init`` names the file training started from where it is kept: the NAME_v1 file, or
    an earlier run in ``trained`` (``trained/NAME.safetensors``, when a probe went on from it). A model
    shipped again unchanged keeps the quality figures style_quality.py measured for it.
    """
    target = catalog.folder / f"{name}.safetensors"
    current = catalog.entries.get(name)
    keep_quality = current is not None and current.sha256 == entry["sha256"] and "quality" in current.to_dict()
    recipe = dict(entry["recipe"])
    start = "from the previous model" if recipe.get("init") else "from random weights"
    retired, earlier = catalog.folder / f"{name}{RETIRED}.safetensors", trained / f"{name}.safetensors"
    if recipe.get("init") and retired.is_file() and sha256_of(retired) == recipe["init"]["sha256"]:
        recipe["init"] = {**recipe["init"], "file": retired.name}
    elif recipe.get("init") and earlier.is_file() and earlier != model and sha256_of(earlier) == recipe["init"]["sha256"]:
        recipe["init"] = {**recipe["init"], "file": str(earlier.resolve().relative_to(ROOT))}
        before = json.loads(earlier.with_suffix(".json").read_text(encoding="utf-8"))["recipe"]
        start = (f"from {recipe['init']['file']} ({before['steps']:,} steps on the objective without the deep taps, "
                 f"from {name}{RETIRED})")
    copy_into(model, target)
    entry = {**entry, "name": name, "file": target.name, "sha256": sha256_of(target), "variant": "small",
             "description": describe(entry, start), "recipe": recipe}
    if keep_quality:
        entry["quality"] = current.to_dict()["quality"]
    add_entry(catalog.folder, entry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trained", type=Path, required=True, help="Folder of trained models and their entries.")
    parser.add_argument("--names", default="kandinsky_small,starry_night_small,the_scream_small,wave_small")
    parser.add_argument("--suffix", default="", help="Which trained run: '' (main), '_deep12' or '_ft'.")
    parser.add_argument("--weights", type=Path, default=ROOT / "weights", help="The catalog folder.")
    args = parser.parse_args()
    for name in args.names.split(","):
        model, entry_file = args.trained / f"{name}{args.suffix}.safetensors", args.trained / f"{name}{args.suffix}.json"
        if not entry_file.is_file():
            print(f"{name}: no trained model in {args.trained} yet, skipped")
            continue
        entry = json.loads(entry_file.read_text(encoding="utf-8"))
        if not finished(entry) or sha256_of(model) != entry["sha256"]:
            print(f"{name}: {model.name} is unfinished or does not match its entry, skipped")
            continue
        catalog = Catalog(args.weights)
        retire(catalog, name)
        install(Catalog(args.weights), name, model, entry, args.trained)
        print(f"{name}: shipped {model.name} ({entry['recipe']['steps']} steps); the previous model is {name}{RETIRED}")


if __name__ == "__main__":
    main()
