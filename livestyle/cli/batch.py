"""`livestyle batch`: many videos and images, each one task on a Ray cluster (a local one by default)."""
from __future__ import annotations

import click

from livestyle.cli.options import engine_precision, engine_progress, inference_size, style_variant, video_options

STATUS_WIDTH = 9


@click.command("batch")
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False),
              help="Folder for the outputs (created): each keeps its input's path relative to the folder or glob "
                   "it was found by (a named file: its name).")
@video_options
@click.option("--address", default=None, metavar="auto|HOST:PORT",
              help="Join a running Ray cluster (`ray start --head` on one machine, `ray start --address HOST:PORT` "
                   "on the others); default: start a local Ray on this machine.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes, each holding one engine (default: as many as the CPUs (GPUs) allow at "
                   "--cpus-per-task (--gpus-per-task)).")
@click.option("--cpus-per-task", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="CPUs each worker reserves (its torch threads: the whole number of them).")
@click.option("--gpus-per-task", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="GPUs each worker reserves (e.g. 1, or 0.5 for two workers a GPU); >0 runs on CUDA.")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Times a task is retried after its worker process dies or it fails unexpectedly (a damaged "
                   "input is reported, not retried).")
@click.option("--split-seconds", type=click.FloatRange(min=0.0, min_open=True), default=None, metavar="S",
              help="Cut videos longer than S seconds at keyframes into parts of about S seconds, done in parallel "
                   "and joined in order (sound copied once, timestamps kept).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show progress over files and frames: a bar on a terminal, else a status line every 10 s.")
def command(inputs, outdir, style, model_file, superres, variant, device, precision, fp16, backend, compile_net,
            infer_scale, upsample, memory_budget, size, scale, strength, preserve_colors, tile, stabilize, batch, crf,
            preset, no_audio, address, workers, cpus_per_task, gpus_per_task, retries, split_seconds, progress):
    """Stylise or upscale many videos and images: INPUT is files, folders or globs.

    Each file runs as `livestyle video` or `livestyle image` would run it, as one task of a Ray cluster
    (by default a local one on this machine), and its output goes under OUTDIR with the input's
    relative path, written atomically. A rerun skips outputs already complete (the manifest in OUTDIR
    records each input's size, mtime and sha256, the model's sha256 and the options); a changed input
    or model is redone. --size/--scale resize video frames, as in `video`; stills run at their own
    size, as in `image`. On the CPU, --backend auto is settled once, here, for the first input's frame
    size, and every worker runs that backend and precision.
    """
    from livestyle.cluster.runner import import_ray

    import_ray()  # without Ray: one line saying how to install it, before any work
    from livestyle.cluster.inputs import find_inputs
    from livestyle.cluster.manifest import Manifest
    from livestyle.cluster.plan import (EngineSettings, JobSettings, first_frame_size, model_payload, plan_file,
                                        settle_cpu_engine)
    from livestyle.cluster.runner import BatchResult, ClusterOptions, run_batch
    from livestyle.engines.device import resolve_device
    from livestyle.files import check_output_folder, check_output_path
    from livestyle.pipeline.jobs import FrameEffects, VideoEncoding
    from livestyle.zoo.choice import choose_model

    target = "cuda" if gpus_per_task > 0 else device
    precision = engine_precision(precision, fp16, target)
    folder = check_output_folder(outdir)
    items = find_inputs(list(inputs), folder)
    resize = inference_size(size, scale)
    choice = choose_model(style=style, model_file=model_file, superres=superres, variant=style_variant(variant, target))
    payload = model_payload(choice)
    settings = JobSettings(EngineSettings(backend, device, precision, tile, infer_scale, upsample, compile_net,
                                          memory_budget),
                           FrameEffects(strength, preserve_colors, stabilize), VideoEncoding(crf, preset, not no_audio),
                           resize, batch)
    if gpus_per_task == 0 and resolve_device(device).type == "cpu":
        first = first_frame_size(items, resize)
        if first is not None:
            shape = (batch or 1, 3, *first)  # 1: the CPU's frames per call, as in `video`
            settings = settle_cpu_engine(choice, settings, shape, progress=engine_progress)
    engine = settings.engine
    where = "CUDA" if gpus_per_task > 0 else resolve_device(device).type.upper()
    click.echo(f"livestyle: {choice.name} on {engine.backend}/{engine.precision} ({where}), {len(items)} file(s)",
               err=True)
    manifest = Manifest(folder)
    options = settings.to_dict()
    plans, skipped = [], []
    for item in items:
        if manifest.is_done(item, payload.sha256, options):
            skipped.append(item)
            continue
        output = folder / item.output_relative
        output.parent.mkdir(parents=True, exist_ok=True)
        check_output_path(output, item.path)
        plans.append(plan_file(item, folder, settings, split_seconds))
    cluster = ClusterOptions(address, workers, cpus_per_task, gpus_per_task, retries)
    if plans:
        result = run_batch(plans, manifest, payload, settings, cluster, progress=progress,
                           say=lambda text: click.echo(f"livestyle: {text}", err=True))
    else:
        result = BatchResult([], 0.0, 0)
    _print_summary(result, skipped, manifest)
    if result.interrupted:
        raise SystemExit(130)
    if result.failed:
        click.echo(f"livestyle: error: {len(result.failed)} of {len(items)} file(s) failed", err=True)
        raise SystemExit(1)


def _print_summary(result, skipped, manifest) -> None:
    """The table of files: status, frames, fps, worker, and the error or warning (one line each)."""
    from livestyle.cluster.manifest import FileOutcome

    rows = list(result.files)
    for item in skipped:  # as the manifest says they were done
        record = manifest.records[item.output_relative.as_posix()]
        rows.append(FileOutcome(str(item.path), record.output, "skipped", record.frames, record.fps, 0.0,
                                record.worker))
    width = min(48, max(len(r.output) for r in rows)) if rows else 4
    click.echo(f"{'file':<{width}}  {'status':<{STATUS_WIDTH}} {'frames':>7} {'fps':>8}  worker")
    for row in rows:
        note = row.error or row.warning
        fps = f"{row.fps:.1f}" if row.fps else "-"
        click.echo(f"{row.output:<{width}}  {row.status:<{STATUS_WIDTH}} {row.frames:>7} {fps:>8}  {row.worker or '-'}"
                   + (f"  {note}" if note else ""))
    done = sum(r.status == "done" for r in rows)
    frames = sum(r.frames for r in result.files)  # this run's
    rate = f", {frames / result.seconds:.1f} frames/s" if result.seconds and frames else ""
    click.echo(f"{done} done, {len(skipped)} skipped (done before), {len(result.failed)} failed"
               f"{', interrupted' if result.interrupted else ''}; {result.workers} worker(s), "
               f"{result.seconds:.1f} s{rate}", err=True)
