//! The console's files, embedded in the binary: templates, the stylesheet
//! and the script.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("overview.html", include_str!("../templates/overview.html")),
    ("flows.html", include_str!("../templates/flows.html")),
    ("flow.html", include_str!("../templates/flow.html")),
    ("log.html", include_str!("../templates/log.html")),
    ("entry.html", include_str!("../templates/entry.html")),
    ("requests.html", include_str!("../templates/requests.html")),
    ("request.html", include_str!("../templates/request.html")),
    ("run.html", include_str!("../templates/run.html")),
    ("dead.html", include_str!("../templates/dead.html")),
    ("replay.html", include_str!("../templates/replay.html")),
    ("subscriptions.html", include_str!("../templates/subscriptions.html")),
    ("subscription.html", include_str!("../templates/subscription.html")),
    ("actions.html", include_str!("../templates/actions.html")),
    ("test.html", include_str!("../templates/test.html")),
];

/// The templates, HTML-escaped by their `.html` names (minijinja's
/// default): everything shown from the log is text, never markup. A
/// bidirectional control character in shown text (which could make `gnp.exe`
/// read as `exe.png`, or reorder a URL) is shown as its code point instead.
pub fn templates() -> Result<minijinja::Environment<'static>, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    for (name, text) in TEMPLATES {
        env.add_template(name, text)?;
    }
    // Markup-safe output (`tojson`'s) too: the controls are in its strings,
    // and `[U+202E]` is text in HTML and in JSON alike.
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text) if text.chars().any(is_bidi) => {
            let shown = neutralised(text);
            let shown =
                if value.is_safe() { minijinja::Value::from_safe_string(shown) } else { minijinja::Value::from(shown) };
            minijinja::escape_formatter(out, state, &shown)
        }
        _ => minijinja::escape_formatter(out, state, value),
    });
    Ok(env)
}

/// Whether `c` changes the direction of the text around it (Unicode's
/// embeddings, overrides, isolates and marks).
fn is_bidi(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with each bidirectional control shown as `[U+202E]`.
fn neutralised(text: &str) -> String {
    text.chars().map(|c| if is_bidi(c) { format!("[U+{:04X}]", c as u32) } else { c.to_string() }).collect()
}

/// `/console/assets/{name}`.
pub fn asset(name: &str) -> Response {
    let (body, kind) = match name {
        "console.css" => (include_str!("../assets/console.css"), "text/css; charset=utf-8"),
        "console.js" => (include_str!("../assets/console.js"), "text/javascript; charset=utf-8"),
        "favicon.svg" => (include_str!("../assets/favicon.svg"), "image/svg+xml"),
        "uPlot.iife.min.js" => {
            (include_str!("../assets/vendor/uplot/uPlot.iife.min.js"), "text/javascript; charset=utf-8")
        }
        "uPlot.min.css" => (include_str!("../assets/vendor/uplot/uPlot.min.css"), "text/css; charset=utf-8"),
        "uPlot.LICENSE" => (include_str!("../assets/vendor/uplot/LICENSE"), "text/plain; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// The vendored chart library is the release its README names,
    /// unchanged (a copy edited by hand would not be uPlot's).
    #[test]
    fn the_vendored_chart_library_is_the_one_its_readme_names() {
        let readme = include_str!("../assets/vendor/uplot/README.md");
        for (name, body) in [
            ("uPlot.iife.min.js", include_str!("../assets/vendor/uplot/uPlot.iife.min.js")),
            ("uPlot.min.css", include_str!("../assets/vendor/uplot/uPlot.min.css")),
        ] {
            let sum: String = Sha256::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
            assert!(readme.contains(&format!("sha256 {sum}  {name}")), "{name} is not the vendored release");
        }
        assert!(include_str!("../assets/vendor/uplot/LICENSE").contains("MIT License"));
    }
}
