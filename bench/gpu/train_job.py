"""Train one zoo model inside one GPU call (≤ 9 minutes, data loading included); report images/s.

Reads a pack made by bench/gpu/pack_data.py (carried in bench/carry/), trains with a wall-clock budget,
measures quality, and writes under --out ($OUT on the device machine, at most 8 files):
model .safetensors, its catalog entry .json, a preview PNG, chicago.jpg through the model (style),
and log.txt; the model and its entry go to weights/ afterwards. The device machine has no install of
livestyle, hence PYTHONPATH=. (run from the repository root). Example device command (one H100 call):

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 bench/gpu/train_job.py style --name kandinsky \\
        --style-image bench/carry/styles/composition_vii.jpg --pack bench/carry/caltech101.npz \\
        --batch-size 16 --iterations 10000 --budget-s 400 --out $OUT
    # carry: bench/carry/caltech101.npz bench/carry/styles bench/carry/content bench/carry/lossnets

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 bench/gpu/train_job.py superres --name sr_x4 --scale 4 --loss pixel \\
        --pack bench/carry/bsds500.npz --batch-size 16 --iterations 50000 --budget-s 400 --out $OUT

Check it on CPU first with a few steps: ``--device cpu --iterations 3 --width 4 --blocks 1 --data-limit 8``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CARRY = ROOT / "bench" / "carry"


def main() -> None:
    start = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=["style", "superres"])
    p.add_argument("--name", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--pack", type=Path, required=True, help="data pack (.npz) or photo folder")
    p.add_argument("--style-image", type=Path)
    p.add_argument("--variant", choices=["full", "small"], default="full")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--loss", choices=["pixel", "feat"], default="pixel")
    p.add_argument("--carry", type=Path, default=CARRY, help="carried folder with lossnets/ and content/")
    p.add_argument("--lossnet", type=Path, default=None,
                   help="loss network weights (default: <carry>/lossnets/squeezenet1_1_imagenet.safetensors)")
    p.add_argument("--width", type=int, default=None, help="default: 32 style, 64 SR")
    p.add_argument("--blocks", type=int, default=None, help="default: 5 style, 4 SR")
    p.add_argument("--pixel-shuffle", action="store_true", help="style: the CPU-fast architecture (small variants)")
    p.add_argument("--image-size", type=int, default=256, help="style crops (SR: 288 patches)")
    p.add_argument("--style-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--iterations", type=int, default=10_000)
    p.add_argument("--lr", type=float, default=None, help="default: 1e-3 style, 1e-4 SR (bicubic-skip net)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-limit", type=int, default=None)
    p.add_argument("--budget-s", type=float, default=400.0, help="training time limit (the rest is load + quality)")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto")
    p.add_argument("--channels-last", default="auto")
    p.add_argument("--quality-image", type=Path, action="append", default=None,
                   help="style quality photos (default: the carried content/ photos)")
    p.add_argument("--gatys", default="100,500", help="Gatys L-BFGS counts to compare with ('' for none)")
    p.add_argument("--eval-set", action="append", default=[], metavar="NAME=DIR", help="SR quality sets")
    args = p.parse_args()
    args.lossnet = args.lossnet or args.carry / "lossnets" / "squeezenet1_1_imagenet.safetensors"

    import torch

    from livestyle.quality.objective import ObjectiveConfig
    from livestyle.training.recipes import RunOptions, StyleRecipe, SuperResRecipe
    from livestyle.training.run import train_style, train_superres

    args.out.mkdir(parents=True, exist_ok=True)
    log_file = open(args.out / "log.txt", "w")

    def log(message: str) -> None:
        print(message, flush=True)
        print(message, file=log_file, flush=True)

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    log(f"torch {torch.__version__}, device {device}"
        + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else ""))
    model_path = args.out / f"{args.name}.safetensors"
    options = RunOptions(device=device, amp=args.amp, channels_last=args.channels_last, checkpoint=None,
                         preview_dir=str(args.out), preview_every=max(1, args.iterations // 2), log_every=100,
                         progress=False, time_limit_s=args.budget_s)

    def on_log(step: int, values: dict) -> None:
        if step % 1000 == 0 or step <= 100:
            log(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))

    if args.task == "style":
        if args.style_image is None:
            p.error("style needs --style-image")
        photos = args.quality_image or sorted((args.carry / "content").glob("*.jpg"))
        recipe = StyleRecipe(style_image=str(args.style_image), dataset=str(args.pack),
                             objective=ObjectiveConfig(style_size=args.style_size), width=args.width or 32,
                             blocks=args.blocks if args.blocks is not None else 5,
                             pixel_shuffle=args.pixel_shuffle, image_size=args.image_size,
                             batch_size=args.batch_size, iterations=args.iterations, lr=args.lr or 1e-3,
                             seed=args.seed, data_limit=args.data_limit, loss_net_weights=str(args.lossnet))
        counts = tuple(int(c) for c in args.gatys.split(",") if c.strip())
        result = train_style(recipe, model_path, options, name=args.name, variant=args.variant,
                             quality_images=[str(f) for f in photos], gatys_iterations=counts, on_log=on_log)
        stylise_examples(result.model, photos, args.out, device)
    else:
        sets = dict(item.split("=", 1) for item in args.eval_set)
        recipe = SuperResRecipe(dataset=str(args.pack), scale=args.scale, loss=args.loss, width=args.width or 64,
                                blocks=args.blocks if args.blocks is not None else 4, patch_size=288,
                                batch_size=args.batch_size, iterations=args.iterations, lr=args.lr,
                                seed=args.seed, data_limit=args.data_limit, loss_net_weights=str(args.lossnet))
        result = train_superres(recipe, model_path, options, name=args.name, quality_sets=sets or None,
                                on_log=on_log)
    recipe_out = result.entry["recipe"]
    log(f"trained {result.steps}/{args.iterations} steps in {result.seconds:.1f} s: "
        f"{result.images_per_second:.1f} images/s (amp {result.amp}, channels_last {result.channels_last}, "
        f"layouts {recipe_out.get('layout_timings_ms', {})})")
    log(f"final losses {json.dumps(result.final_losses)}")
    log(f"quality {json.dumps(result.entry['quality'])}")
    log(f"wrote {model_path.name} (sha256 {result.entry['sha256'][:12]}…) and "
        f"{model_path.with_suffix('.json').name}; "
        f"whole job {time.perf_counter() - start:.1f} s")


def stylise_examples(model, photos: list[Path], out: Path, device: str) -> None:
    """Each quality photo through the trained model at its own size → out/<name>_<photo>.jpg."""
    import cv2
    import torch

    from livestyle.io.images import read_image
    from livestyle.models.convention import image_to_batch

    model = model.to(device).eval()
    for photo in photos[:2]:
        with torch.no_grad():
            styled = model(image_to_batch(read_image(photo).rgb, device))[0].clamp(0, 1)
        rgb = (styled.permute(1, 2, 0).float().cpu().numpy() * 255 + 0.5).astype("uint8")
        cv2.imwrite(str(out / f"styled_{photo.stem}.jpg"), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])


if __name__ == "__main__":
    main()
