"""Training of the feed-forward networks with perceptual losses (Johnson et al. 2016, Sec. 4).

- ``recipes``: what a model learns from and how a run is executed (defaults per loss network).
- ``tasks``: style and SR tasks that own their network, data, loss, step and catalog words.
- ``loop``: the loop that drives any task (resume, step, log, checkpoint, previews).
- ``checkpoints``, ``precision``, ``signals``: resuming, AMP and layout, stopping cleanly.
- ``data``: photos decoded once into memory; ``run``: ``train_style`` and ``train_superres``.

May import: ``livestyle.models``, ``livestyle.quality``, ``livestyle.zoo``, ``livestyle.engines``
(devices), ``livestyle.io`` (images), ``livestyle.files``, ``livestyle.io.progress``, ``livestyle.errors``.
"""

AMP_CHOICES = ("auto", "off", "bf16", "fp16")  # RunOptions.amp: mixed precision of a run
LAYOUT_CHOICES = ("auto", "off", "on")  # RunOptions.channels_last
