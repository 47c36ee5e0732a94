"""The bench harness's Python half (bench/lib.sh is the other): reads the runs bench_run
recorded, parses logitlens's timings, takes medians; and reads logitlens's JSONL reports
for the scripts that compare two runs' numbers. Standard library only (the GPU machine
has no venv).

    import harness                       # bench_py puts bench/ on PYTHONPATH
    runs = harness.runs(work)            # every run of $BENCH_WORK/runs.tsv
    s = harness.summary(harness.select(runs, "phi-9", "new"))
    s["wall"], s["forward_s"], ...       # medians over the runs that succeeded

Timings come from the run's stderr (`LOGITLENS_TIMING=json`, src/timing.rs): the one line
that starts with `{"timing":`. A binary older than that line prints the text lines for any
non-empty LOGITLENS_TIMING; they are read into the same schema (load from the first
`timing: load` line, forward, lens and tokens summed over the prompts, total_s null).
"""

import json
import math
import os
import platform
import statistics

GIB = 1024**3


def parse_timing(text):
    """The timing of one run's stderr, in the JSON line's schema; None when it has none."""
    for line in text.splitlines():
        if line.startswith('{"timing":'):
            return json.loads(line)
    t = {"timing": None, "device": None, "fast": None, "load_s": None, "tuned_lens_s": None,
         "prompts": [], "total_s": None}
    for line in text.splitlines():
        words = line.split()
        if words[:2] == ["timing:", "load"] and words[2:4] == ["with", "tuned"]:
            t["tuned_lens_s"] = float(words[5].rstrip("s")) - (t["load_s"] or 0.0)
        elif words[:2] == ["timing:", "load"] and t["load_s"] is None:
            t["load_s"] = float(words[2].rstrip("s"))
            device, _, fast = line.partition(" on ")[2].partition(", --fast: ")
            t["device"], t["fast"] = device, fast or None
        elif words[:2] == ["timing:", "tokens"] and len(words) == 7:
            t["prompts"].append({"index": len(t["prompts"]), "tokens": int(words[2]),
                                 "forward_s": float(words[4].rstrip("s")),
                                 "lens_s": float(words[6].rstrip("s"))})
    if t["load_s"] is None and not t["prompts"]:
        return None
    t["tokens"] = sum(p["tokens"] for p in t["prompts"])
    t["forward_s"] = sum(p["forward_s"] for p in t["prompts"])
    t["lens_s"] = sum(p["lens_s"] for p in t["prompts"])
    return t


def runs(work):
    """Every run bench_run recorded in WORK/runs.tsv, in order: label, side, n, wall (s),
    rss (bytes or None), rc, ok, err (its stderr's path) and timing (parse_timing's)."""
    out = []
    with open(os.path.join(work, "runs.tsv"), encoding="utf-8") as f:
        for line in f:
            label, side, n, wall_us, rss_kib, rc, base = line.rstrip("\n").split("\t")
            err = base + ".err"
            text = open(err, encoding="utf-8", errors="replace").read() if os.path.exists(err) else ""
            out.append({
                "label": label, "side": side, "n": int(n), "wall": int(wall_us) / 1e6,
                "rss": int(rss_kib) * 1024 if rss_kib.isdigit() else None,
                "rc": int(rc), "ok": rc == "0", "err": err, "timing": parse_timing(text),
            })
    return out


def select(all_runs, label, side=None):
    """The runs of one label (and side)."""
    return [r for r in all_runs if r["label"] == label and (side is None or r["side"] == side)]


def labels(all_runs):
    """The labels in the order they first ran."""
    return list(dict.fromkeys(r["label"] for r in all_runs))


def median(values):
    """The median of the values that are not None; None when there are none."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


TIMING_KEYS = ("load_s", "tuned_lens_s", "forward_s", "lens_s", "total_s", "tokens")


def summary(some_runs):
    """Medians over the runs that succeeded: n, failed, wall, rss and every timing key of
    TIMING_KEYS (None where no run has it); `timing`: the first successful run's timing."""
    ok = [r for r in some_runs if r["ok"]]
    s = {"n": len(ok), "failed": len(some_runs) - len(ok),
         "wall": median(r["wall"] for r in ok), "rss": median(r["rss"] for r in ok),
         "timing": next((r["timing"] for r in ok if r["timing"]), None)}
    for key in TIMING_KEYS:
        s[key] = median((r["timing"] or {}).get(key) for r in ok)
    return s


def fmt_s(x, digits=2):
    """Seconds (whole ones from 100 s on), or a dash."""
    return "—" if x is None else (f"{x:.{digits}f} s" if x < 100 else f"{x:.0f} s")


def split(s, digits=3):
    """'load / forward / lens' seconds of a summary, or a dash."""
    if s["load_s"] is None and s["forward_s"] is None:
        return "—"
    return " / ".join("—" if s[k] is None else f"{s[k]:.{digits}f}" for k in ("load_s", "forward_s", "lens_s"))


def machine():
    """The CPU, cores, memory and kernel, in one line."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb * 1024 / GIB:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}"


# ---- logitlens's JSONL reports ----------------------------------------------------------


def reports(path):
    """The reports of a JSONL file, one per line."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def cells(report):
    """Every cell of a report: (row number, row, position, cell)."""
    for li, row in enumerate(report["layers"]):
        for t, cell in enumerate(row["positions"]):
            yield li, row, t, cell


def top2_margin(cell):
    """log p1 − log p2 of a cell's top-k (run with --top-k 2 or more); inf when p2 is 0."""
    top = cell["topk"]
    if len(top) < 2:
        raise SystemExit("the cells have fewer than 2 top-k entries: run with --top-k 2")
    p1, p2 = top[0]["prob"], top[1]["prob"]
    return math.inf if p2 == 0 else math.log(p1) - math.log(p2)
