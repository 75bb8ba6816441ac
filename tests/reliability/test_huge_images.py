"""Issue 21, cases 3 and 7: a huge image and a missing list entry are skipped with the reason, never the whole run.

- A 40000 x 40000 PNG (200 KB on disk) made OpenCV raise, which ended the run. Now an image's size is read from its
  header before it is decoded: over ``max_pixels`` (default 100 megapixels) it is skipped with the reason, or read
  smaller with ``oversize="downscale"``; one OpenCV refuses is skipped with OpenCV's reason.
- A ``.txt`` (or ``.csv``) source list with one missing path was refused as a whole; the path is now skipped with its
  reason, like a missing file in a folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from corpus import bus, check_image_folder, write_big_png, write_image

from ultralytics_cam import cli

from conftest import tiny_detector

OPTS = ["imgsz=64", "max_det=2"]


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    tiny_detector().save(path)
    return path


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """A folder with a 40000 x 40000 PNG and a 16000 x 16000 PNG."""
    folder = tmp_path_factory.mktemp("big")
    write_big_png(folder / "huge_40000.png", 40000, 40000)
    write_big_png(folder / "large_16000.png", 16000, 16000)
    return folder


def _summary(save_dir: Path) -> dict:
    return json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))


def _source(tmp_path: Path, assets: Path, big: Path, *names: str) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    write_image(src / "a_good.jpg", bus(assets, 64, 48))
    write_image(src / "z_good.jpg", bus(assets, 64, 48, shift=11))
    for name in names:
        (src / name).symlink_to(big / name)
    return src


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ([], "1600.0 megapixels (40000 x 40000), over max_pixels=100000000"),  # the default limit
        (["max_pixels=0"], "1600.0 megapixels (40000 x 40000): OpenCV refused to decode it"),  # no limit: OpenCV's
    ],
    ids=["max_pixels default", "no limit"],
)
def test_an_image_too_big_to_decode_is_skipped_and_the_run_goes_on(tmp_path, assets, tiny_pt, big, capsys, keys, words):
    src = _source(tmp_path, assets, big, "huge_40000.png")
    args = ["predict", f"model={tiny_pt}", f"source={src}", f"project={tmp_path / 'out'}", *OPTS, *keys]
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == 0, err
    save_dir = tmp_path / "out" / "cam"
    summary = _summary(save_dir)
    assert [Path(i["source"]).name for i in summary["images"]] == ["a_good.jpg", "z_good.jpg"]
    (skipped,) = summary["skipped"]
    assert Path(skipped["source"]).name == "huge_40000.png" and words in skipped["reason"], skipped
    assert "1 input skipped" in err, err
    for name in ("a_good", "z_good"):
        check_image_folder(save_dir / name)


def test_an_image_over_max_pixels_is_never_decoded(tmp_path, assets, tiny_pt, big, monkeypatch):
    """16000 x 16000 is below OpenCV's limit (it would be decoded and explained at 4.3 GB): not decoded at all."""
    from ultralytics.utils import patches

    src = _source(tmp_path, assets, big, "large_16000.png")
    real, decoded = patches.imread, []
    monkeypatch.setattr(
        patches, "imread", lambda path, flags=1: (decoded.append(Path(path).name), real(path, flags))[1]
    )
    results = tiny_detector().cam(src, save=True, project=tmp_path / "out", imgsz=64, verbose=False)
    assert sorted(Path(r.path).name for r in results) == ["a_good.jpg", "z_good.jpg"]
    assert "large_16000.png" not in decoded and sorted(decoded) == ["a_good.jpg", "z_good.jpg"], decoded
    (skipped,) = _summary(tmp_path / "out" / "cam")["skipped"]
    assert "256.0 megapixels (16000 x 16000), over max_pixels=100000000" in skipped["reason"], skipped


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_oversize_downscale_explains_a_smaller_copy_with_a_note(tmp_path, assets, suffix):
    src = tmp_path / "src"
    src.mkdir()
    write_image(src / f"wide{suffix}", bus(assets, 300, 200))
    limit = 6000
    (r,) = tiny_detector().cam(
        src, save=True, project=tmp_path / "out", imgsz=64, max_pixels=limit, oversize="downscale", verbose=False
    )
    h, w = r.orig_shape
    assert h * w <= limit and abs(w / h - 1.5) < 0.05 and h * w > 0.9 * limit, (h, w)
    assert r.cam.heatmap.shape == (h, w)
    save_dir = tmp_path / "out" / "cam"
    check_image_folder(save_dir / "wide", (h, w))
    (note,) = _summary(save_dir)["notes"]
    assert note["note"] == f"downscaled from 0.1 megapixels (300 x 200) to {w} x {h} (over max_pixels={limit})"


def test_an_image_at_max_pixels_is_read_as_it_is(tmp_path, assets):
    src = tmp_path / "src"
    src.mkdir()
    write_image(src / "exact.png", bus(assets, 100, 60))
    (r,) = tiny_detector().cam(src, imgsz=64, max_pixels=6000, verbose=False)
    assert tuple(r.orig_shape) == (60, 100)


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("max_pixels=-1", "max_pixels=-1 is not valid: use a whole number of pixels"),
        ("max_pixels=1.5", "max_pixels=1.5 is not valid"),
        ("oversize=shrink", "oversize='shrink' is not valid: use one of skip, downscale"),
    ],
)
def test_bad_pixel_limits_are_usage_errors(tmp_path, assets, capsys, arg, message):
    write_image(tmp_path / "a.jpg", bus(assets))
    code = cli.main(["predict", "model=yolo11n.yaml", f"source={tmp_path / 'a.jpg'}", arg])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and message in err, err


# -- case 7: a source list with a missing path -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["txt", "csv"])
def test_a_missing_path_in_a_source_list_is_skipped_with_its_reason(tmp_path, assets, tiny_pt, capsys, kind):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(2):
        write_image(imgs / f"im_{i}.jpg", bus(assets, 64, 48, shift=9 * i))
    entries = [str(imgs / "im_0.jpg"), "imgs/missing.jpg", "imgs/im_1.jpg"]  # absolute, and relative to the list
    listing = tmp_path / f"list.{kind}"
    listing.write_text(("source\n" if kind == "csv" else "") + "\n".join(entries) + "\n", encoding="utf-8")
    code = cli.main(["predict", f"model={tiny_pt}", f"source={listing}", f"project={tmp_path / 'out'}", *OPTS])
    err = capsys.readouterr().err
    assert code == 0, err
    save_dir = tmp_path / "out" / "cam"
    summary = _summary(save_dir)
    assert sorted(Path(i["source"]).name for i in summary["images"]) == ["im_0.jpg", "im_1.jpg"]
    assert summary["skipped"] == [
        {"source": str(imgs / "missing.jpg"), "reason": f"does not exist (listed in list.{kind})"}
    ]
    assert "1 input skipped" in err, err
    for i in range(2):
        check_image_folder(save_dir / f"im_{i}")


def test_a_source_list_with_no_existing_path_fails_and_names_the_list(tmp_path, tiny_pt, capsys):
    listing = tmp_path / "list.txt"
    listing.write_text("gone/a.jpg\ngone/b.jpg\n", encoding="utf-8")
    code = cli.main(["predict", f"model={tiny_pt}", f"source={listing}", f"project={tmp_path / 'out'}", *OPTS])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED, err
    assert "none of the 2 paths listed in" in err and "list.txt" in err and "Nothing was written" in err, err


def test_a_source_list_whose_paths_all_exist_is_read_as_ultralytics_reads_it(tmp_path, assets):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name in ("b.jpg", "a.jpg"):
        write_image(imgs / name, bus(assets, 64, 48))
    listing = tmp_path / "list.txt"
    listing.write_text("imgs/b.jpg\nimgs/a.jpg\n", encoding="utf-8")
    results = tiny_detector().cam(listing, imgsz=64, verbose=False)
    assert [Path(r.path).name for r in results] == ["a.jpg", "b.jpg"]  # Ultralytics' order (sorted entries)
    assert all(np.isfinite(r.cam.heatmap).all() for r in results)
