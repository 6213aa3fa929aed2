"""Pipeline benchmark: end-to-end fps of `livestyle video` next to each stage alone, on one clip.

    python bench/recurring/pipeline.py CLIP --out-dir bench/results [--model FILE | --style NAME | --width 8]
        [--scale 0.5] [--device auto] [--backend auto] [--precision auto] [--batch N] [--frames N] [--repeat 3]

Writes pipeline-<clip>-<device>.json and .md into --out-dir (bench/results/ for the kept runs).
Stages alone: decode (PyAV → uint8 RGB, rotation, resize), model (the engine on frames already in
memory, batches as the pipeline makes them, colour conversion included), encode (H.264 + audio
carry-over from frames in memory); codec-only is the threaded pipeline with an identity engine.
End-to-end is the threaded pipeline writing the real output. The goal (issue 3): end-to-end ≥ 90% of
the slowest stage alone. On a CPU every stage competes for the same cores, so the stages alone
overstate what they get when they run together; on a GPU the model's share moves off the CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import torch

from livestyle.engines import PRECISIONS
from livestyle.engines.factory import create_engine
from livestyle.io.sinks import NullSink, VideoFileSink
from livestyle.io.sources import Frame, InferenceSize, VideoFileSource
from livestyle.models.transform import transform_net
from livestyle.pipeline.infer import InferStage
from livestyle.pipeline.runner import Pipeline
from livestyle.zoo.choice import choose_model


class IdentityEngine:
    """Returns its input: the pipeline's cost without a model."""

    name, scale = "identity", 1

    def __init__(self, device: torch.device):
        self.device = device

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


class ListSource:
    """Frames already decoded, replayed as a file source (not live)."""

    is_live = False

    def __init__(self, frames: list[Frame]):
        self.frames, self.position = frames, 0

    def read(self) -> Frame | None:
        if self.position >= len(self.frames):
            return None
        frame = self.frames[self.position]
        self.position += 1
        return Frame(frame.index, frame.image, frame.pts, frame.time_base, frame.duration)

    def close(self) -> None:
        pass


def decode_all(clip: Path, size: InferenceSize, limit: int | None) -> tuple[list[Frame], float]:
    source = VideoFileSource(clip, size=size)
    frames = []
    t0 = time.perf_counter()
    while (limit is None or len(frames) < limit) and (frame := source.read()) is not None:
        frames.append(frame)
    seconds = time.perf_counter() - t0
    source.close()
    return frames, seconds


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(stage: InferStage, frames: list[Frame], batch: int) -> float:
    """Seconds for the infer stage on frames in memory, run on a worker thread as in the pipeline.

    (On a busy CPU, torch's OpenMP pool on the main thread was measured 20–50× slower than the same
    calls on a fresh thread, which would make the model look far slower than it is in the pipeline.)
    """
    seconds: list[float] = []
    worker = threading.Thread(target=lambda: seconds.append(_time_model(stage, frames, batch)))
    worker.start()
    worker.join()
    return seconds[0]


def _time_model(stage: InferStage, frames: list[Frame], batch: int) -> float:
    device = stage.engine.device
    stage([Frame(f.index, f.image) for f in frames[:batch]])  # warm-up (allocations, ONNX/TRT build)
    sync(device)
    t0 = time.perf_counter()
    for start in range(0, len(frames), batch):
        stage([Frame(f.index, f.image) for f in frames[start:start + batch]])
    sync(device)
    return time.perf_counter() - t0


def time_encode(frames: list[Frame], outputs: list, clip: Path, audio_index: int | None, rate, folder: Path) -> float:
    sink = VideoFileSink(folder / "encode.mp4", rate=rate, audio_from=clip if audio_index is not None else None,
                         audio_stream=audio_index)
    t0 = time.perf_counter()
    for frame, output in zip(frames, outputs):
        frame.output = output
        sink.write(frame)
    sink.close("complete")
    seconds = time.perf_counter() - t0
    sink.final_path.unlink()
    return seconds


def time_pipeline(clip: Path, size: InferenceSize, engine, batch: int, folder: Path, limit: int | None,
                  null_sink: bool = False) -> tuple[float, dict]:
    source = VideoFileSource(clip, size=size)
    if limit is not None:
        frames = []
        while len(frames) < limit and (frame := source.read()) is not None:
            frames.append(frame)
        source.close()
        source = ListSource(frames)
        audio_index, rate = None, frames[0].time_base and (1 / frames[0].time_base)
    else:
        audio_index, rate = source.audio_stream_index, source.rate
    if null_sink:
        sink = NullSink()
    else:
        sink = VideoFileSink(folder / "pipeline.mp4", rate=source.rate if limit is None else rate,
                             audio_from=clip if audio_index is not None else None, audio_stream=audio_index)
    result = Pipeline(source, InferStage(engine, batch_size=batch), [sink]).run()
    if getattr(sink, "final_path", None):
        sink.final_path.unlink()
    return result.stats.elapsed_s, result.stats.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--model", type=Path, help="livestyle model file (default: a random TransformNet)")
    parser.add_argument("--style", help="catalog style")
    parser.add_argument("--width", type=int, default=32, help="random TransformNet width when no model is given")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--scale", type=float, default=None, help="inference size factor (as `video --scale`)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                        help="same as --precision fp16")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--frames", type=int, default=None, help="use only the first N frames")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    if args.model or args.style:
        choice = choose_model(style=args.style, model_file=args.model)
        model, model_name = choice.model, choice.name
    else:
        torch.manual_seed(0)
        model, model_name = transform_net(width=args.width, blocks=args.blocks), f"random-w{args.width}-b{args.blocks}"
    engine = create_engine(model, backend=args.backend, device=args.device,
                           precision=args.precision)
    batch = args.batch or (4 if engine.device.type == "cuda" else 1)
    size = InferenceSize(scale=args.scale)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        frames, _ = decode_all(args.clip, size, args.frames)
        n = len(frames)
        probe = VideoFileSource(args.clip)
        audio_index, rate = (probe.audio_stream_index if args.frames is None else None), probe.rate
        probe.close()

        stage = InferStage(engine, batch_size=batch)
        outputs = []
        for start in range(0, n, batch):
            outputs += [f.output for f in stage([Frame(f.index, f.image) for f in frames[start:start + batch]])]
        identity = IdentityEngine(engine.device)
        load_before = os.getloadavg()
        # Round robin over the measurements, best of each: other processes disturb all of them alike.
        times: dict[str, list[float]] = {"decode": [], "model": [], "encode": [], "codec": [], "e2e": []}
        e2e_runs = []
        for _ in range(args.repeat):
            times["decode"].append(decode_all(args.clip, size, args.frames)[1])
            times["model"].append(time_model(stage, frames, batch))
            times["encode"].append(time_encode(frames, outputs, args.clip, audio_index, rate, folder))
            times["codec"].append(time_pipeline(args.clip, size, identity, batch, folder, args.frames)[0])
            e2e_runs.append(time_pipeline(args.clip, size, engine, batch, folder, args.frames))
            times["e2e"].append(e2e_runs[-1][0])
        load_after = os.getloadavg()
        decode_s, model_s, encode_s, codec_s = (min(times[k]) for k in ("decode", "model", "encode", "codec"))
        e2e_s, e2e_stats = min(e2e_runs, key=lambda r: r[0])

    fps = {"decode": n / decode_s, "model": n / model_s, "encode": n / encode_s, "codec_pipeline": n / codec_s,
           "end_to_end": n / e2e_s}
    slowest = min(("decode", "model", "encode"), key=lambda k: fps[k])
    device_name = torch.cuda.get_device_name(engine.device) if engine.device.type == "cuda" else platform.processor() or platform.machine()
    report = {
        "clip": args.clip.name, "frames": n, "frame_size": list(frames[0].image.shape[1::-1]),
        "model": model_name, "engine": engine.name, "batch": batch, "device": device_name,
        "cpu_count": os.cpu_count(), "torch": torch.__version__, "repeat": args.repeat,
        "fps": {k: round(v, 2) for k, v in fps.items()},
        "slowest_stage": slowest, "end_to_end_over_slowest": round(fps["end_to_end"] / fps[slowest], 3),
        "end_to_end_stats": e2e_stats,
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"pipeline-{args.clip.stem}-{engine.device.type}"
    (args.out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    w, h = report["frame_size"]
    lines = [
        f"# Pipeline benchmark: {args.clip.name}",
        "",
        f"{n} frames at {w}×{h} (inference size), model {model_name}, engine {engine.name}, batch {batch}, "
        f"{device_name}, {os.cpu_count()} CPU cores, torch {torch.__version__}, best of {args.repeat} "
        f"(round robin), load average {load_before[0]:.1f} → {load_after[0]:.1f}, {report['date']}.",
        "",
        "| what | fps |",
        "|---|---|",
        *(f"| {k.replace('_', ' ')} | {v:.1f} |" for k, v in fps.items()),
        "",
        f"Slowest stage alone: {slowest} ({fps[slowest]:.1f} fps). End-to-end / slowest stage: "
        f"{100 * report['end_to_end_over_slowest']:.0f}% (goal ≥ 90%).",
        "",
    ]
    (args.out_dir / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
