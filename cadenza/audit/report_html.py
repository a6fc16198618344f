"""HTML building blocks shared by the audit report and the chain report: one style, escaped tables,
inline PNG figures, sortable tables and the hooks the headless-browser tests read."""

from __future__ import annotations

import base64
import html
import re
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:12px}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}td.n{text-align:right}
th{background:#f3f3f3}
.alert{border-left:4px solid #d1793b;padding:.3em .6em;margin:.4em 0;background:#fff7f0}
.info{border-left:4px solid #3b6ea5;padding:.3em .6em;margin:.4em 0;background:#f3f7fc}
ol.summary li{margin:.6em 0}ol.summary figure{margin:.2em 0}th[data-sort]{background:#e3e9f3}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:12px;color:#555}
code{background:#f3f3f3;padding:0 3px}.small{font-size:12px;color:#555}
"""


NUMERIC = re.compile(r"[-+\d.,%*\[\] e]+")  # cells shown right-aligned


def esc(x: Any) -> str:
    return html.escape(str(x))


def table(headers: list[str], rows: list[list[Any]], sortable: bool = False, attrs: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    if sortable:
        attrs += ' class="sortable"'
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if NUMERIC.fullmatch(str(c)) else ''}>{esc(c)}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img class="plot" alt="{esc(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(name)}: {esc(caption)}</figcaption></figure>"
    )


SORT_JS = r"""
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.style.cursor = "pointer";
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var asc = th.getAttribute("data-sort") !== "asc";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-sort"); });
      th.setAttribute("data-sort", asc ? "asc" : "desc");
      function key(r) {
        var t = r.cells[col].textContent.trim(), x = parseFloat(t.replace(/^[\[+]/, ""));
        return isNaN(x) ? t.toLowerCase() : x;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === "" || y === "") { return x === "" ? 1 : -1; }
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

ERROR_JS = """window.addEventListener("error", function () {
  document.documentElement.setAttribute("data-js-error", "1"); }, true);"""

# the browser tests read data-images and data-images-ok from the root element
IMAGES_CHECK_JS = """
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  document.documentElement.setAttribute("data-images", String(imgs.length));
  document.documentElement.setAttribute("data-images-ok", String(imgs.every(function (i) {
    return i.complete && i.naturalWidth > 0; })));
});
"""


def estimate_svg(picture: dict[str, Any], width: int = 440) -> str:
    """A finding's picture as inline SVG (no plotting library, nothing to load): per row an estimate with
    its 95% CI, and a dashed line at the reference it is judged against."""
    import math

    rows, log = picture["rows"], bool(picture.get("log"))
    row_h, left, right, top = 24, 150, 20, 8
    values = [v for r in rows for v in r[1:4] if v is not None and math.isfinite(v) and (v > 0 or not log)]
    values.append(picture["ref"])
    lo, hi = min(values), max(values)
    if log:
        lo, hi = math.log(lo) - 0.15, math.log(hi) + 0.15
    else:
        lo, hi = max(0.0, lo - 0.05), min(1.0, hi + 0.05) if hi <= 1 else hi * 1.05
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        if not math.isfinite(v):
            v = math.exp(hi) if log else hi
        v = math.log(max(v, 1e-9)) if log else v
        return left + (min(max(v, lo), hi) - lo) / span * (width - left - right)

    height = top + row_h * len(rows) + 30
    parts = [f'<svg class="finding-picture" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(picture["xlabel"])}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, est, ci_lo, ci_hi) in enumerate(rows):
        y = top + row_h * i + row_h / 2
        colour = {"crude": "#9a9a9a", "within annotators": "#3b6ea5"}.get(label, "#d1793b")
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{esc(label)}</text>')
        if not (math.isnan(ci_lo) or math.isnan(ci_hi)):  # a Wilson CI of no clips: no interval to draw
            parts.append(f'<line x1="{x(ci_lo):.1f}" x2="{x(ci_hi):.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#444"/>')
        parts.append(f'<circle cx="{x(est):.1f}" cy="{y:.1f}" r="4.5" fill="{colour}"/>')
    ref_x, axis_y = x(picture["ref"]), top + row_h * len(rows)
    fmt = (lambda v: f"{v:.2g}") if log else (lambda v: f"{100 * v:.0f}%")
    parts.append(f'<line x1="{ref_x:.1f}" x2="{ref_x:.1f}" y1="{top}" y2="{axis_y}" stroke="#000" '
                 f'stroke-dasharray="4 3"/>')
    anchor = "end" if ref_x > width - 90 else "start" if ref_x < left + 90 else "middle"
    parts.append(f'<text x="{ref_x:.1f}" y="{axis_y + 12}" font-size="10" text-anchor="{anchor}">'
                 f'{esc(picture["ref_label"])} {fmt(picture["ref"])}</text>')
    ends = (math.exp(lo), math.exp(hi)) if log else (lo, hi)
    parts.append(f'<text x="{left}" y="{axis_y + 26}" font-size="10">{fmt(ends[0])}</text>')
    parts.append(f'<text x="{width - right}" y="{axis_y + 26}" font-size="10" text-anchor="end">{fmt(ends[1])}</text>')
    parts.append(f'<text x="{(left + width - right) / 2:.0f}" y="{axis_y + 26}" font-size="10" '
                 f'text-anchor="middle" fill="#555">{esc(picture["xlabel"])}{" (log scale)" if log else ""}, 95% CI'
                 f"</text></svg>")
    return "".join(parts)
