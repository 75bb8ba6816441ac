"""Issue 21, cases 10 and 11: SIGTERM in ``yolo-cam eval`` and ``compare``, and the device a message names.

- SIGTERM during ``eval`` exited 130 (the rule is 128 + the signal: 143). During ``compare`` it said only
  ``interrupted.`` and left figures without ``compare.json`` or ``index.html``; it now writes what was finished and
  says what was kept, as ``predict`` does.
- ``device=cuda`` without a GPU said ``device=0`` (Ultralytics' translation): the message names what the user typed.

The signal is sent by the process to itself at a chosen moment (inside the second candidate, after the first figure):
``yolo-cam``'s own SIGTERM handler runs in the main thread, as it does when ``kill`` or ``timeout`` sends it.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from corpus import bus, write_image

from ultralytics_cam import cli

from conftest import tiny_detector


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    tiny_detector().save(path)
    return path


@pytest.fixture
def images(tmp_path, assets) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        write_image(src / f"im_{i}.jpg", bus(assets, 64, 48, shift=9 * i))
    return src


def eval_args(model: Path, source: Path) -> list[str]:
    """A small eval: two candidates on one image."""
    return [f"model={model}", f"source={source}", "methods=HiResCAM,EigenCAM", "max_images=1", "imgsz=64", "steps=3",
            "verbose=False"]  # fmt: skip


def _sigterm_on_call(monkeypatch, module, name: str, n: int) -> list:
    """Send SIGTERM to this process when ``module.name`` is called for the ``n``-th time (before it runs)."""
    real, calls = getattr(module, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_sigterm_during_eval_exits_143_and_keeps_the_finished_candidates(
    tmp_path, tiny_pt, images, capsys, monkeypatch
):
    from ultralytics_cam import ranking

    _sigterm_on_call(monkeypatch, ranking, "_evaluate_candidate", 2)
    code = cli.main(["eval", *eval_args(tiny_pt, images), f"project={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_TERMINATED == 143, err
    assert "the 1 finished candidates are in" in err, err
    report = json.loads((tmp_path / "out" / "eval" / "eval.json").read_text(encoding="utf-8"))
    assert report["status"] == "interrupted" and [r["method"] for r in report["ranking"]] == ["HiResCAM"]


def test_ctrl_c_during_eval_still_exits_130(tmp_path, tiny_pt, images, capsys, monkeypatch):
    from ultralytics_cam import ranking

    real, calls = ranking._evaluate_candidate, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C
        return real(*args, **kwargs)

    monkeypatch.setattr(ranking, "_evaluate_candidate", interrupted)
    assert cli.main(["eval", *eval_args(tiny_pt, images), f"project={tmp_path / 'out'}"]) == cli.EXIT_INTERRUPTED == 130


def test_sigterm_during_compare_writes_what_was_finished(tmp_path, tiny_pt, images, capsys, monkeypatch):
    from ultralytics_cam import figures

    _sigterm_on_call(monkeypatch, figures, "compare_figure", 2)  # after the first image's figure
    other = tmp_path / "other.pt"
    other.write_bytes(tiny_pt.read_bytes())
    code = cli.main(
        ["compare", f"model={tiny_pt},{other}", f"source={images}", "imgsz=64", f"project={tmp_path / 'out'}"]
    )
    err = capsys.readouterr().err
    save_dir = tmp_path / "out" / "compare"
    assert code == cli.EXIT_TERMINATED, err
    assert "1 of 3 figures" in err and str(save_dir) in err, err
    record = json.loads((save_dir / "compare.json").read_text(encoding="utf-8"))
    assert record["status"] == "interrupted" and [e["name"] for e in record["images"]] == ["im_0"], record
    assert sorted(p.name for p in (save_dir / "figures").iterdir()) == ["im_0.png"]  # no half-written figure
    assert (save_dir / "index.html").is_file()


def test_sigterm_before_compare_wrote_anything_says_nothing_was_written(tmp_path, tiny_pt, images, capsys, monkeypatch):
    from ultralytics_cam import figures

    _sigterm_on_call(monkeypatch, figures, "compare_figure", 1)
    other = tmp_path / "other.pt"
    other.write_bytes(tiny_pt.read_bytes())
    code = cli.main(
        ["compare", f"model={tiny_pt},{other}", f"source={images}", "imgsz=64", f"project={tmp_path / 'out'}"]
    )
    err = capsys.readouterr().err
    assert code == cli.EXIT_TERMINATED, err
    assert "no figure was finished" in err, err


# -- case 11: the device the user typed --------------------------------------------------------------------------------
@pytest.mark.parametrize("device", ["cuda", "cuda:1", "0"])
def test_a_missing_gpu_is_named_as_the_user_typed_it(tmp_path, tiny_pt, images, capsys, monkeypatch, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine, or any without a GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    code = cli.main(["predict", f"model={tiny_pt}", f"source={images}", f"device={device}", f"project={tmp_path}"])
    err = capsys.readouterr().err
    assert code in (cli.EXIT_USAGE, cli.EXIT_FAILED), err
    assert f"device={device} " in err or f"device='{device}'" in err, err
    if device != "0":
        assert "device=0" not in err and "device='0'" not in err, err
    assert "device=cpu" in err, err  # what to use instead


def test_python_names_the_device_the_user_typed(tmp_path, images, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError, match=r"device='cuda'") as e:
        tiny_detector().cam(images, device="cuda", verbose=False)
    assert "'0'" not in str(e.value) and "device=0" not in str(e.value), e.value
