"""What the page shows of a run: the status bar, the list of image errors and the gallery, from a :class:`RunState`.

Plain functions of the state and the language, so the page's content is tested without a browser.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from .i18n import translate
from .runner import RunState

__all__ = ["GALLERY_LIMIT", "errors_markdown", "format_seconds", "gallery_value", "status_html"]

#: The gallery shows the most recent finished images (Gradio hashes and copies each picture it sends, so thousands
#: would stall every tab); every image is in the output folder either way.
GALLERY_LIMIT = 60


def format_seconds(seconds: float | None) -> str:
    """Return ``h:mm:ss`` (or ``m:ss``) for a duration; an empty string when unknown."""
    if seconds is None:
        return ""
    s = max(round(seconds), 0)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def status_html(state: RunState, lang: str, file_url: Callable[[str], str]) -> str:
    """Return the status bar: what the run is doing, done / total, images/s, ETA, the current file and the links.

    ``file_url`` turns a path on this machine into a link the page can open (the app serves the run folder).
    """

    def t(key: str) -> str:
        return translate(key, lang)

    esc = html.escape
    status = state.status
    headline = t(f"status_{status}")
    parts = []
    if state.total:
        fraction = min(state.done / state.total, 1.0)
        parts.append(f"{state.done} / {state.total} {t('images')}")
    else:
        fraction = 1.0 if status == "completed" else 0.0
        if status not in ("idle", "starting"):
            parts.append(f"{state.done} {t('images')}")
    if state.rate:
        parts.append(f"{state.rate:.2f} {t('per_second')}")
    if state.eta is not None and status in ("running", "stopping"):
        parts.append(f"{t('eta')} {format_seconds(state.eta)}")
    if state.current and status in ("running", "stopping"):
        parts.append(f"{t('current')}: {esc(state.current)}")
    lines = [
        f'<div id="cam-status" class="cam-status cam-{status}" data-status="{status}" data-done="{state.done}" '
        f'data-version="{state.version}">',
        f'<progress id="cam-progress" max="1" value="{fraction:.4f}"></progress>',
        f"<p><strong>{esc(headline)}</strong>{' · ' + ' · '.join(parts) if parts else ''}</p>",
    ]
    if state.failure is not None:
        lines += [
            f'<p id="cam-error" class="cam-error">{esc(state.failure.message)}</p>',
            f'<p id="cam-advice"><strong>{esc(t("advice"))}:</strong> {esc(t("advice_" + state.failure.kind))}</p>',
        ]
    if state.save_dir:
        links = [f"{esc(t('output'))}: <code>{esc(state.save_dir)}</code>"]
        summary = Path(state.save_dir) / "summary.json"
        if status not in ("starting", "running", "stopping") and summary.is_file():
            links.append(
                f'<a id="cam-summary" href="{esc(file_url(str(summary)))}" target="_blank">{esc(t("summary"))}</a>'
            )
        if state.report:
            links.append(
                f'<a id="cam-report" href="{esc(file_url(state.report))}" target="_blank">{esc(t("report"))}</a>'
            )
        lines.append(f"<p>{' · '.join(links)}</p>")
    lines.append("</div>")
    return "\n".join(lines)


def errors_markdown(state: RunState, lang: str) -> str:
    """Return the list of inputs that could not be explained (the run went on without them)."""
    if not state.image_errors:
        return translate("no_image_errors", lang)
    return "\n".join(f"- `{Path(e['source']).name}`: {e['reason']}" for e in state.image_errors)


def gallery_value(state: RunState, limit: int = GALLERY_LIMIT) -> list[tuple[str, str]]:
    """Return the gallery: ``(heatmap.png, image name)`` of the most recent finished images, oldest first."""
    return [(item.heatmap, item.name) for item in state.items[-limit:] if Path(item.heatmap).is_file()]
