//! The OpenAPI 3.1 document of the HTTP API, generated at compile time by utoipa from the
//! `#[utoipa::path]` annotations on every handler, served at `GET /api/v1/openapi.json`.

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::AppState;

/// The JSON error every failure returns.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// snake_case, stable: clients branch on it.
    code: String,
    /// Human text.
    message: String,
}

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sgl_…")
                    .description(Some("An API key: `Authorization: Bearer sgl_…`"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The operator's scrape token (SIGILLUM_METRICS_TOKEN)"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Host-sigillum_session",
                "Browser session from login; unsafe methods also need the `X-CSRF-Token` header",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sigillum API",
        description = "Self-hostable electronic signatures: envelopes, signer ceremony, verifiable audit log.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::health::healthz,
        crate::health::readyz,
        crate::metrics::scrape,
        crate::disclosure::security_txt,
        crate::disclosure::policy,
        crate::log::checkpoint,
        crate::log::key,
        crate::log::inclusion,
        crate::log::consistency,
        crate::pki::ca,
        crate::pki::crl,
        crate::pki::tsa,
        crate::previews::envelope_page,
        crate::previews::signer_page,
        crate::auth::signup,
        crate::auth::login,
        crate::auth::logout,
        crate::auth::me,
        crate::auth::totp_setup,
        crate::auth::totp_enable,
        crate::auth::add_member,
        crate::auth::members,
        crate::auth::remove_member,
        crate::auth::organisation,
        crate::auth::set_retention,
        crate::auth::erase_organisation,
        crate::export::export,
        crate::auth::create_key,
        crate::auth::list_keys,
        crate::auth::revoke_key,
        crate::envelopes::create,
        crate::envelopes::list,
        crate::envelopes::detail,
        crate::envelopes::remove,
        crate::envelopes::add_recipient,
        crate::envelopes::add_field,
        crate::envelopes::send,
        crate::envelopes::void,
        crate::envelopes::signing_link,
        crate::envelopes::document,
        crate::envelopes::events,
        crate::envelopes::stream,
        crate::signing::view,
        crate::signing::document,
        crate::signing::consent,
        crate::signing::complete,
        crate::signing::decline,
        crate::webhooks::create,
        crate::webhooks::list,
        crate::webhooks::disable,
        crate::webhooks::deliveries,
        crate::billing::plans,
        crate::billing::status,
        crate::billing::checkout,
        crate::billing::portal,
        crate::billing::cancel,
        crate::billing::stripe_webhook,
        crate::billing::paypal_webhook,
        openapi_json,
    ),
    components(schemas(ErrorBody, ErrorDetail, sigillum_core::accounts::ApiKeyView, sigillum_core::ports::DeliveryRecord,
        sigillum_core::workflow::WebhookView, sigillum_core::workflow::SignatureInput)),
    modifiers(&Security),
)]
pub struct ApiDoc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/openapi.json", get(openapi_json))
}

/// The document as JSON.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "this document (OpenAPI 3.1)", body = Object)))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    Json(doc)
}
