//! The HTML report (`--out report.html`, `--out-dir DIR --image-format html`), opened in
//! real headless Chromium and driven over the DevTools protocol (tests/report/cdp.rs): it
//! loads from file:// with no console error and no request, embeds exactly the
//! `--format json` document, shows one cell per row and position, answers a hover with the
//! cell's top-k, recolours on a metric switch, and paints a 2048-token prompt within 2 s,
//! its grid on the first screen.
//!
//! Chromium is Debian's `chromium` package (`.ci/run` installs it). Without it these tests
//! fail under CI (`CI` set) or with `LOGITLENS_REQUIRE_BROWSER=1`, and otherwise print a
//! loud SKIPPED line and pass. `LOGITLENS_CHROMIUM` names another executable.
//!
//! `LOGITLENS_SCREENSHOT=docs/report.png` makes the SmolLM2 test save its screenshot there
//! (that is how the README's picture is made).

#[path = "report/cdp.rs"]
mod cdp;
mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cdp::{Browser, Page};
use common::{assert_fails, browser_missing, phi, require_smollm2, run, say, stderr};
use serde_json::{json, Value};

const FOX: &str = "The quick brown fox jumps over the lazy";

/// The shared browser, started on first use; `None` (after a loud warning) when Chromium
/// is missing and not required. Holding the guard serializes the browser tests, so that
/// the timing test does not share the machine with another page.
fn browser() -> Option<MutexGuard<'static, Option<Browser>>> {
    static BROWSER: Mutex<Option<Browser>> = Mutex::new(None);
    let Some(exe) = cdp::find_chromium() else {
        browser_missing(
            "Chromium not found (apt-get install -y chromium, or set LOGITLENS_CHROMIUM)",
        );
        return None;
    };
    let mut guard = BROWSER.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.is_none() {
        let browser =
            Browser::launch(&exe).unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        *guard = Some(browser);
    }
    Some(guard)
}

/// Runs the binary, which must succeed.
fn ok(args: &[&str]) -> std::process::Output {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    o
}

/// The `--format json` document of `args`.
fn json_of(args: &[&str]) -> Value {
    serde_json::from_slice(&ok(&[args, &["-f", "json"]].concat()).stdout).unwrap()
}

/// Runs `args` with `--out html -f json`: the document the same run printed, parsed and
/// as text.
fn report_and_json(args: &[&str], html: &Path) -> (Value, String) {
    let o = ok(&[args, &["--out", html.to_str().unwrap(), "-f", "json"]].concat());
    let printed = String::from_utf8(o.stdout).unwrap();
    (serde_json::from_str(&printed).unwrap(), printed)
}

/// Opens `path` and waits until the report says it has painted.
fn open(page: &mut Page<'_>, path: &Path) {
    let url = format!("file://{}", path.canonicalize().unwrap().display());
    page.navigate(&url);
    assert!(
        page.wait_for(
            "document.documentElement.dataset.painted === 'true'",
            Duration::from_secs(30)
        ),
        "{url} never painted"
    );
}

/// The console errors, uncaught exceptions and log errors among `events`.
fn errors(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| match e["method"].as_str() {
            Some("Runtime.exceptionThrown") => true,
            Some("Runtime.consoleAPICalled") => {
                matches!(e["params"]["type"].as_str(), Some("error" | "assert"))
            }
            Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
            _ => false,
        })
        .map(Value::to_string)
        .collect()
}

/// The URLs the page requested.
fn requests(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["method"] == "Network.requestWillBeSent")
        .map(|e| {
            e["params"]["request"]["url"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// The embedded document as text, and parsed.
fn embedded(page: &mut Page<'_>) -> (String, Value) {
    let text = page.eval("document.getElementById('logitlens-data').textContent");
    let text = text.as_str().unwrap().to_string();
    let value = serde_json::from_str(&text).unwrap();
    (text, value)
}

/// Every cell element on the page as (row, layer, site, position).
fn cells(page: &mut Page<'_>) -> Vec<(usize, usize, String, usize)> {
    let list = page.eval(
        "[...document.querySelectorAll('[data-layer][data-site][data-position]')]
            .map(e => [+e.dataset.row, +e.dataset.layer, e.dataset.site, +e.dataset.position])",
    );
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c[0].as_u64().unwrap() as usize,
                c[1].as_u64().unwrap() as usize,
                c[2].as_str().unwrap().to_string(),
                c[3].as_u64().unwrap() as usize,
            )
        })
        .collect()
}

/// The centre of the cell at (row, position), in CSS pixels.
fn centre(page: &mut Page<'_>, row: usize, position: usize) -> (f64, f64) {
    centre_in(page, "", row, position)
}

/// The centre of the cell at (row, position) of the grid of `lens` ("": the first grid).
fn centre_in(page: &mut Page<'_>, lens: &str, row: usize, position: usize) -> (f64, f64) {
    let lens = match lens {
        "" => String::new(),
        l => format!("[data-lens=\"{l}\"]"),
    };
    let r = page.eval(&format!(
        "(() => {{ const r = document.querySelector('.cell{lens}[data-row=\"{row}\"][data-position=\"{position}\"]').getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
    ));
    (r[0].as_f64().unwrap(), r[1].as_f64().unwrap())
}

/// The canvas colour inside each cell element (a pixel just inside its top-left corner,
/// clear of the label and the hit mark), keyed "row,position".
fn colours(page: &mut Page<'_>) -> std::collections::BTreeMap<String, [u8; 3]> {
    colours_of(page, "")
}

/// [`colours`] of the grid of `lens` ("": every cell on the page, for a one-lens page).
fn colours_of(page: &mut Page<'_>, lens: &str) -> std::collections::BTreeMap<String, [u8; 3]> {
    let cells = match lens {
        "" => ".cell".to_string(),
        l => format!(".cell[data-lens=\"{l}\"]"),
    };
    let list = page.eval(&format!(
        "(() => {{
            return [...document.querySelectorAll('{cells}')].map(e => {{
                const canvas = e.closest('.grid-panel').querySelector('canvas');
                const ctx = canvas.getContext('2d');
                const c = canvas.getBoundingClientRect();
                const k = canvas.width / c.width;
                const r = e.getBoundingClientRect();
                const d = ctx.getImageData(Math.floor((r.left - c.left + 4) * k), Math.floor((r.top - c.top + 3) * k), 1, 1).data;
                return [e.dataset.row + ',' + e.dataset.position, d[0], d[1], d[2]];
            }});
        }})()"
    ));
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let b = |i: usize| c[i].as_u64().unwrap() as u8;
            (c[0].as_str().unwrap().to_string(), [b(1), b(2), b(3)])
        })
        .collect()
}

/// The tooltip's text when it is shown, else None.
fn tooltip(page: &mut Page<'_>) -> Option<String> {
    let t = page.eval(
        "(() => { const t = document.querySelector('[role=tooltip]'); return t && !t.hidden && getComputedStyle(t).display !== 'none' ? t.innerText : null; })()",
    );
    t.as_str().map(str::to_string)
}

/// The (display) tokens a cell's tooltip must list: its top-k, or its argmax without one.
fn top_tokens(cell: &Value) -> Vec<String> {
    match cell["topk"].as_array() {
        Some(top) => top
            .iter()
            .map(|t| t["token"].as_str().unwrap().to_string())
            .collect(),
        None => vec![cell["token"].as_str().unwrap().to_string()],
    }
}

#[test]
fn report_opens_offline_and_embeds_the_json_document() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("fox.html");
    let args = ["-m", &phi(), "-p", FOX];
    let (expected, printed) = report_and_json(&args, &html);
    // The report's default K is the run's, so a run without the report needs --top-k 10.
    assert_eq!(expected["top_k"], json!(10));
    assert_eq!(json_of(&[&args[..], &["--top-k", "10"]].concat()), expected);
    let Some(mut guard) = browser() else { return };
    let mut page = guard.as_mut().unwrap().page(1280, 900);
    open(&mut page, &html);
    let events = page.events();
    assert_eq!(errors(&events), Vec::<String>::new(), "console errors");
    let url = format!("file://{}", html.canonicalize().unwrap().display());
    for request in requests(&events) {
        assert_eq!(request, url, "the report requested something else");
    }
    let (text, value) = embedded(&mut page);
    assert_eq!(
        value, expected,
        "the embedded document differs from --format json"
    );
    // The same value written compact, with `<` as \u003c (which the printer never writes).
    let compact = serde_json::to_string(&serde_json::from_str::<Value>(&printed).unwrap());
    assert_eq!(
        text.len() - 5 * text.matches("\\u003c").count(),
        compact.unwrap().len()
    );

    let rows = expected["layers"].as_array().unwrap();
    let positions = expected["tokens"].as_array().unwrap().len();
    let cells = cells(&mut page);
    assert_eq!(cells.len(), rows.len() * positions);
    let mut seen = std::collections::BTreeSet::new();
    for (row, layer, site, position) in cells {
        assert_eq!(layer as u64, rows[row]["layer"].as_u64().unwrap());
        let want = rows[row]["site"].as_str().unwrap_or(match row {
            0 => "embed",
            _ => "resid_post",
        });
        assert_eq!(site, want);
        assert!(position < positions);
        assert!(seen.insert((row, position)), "cell {row},{position} twice");
    }
    let files = page.eval("[...document.querySelectorAll('[src],[href]')].length");
    assert_eq!(files, json!(0), "the report links to something");
}

#[test]
fn hovering_a_cell_shows_its_top_k_and_clicking_pins_it() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("fox.html");
    ok(&["-m", &phi(), "-p", FOX, "--out", html.to_str().unwrap()]);
    let Some(mut guard) = browser() else { return };
    let mut page = guard.as_mut().unwrap().page(1280, 900);
    open(&mut page, &html);
    let (_, doc) = embedded(&mut page);
    let (row, position) = (2, 3);
    let cell = &doc["layers"][row]["positions"][position];
    assert_eq!(tooltip(&mut page), None, "a tooltip before any hover");

    let (x, y) = centre(&mut page, row, position);
    page.mouse("mouseMoved", x, y);
    let shown = tooltip(&mut page).expect("no tooltip on hover");
    for token in top_tokens(cell) {
        assert!(
            shown.contains(&format!("\u{201c}{token}\u{201d}")),
            "{token:?} not in {shown}"
        );
    }
    assert!(shown.contains(&format!("position {position}")), "{shown}");
    assert!(shown.contains("entropy"), "{shown}");

    // Moving to another cell follows the mouse; a click pins, and then moving away keeps it.
    let (x2, y2) = centre(&mut page, 0, 0);
    page.mouse("mouseMoved", x2, y2);
    assert!(tooltip(&mut page).unwrap().contains("position 0"));
    page.click(x, y);
    page.mouse("mouseMoved", x2, y2);
    let pinned = tooltip(&mut page).expect("the pinned tooltip went away");
    assert!(pinned.contains(&format!("position {position}")), "{pinned}");
    assert!(pinned.contains("pinned"), "{pinned}");
    page.key("Escape");
    assert_eq!(tooltip(&mut page), None, "Esc did not unpin");
    assert_eq!(errors(&page.events()), Vec::<String>::new());
}

/// The value a metric of the selector colours `cell` by (None: drawn as "no value").
fn metric_value(metric: &str, cell: &Value) -> Option<f64> {
    let target = |key: &str, i: &str| cell["targets"][i.parse::<usize>().unwrap()][key].as_f64();
    match metric {
        "entropy" | "prob" | "kl" => cell[metric].as_f64(),
        "ce" => cell["next_logprob"].as_f64().map(|l| -l),
        "rank" => cell["next_rank"].as_f64(),
        "target" => target("prob", "0"),
        "target-rank" => target("rank", "0"),
        m => panic!("unknown metric {m}"),
    }
}

/// Perceived brightness, which rises monotonically along viridis.
fn luma([r, g, b]: [u8; 3]) -> f64 {
    0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64
}

#[test]
fn switching_the_metric_recolours_the_cells_by_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("fox.html");
    let args = ["-m", &phi(), "-p", FOX, "--target", " the", "--sublayers"];
    let (doc, _) = report_and_json(&args, &html);
    let Some(mut guard) = browser() else { return };
    let mut page = guard.as_mut().unwrap().page(1280, 900);
    open(&mut page, &html);
    let metrics = page.eval("[...document.getElementById('metric').options].map(o => o.value)");
    let metrics: Vec<String> = serde_json::from_value(metrics).unwrap();
    // `--metric`'s names, in its order, and the target's rank; the titles are the heatmap's
    // colour-bar titles.
    assert_eq!(
        metrics,
        [
            "entropy",
            "prob",
            "kl",
            "ce",
            "rank",
            "target",
            "target-rank"
        ]
    );
    let titles =
        page.eval("[...document.getElementById('metric').options].map(o => o.textContent)");
    assert_eq!(
        titles,
        json!([
            "entropy (nats)",
            "argmax probability",
            "KL to the output (nats)",
            "next-token cross-entropy (nats)",
            "next-token rank (log scale)",
            "probability of \u{201c}·the\u{201d}",
            "rank of \u{201c}·the\u{201d} (log scale)"
        ])
    );
    let mut seen: Vec<std::collections::BTreeMap<String, [u8; 3]>> = Vec::new();
    for metric in &metrics {
        page.eval(&format!(
            "(() => {{ const s = document.getElementById('metric'); s.value = '{metric}'; s.dispatchEvent(new Event('change')); }})()"
        ));
        let now = colours(&mut page);
        if let Some(first) = seen.first() {
            let changed = now.iter().filter(|(k, c)| first[*k] != **c).count();
            assert!(
                changed * 2 > now.len(),
                "{metric}: only {changed} of {} cells differ from the entropy colours",
                now.len()
            );
        }
        // Colours follow the values: a larger value is never darker (viridis).
        let mut cells = Vec::new();
        for (key, colour) in &now {
            let (row, position) = key.split_once(',').unwrap();
            let cell = &doc["layers"][row.parse::<usize>().unwrap()]["positions"]
                [position.parse::<usize>().unwrap()];
            if let Some(v) = metric_value(metric, cell) {
                cells.push((v, luma(*colour)));
            }
        }
        assert!(cells.len() * 2 > now.len(), "{metric}: few values");
        cells.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in cells.windows(2) {
            assert!(
                pair[1].1 + 1.0 >= pair[0].1,
                "{metric}: {} is drawn darker than {}",
                pair[1].0,
                pair[0].0
            );
        }
        let unit = page.eval("window.logitlens.grid.metric.unit");
        assert!(!unit.as_str().unwrap().is_empty());
        seen.push(now);
    }
    assert_eq!(errors(&page.events()), Vec::<String>::new());
}

#[test]
fn sublayer_rows_targets_and_trajectories_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("fox.html");
    let args = [
        "-m",
        &phi(),
        "-p",
        FOX,
        "--target",
        " the",
        "--target-id",
        "7",
        "--sublayers",
    ];
    let (doc, _) = report_and_json(&args, &html);
    let Some(mut guard) = browser() else { return };
    let mut page = guard.as_mut().unwrap().page(1280, 900);
    open(&mut page, &html);
    let rows = doc["layers"].as_array().unwrap();
    let positions = doc["tokens"].as_array().unwrap().len();
    let cells = cells(&mut page);
    assert_eq!(cells.len(), rows.len() * positions);
    let mids = cells.iter().filter(|c| c.2 == "resid_mid").count();
    assert_eq!(mids, (rows.len() - 1) / 2 * positions, "resid_mid cells");
    let labels = page.eval("window.logitlens.grid.labels");
    assert_eq!(labels[1], json!("1 attn"));
    assert_eq!(labels[2], json!("1"));
    assert_eq!(
        labels[rows.len() - 1],
        json!(format!("{} out", rows.len() / 2))
    );
    let trajectories = page.eval("!document.getElementById('targets-figure').hidden");
    assert_eq!(trajectories, json!(true), "no target chart");
    // The tooltip of a resid_mid cell names it and lists KL, the next token and both targets.
    let (x, y) = centre(&mut page, 3, 1);
    page.mouse("mouseMoved", x, y);
    let shown = tooltip(&mut page).unwrap();
    for needle in [
        "2 attn",
        "KL to output",
        "next token",
        "rank",
        "target \u{201c} the\u{201d}",
        "target \u{201c}",
    ] {
        assert!(shown.contains(needle), "{needle:?} not in {shown}");
    }
    let top = top_tokens(&doc["layers"][3]["positions"][1]);
    assert_eq!(top.len(), 10);
    assert_eq!(errors(&page.events()), Vec::<String>::new());
}

#[test]
fn one_report_holds_a_batch_with_a_picker_and_summary_curves() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("batch.html");
    let prompts = ["The quick brown fox", "say </script> <!-- then", FOX];
    let mut args = vec!["-m".to_string(), phi()];
    for p in prompts {
        args.extend(["-p".to_string(), p.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (expected, _) = report_and_json(&args, &html);
    let Some(mut guard) = browser() else { return };
    let mut page = guard.as_mut().unwrap().page(1280, 900);
    open(&mut page, &html);
    let (_, value) = embedded(&mut page);
    assert_eq!(value, expected);
    let options = page.eval("document.getElementById('prompt-picker').options.length");
    assert_eq!(options, json!(3));
    let summary = page.eval("!document.getElementById('summary-figure').hidden");
    assert_eq!(summary, json!(true), "no summary curves for a batch");
    for (i, report) in expected.as_array().unwrap().iter().enumerate() {
        page.eval(&format!(
            "(() => {{ const s = document.getElementById('prompt-picker'); s.value = '{i}'; s.dispatchEvent(new Event('change')); }})()"
        ));
        let rows = report["layers"].as_array().unwrap().len();
        let positions = report["tokens"].as_array().unwrap().len();
        assert_eq!(cells(&mut page).len(), rows * positions, "prompt {i}");
        let subtitle = page.eval("document.getElementById('subtitle').textContent");
        assert!(
            subtitle.as_str().unwrap().contains(prompts[i]),
            "{subtitle}"
        );
    }
    assert_eq!(errors(&page.events()), Vec::<String>::new());
}

/// The phi fixture in a temporary directory, taking prompts of up to 4096 positions.
fn long_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["tokenizer.json", "model.safetensors"] {
        std::fs::copy(common::fixture("phi-tiny").join(f), dir.path().join(f)).unwrap();
    }
    let config = std::fs::read_to_string(common::fixture("phi-tiny").join("config.json")).unwrap();
    let mut config: Value = serde_json::from_str(&config).unwrap();
    config["max_position_embeddings"] = json!(4096);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn a_2048_token_report_paints_within_two_seconds_and_scrolls() {
    let model = long_fixture();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("long.html");
    // "the" and " the" are one token each in the fixture's tokenizer.
    let prompt = format!("the{}", " the".repeat(2047));
    let model = model.path().to_str().unwrap();
    ok(&["-m", model, "-p", &prompt, "--out", html.to_str().unwrap()]);
    let Some(mut guard) = browser() else { return };
    let mut page = guard.as_mut().unwrap().page(1280, 900);
    open(&mut page, &html);
    let (_, doc) = embedded(&mut page);
    let positions = doc["tokens"].as_array().unwrap().len();
    assert_eq!(positions, 2048);
    let rows = doc["layers"].as_array().unwrap().len();
    let painted = page.eval("window.logitlensPaintedAt").as_f64().unwrap();
    say(format!(
        "2048-token report ({} KB): first paint {painted:.0} ms after navigation",
        std::fs::metadata(&html).unwrap().len() / 1024
    ));
    assert!(painted < 2000.0, "first paint took {painted:.0} ms");

    // The prompt (8,191 chars) is collapsed to its first 200: the first screen shows the
    // grid, and the whole prompt is one click away.
    let first_screen = page.eval(
        "(() => { const d = document.querySelector('#subtitle details');
            return [d ? d.open : null, d ? d.querySelector('summary').textContent.length : 0,
                    d ? d.textContent.length : 0,
                    document.getElementById('grids').getBoundingClientRect().top, window.innerHeight]; })()",
    );
    assert_eq!(
        first_screen[0],
        json!(false),
        "a closed <details>: {first_screen}"
    );
    assert!(first_screen[1].as_u64().unwrap() < 240, "{first_screen}");
    assert!(
        first_screen[2].as_u64().unwrap() > prompt.len() as u64,
        "{first_screen}"
    );
    let (top, height) = (
        first_screen[3].as_f64().unwrap(),
        first_screen[4].as_f64().unwrap(),
    );
    assert!(
        top + 200.0 < height,
        "the grid starts at {top} px of {height}"
    );

    // Only the columns in view have elements; each is wide enough for its token label.
    let shown = cells(&mut page);
    assert!(
        !shown.is_empty() && shown.len() < rows * positions / 10,
        "{} cell elements",
        shown.len()
    );
    assert_eq!(shown.len() % rows, 0);
    let narrowest = page.eval("Math.min(...[...document.querySelectorAll('.cell')].map(e => e.getBoundingClientRect().width))");
    assert!(
        narrowest.as_f64().unwrap() >= 40.0,
        "columns of {narrowest} px"
    );

    // Scrolling redraws only what is in view: 20 jumps across the prompt, each drawn.
    let frame = page.eval(
        "(() => { const s = document.getElementById('grid-scroll'); const t0 = performance.now();
            for (let i = 0; i < 20; i++) { s.scrollLeft = i * s.scrollWidth / 20; window.logitlens.grid.draw(); }
            return (performance.now() - t0) / 20; })()",
    );
    let frame = frame.as_f64().unwrap();
    say(format!(
        "2048-token report: {frame:.1} ms per scrolled frame"
    ));
    assert!(frame < 50.0, "a scrolled frame takes {frame:.0} ms");

    // Scrolling to the end shows the last position's cells.
    page.eval("(() => { const s = document.getElementById('grid-scroll'); s.scrollLeft = s.scrollWidth; })()");
    assert!(page.wait_for(
        "!!document.querySelector('.cell[data-position=\"2047\"]')",
        Duration::from_secs(5)
    ));
    let (x, y) = centre(&mut page, rows - 1, 2047);
    page.mouse("mouseMoved", x, y);
    assert!(tooltip(&mut page).unwrap().contains("position 2047"));
    assert_eq!(errors(&page.events()), Vec::<String>::new());
}

#[test]
fn smollm2_report_screenshot() {
    let Some(model) = require_smollm2() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("smollm2.html");
    let model = model.to_str().unwrap();
    let args = ["-m", model, "-p", FOX, "--target", " dog", "--out"];
    ok(&[&args[..], &[html.to_str().unwrap()]].concat());
    // 31 rows × 8 positions with top-10; a 9-token Phi-1.5 page (25 × 9 cells) is smaller
    // still, and must stay under 2 MB.
    let size = std::fs::metadata(&html).unwrap().len();
    assert!(size < 500_000, "the report is {size} bytes");
    let Some(mut guard) = browser() else { return };
    let mut page = guard.as_mut().unwrap().page(1200, 1180);
    open(&mut page, &html);
    let (_, doc) = embedded(&mut page);
    let rows = doc["layers"].as_array().unwrap().len();
    let last = doc["tokens"].as_array().unwrap().len() - 1;
    let output = &doc["layers"][rows - 1]["positions"][last];
    assert_eq!(output["token"], " dog");
    assert_eq!(
        page.eval("!document.getElementById('targets-figure').hidden"),
        json!(true)
    );
    // Pin the output's " dog" so that the picture shows a tooltip with its top-k.
    let (x, y) = centre(&mut page, rows - 1, last);
    page.click(x, y);
    let shown = tooltip(&mut page).unwrap();
    for token in top_tokens(output) {
        assert!(shown.contains(&token), "{token:?} not in {shown}");
    }
    assert_eq!(errors(&page.events()), Vec::<String>::new());
    let png = page.screenshot();
    assert!(png.starts_with(b"\x89PNG"));
    let to = std::env::var_os("LOGITLENS_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("report.png"));
    std::fs::write(&to, &png).unwrap();
    say(format!(
        "screenshot: {} ({} KB)",
        to.display(),
        png.len() / 1024
    ));
}

#[test]
fn out_dir_writes_one_report_per_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("p.jsonl");
    std::fs::write(
        &prompts,
        "{\"id\": \"fox\", \"prompt\": \"The quick brown fox\"}\n{\"prompt\": \"2 + 2 =\"}\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let args = ["-m", &phi(), "--prompts", prompts.to_str().unwrap()];
    let both = [
        &args[..],
        &["--out-dir", out.to_str().unwrap(), "--image-format", "html"],
    ];
    let all: Value =
        serde_json::from_slice(&ok(&[&both.concat()[..], &["-f", "json"]].concat()).stdout)
            .unwrap();
    assert_eq!(common::file_names(&out), ["001.html", "fox.html"]);
    for (name, report) in [("fox.html", &all[0]), ("001.html", &all[1])] {
        let page = std::fs::read_to_string(out.join(name)).unwrap();
        let start = page.find("id=\"logitlens-data\">").unwrap() + "id=\"logitlens-data\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        let embedded: Value = serde_json::from_str(&page[start..end]).unwrap();
        assert_eq!(&embedded, report, "{name}");
    }
}

#[test]
fn html_bad_inputs_fail_in_one_line_and_clobber_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.html");
    std::fs::write(&report, "old").unwrap();
    let r = report.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    let phi = phi();
    let jpg = format!("{d}/r.jpg");
    let two = ["-m", &phi, "-p", "a b", "-p", "c d"];
    // Each after `-m PHI -p a`: the arguments, and what the one error line must name.
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["--out", r, "--color-range", "0..5"],
            &["--color-range", "HTML"],
        ),
        (
            &["--out", r, "--layer-step", "2"],
            &["--layer-step", "HTML"],
        ),
        (
            &["--out-dir", r, "--image-format", "html"],
            &["not a directory", "--out"],
        ),
        (&["--out", "missing/r.html"], &["missing"]),
        (&["--out", &jpg], &["jpg", ".html"]),
        (&["--out", r, "--top-k", "0"], &["--top-k 0", "HTML"]),
        (
            &["--out-dir", d, "--image-format", "html", "--top-k", "0"],
            &["--top-k 0", "HTML"],
        ),
    ];
    for (args, needles) in cases {
        assert_fails(&run(&[&["-m", &phi, "-p", "a"], args].concat()), 2, needles);
    }
    // Two prompts whose ids make one file name.
    let prompts = dir.path().join("p.jsonl");
    std::fs::write(
        &prompts,
        "{\"id\": \"a\", \"prompt\": \"x\"}\n{\"id\": \"a\", \"prompt\": \"y\"}\n",
    )
    .unwrap();
    let p = prompts.to_str().unwrap();
    let o = run(&[
        "-m",
        &phi,
        "--prompts",
        p,
        "--out-dir",
        d,
        "--image-format",
        "html",
    ]);
    assert_fails(&o, 2, &["a.html", "distinct ids"]);
    // A run whose every prompt fails, or whose model is missing, leaves the old file.
    let o = run(&["-m", &phi, "-p", "", "--out", r]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = run(&["-m", "./no/such/model", "-p", "a", "--out", r]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&report).unwrap(), "old");
    let names = common::file_names(dir.path());
    assert_eq!(names, ["p.jsonl", "r.html"], "stray files");
    // Several prompts into one --out report is no error.
    ok(&[&two[..], &["--out", r]].concat());
    assert!(std::fs::read_to_string(&report)
        .unwrap()
        .starts_with("<!DOCTYPE html>"));
}

/// llama-tiny and its tuned lens, compared (`--tuned-lens DIR --compare-lenses`).
fn compare_args() -> Vec<String> {
    let model = common::fixture("llama-tiny");
    let lens = common::fixture("tuned-lens").join("llama-tiny");
    [
        "-m",
        model.to_str().unwrap(),
        "--tuned-lens",
        lens.to_str().unwrap(),
        "--compare-lenses",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn compared_lenses_are_shown_side_by_side_on_one_scale() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("both.html");
    let mut args = compare_args();
    for more in [
        "-p",
        "The quick brown fox",
        "-p",
        "over the lazy dog",
        "--target",
        " because",
    ] {
        args.push(more.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (expected, _) = report_and_json(&args, &html);
    let reports = expected.as_array().unwrap();
    let lenses: Vec<&str> = reports
        .iter()
        .map(|r| r["lens"].as_str().unwrap())
        .collect();
    assert_eq!(lenses, ["logit", "tuned", "logit", "tuned"]);
    let Some(mut guard) = browser() else { return };
    let mut page = guard.as_mut().unwrap().page(1400, 900);
    open(&mut page, &html);
    let (_, value) = embedded(&mut page);
    assert_eq!(
        &value, &expected,
        "the embedded document differs from --format json"
    );
    // The picker lists each prompt once.
    let options =
        page.eval("[...document.getElementById('prompt-picker').options].map(o => o.textContent)");
    assert_eq!(options.as_array().unwrap().len(), 2, "{options}");

    // Both grids, logit left and tuned right, titled, each with one cell per row and position.
    let (logit, tuned) = (&reports[0], &reports[1]);
    let rows = logit["layers"].as_array().unwrap().len();
    let positions = logit["tokens"].as_array().unwrap().len();
    let per_lens = page.eval(
        "['logit', 'tuned'].map(l => document.querySelectorAll('.cell[data-lens=\"' + l + '\"][data-layer][data-site][data-position]').length)",
    );
    assert_eq!(per_lens, json!([rows * positions, rows * positions]));
    assert_eq!(cells(&mut page).len(), 2 * rows * positions);
    let titles = page.eval(
        "[...document.querySelectorAll('.grid-title')].map(t => [t.textContent, t.getBoundingClientRect().left, t.offsetParent !== null])",
    );
    let titles = titles.as_array().unwrap();
    assert_eq!(titles.len(), 2, "{titles:?}");
    assert!(
        titles[0][0].as_str().unwrap().starts_with("logit lens"),
        "{titles:?}"
    );
    assert!(
        titles[1][0].as_str().unwrap().starts_with("tuned lens"),
        "{titles:?}"
    );
    assert!(
        titles[0][2] == json!(true) && titles[1][2] == json!(true),
        "{titles:?}"
    );
    assert!(
        titles[0][1].as_f64() < titles[1][1].as_f64(),
        "tuned is not right of logit"
    );

    // Hovering a tuned cell shows that cell's top-k from the tuned document: take one
    // whose top-k differs from the logit lens's there.
    let (row, position) = (0..rows - 1)
        .flat_map(|r| (0..positions).map(move |p| (r, p)))
        .find(|&(r, p)| {
            top_tokens(&logit["layers"][r]["positions"][p])
                != top_tokens(&tuned["layers"][r]["positions"][p])
        })
        .expect("the tuned lens agrees with the logit lens everywhere");
    let (x, y) = centre_in(&mut page, "tuned", row, position);
    page.mouse("mouseMoved", x, y);
    let shown = tooltip(&mut page).expect("no tooltip over a tuned cell");
    assert!(shown.contains("tuned lens"), "{shown}");
    assert!(shown.contains(&format!("position {position}")), "{shown}");
    for token in top_tokens(&tuned["layers"][row]["positions"][position]) {
        assert!(
            shown.contains(&format!("\u{201c}{token}\u{201d}")),
            "{token:?} not in {shown}"
        );
    }
    // Clicking pins it; Esc unpins.
    page.click(x, y);
    let (x2, y2) = centre_in(&mut page, "logit", 0, 0);
    page.mouse("mouseMoved", x2, y2);
    assert!(tooltip(&mut page).unwrap().contains("tuned lens"));
    page.key("Escape");
    assert_eq!(tooltip(&mut page), None);

    // One metric selector recolours both grids, on one scale: the output row, which both
    // lenses share, has the same colours on both sides under every metric.
    let metrics = page.eval("[...document.getElementById('metric').options].map(o => o.value)");
    let metrics: Vec<String> = serde_json::from_value(metrics).unwrap();
    let mut first: Option<[std::collections::BTreeMap<String, [u8; 3]>; 2]> = None;
    for metric in &metrics {
        page.eval(&format!(
            "(() => {{ const s = document.getElementById('metric'); s.value = '{metric}'; s.dispatchEvent(new Event('change')); }})()"
        ));
        let now = [
            colours_of(&mut page, "logit"),
            colours_of(&mut page, "tuned"),
        ];
        for p in 0..positions {
            let key = format!("{},{p}", rows - 1);
            assert_eq!(
                now[0][&key], now[1][&key],
                "{metric}: output row, position {p}"
            );
        }
        if let Some(first) = &first {
            for (k, lens) in ["logit", "tuned"].iter().enumerate() {
                let changed = now[k].iter().filter(|(c, v)| first[k][*c] != **v).count();
                assert!(
                    changed * 2 > now[k].len(),
                    "{metric}: only {changed} {lens} cells recoloured"
                );
            }
        } else {
            first = Some(now);
        }
    }
    // The summary has one line per lens per statistic (the target's too, as in the summary
    // plot), the tuned lens's dashed.
    let summary = page.eval(
        "(() => { const s = window.logitlens.view.summary; return s.nats.series.concat(s.fractions.series).map(x => [x.label, x.lens, x.dashed]); })()",
    );
    let summary = summary.as_array().unwrap();
    assert_eq!(summary.len(), 2 * 6, "{summary:?}");
    for pair in summary.chunks(2) {
        assert_eq!(pair[0][0], pair[1][0]);
        assert_eq!((&pair[0][1], &pair[0][2]), (&json!("logit"), &json!(false)));
        assert_eq!((&pair[1][1], &pair[1][2]), (&json!("tuned"), &json!(true)));
    }
    assert_eq!(
        page.eval("!document.getElementById('summary-figure').hidden"),
        json!(true)
    );
    // The second prompt shows its own two grids.
    page.eval("(() => { const s = document.getElementById('prompt-picker'); s.value = '1'; s.dispatchEvent(new Event('change')); })()");
    let second = reports[2]["tokens"].as_array().unwrap().len();
    let per_lens = page.eval(
        "['logit', 'tuned'].map(l => document.querySelectorAll('.cell[data-lens=\"' + l + '\"]').length)",
    );
    assert_eq!(per_lens, json!([rows * second, rows * second]));
    assert_eq!(errors(&page.events()), Vec::<String>::new());
}

#[test]
fn compared_lenses_out_dir_writes_one_page_per_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut args = compare_args();
    for more in ["-p", "The quick", "-p", "over the lazy dog"] {
        args.push(more.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let html = ["--out-dir", out.to_str().unwrap(), "--image-format", "html"];
    let printed = ok(&[&args[..], &html[..], &["-f", "json"]].concat()).stdout;
    let all: Value = serde_json::from_slice(&printed).unwrap();
    assert_eq!(common::file_names(&out), ["000.html", "001.html"]);
    for (i, name) in ["000.html", "001.html"].iter().enumerate() {
        let page = std::fs::read_to_string(out.join(name)).unwrap();
        let start = page.find("id=\"logitlens-data\">").unwrap() + "id=\"logitlens-data\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        let embedded: Value = serde_json::from_str(&page[start..end]).unwrap();
        assert_eq!(embedded, json!([all[2 * i], all[2 * i + 1]]), "{name}");
        assert!(page.contains("(logit and tuned lens)</title>"), "{name}");
    }
}

/// A text element of plotters' SVG holding exactly `text` (XML-escaped).
fn svg_text(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    format!(">\n{escaped}\n</text>")
}

/// The page draws what the PNG/SVG heatmap draws: the same row labels, the same glyphs for
/// every input token (a tab as the heatmap's glyph, spaces as `·`), and colours from the
/// heatmap's viridis (matplotlib's anchors) with the colour of each cell at its value.
#[test]
fn the_page_shows_the_heatmaps_labels_glyphs_and_palette() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("tab.html");
    let svg = dir.path().join("tab.svg");
    let prompt = "a\tb\n c  d";
    let args = ["-m", &phi(), "-p", prompt];
    let (doc, _) = report_and_json(&args, &html);
    let svg_args = ["--metric", "prob", "--out", svg.to_str().unwrap()];
    ok(&[&args[..], &svg_args].concat());
    let svg = std::fs::read_to_string(&svg).unwrap();
    let Some(mut guard) = browser() else { return };
    let mut page = guard.as_mut().unwrap().page(1280, 900);
    open(&mut page, &html);

    // Row labels: the heatmap's, in order.
    let labels = page.eval("window.logitlens.grid.labels");
    let labels: Vec<String> = serde_json::from_value(labels).unwrap();
    assert_eq!(labels.len(), doc["layers"].as_array().unwrap().len());
    assert_eq!(labels[0], "0 emb");
    assert!(labels.last().unwrap().ends_with(" out"), "{labels:?}");
    for label in &labels {
        assert!(
            svg.contains(&svg_text(label)),
            "row label {label:?} not in the SVG"
        );
    }

    // Every input token's glyphs are the heatmap's axis label for it.
    let displays: Vec<String> = doc["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["display"].as_str().unwrap().to_string())
        .collect();
    let glyphs = page.eval(&format!(
        "{}.map(t => LL.glyphs(window.logitlens.view, t))",
        serde_json::to_string(&displays).unwrap()
    ));
    let glyphs: Vec<String> = serde_json::from_value(glyphs).unwrap();
    let tab = displays.iter().position(|d| d.contains('⇥'));
    let tab = tab.expect("the prompt has a token with a tab");
    assert!(glyphs[tab].contains('⇥'), "{:?}", glyphs[tab]);
    assert!(glyphs.iter().any(|g| g.starts_with('·')), "{glyphs:?}");
    for (display, glyph) in displays.iter().zip(&glyphs) {
        assert!(
            svg.contains(&svg_text(glyph)),
            "{display:?} is drawn {glyph:?} on the page, not so in the SVG"
        );
    }

    // The prompt as the heatmap's subtitle writes it: the tab `→`, the newline `↵`.
    let subtitle = page.eval("document.getElementById('subtitle').textContent");
    let subtitle = subtitle.as_str().unwrap();
    let (start, end) = (subtitle.find('“').unwrap(), subtitle.rfind('”').unwrap());
    let quoted = &subtitle[start..end + '”'.len_utf8()];
    assert_eq!(quoted, "“a→b↵ c  d”");
    assert!(svg.contains(&svg_text(quoted)), "{quoted} not in the SVG");

    // The palette is viridis (matplotlib's anchors at 0, 0.2, ..., 1), and each cell's
    // colour is the palette's at its probability (a 0..1 scale, as the heatmap's).
    page.eval(
        "(() => { const s = document.getElementById('metric'); s.value = 'prob'; s.dispatchEvent(new Event('change')); })()",
    );
    let palette = page.eval("window.logitlens.view.palette.colours");
    let palette: Vec<String> = serde_json::from_value(palette).unwrap();
    assert_eq!(palette.len(), 256);
    let anchors = [
        "#440154", "#414487", "#2a788e", "#22a884", "#7ad151", "#fde725",
    ];
    for (k, want) in anchors.iter().enumerate() {
        assert_eq!(&palette[51 * k], want, "viridis at {}", k as f64 / 5.0);
    }
    let ink = page.eval("[0, 255].map(i => window.logitlens.view.palette.ink[i])");
    assert_eq!(ink, json!(["#ffffff", "#000000"]));
    let hex = |[r, g, b]: [u8; 3]| format!("#{r:02x}{g:02x}{b:02x}");
    let colours = colours(&mut page);
    assert_eq!(colours.len(), labels.len() * displays.len());
    for (key, colour) in &colours {
        let (row, position) = key.split_once(',').unwrap();
        let cell = &doc["layers"][row.parse::<usize>().unwrap()]["positions"]
            [position.parse::<usize>().unwrap()];
        let p = cell["prob"].as_f64().unwrap();
        let want = &palette[(p * 255.0).round() as usize];
        assert_eq!(&hex(*colour), want, "cell {key} (prob {p})");
    }
    assert_eq!(errors(&page.events()), Vec::<String>::new());
}

/// With two targets the menu offers each one's probability and rank (log scale), titled with
/// its token; the second's rank colours each cell with the palette's entry at the cell's rank
/// on a log scale from 1 to the prompt's largest rank of that target, rounded up to a power
/// of 10 (the heatmap's `--metric rank` scale).
#[test]
fn every_targets_probability_and_rank_colour_the_cells() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("targets.html");
    let args = [
        "-m",
        &phi(),
        "-p",
        FOX,
        "--target",
        " the",
        "--target-id",
        "7",
    ];
    let (doc, _) = report_and_json(&args, &html);
    let Some(mut guard) = browser() else { return };
    let mut page = guard.as_mut().unwrap().page(1280, 900);
    open(&mut page, &html);
    let options = page.eval(
        "[...document.getElementById('metric').options].slice(5).map(o => [o.value, o.textContent])",
    );
    let second = format!(
        "\u{201c}{}\u{201d}",
        doc["targets"][1]["token"].as_str().unwrap()
    );
    assert_eq!(
        options,
        json!([
            ["target", "probability of \u{201c}·the\u{201d}"],
            ["target-rank", "rank of \u{201c}·the\u{201d} (log scale)"],
            ["target-2", format!("probability of {second}")],
            ["target-rank-2", format!("rank of {second} (log scale)")],
        ])
    );
    page.eval(
        "(() => { const s = document.getElementById('metric'); s.value = 'target-rank-2'; s.dispatchEvent(new Event('change')); })()",
    );
    let rank = |cell: &Value| cell["targets"][1]["rank"].as_f64().unwrap();
    let rows = doc["layers"].as_array().unwrap();
    let largest = rows
        .iter()
        .flat_map(|r| r["positions"].as_array().unwrap())
        .map(rank)
        .fold(1.0, f64::max);
    let top = 10f64.powf(largest.log10().ceil()).max(10.0);
    let scale = page
        .eval("window.logitlens.view.groups[0].metrics.find(m => m.key === 'target-rank-2').scale");
    assert_eq!(scale["max"].as_f64(), Some(top), "{scale}");
    assert_eq!(scale["log"], true);
    let palette = page.eval("window.logitlens.view.palette.colours");
    let palette: Vec<String> = serde_json::from_value(palette).unwrap();
    let hex = |[r, g, b]: [u8; 3]| format!("#{r:02x}{g:02x}{b:02x}");
    let colours = colours(&mut page);
    assert_eq!(
        colours.len(),
        rows.len() * doc["tokens"].as_array().unwrap().len()
    );
    let mut shades = std::collections::BTreeSet::new();
    for (key, colour) in &colours {
        let (row, position) = key.split_once(',').unwrap();
        let cell =
            &rows[row.parse::<usize>().unwrap()]["positions"][position.parse::<usize>().unwrap()];
        let r = rank(cell);
        let want = &palette[(r.ln() / top.ln() * 255.0).round() as usize];
        assert_eq!(&hex(*colour), want, "cell {key} (rank {r} of 1..{top})");
        shades.insert(want.clone());
    }
    assert!(shades.len() > 3, "few shades: {shades:?}");
    let bar = page.eval("window.logitlens.grid.metric.unit");
    assert_eq!(bar, "rank");
    assert_eq!(errors(&page.events()), Vec::<String>::new());
}

/// The summary charts show lens/summary.rs's records (as `--summary` writes them) under the
/// `--summary-plot` curves' labels and colours.
#[test]
fn the_summary_charts_show_the_summary_files_values() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("batch.html");
    let json_path = dir.path().join("summary.json");
    let plot = dir.path().join("summary.svg");
    let phi = phi();
    let args = [
        "-m",
        &phi,
        "-p",
        "The quick brown fox",
        "-p",
        FOX,
        "--target",
        " the",
        "--summary",
        json_path.to_str().unwrap(),
        "--summary-plot",
        plot.to_str().unwrap(),
    ];
    report_and_json(&args, &html);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let plot = std::fs::read_to_string(&plot).unwrap().to_lowercase();
    let Some(mut guard) = browser() else { return };
    let mut page = guard.as_mut().unwrap().page(1280, 900);
    open(&mut page, &html);
    assert_eq!(
        page.eval("!document.getElementById('summary-figure').hidden"),
        json!(true)
    );
    let view = page.eval("window.logitlens.view.summary");
    let records = summary["rows"].as_array().unwrap();
    assert_eq!(view["rows"].as_array().unwrap().len(), records.len());
    // Each curve's record field, as lens/summary.rs names it.
    let field = |label: &str| match label {
        "mean entropy (nats)" => "mean_entropy",
        "mean KL to the output (nats)" => "mean_kl",
        "mean next-token cross-entropy (nats)" => "mean_next_ce",
        "next-token top-1 accuracy" => "next_top1",
        "top-1 agreement with the output" => "output_agreement",
        "mean target probability (last position)" => "mean_target_prob",
        other => panic!("unknown curve {other:?}"),
    };
    let mut shown = Vec::new();
    for chart in ["nats", "fractions"] {
        for series in view[chart]["series"].as_array().unwrap() {
            let label = series["label"].as_str().unwrap();
            shown.push(label.to_string());
            assert!(
                plot.contains(&label.to_lowercase()),
                "{label:?} not in the plot"
            );
            let colour = series["colour"].as_str().unwrap();
            assert!(plot.contains(colour), "{label:?}: {colour} not in the plot");
            let want: Vec<Option<f64>> = records.iter().map(|r| r[field(label)].as_f64()).collect();
            let got: Vec<Option<f64>> = series["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(Value::as_f64)
                .collect();
            assert_eq!(got, want, "{label}");
        }
    }
    assert_eq!(shown.len(), 6, "{shown:?}");
    assert_eq!(view["nats"]["scale"]["min"].as_f64(), Some(0.0));
    let top = &view["fractions"]["scale"]["ticks"][5];
    assert_eq!((top[0].as_f64(), top[1].as_str()), (Some(1.0), Some("1.0")));
    assert_eq!(errors(&page.events()), Vec::<String>::new());
}
