"""README gallery, made with the project's own commands.

    python bench/assets/gallery.py [--shared ../shared/data] [--out bench/results/gallery]

Writes the sheets (the README's pictures) into --out, default bench/results/gallery/:

- ``styles.jpg``: content/chicago.jpg, then one row per style model: its painting,
  ``livestyle image chicago.jpg --style NAME``, and the model it replaced (NAME_v1) where one is kept.
- ``superres-xN.jpg`` for each scale N with SR models in the catalog: crops of Set5/Set14 images;
  each row is the LR input (nearest-neighbour, to show its pixels), bicubic, ``livestyle image LR
  --superres NAME`` for every ×N model (the default ``xN`` first) and the original, with PSNR (Y,
  border N) written on the crop. ``--sr-model LABEL=FILE`` (repeatable) makes only this sheet, for
  the given model files.

The single outputs stay beside the sheets (``styles/``, ``superres/``) so each picture can be
checked against the command that made it.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from livestyle.quality.metrics import psnr_y
from livestyle.quality.superres_eval import bicubic_upscaler, make_lr, quantize
from livestyle.zoo.catalog import Catalog

ROOT = Path(__file__).resolve().parents[2]

RETIRED = "_v1"  # catalog names of style models kept after a successor replaced them: <name>_v1
SR_CROPS = [("CSet5", "butterfly", (0, 0, 256)), ("CSet5", "baby", (160, 120, 256)), ("CSet14", "zebra", (200, 80, 256))]


def livestyle(*args: str) -> None:
    """Run one livestyle command (the same executable a user runs), failing loudly."""
    command = [str(Path(sys.executable).with_name("livestyle")), *args]
    print("$ livestyle " + " ".join(args), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def label(bgr: np.ndarray, text: str) -> np.ndarray:
    out = bgr.copy()
    scale = max(0.45, out.shape[1] / 700)
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (w + 10, h + 12), (0, 0, 0), -1)
    cv2.putText(out, text, (5, h + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def grid(tiles: list[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = cv2.resize(tile, (w, h))
    return sheet


def fit_cell(bgr: np.ndarray, width: int = 480, height: int = 320) -> np.ndarray:
    """The picture scaled to fit a width × height cell, aspect kept, on white."""
    scale = min(width / bgr.shape[1], height / bgr.shape[0])
    small = cv2.resize(bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    cell = np.full((height, width, 3), 255, np.uint8)
    top, left = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    cell[top:top + small.shape[0], left:left + small.shape[1]] = small
    return cell


def style_sheet(shared: Path, out: Path, catalog: Catalog) -> Path:
    """One row per style model: its painting, then ``livestyle image chicago.jpg --style NAME``, then
    the model it replaced (NAME_v1) where the catalog keeps one."""
    folder = out / "styles"
    folder.mkdir(parents=True, exist_ok=True)
    content = shared / "content" / "chicago.jpg"

    def stylised(name: str) -> np.ndarray:
        target = folder / f"chicago_{name}.jpg"
        target.unlink(missing_ok=True)  # `livestyle image` never overwrites; this is our own earlier output
        variant = catalog.entries[name].variant  # on a CPU, a plain name would otherwise run its small variant
        livestyle("image", str(content), "--style", name, "--variant", variant, "-o", str(target))
        return cv2.imread(str(target))

    rows = [[label(fit_cell(cv2.imread(str(content))), "chicago.jpg")]]
    for name in catalog.names("style"):
        if name.endswith(RETIRED):
            continue  # shown beside the model that replaced it
        painting_file = catalog.entries[name].recipe.get("style_image", {}).get("file", "")
        painting = cv2.imread(str(shared / "styles" / painting_file)) if painting_file else None
        row = [label(fit_cell(painting), f"painting: {painting_file}") if painting is not None
               else fit_cell(np.full((8, 8, 3), 255, np.uint8))]
        old = name + RETIRED
        row.append(label(fit_cell(stylised(name)), f"{name} (new)" if old in catalog.entries else name))
        if old in catalog.entries:
            row.append(label(fit_cell(stylised(old)), f"{old} (before)"))
        rows.append(row)
    columns = max(len(r) for r in rows)
    blank = fit_cell(np.full((8, 8, 3), 255, np.uint8))
    tiles = [t for r in rows for t in r + [blank] * (columns - len(r))]
    path = out / "styles.jpg"
    cv2.imwrite(str(path), grid(tiles, columns), [cv2.IMWRITE_JPEG_QUALITY, 88])
    return path


def superres_sheet(shared: Path, out: Path, scale: int, models: list[tuple[str, list[str]]]) -> Path:
    """The SR crops sheet; ``models``: (label, the livestyle options that choose the model) per column,
    the label also naming its output files."""
    folder = out / "superres"
    folder.mkdir(parents=True, exist_ok=True)
    as_float = lambda a: a.astype(np.float32) / 255  # noqa: E731
    tiles = []
    for dataset, stem, (x, y, size) in SR_CROPS:
        hr = cv2.imread(str(shared / "sr" / dataset / f"{stem}.png"))[y:y + size, x:x + size]
        rgb = cv2.cvtColor(hr, cv2.COLOR_BGR2RGB)
        lr = make_lr(rgb.astype(np.float32) / 255, scale)
        lr_path = folder / f"{stem}_x{scale}_lr.png"
        cv2.imwrite(str(lr_path), cv2.cvtColor(lr, cv2.COLOR_RGB2BGR))
        bicubic = quantize(bicubic_upscaler(scale)(lr))  # the baseline `livestyle eval superres` scores
        nearest = cv2.resize(lr, (size, size), interpolation=cv2.INTER_NEAREST)
        row = [(nearest, f"LR {size // scale}x{size // scale}"),
               (bicubic, f"bicubic {psnr_y(as_float(bicubic), as_float(rgb), crop=scale):.2f} dB")]
        for name, options in models:
            sr_path = folder / f"{stem}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}_livestyle.png"
            sr_path.unlink(missing_ok=True)
            livestyle("image", str(lr_path), *options, "-o", str(sr_path))
            sr = cv2.cvtColor(cv2.imread(str(sr_path)), cv2.COLOR_BGR2RGB)
            row.append((sr, f"{name} {psnr_y(as_float(sr), as_float(rgb), crop=scale):.2f} dB"))
        row.append((rgb, f"{stem} original"))
        tiles += [label(cv2.cvtColor(t, cv2.COLOR_RGB2BGR), text) for t, text in row]
    path = out / f"superres-x{scale}.jpg"
    cv2.imwrite(str(path), grid(tiles, len(models) + 3), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gallery")
    parser.add_argument("--sr-model", action="append", metavar="LABEL=FILE", default=[],
                        help="Only an SR sheet comparing these model files (repeatable), at --scale.")
    parser.add_argument("--scale", type=int, choices=(4, 8), default=4)
    args = parser.parse_args()
    if args.sr_model:
        pairs = [spec.partition("=")[::2] for spec in args.sr_model]
        models = [(label_text, ["--model", str(Path(file).resolve())]) for label_text, file in pairs]
        print("wrote", superres_sheet(args.shared, args.out, args.scale, models))
        return
    catalog = Catalog()
    written = [style_sheet(args.shared, args.out, catalog)]
    for scale in (4, 8):
        models = [n for n in catalog.names("superres") if catalog.get(n).arch.get("scale") == scale]
        if models:
            default = catalog.superres(scale).name
            models.sort(key=lambda n: n != default)  # the --superres N default first
            written.append(superres_sheet(args.shared, args.out, scale,
                                          [(n, ["--superres", n]) for n in models]))
        else:
            print(f"no ×{scale} SR model in the catalog: no superres-x{scale}.jpg", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
