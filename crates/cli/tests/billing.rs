//! Billing end to end (issue 8): the real server against a loopback Stripe and PayPal
//! (`sigillum_testkit::payments`) that validate every request and sign their webhooks the
//! providers' way.
//!
//! A free organisation uses up its quota (402 with the upgrade link), goes through the hosted
//! checkout, the signed webhook turns its plan on, sending works again, the subscription is
//! cancelled by webhook and the organisation is back on the free plan — through Stripe and
//! through PayPal. Around that: every webhook signature case, replays, out-of-order delivery,
//! and a scan proving no Sigillum page could take card data or loads a third-party script.

use reqwest::Method;
use serde_json::{json, Value};
use sigillum_testkit::api::{Api, Auth};
use sigillum_testkit::payments::{self, FakeProviders};
use sigillum_testkit::pdf::pdf;
use sigillum_testkit::server::{embedded_env, Server};

const PW: &str = "correct horse battery staple";

fn plans() -> String {
    json!([
        {"id": "free", "name": "Free", "envelopes_per_month": 1, "seats": 1},
        {"id": "team", "name": "Team", "envelopes_per_month": 50, "seats": 5, "price_label": "CHF 29 / month",
         "stripe_price": payments::STRIPE_PRICE, "paypal_plan": payments::PAYPAL_PLAN}
    ])
    .to_string()
}

async fn start(fake: &FakeProviders, dir: &std::path::Path) -> Server {
    let mut env = embedded_env(&dir.join("data"));
    for (k, v) in [
        ("SIGILLUM_STRIPE_SECRET_KEY", payments::STRIPE_KEY),
        ("SIGILLUM_STRIPE_WEBHOOK_SECRET", payments::STRIPE_WEBHOOK_SECRET),
        ("SIGILLUM_STRIPE_API_BASE", fake.base.as_str()),
        ("SIGILLUM_PAYPAL_CLIENT_ID", payments::PAYPAL_CLIENT_ID),
        ("SIGILLUM_PAYPAL_CLIENT_SECRET", payments::PAYPAL_SECRET),
        ("SIGILLUM_PAYPAL_WEBHOOK_ID", payments::PAYPAL_WEBHOOK_ID),
        ("SIGILLUM_PAYPAL_API_BASE", fake.base.as_str()),
    ] {
        env.push((k.into(), v.into()));
    }
    env.push(("SIGILLUM_BILLING_PLANS".into(), plans()));
    let server = Server::start(&env, &[]);
    fake.set_target(&server.url(""));
    server
}

/// A draft with one signer and a signature field, ready to send.
async fn draft(api: &Api, auth: &Auth) -> String {
    let id = api.upload(auth, "Order form", pdf(1)).await.body["id"].as_str().unwrap().to_owned();
    let r = api
        .call(
            Method::POST,
            &format!("/api/v1/envelopes/{id}/recipients"),
            auth,
            Some(json!({"name": "Sam Signer", "email": "sam@example.net", "role": "signer", "routing_order": 1})),
        )
        .await;
    let rid = r.body["id"].as_str().unwrap().to_owned();
    let f = json!({"recipient_id": rid, "kind": "signature", "page": 1, "x": 72, "y": 600, "width": 180, "height": 40});
    assert_eq!(api.call(Method::POST, &format!("/api/v1/envelopes/{id}/fields"), auth, Some(f)).await.status, 201);
    id
}

async fn send(api: &Api, auth: &Auth) -> sigillum_testkit::api::Response {
    let id = draft(api, auth).await;
    api.call(Method::POST, &format!("/api/v1/envelopes/{id}/send"), auth, Some(json!({}))).await
}

/// 402 with the billing page under the public URL (the embedded default here).
fn assert_quota_exceeded(r: &sigillum_testkit::api::Response) {
    assert_eq!(r.status, 402, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "quota_exceeded");
    assert_eq!(r.body["error"]["upgrade_url"], "https://localhost:8443/app/billing");
}

async fn billing(api: &Api, auth: &Auth) -> Value {
    let r = api.call(Method::GET, "/api/v1/billing", auth, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_to_paid_and_back_through_stripe() {
    let fake = FakeProviders::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path()).await;
    let api = Api::new(&server);

    let plans = api.call(Method::GET, "/api/v1/billing/plans", &Auth::None, None).await;
    assert_eq!(
        (plans.body["enabled"].as_bool(), plans.body["providers"].clone()),
        (Some(true), json!(["stripe", "paypal"]))
    );
    api.signup("owner@shop.example", PW, "Olga Owner").await;
    let owner = api.login("owner@shop.example", PW).await;

    // Free: one envelope a month, the second is refused with the way to upgrade.
    assert_eq!(send(&api, &owner).await.status, 200);
    let refused = send(&api, &owner).await;
    assert_quota_exceeded(&refused);
    let b = billing(&api, &owner).await;
    assert_eq!(
        (b["plan"]["id"].as_str(), b["envelopes_used"].as_u64(), b["envelopes_limit"].as_u64()),
        (Some("free"), Some(1), Some(1))
    );

    // Checkout on Stripe's hosted page.
    let bad = api
        .call(Method::POST, "/api/v1/billing/checkout", &owner, Some(json!({"plan": "gold", "provider": "stripe"})))
        .await;
    assert_eq!((bad.status, bad.body["error"]["code"].as_str()), (422, Some("unknown_plan")));
    let co = api
        .call(Method::POST, "/api/v1/billing/checkout", &owner, Some(json!({"plan": "team", "provider": "stripe"})))
        .await;
    assert_eq!(co.status, 201, "{}", co.text);
    let url = co.body["url"].as_str().unwrap();
    assert!(url.starts_with("https://checkout.stripe.com/c/pay/cs_test_"), "{url}");
    let session = co.body["id"].as_str().unwrap().to_owned();
    // What Sigillum asked Stripe: a customer and a subscription checkout, each with an
    // idempotency key; nothing resembling card data.
    let asked = fake.requests();
    let posts: Vec<_> = asked.iter().filter(|r| r.method == "POST" && r.path.starts_with("/v1/")).collect();
    assert_eq!(posts.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/v1/customers", "/v1/checkout/sessions"]);
    assert!(posts.iter().all(|r| r.headers.get("idempotency-key").is_some_and(|k| k.len() >= 16)));
    assert!(posts[1].body.contains("mode=subscription") && posts[1].body.contains(payments::STRIPE_PRICE));

    // The customer pays; Stripe's signed webhooks turn the plan on.
    let (sub, deliveries) = fake.stripe_complete_checkout(&session).await;
    for d in &deliveries {
        assert_eq!(d.status, 200, "{:?}", d.answer);
    }
    assert_eq!(deliveries[0].answer["outcome"], "applied");
    let b = billing(&api, &owner).await;
    assert_eq!(
        (b["plan"]["id"].as_str(), b["status"].as_str(), b["provider"].as_str()),
        (Some("team"), Some("active"), Some("stripe"))
    );
    assert_eq!(b["subscription_id"].as_str(), Some(sub.as_str()));
    assert_eq!(send(&api, &owner).await.status, 200, "sending works again");

    // Replays and forgeries: the exact same delivery again changes nothing; a wrong secret,
    // an old timestamp, a tampered body or no header at all is refused.
    let first = &deliveries[0];
    let again = fake.deliver("/webhooks/stripe", first.body.clone(), first.headers.clone()).await;
    assert_eq!((again.status, again.answer["outcome"].as_str()), (200, Some("duplicate")));
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let body = fake.stripe_event("customer.subscription.deleted", json!({"id": sub, "object": "subscription"}), t);
    let cases = [
        ("wrong secret", body.clone(), Some(payments::stripe_signature("whsec_other", t, &body))),
        ("expired", body.clone(), Some(payments::stripe_signature(payments::STRIPE_WEBHOOK_SECRET, t - 301, &body))),
        (
            "tampered",
            [&body[..], b" "].concat(),
            Some(payments::stripe_signature(payments::STRIPE_WEBHOOK_SECRET, t, &body)),
        ),
        ("missing", body.clone(), None),
    ];
    for (name, body, sig) in cases {
        let headers = sig.map(|s| vec![("Stripe-Signature".to_owned(), s)]).unwrap_or_default();
        let d = fake.deliver("/webhooks/stripe", body, headers).await;
        assert_eq!(d.status, 400, "{name}: {:?}", d.answer);
        assert_eq!(d.answer["error"]["code"], "invalid_signature", "{name}");
    }
    // Several v1 signatures (Stripe rolling the secret): one matching is enough.
    let good = payments::stripe_signature(payments::STRIPE_WEBHOOK_SECRET, t, &body);
    let rolled =
        format!("{},v1={}", payments::stripe_signature("whsec_old", t, &body), good.split("v1=").nth(1).unwrap());
    fake.stripe_set_status(&sub, "active");
    let d = fake.deliver("/webhooks/stripe", body, vec![("Stripe-Signature".into(), rolled)]).await;
    assert_eq!(d.status, 200, "{:?}", d.answer);
    assert_eq!(billing(&api, &owner).await["plan"]["id"], "team", "a deleted event for a still-active subscription");

    // Events up to 256 KiB are taken (invoices with many lines); larger ones are refused unread.
    let big =
        fake.stripe_event("customer.updated", json!({"id": "cus_big", "description": "line item ".repeat(10_000)}), t);
    assert!(big.len() > 90_000);
    let d = fake.send_stripe(big).await;
    assert_eq!((d.status, d.answer["outcome"].as_str()), (200, Some("ignored")), "{:?}", d.answer);
    let huge = fake.stripe_event("customer.updated", json!({"id": "cus_big", "description": "x".repeat(300_000)}), t);
    assert_eq!(fake.send_stripe(huge).await.status, 413);

    // The billing portal for managing the subscription.
    let portal = api.call(Method::POST, "/api/v1/billing/portal", &owner, None).await;
    assert_eq!(portal.status, 201, "{}", portal.text);
    assert!(portal.body["url"].as_str().unwrap().starts_with("https://billing.stripe.com/p/session/"));

    // Cancelled at Stripe; the deleted event arrives, then an older `updated` one late. The
    // organisation ends where Stripe is: cancelled, back on the free plan.
    let cancelled = fake.stripe_set_status(&sub, "canceled");
    let mut stale = cancelled.clone();
    stale["status"] = json!("active");
    let deleted = fake.stripe_event("customer.subscription.deleted", cancelled, t);
    let late = fake.stripe_event("customer.subscription.updated", stale, t - 60);
    assert_eq!(fake.send_stripe(deleted).await.status, 200);
    assert_eq!(fake.send_stripe(late).await.status, 200);
    let b = billing(&api, &owner).await;
    assert_eq!((b["plan"]["id"].as_str(), b["status"].as_str()), (Some("free"), Some("canceled")));
    assert_quota_exceeded(&send(&api, &owner).await);

    // Members manage nothing; the owner's plan decides the seats.
    let m = api
        .call(
            Method::POST,
            "/api/v1/members",
            &owner,
            Some(json!({"email": "m@shop.example", "name": "M", "password": PW})),
        )
        .await;
    assert_eq!((m.status, m.body["error"]["code"].as_str()), (402, Some("seats_exceeded")), "{}", m.text);

    let stderr = server.stderr();
    for secret in [payments::STRIPE_KEY, payments::STRIPE_WEBHOOK_SECRET, payments::PAYPAL_SECRET] {
        assert!(!stderr.contains(secret), "a provider secret reached the log");
    }
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_to_paid_and_back_through_paypal() {
    let fake = FakeProviders::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path()).await;
    let api = Api::new(&server);
    api.signup("owner@cafe.example", PW, "Paula Owner").await;
    let owner = api.login("owner@cafe.example", PW).await;
    let key = Auth::Bearer(api.api_key(&owner, "robot").await);

    assert_eq!(send(&api, &key).await.status, 200);
    assert_quota_exceeded(&send(&api, &key).await);

    let co = api
        .call(Method::POST, "/api/v1/billing/checkout", &owner, Some(json!({"plan": "team", "provider": "paypal"})))
        .await;
    assert_eq!(co.status, 201, "{}", co.text);
    assert!(co.body["url"]
        .as_str()
        .unwrap()
        .starts_with("https://www.paypal.com/webapps/billing/subscriptions?ba_token="));
    let sub = co.body["id"].as_str().unwrap().to_owned();
    let created = fake.requests().into_iter().find(|r| r.path == "/v1/billing/subscriptions").unwrap();
    assert!(created.headers.get("paypal-request-id").is_some_and(|k| !k.is_empty()));
    assert_eq!(fake.paypal_subscription(&sub)["status"], "APPROVAL_PENDING");
    assert_eq!(billing(&api, &owner).await["plan"]["id"], "free", "nothing changes before PayPal confirms");

    // A forged delivery (headers PayPal never sent) is refused; PayPal's own are applied.
    let forged = fake.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", json!({"id": sub, "status": "ACTIVE"}));
    let headers = vec![
        ("PAYPAL-TRANSMISSION-ID".to_owned(), "forged-1".to_owned()),
        ("PAYPAL-TRANSMISSION-TIME".to_owned(), "2026-12-04T19:00:00Z".to_owned()),
        ("PAYPAL-CERT-URL".to_owned(), "https://api.paypal.com/v1/notifications/certs/CERT-x".to_owned()),
        ("PAYPAL-AUTH-ALGO".to_owned(), "SHA256withRSA".to_owned()),
        ("PAYPAL-TRANSMISSION-SIG".to_owned(), "00".repeat(32)),
    ];
    let d = fake.deliver("/webhooks/paypal", forged.clone(), headers).await;
    assert_eq!((d.status, d.answer["error"]["code"].as_str()), (400, Some("invalid_signature")));
    let d = fake.deliver("/webhooks/paypal", forged, vec![]).await;
    assert_eq!(d.status, 400, "no transmission headers");
    assert_eq!(billing(&api, &owner).await["plan"]["id"], "free");

    let deliveries = fake.paypal_approve(&sub).await;
    for d in &deliveries {
        assert_eq!(d.status, 200, "{:?}", d.answer);
    }
    let b = billing(&api, &owner).await;
    assert_eq!(
        (b["plan"]["id"].as_str(), b["status"].as_str(), b["provider"].as_str()),
        (Some("team"), Some("ACTIVE"), Some("paypal"))
    );
    assert_eq!(send(&api, &key).await.status, 200, "sending works again");
    let again = fake.deliver("/webhooks/paypal", deliveries[0].body.clone(), deliveries[0].headers.clone()).await;
    assert_eq!((again.status, again.answer["outcome"].as_str()), (200, Some("duplicate")));

    // Suspended, then reactivated, delivered in the wrong order: the state PayPal reports wins.
    let suspended = fake.paypal_set_status(&sub, "SUSPENDED");
    let reactivated = fake.paypal_set_status(&sub, "ACTIVE");
    let late = fake.paypal_event("BILLING.SUBSCRIPTION.SUSPENDED", suspended);
    let early = fake.paypal_event("BILLING.SUBSCRIPTION.UPDATED", reactivated);
    assert_eq!(fake.send_paypal(early).await.status, 200);
    assert_eq!(fake.send_paypal(late).await.status, 200);
    assert_eq!(billing(&api, &owner).await["status"], "ACTIVE");

    // Only the owner cancels; an API key of the owner may, a member may not (none here).
    let c = api.call(Method::POST, "/api/v1/billing/cancel", &owner, None).await;
    assert_eq!(c.status, 202, "{}", c.text);
    assert_eq!(fake.paypal_subscription(&sub)["status"], "CANCELLED");
    // PayPal's CANCELLED webhook follows the cancellation.
    let mut plan = Value::Null;
    for _ in 0..100 {
        plan = billing(&api, &owner).await["plan"]["id"].clone();
        if plan == "free" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(plan, "free");
    assert_quota_exceeded(&send(&api, &key).await);
    let again = api.call(Method::POST, "/api/v1/billing/cancel", &owner, None).await;
    assert_eq!(again.status, 502, "PayPal refuses to cancel twice: {}", again.text);
    server.terminate();
}

/// Without a provider configured billing is off, and nothing is limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_off_limits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&embedded_env(&dir.path().join("data")), &[]);
    let api = Api::new(&server);
    let key = Auth::Bearer(api.account_with_key("solo@example.org", PW, "Solo").await);
    for _ in 0..7 {
        assert_eq!(send(&api, &key).await.status, 200);
    }
    let b = billing(&api, &key).await;
    assert_eq!((b["enabled"].as_bool(), b["envelopes_limit"].clone()), (Some(false), Value::Null));
    let co = api
        .call(Method::POST, "/api/v1/billing/checkout", &key, Some(json!({"plan": "free", "provider": "stripe"})))
        .await;
    assert_eq!((co.status, co.body["error"]["code"].as_str()), (409, Some("billing_disabled")));
    for hook in ["/webhooks/stripe", "/webhooks/paypal"] {
        let r = api.call(Method::POST, hook, &Auth::None, Some(json!({"id": "evt_1", "type": "invoice.paid"}))).await;
        assert_eq!(r.status, 404, "{hook} without its provider: {}", r.text);
    }
    server.terminate();
}

/// SAQ A: no Sigillum page has a field that could take card data, and no page or script loads
/// anything from another origin (no Stripe.js, no PayPal SDK): paying happens on the providers'
/// hosted pages only. Every page of the workspace and the signer's page is fetched as a
/// signed-in owner of a paying organisation (so the billing page shows everything it can), and
/// every script the pages load is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_can_take_card_data_or_load_a_third_party_script() {
    let fake = FakeProviders::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path()).await;
    let api = Api::new(&server);
    api.signup("scan@shop.example", PW, "Scan Owner").await;
    let owner = api.login("scan@shop.example", PW).await;
    let envelope = draft(&api, &owner).await;
    let co = api
        .call(Method::POST, "/api/v1/billing/checkout", &owner, Some(json!({"plan": "team", "provider": "stripe"})))
        .await;
    fake.stripe_complete_checkout(co.body["id"].as_str().unwrap()).await;
    assert_eq!(billing(&api, &owner).await["plan"]["id"], "team");

    let pages = [
        "/app".to_owned(),
        "/app/login".into(),
        "/app/signup".into(),
        "/app/envelopes/new".into(),
        format!("/app/envelopes/{envelope}"),
        "/app/settings".into(),
        "/app/billing".into(),
        "/app/billing?checkout=success".into(),
        "/app/billing?checkout=cancelled".into(),
        format!("/s/{}", "A".repeat(43)),
    ];
    let card_words = [
        "cc-number",
        "cc-csc",
        "cc-exp",
        "cardnumber",
        "card-number",
        "card_number",
        "cvc",
        "cvv",
        "iban",
        "security code",
    ];
    let mut scripts = std::collections::BTreeSet::new();
    for path in &pages {
        let r = api.call(Method::GET, path, &owner, None).await;
        assert_eq!(r.status, 200, "{path}");
        let html = r.text.to_lowercase();
        let csp = r.headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(
            csp.contains("default-src 'self'") && !csp.contains("stripe") && !csp.contains("paypal"),
            "{path}: {csp}"
        );
        for tag in html.split('<').skip(1) {
            let name = tag.split(|c: char| c.is_whitespace() || c == '>').next().unwrap_or_default();
            if matches!(name, "input" | "select" | "textarea") {
                let attrs = tag.split('>').next().unwrap_or_default();
                for word in card_words {
                    assert!(!attrs.contains(word), "{path}: a form field that could take card data: <{attrs}>");
                }
                assert!(!attrs.contains("autocomplete=\"cc-"), "{path}: <{attrs}>");
            }
            assert!(!matches!(name, "iframe" | "embed" | "object"), "{path}: <{name}> embeds another page");
            for attr in ["src=\"", "href=\"", "action=\""] {
                for value in tag.split(attr).skip(1) {
                    let url = value.split('"').next().unwrap_or_default();
                    let foreign = url.starts_with("http:") || url.starts_with("https:") || url.starts_with("//");
                    assert!(!(foreign && name != "a"), "{path}: <{name}> loads {url}");
                    if name == "script" {
                        assert!(url.starts_with("/static/"), "{path}: script {url}");
                        scripts.insert(url.split('?').next().unwrap_or_default().to_owned());
                    }
                }
            }
        }
    }
    assert!(scripts.contains("/static/billing.js") && scripts.len() >= 8, "{scripts:?}");
    let mut queue: Vec<String> = scripts.iter().cloned().collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(script) = queue.pop() {
        if !seen.insert(script.clone()) {
            continue;
        }
        let js = server.client().get(server.url(&script)).send().await.unwrap().text().await.unwrap();
        for forbidden in
            ["js.stripe.com", "paypal.com/sdk", "paypalobjects", "https://", "http://", "cc-number", "cardnumber"]
        {
            assert!(!js.contains(forbidden), "{script} contains {forbidden:?}");
        }
        for import in js.split("from \"./").skip(1) {
            queue.push(format!("/static/{}", import.split('"').next().unwrap_or_default()));
        }
    }
    // What Sigillum stores of a paying organisation: the providers' identifiers and states.
    let b = billing(&api, &owner).await;
    let stored = b.to_string().to_lowercase();
    for word in ["card", "last4", "exp_month", "brand", "iban"] {
        assert!(!stored.contains(word), "billing state mentions {word}: {stored}");
    }
    server.terminate();
}
