"""Quality of every catalog style model beside Gatys, written into its catalog entry.

    python bench/assets/style_quality.py [--names a,b] [--iters 100,500] [--size 256] [--infer-scale 0.5 ...]
        [--weights weights] [--out bench/results/style-quality]

For each style: ``livestyle eval style --style NAME --style-image <its recipe's style image>
--content <every photo in shared content/> --iters … --size … --infer-scale …`` (the same loss network
and weights as its training, from its recipe), reports into ``--out`` (bench/results/style-quality/);
then the means go into the entry's ``quality.style_losses`` in the catalog (``--weights``, default
weights/catalog.json), written by ``livestyle.zoo.catalog.add_entry``. Runs on whatever device
``auto`` picks; the machine is written into each report.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from livestyle.engines.device import cpu_model
from livestyle.zoo.catalog import Catalog, add_entry

ROOT = Path(__file__).resolve().parents[2]


def machine() -> str:
    """What `livestyle eval style --device auto` ran on."""
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU: {cpu_model()}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--names", default=None, help="Comma-separated catalog styles (default: all).")
    parser.add_argument("--iters", default="100,500")
    parser.add_argument("--size", type=int, default=256, help="long side of the content photos (eval style's default)")
    parser.add_argument("--infer-scale", dest="infer_scales", action="append", default=[])
    parser.add_argument("--weights", type=Path, default=ROOT / "weights", help="catalog folder to read and update")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "style-quality")
    args = parser.parse_args()

    catalog = Catalog(args.weights)
    names = args.names.split(",") if args.names else catalog.names("style")
    contents = sorted((args.shared / "content").glob("*.jpg"))
    env = dict(os.environ)
    env.setdefault("LIVESTYLE_LOSSNET_WEIGHTS", str(args.shared / "lossnets" / "squeezenet1_1_imagenet.safetensors"))
    env["LIVESTYLE_WEIGHTS_DIR"] = str(args.weights)
    for name in names:
        entry = catalog.get(name, "style")
        style_image = args.shared / "styles" / entry.recipe["style_image"]["file"]
        command = [str(Path(sys.executable).with_name("livestyle")), "eval", "style", "--style", name,
                   "--style-image", str(style_image), "--iters", args.iters, "--size", str(args.size),
                   "--out", str(args.out)]
        command += [a for c in contents for a in ("--content", str(c))]
        command += [a for f in args.infer_scales for a in ("--infer-scale", f)]
        print("$ livestyle " + " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True, env=env)
        report = json.loads((args.out / f"eval-style-{name}.json").read_text())
        record = entry.to_dict()
        record["quality"] = {
            "style_losses": {"images": report["images"], "long_side": args.size, "mean": report["mean"],
                             "gatys": report["settings"]["gatys"],
                             "measured_on": machine(),
                             "report": report_path(args.out / f"eval-style-{name}.md")},
            "note": "same objective (the recipe's loss network, taps and weights) for every row; feed-forward "
                    "rows run the model as shipped, with its border margin (arch.margin); rows with @F× run it at "
                    "F × the size and upsample (--infer-scale)",
        }
        print(f"{name}: quality written to {add_entry(args.weights, record)}", flush=True)


def report_path(path: Path) -> str:
    """The report as the catalog cites it: relative to the repository where it lies inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


if __name__ == "__main__":
    main()
