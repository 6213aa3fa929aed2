"""Split videos against whole runs (issue 21, `livestyle batch --split-seconds`): each clip through
the same model whole and in parts cut at keyframes (the parts joined by packet copy), losslessly
encoded (--crf 0), then the decoded frames compared: count, timestamps, pixel differences; with
and without --stabilize (whose parts warm up on the frames before them).

    python bench/experiments/cluster-batch/split.py --out bench/experiments/cluster-batch/results
        [--clips DIR] [--names mdn_friday.mp4,…] [--style wave] [--scale 0.25] [--seconds 2]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from livestyle.cluster.plan import WARM_UP_FRAMES
from livestyle.engines.factory import build_engine
from livestyle.io.segments import join_segments, keyframe_index, plan_segments
from livestyle.io.sources import InferenceSize
from livestyle.pipeline.jobs import FrameEffects, VideoEncoding, VideoJob
from livestyle.zoo.choice import choose_model

NAMES = "mdn_friday.mp4,mdnla_frog.mp4,tos_640x360_23976_h264.mp4,jsonize_iphone_rotated.mov"


def decoded(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as container:
        return [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24").astype(np.int16))
                for f in container.decode(video=0)]


def compare(clip: Path, engine, size: InferenceSize, seconds: float, stabilize: bool, work: Path) -> dict:
    effects, encoding = FrameEffects(stabilize=stabilize), VideoEncoding(crf=0, audio=False)
    whole = work / f"whole-{clip.stem}-{stabilize}.mp4"
    VideoJob(engine, clip, whole, size=size, effects=effects, encoding=encoding).run()
    segments = plan_segments(keyframe_index(clip), seconds, warm_up_frames=WARM_UP_FRAMES if stabilize else 0)
    parts = []
    for segment in segments:
        part = work / f"part-{clip.stem}-{stabilize}-{segment.index}.mp4"
        VideoJob(engine, clip, part, size=size, effects=effects, encoding=encoding, segment=segment).run()
        parts.append(part)
    joined = work / f"joined-{clip.stem}-{stabilize}.mp4"
    join_segments(parts, joined)
    a, b = decoded(whole), decoded(joined)
    diffs = [np.abs(x[1] - y[1]) for x, y in zip(a, b)]
    return {"clip": clip.name, "stabilize": stabilize, "parts": len(segments), "frames_whole": len(a),
            "frames_joined": len(b), "timestamps_equal": [x[0] for x in a] == [y[0] for y in b],
            "max_abs_diff": int(max(d.max() for d in diffs)), "mean_abs_diff": round(float(np.mean(diffs)), 4),
            "frames_differing": int(sum(bool(d.any()) for d in diffs))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=Path(__file__).resolve().parents[4] / "shared" / "data" / "video")
    parser.add_argument("--names", default=NAMES)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--style", default="wave")
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    engine = build_engine(choose_model(style=args.style, variant="small"), backend="torch", device="cpu",
                          precision="fp32")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.names.split(","):
            for stabilize in (False, True):
                rows.append(compare(args.clips / name, engine, InferenceSize(scale=args.scale), args.seconds,
                                    stabilize, Path(work)))
                print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"style": args.style, "scale": args.scale, "split_seconds": args.seconds,
              "warm_up_frames": WARM_UP_FRAMES, "rows": rows,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (args.out / "split.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Split (--split-seconds {args.seconds:g}) against whole runs, lossless (--crf 0), {args.style} at "
             f"scale {args.scale:g}", "",
             "| clip | --stabilize | parts | frames whole / joined | timestamps equal | frames differing | "
             "max abs diff | mean abs diff |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['clip']} | {'yes' if r['stabilize'] else 'no'} | {r['parts']} | {r['frames_whole']} / "
              f"{r['frames_joined']} | {'yes' if r['timestamps_equal'] else 'NO'} | {r['frames_differing']} | "
              f"{r['max_abs_diff']} | {r['mean_abs_diff']} |" for r in rows]
    (args.out / "split.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
