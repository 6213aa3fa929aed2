"""Timing the Gatys baseline: what its iterations cost, measured or predicted from a few.

An iteration of ``livestyle.quality.gatys.optimize_image`` is one loss evaluation (a forward and
backward pass through the loss network, the same work every time) plus the optimiser's own step.
L-BFGS's step runs its two-loop recursion over every stored pair, so it costs more with each
iteration until ``history_size`` pairs are kept; a few timed iterations say what an evaluation
costs, not what the 300th iteration costs. A prediction therefore adds the optimiser's steps,
timed alone (with a nearly free loss) while its memory fills, to the evaluations' time
(bench/experiments/bench-extrapolate/findings.md).
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from livestyle.engines.device import synchronize
from livestyle.quality.gatys import GatysConfig, make_optimizer, optimize_image
from livestyle.quality.objective import ObjectiveConfig, PerceptualObjective, build_objective

Clock = Callable[[], float]
Tick = Callable[[], None]


@dataclass
class GatysTiming:
    """Gatys seconds per iteration count; ``extrapolated`` when predicted from ``measured_iterations``.

    ``evaluation_s``: one loss evaluation's time; ``step_s``: the optimiser's own time in the first and
    the last iteration (what a prediction adds to the evaluations; they differ as its memory fills).
    """

    seconds: dict[int, float]
    seconds_per_iteration: float
    measured_iterations: int
    extrapolated: bool
    evaluation_s: float | None = None
    step_s: dict[str, float] = field(default_factory=dict)


@dataclass
class GatysSetup:
    """One image size, ready to time: its objective and content image, warmed up, and what the
    warm-up measured (``step_seconds``: the optimiser alone, step by step; ``evaluation_s``)."""

    size: int
    objective: PerceptualObjective
    content: torch.Tensor
    config: GatysConfig
    step_seconds: list[float]
    evaluation_s: float
    memory_growth: float = 1.0  # pairs L-BFGS kept per iteration in the warm-up (0 on a nearly flat loss)

    def step_at(self, iteration: int, growth: float) -> float:
        """The optimiser's own seconds in ``iteration`` (from 1) of a run keeping ``growth`` pairs an iteration
        (past the timed steps the memory is full, or the run shorter: the last one repeats)."""
        pairs = round(growth * (iteration - 1))
        return self.step_seconds[min(pairs, len(self.step_seconds) - 1)]

    def predicted(self, iterations: int, evaluation_s: float | None = None, growth: float | None = None) -> float:
        """Seconds of ``iterations`` iterations: that many evaluations plus the optimiser's steps."""
        evaluation_s = self.evaluation_s if evaluation_s is None else evaluation_s
        growth = self.memory_growth if growth is None else growth
        return iterations * evaluation_s + sum(self.step_at(k, growth) for k in range(1, iterations + 1))


def optimizer_step_seconds(shape: tuple[int, ...], device: torch.device, config: GatysConfig, steps: int, *,
                           clock: Clock = time.perf_counter, tick: Tick | None = None) -> list[float]:
    """Seconds of each of ``steps`` optimiser steps on an image of ``shape`` whose loss costs next to
    nothing: what an iteration costs besides its evaluation (includes that nearly free loss).

    The loss is an ill-conditioned quadratic, so L-BFGS keeps every pair and its memory fills as in a
    real run (a quickly solved loss would stop adding pairs).
    """
    generator = torch.Generator().manual_seed(config.seed)
    count = int(torch.tensor(shape).prod())
    curvature = torch.logspace(-2, 2, count)[torch.randperm(count, generator=generator)].reshape(shape).to(device)
    target = torch.rand(shape, generator=generator).to(device)
    image = torch.zeros(shape, device=device, requires_grad=True)
    optimizer = make_optimizer(image, config)

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = 0.5 * (curvature * (image - target) ** 2).sum()
        loss.backward()
        return loss

    seconds = []
    synchronize(device)
    for _ in range(steps):
        start = clock()
        optimizer.step(closure)
        synchronize(device)
        seconds.append(clock() - start)
        if tick:
            tick()
    return seconds


def memory_growth(pairs: int | None, iterations: int) -> float:
    """Pairs L-BFGS kept per iteration after ``iterations`` (it keeps none in the first); 1 where unknown."""
    return 1.0 if pairs is None or iterations < 2 else min(1.0, pairs / (iterations - 1))


def iteration_seconds(objective: PerceptualObjective, content: torch.Tensor, config: GatysConfig, *,
                      clock: Clock = time.perf_counter, tick: Tick | None = None) -> tuple[list[float], float]:
    """Seconds of iterations 2 … N of one optimisation (the first has no start mark: it is left out),
    and the pairs L-BFGS kept per iteration (``memory_growth``)."""
    marks: list[float] = []

    def on_iteration(i: int, _loss) -> None:
        synchronize(content.device)
        marks.append(clock())
        if tick:
            tick()

    result = optimize_image(objective, content, config, on_iteration=on_iteration)
    return [b - a for a, b in zip(marks, marks[1:])], memory_growth(result.memory_pairs, config.iterations)


def prepare_gatys(size: int, *, loss_net: str, weights: str | None, device: torch.device, config: GatysConfig,
                  warmup_iterations: int, max_iterations: int, clock: Clock = time.perf_counter,
                  tick: Tick | None = None) -> GatysSetup:
    """Build the objective for random ``size``² images, warm it up (``warmup_iterations``, at least 2)
    and time the optimiser alone for as many steps as matter (up to a full memory, or the run).

    ``weights=None``: random loss-network weights (timing does not depend on them).
    """
    generator = torch.Generator().manual_seed(config.seed)
    content = torch.rand(1, 3, size, size, generator=generator).to(device)
    style = torch.rand(1, 3, size, size, generator=generator).to(device)
    objective = build_objective(ObjectiveConfig(loss_net=loss_net), style, weights=weights,
                                pretrained=weights is not None, device=device)
    # Warm-up (cuDNN algorithm choice, allocator growth) is not reported; its last iteration is the estimate.
    warm = replace(config, iterations=max(2, warmup_iterations))
    times, growth = iteration_seconds(objective, content, warm, clock=clock, tick=tick)
    memory = config.history_size if config.optimizer == "lbfgs" else 1
    steps = optimizer_step_seconds(tuple(content.shape), device, config, min(max_iterations, memory + 1),
                                   clock=clock, tick=tick)
    setup = GatysSetup(size, objective, content, config, steps, 0.0, growth)
    setup.evaluation_s = max(0.0, times[-1] - setup.step_at(warm.iterations, growth))
    return setup


def time_gatys(setup: GatysSetup, iterations: tuple[int, ...], *, extrapolate_from: int | None = None,
               clock: Clock = time.perf_counter, tick: Tick | None = None) -> GatysTiming:
    """Gatys time after each of ``iterations``: one real run read at each count, or (``extrapolate_from``
    = n) n timed iterations whose evaluation time predicts every count with the optimiser's steps."""
    wanted = sorted(set(iterations))
    device = setup.content.device
    if extrapolate_from:
        run = replace(setup.config, iterations=max(2, extrapolate_from))
        times, growth = iteration_seconds(setup.objective, setup.content, run, clock=clock, tick=tick)
        # Iteration k (2 … n) minus the optimiser's step k: evaluations; the median resists a stall.
        evaluation = statistics.median(max(0.0, t - setup.step_at(k, growth)) for k, t in enumerate(times, start=2))
        seconds = {n: setup.predicted(n, evaluation, growth) for n in wanted}
        steps = {"first": setup.step_at(1, growth), "last": setup.step_at(wanted[-1], growth)}
        return GatysTiming(seconds, seconds[wanted[-1]] / wanted[-1], run.iterations, True, evaluation, steps)

    checkpoints: dict[int, float] = {}
    started = 0.0

    def on_iteration(i: int, _loss) -> None:
        if tick:
            tick()
        if i in wanted:
            synchronize(device)
            checkpoints[i] = clock() - started

    synchronize(device)
    started = clock()
    # One run to the largest count; the times at smaller counts are read on the way (no scaling).
    optimize_image(setup.objective, setup.content, replace(setup.config, iterations=wanted[-1]),
                   on_iteration=on_iteration)
    return GatysTiming(checkpoints, checkpoints[wanted[-1]] / wanted[-1], wanted[-1], False)
