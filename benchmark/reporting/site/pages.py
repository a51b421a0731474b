"""The site's HTML: the index (tables, plots, links back to the markdown), the gallery's index and one page
per item.

Every recorded string reaches the page through :func:`esc` (``html.escape``: prompts are user input and
run records are files anyone can edit), and data for the viewer through :func:`script_json`, which
escapes ``<``, ``>`` and ``&`` so that no string can close its ``<script type="application/json">``.
Each page also carries a Content-Security-Policy that allows only the site's own files: no inline
script runs and nothing is fetched from a network, even if a string got through. Styles and scripts
are files under ``assets/`` (the policy forbids inline ones); the pages hold no ``style`` attribute.
"""

from __future__ import annotations

import json
from html import escape
from typing import Iterable, Optional

from benchmark.reporting.site.gallery import Item, Panel, thumbnail
from benchmark.reporting.site.plots import interval_chart
from benchmark.reporting.site.tables import Cell, Table

POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'"
INDEX, GALLERY = "index.html", "gallery.html"


def esc(value) -> str:
    """A recorded value as HTML text or attribute value."""
    return escape(str(value), quote=True)


def script_json(value) -> str:
    """``value`` as JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def page(title: str, body: str, current: str, reports: Iterable[tuple[str, str]] = ()) -> str:
    """A whole page: the policy, the site's style and script, the navigation and an error sink (hidden:
    the script writes any error of its own there, where a test of the DOM finds it)."""
    links = [(INDEX, "tables and plots"), (GALLERY, "gallery")]
    nav = " · ".join(f'<a href="{esc(href)}"' + (' aria-current="page"' if href == current else "") + f">{esc(text)}</a>"
                     for href, text in links)
    markdown = " · ".join(f'<a href="{esc(href)}">{esc(name)}</a>' for href, name in reports)
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{esc(POLICY)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)} · asd-bench</title>",
        '<link rel="stylesheet" href="assets/site.css"><script src="assets/site.js" defer></script></head>',
        f"<body><header><strong>asd-bench</strong> <nav>{nav}</nav>"
        + (f' <span class="markdown">markdown: {markdown}</span>' if markdown else "") + "</header>",
        '<pre id="js-errors" hidden></pre>', "<main>", f"<h1>{esc(title)}</h1>", body, "</main></body></html>", ""])


def _cell(cell: Cell) -> str:
    sort = "" if cell.sort is None else f' data-sort="{cell.sort!r}"'
    interval = f' <span class="interval">{esc(cell.interval)}</span>' if cell.interval else ""
    return f"<td{sort}>{esc(cell.text)}{interval}</td>"


def _provenance(table: Table, index: int, links: dict[int, str]) -> str:
    lines = "".join(f"<li>{esc(line)}</li>" for line in table.provenance(index))
    run = links.get(id(table.runs[index]))
    files = (f'<li>run folder: <a href="{esc(run)}/results.json">results.json</a>, '
             f'<a href="{esc(run)}/run.json">run.json</a></li>') if run else ""
    return f'<td><details class="provenance"><summary>provenance</summary><ul>{lines}{files}</ul></details></td>'


def table_html(table: Table, anchor: str, links: dict[int, str]) -> str:
    """A sortable table (the script sorts by ``data-sort`` where a column has numbers, else by text) with each
    row's provenance one click away; ``links``: a run's (``id`` of its results) URL of its folder."""
    head = "".join(f'<th scope="col"><button type="button">{esc(column)}</button></th>' for column in table.columns)
    rows = "".join(f'<tr data-method="{esc(run["method"])}">' + "".join(_cell(cell) for cell in cells)
                   + _provenance(table, index, links) + "</tr>"
                   for index, (run, cells) in enumerate(zip(table.runs, table.rows)))
    return (f'<table class="sortable" id="{esc(anchor)}"><thead><tr>{head}<th scope="col">how</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def score_charts(table: Table) -> str:
    """One chart per score of the table that any run has: each run's value and interval."""
    charts = (interval_chart(f"{column} ({table.title})", table.points(metric)) for metric, column, _ in table.scores)
    return "".join(f'<figure class="chart">{chart}</figure>' for chart in charts if chart)


def _panel(item: Item, panel: Panel, index: int, links: dict[int, str]) -> str:
    record, row = panel.record, panel.row
    seeds = ", ".join(f"{name} {value}" for name, value in sorted((record.get("seeds") or {}).items()))
    facts = [("prompt", record.get("prompt", "–")), ("item", row.get("item") or "–"), ("seeds", seeds or "–"),
             ("size", f"{row['size'][0]}×{row['size'][1]}"),
             ("stage I size", "×".join(map(str, row.get("stage1_size") or [])) or "–"),
             ("seconds", f"{row['seconds']:.2f}" if row.get("seconds") is not None else "–"),
             ("peak memory", f"{row['peak_memory_mib']:.0f} MiB ({record.get('memory_kind', '?')})"
              if row.get("peak_memory_mib") is not None else "–")]
    grid = panel.grid()
    facts.append(("stage II tiles", f"{grid['strategy']}, {grid['tile_px']} px" if grid else "untiled"))
    facts += [(name, f"{value:.4g}" if isinstance(value, float) else value) for name, value in sorted(panel.scores.items())]
    run = links.get(id(panel.result), "")
    kind = " · ceiling-search trial, one step per stage" if panel.ceiling else ""
    details = (f'<dt>run</dt><dd><a href="{esc(run)}/results.json">{esc(panel.run.name)}</a></dd>'
               + "".join(f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in facts))
    lines = "" if grid is None else "".join(
        [f'<line x1="0" x2="{item.size[1]}" y1="{y}" y2="{y}"/>' for y in grid["rows"]]
        + [f'<line x1="{x}" x2="{x}" y1="0" y2="{item.size[0]}"/>' for x in grid["columns"]])
    overlay = (f'<svg class="tile-grid" xmlns="http://www.w3.org/2000/svg" width="{item.size[1]}" '
               f'height="{item.size[0]}" viewBox="0 0 {item.size[1]} {item.size[0]}">{lines}</svg>') if grid else ""
    return (f'<figure class="panel" data-index="{index}" data-method="{esc(panel.result["method"])}">'
            f"<figcaption><strong>{esc(panel.label)}</strong>{esc(kind)}</figcaption>"
            f'<div class="viewport" tabindex="0"><div class="stage"><div class="layer"></div>{overlay}</div></div>'
            f'<dl class="record">{details}</dl><details><summary>whole sample record</summary>'
            f"<pre>{esc(json.dumps(record, indent=1, ensure_ascii=False, sort_keys=True))}</pre></details></figure>")


TOOLBAR = ('<div class="toolbar"><button type="button" data-act="fit">fit</button>'
           '<button type="button" data-act="pixels">1:1 pixels</button>'
           '<button type="button" data-act="in">zoom in</button><button type="button" data-act="out">zoom out</button>'
           '<label><input type="checkbox" id="grid-toggle"> stage II tile grid</label>'
           '<span id="view-status" aria-live="polite"></span></div>')


def item_page(item: Item, sources: list[dict], links: dict[int, str], previous: Optional[str],
              following: Optional[str]) -> str:
    """The body of one item's page: the shared toolbar, every panel side by side, the viewer's data."""
    steps = " · ".join(filter(None, [f'<a href="{esc(previous)}">previous item</a>' if previous else "",
                                     f'<a href="{GALLERY}">all items</a>',
                                     f'<a href="{esc(following)}">next item</a>' if following else ""]))
    data = {"width": item.size[1], "height": item.size[0], "panels": sources}
    panels = "".join(_panel(item, panel, index, links) for index, panel in enumerate(item.panels))
    return (f'<p class="steps">{steps}</p><p class="prompt">Prompt: <q>{esc(item.prompt)}</q></p>'
            "<p>Scroll to zoom, drag to pan: every image follows, down to single pixels. "
            "Keys: + − 0 (fit) 1 (1:1).</p>" + TOOLBAR
            + f'<div class="panels" data-count="{len(item.panels)}">{panels}</div>'
            + f'<script type="application/json" id="viewer-data">{script_json(data)}</script>'
            + '<pre id="probe" hidden></pre>')


def gallery_index(items: dict[str, list[Item]], pages: dict[int, str], sources: dict[int, list[dict]]) -> str:
    """The body of the gallery's index: every item per profile, its prompt and a thumbnail per image."""
    if not items:
        return "<p>No images under these runs (oracle runs make latents, not images).</p>"
    blocks = []
    for profile, listed in items.items():
        cards = []
        for item in listed:
            thumbs = "".join(f'<img src="{esc(thumbnail(source))}" alt="{esc(panel.label)}" loading="lazy">'
                             for panel, source in zip(item.panels, sources[id(item)]))
            cards.append(f'<li><a href="{esc(pages[id(item)])}">{esc(item.title)}</a> — {len(item.panels)} images'
                         f'<br><q>{esc(item.prompt)}</q><div class="thumbs">{thumbs}</div></li>')
        blocks.append(f"<h2>Profile <code>{esc(profile)}</code></h2><ul class=\"items\">{''.join(cards)}</ul>")
    return "".join(blocks)


def index_body(profiles: dict[str, tuple[list[Table], list[str]]], links: dict[int, str], item_count: int) -> str:
    """The body of the index: per profile, its plots of memory and time, then each table with its score plots."""
    blocks = [f'<p>Every scored run, one row each (sort by any column); each score with its 95% interval in '
              f'brackets, its provenance one click away. The <a href="{GALLERY}">gallery</a> shows the images of '
              f"{item_count} item{'s' * (item_count != 1)} side by side. The markdown reports hold the paper's tables.</p>"]
    if not profiles:
        blocks.append("<p>No scored model run under these runs.</p>")
    for profile, (tables, charts) in profiles.items():
        blocks.append(f'<section id="profile-{esc(profile)}"><h2>Profile <code>{esc(profile)}</code></h2>')
        if charts:
            blocks.append('<div class="charts">' + "".join(f'<figure class="chart">{chart}</figure>' for chart in charts)
                          + "</div>")
        for number, table in enumerate(tables):
            blocks += [f"<h3>{esc(table.title)}</h3>", '<div class="scroll">',
                       table_html(table, f"table-{profile}-{number}", links), "</div>",
                       f'<details class="score-plots"><summary>scores with intervals, as plots</summary>'
                       f'<div class="charts">{score_charts(table)}</div></details>']
        blocks.append("</section>")
    return "\n".join(blocks)
