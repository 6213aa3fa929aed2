"""`livestyle video`: a whole video file through a style or SR model, sound and timestamps kept."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import click

from livestyle.cli.options import (announce_engine, effect_options, engine_for, engine_options, engine_precision,
                                   first_frame_size, inference_size, inference_size_options, model_options,
                                   stabilize_option, style_variant)

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")


def frames(count: int) -> str:
    """'1 frame', '2 frames'."""
    return f"{count} frame{'' if count == 1 else 's'}"


@click.command("video")
@click.argument("input_path", metavar="IN", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output video (.mp4, .mkv, .mov, .webm), or a folder for PNG frames (a name without extension, "
                   "or ending in /).")
@model_options
@engine_options
@inference_size_options
@effect_options
@stabilize_option
@click.option("--batch", type=click.IntRange(1, 64), default=None,
              help="Frames per engine call (default: 4 on CUDA, 1 on the CPU).")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True, help="H.264 quality (lower is better).")
@click.option("--preset", type=click.Choice(X264_PRESETS), default="veryfast", show_default=True,
              help="x264 speed preset.")
@click.option("--no-audio", is_flag=True, help="Leave the sound out.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show progress: a bar on a terminal, else (a log, nohup) a status line every 10 s.")
def command(input_path, output, style, model_file, superres, variant, device, precision, fp16, backend, compile_net,
            infer_scale, upsample, memory_budget, size, scale, strength, preserve_colors, tile, stabilize, batch, crf,
            preset, no_audio, progress):
    """Stylise or upscale a video (or a folder of images); sound, timestamps and rotation kept.

    The output is written under a temporary name and renamed when done. On Ctrl-C the frames
    finished so far are kept, playable, as OUT's name with `.partial` before the extension.
    """
    from livestyle.errors import InputError
    from livestyle.files import check_output_path
    from livestyle.io.sinks import ImageFolderSink, VideoFileSink
    from livestyle.io.sources import open_video_source
    from livestyle.pipeline.infer import InferStage
    from livestyle.pipeline.runner import Pipeline
    from livestyle.postprocess.effects import frame_postprocessors
    from livestyle.io.progress import Progress
    from livestyle.zoo.choice import choose_model

    precision = engine_precision(precision, fp16, device)
    # A folder of PNG frames: a name without extension, an existing folder, or one ending in "/".
    to_folder = Path(output).suffix == "" or Path(output).is_dir() or output.endswith(("/", os.sep))
    if not to_folder:
        check_output_path(output, input_path)
    elif Path(input_path).exists() and Path(output).resolve() == Path(input_path).resolve():
        raise InputError("the output folder is the input; choose another name (inputs are never overwritten)")
    resize = inference_size(size, scale)
    choice = choose_model(style=style, model_file=model_file, superres=superres,
                          variant=style_variant(variant, device))
    engine = engine_for(choice, backend=backend, device=device, precision=precision, tile=tile, infer_scale=infer_scale,
                        upsample=upsample, compile_net=compile_net, memory_budget=memory_budget)
    first = first_frame_size(open_video_source(input_path, size=resize))
    if first is not None:  # choose the engine (the CPU's auto times them) and say which runs, before the frames
        announce_engine(engine, choice.name, (batch or (4 if engine.device.type == "cuda" else 1), 3, *first))
    source = open_video_source(input_path, size=resize)
    try:
        if batch is None:
            batch = 4 if engine.device.type == "cuda" else 1
        if to_folder:
            sink = ImageFolderSink(output)
        else:
            audio = None if no_audio else getattr(source, "audio_stream_index", None)
            sink = VideoFileSink(output, rate=source.rate, audio_from=input_path if audio is not None else None,
                                 audio_stream=audio, crf=crf, preset=preset, inputs=(input_path,))
    except BaseException:
        source.close()
        raise
    hooks, _ = frame_postprocessors(strength=strength, preserve_colors=preserve_colors, stabilize=stabilize)
    pipeline = Pipeline(source, InferStage(engine, postprocess=hooks, batch_size=batch), [sink])
    with Progress(source.frames_expected, desc=choice.name, unit="frame", enabled=progress) as bar:
        result = pipeline.run(lambda stats: bar.update_to(stats.frames_out))
    report = source.report
    if result.status == "complete":  # a stopped run has not read the whole input: nothing to judge
        if result.stats.frames_out == 0:
            raise InputError(f"no frame of {input_path} could be decoded"
                             + (f" ({report.describe()})" if report.damaged else ""))
        if report.damaged:
            click.echo(f"livestyle: warning: {input_path}: {report.describe()}", err=True)
    click.echo(f"{choice.name} ({engine.name}): {result.stats.summary()}", err=True)
    if result.status == "interrupted":
        if not sink.frames_written:
            kept = "nothing was written"
        elif to_folder:
            kept = f"{frames(sink.frames_written)} in {output}"
        else:
            kept = f"the playable part is in {sink.final_path}"
        how = signal.Signals(pipeline.stop_signal or signal.SIGINT)
        said = "interrupted" if how == signal.SIGINT else f"stopped by {how.name}"
        click.echo(f"livestyle: {said} after {frames(result.stats.frames_out)}; {kept}", err=True)
        raise SystemExit(128 + how)  # said once, here (a KeyboardInterrupt would add a second line)
    audio_note = ""
    carrier = getattr(sink, "audio", None)
    if carrier is not None:
        audio_note = f", audio {'copied' if carrier.copied else 're-encoded as ' + carrier.codec_name}"
    click.echo(f"{input_path} → {sink.final_path}{audio_note}", err=True)
