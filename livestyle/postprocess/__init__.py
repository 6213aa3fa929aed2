"""What happens to each frame after the network: style strength, colour preservation, cross-fades
(``effects``) and temporal stabilisation along the optical flow (``stabilizer``, ``flow``).

Frames are numpy HWC arrays (uint8, or float32 in [0, 1]). May import: numpy, OpenCV,
``livestyle.errors``; no torch, no engines.
"""
