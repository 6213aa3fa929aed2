"""Issue 9's INT8 route on the CPU, measured: static INT8 (ONNX Runtime QDQ) against FP32 and torch BF16.

    .venv/bin/python bench/cpu_int8.py [--names kandinsky_small,wave_small] [--rounds 5] [--out DIR]

For each small style model: its ONNX export (as the CPU engine runs it) is quantized statically
with ONNX Runtime (QDQ around the convolutions only, INT8 weights per output channel, UINT8
activations, MinMax ranges calibrated on ``--calibration`` training photos, never the content
photos scored below). Then, in one run with interleaved rounds: the model-only latency at 480×640
of ONNX Runtime FP32, ONNX Runtime INT8 and torch BF16 (where the CPU has it natively), and the
recipe's objective on every content photo at 640 on the long side for each engine's output.
Writes ``cpu-int8.json`` and ``.md`` under ``--out``.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from livestyle._files import write_json_and_markdown  # noqa: E402
from livestyle.engines import TorchEngine  # noqa: E402
from livestyle.engines.benchmark import cpu_model  # noqa: E402
from livestyle.engines.onnx_engine import OnnxRuntimeEngine  # noqa: E402
from livestyle.engines.torch_engine import cpu_has_native_bf16  # noqa: E402
from livestyle.export import INPUT_NAME, cached_onnx  # noqa: E402
from livestyle.io.images import read_image  # noqa: E402
from livestyle.objective import image_to_batch, resize_long_side  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from cpu_realtime import (METHOD_NOTE, change_from_first, common_arguments, measure_model,  # noqa: E402
                          models_and_photos)


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


def main() -> None:
    parser = common_arguments(__doc__, "cpu-int8")
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
