"""Pack a training set compactly for a GPU call (which carries at most 64 MiB with the project).

Raw uint8 pixels do not fit (2,281 photos at 256² are ~450 MB), so a pack holds each photo
pre-resized and JPEG-encoded in one ``.npz`` (no pickle; ``livestyle.training.data.write_pack``); the
training run decodes it once into GPU memory. The style and content images the job needs are
copied beside it. Everything goes to the git-ignored ``bench/carry/``:

    .venv/bin/python bench/gpu/pack_data.py style      # caltech101_subset, short side ≤ 256 → caltech101.npz
    .venv/bin/python bench/gpu/pack_data.py superres   # bsds500_train_test, native size → bsds500.npz

It prints the pack's size and what to carry; ``bench/gpu/session.sh`` and ``train_job.py`` read it.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from livestyle.io.images import list_images
from livestyle.training.data import decode_images, pack_images, resize_short_side, write_pack

ROOT = Path(__file__).resolve().parents[2]

DATA = ROOT.parent / "shared" / "data"
KINDS = {
    # kind: (source folder, short side or None, default pack name)
    "style": (DATA / "train" / "caltech101_subset", 256, "caltech101.npz"),
    "superres": (DATA / "train" / "bsds500_train_test", None, "bsds500.npz"),
}
MIB = 1 << 20
LOSSNET = "squeezenet1_1_imagenet.safetensors"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("--source", type=Path, default=None, help="photo folder (default: the kind's ../shared set)")
    p.add_argument("--out", type=Path, default=None, help="pack file (default: bench/carry/<name>.npz)")
    p.add_argument("--short-side", type=int, default=None, help="shrink photos whose short side is larger")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality of the packed photos")
    p.add_argument("--limit", type=int, default=None, help="only the first N photos")
    p.add_argument("--max-mib", type=float, default=42.0, help="fail if the pack is larger")
    args = p.parse_args()

    source, short_side, name = KINDS[args.kind]
    source = args.source or source
    short_side = args.short_side or short_side
    out = args.out or ROOT / "bench" / "carry" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if short_side:
        decoded = decode_images(source, limit=args.limit)
        # shrink only: training enlarges small photos on the GPU, which costs no carried bytes
        decoded.images = [resize_short_side(rgb, short_side) if min(rgb.shape[:2]) > short_side else rgb
                          for rgb in decoded.images]
        size = pack_images(decoded, out, quality=args.quality)
        count, skipped, how = len(decoded), len(decoded.skipped), f"short side ≤ {short_side}, JPEG q{args.quality}"
    else:  # native size: the original files' bytes, no second JPEG generation (SR targets stay as they were)
        files = list_images(source)[:args.limit]
        size = write_pack(((str(f.relative_to(source)), f.read_bytes()) for f in files), out)
        count, skipped, how = len(files), 0, "original files"
    print(f"{out}: {count} photos ({skipped} skipped), {how}, {size / MIB:.1f} MiB, "
          f"{time.perf_counter() - start:.1f} s")
    # small companions the job reads: style images, quality photos, the loss network's weights
    for files, folder in ((sorted((DATA / "styles").iterdir()), "styles"),
                          (sorted((DATA / "content").iterdir()), "content"),
                          ([DATA / "lossnets" / LOSSNET], "lossnets")):
        (out.parent / folder).mkdir(exist_ok=True)
        for f in files:  # copyfile: contents only, not the shared folder's read-only modes
            shutil.copyfile(f, out.parent / folder / f.name)
    carried = [out, out.parent / "styles", out.parent / "content", out.parent / "lossnets"]
    total = sum(f.stat().st_size for c in carried for f in ([c] if c.is_file() else c.rglob("*")) if f.is_file())
    shown = [c.resolve().relative_to(ROOT) if c.resolve().is_relative_to(ROOT) else c for c in carried]
    print(f"carry {', '.join(map(str, shown))}: {total / MIB:.1f} MiB together")
    if size > args.max_mib * MIB:
        out.unlink()
        sys.exit(f"pack is {size / MIB:.1f} MiB, over --max-mib {args.max_mib}: lower --quality or --limit")


if __name__ == "__main__":
    main()
