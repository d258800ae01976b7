//! The page handlers. Each authenticates (workspace pages need a session; the signer page needs
//! nothing, its token is checked by the API the page calls), gathers what the page shows, and
//! renders one template. A workspace page without a valid session redirects to the login page.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use sigillum_core::Principal;

use super::{i18n, Page};
use crate::auth::session_cookie;
use crate::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/app") }))
        .route("/app", get(dashboard))
        .route("/app/login", get(login))
        .route("/app/signup", get(signup))
        .route("/app/envelopes/new", get(upload))
        .route("/app/envelopes/{id}", get(envelope))
        .route("/app/settings", get(settings))
        .route("/app/billing", get(billing))
        .route("/app/{*rest}", get(app_not_found))
        .route("/s/{token}", get(sign))
}

/// Query parameters every page understands (the language switcher), plus the dashboard's.
#[derive(Deserialize, Default)]
pub(crate) struct PageQuery {
    lang: Option<String>,
    status: Option<String>,
    q: Option<String>,
    /// Where a provider's hosted checkout sent the owner back from (`success`, `cancelled`).
    checkout: Option<String>,
}

/// The request's language, and whether the switcher chose it (then it is remembered).
fn language(q: &PageQuery, headers: &HeaderMap) -> (&'static str, bool) {
    let lang = i18n::negotiate(q.lang.as_deref(), headers);
    (lang, q.lang.as_deref().and_then(i18n::supported).is_some())
}

/// The signed-in user of a workspace page, or the redirect to the login page.
async fn signed_in(st: &AppState, headers: &HeaderMap) -> Result<Principal, Response> {
    let token = session_cookie(headers).ok_or_else(|| Redirect::to("/app/login").into_response())?;
    st.accounts.authenticate_session(token).await.map_err(|_| Redirect::to("/app/login").into_response())
}

fn user(p: &Principal) -> Value {
    json!({ "name": p.name, "email": p.email, "role": p.role })
}

fn page<'a>(st: &'a AppState, template: &'a str, script: &'a str, lang: &'static str) -> Page<'a> {
    Page { template, script, lang, user: None, data: json!({}), version: st.version }
}

async fn login(State(st): State<Arc<AppState>>, Query(q): Query<PageQuery>, headers: HeaderMap) -> Response {
    let (lang, chosen) = language(&q, &headers);
    page(&st, "login.html", "login", lang).respond(StatusCode::OK, chosen)
}

async fn signup(State(st): State<Arc<AppState>>, Query(q): Query<PageQuery>, headers: HeaderMap) -> Response {
    let (lang, chosen) = language(&q, &headers);
    page(&st, "signup.html", "signup", lang).respond(StatusCode::OK, chosen)
}

/// The envelope statuses the dashboard filters by.
const STATUSES: [&str; 6] = ["draft", "sent", "completed", "declined", "voided", "expired"];

async fn dashboard(State(st): State<Arc<AppState>>, Query(q): Query<PageQuery>, headers: HeaderMap) -> Response {
    let (lang, chosen) = language(&q, &headers);
    let p = match signed_in(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let all = match st.envelopes.list(&p).await {
        Ok(v) => v,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let status = q.status.as_deref().filter(|s| STATUSES.contains(s));
    let needle = q.q.as_deref().map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let total = all.len();
    let rows: Vec<Value> = all
        .iter()
        .filter(|e| status.is_none_or(|s| e.status.as_str() == s))
        .filter(|e| needle.as_ref().is_none_or(|n| e.title.to_lowercase().contains(n)))
        .map(|e| json!({ "id": e.id, "title": e.title, "status": e.status, "updated_unix_ms": e.updated_unix_ms }))
        .collect();
    let mut pg = page(&st, "dashboard.html", "dashboard", lang);
    pg.user = Some(user(&p));
    pg.data = json!({
        "envelopes": rows, "total": total, "statuses": STATUSES,
        "status": status.unwrap_or(""), "q": q.q.unwrap_or_default(),
    });
    pg.respond(StatusCode::OK, chosen)
}

async fn upload(State(st): State<Arc<AppState>>, Query(q): Query<PageQuery>, headers: HeaderMap) -> Response {
    let (lang, chosen) = language(&q, &headers);
    let p = match signed_in(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut pg = page(&st, "upload.html", "upload", lang);
    pg.user = Some(user(&p));
    pg.data = json!({ "max_bytes": st.envelopes.limits().max_bytes });
    pg.respond(StatusCode::OK, chosen)
}

async fn envelope(
    State(st): State<Arc<AppState>>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (lang, chosen) = language(&q, &headers);
    let p = match signed_in(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let detail = match crate::envelopes::envelope_id(&id) {
        Ok(id) => st.envelopes.detail(&p, id).await.map_err(crate::error::ApiError::from),
        Err(e) => Err(e),
    };
    let detail = match detail {
        Ok(d) => serde_json::to_value(d).unwrap_or(Value::Null),
        Err(e) if e.status == StatusCode::NOT_FOUND => return not_found_page(&st, lang, Some(user(&p))),
        Err(e) => return e.into_response(),
    };
    let mut pg = page(&st, "envelope.html", "envelope", lang);
    pg.user = Some(user(&p));
    pg.data = json!({ "envelope": detail, "roles": sigillum_core::envelopes::ROLES });
    pg.respond(StatusCode::OK, chosen)
}

async fn settings(State(st): State<Arc<AppState>>, Query(q): Query<PageQuery>, headers: HeaderMap) -> Response {
    let (lang, chosen) = language(&q, &headers);
    let p = match signed_in(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let totp = st.accounts.totp_enabled(&p).await.unwrap_or(false);
    let mut pg = page(&st, "settings.html", "settings", lang);
    pg.user = Some(user(&p));
    pg.data = json!({ "totp_enabled": totp });
    pg.respond(StatusCode::OK, chosen)
}

/// The organisation's plan and usage, the plans, and the ways to the providers' hosted pages.
async fn billing(State(st): State<Arc<AppState>>, Query(q): Query<PageQuery>, headers: HeaderMap) -> Response {
    let (lang, chosen) = language(&q, &headers);
    let p = match signed_in(&st, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let status = match st.billing.status(&p).await {
        Ok(s) => serde_json::to_value(s).unwrap_or(Value::Null),
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let checkout = q.checkout.as_deref().filter(|c| ["success", "cancelled"].contains(c)).unwrap_or("");
    let mut pg = page(&st, "billing.html", "billing", lang);
    pg.user = Some(user(&p));
    pg.data = json!({
        "status": status,
        "plans": st.billing.plans(),
        "owner": p.role == sigillum_core::ports::Role::Owner,
        "checkout": checkout,
    });
    pg.respond(StatusCode::OK, chosen)
}

async fn app_not_found(State(st): State<Arc<AppState>>, Query(q): Query<PageQuery>, headers: HeaderMap) -> Response {
    let (lang, _) = language(&q, &headers);
    not_found_page(&st, lang, None)
}

fn not_found_page(st: &AppState, lang: &'static str, user: Option<Value>) -> Response {
    let mut pg = page(st, "not_found.html", "common", lang);
    pg.user = user;
    pg.respond(StatusCode::NOT_FOUND, false)
}

/// The signer ceremony. The page itself reveals nothing: the script asks the signing API with
/// the token (and access code), which records the link being opened.
async fn sign(
    State(st): State<Arc<AppState>>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let (lang, chosen) = language(&q, &headers);
    let well_formed = token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let mut pg = page(&st, "sign.html", "sign", lang);
    pg.data = json!({ "token": if well_formed { token } else { String::new() } });
    let mut r = pg.respond(StatusCode::OK, chosen);
    // The token is in the path: never let it leave in a Referer (also set globally) or a cache.
    r.headers_mut().insert(header::REFERRER_POLICY, axum::http::HeaderValue::from_static("no-referrer"));
    r
}

/// Representative data of each template, for the rendering tests.
#[cfg(test)]
pub(crate) fn sample_data() -> Vec<(&'static str, Value)> {
    let envelope = json!({
        "id": "0b7c2a3e-5b9e-4d7b-9a7e-3f8c4a1d2e6f", "title": "Lease <script>", "status": "draft",
        "document_sha256": "ab", "document_bytes": 10, "pages": [{"width": 595.0, "height": 842.0}],
        "created_unix_ms": 0, "updated_unix_ms": 0, "sent_unix_ms": null, "expires_unix_ms": null,
        "finished_unix_ms": null, "final_sha256": null, "sanitisation": null, "previews_failed": null,
        "recipients": [], "fields": [],
    });
    let mut sanitised = envelope.clone();
    sanitised["sanitisation"] = json!({"uploaded_sha256": "cd", "removed": [
        {"kind": "javascript", "count": 2}, {"kind": "invalidated_signatures", "count": 1}]});
    vec![
        ("login.html", json!({})),
        ("signup.html", json!({})),
        (
            "dashboard.html",
            json!({"envelopes": [{"id": "x", "title": "A <b>", "status": "sent", "updated_unix_ms": 0}],
                "total": 1, "statuses": STATUSES, "status": "", "q": ""}),
        ),
        ("dashboard.html", json!({"envelopes": [], "total": 0, "statuses": STATUSES, "status": "sent", "q": "x"})),
        ("upload.html", json!({"max_bytes": 1})),
        ("envelope.html", json!({"envelope": envelope, "roles": sigillum_core::envelopes::ROLES})),
        ("envelope.html", json!({"envelope": sanitised, "roles": sigillum_core::envelopes::ROLES})),
        ("settings.html", json!({"totp_enabled": false})),
        ("billing.html", billing_sample(true, "stripe", "active", "success")),
        ("billing.html", billing_sample(true, "paypal", "ACTIVE", "")),
        ("billing.html", billing_sample(false, "", "none", "cancelled")),
        ("sign.html", json!({"token": "abc"})),
        ("not_found.html", json!({})),
    ]
}

#[cfg(test)]
fn billing_sample(enabled: bool, provider: &str, status: &str, checkout: &str) -> Value {
    let free = json!({"id": "free", "name": "Free <i>", "envelopes_per_month": 5, "seats": 1,
        "stripe_price": null, "paypal_plan": null, "price_label": null});
    let team = json!({"id": "team", "name": "Team", "envelopes_per_month": null, "seats": null,
        "stripe_price": "price_1", "paypal_plan": "P-1", "price_label": "CHF 29 / month"});
    json!({
        "status": {"enabled": enabled, "plan": if enabled { team.clone() } else { free.clone() },
            "provider": if provider.is_empty() { Value::Null } else { json!(provider) }, "status": status,
            "subscription_id": "sub_1", "period": {"start_unix_ms": 0, "end_unix_ms": 1}, "envelopes_used": 3,
            "envelopes_limit": if enabled { Value::Null } else { json!(5) }, "seats_used": 1, "seats_limit": 1,
            "payment_problem": status == "past_due"},
        "plans": {"enabled": enabled, "providers": ["stripe", "paypal"], "plans": [free, team]},
        "owner": true,
        "checkout": checkout,
    })
}
