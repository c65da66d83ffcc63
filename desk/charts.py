"""Charts of the web pages, drawn on the server as inline SVG with pygal.

Why pygal: it is pure Python (about 1 MB installed, no dependencies), draws bar charts with axes, legends and
locale-formatted values, and writes SVG text, so a page embeds the chart and needs no image request and no
script. matplotlib would bring numpy and a rendering backend (some 40 MB) for the same few bar charts.

pygal puts a `<script>` with its configuration into every chart (for hover tooltips); it is removed here, so
the pages stay script-free (their CSP forbids scripts anyway). Every chart is shown beside the table with its
figures, which is also what screen readers read; the SVG carries a <title> for them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import pygal
from markupsafe import Markup
from pygal.etree import etree
from pygal.style import Style

# pygal appends an import hook for its map plugins (pygal.maps.*) that only has the find_module() which Python
# 3.12 dropped: every later import then warns. Kontor draws no maps, so the hook is taken out again.
sys.meta_path[:] = [finder for finder in sys.meta_path if type(finder).__name__ != "PluginImportFixer"]

__all__ = ["bar_chart"]

STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#1a1a1a",
    foreground_strong="#1a1a1a",
    foreground_subtle="#d0d0d0",
    opacity="1",
    opacity_hover="1",
    colors=("#2f5d8a", "#c0504d", "#e3a21a", "#6f9a3e", "#7f6a9e"),
    font_family="system-ui, sans-serif",
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=13,
    title_font_size=15,
    value_font_size=11,
)


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    value: Callable[[float], str],
    chart_id: str,
    height: int = 320,
) -> Markup:
    """A bar chart (one bar per series and label) as inline SVG in a <figure id=chart_id>; `value` writes a number for the axis
    and the value labels."""
    chart = pygal.Bar(
        title=title,
        style=STYLE,
        width=900,
        height=height,
        js=[],
        disable_xml_declaration=True,
        explicit_size=False,
        legend_at_bottom=True,
        legend_at_bottom_columns=max(len(series), 1),
        show_legend=len(series) > 1,
        value_formatter=value,
        print_values=len(labels) * len(series) <= 12,
        x_label_rotation=0 if len(labels) <= 12 else 30,
        margin=12,
    )
    chart.x_labels = list(labels)
    for name, values in series:
        chart.add(name, [v or None for v in values])  # no bar and no "0,00" label for nothing
    tree = chart.render_tree()
    for parent in list(tree.iter()):
        for child in list(parent):
            if child.tag in ("script", "{http://www.w3.org/2000/svg}script"):
                parent.remove(child)
    tree.set("role", "img")
    tree.set("aria-label", title)
    svg: str = etree.tostring(tree, encoding="unicode")
    return Markup('<figure class="chart" id="{}">{}</figure>').format(chart_id, Markup(svg))  # noqa: S704 - pygal escapes the texts it writes (ElementTree serialisation)
