"""Why `livestyle bench --extrapolate` missed real Gatys times, and how well its prediction does now.

    OMP_NUM_THREADS=1 .venv/bin/python bench/experiments/bench-extrapolate/run.py \
        [--case vgg16:256:100] [--case squeezenet1_1:256:300] [--out DIR]

For each case (loss network : image size : iterations; random loss-network weights, as `bench`
times them), in one process and one torch thread:
1. one real L-BFGS run as `bench` runs it, traced: each iteration's wall and CPU time, how many loss
   evaluations (closure calls) it made, and its split into the evaluation (forward + backward, up to
   the image's gradient) and the optimiser's own step (the rest);
2. predictions of that run's time from 5 timed iterations: the old model (their mean × N) and the
   new one (``livestyle.benchmarks.gatys_timing``: evaluations plus the optimiser's steps timed alone
   as its memory fills), each with the wall clock and with the thread's CPU time.
Writes ``bench-extrapolate.json`` and ``.md`` under ``--out`` (default: results/ beside this script).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent


class TracedObjective:
    """Stands in for a PerceptualObjective: counts evaluations (closure calls) and notes, in CPU time,
    when each began and when its backward pass reached the image (a gradient hook on the image)."""

    def __init__(self, objective):
        self.objective, self.calls = objective, 0
        self.began: list[float] = []
        self.evaluation_cpu_s: list[float] = []
        self.first_call: tuple[float, float] | None = None

    def __call__(self, output, targets):
        now = (time.perf_counter(), time.thread_time())
        if self.first_call is None:
            self.first_call = now
            if output.requires_grad:  # the image being optimised: the same leaf on every call
                output.register_hook(self._gradient_reached_image)
        self.began.append(now[1])
        self.calls += 1
        return self.objective(output, targets)

    def _gradient_reached_image(self, grad):
        self.evaluation_cpu_s.append(time.thread_time() - self.began[-1])

    def __getattr__(self, name):
        return getattr(self.objective, name)


def traced_run(objective, content, config) -> dict:
    """One optimisation: per iteration wall s, CPU s, evaluations and CPU s of its evaluations."""
    from livestyle.quality.gatys import optimize_image

    traced = TracedObjective(objective)
    ends: list[tuple[float, float, int, int]] = []

    def on_iteration(i, _loss):
        ends.append((time.perf_counter(), time.thread_time(), traced.calls, len(traced.evaluation_cpu_s)))

    optimize_image(traced, content, config, on_iteration=on_iteration)
    wall, cpu, evaluations, evaluation_cpu = [], [], [], []
    previous = (*traced.first_call, 0, 0)
    for end in ends:
        wall.append(end[0] - previous[0])
        cpu.append(end[1] - previous[1])
        evaluations.append(end[2] - previous[2])
        evaluation_cpu.append(sum(traced.evaluation_cpu_s[previous[3]:end[3]]))
        previous = end
    return {"wall_s": wall, "cpu_s": cpu, "evaluations": evaluations, "evaluation_cpu_s": evaluation_cpu,
            "step_cpu_s": [c - e for c, e in zip(cpu, evaluation_cpu)]}


def tenths(values: list[float]) -> list[float]:
    """Mean of each tenth of a run (start to end)."""
    n = max(1, len(values) // 10)
    return [round(statistics.mean(values[i:i + n]), 4) for i in range(0, len(values) - n + 1, n)]


def predictions(loss_net: str, size: int, iterations: int, clock) -> dict:
    """The old and the new prediction of ``iterations`` iterations from 5 timed ones, on ``clock``."""
    import torch

    from livestyle.benchmarks.gatys_timing import iteration_seconds, prepare_gatys, time_gatys
    from livestyle.quality.gatys import GatysConfig

    setup = prepare_gatys(size, loss_net=loss_net, weights=None, device=torch.device("cpu"),
                          config=GatysConfig(iterations=iterations), warmup_iterations=2,
                          max_iterations=iterations, clock=clock)
    new = time_gatys(setup, (iterations,), extrapolate_from=5, clock=clock)
    times, _ = iteration_seconds(setup.objective, setup.content, replace(setup.config, iterations=5), clock=clock)
    old = statistics.mean(times) * iterations
    return {"old_s": old, "new_s": new.seconds[iterations], "evaluation_s": new.evaluation_s,
            "optimizer_step_s": new.step_s, "memory_growth": setup.memory_growth, "setup": setup}


def measure(loss_net: str, size: int, iterations: int) -> dict:
    import torch

    from livestyle.benchmarks.machine import machine_info

    cpu = predictions(loss_net, size, iterations, time.thread_time)
    wall = predictions(loss_net, size, iterations, time.perf_counter)
    setup = wall.pop("setup")
    cpu.pop("setup")
    trace = traced_run(setup.objective, setup.content, replace(setup.config, iterations=iterations))
    real = {"wall": sum(trace["wall_s"]), "cpu": sum(trace["cpu_s"])}
    return {
        "loss_net": loss_net, "size": size, "iterations": iterations, "machine": machine_info(torch.device("cpu")),
        "evaluations_per_iteration": sorted(set(trace["evaluations"])),
        "real_s": real,
        "predicted": {"cpu": cpu, "wall": wall},
        "ratio_to_real": {clock: {model: round(p[f"{model}_s"] / real[clock], 3) for model in ("old", "new")}
                          for clock, p in (("cpu", cpu), ("wall", wall))},
        "by_tenth": {"iteration_wall_s": tenths(trace["wall_s"]), "iteration_cpu_s": tenths(trace["cpu_s"]),
                     "evaluation_cpu_s": tenths(trace["evaluation_cpu_s"]), "step_cpu_s": tenths(trace["step_cpu_s"])},
        "trace": trace,
    }


def markdown(results: list[dict]) -> str:
    machine = results[0]["machine"]
    lines = ["# Gatys (L-BFGS) iteration cost and `bench --extrapolate`'s prediction", "",
             f"CPU: {machine['cpu']}, {machine['torch_threads']} torch thread; load average "
             f"{machine['load_average_1m']} at the start (other work shared both cores); random loss-network "
             "weights; predictions from 5 timed iterations after 2 of warm-up.", "",
             "| loss net | size | iterations | evaluations per iteration | real run wall (s) | real run CPU (s) | "
             "old model ÷ real (wall, CPU) | new model ÷ real (wall, CPU) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        q = r["ratio_to_real"]
        lines.append(f"| {r['loss_net']} | {r['size']}² | {r['iterations']} | {r['evaluations_per_iteration']} | "
                     f"{r['real_s']['wall']:.1f} | {r['real_s']['cpu']:.1f} | {q['wall']['old']}, {q['cpu']['old']} | "
                     f"{q['wall']['new']}, {q['cpu']['new']} |")
    lines += ["", "Mean seconds of each tenth of the real run (first → last):", "",
              "| loss net | size | what | 1st … 10th tenth |", "|---|---|---|---|"]
    for r in results:
        for what, values in r["by_tenth"].items():
            lines.append(f"| {r['loss_net']} | {r['size']}² | {what} | {', '.join(f'{v:.4f}' for v in values)} |")
    lines += ["", "The optimiser alone (nearly free loss, same image size; CPU time), as the prediction uses it:", "",
              "| loss net | size | pairs kept an iteration | step in the first iteration (s) | in the last (s) | "
              "evaluation, from the timed iterations (s) |", "|---|---|---|---|---|---|"]
    for r in results:
        p = r["predicted"]["cpu"]
        lines.append(f"| {r['loss_net']} | {r['size']}² | {p['memory_growth']:g} | "
                     f"{p['optimizer_step_s']['first']:.4f} | {p['optimizer_step_s']['last']:.4f} | "
                     f"{p['evaluation_s']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="LOSS_NET:SIZE:ITERATIONS (repeatable)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cases = args.case or ["vgg16:256:100", "squeezenet1_1:256:300"]
    results = []
    for case in cases:
        name, size, iterations = case.split(":")
        results.append(measure(name, int(size), int(iterations)))
        print(f"{case} done", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-extrapolate.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "bench-extrapolate.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
