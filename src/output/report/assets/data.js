// data.js: everything the report derives from the embedded JSON document, without drawing.
// The document is exactly what `logitlens --format json` prints: one report object, or an
// array of them. Fields added by later versions (site, kl, next_logprob, next_rank, topk,
// targets) are used when present and never required.

const LL = {};

/** Line colours of the charts, one per statistic or target. */
LL.PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"];

/** The reports of the embedded document, as an array. */
LL.readReports = function (element) {
  const doc = JSON.parse(element.textContent);
  return Array.isArray(doc) ? doc : [doc];
};

/** The lens that made a report: "logit" or "tuned" (older documents: "logit"). */
LL.lensOf = function (report) {
  return report.lens || "logit";
};

/** The order lenses are shown in, left to right: the logit lens, then the tuned lens. */
LL.LENS_ORDER = ["logit", "tuned"];

/** Sorts `names` (lens names) into LL.LENS_ORDER, unknown ones last. */
LL.byLens = function (a, b) {
  const rank = (l) => {
    const i = LL.LENS_ORDER.indexOf(l);
    return i < 0 ? LL.LENS_ORDER.length : i;
  };
  return rank(a) - rank(b);
};

/**
 * The reports grouped by prompt: under --compare-lenses each prompt has one report per
 * lens (same prompt_index, different "lens"), shown side by side. Returns [{ reports }] in
 * document order, each group's reports in LL.LENS_ORDER.
 */
LL.groups = function (reports) {
  const groups = [];
  const open = new Map();
  for (const r of reports) {
    const key = r.prompt_index === undefined || r.prompt_index === null ? {} : r.prompt_index;
    let g = open.get(key);
    if (!g || g.reports.some((o) => LL.lensOf(o) === LL.lensOf(r))) {
      g = { reports: [] };
      groups.push(g);
      open.set(key, g);
    }
    g.reports.push(r);
  }
  for (const g of groups) g.reports.sort((a, b) => LL.byLens(LL.lensOf(a), LL.lensOf(b)));
  return groups;
};

/** The lenses of `reports`, each once, in LL.LENS_ORDER. */
LL.lenses = function (reports) {
  return [...new Set(reports.map(LL.lensOf))].sort(LL.byLens);
};

/** The site of a lens row: "embed", "resid_mid" or "resid_post" (older documents: by index). */
LL.site = function (row, index) {
  if (row.site) return row.site;
  return index === 0 ? "embed" : "resid_post";
};

/** The label of lens row `index` of `rows`: "0 emb", "3", "3 attn", "L out". */
LL.rowLabel = function (rows, index) {
  const row = rows[index];
  const site = LL.site(row, index);
  if (site === "embed") return row.layer + " emb";
  if (site === "resid_mid") return row.layer + " attn";
  if (index === rows.length - 1) return row.layer + " out";
  return String(row.layer);
};

/** A token's text as a label: leading and trailing spaces as a thin "·", as in the PNG. */
LL.show = function (text) {
  if (text === undefined || text === null) return "";
  const m = /^( *)(.*?)( *)$/s.exec(text);
  if (!m || m[2] === "") return text;
  return "·".repeat(m[1].length) + m[2] + "·".repeat(m[3].length);
};

/** A token's text quoted for the tooltip, so that spaces can be seen. */
LL.quote = function (text) {
  return "\u201c" + (text === undefined || text === null ? "" : text) + "\u201d";
};

/** Whether any cell of any report has the field `key`. */
LL.hasField = function (reports, key) {
  for (const r of reports) {
    for (const row of r.layers) {
      for (const cell of row.positions) {
        if (cell[key] !== undefined) return true;
      }
    }
  }
  return false;
};

/** The next input token's id after `position`, or null at the last position. */
LL.nextId = function (report, position) {
  const next = report.tokens[position + 1];
  return next ? next.id : null;
};

/** Whether the cell is a next-token hit: its argmax is the next input token. */
LL.isHit = function (report, cell, position) {
  const next = LL.nextId(report, position);
  return next !== null && cell.id === next;
};

/**
 * The metrics a report can be coloured by. Each: key, label, unit (for the colour bar),
 * get(cell) -> number or null, log (log scale), lo/hi (fixed ends, or null for the data's).
 */
LL.metrics = function (reports, report) {
  const list = [
    { key: "entropy", label: "entropy", unit: "nats", get: (c) => c.entropy, log: false, lo: 0, hi: null },
    { key: "prob", label: "max prob", unit: "probability of the argmax token", get: (c) => c.prob, log: false, lo: 0, hi: 1 },
  ];
  if (LL.hasField(reports, "kl")) {
    list.push({ key: "kl", label: "KL to the output", unit: "nats, KL(p_output \u2016 p_row)", get: (c) => c.kl, log: false, lo: 0, hi: null });
  }
  if (LL.hasField(reports, "next_logprob")) {
    list.push({
      key: "ce", label: "next-token cross-entropy", unit: "nats, \u2212log p(next input token)",
      get: (c) => (c.next_logprob === null || c.next_logprob === undefined ? null : -c.next_logprob),
      log: false, lo: 0, hi: null,
    });
  }
  if (LL.hasField(reports, "next_rank")) {
    list.push({
      key: "rank", label: "next-token rank", unit: "rank of the next input token (1 = argmax), log scale",
      get: (c) => (c.next_rank === null || c.next_rank === undefined ? null : c.next_rank),
      log: true, lo: 1, hi: null,
    });
  }
  (report.targets || []).forEach((t, i) => {
    const name = LL.quote(t.token);
    const at = (c) => (c.targets && c.targets[i] ? c.targets[i] : null);
    list.push({
      key: "target-prob-" + i, label: "target " + name + " probability", unit: "p(" + name + ")",
      get: (c) => (at(c) ? at(c).prob : null), log: false, lo: 0, hi: 1, perReport: true,
    });
    list.push({
      key: "target-rank-" + i, label: "target " + name + " rank", unit: "rank of " + name + " (1 = argmax), log scale",
      get: (c) => (at(c) ? at(c).rank : null), log: true, lo: 1, hi: null, perReport: true,
    });
  });
  return list;
};

/**
 * The [lo, hi] colour domain of `metric`: its fixed ends, else the largest value in
 * `reports` (every report of the page), or in `shown` (the reports on screen, one per lens:
 * they share the scale) for a metric of one prompt's own targets.
 */
LL.domain = function (metric, reports, shown) {
  let lo = metric.lo;
  let hi = metric.hi;
  if (hi === null) {
    hi = metric.log ? 1 : 0;
    for (const r of metric.perReport ? shown : reports) {
      for (const row of r.layers) {
        for (const cell of row.positions) {
          const v = metric.get(cell);
          if (v !== null && v !== undefined && isFinite(v) && v > hi) hi = v;
        }
      }
    }
    if (hi <= lo) hi = metric.log ? 10 : lo + 1;
    if (!metric.log) hi = LL.niceCeil(hi);
  }
  return [lo, hi];
};

/** A round number at or above `x` (1, 2, 2.5, 5 × 10^k). */
LL.niceCeil = function (x) {
  if (!(x > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * p >= x * (1 - 1e-9)) return m * p;
  }
  return 10 * p;
};

/** `value`'s place in [0, 1] on `metric`'s scale over `domain`, or null. */
LL.fraction = function (metric, domain, value) {
  if (value === null || value === undefined || !isFinite(value)) return null;
  const [lo, hi] = domain;
  const t = metric.log
    ? (Math.log(Math.max(value, lo)) - Math.log(lo)) / (Math.log(hi) - Math.log(lo))
    : (value - lo) / (hi - lo);
  return Math.min(1, Math.max(0, t));
};

/** Ticks for a colour bar over `domain`: [value, label]. */
LL.ticks = function (metric, domain) {
  const [lo, hi] = domain;
  const out = [];
  if (metric.log) {
    const first = Math.pow(10, Math.floor(Math.log10(lo) + 1e-9));
    for (let e = 0; first * Math.pow(10, e) <= hi * 1.0001; e++) {
      const v = first * Math.pow(10, e);
      if (v >= lo * 0.9999) out.push([v, v >= 1e4 ? "1e" + Math.round(Math.log10(v)) : LL.fmt(parseFloat(v.toPrecision(1)))]);
    }
    if (out.length < 2 || out[out.length - 1][0] < hi) out.push([hi, LL.fmt(hi < 10 ? hi : Math.round(hi))]);
    return out;
  }
  const step = LL.niceCeil((hi - lo) / 5);
  for (let v = lo; v <= hi + step * 1e-6; v += step) out.push([v, LL.fmt(v)]);
  return out;
};

/** A number for a label: up to 3 significant digits after the point, no trailing zeros. */
LL.fmt = function (v) {
  if (v === null || v === undefined) return "\u2013";
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return String(parseFloat(v.toFixed(a < 1 ? 4 : 3)));
};

// Viridis, sampled every tenth (matplotlib's, as the PNG uses).
LL.VIRIDIS = [
  [68, 1, 84], [72, 36, 117], [65, 68, 135], [53, 95, 141], [42, 120, 142], [33, 145, 140],
  [34, 168, 132], [68, 190, 112], [122, 209, 81], [189, 223, 38], [253, 231, 37],
];

/** The viridis colour at `t` in [0, 1], as [r, g, b]. */
LL.viridis = function (t) {
  const x = Math.min(1, Math.max(0, t)) * (LL.VIRIDIS.length - 1);
  const i = Math.min(LL.VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = LL.VIRIDIS[i];
  const b = LL.VIRIDIS[i + 1];
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * f));
};

/** Black or white text on `rgb`, whichever reads. */
LL.ink = function (rgb) {
  const lum = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255;
  return lum > 0.55 ? "#111" : "#fff";
};

/**
 * Per-row means over every report and position, keyed by lens, site and layer, in the
 * first report's row order: cells, entropy, KL, next-token cross-entropy, next-token top-1
 * accuracy and agreement with the output row's argmax. Each statistic has one series per
 * lens ({ name, stat, lens, color, dash }): the same colour for a statistic, dashed for
 * every lens after the first (solid logit lens, dashed tuned lens).
 */
LL.summary = function (reports) {
  const lenses = LL.lenses(reports);
  const order = new Map();
  const rows = new Map();
  for (const r of reports) {
    const out = r.layers[r.layers.length - 1];
    const lens = LL.lensOf(r);
    r.layers.forEach((row, i) => {
      const where = LL.site(row, i) + ":" + row.layer;
      if (!order.has(where)) order.set(where, LL.rowLabel(r.layers, i));
      const key = lens + ":" + where;
      if (!rows.has(key)) {
        rows.set(key, { cells: 0, entropy: 0, kl: 0, klCells: 0, ce: 0, ceCells: 0, next: 0, hits: 0, agree: 0 });
      }
      const s = rows.get(key);
      row.positions.forEach((cell, p) => {
        s.cells += 1;
        s.entropy += cell.entropy;
        if (cell.kl !== undefined) { s.kl += cell.kl; s.klCells += 1; }
        if (cell.next_logprob !== undefined && cell.next_logprob !== null) { s.ce -= cell.next_logprob; s.ceCells += 1; }
        const next = LL.nextId(r, p);
        if (next !== null) { s.next += 1; if (cell.id === next) s.hits += 1; }
        if (out && out.positions[p] && cell.id === out.positions[p].id) s.agree += 1;
      });
    });
  }
  const wheres = [...order.keys()];
  const mean = (a, n) => (n > 0 ? a / n : null);
  const series = (stats) => {
    const list = [];
    stats.forEach(([name, value], k) => {
      lenses.forEach((lens, j) => {
        list.push({
          name: lenses.length > 1 ? name + " (" + lens + " lens)" : name,
          stat: name,
          lens: lens,
          color: LL.PALETTE[k % LL.PALETTE.length],
          dash: j > 0,
          values: wheres.map((w) => {
            const s = rows.get(lens + ":" + w);
            return s ? value(s) : null;
          }),
        });
      });
    });
    return list.filter((one) => one.values.some((v) => v !== null));
  };
  return {
    labels: [...order.values()],
    lenses: lenses,
    nats: series([
      ["mean entropy", (s) => mean(s.entropy, s.cells)],
      ["mean KL to the output", (s) => mean(s.kl, s.klCells)],
      ["mean next-token CE", (s) => mean(s.ce, s.ceCells)],
    ]),
    fractions: series([
      ["next-token top-1", (s) => mean(s.hits, s.next)],
      ["argmax = output's", (s) => mean(s.agree, s.cells)],
    ]),
  };
};

/**
 * The legend of `series`: each series, or, when they come from several lenses, each
 * statistic once in its colour and then each lens's line style.
 */
LL.legend = function (series) {
  const lenses = [...new Set(series.map((s) => s.lens).filter((l) => l))].sort(LL.byLens);
  if (lenses.length < 2) return series.map((s) => ({ name: s.name, color: s.color, dash: s.dash }));
  const seen = new Map();
  for (const s of series) if (!seen.has(s.stat)) seen.set(s.stat, { name: s.stat, color: s.color, dash: false });
  return [...seen.values(), ...lenses.map((l, j) => ({ name: l + " lens", color: "#1d2330", dash: j > 0 }))];
};

/**
 * Each target's probability or rank at the last position, by row: one series per target
 * and report of `reports` (one per lens), coloured by target, dashed after the first lens.
 */
LL.trajectories = function (reports, scale) {
  const list = [];
  const lenses = reports.length;
  (reports[0].targets || []).forEach((t, i) => {
    reports.forEach((report, j) => {
      const last = report.tokens.length - 1;
      list.push({
        name: LL.quote(t.token) + (lenses > 1 ? " (" + LL.lensOf(report) + " lens)" : ""),
        stat: LL.quote(t.token),
        lens: lenses > 1 ? LL.lensOf(report) : undefined,
        color: LL.PALETTE[i % LL.PALETTE.length],
        dash: j > 0,
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
 * [min, max] px. `measure(text)` gives a label's width. Returns { x: [left edges...,
 * total], w: [widths] }.
 */
LL.columns = function (reports, measure, min, max, pad) {
  const report = reports[0];
  const n = report.tokens.length;
  const widths = new Array(n);
  const cache = new Map();
  const width = (text) => {
    let w = cache.get(text);
    if (w === undefined) {
      w = measure(text);
      cache.set(text, w);
    }
    return w;
  };
  for (let p = 0; p < n; p++) {
    let w = width(LL.show(report.tokens[p].display));
    for (const r of reports) {
      for (const row of r.layers) {
        const cell = row.positions[p];
        if (cell) w = Math.max(w, width(LL.show(cell.token)));
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
