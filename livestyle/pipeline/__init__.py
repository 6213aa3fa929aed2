"""Frames through engines: the threaded capture → infer → output pipeline, and still images.

- ``queues``: FIFOs and one-slot mailboxes between stages; ``stats``: what a run measured.
- ``infer``: the inference stage (engine, post-process hooks, CUDA transfers).
- ``governor``: the frame-rate governor of live sources (the inference scale, in steps).
- ``runner``: the ``Pipeline`` (threads, one stop event, signals, errors).
- ``still``: one image through an engine.
- ``jobs``: one file (or part of a video) through an engine, as `video`, `image` and each task of
  `batch` run it: ``VideoJob``, ``run_image``.

May import: ``livestyle.engines`` (the interface), ``livestyle.io``, ``livestyle.models.convention``,
``livestyle.postprocess`` (the per-frame effects),
``livestyle.io.progress`` (rates in words), ``livestyle.errors``.
"""
