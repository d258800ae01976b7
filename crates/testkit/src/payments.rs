//! Stripe and PayPal on loopback, for the billing tests: the exact endpoints Sigillum calls, with
//! their request validation (credentials, idempotency keys, required parameters, known prices)
//! and response bodies shaped as the providers document them. It plays the customer too: a test
//! completes a checkout or approves a subscription, and the provider then delivers its webhooks
//! to the Sigillum server, signed the provider's way (Stripe: `Stripe-Signature` HMAC-SHA256,
//! computed here with RustCrypto's `hmac`, independently of Sigillum's aws-lc code; PayPal:
//! `PAYPAL-TRANSMISSION-*` headers that only this server's verify-webhook-signature API accepts).
//!
//! Every request is recorded, so tests can check what Sigillum sent (and that no card data ever
//! appears in it).

// The handlers' helpers fail with the provider's error response itself (test code, no hot path).
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const STRIPE_KEY: &str = "sk_test_sigillum_fake_51Nx";
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_sigillum_fake_endpoint";
pub const PAYPAL_CLIENT_ID: &str = "AbPayPalFakeClientId";
pub const PAYPAL_SECRET: &str = "EFpaypalFakeSecret";
pub const PAYPAL_WEBHOOK_ID: &str = "WH-8AB12345CD678901E";
/// Prices and plans the fake providers know (a test's `SIGILLUM_BILLING_PLANS` uses these).
pub const STRIPE_PRICE: &str = "price_1TeamMonthly";
pub const PAYPAL_PLAN: &str = "P-5ML4271244454362WXNWU5NQ";

/// A request Sigillum made.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// A webhook as delivered: body, headers and Sigillum's answer.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub status: u16,
    pub answer: Value,
}

#[derive(Default)]
struct StateInner {
    requests: Vec<Recorded>,
    customers: HashMap<String, Value>,
    sessions: HashMap<String, Value>,
    stripe_subs: HashMap<String, Value>,
    paypal_subs: HashMap<String, Value>,
    paypal_tokens: Vec<String>,
    /// transmission id → signature the verification API accepts.
    transmissions: HashMap<String, String>,
    /// Idempotency key → the answer given first (a retried POST gets the same object).
    idempotent: HashMap<String, Value>,
    counter: u64,
}

#[derive(Clone)]
pub struct FakeProviders {
    pub base: String,
    state: Arc<Mutex<StateInner>>,
    /// Where webhooks go (the Sigillum server's base URL); set by the test once it runs.
    pub target: Arc<Mutex<String>>,
    client: reqwest::Client,
}

fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn rfc3339(unix_s: i64) -> String {
    let (y, m, d) = crate::civil_date(unix_s);
    let secs = unix_s.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The Stripe-Signature header for `body` at `t`, computed the way Stripe documents it.
pub fn stripe_signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex_encode(&mac.finalize().into_bytes()))
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn stripe_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"type": "invalid_request_error", "message": message}}))).into_response()
}

fn paypal_error(status: StatusCode, name: &str, message: &str) -> Response {
    (status, Json(json!({"name": name, "message": message, "debug_id": "f1a2b3c4d5"}))).into_response()
}

fn form(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

impl FakeProviders {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let fake = Self {
            base,
            state: Arc::new(Mutex::new(StateInner::default())),
            target: Arc::new(Mutex::new(String::new())),
            client: reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap(),
        };
        let app = Router::new()
            .route("/v1/customers", post(stripe_customer))
            .route("/v1/checkout/sessions", post(stripe_checkout))
            .route("/v1/billing_portal/sessions", post(stripe_portal))
            .route("/v1/subscriptions/{id}", get(stripe_subscription))
            .route("/v1/oauth2/token", post(paypal_token))
            .route("/v1/billing/subscriptions", post(paypal_create))
            .route("/v1/billing/subscriptions/{id}", get(paypal_get))
            .route("/v1/billing/subscriptions/{id}/cancel", post(paypal_cancel))
            .route("/v1/notifications/verify-webhook-signature", post(paypal_verify))
            .fallback(|| async { stripe_error(StatusCode::NOT_FOUND, "Unrecognized request URL") })
            .layer(axum::middleware::from_fn_with_state(fake.clone(), record))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// Every request Sigillum made so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    fn next_id(&self, prefix: &str) -> String {
        let mut s = self.state.lock().unwrap();
        s.counter += 1;
        format!("{prefix}{:014}{}", s.counter, &uuid::Uuid::new_v4().simple().to_string()[..10])
    }

    pub fn set_target(&self, sigillum_base: &str) {
        *self.target.lock().unwrap() = sigillum_base.trim_end_matches('/').to_owned();
    }

    /// Posts `body` with `headers` to Sigillum's webhook `path`.
    pub async fn deliver(&self, path: &str, body: Vec<u8>, headers: Vec<(String, String)>) -> Delivery {
        let url = format!("{}{path}", self.target.lock().unwrap());
        let mut req = self.client.post(url).header("content-type", "application/json").body(body.clone());
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let r = req.send().await.expect("webhook delivery");
        let status = r.status().as_u16();
        let answer = r.json().await.unwrap_or(Value::Null);
        Delivery { body, headers, status, answer }
    }

    // ----- Stripe, as the customer and as the sender of events -----

    /// A Stripe event of `kind` about `object`, created at `created`.
    pub fn stripe_event(&self, kind: &str, object: Value, created: i64) -> Vec<u8> {
        json!({"id": self.next_id("evt_"), "object": "event", "api_version": "2024-06-20", "created": created,
            "livemode": false, "pending_webhooks": 1, "type": kind, "data": {"object": object}})
        .to_string()
        .into_bytes()
    }

    /// Delivers a Stripe event signed now with the endpoint secret.
    pub async fn send_stripe(&self, body: Vec<u8>) -> Delivery {
        let sig = stripe_signature(STRIPE_WEBHOOK_SECRET, now_s(), &body);
        self.deliver("/webhooks/stripe", body, vec![("Stripe-Signature".into(), sig)]).await
    }

    /// The customer pays on the hosted checkout page: the subscription starts and Stripe sends
    /// `checkout.session.completed` then `customer.subscription.created`.
    pub async fn stripe_complete_checkout(&self, session_id: &str) -> (String, Vec<Delivery>) {
        let now = now_s();
        let (session, sub) = {
            let mut s = self.state.lock().unwrap();
            s.counter += 1;
            let sub_id = format!("sub_{:014}", s.counter);
            let session = s.sessions.get_mut(session_id).expect("known checkout session");
            session["status"] = json!("complete");
            session["payment_status"] = json!("paid");
            session["subscription"] = json!(sub_id);
            let session = session.clone();
            let sub = json!({"id": sub_id, "object": "subscription", "status": "active",
                "customer": session["customer"], "metadata": {"org_id": session["metadata"]["org_id"]},
                "current_period_start": now, "current_period_end": now + 30 * 86_400, "cancel_at_period_end": false,
                "items": {"object": "list", "data": [{"id": "si_1", "object": "subscription_item",
                    "price": {"id": session["price"], "object": "price", "recurring": {"interval": "month"}}, "quantity": 1}]}});
            s.stripe_subs.insert(sub_id.clone(), sub.clone());
            (session, sub)
        };
        let sub_id = sub["id"].as_str().unwrap().to_owned();
        let a = self.send_stripe(self.stripe_event("checkout.session.completed", session, now)).await;
        let b = self.send_stripe(self.stripe_event("customer.subscription.created", sub, now)).await;
        (sub_id, vec![a, b])
    }

    /// Sets a subscription's status at Stripe (no event sent); returns the object.
    pub fn stripe_set_status(&self, sub_id: &str, status: &str) -> Value {
        let mut s = self.state.lock().unwrap();
        let sub = s.stripe_subs.get_mut(sub_id).expect("known subscription");
        sub["status"] = json!(status);
        sub.clone()
    }

    // ----- PayPal, as the buyer and as the sender of events -----

    /// A PayPal event of `kind` about `resource`.
    pub fn paypal_event(&self, kind: &str, resource: Value) -> Vec<u8> {
        json!({"id": self.next_id("WH-"), "event_version": "1.0", "create_time": rfc3339(now_s()),
            "resource_type": if kind.starts_with("PAYMENT.") { "sale" } else { "subscription" },
            "resource_version": "2.0", "event_type": kind, "summary": kind, "resource": resource})
        .to_string()
        .into_bytes()
    }

    /// Delivers a PayPal event with transmission headers the verification API accepts.
    pub async fn send_paypal(&self, body: Vec<u8>) -> Delivery {
        let id = uuid::Uuid::new_v4().to_string();
        let time = rfc3339(now_s());
        let sig = paypal_transmission_sig(&id, &time, &body);
        self.state.lock().unwrap().transmissions.insert(id.clone(), sig.clone());
        let headers = vec![
            ("PAYPAL-TRANSMISSION-ID".into(), id),
            ("PAYPAL-TRANSMISSION-TIME".into(), time),
            ("PAYPAL-CERT-URL".into(), "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594".into()),
            ("PAYPAL-AUTH-ALGO".into(), "SHA256withRSA".into()),
            ("PAYPAL-TRANSMISSION-SIG".into(), sig),
        ];
        self.deliver("/webhooks/paypal", body, headers).await
    }

    /// The buyer approves on PayPal's page: the subscription becomes ACTIVE, the first payment
    /// is taken, and PayPal sends `BILLING.SUBSCRIPTION.ACTIVATED` and `PAYMENT.SALE.COMPLETED`.
    pub async fn paypal_approve(&self, sub_id: &str) -> Vec<Delivery> {
        let now = now_s();
        let sub = {
            let mut s = self.state.lock().unwrap();
            let sub = s.paypal_subs.get_mut(sub_id).expect("known subscription");
            sub["status"] = json!("ACTIVE");
            sub["status_update_time"] = json!(rfc3339(now));
            sub["billing_info"] = json!({"outstanding_balance": {"currency_code": "CHF", "value": "0.0"},
                "last_payment": {"amount": {"currency_code": "CHF", "value": "29.00"}, "time": rfc3339(now)},
                "next_billing_time": rfc3339(now + 30 * 86_400), "failed_payments_count": 0});
            sub.clone()
        };
        let sale = json!({"id": "8PR77287DF219271J", "state": "completed", "billing_agreement_id": sub_id,
            "amount": {"total": "29.00", "currency": "CHF"}, "create_time": rfc3339(now)});
        vec![
            self.send_paypal(self.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", sub)).await,
            self.send_paypal(self.paypal_event("PAYMENT.SALE.COMPLETED", sale)).await,
        ]
    }

    /// The subscription as PayPal holds it now.
    pub fn paypal_subscription(&self, sub_id: &str) -> Value {
        self.state.lock().unwrap().paypal_subs.get(sub_id).cloned().expect("known subscription")
    }

    /// Sets a PayPal subscription's status (no event sent); returns the resource.
    pub fn paypal_set_status(&self, sub_id: &str, status: &str) -> Value {
        let mut s = self.state.lock().unwrap();
        let sub = s.paypal_subs.get_mut(sub_id).expect("known subscription");
        sub["status"] = json!(status);
        sub.clone()
    }
}

/// What this fake's verification API accepts for a transmission (PayPal signs
/// `id|time|webhook id|CRC32(body)` with its certificate's key; a keyed digest stands in).
fn paypal_transmission_sig(id: &str, time: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(format!("fake-paypal-key|{id}|{time}|{PAYPAL_WEBHOOK_ID}|").as_bytes());
    h.update(body);
    hex_encode(&h.finalize())
}

async fn record(
    State(fake): State<FakeProviders>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    fake.state.lock().unwrap().requests.push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// Stripe's checks common to every call: the secret key; POSTs also need an idempotency key,
/// and a repeated key gets the first answer.
fn stripe_auth(h: &HeaderMap) -> Result<(), Response> {
    match h.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(v) if v == format!("Bearer {STRIPE_KEY}") => Ok(()),
        _ => Err(stripe_error(StatusCode::UNAUTHORIZED, "Invalid API Key provided")),
    }
}

fn idempotency(fake: &FakeProviders, h: &HeaderMap, header: &str) -> Result<(String, Option<Value>), Response> {
    let key =
        h.get(header).and_then(|v| v.to_str().ok()).filter(|k| !k.is_empty() && k.len() <= 255).ok_or_else(|| {
            stripe_error(StatusCode::BAD_REQUEST, &format!("the fake requires {header} on every POST"))
        })?;
    let key = format!("{header}:{key}");
    let earlier = fake.state.lock().unwrap().idempotent.get(&key).cloned();
    Ok((key, earlier))
}

/// Stripe's checks before a POST: the secret key and an idempotency key. `Err` is the answer to
/// give at once: an error, or the first answer to a repeated key.
fn stripe_post(fake: &FakeProviders, h: &HeaderMap) -> Result<String, Response> {
    stripe_auth(h)?;
    match idempotency(fake, h, "idempotency-key")? {
        (_, Some(first)) => Err(Json(first).into_response()),
        (key, None) => Ok(key),
    }
}

fn remember(fake: &FakeProviders, key: String, v: &Value) {
    fake.state.lock().unwrap().idempotent.insert(key, v.clone());
}

async fn stripe_customer(State(fake): State<FakeProviders>, h: HeaderMap, body: Bytes) -> Response {
    let key = match stripe_post(&fake, &h) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let f = form(&body);
    let Some(email) = f.get("email").filter(|e| e.contains('@')) else {
        return stripe_error(StatusCode::BAD_REQUEST, "Invalid email address");
    };
    let id = fake.next_id("cus_");
    let v = json!({"id": id, "object": "customer", "email": email, "name": f.get("name"),
        "metadata": {"org_id": f.get("metadata[org_id]")}, "livemode": false});
    fake.state.lock().unwrap().customers.insert(id, v.clone());
    remember(&fake, key, &v);
    Json(v).into_response()
}

async fn stripe_checkout(State(fake): State<FakeProviders>, h: HeaderMap, body: Bytes) -> Response {
    let key = match stripe_post(&fake, &h) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let f = form(&body);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("mode") != "subscription" {
        return stripe_error(StatusCode::BAD_REQUEST, "mode must be subscription here");
    }
    if !fake.state.lock().unwrap().customers.contains_key(&get("customer")) {
        return stripe_error(StatusCode::BAD_REQUEST, "No such customer");
    }
    if get("line_items[0][price]") != STRIPE_PRICE || get("line_items[0][quantity]") != "1" {
        return stripe_error(StatusCode::BAD_REQUEST, "No such price");
    }
    for k in ["success_url", "cancel_url"] {
        if !get(k).starts_with("https://") {
            return stripe_error(StatusCode::BAD_REQUEST, &format!("{k} must be an https URL"));
        }
    }
    if get("subscription_data[metadata][org_id]").is_empty() || get("client_reference_id").is_empty() {
        return stripe_error(StatusCode::BAD_REQUEST, "the fake expects the organisation in the metadata");
    }
    let id = fake.next_id("cs_test_");
    let v = json!({"id": id, "object": "checkout.session", "mode": "subscription", "status": "open",
        "payment_status": "unpaid", "customer": get("customer"), "client_reference_id": get("client_reference_id"),
        "metadata": {"org_id": get("metadata[org_id]")}, "success_url": get("success_url"),
        "cancel_url": get("cancel_url"), "subscription": null, "price": get("line_items[0][price]"),
        "url": format!("https://checkout.stripe.com/c/pay/{id}")});
    fake.state.lock().unwrap().sessions.insert(id, v.clone());
    remember(&fake, key, &v);
    Json(v).into_response()
}

async fn stripe_portal(State(fake): State<FakeProviders>, h: HeaderMap, body: Bytes) -> Response {
    let key = match stripe_post(&fake, &h) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let f = form(&body);
    let customer = f.get("customer").cloned().unwrap_or_default();
    if !fake.state.lock().unwrap().customers.contains_key(&customer) {
        return stripe_error(StatusCode::BAD_REQUEST, "No such customer");
    }
    let id = fake.next_id("bps_");
    let v = json!({"id": id, "object": "billing_portal.session", "customer": customer,
        "return_url": f.get("return_url"), "url": format!("https://billing.stripe.com/p/session/{id}")});
    remember(&fake, key, &v);
    Json(v).into_response()
}

async fn stripe_subscription(State(fake): State<FakeProviders>, h: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = stripe_auth(&h) {
        return r;
    }
    match fake.state.lock().unwrap().stripe_subs.get(&id) {
        Some(v) => Json(v.clone()).into_response(),
        None => stripe_error(StatusCode::NOT_FOUND, &format!("No such subscription: '{id}'")),
    }
}

async fn paypal_token(State(fake): State<FakeProviders>, h: HeaderMap, body: Bytes) -> Response {
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{PAYPAL_CLIENT_ID}:{PAYPAL_SECRET}"))
    );
    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "Client Authentication failed"})),
        )
            .into_response();
    }
    if form(&body).get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "unsupported_grant_type"}))).into_response();
    }
    let token = format!("A21AA{}", uuid::Uuid::new_v4().simple());
    fake.state.lock().unwrap().paypal_tokens.push(token.clone());
    Json(json!({"scope": "https://uri.paypal.com/services/subscriptions", "access_token": token,
        "token_type": "Bearer", "app_id": "APP-80W284485P519543T", "expires_in": 32400, "nonce": "2026-12-04T19:00:00Z"}))
    .into_response()
}

fn paypal_auth(fake: &FakeProviders, h: &HeaderMap) -> Result<(), Response> {
    let token = h.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(t) if fake.state.lock().unwrap().paypal_tokens.iter().any(|k| k == t) => Ok(()),
        _ => Err(paypal_error(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_FAILURE",
            "Authentication failed due to invalid authentication credentials or a missing Authorization header.",
        )),
    }
}

async fn paypal_create(State(fake): State<FakeProviders>, h: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = paypal_auth(&fake, &h) {
        return r;
    }
    let (key, earlier) = match idempotency(&fake, &h, "paypal-request-id") {
        Ok(k) => k,
        Err(r) => return r,
    };
    if let Some(v) = earlier {
        return (StatusCode::CREATED, Json(v)).into_response();
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return paypal_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "Request is not well-formed");
    };
    if b["plan_id"] != PAYPAL_PLAN {
        return paypal_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "RESOURCE_NOT_FOUND",
            "The specified resource does not exist.",
        );
    }
    let ctx = &b["application_context"];
    let https = |k: &str| ctx[k].as_str().is_some_and(|u| u.starts_with("https://"));
    if !https("return_url") || !https("cancel_url") || b["custom_id"].as_str().is_none_or(str::is_empty) {
        return paypal_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "return_url, cancel_url and custom_id are required",
        );
    }
    let id = fake.next_id("I-").to_uppercase();
    let sub = json!({"id": id, "plan_id": b["plan_id"], "status": "APPROVAL_PENDING", "custom_id": b["custom_id"],
        "start_time": rfc3339(now_s()), "create_time": rfc3339(now_s()), "quantity": "1",
        "links": [
            {"href": format!("https://www.paypal.com/webapps/billing/subscriptions?ba_token=BA-{}", &id[2..]), "rel": "approve", "method": "GET"},
            {"href": format!("https://api-m.paypal.com/v1/billing/subscriptions/{id}"), "rel": "self", "method": "GET"}]});
    fake.state.lock().unwrap().paypal_subs.insert(id, sub.clone());
    remember(&fake, key, &sub);
    (StatusCode::CREATED, Json(sub)).into_response()
}

async fn paypal_get(State(fake): State<FakeProviders>, h: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = paypal_auth(&fake, &h) {
        return r;
    }
    match fake.state.lock().unwrap().paypal_subs.get(&id) {
        Some(v) => Json(v.clone()).into_response(),
        None => paypal_error(StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND", "The specified resource does not exist."),
    }
}

async fn paypal_cancel(
    State(fake): State<FakeProviders>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = paypal_auth(&fake, &h) {
        return r;
    }
    if h.get("paypal-request-id").is_none() {
        return paypal_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "the fake requires PayPal-Request-Id");
    }
    let reason_ok = serde_json::from_slice::<Value>(&body)
        .ok()
        .is_some_and(|b| b["reason"].as_str().is_some_and(|r| !r.is_empty()));
    if !reason_ok {
        return paypal_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "reason is required");
    }
    let sub = {
        let mut s = fake.state.lock().unwrap();
        let Some(sub) = s.paypal_subs.get_mut(&id) else {
            return paypal_error(StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND", "The specified resource does not exist.");
        };
        if sub["status"] != "ACTIVE" && sub["status"] != "SUSPENDED" {
            return paypal_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNPROCESSABLE_ENTITY",
                "SUBSCRIPTION_STATUS_INVALID",
            );
        }
        sub["status"] = json!("CANCELLED");
        sub.clone()
    };
    // PayPal tells the merchant's webhook afterwards, as it does.
    let (f, body) = (fake.clone(), fake.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", sub));
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        f.send_paypal(body).await;
    });
    StatusCode::NO_CONTENT.into_response()
}

async fn paypal_verify(State(fake): State<FakeProviders>, h: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = paypal_auth(&fake, &h) {
        return r;
    }
    // The event must arrive as the raw JSON Sigillum received: find it in the body as sent.
    let Ok(text) = std::str::from_utf8(&body) else {
        return paypal_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "not UTF-8");
    };
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return paypal_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "Request is not well-formed");
    };
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let Some(at) = text.find("\"webhook_event\":") else {
        return paypal_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "webhook_event is required");
    };
    let raw_event = text[at + "\"webhook_event\":".len()..].trim_end().strip_suffix('}').unwrap_or_default();
    let expected = fake.state.lock().unwrap().transmissions.get(&field("transmission_id")).cloned();
    let ok = field("webhook_id") == PAYPAL_WEBHOOK_ID
        && field("auth_algo") == "SHA256withRSA"
        && expected.is_some_and(|sig| {
            sig == field("transmission_sig")
                && sig
                    == paypal_transmission_sig(
                        &field("transmission_id"),
                        &field("transmission_time"),
                        raw_event.as_bytes(),
                    )
        });
    Json(json!({"verification_status": if ok { "SUCCESS" } else { "FAILURE" }})).into_response()
}
