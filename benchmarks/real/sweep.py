"""The drawing-option and label-convention sweep behind draw.DrawOptions' defaults: one table, one command.

Each row changes one or two options from the defaults, builds the dataset of the first ``--limit`` molecules with
prepare.py (its val split: every third of them) and runs ``model.val`` on it::

    python benchmarks/real/sweep.py --out /work/cache/real --limit 150 > sweep.md

Prints a Markdown table (mAP50 and mAP50-95 over all labelled classes, then mAP50 of the frequent ones). The first
row is the defaults; the rows after it say what changes. About 30 s a row on 2 shared CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from draw import DrawOptions
from prepare import build_dataset, fetch_model, validate

BARE = {"bond_trim": 0.0, "bond_min_side": 0.0, "glyph_pad": 0.0}
ROWS: list[tuple[str, dict]] = [
    ("defaults", {}),
    # the label convention
    ("bare ink boxes (no trim, no widening, no pad)", BARE),
    ("bonds not trimmed at bare vertices", {"bond_trim": 0.0}),
    ("bonds not widened", {"bond_min_side": 0.0}),
    ("glyphs not padded", {"glyph_pad": 0.0}),
    ("bond trim 0.12", {"bond_trim": 0.12}),
    ("bond min side 0.35", {"bond_min_side": 0.35}),
    ("glyph pad 0.12", {"glyph_pad": 0.12}),
    # the drawing
    ("fixedBondLength 30", {"bond_length": 30.0}),
    ("fixedBondLength 40", {"bond_length": 40.0}),
    ("fixedBondLength 70", {"bond_length": 70.0}),
    ("font scale 1.0 (RDKit's default)", {"font_scale": 1.0}),
    ("font scale 1.25", {"font_scale": 1.25}),
    ("font scale 1.75", {"font_scale": 1.75}),
    ("line width 1", {"line_width": 1.0}),
    ("line width 3", {"line_width": 3.0}),
    ("colour atom palette (RDKit's default)", {"bw": False}),
    ("aromatic bonds drawn aromatic (not kekulized)", {"kekulize": False}),
    ("carbons labelled (C, CH, CH2, CH3 text)", {"carbon_labels": True}),
]
FREQUENT = ["Single", "Double", "O", "N", "H"]


def main() -> None:
    """Build and validate every row's dataset; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="cache folder (prepare.py's --out)")
    parser.add_argument("--limit", type=int, default=150, help="molecules per dataset (a third of them in val)")
    args = parser.parse_args()
    out = args.out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    model = fetch_model(out)
    head = "| options | mAP50 | mAP50-95 | " + " | ".join(FREQUENT) + " |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for label, change in ROWS:
        opts = dataclasses.replace(DrawOptions(), **change)
        result = validate(model, build_dataset(out / "sweep", model, opts, args.limit), opts)
        cells = [f"{result['per_class'].get(c, {}).get('mAP50', float('nan')):.3f}" for c in FREQUENT]
        print(f"| {label} | {result['mAP50']:.3f} | {result['mAP50-95']:.3f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
