/* asd-bench report site: sortable tables, the gallery's synchronised viewer, and a probe for the tests.
 *
 * Our own few lines rather than a library: the site must open from the file system with nothing fetched,
 * and what it needs is small (one view shared by every image of an item, tiles of a pyramid chosen by zoom).
 * Any error is written into #js-errors as well as the console, so a test reading the DOM sees it.
 */
"use strict";
(function () {
  const errors = [];
  function fail(text) {
    errors.push(String(text));
    const sink = document.getElementById("js-errors");
    if (sink) { sink.textContent = errors.join("\n"); sink.hidden = false; }
    document.documentElement.dataset.jsErrors = String(errors.length);
  }
  window.addEventListener("error", (event) => {
    const target = event.target;
    if (target && target !== window && target.tagName) {
      fail("failed to load " + (target.currentSrc || target.src || target.href));
    } else fail(event.message + " (" + event.filename + ":" + event.lineno + ")");
  }, true);
  window.addEventListener("unhandledrejection", (event) => fail("unhandled rejection: " + event.reason));
  document.addEventListener("securitypolicyviolation", (event) => fail("blocked by the page's policy: " +
    event.violatedDirective + " " + event.blockedURI));

  /* Tables: a click on a header sorts by it; by data-sort where the column has numbers (cells without one
   * last, either way), else by text. */
  function sortable(table) {
    const heads = Array.from(table.tHead.rows[0].cells);
    heads.forEach((th, column) => {
      const button = th.querySelector("button");
      if (!button) return;
      button.addEventListener("click", () => {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach((other) => other.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        const numeric = rows.some((row) => row.cells[column].dataset.sort !== undefined);
        const key = (row) => {
          const cell = row.cells[column];
          if (!numeric) return cell.textContent.trim();
          return cell.dataset.sort === undefined ? null : Number(cell.dataset.sort);
        };
        rows.sort((a, b) => {
          const ka = key(a), kb = key(b);
          if (ka === null || kb === null) return (ka === null) - (kb === null);
          const order = numeric ? ka - kb : ka.localeCompare(kb);
          return ascending ? order : -order;
        });
        rows.forEach((row) => body.appendChild(row));
      });
    });
  }

  const MAX_SCALE = 64;  // screen px per image px: single pixels are squares of 64 px

  /* One panel: a viewport whose stage holds the image (or the pyramid's tiles) in image pixels, moved and
   * scaled by one CSS transform. */
  function panel(figure, source, width, height) {
    const viewport = figure.querySelector(".viewport");
    const stage = figure.querySelector(".stage");
    const layer = figure.querySelector(".layer");
    viewport.style.aspectRatio = width + " / " + height;
    stage.style.width = width + "px";
    stage.style.height = height + "px";
    const tiles = new Map();
    function picture(src, left, top, w, h) {
      const img = new Image();
      img.alt = "";
      img.draggable = false;
      img.src = src;
      img.style.left = left + "px";
      img.style.top = top + "px";
      img.style.width = w + "px";
      img.style.height = h + "px";
      layer.appendChild(img);
      return img;
    }
    if (source.kind === "image") picture(source.src, 0, 0, width, height);
    else picture(source.base + "/" + (source.levels - 1) + "/0_0.png", 0, 0, width, height).className = "backdrop";
    function drawTiles(view, box) {
      const level = Math.max(0, Math.min(source.levels - 1, Math.floor(Math.log2(1 / view.s))));
      const span = source.tile * 2 ** level;  // image px under one tile of this level
      const c0 = Math.max(0, Math.floor(view.x / span));
      const c1 = Math.min(Math.ceil(width / span) - 1, Math.floor((view.x + box.width / view.s) / span));
      const r0 = Math.max(0, Math.floor(view.y / span));
      const r1 = Math.min(Math.ceil(height / span) - 1, Math.floor((view.y + box.height / view.s) / span));
      const wanted = new Set();
      for (let r = r0; r <= r1; r++) {
        for (let c = c0; c <= c1; c++) {
          const key = level + "/" + r + "_" + c;
          wanted.add(key);
          if (!tiles.has(key)) {
            tiles.set(key, picture(source.base + "/" + key + ".png", c * span, r * span,
              Math.min(span, width - c * span), Math.min(span, height - r * span)));
          }
        }
      }
      for (const [key, img] of tiles) if (!wanted.has(key)) { img.remove(); tiles.delete(key); }
    }
    return {
      figure, viewport, stage,
      grid: figure.querySelector(".tile-grid"),
      tiles: () => Array.from(tiles.values()),
      draw(view) {
        stage.style.transform = "translate(" + (-view.x * view.s) + "px, " + (-view.y * view.s) + "px) scale(" + view.s + ")";
        stage.classList.toggle("pixels", view.s >= 1);
        stage.style.setProperty("--grid-line", String(1.5 / view.s));  // 1.5 screen px at any zoom
        if (source.kind === "pyramid") drawTiles(view, viewport.getBoundingClientRect());
      },
    };
  }

  /* The gallery: every panel shows one view {s: screen px per image px, x, y: the image point at the
   * viewport's top left}; any wheel, drag, key or button changes it and every panel redraws. The URL's hash
 * may ask for a view: #zoom=S&at=X,Y (image point X, Y in the middle) and #grid (the tile grid on). */
  function viewer(data) {
    const width = data.width, height = data.height;
    const panels = Array.from(document.querySelectorAll(".panel"))
      .map((figure, index) => panel(figure, data.panels[index], width, height));
    const status = document.getElementById("view-status");
    const view = { s: 1, x: 0, y: 0, fitted: true };  // fitted: a resized window fits the images again
    const box = () => panels[0].viewport.getBoundingClientRect();
    const fitScale = () => Math.min(box().width / width, box().height / height);
    function draw() {
      panels.forEach((p) => p.draw(view));
      status.textContent = "zoom " + Math.round(view.s * 100) + "%";
    }
    function zoomAt(factor, cx, cy) {
      const s = Math.min(MAX_SCALE, Math.max(fitScale() / 2, view.s * factor));
      view.fitted = false;
      const px = view.x + cx / view.s, py = view.y + cy / view.s;
      view.s = s; view.x = px - cx / s; view.y = py - cy / s;
      draw();
    }
    function fit() {
      const b = box();
      view.s = fitScale();
      view.fitted = true;
      view.x = (width - b.width / view.s) / 2;
      view.y = (height - b.height / view.s) / 2;
      draw();
    }
    const centre = () => [box().width / 2, box().height / 2];
    const actions = {
      fit,
      pixels: () => zoomAt(1 / view.s, ...centre()),
      in: () => zoomAt(2, ...centre()),
      out: () => zoomAt(0.5, ...centre()),
    };
    document.querySelectorAll(".toolbar button[data-act]").forEach((button) =>
      button.addEventListener("click", () => actions[button.dataset.act]()));
    const toggle = document.getElementById("grid-toggle");
    toggle.addEventListener("change", () => document.body.classList.toggle("show-grid", toggle.checked));
    let drag = null;
    panels.forEach((p) => {
      const v = p.viewport;
      v.addEventListener("wheel", (event) => {
        event.preventDefault();
        const r = v.getBoundingClientRect();
        const delta = event.deltaY * (event.deltaMode === 1 ? 16 : 1);
        zoomAt(Math.exp(-delta * 0.0015), event.clientX - r.left, event.clientY - r.top);
      }, { passive: false });
      v.addEventListener("dblclick", (event) => {
        const r = v.getBoundingClientRect();
        zoomAt(2, event.clientX - r.left, event.clientY - r.top);
      });
      v.addEventListener("pointerdown", (event) => {
        drag = { x: event.clientX, y: event.clientY, viewport: v };
        v.classList.add("dragging");
        try { v.setPointerCapture(event.pointerId); } catch (e) { /* a synthetic pointer has nothing to capture */ }
      });
      v.addEventListener("pointermove", (event) => {
        const r = v.getBoundingClientRect();
        const px = Math.floor(view.x + (event.clientX - r.left) / view.s);
        const py = Math.floor(view.y + (event.clientY - r.top) / view.s);
        status.textContent = "zoom " + Math.round(view.s * 100) + "% · pixel (x " + px + ", y " + py + ")";
        if (!drag || drag.viewport !== v) return;
        view.fitted = false;
        view.x -= (event.clientX - drag.x) / view.s;
        view.y -= (event.clientY - drag.y) / view.s;
        drag.x = event.clientX; drag.y = event.clientY;
        draw();
      });
      const end = () => { drag = null; v.classList.remove("dragging"); };
      v.addEventListener("pointerup", end);
      v.addEventListener("pointercancel", end);
      v.addEventListener("keydown", (event) => {
        const keys = { "+": actions.in, "=": actions.in, "-": actions.out, "0": fit, "1": actions.pixels };
        if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
      });
    });
    window.addEventListener("resize", () => (view.fitted ? fit() : draw()));
    fit();
    const asked = new URLSearchParams(location.hash.slice(1));  // e.g. #zoom=8&at=120,64&grid: a view to link to
    if (asked.has("grid")) toggle.click();
    const at = (asked.get("at") || "").split(",").map(Number), zoom = Number(asked.get("zoom"));
    if (zoom > 0 && at.length === 2 && at.every(Number.isFinite)) {
      view.s = Math.min(MAX_SCALE, zoom);
      view.fitted = false;
      view.x = at[0] - box().width / 2 / view.s;
      view.y = at[1] - box().height / 2 / view.s;
      draw();
    }
    return panels;
  }

  /* For the tests (the URL ends in #probe): a wheel on the first panel, a drag on the last, the grid toggled,
   * and each step's transforms of every panel written into #probe as JSON. */
  function probe(panels) {
    const snap = () => panels.map((p) => p.stage.style.transform);
    const result = { initial: snap() };
    const first = panels[0].viewport.getBoundingClientRect();
    panels[0].viewport.dispatchEvent(new WheelEvent("wheel", { deltaY: -600, clientX: first.left + first.width / 2,
      clientY: first.top + first.height / 2, bubbles: true, cancelable: true }));
    result.wheel = snap();
    const last = panels[panels.length - 1].viewport, box = last.getBoundingClientRect();
    const pointer = (type, dx, dy) => last.dispatchEvent(new PointerEvent(type, { pointerId: 7, bubbles: true,
      clientX: box.left + box.width / 2 + dx, clientY: box.top + box.height / 2 + dy, buttons: 1 }));
    pointer("pointerdown", 0, 0); pointer("pointermove", -40, -30); pointer("pointerup", -40, -30);
    result.drag = snap();
    document.getElementById("grid-toggle").click();
    result.grids = panels.filter((p) => p.grid && getComputedStyle(p.grid).display !== "none").length;
    setTimeout(() => {
      result.tiles = panels.map((p) => p.tiles().map((img) => ({ src: img.getAttribute("src"),
        loaded: img.complete && img.naturalWidth > 0 })));
      result.errors = errors.length;
      const out = document.getElementById("probe");
      out.textContent = JSON.stringify(result);
      out.dataset.done = "1";
    }, 500);
  }

  document.querySelectorAll("table.sortable").forEach(sortable);
  /* #sort=COLUMN sorts every table by the column headed COLUMN (#sort=-COLUMN: descending): a sorted table to
   * link to. */
  const sortBy = new URLSearchParams(location.hash.slice(1)).get("sort");
  if (sortBy) {
    const name = sortBy.replace(/^-/, "");
    document.querySelectorAll("table.sortable th button").forEach((button) => {
      if (button.textContent.trim() !== name) return;
      button.click();
      if (sortBy.startsWith("-")) button.click();
    });
  }
  const data = document.getElementById("viewer-data");
  if (data) {
    const panels = viewer(JSON.parse(data.textContent));
    if (new URLSearchParams(location.hash.slice(1)).has("probe")) probe(panels);
  }
  document.documentElement.dataset.ready = "1";
})();
