"""Does x264 repeat a lossy encode bit for bit within one process? The same frames (a clip decoded
once, resized by each of --scales) encoded ``--repeats`` times in this process with the settings of
`livestyle video` (libx264, crf 18, veryfast), as they are and cropped to multiples of 16 pixels.
Prints the sha256 (12 hex digits) of each encode's decoded frames (issue 21: findings.md, "Equal to
`video`"): `video` encodes once per process, a `batch` worker many times. ``--zeroed`` first calls
``livestyle.io.sinks.zero_new_allocations`` (what every encoding process does since), ``--scales`` runs
several sizes in one process, and the last line counts the encodes that differ from their size's first.

    python bench/experiments/cluster-batch/x264_repeat.py [--clip PATH] [--scales 0.5] [--repeats 4] [--zeroed]
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
    parser.add_argument("--scales", default="0.5", help="comma-separated, e.g. 0.3,0.45,0.5,0.6,0.75")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--zeroed", action="store_true", help="new allocations zeroed first (livestyle.io.sinks)")
    args = parser.parse_args()
    if args.zeroed:
        from livestyle.io.sinks import zero_new_allocations

        print("zero_new_allocations:", zero_new_allocations())
    source = decode(args.clip)
    odd = total = 0
    for scale in (float(s) for s in args.scales.split(",")):
        frames = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for f in source]
        h, w = frames[0].shape[:2]
        cropped = [f[:h // 16 * 16, :w // 16 * 16].copy() for f in frames]
        for label, clip in ((f"{Path(args.clip).name} at {w}x{h}", frames),
                            (f"cropped to {w // 16 * 16}x{h // 16 * 16}", cropped)):
            hashes = encode_hashes(clip, args.repeats)
            odd, total = odd + sum(h != hashes[0] for h in hashes), total + len(hashes)
            print(f"{label}:", hashes, flush=True)
    print(f"{odd} of {total} encodes differ from their size's first encode in this process")


if __name__ == "__main__":
    main()
