//! One self-contained page: the template with the styles, the scripts and the data
//! filled in. Nothing in it refers to anything outside the file.

/// The page skeleton, with `{{title}}`, `{{model}}`, `{{css}}`, `{{data}}`, `{{view}}` and
/// `{{js}}` slots.
const TEMPLATE: &str = include_str!("assets/template.html");
/// The styles.
const CSS: &str = include_str!("assets/report.css");
/// The scripts, in order: data (reading the document and the view), grid and charts
/// (drawing), main (wiring).
const SCRIPTS: [&str; 3] = [
    include_str!("assets/data.js"),
    include_str!("assets/grid.js"),
    include_str!("assets/main.js"),
];

/// The page for the JSON `document` (as `--format json` prints it) and its JSON `view`
/// (what [`super::view`] computes for it), titled `title`, its heading naming `model`.
///
/// The document goes into `<script type="application/json" id="logitlens-data">` and the
/// view into `id="logitlens-view"`, with every `<` written as `\u003c`, which JSON reads
/// back as the same string, so no text in them can close the element or open a comment
/// (`</script>`, `<!--`).
pub fn page(document: &str, view: &str, title: &str, model: &str) -> String {
    let room = TEMPLATE.len() + CSS.len() + document.len() + view.len() + 100_000;
    let mut out = String::with_capacity(room);
    let mut rest = TEMPLATE;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find("}}").expect("template slot is closed");
        match &rest[open + 2..close] {
            "title" => out.push_str(&escape_html(title)),
            "model" => out.push_str(&escape_html(model)),
            "css" => out.push_str(CSS),
            "data" => out.push_str(&document.trim_end().replace('<', "\\u003c")),
            "view" => out.push_str(&view.trim_end().replace('<', "\\u003c")),
            "js" => SCRIPTS.iter().for_each(|s| out.push_str(s)),
            other => panic!("unknown template slot {other}"),
        }
        rest = &rest[close + 2..];
    }
    out.push_str(rest);
    out
}

/// `text` as HTML text.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_cannot_end_their_elements_early() {
        for asset in SCRIPTS.iter().chain([&CSS]) {
            let lower = asset.to_lowercase();
            assert!(!lower.contains("</script") && !lower.contains("</style"));
            assert!(!lower.contains("<!--"));
            assert!(!asset.contains("{{"), "an asset holds a template slot");
        }
    }

    #[test]
    fn nothing_refers_outside_the_file() {
        let page = page("{}", "{}", "t", "m");
        for needle in [
            "http:", "https:", "//cdn", "@import", "url(", "fetch(", "src=",
        ] {
            assert!(!page.contains(needle), "the page contains {needle}");
        }
    }

    #[test]
    fn data_is_embedded_verbatim_but_for_lt() {
        let doc = "{\"prompt\": \"a </script><!-- b & <c>\"}\n";
        let page = page(doc, "{\"v\": \"</script>\"}", "x < y & \"z\"", "m");
        let start = page.find("id=\"logitlens-data\">").unwrap() + 20;
        let end = start + page[start..].find("</script>").unwrap();
        let embedded = &page[start..end];
        assert_eq!(embedded, doc.trim_end().replace('<', "\\u003c"));
        let back: serde_json::Value = serde_json::from_str(embedded).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(doc).unwrap()
        );
        assert!(page.contains("<title>x &lt; y &amp; &quot;z&quot;</title>"));
        let start = page.find("id=\"logitlens-view\">").unwrap() + 20;
        let end = start + page[start..].find("</script>").unwrap();
        let view: serde_json::Value = serde_json::from_str(&page[start..end]).unwrap();
        assert_eq!(view, serde_json::json!({"v": "</script>"}));
    }
}
