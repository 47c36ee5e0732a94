// data.js: reading the two embedded JSON elements, without drawing. "logitlens-data" is
// exactly what `logitlens --format json` prints (one report object, or an array of them);
// "logitlens-view" is what logitlens computed for the page (src/output/report/view.rs): the
// metrics and each prompt's colour scales and ticks, the palette, the rows' labels, the
// tokens' glyphs and the summary curves. Nothing here computes a statistic, a scale or a
// label: it looks them up.

const LL = {};

/** The reports of the embedded document, as an array. */
LL.readReports = function (element) {
  const doc = JSON.parse(element.textContent);
  return Array.isArray(doc) ? doc : [doc];
};

/** The view, with its glyphs as a Map (a token text may be any string, "__proto__" too). */
LL.readView = function (element) {
  const view = JSON.parse(element.textContent);
  view.glyphs = new Map(view.glyphs);
  return view;
};

/** The glyphs the grid draws for a token's text (as the PNG draws them). */
LL.glyphs = function (view, text) {
  const shown = view.glyphs.get(text);
  return shown === undefined ? text : shown;
};

/** A token's text quoted for the tooltip, so that spaces can be seen. */
LL.quote = function (text) {
  return "\u201c" + (text === undefined || text === null ? "" : text) + "\u201d";
};

/** The next input token's id after `position`, or null at the last position. */
LL.nextId = function (report, position) {
  const next = report.tokens[position + 1];
  return next ? next.id : null;
};

/** A metric's value in a cell, where its `read` says it is; null where it has none. */
LL.value = function (metric, cell) {
  const read = metric.read;
  const from = read.target === undefined ? cell : cell.targets && cell.targets[read.target];
  const v = from ? from[read.key] : null;
  if (v === null || v === undefined) return null;
  return read.negate ? -v : v;
};

/** `value`'s place in [0, 1] on `scale` ({min, max, log}); null for no value. */
LL.fraction = function (scale, value) {
  if (value === null || value === undefined) return null;
  if (!isFinite(value)) return 1;
  const t = scale.log
    ? (Math.log(Math.max(value, scale.min)) - Math.log(scale.min)) / (Math.log(scale.max) - Math.log(scale.min))
    : (value - scale.min) / (scale.max - scale.min);
  return Math.min(1, Math.max(0, t));
};

/** The palette's entry for `t` in [0, 1]: its colour and the text colour on it. */
LL.colour = function (palette, t) {
  const i = Math.round(Math.min(1, Math.max(0, t)) * (palette.colours.length - 1));
  return { fill: palette.colours[i], ink: palette.ink[i] };
};

/** A number for the tooltip: up to 3 significant digits after the point, no trailing zeros. */
LL.fmt = function (v) {
  if (v === null || v === undefined) return "\u2013";
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return String(parseFloat(v.toFixed(a < 1 ? 4 : 3)));
};

/**
 * The legend of `series` ({label, lens, colour, dashed}): each series, or, when they come
 * from several lenses, each label once in its colour and then each lens's line style.
 */
LL.legend = function (series) {
  const lenses = [...new Set(series.map((s) => s.lens).filter((l) => l))];
  if (lenses.length < 2) return series.map((s) => ({ label: s.label, colour: s.colour, dashed: s.dashed }));
  const seen = new Map();
  for (const s of series) if (!seen.has(s.label)) seen.set(s.label, { label: s.label, colour: s.colour, dashed: false });
  return [...seen.values(), ...lenses.map((l, j) => ({ label: l + " lens", colour: "#1d2330", dashed: j > 0 }))];
};

/**
 * Each target's probability or rank at the last position, by row: one series per target
 * and report of `reports` (one per lens), labelled with its glyphs from `view`, coloured
 * by target from the view's line colours, dashed after the first lens.
 */
LL.label = function (cell) {
  // A non-finite cell (--allow-nonfinite) has no argmax: its JSON token is null.
  return cell.nonfinite ? "non-finite" : cell.token;
};

LL.trajectories = function (reports, scale, view) {
  const lines = view.palette.lines;
  const list = [];
  const lenses = reports.length;
  (reports[0].targets || []).forEach((t, i) => {
    reports.forEach((report, j) => {
      const last = report.tokens.length - 1;
      list.push({
        label: LL.quote(LL.glyphs(view, t.token)),
        lens: lenses > 1 ? report.lens : undefined,
        colour: lines[i % lines.length],
        dashed: j > 0,
        values: report.layers.map((row) => {
          const cell = row.positions[last];
          const v = cell && cell.targets && cell.targets[i];
          return v ? (scale === "rank" ? v.rank : v.prob) : null;
        }),
      });
    });
  });
  return list;
};

/**
 * Column layout: each column as wide as its widest label (input token or cell of any of
 * `reports`, the same prompt under each lens, so that their grids line up), within
 * [min, max] px. `label(text)` gives a token's drawn text, `measure(text)` its width.
 * Returns { x: [left edges..., total], w: [widths] }.
 */
LL.columns = function (reports, label, measure, min, max, pad) {
  const report = reports[0];
  const n = report.tokens.length;
  const widths = new Array(n);
  const cache = new Map();
  const width = (text) => {
    let w = cache.get(text);
    if (w === undefined) {
      w = measure(label(text));
      cache.set(text, w);
    }
    return w;
  };
  for (let p = 0; p < n; p++) {
    let w = width(report.tokens[p].display);
    for (const r of reports) {
      for (const row of r.layers) {
        const cell = row.positions[p];
        if (cell) w = Math.max(w, width(LL.label(cell)));
        if (w >= max) break;
      }
    }
    widths[p] = Math.round(Math.min(max, Math.max(min, w + pad)));
  }
  const x = new Array(n + 1);
  x[0] = 0;
  for (let p = 0; p < n; p++) x[p + 1] = x[p] + widths[p];
  return { x: x, w: widths };
};

/** The first column whose right edge is past `px` (binary search over left edges). */
LL.columnAt = function (cols, px) {
  let lo = 0;
  let hi = cols.w.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cols.x[mid + 1] <= px) lo = mid + 1;
    else hi = mid;
  }
  return Math.max(0, lo);
};
