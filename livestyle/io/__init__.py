"""Frames in and out: images, cameras, video files, windows. No networks here."""
