"""Explain every prediction of the bundled demo detector, then save and show what came out.

python examples/quickstart.py [model.pt] [source]
"""

import sys
from pathlib import Path

import cv2
from ultralytics import YOLO

import ultralytics_cam  # adds Model.cam

ASSETS = Path(ultralytics_cam.__file__).parent / "assets"
model = YOLO(sys.argv[1] if len(sys.argv) > 1 else ASSETS / "models" / "detect.pt")
source = sys.argv[2] if len(sys.argv) > 2 else ASSETS / "demo"

for r in model.cam(source=source, method="HiResCAM", stream=True):
    name = Path(r.path).stem
    for s in r.cam.stats():  # one entry per box: where its map peaks, how much of it lies in the box
        print(f"{name}: {s['name']} {s['confidence']:.2f} peak={s['peak']} energy_in_box={s['energy_in_box']}")
    cv2.imwrite(f"{name}_cam.jpg", r.cam.plot())  # overlay at the original size, boxes drawn
