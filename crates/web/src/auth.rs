//! Authentication at the edge of the app tier: who is calling, and is the call allowed to change
//! anything. `Authorization: Bearer sgl_…` (an API key) or the `__Host-sigillum_session` cookie;
//! a cookie-authenticated request with an unsafe method must carry the session's CSRF token in
//! `X-CSRF-Token`. Also the account routes: signup, login, logout, the caller, API keys.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sigillum_core::accounts::{AccountError, SESSION_ABSOLUTE_MS};
use sigillum_core::{ApiKeyId, Principal};

use crate::client::Client;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::AppState;

pub const SESSION_COOKIE: &str = "__Host-sigillum_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", m),
            AccountError::EmailTaken => {
                ApiError::new(StatusCode::CONFLICT, "email_taken", "an account with this email already exists")
            }
            AccountError::InvalidCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "email or password is wrong")
            }
            AccountError::Throttled { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed attempts; try again later",
            ),
            AccountError::Unauthenticated => unauthenticated(),
            AccountError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource"),
            AccountError::OwnerOnly => {
                ApiError::new(StatusCode::FORBIDDEN, "owner_only", "only the organisation's owner may do this")
            }
            AccountError::TotpRequired => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "totp_required",
                "this account uses two-factor authentication: send `totp` (or a recovery code)",
            ),
            AccountError::InvalidTotp => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_totp", "the two-factor code is wrong or was used")
            }
            AccountError::TotpState(code) => ApiError::new(
                StatusCode::CONFLICT,
                code,
                match code {
                    "totp_already_enabled" => "two-factor authentication is already on",
                    _ => "start with POST /api/v1/auth/totp/setup",
                },
            ),
            e => {
                tracing::error!(error = %e, "account operation failed");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the service is unavailable")
            }
        }
    }
}

fn unauthenticated() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in or send an API key")
}

/// The session token from the `Cookie` header(s), if any (also the rate limiter's key).
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == SESSION_COOKIE && !value.is_empty()).then_some(value)
    })
}

/// The authenticated caller. Rejects with 401 (no or bad credentials) or 403 (missing CSRF token
/// on a cookie-authenticated unsafe request).
pub struct Authenticated(pub Principal);

impl FromRequestParts<Arc<AppState>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
            let key = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).ok_or_else(unauthenticated)?;
            return Ok(Self(st.accounts.authenticate_api_key(key.trim()).await?));
        }
        let token = session_cookie(&parts.headers).ok_or_else(unauthenticated)?;
        let principal = st.accounts.authenticate_session(token).await?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !safe && !principal.csrf_ok(presented) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", "missing or wrong X-CSRF-Token"));
        }
        Ok(Self(principal))
    }
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/auth/signup", post(signup))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
        .route("/api/v1/auth/totp/setup", post(totp_setup))
        .route("/api/v1/members", post(add_member).get(members))
        .route("/api/v1/members/{id}", delete(remove_member))
        .route("/api/v1/organisation", get(organisation).patch(set_retention).delete(erase_organisation))
        .route("/api/v1/auth/totp/enable", post(totp_enable))
        .route("/api/v1/api-keys", post(create_key).get(list_keys))
        .route("/api/v1/api-keys/{id}", delete(revoke_key))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Signup {
    email: String,
    #[schema(value_type = String)]
    password: SecretString,
    name: String,
}

#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "accounts", request_body = Signup, responses((status = 201, description = "account and organisation created", body = Object), (status = 409, description = "email taken", body = crate::openapi::ErrorBody), (status = 422, description = "invalid input", body = crate::openapi::ErrorBody)))]
async fn signup(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    ApiJson(b): ApiJson<Signup>,
) -> Result<Response, ApiError> {
    let user = st.accounts.signup(&b.email, b.password, &b.name, &client).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    email: String,
    #[schema(value_type = String)]
    password: SecretString,
    /// The current TOTP code, or a recovery code, when two-factor is on.
    #[serde(default)]
    totp: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts", request_body = Login, responses((status = 200, description = "session cookie `__Host-sigillum_session` set; body has `csrf_token`", body = Object), (status = 401, description = "wrong email, password or code", body = crate::openapi::ErrorBody), (status = 429, description = "throttled", body = crate::openapi::ErrorBody)))]
async fn login(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    ApiJson(b): ApiJson<Login>,
) -> Result<Response, ApiError> {
    let out = match st.accounts.login(&b.email, b.password, b.totp.as_deref(), &client).await {
        Err(AccountError::Throttled { retry_after_s }) => {
            let mut r = ApiError::from(AccountError::Throttled { retry_after_s }).into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            return Ok(r);
        }
        other => other?,
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        out.session_token.expose_secret(),
        SESSION_ABSOLUTE_MS / 1000
    );
    let mut r = Json(json!({ "csrf_token": out.csrf_token, "user": out.user, "expires_unix_ms": out.expires_unix_ms }))
        .into_response();
    let value = HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal())?;
    r.headers_mut().insert(header::SET_COOKIE, value);
    // The same CSRF token for the pages' scripts (see `ui`): readable by them, by no other site.
    let csrf = format!(
        "{}={}; Path=/; Secure; SameSite=Strict; Max-Age={}",
        crate::ui::CSRF_COOKIE,
        out.csrf_token,
        SESSION_ABSOLUTE_MS / 1000
    );
    r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&csrf).map_err(|_| ApiError::internal())?);
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "accounts", security(("api_key" = []), ("session" = [])), responses((status = 204, description = "session ended"), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody)))]
async fn logout(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
) -> Result<Response, ApiError> {
    st.accounts.logout(&p, &client).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("__Host-sigillum_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("__Host-sigillum_csrf=; Path=/; Secure; SameSite=Strict; Max-Age=0"),
    );
    Ok(r)
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "accounts", security(("api_key" = []), ("session" = [])), responses((status = 200, description = "the caller", body = Object), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody)))]
async fn me(Authenticated(p): Authenticated) -> Json<serde_json::Value> {
    Json(json!({
        "id": p.user_id, "organisation_id": p.org_id, "email": p.email, "name": p.name, "role": p.role,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    name: String,
}

#[utoipa::path(post, path = "/api/v1/api-keys", tag = "accounts", security(("api_key" = []), ("session" = [])), request_body = NewKey, responses((status = 201, description = "`{id, key}`: the key is shown once", body = Object), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "not allowed in the envelope's status", body = crate::openapi::ErrorBody), (status = 422, description = "invalid input", body = crate::openapi::ErrorBody)))]
async fn create_key(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    ApiJson(b): ApiJson<NewKey>,
) -> Result<Response, ApiError> {
    let (view, secret) = st.accounts.create_api_key(&p, &b.name, &client).await?;
    let body = json!({ "id": view.id, "key": secret.expose_secret(), "name": view.name, "prefix": view.prefix });
    let mut r = (StatusCode::CREATED, Json(body)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "accounts", security(("api_key" = []), ("session" = [])), responses((status = 200, description = "the organisation's keys (never the secrets)", body = Object), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody)))]
async fn list_keys(
    State(st): State<Arc<AppState>>,
    Authenticated(p): Authenticated,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "api_keys": st.accounts.list_api_keys(&p).await? })))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "accounts", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "API key id")), responses((status = 204, description = "revoked"), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "not allowed in the envelope's status", body = crate::openapi::ErrorBody), (status = 422, description = "invalid input", body = crate::openapi::ErrorBody)))]
async fn revoke_key(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id =
        ApiKeyId::parse(&id).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource"))?;
    st.accounts.revoke_api_key(&p, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/auth/totp/setup", tag = "accounts", security(("api_key" = []), ("session" = [])),
    responses((status = 200, description = "a new TOTP secret, active once enabled", body = sigillum_core::two_factor::TotpSetup), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "two-factor already on, or not set up", body = crate::openapi::ErrorBody)))]
async fn totp_setup(State(st): State<Arc<AppState>>, Authenticated(p): Authenticated) -> Result<Response, ApiError> {
    Ok(Json(st.accounts.setup_totp(&p).await?).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TotpCode {
    code: String,
}

#[utoipa::path(post, path = "/api/v1/auth/totp/enable", tag = "accounts", security(("api_key" = []), ("session" = [])), request_body = TotpCode,
    responses((status = 200, description = "`{recovery_codes: [...]}`, shown once", body = Object),
        (status = 401, description = "wrong code (`invalid_totp`) or not signed in", body = crate::openapi::ErrorBody), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "two-factor already on, or not set up", body = crate::openapi::ErrorBody)))]
async fn totp_enable(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    ApiJson(b): ApiJson<TotpCode>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let codes = st.accounts.enable_totp(&p, &b.code, &client).await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}

#[utoipa::path(post, path = "/api/v1/members", tag = "accounts", security(("api_key" = []), ("session" = [])), request_body = Signup,
    responses((status = 201, description = "the new member", body = sigillum_core::accounts::UserView),
        (status = 409, description = "email taken", body = crate::openapi::ErrorBody),
        (status = 402, description = "the plan's seats are taken (`seats_exceeded`, with `upgrade_url`)", body = crate::openapi::ErrorBody),
        (status = 422, description = "invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "not the owner, or missing CSRF token", body = crate::openapi::ErrorBody)))]
async fn add_member(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    ApiJson(b): ApiJson<Signup>,
) -> Result<Response, ApiError> {
    st.billing.check_seat(p.org_id).await.map_err(|e| crate::billing::billing_error(&st, e))?;
    let user = st.accounts.add_member(&p, &b.email, b.password, &b.name, &client).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[utoipa::path(get, path = "/api/v1/organisation", tag = "accounts", security(("api_key" = []), ("session" = [])),
    responses((status = 200, description = "the caller's organisation", body = sigillum_core::accounts::OrganisationView),
        (status = 401, description = "not signed in", body = crate::openapi::ErrorBody)))]
async fn organisation(
    State(st): State<Arc<AppState>>,
    Authenticated(p): Authenticated,
) -> Result<Json<sigillum_core::accounts::OrganisationView>, ApiError> {
    Ok(Json(st.accounts.organisation(&p).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Retention {
    /// Days after an envelope ends (completed, declined, voided, expired) until it is erased by
    /// crypto-shredding, 1 to 36500; `null` keeps envelopes until someone deletes them. Required.
    #[schema(value_type = Option<u32>)]
    retention_days: serde_json::Value,
}

#[utoipa::path(patch, path = "/api/v1/organisation", tag = "accounts", security(("api_key" = []), ("session" = [])), request_body = Retention,
    responses((status = 200, description = "the organisation with its new retention", body = sigillum_core::accounts::OrganisationView),
        (status = 422, description = "not a number of days from 1 to 36500, nor null", body = crate::openapi::ErrorBody), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "not the owner, or missing CSRF token", body = crate::openapi::ErrorBody)))]
async fn set_retention(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    ApiJson(b): ApiJson<Retention>,
) -> Result<Json<sigillum_core::accounts::OrganisationView>, ApiError> {
    let days = match &b.retention_days {
        serde_json::Value::Null => None,
        v => Some(
            v.as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| AccountError::Invalid("retention_days is a whole number of days, or null".into()))?,
        ),
    };
    Ok(Json(st.accounts.set_retention(&p, days, &client).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EraseOrganisation {
    /// The organisation's name, repeated.
    confirm: String,
}

#[utoipa::path(delete, path = "/api/v1/organisation", tag = "accounts", security(("api_key" = []), ("session" = [])), request_body = EraseOrganisation,
    responses((status = 204, description = "erased by crypto-shredding: its key is destroyed, its documents unreadable everywhere (backups included), its members, keys and envelopes deleted"),
        (status = 400, description = "`confirm` does not repeat the organisation's name", body = crate::openapi::ErrorBody), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "not the owner, or missing CSRF token", body = crate::openapi::ErrorBody)))]
async fn erase_organisation(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    ApiJson(b): ApiJson<EraseOrganisation>,
) -> Result<StatusCode, ApiError> {
    st.accounts.erase_organisation(&p, &b.confirm, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/members", tag = "accounts", security(("api_key" = []), ("session" = [])),
    responses((status = 200, description = "`{members: [...]}`", body = Object), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "not the owner, or missing CSRF token", body = crate::openapi::ErrorBody)))]
async fn members(
    State(st): State<Arc<AppState>>,
    Authenticated(p): Authenticated,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "members": st.accounts.members(&p).await? })))
}

#[utoipa::path(delete, path = "/api/v1/members/{id}", tag = "accounts", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "user id")),
    responses((status = 204, description = "removed, with their sessions and API keys"),
        (status = 404, description = "no such member", body = crate::openapi::ErrorBody), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "not the owner, or missing CSRF token", body = crate::openapi::ErrorBody)))]
async fn remove_member(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = sigillum_core::UserId::parse(&id).ok_or(AccountError::NotFound)?;
    st.accounts.remove_member(&p, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
