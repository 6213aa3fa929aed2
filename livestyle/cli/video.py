"""`livestyle video`: a whole video file through a style or SR model, sound and timestamps kept."""
from __future__ import annotations

import signal

import click

from livestyle.cli.options import (announce_engine, engine_for, engine_precision, first_frame_size, inference_size,
                                   style_variant, video_options)


def frames(count: int) -> str:
    """'1 frame', '2 frames'."""
    return f"{count} frame{'' if count == 1 else 's'}"


@click.command("video")
@click.argument("input_path", metavar="IN", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output video (.mp4, .mkv, .mov, .webm), or a folder for PNG frames (a name without extension, "
                   "or ending in /).")
@video_options
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show progress: a bar on a terminal, else (a log, nohup) a status line every 10 s.")
def command(input_path, output, style, model_file, superres, variant, device, precision, fp16, backend, compile_net,
            infer_scale, upsample, memory_budget, size, scale, strength, preserve_colors, tile, stabilize, batch, crf,
            preset, no_audio, progress):
    """Stylise or upscale a video (or a folder of images); sound, timestamps and rotation kept.

    The output is written under a temporary name and renamed when done. On Ctrl-C the frames
    finished so far are kept, playable, as OUT's name with `.partial` before the extension.
    """
    from livestyle.io.progress import Progress
    from livestyle.io.sources import open_video_source
    from livestyle.pipeline.jobs import (FrameEffects, VideoEncoding, VideoJob, check_video_output,
                                         default_frame_batch)
    from livestyle.zoo.choice import choose_model

    precision = engine_precision(precision, fp16, device)
    check_video_output(input_path, output)  # before the model loads: a bad output fails at once
    resize = inference_size(size, scale)
    choice = choose_model(style=style, model_file=model_file, superres=superres,
                          variant=style_variant(variant, device))
    engine = engine_for(choice, backend=backend, device=device, precision=precision, tile=tile, infer_scale=infer_scale,
                        upsample=upsample, compile_net=compile_net, memory_budget=memory_budget)
    first = first_frame_size(open_video_source(input_path, size=resize))
    if first is not None:  # choose the engine (the CPU's auto times them) and say which runs, before the frames
        announce_engine(engine, choice.name, (batch or default_frame_batch(engine), 3, *first))
    job = VideoJob(engine, input_path, output, size=resize, batch=batch,
                   effects=FrameEffects(strength, preserve_colors, stabilize),
                   encoding=VideoEncoding(crf, preset, audio=not no_audio))
    with Progress(job.frames_expected, desc=choice.name, unit="frame", enabled=progress) as bar:
        result = job.run(lambda stats: bar.update_to(stats.frames_out))
    if result.warning:
        click.echo(f"livestyle: warning: {input_path}: {result.warning}", err=True)
    click.echo(f"{choice.name} ({engine.name}): {result.stats.summary()}", err=True)
    if result.status == "interrupted":
        if not result.frames:
            kept = "nothing was written"
        elif job.to_folder:
            kept = f"{frames(result.frames)} in {output}"
        else:
            kept = f"the playable part is in {result.final_path}"
        how = signal.Signals(result.stop_signal or signal.SIGINT)
        said = "interrupted" if how == signal.SIGINT else f"stopped by {how.name}"
        click.echo(f"livestyle: {said} after {frames(result.stats.frames_out)}; {kept}", err=True)
        raise SystemExit(128 + how)  # said once, here (a KeyboardInterrupt would add a second line)
    audio_note = f", audio {result.audio}" if result.audio else ""
    click.echo(f"{input_path} → {result.final_path}{audio_note}", err=True)
