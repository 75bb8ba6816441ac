"""Save frames of a training run's CAM timeline as PNG files (the README's pictures come from here).

Run from the repository root::

    python benchmarks/train_cam_frames.py RUN_DIR IMAGE --frames 1 3 --out docs/images/train_cam

``RUN_DIR`` is the training folder (with ``cam/``), ``IMAGE`` the timeline's name (the probe image's stem),
``--frames`` the 1-based frame numbers (one per explained epoch, in order; -1 is the last). Each frame is written as
``<out>_<image>_epoch<N>.png``, as the timeline shows it (with its caption: epoch and mAP50-95), but lossless: built
from the epoch folders as the timeline is, not decoded from the video.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    """Read the timeline, write the requested frames."""
    import cv2

    from ultralytics_cam.integrations.train_cam.timeline import timeline_frames

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("image")
    p.add_argument("--frames", type=int, nargs="+", default=[1, -1], help="1-based frame numbers; -1 is the last")
    p.add_argument("--out", default="docs/images/train_cam")
    args = p.parse_args()
    frames = timeline_frames(args.run)[args.image]
    for n in args.frames:
        epoch, image = frames[n if n < 0 else n - 1]
        path = Path(f"{args.out}_{args.image}_epoch{epoch}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)
        print(path)


if __name__ == "__main__":
    main()
