//! Accounts over HTTPS as a browser and an API client use them, on SQLite and on PostgreSQL:
//! signup, login with a hardened session cookie, CSRF on cookie-authenticated changes, API keys
//! (shown once, hashed, revocable), logout, login throttling, and JSON errors for bad input.

use reqwest::Method;
use serde_json::json;
use sigillum_testkit::api::{Api, Auth};
use sigillum_testkit::server::{embedded_env, Server};

const PW: &str = "correct horse battery staple";

async fn scenario(server: &Server) {
    let api = Api::new(server);
    let me = "/api/v1/auth/me";

    // Signup validates its input.
    let ada = api.signup("Ada@Example.org", PW, "Ada Lovelace").await;
    assert_eq!(ada["email"], "ada@example.org");
    assert_eq!(ada["role"], "owner");
    assert!(ada["id"].is_string() && ada["organisation_id"].is_string());
    let dup = api
        .call(
            Method::POST,
            "/api/v1/auth/signup",
            &Auth::None,
            Some(json!({"email": "ada@example.org", "password": PW, "name": "X"})),
        )
        .await;
    assert_eq!((dup.status, dup.body["error"]["code"].as_str()), (409, Some("email_taken")));
    for (body, status, code) in [
        (json!({"email": "bob@example.org", "password": "short", "name": "Bob"}), 422, "invalid_input"),
        (json!({"email": "not-an-email", "password": PW, "name": "Bob"}), 422, "invalid_input"),
        (json!({"email": "bob@example.org", "password": PW}), 422, "invalid_body"),
        (json!({"email": "bob@example.org", "password": PW, "name": "Bob", "role": "owner"}), 422, "invalid_body"),
    ] {
        let r = api.call(Method::POST, "/api/v1/auth/signup", &Auth::None, Some(body.clone())).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (status, Some(code)), "{body}: {}", r.text);
    }
    let raw = api
        .client
        .post(format!("{}/api/v1/auth/signup", api.base))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let raw = api
        .client
        .post(format!("{}/api/v1/auth/signup", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=x")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 415);

    // Login: wrong password, then the session cookie with every hardening attribute.
    let wrong = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            &Auth::None,
            Some(json!({"email": "ada@example.org", "password": "wrong password!"})),
        )
        .await;
    assert_eq!((wrong.status, wrong.body["error"]["code"].as_str()), (401, Some("invalid_credentials")));
    let unknown = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            &Auth::None,
            Some(json!({"email": "nobody@example.org", "password": PW})),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.text.clone()),
        (wrong.status, wrong.text.clone()),
        "unknown accounts look the same"
    );
    let r = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            &Auth::None,
            Some(json!({"email": "ADA@example.org", "password": PW})),
        )
        .await;
    assert_eq!(r.status, 200);
    let set_cookie = r.headers["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["__Host-sigillum_session=", "Path=/", "Secure", "HttpOnly", "SameSite=Strict", "Max-Age=43200"] {
        assert!(set_cookie.contains(attr), "{attr} missing in {set_cookie}");
    }
    assert!(r.body["csrf_token"].as_str().unwrap().len() >= 43);
    let session = api.login("ada@example.org", PW).await;
    let first_cookie = set_cookie.split(';').next().unwrap().to_owned();
    let Auth::Session { cookie: second_cookie, .. } = &session else { unreachable!() };
    assert_ne!(&first_cookie, second_cookie, "every login makes a new session");
    let first = Auth::Session { cookie: first_cookie, csrf: None };
    assert_eq!(api.call(Method::GET, me, &first, None).await.status, 200, "and the earlier one stays valid");

    assert_eq!(api.call(Method::GET, me, &Auth::None, None).await.status, 401);
    let who = api.call(Method::GET, me, &session, None).await;
    assert_eq!((who.status, who.body["email"].as_str()), (200, Some("ada@example.org")));
    assert_eq!(
        api.call(Method::GET, me, &Auth::Session { cookie: "__Host-sigillum_session=forged".into(), csrf: None }, None)
            .await
            .status,
        401
    );

    // CSRF: a cookie-authenticated change without the token is refused.
    let no_csrf =
        api.call(Method::POST, "/api/v1/api-keys", &session.without_csrf(), Some(json!({"name": "ci"}))).await;
    assert_eq!((no_csrf.status, no_csrf.body["error"]["code"].as_str()), (403, Some("csrf_failed")));
    let bad_csrf = Auth::Session {
        cookie: match &session {
            Auth::Session { cookie, .. } => cookie.clone(),
            _ => unreachable!(),
        },
        csrf: Some("x".repeat(43)),
    };
    assert_eq!(api.call(Method::POST, "/api/v1/api-keys", &bad_csrf, Some(json!({"name": "ci"}))).await.status, 403);

    // API keys: shown once, listed without the secret, usable, revocable.
    let key = api.api_key(&session, "ci").await;
    assert!(key.starts_with("sgl_") && key.len() >= 47, "{key}");
    let bearer = Auth::Bearer(key.clone());
    let list = api.call(Method::GET, "/api/v1/api-keys", &bearer, None).await;
    assert_eq!(list.status, 200);
    assert!(!list.text.contains(&key[8..]), "the secret is never listed");
    let key_id = list.body["api_keys"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list.body["api_keys"][0]["prefix"].as_str().unwrap(), &key[..10]);
    assert_eq!(api.call(Method::GET, me, &bearer, None).await.status, 200);
    assert_eq!(api.call(Method::GET, me, &Auth::Bearer(format!("{key}x")), None).await.status, 401);

    // Another organisation can neither see nor revoke Ada's key.
    api.signup("eve@example.net", PW, "Eve").await;
    let eve = api.login("eve@example.net", PW).await;
    let eve_list = api.call(Method::GET, "/api/v1/api-keys", &eve, None).await;
    assert_eq!(eve_list.body["api_keys"], json!([]));
    let steal = api.call(Method::DELETE, &format!("/api/v1/api-keys/{key_id}"), &eve, None).await;
    assert_eq!(steal.status, 404);
    assert_eq!(api.call(Method::GET, me, &bearer, None).await.status, 200, "still valid");
    assert_eq!(api.call(Method::DELETE, &format!("/api/v1/api-keys/{key_id}"), &session, None).await.status, 204);
    let revoked = api.call(Method::GET, me, &bearer, None).await;
    assert_eq!((revoked.status, revoked.body["error"]["code"].as_str()), (401, Some("unauthenticated")));

    // Logout ends the session.
    assert_eq!(api.call(Method::POST, "/api/v1/auth/logout", &session, None).await.status, 204);
    assert_eq!(api.call(Method::GET, me, &session, None).await.status, 401);

    // Throttling: after 10 failures the account is locked for the window, even for the right password.
    for _ in 0..10 {
        let r = api
            .call(
                Method::POST,
                "/api/v1/auth/login",
                &Auth::None,
                Some(json!({"email": "eve@example.net", "password": "not the password"})),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let locked = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            &Auth::None,
            Some(json!({"email": "eve@example.net", "password": PW})),
        )
        .await;
    assert_eq!((locked.status, locked.body["error"]["code"].as_str()), (429, Some("too_many_attempts")));
    assert!(locked.headers.contains_key("retry-after"));
    // Other accounts are unaffected.
    let ada = api.login("ada@example.org", PW).await;

    // Roles: the owner adds a member, who shares the organisation's envelopes but may not manage
    // members or webhooks; removing the member ends their sessions and keys.
    let m = api
        .call(
            Method::POST,
            "/api/v1/members",
            &ada,
            Some(json!({"email": "max@example.org", "name": "Max", "password": PW})),
        )
        .await;
    assert_eq!((m.status, m.body["role"].as_str()), (201, Some("member")), "{}", m.text);
    let max_id = m.body["id"].as_str().unwrap().to_owned();
    let max = api.login("max@example.org", PW).await;
    let max_key = Auth::Bearer(api.api_key(&max, "max's key").await);
    let listed = api.call(Method::GET, "/api/v1/members", &max, None).await;
    assert_eq!(listed.body["members"].as_array().unwrap().len(), 2);
    let env = api.upload(&ada, "Shared", sigillum_testkit::pdf::pdf(1)).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(api.call(Method::GET, &format!("/api/v1/envelopes/{env}"), &max, None).await.status, 200);
    let r = api
        .call(
            Method::POST,
            "/api/v1/members",
            &max,
            Some(json!({"email": "x@example.org", "name": "X", "password": PW})),
        )
        .await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (403, Some("owner_only")));
    let r = api.call(Method::POST, "/api/v1/webhooks", &max, Some(json!({"url": "https://hooks.example.org/x"}))).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (403, Some("owner_only")));
    let ada_id = listed.body["members"][0]["id"].as_str().unwrap().to_owned();
    let r = api.call(Method::DELETE, &format!("/api/v1/members/{ada_id}"), &ada, None).await;
    assert_eq!(r.status, 422, "an owner cannot remove themselves: {}", r.text);
    assert_eq!(api.call(Method::DELETE, &format!("/api/v1/members/{max_id}"), &ada, None).await.status, 204);
    assert_eq!(api.call(Method::GET, "/api/v1/auth/me", &max, None).await.status, 401, "session ended");
    assert_eq!(api.call(Method::GET, "/api/v1/auth/me", &max_key, None).await.status, 401, "key ended");

    // Two-factor through the API: setup, enable with a code, then login needs a code.
    let setup = api.call(Method::POST, "/api/v1/auth/totp/setup", &ada, None).await;
    assert_eq!(setup.status, 200, "{}", setup.text);
    let r = api.call(Method::POST, "/api/v1/auth/totp/enable", &ada, Some(json!({"code": "000000"}))).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (401, Some("invalid_totp")));
    let r = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            &Auth::None,
            Some(json!({"email": "ada@example.org", "password": PW})),
        )
        .await;
    assert_eq!(r.status, 200, "not enabled yet: no code needed");
}

/// The embedded defaults without the edge tier's per-address login bucket: this scenario runs
/// more logins from one address in a minute than it allows (tests/edge.rs covers that bucket),
/// and it tests the lockout the application counts in the database, which holds across nodes.
fn env_for(dir: &tempfile::TempDir) -> Vec<(String, String)> {
    let mut env = embedded_env(&dir.path().join("data"));
    env.push(("SIGILLUM_RATE_LIMIT_AUTH".into(), "off".into()));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&env_for(&dir), &[]);
    scenario(&server).await;
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_for(&dir);
    env.push(("SIGILLUM_DATABASE_URL".into(), sigillum_testkit::postgres_database().await));
    let server = Server::start(&env, &[]);
    scenario(&server).await;
    server.terminate();
}
