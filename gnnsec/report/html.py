"""``report.html``: one self-contained file (figures as base64 data URIs, inline CSS, no script, no CDN).

Built with the standard library (``html.escape``) and pandas ``DataFrame.to_html`` only. Sections:
provenance, where we differ from the paper, tables (each with a ``<caption>``), figures (``<figcaption>``),
and what could not be rendered, with the reason.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from gnnsec.report.summary import NOTE, Table, display_frame

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#f0f0f0}
caption{caption-side:top;font-weight:bold;text-align:left;padding:4px 0}
figure{margin:1em 0 2em}img{max-width:100%;border:1px solid #ddd}figcaption{font-style:italic}
.note{color:#555;font-size:0.85em}code{background:#f4f4f4;padding:0 3px}
"""


def _table_html(frame: pd.DataFrame, caption: str, css_class: str = "") -> str:
    body = frame.to_html(index=False, escape=True, border=0, na_rep="", classes=css_class or None)
    return body.replace(">\n  <thead>", f">\n  <caption>{html.escape(caption)}</caption>\n  <thead>", 1)


def _kv(items: Mapping[str, str]) -> str:
    frame = pd.DataFrame({"": list(items), "value": [str(v) for v in items.values()]})
    return _table_html(frame, "Provenance")


def data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}[path.suffix.lower()]
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(
    title: str,
    provenance: Mapping[str, str],
    tables: Sequence[Table],
    figures: Sequence[tuple[str, str, Path]],
    differences: pd.DataFrame,
    skipped: Sequence[tuple[str, str]],
) -> str:
    """The page. ``figures``: (key, caption, PNG path); ``skipped``: (caption, reason)."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        "<h2>Provenance</h2>",
        _kv(provenance),
        "<h2>Where we differ from the paper</h2>",
    ]
    if differences.empty:
        out.append("<p>No cell with both our value and the paper's is more than 10 points apart.</p>")
    else:
        shown = differences.copy()
        for c, fmt in (("ours_mean", "{:.2f}"), ("paper", "{:.2f}"), ("gap", "{:+.2f}")):
            shown[c] = shown[c].map(fmt.format)
        out.append(f"<p>{len(shown)} cells (percent metrics) more than 10 points from the paper's value.</p>")
        out.append(_table_html(shown, "Cells more than 10 points from the paper"))
    out.append("<h2>Tables</h2>")
    out.append(f'<p class="note">{e(NOTE)}</p>')
    for t in tables:
        out.append(f'<section id="{e(t.key)}">')
        out.append(_table_html(display_frame(t), t.caption))
        if t.note:
            out.append(f'<p class="note">{e(t.note)}</p>')
        out.append(
            f'<p class="note">CSV: <code>{e(t.key)}.csv</code>, Markdown: <code>{e(t.key)}.md</code></p>'
        )
        out.append("</section>")
    out.append("<h2>Figures</h2>")
    for key, caption, png in figures:
        out.append(
            f'<figure id="{e(key)}"><img alt="{e(caption)}" src="{data_uri(png)}">'
            f"<figcaption>{e(caption)} (data: <code>{e(key)}.csv</code>)</figcaption></figure>"
        )
    out.append("<h2>Not rendered</h2>")
    if skipped:
        out.append("<ul>" + "".join(f"<li>{e(c)}: {e(r)}</li>" for c, r in skipped) + "</ul>")
    else:
        out.append("<p>Every table and figure of both papers was rendered.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
