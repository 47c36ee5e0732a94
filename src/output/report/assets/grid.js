// grid.js: drawing. The grid is one canvas that shows only the columns in view, so a
// 2048-token prompt costs what a short one does. Over it, the scroll container holds a
// spacer as wide as the whole grid and, for the columns in view only, one transparent
// element per cell (class "cell", with data-row, data-layer, data-site, data-position and
// data-lens):
// hover and click land on real elements, and tests can find every cell on screen. Cell
// colours, ticks and their places, chart points, legends, row labels and token glyphs come
// from the view (LL.readView).

LL.CELL_H = 22;
LL.AXIS_H = 44;
LL.FONT = '12px system-ui, "DejaVu Sans", sans-serif';
LL.SMALL_FONT = '10px system-ui, "DejaVu Sans", sans-serif';
LL.HIT = "#ff2e88";
LL.PIN = "#ff9f1c";

LL.Grid = class {
  constructor(panel, canvas, scroller, space, view) {
    this.view = view;
    this.panel = panel;
    this.canvas = canvas;
    this.scroller = scroller;
    this.space = space;
    this.ctx = canvas.getContext("2d");
    this.overlays = new Map();
    this.pinned = null;
    this.frame = 0;
    this.widths = new Map();
    this.missing = this.hatch();
    scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    window.addEventListener("resize", () => {
      this.resize();
      this.schedule();
    });
  }

  /**
   * Shows `report`, the document's report number `index`, scrolled to its start; its
   * columns are laid out over `group` (the same prompt under every lens shown), so that
   * side-by-side grids line up.
   */
  setReport(report, index, group) {
    this.report = report;
    this.lens = report.lens;
    this.rows = report.layers;
    this.labels = this.view.reports[index].rows;
    this.ctx.font = LL.FONT;
    this.cols = LL.columns(group || [report], (t) => this.glyphs(t), (t) => this.measure(t), 40, 140, 10);
    let gutter = 0;
    this.labels.forEach((label) => {
      gutter = Math.max(gutter, this.measure(label));
    });
    this.gutter = Math.ceil(Math.max(gutter, this.measure("position"))) + 16;
    this.pinned = null;
    for (const els of this.overlays.values()) els.forEach((e) => e.remove());
    this.overlays.clear();
    this.space.style.width = this.cols.x[this.cols.w.length] + "px";
    this.space.style.height = this.rows.length * LL.CELL_H + LL.AXIS_H + "px";
    this.scroller.style.left = this.gutter + "px";
    this.scroller.scrollLeft = 0;
    this.resize();
  }

  /** Colours cells by `metric` (the view's): `cells`, the view's codes of this report's rows. */
  setColors(metric, cells) {
    this.metric = metric;
    this.cells = cells;
  }

  /** The glyphs drawn for a token's text. */
  glyphs(text) {
    return LL.glyphs(this.view, text);
  }

  /** A label's width in the cell font (cached). */
  measure(text) {
    let w = this.widths.get(text);
    if (w === undefined) {
      w = this.ctx.measureText(text).width;
      this.widths.set(text, w);
    }
    return w;
  }

  /** `text` cut with "…" to fit `width` px. */
  fit(text, width) {
    if (this.measure(text) <= width) return text;
    const chars = Array.from(text);
    let lo = 0;
    let hi = chars.length;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.measure(chars.slice(0, mid).join("") + "\u2026") <= width) lo = mid;
      else hi = mid - 1;
    }
    return chars.slice(0, lo).join("") + "\u2026";
  }

  /** Sizes the panel and the canvas to the grid's height and the page's width. */
  resize() {
    const h = this.rows.length * LL.CELL_H + LL.AXIS_H;
    this.panel.style.height = h + "px";
    const bar = this.scroller.offsetHeight - this.scroller.clientHeight;
    this.panel.style.height = h + bar + "px";
    const w = this.panel.clientWidth;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    this.canvas.style.width = w + "px";
    this.canvas.style.height = h + "px";
    this.width = w;
    this.height = h;
    this.dpr = dpr;
  }

  /** Redraws at the next frame. */
  schedule() {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.draw();
      });
    }
  }

  /** The first and last column in view. */
  visible() {
    const left = this.scroller.scrollLeft;
    const right = left + Math.max(0, this.width - this.gutter);
    return [LL.columnAt(this.cols, left), LL.columnAt(this.cols, right)];
  }

  /** The top of row `r` (row 0, the embeddings, is at the bottom). */
  top(r) {
    return (this.rows.length - 1 - r) * LL.CELL_H;
  }

  /** The grey hatch of cells without a value. */
  hatch() {
    const tile = document.createElement("canvas");
    tile.width = 6;
    tile.height = 6;
    const g = tile.getContext("2d");
    g.fillStyle = this.view.palette.no_value;
    g.fillRect(0, 0, 6, 6);
    g.strokeStyle = this.view.palette.hatch;
    g.lineWidth = 2;
    g.beginPath();
    g.moveTo(-1, 7);
    g.lineTo(7, -1);
    g.stroke();
    return this.ctx.createPattern(tile, "repeat");
  }

  /** Draws the columns in view, the row labels and the token axis. */
  draw() {
    const ctx = this.ctx;
    const report = this.report;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, this.width, this.height);
    const [first, last] = this.visible();
    const sx = this.gutter - this.scroller.scrollLeft;
    const gridH = this.rows.length * LL.CELL_H;
    ctx.save();
    ctx.beginPath();
    ctx.rect(this.gutter, 0, this.width - this.gutter, this.height);
    ctx.clip();
    ctx.font = LL.FONT;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    for (let p = first; p <= last; p++) {
      const x = sx + this.cols.x[p];
      const w = this.cols.w[p];
      const next = LL.nextId(report, p);
      for (let r = 0; r < this.rows.length; r++) {
        const cell = this.rows[r].positions[p];
        if (!cell) continue;
        const y = this.top(r);
        const colour = LL.cellColour(this.view.palette, this.cells[r], p);
        ctx.fillStyle = colour ? colour.fill : this.missing;
        ctx.fillRect(x, y, w - 1, LL.CELL_H - 1);
        ctx.fillStyle = colour ? colour.ink : "#333";
        ctx.fillText(this.fit(this.glyphs(LL.label(cell)), w - 7), x + w / 2, y + LL.CELL_H / 2 + 0.5);
        if (next !== null && !cell.nonfinite && cell.id === next) {
          ctx.strokeStyle = LL.HIT;
          ctx.lineWidth = 2;
          ctx.strokeRect(x + 1.5, y + 1.5, w - 4, LL.CELL_H - 4);
        }
      }
      ctx.fillStyle = "#1d2330";
      ctx.fillText(this.fit(this.glyphs(report.tokens[p].display), w - 4), x + w / 2, gridH + 12);
      if (w >= 34 || p % 5 === 0) {
        ctx.font = LL.SMALL_FONT;
        ctx.fillStyle = "#7a8292";
        ctx.fillText(String(p), x + w / 2, gridH + 31);
        ctx.font = LL.FONT;
      }
    }
    if (this.pinned) {
      const { row, position } = this.pinned;
      ctx.strokeStyle = LL.PIN;
      ctx.lineWidth = 3;
      ctx.strokeRect(sx + this.cols.x[position] + 0.5, this.top(row) + 0.5, this.cols.w[position] - 2, LL.CELL_H - 2);
    }
    ctx.restore();
    ctx.font = LL.FONT;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillStyle = "#1d2330";
    for (let r = 0; r < this.rows.length; r++) {
      const mid = this.rows[r].site === "resid_mid";
      ctx.fillStyle = mid ? "#7a8292" : "#1d2330";
      ctx.fillText(this.labels[r], this.gutter - 8, this.top(r) + LL.CELL_H / 2 + 0.5);
    }
    ctx.fillStyle = "#1d2330";
    ctx.fillText("token", this.gutter - 8, gridH + 12);
    ctx.font = LL.SMALL_FONT;
    ctx.fillStyle = "#7a8292";
    ctx.fillText("position", this.gutter - 8, gridH + 31);
    this.syncOverlays(first, last);
  }

  /** Keeps one transparent element per cell of the columns in view, and no others. */
  syncOverlays(first, last) {
    for (const [p, els] of this.overlays) {
      if (p < first || p > last) {
        els.forEach((e) => e.remove());
        this.overlays.delete(p);
      }
    }
    const fragment = document.createDocumentFragment();
    for (let p = first; p <= last; p++) {
      if (this.overlays.has(p)) continue;
      const els = [];
      for (let r = 0; r < this.rows.length; r++) {
        const e = document.createElement("div");
        e.className = "cell";
        e.style.left = this.cols.x[p] + "px";
        e.style.top = this.top(r) + "px";
        e.style.width = this.cols.w[p] + "px";
        e.style.height = LL.CELL_H + "px";
        e.dataset.row = r;
        e.dataset.layer = this.rows[r].layer;
        e.dataset.site = this.rows[r].site;
        e.dataset.position = p;
        e.dataset.lens = this.lens;
        els.push(e);
        fragment.appendChild(e);
      }
      this.overlays.set(p, els);
    }
    this.space.appendChild(fragment);
  }
};

/** Draws a horizontal colour bar in `palette` for `scale` (the view's), with its ticks and `title`. */
LL.drawColorbar = function (canvas, palette, scale, title) {
  const dpr = window.devicePixelRatio || 1;
  const W = 440;
  const H = 46;
  canvas.width = W * dpr;
  canvas.height = H * dpr;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  const x0 = 8;
  const x1 = W - 16;
  const last = palette.colours.length - 1;
  for (let x = x0; x < x1; x++) {
    ctx.fillStyle = palette.colours[Math.round(((x - x0) / (x1 - x0 - 1)) * last)];
    ctx.fillRect(x, 16, 1, 12);
  }
  ctx.strokeStyle = "#5b6475";
  ctx.strokeRect(x0 - 0.5, 15.5, x1 - x0 + 1, 13);
  ctx.font = LL.SMALL_FONT;
  ctx.fillStyle = "#1d2330";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const [, label, at] of scale.ticks) {
    const x = x0 + at * (x1 - x0);
    ctx.fillRect(Math.round(x), 28, 1, 4);
    ctx.fillText(label, x, 33);
  }
  ctx.font = LL.FONT;
  ctx.textAlign = "left";
  ctx.fillText(title, x0, 0);
};

/** Strokes the current path on `ctx`, dashed when asked. */
LL.stroke = function (ctx, dash) {
  ctx.setLineDash(dash ? [6, 4] : []);
  ctx.stroke();
  ctx.setLineDash([]);
};

/**
 * A line chart on `canvas`: x is the row (labels), y on the view's `chart` ({label, scale,
 * series, legend}): one line per series ({at, colour, dashed}, `at` each row's place on the
 * scale, nulls leaving gaps); under the plot the chart's legend.
 */
LL.lineChart = function (canvas, labels, chart) {
  const { scale, series, legend: entries, label: title } = chart;
  const dpr = window.devicePixelRatio || 1;
  if (!canvas.dataset.w) {
    canvas.dataset.w = canvas.width;
    canvas.dataset.h = canvas.height;
  }
  const cw = +canvas.dataset.w;
  const ch = +canvas.dataset.h;
  canvas.width = cw * dpr;
  canvas.height = ch * dpr;
  canvas.style.width = cw + "px";
  canvas.style.height = ch + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cw, ch);
  const legendRows = Math.ceil(entries.length / 2);
  const box = { l: 50, r: cw - 26, t: 18, b: ch - 34 - 16 * legendRows };
  const px = (i) => box.l + (labels.length < 2 ? 0.5 : i / (labels.length - 1)) * (box.r - box.l);
  const py = (at) => box.b - at * (box.b - box.t);
  ctx.font = LL.SMALL_FONT;
  ctx.strokeStyle = "#e3e6eb";
  ctx.fillStyle = "#5b6475";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const [, label, at] of scale.ticks) {
    const yy = Math.round(py(at)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(box.l, yy);
    ctx.lineTo(box.r, yy);
    ctx.stroke();
    ctx.fillText(label, box.l - 5, yy);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const every = Math.max(1, Math.ceil(labels.length / Math.max(1, Math.floor((box.r - box.l) / 34))));
  labels.forEach((label, i) => {
    if (i % every === 0 || i === labels.length - 1) ctx.fillText(label, px(i), box.b + 4);
  });
  ctx.strokeStyle = "#5b6475";
  ctx.strokeRect(box.l + 0.5, box.t + 0.5, box.r - box.l, box.b - box.t);
  ctx.save();
  ctx.translate(11, (box.t + box.b) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle";
  ctx.fillText(title, 0, 0);
  ctx.restore();
  series.forEach((s) => {
    ctx.strokeStyle = s.colour;
    ctx.fillStyle = s.colour;
    ctx.lineWidth = 2;
    ctx.beginPath();
    let open = false;
    s.at.forEach((at, i) => {
      if (at === null) {
        open = false;
        return;
      }
      if (open) ctx.lineTo(px(i), py(at));
      else ctx.moveTo(px(i), py(at));
      open = true;
    });
    LL.stroke(ctx, s.dashed);
    s.at.forEach((at, i) => {
      if (at !== null) ctx.fillRect(px(i) - 1.5, py(at) - 1.5, 3, 3);
    });
  });
  entries.forEach((entry, k) => {
    const lx = box.l + (k % 2) * ((box.r - box.l) / 2);
    const ly = box.b + 22 + 16 * Math.floor(k / 2);
    ctx.strokeStyle = entry.colour;
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.moveTo(lx, ly + 6.5);
    ctx.lineTo(lx + 16, ly + 6.5);
    LL.stroke(ctx, entry.dashed);
    ctx.fillStyle = "#1d2330";
    ctx.textAlign = "left";
    ctx.font = LL.FONT;
    ctx.fillText(entry.label, lx + 20, ly);
  });
};
