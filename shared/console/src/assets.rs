//! The console's files, embedded in the binary: templates, the stylesheet
//! and the script.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("overview.html", include_str!("../templates/overview.html")),
    ("flows.html", include_str!("../templates/flows.html")),
    ("log.html", include_str!("../templates/log.html")),
    ("entry.html", include_str!("../templates/entry.html")),
    ("run.html", include_str!("../templates/run.html")),
    ("dead.html", include_str!("../templates/dead.html")),
    ("subscriptions.html", include_str!("../templates/subscriptions.html")),
    ("test.html", include_str!("../templates/test.html")),
];

/// The templates, HTML-escaped by their `.html` names (minijinja's
/// default): everything shown from the log is text, never markup.
pub fn templates() -> Result<minijinja::Environment<'static>, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    for (name, text) in TEMPLATES {
        env.add_template(name, text)?;
    }
    Ok(env)
}

/// `/console/assets/{name}`.
pub fn asset(name: &str) -> Response {
    let (body, kind) = match name {
        "console.css" => (include_str!("../assets/console.css"), "text/css; charset=utf-8"),
        "console.js" => (include_str!("../assets/console.js"), "text/javascript; charset=utf-8"),
        "favicon.svg" => (include_str!("../assets/favicon.svg"), "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}
