"""``yolo-cam app``: a local web app for batch heatmaps (the optional extra ``pip install "ultralytics-cam[app]"``).

Modules: :mod:`~.settings` turns the form into a ``yolo-cam predict`` run, :mod:`~.runner` runs it in the background
(start, stop, progress, errors with advice), :mod:`~.view` renders its state, :mod:`~.i18n` holds the words (en,
zh-Hans, zh-Hant) and :mod:`~.ui` is the Gradio page. Only :mod:`~.ui` imports Gradio, and only when the app starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import gradio

    from .runner import RunController

__all__ = ["GRADIO_MISSING", "RunningApp", "create_app", "launch"]

#: What ``yolo-cam app`` says when Gradio is not installed.
GRADIO_MISSING = (
    'the app needs Gradio, which is an optional extra. Install it with:  pip install "ultralytics-cam[app]"'
)


def _require_gradio() -> None:
    try:
        import gradio  # noqa: F401
    except ImportError as e:
        raise ImportError(GRADIO_MISSING) from e


def create_app(
    lang: str = "en", model: str = "", source: str = "", project: str = ""
) -> tuple[gradio.Blocks, RunController]:
    """Build the page and its run controller without serving it; return ``(blocks, controller)``.

    Raises:
        ImportError: Gradio is not installed (the message says how to install it).
        ValueError: ``lang`` is not a language of the app.
    """
    from .i18n import check_lang

    check_lang(lang)
    _require_gradio()
    from .runner import RunController
    from .ui import build_app

    holder: dict[str, Any] = {}

    def allow(run_dir: Path) -> None:
        # The gallery, the report link and summary.json are served from the run folder, wherever the user put it.
        blocks = holder["blocks"]
        if str(run_dir) not in blocks.allowed_paths:
            blocks.allowed_paths.append(str(run_dir.resolve()))

    controller = RunController(on_run_dir=allow)
    blocks = build_app(controller, lang=lang, model=model, source=source, project=project)
    holder["blocks"] = blocks
    return blocks, controller


class RunningApp(NamedTuple):
    """A served app: its Gradio page, its URL and the run controller every tab shares."""

    blocks: gradio.Blocks
    url: str
    controller: RunController

    def close(self, timeout: float | None = None) -> None:
        """Stop the server; a run in progress is stopped after its current image first.

        So its ``summary.json`` is written (``interrupted``) and every finished image kept, as Ctrl-C does in
        ``yolo-cam predict``; ``timeout`` bounds the wait for that image.
        """
        try:
            if self.controller.stop():
                self.controller.wait(timeout)
        finally:
            self.blocks.close()


def launch(
    host: str = "127.0.0.1",
    port: int | None = None,
    lang: str = "en",
    model: str = "",
    source: str = "",
    project: str = "",
) -> RunningApp:
    """Serve the app on ``host:port`` in the background and return it (page, URL, run controller).

    Only this machine can connect unless ``host`` says otherwise; ``port=None`` takes the first free port from 7860.
    The form starts with the bundled demo model and images unless ``model`` / ``source`` are given. Call
    ``close()`` on the result to stop (``blocks.block_thread()`` serves until Ctrl-C).

    Raises:
        ImportError: Gradio is not installed (the message says how to install it).
        ValueError: ``lang`` is not a language of the app.
        OSError: the port is taken or the host cannot be bound.
    """
    from ..cli import DEMO_IMAGES, DEMO_MODEL
    from .ui import CSS

    model = model or (str(DEMO_MODEL) if DEMO_MODEL.is_file() else "")
    source = source or (str(DEMO_IMAGES) if DEMO_IMAGES.is_dir() else "")
    blocks, controller = create_app(lang=lang, model=model, source=source, project=project)
    _, url, _ = blocks.queue(default_concurrency_limit=4).launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        inbrowser=False,
        quiet=True,
        footer_links=[],
        css=CSS,
    )
    return RunningApp(blocks, url, controller)
