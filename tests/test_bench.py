"""`livestyle bench`: the Gatys-vs-feed-forward table on tiny sizes, its reports and the GPU job script."""
import json
import statistics
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from livestyle.benchmarks.paper import BenchConfig, EXTRAPOLATED_MARK, run_bench, time_engine
from livestyle.benchmarks.machine import machine_info
from livestyle.benchmarks.paper_report import report_markdown, table_markdown, write_reports
from livestyle.cli import main

TINY = dict(sizes=(24, 32), iterations=(1, 3), backends=("torch",), device="cpu", loss_net="squeezenet1_1",
            width=4, blocks=1, feedforward_runs=3, feedforward_warmup=1, feedforward_seconds=0.0,
            gatys_warmup_iterations=0)


@pytest.fixture(scope="module")
def measured():
    return run_bench(BenchConfig(**TINY)).to_dict()


def test_measured_report_is_well_formed(measured):
    assert measured["schema"] == "livestyle.bench/1"
    assert [r["size"] for r in measured["rows"]] == [24, 32]
    for row in measured["rows"]:
        seconds = row["gatys"]["seconds"]
        assert set(seconds) == {"1", "3"} and 0 < seconds["1"] < seconds["3"]
        assert row["gatys"]["extrapolated"] is False and row["gatys"]["measured_iterations"] == 3
        (ff,) = row["feedforward"]
        assert ff["engine"] == "torch-cpu-fp32" and ff["runs"] >= 3 and ff["timer"] == "perf_counter"
        assert ff["min_s"] <= ff["median_s"] <= ff["p90_s"]
        assert row["speedup"][ff["engine"]]["3"] == pytest.approx(seconds["3"] / ff["median_s"])
    settings = measured["settings"]
    assert settings["loss_net"] == "squeezenet1_1" and "random" in settings["loss_net_weights"]
    assert measured["paper"]["sizes"]["256"]["gatys"]["100"] == 3.17
    json.dumps(measured)  # JSON-ready


def test_markdown_table_has_our_rows_and_no_extrapolation_mark(measured):
    text = table_markdown(measured)
    assert text.count("| ours (torch-cpu-fp32) |") == 2
    assert "Gatys 1 it (s)" in text and "speedup 3 it" in text
    assert EXTRAPOLATED_MARK not in text and "EXTRAPOLATED" not in report_markdown(measured)


def test_paper_figures_sit_beside_ours_at_paper_sizes(measured):
    report = json.loads(json.dumps(measured))
    report["rows"][0]["size"] = 256  # relabel one row: the table must show the paper's 256² figures beside it
    report["settings"]["iterations"] = [1, 3]
    text = table_markdown(report)
    assert "| 256² | paper (Titan X) |" in text and "0.015" in text


def test_extrapolated_runs_are_marked_everywhere(tmp_path):
    report = run_bench(BenchConfig(**{**TINY, "sizes": (24,), "iterations": (100, 300), "extrapolate": True,
                                      "extrapolate_iterations": 2})).to_dict()
    row = report["rows"][0]
    assert row["gatys"]["extrapolated"] is True and row["gatys"]["measured_iterations"] == 2
    per_iteration = row["gatys"]["seconds_per_iteration"]
    assert row["gatys"]["seconds"]["300"] == pytest.approx(300 * per_iteration)
    paths = write_reports(report, tmp_path)
    assert [p.suffix for p in paths] == [".json", ".md", ".png"] and all(p.stat().st_size > 0 for p in paths)
    assert "extrapolated" in paths[0].name
    markdown = paths[1].read_text()
    assert "EXTRAPOLATED" in markdown.splitlines()[0] and f"{EXTRAPOLATED_MARK}" in markdown
    assert json.loads(paths[0].read_text())["rows"][0]["gatys"]["extrapolated"] is True
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_machine_info_names_the_machine():
    info = machine_info(torch.device("cpu"))
    assert info["cpu"] and info["cpu_cores"] >= 1 and "gpu" not in info
    assert torch.__version__.startswith(info["libraries"]["torch"].split("+")[0])


def test_bench_cli_writes_reports(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--sizes", "24", "--iters", "1,2", "--loss-net", "squeezenet1_1",
                                       "--width", "4", "--blocks", "1", "--runs", "3", "--max-seconds", "0",
                                       "--device", "cpu", "--out", str(tmp_path), "--name", "t"])
    assert result.exit_code == 0, result.output
    assert "| 24² | ours (torch-cpu-fp32) |" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.md", "t.png"]


@pytest.mark.parametrize("args, message", [
    (["--backend", "warp"], "unknown backend(s) warp"),
    (["--sizes", "big"], "expected comma-separated integers"),
    (["--iters", "0"], "expected positive integers"),
    (["--name", "../../escape"], "plain file name"),
    (["--name", "sub/escape"], "plain file name"),
    (["--name", ".."], "plain file name"),
    (["--sizes", "1"], "sizes must be from 16 to 8192 pixels"),
    (["--sizes", "256,100000"], "sizes must be from 16 to 8192 pixels"),
])
def test_bench_cli_rejects_bad_options(tmp_path, args, message):
    result = CliRunner().invoke(main, ["bench", "--out", str(tmp_path), *args])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_gpu_job_script_runs_tiny_on_cpu(tmp_path):
    """bench/gpu/paper_table.py (what a device call runs) end to end, tiny and on the CPU."""
    import subprocess

    script = Path(__file__).resolve().parent.parent / "bench" / "gpu" / "paper_table.py"
    done = subprocess.run([sys.executable, str(script), "--device", "cpu", "--sizes", "24", "--iters", "1,2",
                           "--loss-nets", "squeezenet1_1", "--ff-runs", "3", "--ff-seconds", "0", "--width", "4",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "paper_table.log" in names and any("-squeezenet1_1-" in n and n.endswith(".json") for n in names)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (times with CUDA events)")
def test_cuda_engine_timing_uses_events():
    from livestyle.engines.factory import create_engine
    from livestyle.models.transform import transform_net

    engine = create_engine(transform_net(width=4, blocks=1), backend="torch", device="cuda")
    timing = time_engine(engine, 64, BenchConfig(**{**TINY, "device": "cuda"}))
    assert timing.timer == "cuda-events" and timing.median_s > 0


def test_bench_engines_cli_writes_rows_in_the_promised_shape(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--engines", "--sizes", "24", "--runs", "3", "--width", "4",
                                       "--blocks", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(next(tmp_path.glob("engines-*.json")).read_text())
    assert isinstance(report["device"], str) and report["rows"]
    engines = {row["engine"] for row in report["rows"]}
    assert "baseline:eager-fp32" in engines and len(engines) >= 2
    for row in report["rows"]:
        assert (row["h"], row["w"]) == (24, 24) and row["ms_median"] > 0 and row["ms_p90"] >= row["ms_median"]
        assert row["precision"] in ("fp32", "fp16", "bf16")


def test_interleaved_times_take_turns_each_round():
    from livestyle.benchmarks.timing import interleaved_times, p90

    calls = []
    times = interleaved_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                              rounds=2, iters=3, warmup=1)
    assert calls == ["a", "b"] + ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3
    assert {k: len(v) for k, v in times.items()} == {"a": 6, "b": 6} and all(t >= 0 for t in times["a"])
    assert p90([5.0, 1.0, 3.0, 2.0, 4.0]) == 5.0 and p90([float(v) for v in range(11)]) == 9.0


def test_bench_cli_checks_the_out_folder_before_timing(tmp_path):
    """An --out that cannot be created (under a regular file: fails as root too) is a one-line error up front."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["bench", "--sizes", "24", "--iters", "1", "--out", str(blocker / "sub")])
    assert result.exit_code == 1 and "cannot create output folder" in result.output
    assert "gatys" not in result.output  # nothing was timed


def test_reports_that_cannot_be_written_are_an_output_error(tmp_path):
    from livestyle.files import write_json_and_markdown
    from livestyle.errors import OutputError

    (tmp_path / "r.json").mkdir()  # a folder where the report goes: the rename fails, as root too
    with pytest.raises(OutputError, match="cannot write reports into"):
        write_json_and_markdown(tmp_path, "r", {"a": 1}, "# r\n")
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="cannot create output folder"):
        write_json_and_markdown(tmp_path / "f" / "sub", "r", {}, "")


@pytest.mark.parametrize("error", [RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                                                "can't allocate memory: you tried to allocate 120000000000 bytes"),
                                   torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")])
def test_out_of_memory_while_timing_is_one_line_error(monkeypatch, error):
    import livestyle.benchmarks.paper as bench
    from livestyle.errors import InsufficientMemoryError

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(bench, "time_gatys", fail)
    with pytest.raises(InsufficientMemoryError, match="out of memory timing 24² images.*smaller --sizes"):
        run_bench(BenchConfig(sizes=(24,), iterations=(1,), backends=("torch",), device="cpu", width=2, blocks=0))


def test_other_runtime_errors_while_timing_are_not_called_memory(monkeypatch):
    import livestyle.benchmarks.paper as bench

    def fail(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(bench, "time_gatys", fail)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_bench(BenchConfig(sizes=(24,), iterations=(1,), backends=("torch",), device="cpu", width=2, blocks=0))


def test_reports_are_strict_json_even_with_an_infinite_psnr(tmp_path):
    """An exact reconstruction has PSNR = inf; Python wrote `Infinity`, which strict JSON parsers refuse."""
    import json

    from livestyle.files import write_json_and_markdown

    json_path, _ = write_json_and_markdown(tmp_path, "r", {"psnr": float("inf"), "rows": [1.5, float("nan")]}, "")

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    assert json.loads(json_path.read_text(), parse_constant=refuse) == {"psnr": None, "rows": [1.5, None]}


# --- Gatys timing: what an iteration costs, and the prediction of --extrapolate ----------------------
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CostedOptimizer:
    """Stands in for L-BFGS with a known cost on a fake clock: each step evaluates the loss once and
    costs ``evaluation`` plus ``per_pair`` for every pair in its memory, which gains one a step up to
    ``memory`` pairs (what bench/experiments/bench-extrapolate measured of torch's L-BFGS)."""

    evaluation, per_pair = 0.5, 0.01

    def __init__(self, clock: FakeClock, memory: int, keeps_pairs: bool):
        self.clock, self.memory, self.keeps_pairs, self.pairs, self.steps = clock, memory, keeps_pairs, 0, 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass

    def step(self, closure):
        loss = closure()
        self.steps += 1  # a step adds the pair of its last move (none in the first), then works over all
        self.pairs = min(self.steps - 1, self.memory) if self.keeps_pairs else 0
        self.clock.now += self.evaluation + self.per_pair * self.pairs
        return loss

    def state_dict(self) -> dict:
        return {"state": {0: {"old_dirs": [None] * self.pairs}}}  # where torch's L-BFGS keeps its pairs


@pytest.mark.parametrize("keeps_pairs", [True, False])
def test_extrapolation_adds_the_optimizer_s_growing_steps_to_the_evaluations(monkeypatch, keeps_pairs):
    """Five timed iterations scaled linearly (the old --extrapolate) miss that each L-BFGS step costs
    more as its memory fills; with an optimiser whose cost is known, the prediction is exact, also
    where the loss is so flat that L-BFGS keeps no pairs (random VGG-16 weights: its steps stay cheap)."""
    import livestyle.benchmarks.gatys_timing as gatys_timing
    import livestyle.quality.gatys as gatys
    from livestyle.quality.gatys import GatysConfig

    clock = FakeClock()
    costed = lambda image, config: CostedOptimizer(clock, config.history_size, keeps_pairs)  # noqa: E731
    monkeypatch.setattr(gatys, "make_optimizer", costed)
    # The optimiser timed alone always keeps its pairs (as torch's does on that loss).
    monkeypatch.setattr(gatys_timing, "make_optimizer",
                        lambda image, config: CostedOptimizer(clock, config.history_size, True))
    config = GatysConfig(iterations=150, history_size=40)
    setup = gatys_timing.prepare_gatys(24, loss_net="squeezenet1_1", weights=None, device=torch.device("cpu"),
                                       config=config, warmup_iterations=2, max_iterations=150, clock=clock)
    assert len(setup.step_seconds) == 41  # up to a full memory: later steps cost the same
    predicted = gatys_timing.time_gatys(setup, (10, 150), extrapolate_from=5, clock=clock)
    real = gatys_timing.time_gatys(setup, (10, 150), clock=clock)
    assert predicted.extrapolated and not real.extrapolated
    for n in (10, 150):
        cost = sum(0.5 + 0.01 * (min(pairs, 40) if keeps_pairs else 0) for pairs in range(n))
        assert real.seconds[n] == pytest.approx(cost) and predicted.seconds[n] == pytest.approx(cost)
    if keeps_pairs:  # the old model from the same 5 iterations falls far short
        linear = 150 * sum(0.5 + 0.01 * (k - 1) for k in range(2, 6)) / 4
        assert linear < 0.75 * real.seconds[150]


def test_lbfgs_evaluates_the_loss_once_an_iteration_and_its_steps_grow_with_its_memory():
    """The two facts the prediction rests on, on torch's own L-BFGS (counts, and a CPU-time ratio
    with a wide margin: a full memory of 100 pairs made steps 5× dearer in the experiment)."""
    import time

    from livestyle.benchmarks.gatys_timing import optimizer_step_seconds
    from livestyle.quality.gatys import GatysConfig, optimize_image
    from livestyle.quality.objective import ObjectiveConfig, build_objective

    objective = build_objective(ObjectiveConfig(loss_net="squeezenet1_1"), torch.rand(1, 3, 24, 24),
                                pretrained=False)
    calls = []

    class Counting:
        def __call__(self, *args):
            calls.append(1)
            return objective(*args)

        def __getattr__(self, name):
            return getattr(objective, name)

    seen = []
    optimize_image(Counting(), torch.rand(1, 3, 24, 24), GatysConfig(iterations=12),
                   on_iteration=lambda i, _loss: seen.append(len(calls)))
    assert seen == list(range(1, 13))  # one evaluation in each iteration, from the first on
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        steps = optimizer_step_seconds((1, 3, 64, 64), torch.device("cpu"), GatysConfig(), 101, clock=time.thread_time)
    finally:
        torch.set_num_threads(threads)
    assert statistics.median(steps[-10:]) > 2 * statistics.median(steps[1:11])


def test_extrapolation_comes_close_to_a_real_run():
    """The prediction from 5 timed iterations against a real 120-iteration run, both timed in this
    process in CPU time of one thread (other work on the machine then barely counts): within 35%."""
    import time

    from livestyle.benchmarks.gatys_timing import prepare_gatys, time_gatys
    from livestyle.quality.gatys import GatysConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        setup = prepare_gatys(32, loss_net="squeezenet1_1", weights=None, device=torch.device("cpu"),
                              config=GatysConfig(iterations=120), warmup_iterations=2, max_iterations=120,
                              clock=time.thread_time)
        predicted = time_gatys(setup, (120,), extrapolate_from=5, clock=time.thread_time).seconds[120]
        real = time_gatys(setup, (120,), clock=time.thread_time).seconds[120]
    finally:
        torch.set_num_threads(threads)
    assert 0.65 < predicted / real < 1.35, (predicted, real)


def test_a_long_bench_says_so_and_what_extrapolate_would_take():
    from livestyle.benchmarks.gatys_timing import GatysSetup
    from livestyle.benchmarks.paper import bench_plan

    def setup(size, evaluation):
        return GatysSetup(size, None, None, None, step_seconds=[0.01, 0.02, 0.03], evaluation_s=evaluation)

    config = BenchConfig(sizes=(256, 1024), iterations=(100, 500), feedforward_seconds=20.0)
    lines = bench_plan(config, {256: setup(256, 1.6), 1024: setup(1024, 23.0)}, engines=1)
    # 500 × 1.6 s + the optimiser's steps ≈ 815 s; 500 × 23 s + steps ≈ 11515 s; 2 × 20 s feed-forward
    assert lines[0] == ("estimated time: about 3 h 26 min (gatys, 500 iterations: 256² 14 min, 1024² 3 h 12 min; "
                        "feed-forward up to 40 s)")
    assert lines[1] == ("that is more than 10 minutes: --extrapolate times 5 Gatys iterations a size and predicts "
                        "the rest (about 3 min in all)")
    quick = bench_plan(BenchConfig(sizes=(256,), iterations=(100,), feedforward_seconds=1.0),
                       {256: setup(256, 0.5)}, engines=1)
    assert len(quick) == 1 and quick[0].startswith("estimated time: about 54 s (")


def test_bench_passes_over_a_weights_variable_meant_for_another_loss_network(tmp_path, shared_data, monkeypatch):
    """`bench` (vgg16 by default) with $LIVESTYLE_LOSSNET_WEIGHTS naming the SqueezeNet file failed
    ("does not hold vgg16 weights"); it times vgg16 with random weights now, and says why."""
    from livestyle.models import ENV_LOSSNET_WEIGHTS

    monkeypatch.setenv(ENV_LOSSNET_WEIGHTS, str(shared_data / "lossnets" / "squeezenet1_1_imagenet.safetensors"))
    with pytest.warns(UserWarning, match=r"\$LIVESTYLE_LOSSNET_WEIGHTS holds squeezenet1_1 weights"):
        result = CliRunner().invoke(main, ["bench", "--sizes", "24", "--iters", "1,2", "--width", "4", "--blocks",
                                           "1", "--runs", "3", "--max-seconds", "0", "--device", "cpu", "--out",
                                           str(tmp_path), "--name", "t"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "t.json").read_text())
    assert report["settings"]["loss_net"] == "vgg16" and "random" in report["settings"]["loss_net_weights"]
    lines = result.stderr.splitlines()
    assert lines[0] == "livestyle: timing vgg16 with random weights (times do not depend on weights)"
    assert any(line.startswith("estimated time: about ") for line in lines[1:3])  # after a note on a busy CPU
