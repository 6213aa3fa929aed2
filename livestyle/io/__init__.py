"""Frames in and out: still images (``images``), cameras, video files and image folders
(``sources``), video files with their sound and image folders (``sinks``), the window, and the
progress shown on the terminal while long commands run (``progress``).

Frames are numpy uint8 RGB (H, W, 3) with their timestamps. May import: numpy, OpenCV, PyAV,
``livestyle.files``, ``livestyle.errors``; no torch, no networks.
"""
