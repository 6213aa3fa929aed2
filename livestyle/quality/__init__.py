"""Quality: the perceptual losses and objective, the Gatys baseline, and every measurement of output.

- ``losses``: the paper's feature, Gram style, TV and pixel losses; ``objective``: their weighted sum
  on a frozen loss network; ``gatys``: the optimisation baseline (Gatys et al.).
- ``metrics``: PSNR/SSIM on the Y channel; ``superres_eval``: the SR benchmark protocol;
  ``style_eval``: feed-forward vs Gatys on one objective; ``flicker``: temporal stability.

May import: ``livestyle.models``, ``livestyle.engines`` (SR evaluation runs an engine),
``livestyle.postprocess``, ``livestyle.io``, ``livestyle.errors``.
"""
