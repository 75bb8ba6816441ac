"""The page of ``yolo-cam app``: a Gradio form, Start / Stop, a status bar, a live gallery and the image errors.

Every tab polls the one shared :class:`~ultralytics_cam.app.runner.RunController` on a timer, so a long run never
holds a request open, and two tabs show the same run.
"""

# No "from __future__ import annotations": Gradio reads the gr.SelectData annotation of a handler at run time.
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .choices import device_choices, method_choices, model_info
from .i18n import translate
from .runner import ACTIVE, GalleryItem, RunBusyError, RunController
from .settings import FORM_DEFAULTS, FormError, build_settings
from .view import GALLERY_LIMIT, errors_markdown, gallery_value, status_html

if TYPE_CHECKING:
    import gradio

__all__ = ["build_app", "file_url"]

#: Seconds between two looks at the run from each tab.
POLL_SECONDS = 0.5
#: Seconds between two refreshes of a tab's gallery while a run goes on.
GALLERY_SECONDS = 2.0

CSS = """
#cam-status progress { width: 100%; height: 1.1em; }
#cam-status .cam-error { color: #c62828; font-weight: 600; }
#cam-detection img, #cam-heatmap img { width: 100%; height: 100%; object-fit: contain; }
"""


def file_url(path: str) -> str:
    """The page-relative link that Gradio serves a file of this machine at (allowed folders only)."""
    return f"gradio_api/file={quote(str(path))}"


def build_app(
    controller: RunController,
    lang: str = "en",
    model: str = "",
    source: str = "",
    project: str = "",
    browse_root: str | Path = ".",
) -> "gradio.Blocks":
    """Build the page (a ``gradio.Blocks``) around ``controller``; ``model``, ``source``, ``project`` prefill it."""
    import gradio as gr

    def t(key: str) -> str:
        return translate(key, lang)

    devices = device_choices()

    def describe_model(path: str, imgsz: Any) -> tuple[str, Any, str]:
        if not str(path or "").strip():
            return "", gr.update(value=[]), ""
        try:
            size = int(float(imgsz or FORM_DEFAULTS["imgsz"]))
            info = model_info(str(path).strip().strip('"'), size)
        except Exception as e:  # shown in the form; the run would refuse the same file with advice
            return "", gr.update(value=[]), f"**{t('form_error')}:** {type(e).__name__}: {e}\n\n{t('advice_weights')}"
        return info.task, gr.update(value=info.layers), ""

    def on_model_upload(file: Any) -> Any:
        return gr.update(value=file) if file else gr.skip()

    def on_browse(selected: Any) -> Any:
        # Gradio's explorer ticks files, not folders: a ticked image stands for its folder, the usual input.
        path = selected[0] if isinstance(selected, list) and selected else selected
        if not path:
            return gr.skip()
        return gr.update(value=str(Path(path).parent if Path(path).is_file() else path))

    def on_start(*values: Any) -> str:
        keys = ("model", "source", "uploads", "project", "method", "layers", "device", "conf", "max_det", "imgsz")
        form = dict(zip([*keys, "show_boxes", "renormalize"], values))
        form["uploads"] = [str(u) for u in form["uploads"] or []]
        try:
            settings = build_settings(**form)
            controller.start(settings)
        except FormError as e:
            return f"**{t('form_error')}:** {e}"
        except RunBusyError:
            return f"**{t('busy')}**"
        return ""

    def on_stop() -> str:
        return "" if controller.stop() else t("nothing_to_stop")

    def poll(seen: dict[str, Any]) -> tuple[Any, Any, Any, dict[str, Any]]:
        state = controller.snapshot()
        if seen.get("version") == state.version:
            return gr.skip(), gr.skip(), gr.skip(), seen
        now = {**seen, "version": state.version}
        # Gradio hashes and copies every picture it sends: refresh the gallery at most every GALLERY_SECONDS while a
        # run goes on, and at once when it ends.
        due = state.status not in ACTIVE or time.monotonic() - seen.get("gallery_at", 0.0) >= GALLERY_SECONDS
        gallery = gr.skip()
        if seen.get("items") != len(state.items) and due:
            gallery = gallery_value(state)
            now.update(items=len(state.items), gallery_at=time.monotonic())
        return status_html(state, lang, file_url), gallery, errors_markdown(state, lang), now

    def on_select(evt: gr.SelectData) -> tuple[Any, Any]:
        items: list[GalleryItem] = controller.snapshot().items[-GALLERY_LIMIT:]
        shown = [i for i in items if Path(i.heatmap).is_file()]
        if not 0 <= evt.index < len(shown):
            return gr.skip(), gr.skip()
        item = shown[evt.index]
        return item.detection, item.heatmap

    demo = gr.Blocks(title="yolo-cam app", analytics_enabled=False)
    with demo:  # (Blocks.__enter__ returns the Blocks itself, untyped: keep the typed name)
        gr.Markdown(f"# {t('title')}\n{t('intro')}")
        with gr.Row():
            with gr.Column():
                gr.Markdown(f"### {t('inputs')}")
                model_box = gr.Textbox(label=t("model"), value=model, elem_id="cam-model")
                with gr.Accordion(t("model_upload"), open=False):
                    model_file = gr.File(
                        show_label=False,
                        file_types=[".pt"],
                        file_count="single",
                        height=120,
                        elem_id="cam-weights-file",
                    )
                task_box = gr.Textbox(label=t("task"), interactive=False, elem_id="cam-task")
                source_box = gr.Textbox(label=t("source"), value=source, elem_id="cam-source")
                with gr.Accordion(t("browse"), open=False):
                    explorer = gr.FileExplorer(root_dir=str(browse_root), file_count="single", max_height=260)
                with gr.Accordion(t("uploads"), open=False):
                    uploads = gr.File(
                        show_label=False, file_count="multiple", file_types=["image"], height=140, elem_id="cam-uploads"
                    )
                project_box = gr.Textbox(label=t("project"), value=project, elem_id="cam-project")
            with gr.Column():
                gr.Markdown(f"### {t('options')}")
                method = gr.Dropdown(
                    choices=method_choices(), value=FORM_DEFAULTS["method"], label=t("method"), elem_id="cam-method"
                )
                device = gr.Dropdown(choices=devices, value=devices[0], label=t("device"), elem_id="cam-device")
                layers = gr.Textbox(label=t("layers"), value=FORM_DEFAULTS["layers"], elem_id="cam-layers")
                with gr.Accordion(t("layer_table"), open=False):
                    layer_table = gr.Dataframe(
                        headers=["index", "from", "type", "output shape", "note"], interactive=False, max_height=260
                    )
                conf = gr.Slider(0, 1, value=FORM_DEFAULTS["conf"], step=0.01, label=t("conf"), elem_id="cam-conf")
                max_det = gr.Number(
                    value=FORM_DEFAULTS["max_det"], precision=0, minimum=1, label=t("max_det"), info=t("max_det_info")
                )
                imgsz = gr.Number(
                    FORM_DEFAULTS["imgsz"], precision=0, minimum=32, step=32, label=t("imgsz"), elem_id="cam-imgsz"
                )
                show_boxes = gr.Checkbox(value=FORM_DEFAULTS["show_boxes"], label=t("show_boxes"))
                renormalize = gr.Checkbox(value=FORM_DEFAULTS["renormalize"], label=t("renormalize"))
        message = gr.Markdown(elem_id="cam-message")
        with gr.Row():
            start = gr.Button(t("start"), variant="primary", elem_id="cam-start")
            stop = gr.Button(t("stop"), variant="stop", elem_id="cam-stop")
        # A callable value is evaluated on every page load, so a new tab starts from the run as it is now.
        status = gr.HTML(lambda: status_html(controller.snapshot(), lang, file_url), elem_id="cam-status-box")
        gallery = gr.Gallery(
            label=t("gallery"),
            columns=6,
            height=360,
            object_fit="contain",
            elem_id="cam-gallery",
            buttons=["fullscreen"],
        )
        with gr.Row():
            view: dict[str, Any] = {"interactive": False, "height": 480, "buttons": ["download", "fullscreen"]}
            detection_img = gr.Image(label=t("detection"), elem_id="cam-detection", **view)
            heatmap_img = gr.Image(label=t("heatmap"), elem_id="cam-heatmap", **view)
        gr.Markdown(f"### {t('image_errors')}")
        errors = gr.Markdown(t("no_image_errors"), elem_id="cam-image-errors")
        seen = gr.State({})
        timer = gr.Timer(POLL_SECONDS)

        model_args: dict[str, Any] = {
            "fn": describe_model,
            "inputs": [model_box, imgsz],
            "outputs": [task_box, layer_table, message],
        }
        model_box.change(**model_args, trigger_mode="always_last", show_progress="hidden")
        imgsz.submit(**model_args)
        model_file.upload(on_model_upload, model_file, model_box)
        explorer.change(on_browse, explorer, source_box)
        form = [model_box, source_box, uploads, project_box, method, layers, device, conf, max_det, imgsz]
        start.click(on_start, [*form, show_boxes, renormalize], message)
        stop.click(on_stop, None, message)
        timer.tick(poll, seen, [status, gallery, errors, seen], show_progress="hidden", concurrency_limit=None)
        gallery.select(on_select, None, [detection_img, heatmap_img])
        demo.load(**model_args)
    return demo
