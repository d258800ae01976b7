//! The browser UI (DESIGN §7 `/app/…`, `/s/{token}`): server-rendered pages for the sender
//! workspace and the signer ceremony, and the static files they load.
//!
//! Pages are minijinja templates (autoescaped HTML) embedded in the binary; every string comes
//! from the message catalogues (`i18n`). No page carries inline script or style: behaviour lives
//! in small JavaScript modules under `/static/` that call the JSON API like any other client, so
//! the strict Content-Security-Policy (`default-src 'self'`) holds on every page. Data a module
//! needs travels in `<script type="application/json">` blocks, which browsers never execute.
//!
//! Browser sessions: the login API sets the `HttpOnly` session cookie and a second,
//! script-readable `__Host-sigillum_csrf` cookie carrying the session's CSRF token, which the
//! modules echo in `X-CSRF-Token` (the server checks it against the session's stored hash; a
//! cross-site page can read neither cookie).

pub mod assets;
pub mod i18n;
mod pages;

use std::sync::{Arc, LazyLock};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use minijinja::Environment;
use serde_json::Value;

use crate::AppState;

/// Cookie carrying the session's CSRF token to the page's scripts.
pub const CSRF_COOKIE: &str = "__Host-sigillum_csrf";

/// Every route of the UI: pages and static files.
pub fn routes() -> Router<Arc<AppState>> {
    pages::routes().merge(assets::routes())
}

/// The page templates, by file name.
const TEMPLATES: [(&str, &str); 10] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("signup.html", include_str!("../../templates/signup.html")),
    ("dashboard.html", include_str!("../../templates/dashboard.html")),
    ("upload.html", include_str!("../../templates/upload.html")),
    ("envelope.html", include_str!("../../templates/envelope.html")),
    ("settings.html", include_str!("../../templates/settings.html")),
    ("billing.html", include_str!("../../templates/billing.html")),
    ("sign.html", include_str!("../../templates/sign.html")),
    ("not_found.html", include_str!("../../templates/not_found.html")),
];

static TEMPLATE_ENV: LazyLock<Result<Environment<'static>, minijinja::Error>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A misspelt key in a template is an error in the tests, not an empty string on a page.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    env.add_filter("fill", fill);
    Ok(env)
});

/// `{{ t.dash.count | fill(n=3) }}`: a catalogue message with its placeholders filled in.
fn fill(message: String, kwargs: minijinja::value::Kwargs) -> Result<String, minijinja::Error> {
    let mut out = message;
    for name in kwargs.args() {
        let value: minijinja::Value = kwargs.get(name)?;
        out = out.replace(&format!("{{{name}}}"), &value.to_string());
    }
    Ok(out)
}

/// What every page gets: its language and catalogue, the switcher, the signed-in user, the
/// page's script, and the page's own values.
pub(crate) struct Page<'a> {
    pub template: &'a str,
    pub script: &'a str,
    pub lang: &'static str,
    pub user: Option<Value>,
    /// Values for the template and, as JSON, for the page's script.
    pub data: Value,
    pub version: &'a str,
}

impl Page<'_> {
    pub fn render(&self) -> Result<String, minijinja::Error> {
        let env = TEMPLATE_ENV
            .as_ref()
            .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))?;
        let languages: Vec<Value> = i18n::LANGUAGES
            .iter()
            .map(|l| {
                let name = i18n::catalogue(l).and_then(|c| c.pointer("/meta/language_name")).cloned();
                serde_json::json!({ "code": l, "name": name.unwrap_or(Value::Null) })
            })
            .collect();
        let ctx = serde_json::json!({
            "lang": self.lang,
            "t": i18n::catalogue(self.lang).cloned().unwrap_or(Value::Null),
            "languages": languages,
            "user": self.user,
            "script": self.script,
            "data": self.data,
            "version": self.version,
        });
        env.get_template(self.template)?.render(ctx)
    }

    /// The page as an HTML response (status 200, or `status`), remembering an explicit language.
    pub fn respond(&self, status: StatusCode, remember_lang: bool) -> Response {
        match self.render() {
            Ok(html) => {
                let mut r = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
                if remember_lang {
                    let cookie =
                        format!("{}={}; Path=/; Secure; SameSite=Lax; Max-Age=31536000", i18n::LANG_COOKIE, self.lang);
                    if let Ok(v) = HeaderValue::from_str(&cookie) {
                        r.headers_mut().append(header::SET_COOKIE, v);
                    }
                }
                r
            }
            Err(e) => {
                tracing::error!(error = %e, template = self.template, "page could not be rendered");
                crate::error::ApiError::internal().into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every template renders in every language with the data its handler passes (strict
    /// undefined: a missing catalogue key fails here).
    #[test]
    fn every_page_renders_in_every_language() {
        for lang in i18n::LANGUAGES {
            for (template, data) in pages::sample_data() {
                let page = Page {
                    template,
                    script: "x",
                    lang,
                    user: Some(serde_json::json!({"name": "Ada <b>", "email": "ada@example.com"})),
                    data,
                    version: "0",
                };
                let html = page.render().unwrap_or_else(|e| panic!("{template} in {lang}: {e:#}"));
                assert!(html.contains(&format!("<html lang=\"{lang}\"")), "{template}");
                assert!(!html.contains("Ada <b>"), "{template} must escape");
                for inline in ["style=", "onclick", "onload", "javascript:"] {
                    assert!(!html.contains(inline), "{template} has inline {inline}");
                }
                // Only the page's module is executable; data blocks are JSON.
                for script in html.split("<script").skip(1) {
                    let tag = script.split('>').next().unwrap_or_default();
                    assert!(
                        tag.contains("type=\"application/json\"")
                            || (tag.contains("type=\"module\"") && tag.contains("src=\"/static/")),
                        "{template}: <script{tag}>"
                    );
                }
            }
        }
    }

    /// The sanitiser's report: what was removed, and apart from it, that signatures already in
    /// the upload will not verify in the final document.
    #[test]
    fn the_envelope_page_tells_what_was_removed_and_which_signatures_break() {
        let data = pages::sample_data().into_iter().filter(|(t, _)| *t == "envelope.html").nth(1).unwrap().1;
        let page = Page { template: "envelope.html", script: "x", lang: "en", user: None, data, version: "0" };
        let html = page.render().unwrap();
        assert!(html.contains("Removed from the upload for safety: JavaScript (2)</p>"), "{html}");
        assert!(html.contains("id=\"signatures-invalidated\">This document carries 1 digital signature(s)"), "{html}");
    }

    #[test]
    fn json_data_cannot_close_its_script_block() {
        let page = Page {
            template: "login.html",
            script: "login",
            lang: "en",
            user: None,
            data: serde_json::json!({"evil": "</script><script>alert(1)</script>"}),
            version: "0",
        };
        let html = page.render().unwrap();
        assert!(!html.contains("</script><script>alert"), "{html}");
    }
}
