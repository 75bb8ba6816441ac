"""How the model's boxes sit on what RDKit drew: the numbers behind README.md's box convention.

On the val split of the default dataset (prepare.py's drawing), for every label the model's best same-class
prediction (``conf=0.25``) is taken, and its IoU with the label is reported twice: with the labels as prepared (the
convention) and with bare ink boxes. Bare carbon vertices have no label: the model's ``C``/``CH``/``CH2``/``CH3``
boxes there are matched to the nearest vertex and their class compared with the carbon's hydrogen count::

    python benchmarks/real/convention.py --out /work/cache/real
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from draw import DrawOptions, bond_length, draw, prepared_drawer
from prepare import VAL_EVERY, fetch_model, read_smiles

BONDS = {"Single", "Double", "Triple", "Solid wedge", "Hash wedge"}
CARBONS = ["C", "CH", "CH2", "CH3"]


def iou(a, b) -> float:
    """IoU of two xyxy boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def main() -> None:
    """Print the mean IoU per class (convention and bare ink) and the carbon vertices' class agreement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="cache folder (prepare.py's --out)")
    args = parser.parse_args()
    import cv2
    import numpy as np
    from rdkit import RDLogger
    from ultralytics import YOLO

    RDLogger.DisableLog("rdApp.*")
    model = YOLO(fetch_model(args.out.expanduser().resolve()))
    opts = DrawOptions()
    bare = dataclasses.replace(opts, bond_trim=0.0, bond_min_side=0.0, glyph_pad=0.0)
    ious: dict[str, dict[str, list[float]]] = {"convention": defaultdict(list), "bare ink": defaultdict(list)}
    carbon_hits, carbon_total = 0, 0
    for k, smiles in enumerate(read_smiles()):
        if k % VAL_EVERY:
            continue
        drawing = draw(smiles, opts)
        image = cv2.imdecode(np.frombuffer(drawing.png, np.uint8), cv2.IMREAD_COLOR)
        r = model.predict(image, imgsz=opts.size, conf=0.25, verbose=False)[0]
        boxes = r.boxes.xyxy.tolist()
        names = [model.names[int(c)] for c in r.boxes.cls]
        for variant, labels in (("convention", drawing.boxes), ("bare ink", draw(smiles, bare).boxes)):
            for name, *box in labels:
                same = [iou(box, p) for p, n in zip(boxes, names) if n == name]
                ious[variant]["bonds" if name in BONDS else name].append(max(same, default=0.0))
        mol, drawer = prepared_drawer(smiles, opts)
        unit = bond_length(drawer, mol)
        for atom in mol.GetAtoms():
            if atom.GetSymbol() != "C" or atom.GetDegree() < 1:
                continue
            p = drawer.GetDrawCoords(atom.GetIdx())
            near = [
                n
                for b, n in zip(boxes, names)
                if n in CARBONS
                and abs((b[0] + b[2]) / 2 - p.x) < 0.25 * unit
                and abs((b[1] + b[3]) / 2 - p.y) < 0.25 * unit
            ]
            if near:
                carbon_total += 1
                carbon_hits += near[0] == CARBONS[min(atom.GetTotalNumHs(), 3)]
    print("| labels | " + " | ".join(f"{c} (n)" for c in ious["convention"]) + " |")
    print("|---|" + "---:|" * len(ious["convention"]))
    for variant, per in ious.items():
        cells = [f"{statistics.mean(v):.2f} ({len(v)})" for v in per.values()]
        print(f"| {variant} | " + " | ".join(cells) + " |")
    print(
        f"\nbare carbon vertices with a C/CH/CH2/CH3 box: {carbon_total}; class matches the H count: "
        f"{carbon_hits / max(carbon_total, 1):.2f}"
    )


if __name__ == "__main__":
    main()
