"""Issue 9's INT8 route on the CPU, measured: static INT8 (ONNX Runtime QDQ) against FP32 and torch BF16.

    .venv/bin/python bench/experiments/cpu-int8/run.py [--names kandinsky_small,wave_small] [--rounds 5] [--out DIR]

For each small style model: its ONNX export (as the CPU engine runs it) is quantized statically
with ONNX Runtime (QDQ around the convolutions only, INT8 weights per output channel, UINT8
activations, MinMax ranges calibrated on ``--calibration`` training photos, never the content
photos scored below). Then, in one run with interleaved rounds: the model-only latency at 480×640
of ONNX Runtime FP32, ONNX Runtime INT8 and torch BF16 (where the CPU has it natively), and the
recipe's objective on every content photo at 640 on the long side for each engine's output (the
same measure as bench/experiments/cpu-realtime/run.py). Writes ``cpu-int8.json`` and ``.md`` under
``--out`` (default: results/ beside this script); findings.md beside it reads them.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch

from livestyle.benchmarks.timing import interleaved_times, p90
from livestyle.engines.device import cpu_has_native_bf16, cpu_model
from livestyle.engines.export.onnx import INPUT_NAME, cached_onnx
from livestyle.engines.onnx_engine import OnnxRuntimeEngine
from livestyle.engines.torch_engine import TorchEngine
from livestyle.files import write_json_and_markdown
from livestyle.io.images import read_image
from livestyle.models.convention import image_to_batch
from livestyle.quality.objective import build_objective, resize_long_side
from livestyle.quality.style_eval import objective_config_from_recipe
from livestyle.zoo.catalog import Catalog

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def quantize_int8(fp32_onnx: Path, out: Path, photos: list[Path], long_side: int) -> Path:
    """Static INT8 QDQ copy of ``fp32_onnx`` at ``out``, activation ranges from ``photos``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, \
        quantize_static

    class Photos(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(resize_long_side(image_to_batch(read_image(p).rgb), long_side).numpy()
                                for p in photos)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    prepared = out.with_name(out.stem + "-prepared.onnx")
    with contextlib.chdir(out.parent):  # the quantizer leaves temporary files in the working folder
        quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)  # dynamic H/W defeats it
        quantize_static(str(prepared), str(out), Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv"])  # instance norms, pads and shuffles stay FP32
    return out


def measure_model(name: str, entry, engines: dict, *, frame: torch.Tensor, contents: list[Path], shared: Path,
                  weights: str, long_side: int, rounds: int, iters: int) -> list[dict]:
    """One row per engine (label → engine): latency on ``frame`` in interleaved rounds, so every engine
    sees the same machine load, and the model's recipe objective on ``contents``, averaged."""
    times = interleaved_times({k: partial(e, frame) for k, e in engines.items()}, rounds=rounds, iters=iters)
    style = image_to_batch(read_image(shared / "styles" / entry.recipe["style_image"]["file"]).rgb)
    objective = build_objective(objective_config_from_recipe(entry.recipe), style, weights=weights)
    rows = []
    for label, engine in engines.items():
        mean = mean_losses(engine, objective, contents, long_side)
        rows.append({"model": name, "arch": entry.arch, "engine": label, "h": frame.shape[-2], "w": frame.shape[-1],
                     "ms_median": statistics.median(times[label]), "ms_p90": p90(times[label]), "loss": mean})
        print(f"{name:18s} {label:28s} {rows[-1]['ms_median']:7.1f} ms  total {mean['total']:.5g}", flush=True)
    return rows


def change_from_first(rows: list[dict]) -> list[float]:
    """Each row's total loss relative to the first row of its model (the FP32 reference)."""
    reference: dict[str, float] = {}
    return [row["loss"]["total"] / reference.setdefault(row["model"], row["loss"]["total"]) - 1 for row in rows]


METHOD_NOTE = ("Latency: 480×640 input, batch 1, model only, median of interleaved rounds. Loss: the model's recipe "
               "objective, mean over {contents} at {long_side} on the long side; 'vs FP32' compares with the same "
               "model's ONNX Runtime FP32 output.")


def mean_losses(engine, objective, contents: list[Path], long_side: int) -> dict[str, float]:
    """The objective's terms for ``engine``'s output on each content photo (at ``long_side``), averaged."""
    losses = []
    for path in contents:
        content = resize_long_side(image_to_batch(read_image(path).rgb), long_side)
        with torch.no_grad():
            losses.append(objective(engine(content).float().clamp(0, 1), content).as_floats())
    return {term: statistics.fmean(loss[term] for loss in losses) for term in losses[0]}


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--weights", type=Path, default=ROOT / "weights", help="catalog folder")
    parser.add_argument("--names", default=None, help="Comma-separated catalog styles (default: small variants).")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--size", type=int, default=640,
                        help="long side the photos are scored and INT8-calibrated at")
    parser.add_argument("--note", default="", help="machine conditions, written into the report")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    return parser


def models_and_photos(args) -> tuple[Catalog, list[str], list[Path], str]:
    """(catalog, style names to measure, content photos, loss-network weights file) for ``args``."""
    catalog = Catalog(args.weights)
    names = args.names.split(",") if args.names else [e.name for e in catalog.entries.values()
                                                      if e.task == "style" and e.variant == "small"]
    contents = sorted((args.shared / "content").glob("*.jpg"))
    weights = os.environ.get("LIVESTYLE_LOSSNET_WEIGHTS",
                             str(args.shared / "lossnets" / "squeezenet1_1_imagenet.safetensors"))
    return catalog, names, contents, weights


def main() -> None:
    parser = arguments()
    parser.add_argument("--calibration", type=int, default=32, help="training photos for the activation ranges")
    args = parser.parse_args()
    torch.manual_seed(0)
    catalog, names, contents, weights = models_and_photos(args)
    train_photos = sorted((args.shared / "train" / "caltech101_subset").rglob("*.jpg"))
    calibration = [train_photos[i] for i in np.linspace(0, len(train_photos) - 1, args.calibration).astype(int)]
    frame = torch.rand(1, 3, 480, 640)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            entry = catalog.get(name, "style")
            model = catalog.load(entry)
            int8_path = quantize_int8(cached_onnx(model, rewrite=True), Path(scratch) / f"{name}-int8.onnx",
                                      calibration, args.size)
            engines = {"onnxruntime-fp32": OnnxRuntimeEngine(model, device="cpu"),
                       "onnxruntime-int8": OnnxRuntimeEngine(model, device="cpu", onnx_path=int8_path)}
            if cpu_has_native_bf16():
                engines["torch-bf16"] = TorchEngine(model, device="cpu", precision="bf16")
            rows += measure_model(name, entry, engines, frame=frame, contents=contents, shared=args.shared,
                                  weights=weights, long_side=args.size, rounds=args.rounds, iters=args.iters)
    result = {"device": f"CPU: {cpu_model()}, {os.cpu_count()} cores", "torch": torch.__version__,
              "onnxruntime": __import__("onnxruntime").__version__, "threads": torch.get_num_threads(),
              "load_after": os.getloadavg(), "note": args.note, "calibration_photos": len(calibration),
              "contents": [p.name for p in contents], "loss_long_side": args.size, "rows": rows}
    write_json_and_markdown(args.out, "cpu-int8", result, markdown(result))
    print(f"wrote {args.out}/cpu-int8.json and .md")


def markdown(result: dict) -> str:
    lines = ["# CPU style models: static INT8 (ONNX Runtime QDQ) against FP32 and BF16", "",
             f"{result['device']}, torch {result['torch']}, onnxruntime {result['onnxruntime']}, "
             f"{result['threads']} threads, load average after {result['load_after'][0]:.1f}. {result['note']}", "",
             "INT8: QDQ around every convolution (instance norms, pads and shuffles stay FP32), weights INT8 per "
             f"output channel, activations UINT8 with MinMax ranges from {result['calibration_photos']} training "
             f"photos (Caltech-101 subset) at {result['loss_long_side']} px. "
             + METHOD_NOTE.format(contents=", ".join(result["contents"]), long_side=result["loss_long_side"]), "",
             "| model | engine | median ms | p90 ms | fps | total loss | vs FP32 |",
             "|---|---|---|---|---|---|---|"]
    for row, change in zip(result["rows"], change_from_first(result["rows"])):
        lines.append(f"| {row['model']} | {row['engine']} | {row['ms_median']:.1f} | {row['ms_p90']:.1f} | "
                     f"{1000 / row['ms_median']:.1f} | {row['loss']['total']:.5g} | {change:+.2%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
