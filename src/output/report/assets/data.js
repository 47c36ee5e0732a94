// data.js: reading the two embedded JSON elements, without drawing. "logitlens-data" is
// exactly what `logitlens --format json` prints (one report object, or an array of them);
// "logitlens-view" is what logitlens computed for the page (src/output/report/view.rs): the
// metrics and each prompt's colour scales, ticks and cell colours, the palette, the rows'
// labels, the tokens' glyphs, and the target and summary charts with their points placed and
// their legends. Nothing here computes a statistic, a scale, a colour, a place or a label: it
// looks them up.

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

/**
 * The palette's entry for cell `position` of a row's codes (the view's cells: two hex
 * digits per position, ".." for no value): its colour and the text colour on it; null for
 * no value.
 */
LL.cellColour = function (palette, codes, position) {
  const code = codes.substr(2 * position, 2);
  if (code.length < 2 || code === "..") return null;
  const i = parseInt(code, 16);
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

/** The text a cell shows: its argmax token; a non-finite cell (--allow-nonfinite) has none. */
LL.label = function (cell) {
  return cell.nonfinite ? "non-finite" : cell.token;
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
