"""Does x264 repeat a lossy encode bit for bit within one process? The same frames (a clip decoded
once, resized by --scale) encoded ``--repeats`` times in this process with the settings of
`livestyle video` (libx264, crf 18, veryfast), as they are and cropped to multiples of 16 pixels.
Prints the sha256 (12 hex digits) of each encode's decoded frames (issue 21: findings.md, "Equal to
`video`"): `video` encodes once per process, a `batch` worker many times.

    python bench/experiments/cluster-batch/x264_repeat.py [--clip PATH] [--scale 0.5] [--repeats 4]
"""
from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path

import av
import cv2

CLIP = Path(__file__).resolve().parents[4] / "shared" / "data" / "video" / "mdnla_frog.mp4"


def decode(path: str) -> list:
    with av.open(path) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def encode_hashes(frames: list, repeats: int) -> list[str]:
    """Encode ``frames`` ``repeats`` times; the sha256 (12 hex digits) of each encode's decoded frames."""
    hashes = []
    with tempfile.TemporaryDirectory() as work:
        for k in range(repeats):
            path = str(Path(work) / f"{k}.mp4")
            with av.open(path, "w") as out:
                stream = out.add_stream("libx264", rate=25)
                stream.height, stream.width = frames[0].shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18", "preset": "veryfast"}
                for i, rgb in enumerate(frames):
                    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    frame.pts = i
                    out.mux(stream.encode(frame))
                out.mux(stream.encode())
            digest = hashlib.sha256()
            for rgb in decode(path):
                digest.update(rgb.tobytes())
            hashes.append(digest.hexdigest()[:12])
    return hashes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default=str(CLIP))
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    frames = [cv2.resize(f, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_AREA)
              for f in decode(args.clip)]
    h, w = frames[0].shape[:2]
    print(f"{Path(args.clip).name} at {w}x{h}:", encode_hashes(frames, args.repeats), flush=True)
    cropped = [f[:h // 16 * 16, :w // 16 * 16].copy() for f in frames]
    print(f"cropped to {w // 16 * 16}x{h // 16 * 16}:", encode_hashes(cropped, args.repeats), flush=True)


if __name__ == "__main__":
    main()
