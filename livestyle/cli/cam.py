"""`livestyle cam`: live style transfer from a camera, stream or file, in a window or headless."""
from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import click

from livestyle.cli.options import (announce_engine, effect_options, engine_options, engine_precision, engine_progress,
                                   first_frame_size, inference_size, inference_size_options, model_options,
                                   say_when_compiling, stabilize_option, style_variant)


@dataclass
class StyleCycle:
    """The models `cam` can switch between live, in order; ``step(±1)`` loads one and swaps the engine.

    ``choices`` are keyword sets for ``choose_model`` (a --model file first, then the catalog's
    styles); ``make_engine(choice)`` builds an engine for a ModelChoice; ``on_switch(old, new)`` hooks run just before
    the swap (a cross-fade can start there).
    """

    choices: list[dict]
    index: int
    make_engine: Callable
    set_engine: Callable
    name: str = ""
    on_switch: list[Callable] = field(default_factory=list)

    def step(self, delta: int) -> str:
        """Switch to the next (+1) or previous (−1) model; returns its name. One model: nothing changes."""
        from livestyle.zoo.choice import choose_model

        if len(self.choices) < 2:
            return self.name
        index = (self.index + delta) % len(self.choices)
        choice = choose_model(**self.choices[index])
        engine = self.make_engine(choice)
        for hook in self.on_switch:
            hook(self.name, choice.name)
        self.set_engine(engine)
        self.index, self.name = index, choice.name
        return self.name


def style_choices(chosen: str, model_file: str | None, superres: int | str | None, task: str,
                  variant: str = "full") -> tuple[list[dict], int]:
    """The switchable models and the index of ``chosen`` (the catalog name of the style running).

    Catalog styles are switchable, one model per style (its ``variant``), each followed by the ×N SR
    model in a chain; a --model style file comes first. A lone SR model has nothing to switch to.
    """
    from livestyle.zoo.catalog import Catalog

    if task == "superres":
        return [{"model_file": model_file} if model_file else {"superres": superres, "variant": variant}], 0
    chain = {"superres": superres, "variant": variant} if superres else {}
    names = Catalog().style_names(variant)
    choices = [{"style": name, **chain} for name in names]
    if model_file is not None:
        return [{"model_file": model_file, **chain}] + choices, 0
    return choices or [{"style": chosen, **chain}], names.index(chosen) if chosen in names else 0


@click.command("cam")
@click.option("--source", default="0", show_default=True, help="Camera index, video file or stream URL.")
@model_options
@engine_options
@inference_size_options
@effect_options
@stabilize_option
@click.option("--no-window", is_flag=True, help="Run headless (e.g. only --record).")
@click.option("--record", type=click.Path(dir_okay=False), default=None,
              help="Record the stylised frames (at the inference size and capture timing) to a video file.")
@click.option("--snapshot-dir", type=click.Path(exists=True, file_okay=False, writable=True), default=".",
              show_default=True, help="Where the snapshot key saves PNGs.")
@click.option("--loop", is_flag=True, help="Replay a file source from the start when it ends.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds.")
@click.option("--list-devices", is_flag=True, help="List the cameras found and exit.")
@click.option("--no-adapt", is_flag=True,
              help="Keep the full inference scale: no frame-rate governor (a fixed --infer-scale also turns it off). "
                   "By default the style network's scale steps down to hold the source's frame rate (at most 30 "
                   "fps) and back up when the machine has room again.")
def command(source, style, model_file, superres, variant, device, precision, fp16, backend, compile_net, infer_scale,
            upsample, memory_budget, size, scale, strength, preserve_colors, tile, stabilize, no_window, record,
            snapshot_dir, loop, duration, list_devices, no_adapt):
    """Live style transfer from a camera (default 0), a stream URL or a video file.

    Keys: n / p next / previous style (cross-faded), [ / ] weaker / stronger style, c keep colours,
    b side-by-side, o overlay, s snapshot, q or Esc quit.
    """
    from livestyle.engines.factory import build_engine
    from livestyle.errors import LivestyleError
    from livestyle.io.sinks import NullSink, VideoFileSink
    from livestyle.io.sources import CameraSource, list_cameras
    from livestyle.pipeline.infer import InferStage
    from livestyle.pipeline.runner import Pipeline
    from livestyle.postprocess.effects import frame_postprocessors
    from livestyle.zoo.choice import choose_model

    if list_devices:
        cameras = list_cameras()
        if not cameras:
            click.echo("no cameras found")
        for cam in cameras:
            click.echo(f"{cam.index}: {cam.name} ({cam.width}×{cam.height}, {cam.fps:g} fps)")
        return
    precision = engine_precision(precision, fp16, device)
    variant = style_variant(variant, device)
    choice = choose_model(style=style, model_file=model_file, superres=superres, variant=variant)
    # The governor scales the style network: not with a fixed --infer-scale, --tile or a lone SR model.
    fixed_scale = click.get_current_context().get_parameter_source("infer_scale") is not \
        click.core.ParameterSource.DEFAULT
    adapt = not (no_adapt or fixed_scale or tile or choice.task == "superres")

    def make_engine(c):
        return build_engine(c, backend=backend, device=device, precision=precision, tile=tile,
                            infer_scale=infer_scale, upsample=upsample, compile=compile_net,
                            memory_budget=memory_budget, variable_scale=adapt, progress=engine_progress)

    hooks, effects = frame_postprocessors(strength=strength, preserve_colors=preserve_colors, stabilize=stabilize, live=True)
    infer = InferStage(make_engine(choice), postprocess=hooks)
    say_when_compiling(compile_net)
    choices, index = style_choices(choice.name, model_file, superres, choice.task, variant)
    styles = StyleCycle(choices, index, make_engine, infer.set_engine, name=choice.name,
                        on_switch=[lambda old, new: effects.switch_style()])
    window = None
    if not no_window:
        from livestyle.io.window import KeyAction, WindowSink

        def switch(step: int) -> None:
            try:
                styles.step(step)
            except LivestyleError as exc:  # a broken catalog entry must not end the session
                click.echo(f"livestyle: warning: cannot switch style: {exc}", err=True)

        window = WindowSink(f"livestyle — {choice.name}", snapshot_dir=snapshot_dir,
                            key_actions={"n": KeyAction("next", lambda: switch(+1)),
                                         "p": KeyAction("prev", lambda: switch(-1)),
                                         "[": KeyAction("weaker", lambda: effects.adjust_strength(-0.1)),
                                         "]": KeyAction("stronger", lambda: effects.adjust_strength(+0.1)),
                                         "c": KeyAction("colours", lambda: setattr(
                                             effects, "preserve_colors", not effects.preserve_colors))},
                            label=lambda: f"{styles.name} {effects.strength:.0%}"
                                          f"{' colours kept' if effects.preserve_colors else ''} [{infer.engine.name}]"
                                          + (f" scale {infer.governor.scale:.0%}" if infer.governor else ""))
    first = first_frame_size(CameraSource(source, size=inference_size(size, scale)))
    if first is not None:  # choose the engine (the CPU's auto times them) and say which runs, before the frames
        announce_engine(infer.engine, choice.name, (1, 3, *first))
    capture = CameraSource(source, size=inference_size(size, scale), loop=loop)
    if adapt:
        from livestyle.pipeline.governor import FrameRateGovernor

        infer.set_governor(FrameRateGovernor(float(capture.rate)))
    sinks = [window] if window is not None else []
    try:
        if record:
            inputs = (source,) if capture.is_file else ()
            sinks.append(VideoFileSink(record, rate=capture.rate, partial_on_interrupt=False, inputs=inputs))
    except BaseException:
        capture.close()
        raise
    pipeline = Pipeline(capture, infer, sinks or [NullSink()])
    if window is not None:
        window.stats = pipeline.stats
    started = time.perf_counter()

    def stop_after_duration(stats):
        if duration is not None and time.perf_counter() - started >= duration:
            pipeline.stop.set()

    result = pipeline.run(stop_after_duration)
    click.echo(f"{styles.name} ({infer.engine.name}): {result.stats.summary()}", err=True)
    if infer.governor is not None:
        click.echo(f"livestyle: {infer.governor.summary()}", err=True)
    if record and sinks[-1].final_path is not None:
        click.echo(f"recorded {sinks[-1].frames_written} frames to {sinks[-1].final_path}", err=True)
    if result.status == "interrupted":
        if pipeline.stop_signal not in (None, signal.SIGINT):
            click.echo(f"livestyle: stopped by {signal.Signals(pipeline.stop_signal).name}", err=True)
            raise SystemExit(128 + pipeline.stop_signal)
        raise KeyboardInterrupt
