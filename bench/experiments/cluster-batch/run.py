"""`livestyle batch` on the shared clips with 1 and 2 local Ray workers, against `livestyle video` on
the same files one after another (issue 21).

    python bench/experiments/cluster-batch/run.py --out bench/experiments/cluster-batch/results
        [--clips DIR] [--style wave] [--scale 0.5] [--workers 1,2] [--engine "--backend torch --precision fp32"]

Every configuration runs as the user would run it (a fresh process; the batch starts its own local
Ray, and that start is part of its time). Throughput is the frames of all clips over the wall time;
"working" is the time the commands themselves report: the pipelines' seconds summed over the `video`
runs, and the batch's own run (workers started, files done) without Ray's start and the model load.
The batch outputs are then checked against the sequential ones, decoded frame by frame (the same
engine and options everywhere: the outputs must be equal). Writes cluster-batch.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from livestyle.benchmarks.machine import machine_info, machine_label

LIVESTYLE = Path(sys.executable).with_name("livestyle")


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def difference(a: Path, b: Path) -> dict | None:
    """None where two videos decode to the same frames; else how they differ."""
    first, second = frames_of(a), frames_of(b)
    diffs = [int(np.abs(x.astype(np.int16) - y).max()) for x, y in zip(first, second)]
    if len(first) == len(second) and not any(diffs):
        return None
    return {"frames": [len(first), len(second)], "frames_differing": sum(d > 0 for d in diffs),
            "max_abs_diff": max(diffs, default=0)}


def timed(command: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed ({run.returncode}):\n{run.stderr[-2000:]}")
    return seconds, run.stderr + run.stdout


def _equal(flag: bool | None) -> str:
    return "(reference)" if flag is None else "yes" if flag else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=Path(__file__).resolve().parents[4] / "shared" / "data" / "video")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--style", default="wave")
    parser.add_argument("--scale", default="0.5")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--engine", default="--backend torch --precision fp32",
                        help="engine options, the same for every run (outputs must be equal)")
    parser.add_argument("--note", default="", help="what else the machine was doing (written beside the figures)")
    args = parser.parse_args()
    clips = sorted(p for p in args.clips.iterdir() if p.suffix.lower() in (".mp4", ".mov", ".webm", ".mkv"))
    common = ["--style", args.style, "--scale", args.scale, *shlex.split(args.engine), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread a process: what each batch worker gets
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="cluster-batch-"))
    runs = []
    try:
        sequential = work / "sequential"
        sequential.mkdir()
        started, working = time.perf_counter(), 0.0
        for clip in clips:
            _, log = timed([str(LIVESTYLE), "video", str(clip), "-o", str(sequential / clip.name), *common], env)
            working += float(re.search(r"\d+ frames?, \d+ dropped, ([\d.]+) s", log).group(1))
        seconds = time.perf_counter() - started
        total = sum(len(frames_of(sequential / clip.name)) for clip in clips)
        runs.append({"run": "livestyle video, one file after another", "workers": 1, "seconds": round(seconds, 2),
                     "working_seconds": round(working, 2), "frames": total, "fps": round(total / seconds, 2),
                     "equal_to_sequential": None})  # the reference
        for workers in (int(w) for w in args.workers.split(",")):
            out = work / f"batch-{workers}"
            seconds, log = timed([str(LIVESTYLE), "batch", *map(str, clips), "-o", str(out), "--workers",
                                  str(workers), *common], env)
            differing = {c.name: difference(sequential / c.name, out / c.name) for c in clips}
            differing = {name: d for name, d in differing.items() if d is not None}
            equal = not differing
            summary = next(line for line in log.splitlines() if " done, " in line and "worker(s)" in line)
            working = float(re.search(r"worker\(s\), ([\d.]+) s", summary).group(1))
            runs.append({"run": f"livestyle batch --workers {workers}", "workers": workers,
                         "seconds": round(seconds, 2), "working_seconds": working, "frames": total,
                         "fps": round(total / seconds, 2), "equal_to_sequential": equal, "differing": differing,
                         "summary": summary})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = runs[0]["fps"]
    for run in runs:
        run["speedup"] = round(run["fps"] / base, 2)
    info = machine_info(torch.device("cpu"))
    report = {"machine": machine_label(info), "machine_info": info, "clips": [c.name for c in clips],
              "options": common, "load_average_before": [round(v, 2) for v in load_before],
              "load_average_after": [round(v, 2) for v in os.getloadavg()], "note": args.note, "runs": runs,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster-batch.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    lines = [f"# livestyle batch against livestyle video, {len(clips)} shared clips ({report['measured_at']})", "",
             f"Machine: {report['machine']}; load average before {report['load_average_before']}, after "
             f"{report['load_average_after']}." + (f" {args.note}" if args.note else ""),
             f"Options: `{shlex.join(common)}`; OMP_NUM_THREADS=1.", "",
             "| run | wall s | working s | frames | frames/s (wall) | frames/s (working) | × sequential (wall) "
             "| outputs equal |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['seconds']} | {r['working_seconds']} | {r['frames']} | {r['fps']} | "
              f"{r['frames'] / r['working_seconds']:.2f} | {r['speedup']} | "
              f"{_equal(r['equal_to_sequential'])} |" for r in runs]
    for r in runs:
        for name, d in (r.get("differing") or {}).items():
            lines.append(f"\n{r['run']}: {name} decodes to other frames than the sequential run's: "
                         f"{d['frames_differing']} of {d['frames'][0]} differ, by at most {d['max_abs_diff']} of 255.")
    (args.out / "cluster-batch.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
