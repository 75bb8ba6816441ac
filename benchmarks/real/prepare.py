"""Prepare the real model and the labelled real dataset: ``python benchmarks/real/prepare.py --out DIR``.

1. The model: ``pip download --no-deps ABD-model==0.3.0`` (PyPI, MIT licence), ``ABD_model/ABD.pt`` taken out of the
   wheel and checked against its committed sha256, kept as ``DIR/ABD.pt``.
2. The dataset: every molecule of the committed ``smiles.csv`` drawn by RDKit (options in ``draw.DrawOptions``,
   chosen by measurement, README.md) into ``DIR/<options>/images/{train,val}``, with exact YOLO labels in
   ``labels/{train,val}`` and ``data.yaml`` naming the model's 147 classes in its order. Every third molecule is in
   val (100 images), the rest in train (200).

Idempotent: a step whose output exists and matches (the model's hash; the dataset's options and SMILES list,
recorded in ``DIR/<options>/manifest.json``) is not redone, and a dataset is built in a temporary folder and renamed
into place, so an interrupted run leaves nothing half-made. Progress goes to stderr; the last two lines on stdout are
the model's path and then ``data.yaml``'s path::

    model, data = subprocess.run([...], capture_output=True, text=True).stdout.splitlines()[-2:]

``--val`` also runs ``model.val`` on the val split and prints mAP50, mAP50-95 and the per-class table (stderr).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")  # Ultralytics logs to stdout, which is for the two paths

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # draw.py, when run as a script from anywhere

from draw import DrawOptions, draw  # noqa: E402

PACKAGE = "ABD-model==0.3.0"
WHEEL_MEMBER = "ABD_model/ABD.pt"
#: sha256 of ABD_model/ABD.pt in ABD_model-0.3.0-py3-none-any.whl (the wheel itself: 407615a5...b894).
MODEL_SHA256 = "c3335b0cc6c504c4ac74b62bf2bc9aa06ecf402fa71184ec88f40a1f37979859"
SMILES = HERE / "smiles.csv"
VAL_EVERY = 3  #: molecule k is in val when k % 3 == 0


def log(msg: str) -> None:
    """Progress, on stderr (stdout is for the two paths)."""
    print(msg, file=sys.stderr, flush=True)


def sha256(path: Path) -> str:
    """The file's sha256, hex."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_model(out: Path) -> Path:
    """``out/ABD.pt``, downloaded through pip and checked, unless it is already there with the right hash."""
    target = out / "ABD.pt"
    if target.is_file() and sha256(target) == MODEL_SHA256:
        log(f"model: {target} (present, sha256 ok)")
        return target
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        log(f"model: pip download --no-deps {PACKAGE}")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, PACKAGE]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode or not wheels:
            raise SystemExit(f"pip download {PACKAGE} failed (exit {done.returncode}):\n{done.stdout[-2000:]}")
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(WHEEL_MEMBER) as src, open(Path(tmp) / "ABD.pt", "wb") as dst:
            shutil.copyfileobj(src, dst)
        got = sha256(Path(tmp) / "ABD.pt")
        if got != MODEL_SHA256:
            raise SystemExit(f"{wheels[0].name}: {WHEEL_MEMBER} has sha256 {got}, expected {MODEL_SHA256}")
        os.replace(Path(tmp) / "ABD.pt", target)
    log(f"model: {target} (sha256 ok)")
    return target


def read_smiles(path: Path = SMILES) -> list[str]:
    """The committed molecule list, in its order."""
    with path.open(encoding="utf-8") as f:
        return [row["smiles"] for row in csv.DictReader(row for row in f if not row.startswith("#"))]


def class_names(model_path: Path) -> list[str]:
    """The model's 147 class names in index order (read from the checkpoint)."""
    from ultralytics import YOLO

    names = YOLO(model_path).names
    return [names[k] for k in range(len(names))]


def yolo_lines(boxes, names: list[str], size: int) -> list[str]:
    """YOLO label lines (class cx cy w h, normalised) for ``boxes`` clipped to the canvas."""
    index = {n: k for k, n in enumerate(names)}
    lines = []
    for name, *box in boxes:
        x1, y1, x2, y2 = (min(max(v, 0.0), size) for v in box)
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        cx, cy, w, h = (x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size, (y2 - y1) / size
        lines.append(f"{index[name]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def build_dataset(out: Path, model_path: Path, opts: DrawOptions, limit: int | None = None) -> Path:
    """``out/<options>/data.yaml`` and its images and labels, built unless a matching one exists."""
    smiles = read_smiles()[:limit]
    from rdkit import rdBase

    manifest = {
        "rdkit": rdBase.rdkitVersion,  # its drawer's layout changes between releases
        "options": dataclasses.asdict(opts),
        "smiles_sha256": hashlib.sha256("\n".join(smiles).encode()).hexdigest(),
    }
    root = out / (opts.tag() + (f"-n{limit}" if limit else ""))
    if (root / "manifest.json").is_file() and json.loads((root / "manifest.json").read_text("utf-8")) == manifest:
        log(f"dataset: {root} (present, same options and molecules)")
        return root / "data.yaml"
    names = class_names(model_path)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=out))
    skipped = 0
    counts: dict[str, int] = {}
    for k, smi in enumerate(smiles):
        split = "val" if k % VAL_EVERY == 0 else "train"
        drawing = draw(smi, opts)
        skipped += len(drawing.skipped)
        for name, *_ in drawing.boxes:
            counts[name] = counts.get(name, 0) + 1
        for sub in ("images", "labels"):
            (tmp / sub / split).mkdir(parents=True, exist_ok=True)
        (tmp / "images" / split / f"{k:04d}.png").write_bytes(drawing.png)
        lines = yolo_lines(drawing.boxes, names, opts.size)
        (tmp / "labels" / split / f"{k:04d}.txt").write_text("".join(line + "\n" for line in lines), "utf-8")
        if (k + 1) % 50 == 0 or k + 1 == len(smiles):
            log(f"dataset: drawn {k + 1}/{len(smiles)}")
    names_yaml = "\n".join(f"  {k}: {json.dumps(n)}" for k, n in enumerate(names))
    (tmp / "data.yaml").write_text(
        f"# Made by benchmarks/real/prepare.py: {len(smiles)} RDKit drawings, options {opts.tag()}\n"
        f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names_yaml}\n",
        "utf-8",
    )
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), "utf-8")
    log(f"dataset: labels per class {dict(sorted(counts.items(), key=lambda kv: -kv[1]))}; {skipped} unlabelled items")
    if root.exists():
        shutil.rmtree(root)
    os.replace(tmp, root)
    log(f"dataset: {root}")
    return root / "data.yaml"


def validate(model_path: Path, data_yaml: Path, opts: DrawOptions) -> dict:
    """``model.val`` on the val split: mAP50, mAP50-95 and the per-class rows, logged and returned."""
    from ultralytics import YOLO

    model = YOLO(model_path)
    with tempfile.TemporaryDirectory() as tmp:
        m = model.val(data=str(data_yaml), imgsz=opts.size, batch=8, plots=False, verbose=False, project=tmp, workers=0)
    per_class = {}
    for i, c in enumerate(m.box.ap_class_index):
        p, r, ap50, ap = m.box.class_result(i)
        per_class[model.names[int(c)]] = {"n": int(m.nt_per_class[c]), "P": p, "R": r, "mAP50": ap50, "mAP50-95": ap}
    result = {"mAP50": float(m.box.map50), "mAP50-95": float(m.box.map), "per_class": per_class}
    log(f"val {opts.tag()}: mAP50 {result['mAP50']:.3f}  mAP50-95 {result['mAP50-95']:.3f}")
    for name, row in sorted(per_class.items(), key=lambda kv: -kv[1]["n"]):
        cells = " ".join(f"{k}={v:.3f}" for k, v in row.items() if k != "n")
        log(f"  {name:>12} n={row['n']:5d} {cells}")
    return result


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, fetch the model, build the dataset, print the two paths."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="cache folder (created; reused when run again)")
    parser.add_argument("--val", action="store_true", help="also run model.val on the val split and print the mAP")
    parser.add_argument("--limit", type=int, default=None, help="only the first N molecules (option sweeps)")
    defaults = DrawOptions()
    for f in dataclasses.fields(DrawOptions):  # one flag per drawing/label option, for the sweeps in README.md
        default = getattr(defaults, f.name)
        kind = (lambda s: s.lower() in {"1", "true", "yes"}) if isinstance(default, bool) else type(default)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default, help=f"default {default}")
    args = parser.parse_args(argv)
    opts = DrawOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DrawOptions)})
    out = args.out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")  # RDKit's C++ warnings would interleave with the progress lines
    model_path = fetch_model(out)
    data_yaml = build_dataset(out, model_path, opts, args.limit)
    if args.val:
        result = validate(model_path, data_yaml, opts)
        (data_yaml.parent / "val.json").write_text(json.dumps(result, indent=1), "utf-8")
    print(model_path)
    print(data_yaml)


if __name__ == "__main__":
    main()
