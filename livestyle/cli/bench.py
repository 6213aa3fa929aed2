"""`livestyle bench paper|engines`: the paper's Gatys-vs-feed-forward table, or every engine's latency."""
from __future__ import annotations

import os

import click

from livestyle.cli.options import (check_out_folder, compose, device_option, engine_precision, image_sizes, int_list,
                                   loss_net_options, name_list, optimizer_option, precision_options, report_options)
from livestyle.engines import BACKENDS
from livestyle.models import ENV_LOSSNET_WEIGHTS

OLD_ENGINES_FLAG = "--engines"  # before `bench engines` was a subcommand


class BenchGroup(click.Group):
    """`bench` without a subcommand runs `bench paper`, and `bench --engines …` runs `bench engines …`,
    so the spellings from before the subcommands keep working."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if OLD_ENGINES_FLAG in args:
            args = ["engines"] + [a for a in args if a != OLD_ENGINES_FLAG]
        elif not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["paper", *args]
        return super().parse_args(ctx, args)


network_options = compose(
    click.option("--width", type=click.IntRange(min=1), default=32, show_default=True, help="Transform net width."),
    click.option("--blocks", type=click.IntRange(min=0), default=5, show_default=True,
                 help="Transform net residual blocks."),
)
runs_option = click.option("--runs", type=click.IntRange(min=3), default=30, show_default=True,
                           help="Feed-forward runs per size and engine (at most; fewer if --max-seconds runs out, "
                                "never < 3).")


@click.group("bench", cls=BenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """Timing tables on this machine: `bench paper` (the default) or `bench engines`.

    `livestyle bench [OPTIONS]` runs `bench paper`; `livestyle bench --engines [OPTIONS]` (the
    spelling from before the subcommands) runs `bench engines`.
    """


@command.command("paper")
@click.option("--sizes", default="256,512,1024", show_default=True, callback=image_sizes,
              help="Square image sizes (pixels per side), comma-separated.")
@click.option("--iters", "iterations", default="100,300,500", show_default=True, callback=int_list,
              help="Gatys iteration counts, comma-separated.")
@click.option("--backend", "backends", default="torch", show_default=True, callback=name_list,
              help=f"Feed-forward engine backend(s), comma-separated ({', '.join(BACKENDS)}).")
@device_option
@precision_options
@loss_net_options("vgg16", "Loss network of the Gatys baseline (vgg16 is the paper's, so times compare with its "
                  "table); without weights, random ones are timed (timing does not depend on them).")
@optimizer_option("Gatys: ")
@click.option("--extrapolate", is_flag=True,
              help="Time a few Gatys iterations and predict the rest from them and the optimiser's own steps "
                   "(for slow machines); marked in every output.")
@click.option("--extrapolate-iters", type=click.IntRange(min=2), default=5, show_default=True,
              help="Gatys iterations timed for --extrapolate.")
@runs_option
@click.option("--max-seconds", type=click.FloatRange(min=0), default=20.0, show_default=True,
              help="Time budget for the feed-forward runs of one engine at one size.")
@network_options
@report_options("bench/results", "File name stem of the reports (default: machine and date).")
def paper(sizes, iterations, backends, device, precision, fp16, loss_net, loss_net_weights, optimizer, extrapolate,
          extrapolate_iters, runs, max_seconds, width, blocks, out_dir, stem):
    """Gatys (L-BFGS) vs feed-forward time per image size, beside the paper's Table 1.

    Every size is warmed up first and the whole run's time estimated (with what --extrapolate would
    take where it passes 10 minutes); each run shows its progress.
    """
    from livestyle.benchmarks.paper import BenchConfig, run_bench
    from livestyle.benchmarks.paper_report import table_markdown, write_reports
    from livestyle.errors import BackendUnavailableError
    from livestyle.models.lossnets import environment_weights

    check_out_folder(out_dir)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise BackendUnavailableError(f"unknown backend(s) {', '.join(unknown) or '(none)'}; known: {', '.join(BACKENDS)}")
    weights = loss_net_weights or environment_weights(loss_net)
    if weights is None and os.environ.get(ENV_LOSSNET_WEIGHTS):  # passed over, with a warning: say what instead
        click.echo(f"livestyle: timing {loss_net} with random weights (times do not depend on weights)", err=True)
    config = BenchConfig(
        sizes=sizes, iterations=iterations, backends=backends, device=device,
        precision=engine_precision(precision, fp16, device), loss_net=loss_net,
        loss_net_weights=weights, optimizer=optimizer,
        extrapolate=extrapolate, extrapolate_iterations=extrapolate_iters, feedforward_runs=runs,
        feedforward_seconds=max_seconds, width=width, blocks=blocks,
    )
    report = run_bench(config, progress=lambda msg: click.echo(msg, err=True), show_bars=True).to_dict()
    paths = write_reports(report, out_dir, stem)
    click.echo(table_markdown(report))
    click.echo("wrote " + ", ".join(str(p) for p in paths), err=True)


@command.command("engines")
@click.option("--sizes", default=None, callback=lambda ctx, param, value: value and image_sizes(ctx, param, value),
              help="Square input sizes, comma-separated (default: 256², 512², 1024² and 1920×1080).")
@device_option
@runs_option
@click.option("--extra", is_flag=True,
              help="Also the engines that are slow to prepare (torch.compile, one compile per size, cached) or "
                   "rarely fastest.")
@network_options
@report_options("bench/results", "File name stem of the reports (default: engines-<device>).")
def engines(sizes, device, runs, extra, width, blocks, out_dir, stem):
    """Every available engine against the plain-PyTorch baselines; writes engines-<device>.json/.md."""
    from livestyle.benchmarks.engine_table import STYLE_SIZES, benchmark_engines, benchmark_markdown, write_benchmark
    from livestyle.models.transform import transform_net

    check_out_folder(out_dir)
    result = benchmark_engines(transform_net(width=width, blocks=blocks),
                               sizes=[(s, s) for s in sizes] if sizes else STYLE_SIZES,
                               device=device, iters=runs, extra=extra,
                               progress=lambda msg: click.echo(msg, err=True))
    paths = write_benchmark(result, out_dir, stem=stem)
    click.echo(benchmark_markdown(result))
    click.echo("wrote " + ", ".join(str(p) for p in paths), err=True)
