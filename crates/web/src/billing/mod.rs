//! Billing routes (plans, the organisation's standing, checkout, portal, cancel) and the two
//! provider webhooks, plus the HTTP clients of Stripe and PayPal. Webhooks take the raw body:
//! Stripe's signature covers its exact bytes.

pub mod http;
pub mod paypal;
pub mod stripe;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sigillum_core::billing::{BillingError, PayPalTransmission, Provider, ProviderError};

use crate::auth::Authenticated;
use crate::client::Client;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::AppState;

/// Largest provider event accepted: Stripe's invoice events with many lines outgrow the 64 KiB
/// of ordinary JSON bodies.
pub(crate) const MAX_WEBHOOK_BODY: usize = 256 * 1024;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/billing", get(status))
        .route("/api/v1/billing/plans", get(plans))
        .route("/api/v1/billing/checkout", post(checkout))
        .route("/api/v1/billing/portal", post(portal))
        .route("/api/v1/billing/cancel", post(cancel))
        .route("/webhooks/stripe", post(stripe_webhook).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY)))
        .route("/webhooks/paypal", post(paypal_webhook).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY)))
}

impl From<BillingError> for ApiError {
    fn from(e: BillingError) -> Self {
        let status = |s, code, m: String| ApiError::new(s, code, m);
        match e {
            BillingError::Disabled => {
                status(StatusCode::CONFLICT, "billing_disabled", "billing is not enabled on this server".into())
            }
            BillingError::ProviderOff(name) => status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "provider_not_configured",
                format!("{name} is not configured on this server"),
            ),
            BillingError::OwnerOnly => {
                status(StatusCode::FORBIDDEN, "owner_only", "only the organisation's owner may manage billing".into())
            }
            BillingError::Invalid(m) => status(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", m),
            BillingError::UnknownPlan => {
                status(StatusCode::UNPROCESSABLE_ENTITY, "unknown_plan", "no such plan".into())
            }
            BillingError::NoSubscription => status(
                StatusCode::CONFLICT,
                "no_subscription",
                "the organisation has no subscription at this provider".into(),
            ),
            BillingError::SeatsExceeded(n) => status(
                StatusCode::PAYMENT_REQUIRED,
                "seats_exceeded",
                format!("the plan allows {n} accounts; upgrade for more"),
            ),
            BillingError::Signature(m) => {
                tracing::warn!(reason = %m, "payment webhook refused");
                status(StatusCode::BAD_REQUEST, "invalid_signature", "the delivery's signature does not verify".into())
            }
            BillingError::Provider(p) => {
                tracing::warn!(error = %p, "payment provider call failed");
                let (code, m) = match p {
                    ProviderError::Refused(_) | ProviderError::NotFound => {
                        ("provider_refused", "the payment provider refused the request")
                    }
                    ProviderError::Unavailable(_) => {
                        ("provider_unavailable", "the payment provider cannot be reached; try again")
                    }
                };
                status(StatusCode::BAD_GATEWAY, code, m.into())
            }
            BillingError::Repo(r) => ApiError::from(sigillum_core::EnvelopeError::from(r)),
            BillingError::Internal(m) => {
                tracing::error!(error = %m, "billing failed");
                ApiError::internal()
            }
        }
    }
}

/// Adds the upgrade link to 402 answers.
pub(crate) fn billing_error(st: &AppState, e: BillingError) -> ApiError {
    let seats = matches!(e, BillingError::SeatsExceeded(_));
    let err = ApiError::from(e);
    if seats {
        err.link("upgrade_url", st.billing.upgrade_url())
    } else {
        err
    }
}

/// A webhook endpoint of a provider this server does not use does not exist.
fn webhook_error(e: BillingError) -> ApiError {
    match e {
        BillingError::ProviderOff(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource"),
        e => e.into(),
    }
}

#[utoipa::path(get, path = "/api/v1/billing/plans", tag = "billing",
    responses((status = 200, description = "whether billing is on, the configured providers and plans", body = sigillum_core::billing::PlansView)))]
async fn plans(State(st): State<Arc<AppState>>) -> Json<sigillum_core::billing::PlansView> {
    Json(st.billing.plans())
}

#[utoipa::path(get, path = "/api/v1/billing", tag = "billing", security(("api_key" = []), ("session" = [])),
    responses((status = 200, description = "the organisation's plan, subscription status, period and usage", body = sigillum_core::billing::BillingStatus),
        (status = 401, description = "not signed in", body = crate::openapi::ErrorBody)))]
async fn status(
    State(st): State<Arc<AppState>>,
    Authenticated(p): Authenticated,
) -> Result<Json<sigillum_core::billing::BillingStatus>, ApiError> {
    Ok(Json(st.billing.status(&p).await.map_err(|e| billing_error(&st, e))?))
}

/// `POST /api/v1/billing/checkout`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub plan: String,
    /// `stripe` or `paypal`.
    pub provider: String,
}

#[utoipa::path(post, path = "/api/v1/billing/checkout", tag = "billing", security(("api_key" = []), ("session" = [])), request_body = CheckoutRequest,
    responses((status = 201, description = "`{id, url}`: redirect the owner to the provider's hosted page", body = sigillum_core::billing::HostedPage),
        (status = 401, description = "not signed in", body = crate::openapi::ErrorBody),
        (status = 403, description = "not the owner, or missing CSRF token", body = crate::openapi::ErrorBody),
        (status = 409, description = "billing is off", body = crate::openapi::ErrorBody),
        (status = 422, description = "unknown plan or provider", body = crate::openapi::ErrorBody),
        (status = 502, description = "the provider failed", body = crate::openapi::ErrorBody)))]
async fn checkout(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    ApiJson(b): ApiJson<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let provider = Provider::parse(&b.provider).ok_or_else(|| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", "provider must be stripe or paypal")
    })?;
    let page = st.billing.checkout(&p, &b.plan, provider, &client).await.map_err(|e| billing_error(&st, e))?;
    Ok((StatusCode::CREATED, Json(page)).into_response())
}

#[utoipa::path(post, path = "/api/v1/billing/portal", tag = "billing", security(("api_key" = []), ("session" = [])),
    responses((status = 201, description = "`{id, url}` of Stripe's billing portal", body = sigillum_core::billing::HostedPage),
        (status = 401, description = "not signed in", body = crate::openapi::ErrorBody),
        (status = 403, description = "not the owner, or missing CSRF token", body = crate::openapi::ErrorBody),
        (status = 409, description = "no Stripe subscription", body = crate::openapi::ErrorBody),
        (status = 502, description = "the provider failed", body = crate::openapi::ErrorBody)))]
async fn portal(State(st): State<Arc<AppState>>, Authenticated(p): Authenticated) -> Result<Response, ApiError> {
    let page = st.billing.portal(&p).await.map_err(|e| billing_error(&st, e))?;
    Ok((StatusCode::CREATED, Json(page)).into_response())
}

#[utoipa::path(post, path = "/api/v1/billing/cancel", tag = "billing", security(("api_key" = []), ("session" = [])),
    responses((status = 202, description = "PayPal asked to cancel; the plan changes when its webhook confirms"),
        (status = 401, description = "not signed in", body = crate::openapi::ErrorBody),
        (status = 403, description = "not the owner, or missing CSRF token", body = crate::openapi::ErrorBody),
        (status = 409, description = "no PayPal subscription", body = crate::openapi::ErrorBody),
        (status = 502, description = "the provider failed", body = crate::openapi::ErrorBody)))]
async fn cancel(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
) -> Result<StatusCode, ApiError> {
    st.billing.cancel(&p, &client).await.map_err(|e| billing_error(&st, e))?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/webhooks/stripe", tag = "billing", request_body(content = Object, description = "a Stripe event, signed in `Stripe-Signature`"),
    responses((status = 200, description = "verified and processed (or already processed)", body = Object),
        (status = 400, description = "signature missing, wrong or expired", body = crate::openapi::ErrorBody),
        (status = 404, description = "Stripe is not configured on this server", body = crate::openapi::ErrorBody),
        (status = 502, description = "the provider could not be asked for the subscription; Stripe retries", body = crate::openapi::ErrorBody)))]
async fn stripe_webhook(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    let outcome = st.billing.stripe_webhook(signature, &body).await.map_err(webhook_error)?;
    Ok(Json(json!({ "received": true, "outcome": outcome })))
}

#[utoipa::path(post, path = "/webhooks/paypal", tag = "billing", request_body(content = Object, description = "a PayPal event with its `PAYPAL-TRANSMISSION-*` headers"),
    responses((status = 200, description = "verified and processed (or already processed)", body = Object),
        (status = 400, description = "PayPal did not verify the delivery", body = crate::openapi::ErrorBody),
        (status = 404, description = "PayPal is not configured on this server", body = crate::openapi::ErrorBody),
        (status = 502, description = "PayPal could not be reached; PayPal retries", body = crate::openapi::ErrorBody)))]
async fn paypal_webhook(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let t = PayPalTransmission {
        id: h("paypal-transmission-id"),
        time: h("paypal-transmission-time"),
        cert_url: h("paypal-cert-url"),
        auth_algo: h("paypal-auth-algo"),
        sig: h("paypal-transmission-sig"),
    };
    let outcome = st.billing.paypal_webhook(&t, &body).await.map_err(webhook_error)?;
    Ok(Json(json!({ "received": true, "outcome": outcome })))
}
