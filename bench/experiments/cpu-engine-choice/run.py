"""CPU engines per machine (issue 20): every CPU engine on the shipped models, with and without an
AVX2 cap, and the commands a user runs, end to end.

    python bench/experiments/cpu-engine-choice/run.py engines --out DIR [--cap avx2] [--iters 15]
    python bench/experiments/cpu-engine-choice/run.py e2e --out DIR --label NAME [--cap avx2] [--repeat 2]
        [--livestyle "CMD"] [--jobs video,cam,sr4]
    python bench/experiments/cpu-engine-choice/run.py quality --out DIR
    python bench/experiments/cpu-engine-choice/run.py caps --out DIR [--cap avx2]

`engines`: model-only latency and peak memory of every CPU engine (torch, ONNX Runtime, OpenVINO;
FP32/BF16; 1 and all threads) on kandinsky_small at 640×480 and on the ×4 SR model at 160×120
(its output 640×480), through `livestyle.benchmarks.engine_table`; then which engines honour the
cap: torch's ATen capability, oneDNN's ISA line (ONEDNN_VERBOSE), OpenVINO's kernel names. `--cap
avx2` re-runs itself with ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2 (read at start-up).

`e2e`: the README's main job (`livestyle video mdn_friday.mp4 --style kandinsky`), `livestyle cam`
on the same 30 fps clip (`--no-window --duration 10`), and `livestyle image` ×4 SR of one 640×480
frame, as subprocesses: the summary lines parsed, wall time and the child's peak resident memory
(wait4). `--livestyle` runs another checkout (e.g. the tree before a change). Every result records
the CPU, the caps and the load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
CLIP = DATA / "video" / "mdn_friday.mp4"
CAPS = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
SUMMARY = re.compile(r"\((?P<engine>[^()]*)\): (?P<frames>\d+) frames, (?P<dropped>\d+) dropped, "
                     r"(?P<seconds>[\d.]+) s, end-to-end (?P<fps>[\d.]+) fps, latency (?P<latency>\d+) ms; "
                     r"stages: (?P<stages>.*)$")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def machine() -> dict:
    import torch

    from livestyle.benchmarks.machine import machine_info

    return machine_info(torch.device("cpu"))


# ------------------------------------------------------------------------------------------ engines

def cap_report() -> dict:
    """Which libraries honour the caps in the environment: what each says it uses."""
    import torch

    report = {"torch_aten_capability": torch.backends.cpu.get_cpu_capability()}
    probe = ("import torch; x = torch.rand(1, 64, 64, 64)\n"
             "with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):\n"
             "    torch.nn.functional.conv2d(x, torch.rand(64, 64, 3, 3), padding=1)")
    verbose = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    isa = [line for line in verbose.stdout.splitlines() if ",isa:" in line]
    report["torch_onednn_isa"] = isa[0].split("isa:", 1)[1] if isa else "(oneDNN printed no ISA line)"
    try:
        from livestyle.engines.openvino_engine import OpenVinoEngine
        from livestyle.zoo.choice import choose_model

        model = choose_model(style="kandinsky", variant="small").model
        kinds = OpenVinoEngine(model, precision="fp32").primitive_types((1, 3, 64, 64))
        report["openvino_conv_kernels"] = sorted(k for k in kinds if "conv" in k)
    except Exception as exc:  # noqa: BLE001 - a missing backend is a finding, not a failure
        report["openvino_conv_kernels"] = f"{type(exc).__name__}: {exc}"
    report["onnxruntime"] = "no instruction-set cap variable; MLAS picks its kernels from CPUID (see the timings)"
    return report


def run_caps(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"caps_set": CAPS.get(args.cap, {}), "what_each_library_uses": cap_report(), "cpu": machine()["cpu"]}
    (out / f"caps-{args.cap or 'nocap'}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def run_engines(args) -> None:
    from livestyle.benchmarks.engine_table import (BASELINE_EAGER, Candidate, benchmark_markdown,
                                                   cpu_engine_candidates, eager_baseline, write_benchmark)
    from livestyle.benchmarks.engine_table import benchmark_engines
    from livestyle.zoo.choice import choose_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = args.cap or "nocap"
    jobs = {"kandinsky_small": (choose_model(style="kandinsky", variant="small").model, [(480, 640)]),
            "x4": (choose_model(superres=4).model, [(120, 160)])}
    candidates = [Candidate(BASELINE_EAGER, "fp32", eager_baseline)] + cpu_engine_candidates(cache_dir=args.cache)
    summary = {"machine": machine(), "caps": cap_report(), "load_before": load(), "models": {}}
    for name, (model, sizes) in jobs.items():
        print(f"== {name} ({tag}), load {load()}", flush=True)
        result = benchmark_engines(model, sizes=sizes, device="cpu", candidates=candidates, iters=args.iters,
                                   warmup=2, interleave=True, progress=lambda m: print(m, flush=True))
        result["meta"]["model_name"] = name
        write_benchmark(result, out, stem=f"engines-{name}-{tag}", title=f"CPU engines: {name}, {tag}")
        summary["models"][name] = {row["engine"]: row["ms_median"] for row in result["rows"]}
        print(benchmark_markdown(result), flush=True)
    summary["load_after"] = load()
    (out / f"engines-summary-{tag}.json").write_text(json.dumps(summary, indent=2))


def run_quality(args) -> None:
    """PSNR of every CPU engine's output against torch FP32 on one frame of the clip (style at
    640×480, ×4 SR on a 160×120 crop): BF16 engines must stay close to FP32 ones."""
    import av
    import numpy as np
    import torch

    from livestyle.engines.cpu_choice import build_candidate, cpu_candidates
    from livestyle.engines.torch_engine import TorchEngine
    from livestyle.zoo.choice import choose_model

    with av.open(str(CLIP)) as container:
        rgb = next(f for i, f in enumerate(container.decode(video=0)) if i == 60).to_ndarray(format="rgb24")
    frame = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
    jobs = {"kandinsky_small": (choose_model(style="kandinsky", variant="small").model, frame),
            "x4": (choose_model(superres=4).model, frame[..., 180:300, 240:400])}
    report = {"machine": machine(), "psnr_db_vs_torch_fp32": {}}
    for name, (model, x) in jobs.items():
        reference = TorchEngine(model, device="cpu")(x)
        scores = {}
        for candidate in cpu_candidates(model):
            if candidate.threads != 1:
                continue  # the thread count does not change the arithmetic
            out = build_candidate(model, candidate, cache_dir=args.cache)(x)
            mse = torch.mean((out - reference) ** 2).item()
            scores[candidate.label.removesuffix("-t1")] = round(10 * np.log10(1.0 / max(mse, 1e-20)), 1)
        report["psnr_db_vs_torch_fp32"][name] = scores
        print(name, scores, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(report, indent=2))


# --------------------------------------------------------------------------------------------- e2e

def run_child(command: list[str], env: dict, timeout: float) -> dict:
    """Run ``command``; its stderr lines, wall seconds and peak resident memory (MiB, from wait4)."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.terminate()
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.05)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        err.seek(0)
        lines = err.read().decode(errors="replace").splitlines()
    return {"command": shlex.join(command), "exit": child.returncode, "wall_s": round(wall, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "stderr": lines[-12:]}


def parse_summary(lines: list[str]) -> dict:
    for line in lines:
        match = SUMMARY.search(line)
        if match:
            found = match.groupdict()
            stages = dict(re.findall(r"(\w+) ([\d.]+) fps", found.pop("stages")))
            return {**{k: (v if k == "engine" else float(v)) for k, v in found.items()},
                    "stages_fps": {k: float(v) for k, v in stages.items()}}
    return {}


def run_e2e(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **CAPS.get(args.cap, {})}
    livestyle = shlex.split(args.livestyle)
    work = Path(args.work or tempfile.mkdtemp(prefix="cpu-engine-choice-"))  # outputs: not results
    work.mkdir(parents=True, exist_ok=True)
    frame = work / "frame640.png"
    if "sr4" in args.jobs and not frame.exists():
        import av

        with av.open(str(CLIP)) as container:
            for index, decoded in enumerate(container.decode(video=0)):
                if index == 60:
                    decoded.to_image().save(frame)
                    break
    jobs = {"video": ["video", str(CLIP), "--style", "kandinsky", "-o", str(work / "friday.mp4"), "--no-progress"],
            "cam": ["cam", "--source", str(CLIP), "--style", "kandinsky", "--no-window", "--duration", "10"],
            "sr4": ["image", str(frame), "--superres", "4", "-o", str(work / "friday-x4.png")]}
    runs = []
    for repeat in range(args.repeat):
        for job in args.jobs:
            before = load()
            result = run_child(livestyle + jobs[job] + args.extra, env, args.timeout)
            result.update({"job": job, "repeat": repeat, "label": args.label, "cap": args.cap or "none",
                           "load_before": before, "load_after": load(), **parse_summary(result["stderr"])})
            governor = [line for line in result["stderr"] if "inference scale" in line]
            result["governor"] = governor[-1] if governor else None
            runs.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "stderr"}), flush=True)
    path = out / f"e2e-{args.label}-{args.cap or 'nocap'}.json"
    path.write_text(json.dumps({"machine": machine(), "runs": runs}, indent=2))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    engines = sub.add_parser("engines")
    engines.add_argument("--out", required=True)
    engines.add_argument("--cap", choices=sorted(CAPS), default=None)
    engines.add_argument("--iters", type=int, default=15)
    engines.add_argument("--cache", default=None, help="export cache (default: livestyle's)")
    caps = sub.add_parser("caps")
    caps.add_argument("--out", required=True)
    caps.add_argument("--cap", choices=sorted(CAPS), default=None)
    quality = sub.add_parser("quality")
    quality.add_argument("--out", required=True)
    quality.add_argument("--cache", default=None, help="export cache (default: livestyle's)")
    e2e = sub.add_parser("e2e")
    e2e.add_argument("--out", required=True)
    e2e.add_argument("--label", required=True, help="e.g. before / after")
    e2e.add_argument("--cap", choices=sorted(CAPS), default=None)
    e2e.add_argument("--repeat", type=int, default=2)
    e2e.add_argument("--jobs", type=lambda s: s.split(","), default=["video", "cam", "sr4"])
    e2e.add_argument("--livestyle", default=str(Path(sys.executable).parent / "livestyle"),
                     help="the command that runs livestyle (another checkout's, to compare)")
    e2e.add_argument("--extra", type=shlex.split, default=[], help="options added to every command")
    e2e.add_argument("--timeout", type=float, default=900)
    e2e.add_argument("--work", default=None, help="folder for the outputs (default: a new temporary folder)")
    args = parser.parse_args()
    if args.what in ("engines", "caps") and args.cap and os.environ.get("ONEDNN_MAX_CPU_ISA") is None:
        # The caps are read when the libraries load: run again in a process that starts with them.
        env = {**os.environ, **CAPS[args.cap]}
        raise SystemExit(subprocess.call([sys.executable, *sys.argv], env=env))
    {"engines": run_engines, "caps": run_caps, "quality": run_quality, "e2e": run_e2e}[args.what](args)


if __name__ == "__main__":
    main()
