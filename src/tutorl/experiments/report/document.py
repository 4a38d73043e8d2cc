"""The report's document model: a list of blocks (headings, paragraphs, lists, tables,
images), built once and rendered as Markdown and as one self-contained HTML file.

The sweep report (:mod:`tutorl.experiments.report`) and the ULTRA report
(:mod:`tutorl.ultra.report`) are both built from these blocks, so they render alike.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# Footnote marks: ¹ ² ³ …
_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass
class Table:
    """A table of text cells with a title, a caption and numbered footnotes."""

    frame: pd.DataFrame
    title: str = ""
    caption: str = ""
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> str:
        """The footnote mark of ``text`` (added on first use)."""
        if text not in self.notes:
            self.notes.append(text)
        return str(self.notes.index(text) + 1).translate(_SUPERSCRIPTS)


@dataclass
class Block:
    """One piece of a document; ``kind`` says what ``content`` is (a ``table`` block holds a
    :class:`Table`, an ``img`` block a ``(src, alt)`` pair)."""

    kind: str  # h1 h2 h3 p code ul dl table img
    content: Any


def _md_text(text: Any) -> str:
    """``text`` safe in Markdown: no raw HTML tags or autolinks (``<`` before a letter)."""
    return re.sub(r"<(?=[A-Za-z/!?])", r"\\<", str(text))


def _md_cell(text: Any) -> str:
    return _md_text(" ".join(str(text).split())).replace("|", "\\|")


def render_markdown(blocks: list[Block]) -> str:
    """The blocks as Markdown (images linked by their ``src``)."""
    out: list[str] = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            out.append("#" * int(block.kind[1]) + " " + _md_text(block.content))
        elif block.kind == "p":
            out.append(_md_text(block.content))
        elif block.kind == "code":
            out.append("```\n" + block.content + "\n```")
        elif block.kind == "ul":
            out.append("\n".join(f"- {_md_text(item)}" for item in block.content))
        elif block.kind == "dl":
            out.append("\n".join(f"- **{_md_text(k)}**: {_md_text(v)}" for k, v in block.content))
        elif block.kind == "img":
            src, alt = block.content
            out.append(f"![{alt}]({src})")
        elif block.kind == "table":
            table: Table = block.content
            lines = []
            if table.title:
                lines.append(f"**{table.title}**\n")
            header = [_md_cell(c) for c in table.frame.columns]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            for values in table.frame.itertuples(index=False):
                lines.append("| " + " | ".join(_md_cell(v) for v in values) + " |")
            if table.caption:
                lines.append("\n" + table.caption)
            if table.notes:
                lines.append("")
                lines.extend(
                    f"{str(i).translate(_SUPERSCRIPTS)} {note}  "
                    for i, note in enumerate(table.notes, 1)
                )
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 78em; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0 0.3em; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right;
         vertical-align: top; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: bold; padding-bottom: 0.3em; }
.notes, .caption { font-size: 0.85em; color: #555; margin: 0.2em 0 1.2em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
img { max-width: 100%; height: auto; }
dt { font-weight: bold; } dd { margin: 0 0 0.5em 1.5em; }
"""


def render_html(blocks: list[Block], title: str, image_data: dict[str, bytes]) -> str:
    """The blocks as one HTML file that opens offline: inline CSS, no scripts, each image
    inlined as a ``data:`` URI from ``image_data`` (``src`` → PNG bytes)."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            out.append(f"<{block.kind}>{esc(block.content)}</{block.kind}>")
        elif block.kind == "p":
            out.append(f"<p>{esc(block.content)}</p>")
        elif block.kind == "code":
            out.append(f"<pre><code>{esc(block.content)}</code></pre>")
        elif block.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block.content) + "</ul>")
        elif block.kind == "dl":
            items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in block.content)
            out.append(f"<dl>{items}</dl>")
        elif block.kind == "img":
            src, alt = block.content
            data = base64.b64encode(image_data[src]).decode("ascii")
            out.append(f'<p><img alt="{esc(alt)}" src="data:image/png;base64,{data}"></p>')
        elif block.kind == "table":
            table: Table = block.content
            parts = ["<table>"]
            if table.title:
                parts.append(f"<caption>{esc(table.title)}</caption>")
            parts.append(
                "<thead><tr>"
                + "".join(f"<th>{esc(str(c))}</th>" for c in table.frame.columns)
                + "</tr></thead><tbody>"
            )
            for values in table.frame.itertuples(index=False):
                parts.append("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in values) + "</tr>")
            parts.append("</tbody></table>")
            if table.caption:
                parts.append(f'<p class="caption">{esc(table.caption)}</p>')
            if table.notes:
                notes = "<br>".join(
                    f"{str(i).translate(_SUPERSCRIPTS)} {esc(note)}"
                    for i, note in enumerate(table.notes, 1)
                )
                parts.append(f'<p class="notes">{notes}</p>')
            out.append("\n".join(parts))
    out.append("</body></html>")
    return "\n".join(out) + "\n"
