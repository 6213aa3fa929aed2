"""Benchmarks: one timer, one p90, one machine description, and the two tables built on them.

- ``timing``: milliseconds per call (CUDA events on a GPU), the p90, interleaved candidates.
- ``machine``: the machine a run was on (CPU model, GPU, driver, libraries).
- ``paper`` + ``paper_report``: the paper's Table 1, Gatys vs one feed-forward pass, per image size.
- ``engine_table``: every engine beside the plain-PyTorch baselines (``livestyle bench engines``).

May import: ``livestyle.engines``, ``livestyle.quality``, ``livestyle.models``, ``livestyle.files``,
``livestyle.io.progress``, ``livestyle.errors``.
"""
