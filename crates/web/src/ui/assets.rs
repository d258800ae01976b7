//! The UI's static files, embedded in the binary and served from `/static/` by Sigillum itself:
//! no third-party origin (fonts, scripts, styles) is ever loaded by a page.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::AppState;

const JS: &str = "text/javascript; charset=utf-8";

/// Name, content type and bytes of every static file.
const FILES: [(&str, &str, &[u8]); 15] = [
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../static/app.css")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../../static/favicon.svg")),
    ("common.js", JS, include_bytes!("../../static/common.js")),
    ("login.js", JS, include_bytes!("../../static/login.js")),
    ("signup.js", JS, include_bytes!("../../static/signup.js")),
    ("dashboard.js", JS, include_bytes!("../../static/dashboard.js")),
    ("upload.js", JS, include_bytes!("../../static/upload.js")),
    ("envelope.js", JS, include_bytes!("../../static/envelope.js")),
    ("editor.js", JS, include_bytes!("../../static/editor.js")),
    ("settings.js", JS, include_bytes!("../../static/settings.js")),
    ("billing.js", JS, include_bytes!("../../static/billing.js")),
    ("sign.js", JS, include_bytes!("../../static/sign.js")),
    ("signature-pad.js", JS, include_bytes!("../../static/signature-pad.js")),
    // The typed-signature faces, the same font programs the sealed PDF embeds.
    ("dancing-script.otf", "font/otf", sigillum_pdf::script_font::DANCING_SCRIPT),
    ("kaushan-script.otf", "font/otf", sigillum_pdf::script_font::KAUSHAN_SCRIPT),
];

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/static/{name}", get(file))
}

/// The file's bytes and content type, if it exists.
pub fn lookup(name: &str) -> Option<(&'static str, &'static [u8])> {
    FILES.iter().find(|(n, _, _)| *n == name).map(|(_, ct, bytes)| (*ct, *bytes))
}

async fn file(Path(name): Path<String>) -> Response {
    match lookup(&name) {
        // Pages link each file with `?v=<version>`, so a new release is fetched at once.
        Some((content_type, bytes)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=86400")],
            bytes,
        )
            .into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_load_nothing_from_other_origins() {
        for (name, _, bytes) in FILES {
            if name.ends_with(".js") || name.ends_with(".css") {
                let text = std::str::from_utf8(bytes).unwrap();
                for forbidden in ["http://", "https://", "//cdn", "eval(", "new Function", "innerHTML"] {
                    assert!(!text.contains(forbidden), "{name} contains {forbidden}");
                }
            }
        }
    }

    #[test]
    fn every_imported_module_is_served() {
        for (name, _, bytes) in FILES.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            let text = std::str::from_utf8(bytes).unwrap();
            for import in text.split("from \"./").skip(1) {
                let file = import.split('"').next().unwrap_or_default();
                assert!(lookup(file).is_some(), "{name} imports {file}, which is not served");
            }
        }
    }
}
