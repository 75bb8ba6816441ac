"""A generated corpus of every bad input kind of issue 9, plus the good variants, with the outcome each must have.

``make_corpus(folder)`` writes the files and returns a :class:`Corpus`: the good inputs (the output folder each one
gets) and the bad ones (the words their ``summary.json`` reason must contain). Everything is made from Ultralytics'
bus.jpg at a small size, so a run over the whole corpus takes seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ultralytics_cam.sources import NO_FRAMES, NOT_DECODED

#: Files every finished image folder holds.
IMAGE_FILES = ("cam.json", "detection.png", "heatmap.npy", "heatmap.png")


@dataclass
class Corpus:
    """What was written and what must come out of it.

    Attributes:
        folder: the source folder.
        images: ``{file name: output folder name}`` of the good images.
        videos: ``{file name: (output folder name, frames)}`` of the good videos.
        bad: ``{file name: words its reason must contain}``.
        notes: ``{file name: words its note must contain}`` (inputs explained in part).
    """

    folder: Path
    images: dict[str, str] = field(default_factory=dict)
    videos: dict[str, tuple[str, int]] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def bus(assets: Path, w: int = 80, h: int = 64, shift: int = 0) -> np.ndarray:
    """A small BGR copy of bus.jpg (random-weight models find 'objects' in it)."""
    return np.roll(cv2.resize(cv2.imread(str(assets / "bus.jpg")), (w, h)), shift, axis=1)


def write_image(path: Path, image: np.ndarray, params: tuple = ()) -> None:
    ok, buf = cv2.imencode(path.suffix, image, list(params))
    assert ok, path
    path.write_bytes(buf.tobytes())  # non-ASCII paths work, unlike cv2.imwrite on Windows


def write_video(path: Path, frames: list[np.ndarray], fps: float = 5.0) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), path
    for f in frames:
        writer.write(f)
    writer.release()


def decodable_frames(path: Path) -> int:
    """How many frames OpenCV decodes from ``path`` (a truncated video ends early)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def can_lock_files() -> bool:
    """Whether a file with no read permission is unreadable here (not for root, which reads everything)."""
    return hasattr(os, "geteuid") and os.geteuid() != 0


def make_corpus(folder: Path, assets: Path, *, bad: bool = True, videos: bool = True) -> Corpus:
    """Write the corpus into ``folder`` (created) and return what each file must give."""
    folder.mkdir(parents=True, exist_ok=True)
    c = Corpus(folder)
    im = bus(assets)

    # -- good images: every variant that must work -----------------------------------------------------------------
    write_image(folder / "bus.jpg", im)
    c.images["bus.jpg"] = "bus"
    write_image(folder / "gray.png", cv2.cvtColor(im, cv2.COLOR_BGR2GRAY))
    c.images["gray.png"] = "gray"
    write_image(folder / "rgba.png", np.dstack([im, np.full(im.shape[:2], 200, np.uint8)]))
    c.images["rgba.png"] = "rgba"
    write_image(folder / "deep16.png", im.astype(np.uint16) * 257)
    c.images["deep16.png"] = "deep16"
    write_image(folder / "one_pixel.png", im[:1, :1])
    c.images["one_pixel.png"] = "one_pixel"
    write_image(folder / "wide.jpg", bus(assets, 300, 12))
    c.images["wide.jpg"] = "wide"
    write_image(folder / "ünïcødé 画像.jpg", im)
    c.images["ünïcødé 画像.jpg"] = "ünïcødé 画像"
    from PIL import Image

    Image.fromarray(im[..., ::-1]).convert("CMYK").save(folder / "cmyk.jpg")
    c.images["cmyk.jpg"] = "cmyk"
    pages = [Image.fromarray(np.roll(im, 9 * i, axis=1)[..., ::-1]) for i in range(3)]
    pages[0].save(folder / "pages.tif", save_all=True, append_images=pages[1:])
    c.images["pages.tif"] = "pages"
    c.notes["pages.tif"] = "only the first of its 3 pages"
    # run-level names: the folders must not take them (any case)
    write_image(folder / "summary.json.jpg", im)
    c.images["summary.json.jpg"] = "summary.json-2"
    write_image(folder / "Index.HTML.png", im)
    c.images["Index.HTML.png"] = "Index.HTML-2"

    if videos:  # a good video on each side of the bad one (the loader must go on after it)
        frames = [np.roll(im, 4 * i, axis=1) for i in range(3)]
        write_video(folder / "a_clip.avi", frames)
        c.videos["a_clip.avi"] = ("a_clip", 3)
        write_video(folder / "z_clip.avi", frames[:2])
        c.videos["z_clip.avi"] = ("z_clip", 2)
        write_video(folder / "t_cut.avi", [np.roll(im, 4 * i, axis=1) for i in range(6)])
        data = (folder / "t_cut.avi").read_bytes()
        (folder / "t_cut.avi").write_bytes(data[: len(data) // 2])  # cut in the middle: the first frames decode
        c.videos["t_cut.avi"] = ("t_cut", decodable_frames(folder / "t_cut.avi"))
        c.notes["t_cut.avi"] = "of its 6 frames could be decoded"

    if not bad:
        return c
    # -- bad files: each with its true reason ------------------------------------------------------------------------
    (folder / "empty.jpg").write_bytes(b"")
    c.bad["empty.jpg"] = "an empty file (0 bytes)"
    (folder / "truncated.jpg").write_bytes((folder / "bus.jpg").read_bytes()[:200])
    c.bad["truncated.jpg"] = NOT_DECODED["image"]
    (folder / "fake.png").write_text("this is not a PNG", encoding="utf-8")
    c.bad["fake.png"] = NOT_DECODED["image"]
    (folder / "folder.jpg").mkdir()
    c.bad["folder.jpg"] = "a folder, not an image file"
    os.symlink("loop.jpg", folder / "loop.jpg")
    c.bad["loop.jpg"] = "a symbolic link loop"
    os.symlink("nowhere.jpg", folder / "dangling.jpg")
    c.bad["dangling.jpg"] = "a broken symbolic link"
    if can_lock_files():
        write_image(folder / "locked.jpg", im)
        (folder / "locked.jpg").chmod(0)
        c.bad["locked.jpg"] = "permission denied"
    (folder / "notes.txt").write_text("not an image", encoding="utf-8")
    c.bad["notes.txt"] = "unsupported file type '.txt'"
    if videos:
        (folder / "m_garbage.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
        c.bad["m_garbage.mp4"] = NOT_DECODED["video"]
        (folder / "n_empty.avi").write_bytes(b"")
        c.bad["n_empty.avi"] = "an empty file (0 bytes)"
        cv2.VideoWriter(str(folder / "o_noframes.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (80, 64)).release()
        c.bad["o_noframes.avi"] = NO_FRAMES  # a valid header, no frame
    return c


def read_summary(save_dir: Path) -> dict:
    """``summary.json`` of a run: a complete, valid JSON file."""
    import json

    path = save_dir / "summary.json"
    assert path.is_file(), f"{path} is missing or not a file"
    return json.loads(path.read_text(encoding="utf-8"))


def no_partial_files(save_dir: Path) -> None:
    """Nothing half-written is left: no hidden staging folder, temporary file or partial video."""
    left = [p for p in save_dir.rglob("*") if p.name.startswith(".") or "partial" in p.name]
    assert not left, f"partial files left behind: {left}"


def check_image_folder(folder: Path, shape: tuple[int, int] | None = None) -> None:
    """A finished image folder: every file present, non-empty and readable; the map at the image's size."""
    import json

    assert folder.is_dir(), f"{folder} is missing"
    names = {p.name for p in folder.iterdir()}
    assert set(IMAGE_FILES) <= names, (folder, names)
    for name in IMAGE_FILES:
        assert (folder / name).stat().st_size > 0, folder / name
    rec = json.loads((folder / "cam.json").read_text(encoding="utf-8"))
    heat = np.load(folder / "heatmap.npy")
    assert heat.ndim == 2 and np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
    assert heat.shape == (rec["heatmap_npy"]["height"], rec["heatmap_npy"]["width"])
    if rec["heatmap_npy"]["scale"] == 1.0:
        assert heat.shape == (rec["image"]["height"], rec["image"]["width"])
    if shape is not None:
        assert (rec["image"]["height"], rec["image"]["width"]) == tuple(shape), (folder, rec["image"], shape)
    assert cv2.imdecode(np.fromfile(folder / "heatmap.png", np.uint8), cv2.IMREAD_COLOR) is not None


def check_video_folder(folder: Path, frames: int) -> None:
    """A finished video folder: the overlay video with every frame, one JSON line per frame, and cam.json."""
    import json

    assert folder.is_dir(), f"{folder} is missing"
    videos = [p for p in folder.iterdir() if p.stem == "heatmap"]
    assert len(videos) == 1, list(folder.iterdir())
    cap = cv2.VideoCapture(str(videos[0]))
    try:
        assert cap.isOpened(), videos[0]
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    finally:
        cap.release()
    lines = (folder / "cam.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == frames and all(json.loads(line)["frame"] for line in lines)
    assert json.loads((folder / "cam.json").read_text(encoding="utf-8"))["frames"] == frames


def check_run(save_dir: Path, corpus: Corpus) -> dict:
    """Every good input's outputs are complete, every bad one is listed with its true reason; return the summary."""
    summary = read_summary(save_dir)
    for folder in corpus.images.values():
        check_image_folder(save_dir / folder)
    for folder, frames in corpus.videos.values():
        check_video_folder(save_dir / folder, frames)
    folders = {p.name for p in save_dir.iterdir() if p.is_dir()}
    assert folders == {*corpus.images.values(), *(f for f, _ in corpus.videos.values())}, folders
    assert {Path(i["source"]).name: i["folder"] for i in summary["images"]} == corpus.images
    assert {Path(v["source"]).name: v["frames"] for v in summary["videos"]} == {
        k: n for k, (_, n) in corpus.videos.items()
    }
    skipped = {Path(s["source"]).name: s["reason"] for s in summary["skipped"]}
    assert set(skipped) == set(corpus.bad), (sorted(skipped), sorted(corpus.bad))
    for name, words in corpus.bad.items():
        assert words in skipped[name], (name, skipped[name], words)
    notes = {Path(n["source"]).name: n["note"] for n in summary["notes"]}
    assert set(notes) == set(corpus.notes) and all(w in notes[k] for k, w in corpus.notes.items()), notes
    assert summary["counts"]["skipped"] == len(corpus.bad)
    no_partial_files(save_dir)
    return summary


def yolo_cam_script() -> str:
    """The installed ``yolo-cam`` console script next to this Python."""
    import shutil
    import sys

    script = shutil.which("yolo-cam", path=str(Path(sys.executable).parent))
    assert script, "the yolo-cam console script is not installed next to this Python (pip install -e .)"
    return script


def write_big_png(path: Path, width: int, height: int) -> None:
    """A black ``width`` x ``height`` PNG of 1 bit per pixel: a few hundred KB on disk and a fraction of a second to
    write, whatever its size in pixels (OpenCV decodes it to 3 bytes per pixel)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte, then the row's bits
    z = zlib.compressobj(6)
    data = b"".join(z.compress(row * min(1000, height - y)) for y in range(0, height, 1000)) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
