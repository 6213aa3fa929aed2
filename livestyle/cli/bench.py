"""`livestyle bench`: the paper's Gatys-vs-feed-forward timing table on this machine."""
from __future__ import annotations

import os

import click

from ..models.lossnets import ENV_WEIGHTS, LOSS_NETWORKS, WEIGHTS_OPTION


def int_list(ctx, param, value: str) -> tuple[int, ...]:
    """"256,512,1024" → (256, 512, 1024); anything else is a usage error."""
    try:
        numbers = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", ctx, param) from None
    if not numbers or min(numbers) < 1:
        raise click.BadParameter(f"expected positive integers, got {value!r}", ctx, param)
    return numbers


def image_sizes(ctx, param, value: str) -> tuple[int, ...]:
    """Like int_list, each a side length from 16 to the export's largest (8192) pixels."""
    from ..export import MAX_SIDE

    sizes = int_list(ctx, param, value)
    if min(sizes) < 16 or max(sizes) > MAX_SIDE:
        raise click.BadParameter(f"sizes must be from 16 to {MAX_SIDE} pixels, got {value!r}", ctx, param)
    return sizes


def name_list(ctx, param, value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def report_name(ctx, param, value: str | None) -> str | None:
    """A report file stem: a plain name, so the reports stay inside --out (no folders, no "..")."""
    if value is not None and (not value.strip() or value in (".", "..") or any(sep in value for sep in "/\\")):
        raise click.BadParameter(f"expected a plain file name (no folders), got {value!r}", ctx, param)
    return value


@click.command("bench")
@click.option("--sizes", default="256,512,1024", show_default=True, callback=image_sizes,
              help="Square image sizes (pixels per side), comma-separated.")
@click.option("--iters", "iterations", default="100,300,500", show_default=True, callback=int_list,
              help="Gatys iteration counts, comma-separated.")
@click.option("--backend", "backends", default="torch", show_default=True, callback=name_list,
              help="Feed-forward engine backend(s), comma-separated (auto, torch, onnx, tensorrt).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--fp16", is_flag=True, help="Half-precision feed-forward engines: FP16 on CUDA, BF16 with torch on CPUs "
              "with AVX512-BF16 or AMX.")
@click.option("--loss-net", type=click.Choice(list(LOSS_NETWORKS)), default="vgg16", show_default=True,
              help="Loss network of the Gatys baseline (vgg16 is the paper's, so times compare with its table).")
@click.option(WEIGHTS_OPTION, "loss_net_weights", type=click.Path(dir_okay=False), default=None,
              help=f"Loss-network weights (else ${ENV_WEIGHTS}); without them random weights are timed "
                   "(timing does not depend on weights; the report says so).")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True)
@click.option("--extrapolate", is_flag=True,
              help="Time a few Gatys iterations and scale (for slow machines); marked in every output.")
@click.option("--extrapolate-iters", type=click.IntRange(min=1), default=5, show_default=True,
              help="Gatys iterations timed for --extrapolate.")
@click.option("--runs", type=click.IntRange(min=3), default=30, show_default=True,
              help="Feed-forward runs per size (at most; fewer if --max-seconds runs out, never < 3).")
@click.option("--max-seconds", type=click.FloatRange(min=0), default=20.0, show_default=True,
              help="Time budget for the feed-forward runs of one engine at one size.")
@click.option("--width", type=click.IntRange(min=1), default=32, show_default=True, help="Transform net width.")
@click.option("--blocks", type=click.IntRange(min=0), default=5, show_default=True,
              help="Transform net residual blocks.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="bench/results", show_default=True,
              help="Folder for the JSON, Markdown and PNG reports.")
@click.option("--name", "stem", default=None, callback=report_name,
              help="File name stem of the reports (default: machine and date).")
@click.option("--engines", is_flag=True,
              help="Instead of the Gatys table: every available engine against the plain-PyTorch baselines "
                   "(256², 512², 1024², 1920×1080 unless --sizes is given); writes engines-<device>.json/.md.")
@click.option("--extra", is_flag=True,
              help="With --engines: also the engines that are slow to prepare (torch.compile, one compile per "
                   "size, cached) or rarely fastest.")
@click.pass_context
def command(ctx, sizes, iterations, backends, device, fp16, loss_net, loss_net_weights, optimizer, extrapolate,
            extrapolate_iters, runs, max_seconds, width, blocks, out_dir, stem, engines, extra):
    """Gatys (L-BFGS) vs feed-forward time per image size, beside the paper's Table 1 (or --engines)."""
    from .._files import check_output_folder

    if extra and not engines:
        raise click.UsageError("--extra goes with --engines")
    check_output_folder(out_dir)  # now, not after minutes of timing
    if engines:
        from ..engines.benchmark import STYLE_SIZES, benchmark_engines, benchmark_markdown, write_benchmark
        from ..models import transform_net

        explicit = ctx.get_parameter_source("sizes") is not click.core.ParameterSource.DEFAULT
        result = benchmark_engines(transform_net(width=width, blocks=blocks),
                                   sizes=[(s, s) for s in sizes] if explicit else STYLE_SIZES,
                                   device=device, iters=runs, extra=extra,
                                   progress=lambda msg: click.echo(msg, err=True))
        paths = write_benchmark(result, out_dir, stem=stem)
        click.echo(benchmark_markdown(result))
        click.echo("wrote " + ", ".join(str(p) for p in paths), err=True)
        return
    from ..bench import BenchConfig, run_bench, table_markdown, write_reports
    from ..engines import BACKENDS
    from ..errors import BackendUnavailableError

    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise BackendUnavailableError(f"unknown backend(s) {', '.join(unknown) or '(none)'}; known: {', '.join(BACKENDS)}")
    config = BenchConfig(
        sizes=sizes, iterations=iterations, backends=backends, device=device, fp16=fp16, loss_net=loss_net,
        loss_net_weights=loss_net_weights or os.environ.get(ENV_WEIGHTS) or None, optimizer=optimizer,
        extrapolate=extrapolate, extrapolate_iterations=extrapolate_iters, feedforward_runs=runs,
        feedforward_seconds=max_seconds, width=width, blocks=blocks,
    )
    # Room for other engine sets (e.g. `--engines`): pass engine_factories= to run_bench.
    report = run_bench(config, progress=lambda msg: click.echo(msg, err=True)).to_dict()
    paths = write_reports(report, out_dir, stem)
    click.echo(table_markdown(report))
    click.echo("wrote " + ", ".join(str(p) for p in paths), err=True)
