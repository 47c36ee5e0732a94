// data.js: everything the report derives from the embedded JSON document, without drawing.
// The document is exactly what `logitlens --format json` prints: one report object, or an
// array of them. Fields added by later versions (site, kl, next_logprob, next_rank, topk,
// targets) are used when present and never required.

const LL = {};

/** The reports of the embedded document, as an array. */
LL.readReports = function (element) {
  const doc = JSON.parse(element.textContent);
  return Array.isArray(doc) ? doc : [doc];
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

/** The [lo, hi] colour domain of `metric`: its fixed ends, else the largest value shown. */
LL.domain = function (metric, reports, report) {
  let lo = metric.lo;
  let hi = metric.hi;
  if (hi === null) {
    hi = metric.log ? 1 : 0;
    for (const r of metric.perReport ? [report] : reports) {
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
 * Per-row means over every report and position, keyed by site and layer, in the first
 * report's row order: cells, entropy, KL, next-token cross-entropy, next-token top-1
 * accuracy and agreement with the output row's argmax.
 */
LL.summary = function (reports) {
  const rows = new Map();
  for (const r of reports) {
    const out = r.layers[r.layers.length - 1];
    r.layers.forEach((row, i) => {
      const key = LL.site(row, i) + ":" + row.layer;
      if (!rows.has(key)) {
        rows.set(key, { label: LL.rowLabel(r.layers, i), cells: 0, entropy: 0, kl: 0, klCells: 0, ce: 0, ceCells: 0, next: 0, hits: 0, agree: 0 });
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
  const list = [...rows.values()];
  const mean = (a, n) => (n > 0 ? a / n : null);
  return {
    labels: list.map((s) => s.label),
    nats: [
      { name: "mean entropy", values: list.map((s) => mean(s.entropy, s.cells)) },
      { name: "mean KL to the output", values: list.map((s) => mean(s.kl, s.klCells)) },
      { name: "mean next-token CE", values: list.map((s) => mean(s.ce, s.ceCells)) },
    ].filter((series) => series.values.some((v) => v !== null)),
    fractions: [
      { name: "next-token top-1", values: list.map((s) => mean(s.hits, s.next)) },
      { name: "argmax = output's", values: list.map((s) => mean(s.agree, s.cells)) },
    ],
  };
};

/** Each target's probability or rank at the last position, by row. */
LL.trajectories = function (report, scale) {
  const last = report.tokens.length - 1;
  return (report.targets || []).map((t, i) => ({
    name: LL.quote(t.token),
    values: report.layers.map((row) => {
      const cell = row.positions[last];
      const v = cell && cell.targets && cell.targets[i];
      return v ? (scale === "rank" ? v.rank : v.prob) : null;
    }),
  }));
};

/**
 * Column layout: each column as wide as its widest label (input token or cell), within
 * [min, max] px. `measure(text)` gives a label's width. Returns { x: [left edges..., total],
 * w: [widths] }.
 */
LL.columns = function (report, measure, min, max, pad) {
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
    for (const row of report.layers) {
      const cell = row.positions[p];
      if (cell) w = Math.max(w, width(LL.show(cell.token)));
      if (w >= max) break;
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
