"""Pure PyTorch networks and the tensor convention they share: no files, threads or CLI here.

- ``transform``: the style transform network (Johnson et al. 2016); ``superres``: the SR network;
  ``subpixel_sr``: the CPU-fast SR network (low-resolution convs, pixel-shuffle output);
  ``community``: pytorch/examples' TransformerNet layout, for imported models.
- ``lossnets``: frozen ImageNet loss networks with named taps.
- ``rewrites``: exact inference rewrites of these networks (same function, less work).
- ``convention``: float RGB (N, 3, H, W) in [0, 1], and the conversions from and to HWC arrays.

May import: torch, torchvision, numpy, ``livestyle.errors``. Importing this package itself loads
nothing heavy (the command line reads the names below before torch is needed).
"""

LOSS_NETWORK_NAMES = ("vgg16", "squeezenet1_1")
ENV_LOSSNET_WEIGHTS = "LIVESTYLE_LOSSNET_WEIGHTS"  # a loss network's weights file
