//! Session lifetimes and throttling windows, with a clock the test moves: a session dies after 30
//! idle minutes or 12 hours in all, and a throttled account opens again when its window passes.

mod common;

use std::sync::Arc;

use secrecy::SecretString;
use sigillum_core::accounts::{AccountError, SESSION_ABSOLUTE_MS, SESSION_IDLE_MS, THROTTLE_WINDOW_MS};
use sigillum_core::ports::Clock;
use sigillum_core::{Accounts, AuditLog, ClientInfo};

use common::ManualClock;

const PW: &str = "correct horse battery staple";

async fn accounts() -> (common::Stack, Accounts, Arc<ManualClock>) {
    let s = common::local_stack().await;
    let clock = Arc::new(ManualClock::at(1_795_000_000_000));
    let audit = AuditLog::open(s.repo.clone(), s.vault.clone(), clock.clone(), "test/log").await.unwrap();
    let accounts = Accounts::new(s.repo.clone(), s.vault.clone(), audit, clock.clone());
    accounts.signup("ada@example.org", SecretString::from(PW), "Ada", &ClientInfo::default()).await.unwrap();
    (s, accounts, clock)
}

async fn login(a: &Accounts) -> Result<String, AccountError> {
    let client = ClientInfo { ip: Some("192.0.2.1".parse().unwrap()), user_agent: None };
    let out = a.login("ada@example.org", SecretString::from(PW), None, &client).await?;
    Ok(secrecy::ExposeSecret::expose_secret(&out.session_token).to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_when_idle_and_absolutely() {
    let (_s, a, clock) = accounts().await;
    let token = login(&a).await.unwrap();
    // Used every 20 minutes, it stays alive ...
    for _ in 0..5 {
        clock.advance(20 * 60 * 1000);
        a.authenticate_session(&token).await.unwrap();
    }
    // ... until 30 idle minutes pass.
    clock.advance(SESSION_IDLE_MS);
    assert!(matches!(a.authenticate_session(&token).await, Err(AccountError::Unauthenticated)));

    // Kept busy, it still ends 12 hours after login.
    let token = login(&a).await.unwrap();
    let mut elapsed = 0;
    while elapsed + 25 * 60 * 1000 < SESSION_ABSOLUTE_MS {
        clock.advance(25 * 60 * 1000);
        elapsed += 25 * 60 * 1000;
        a.authenticate_session(&token).await.unwrap();
    }
    clock.advance(SESSION_ABSOLUTE_MS - elapsed);
    assert!(matches!(a.authenticate_session(&token).await, Err(AccountError::Unauthenticated)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_account_opens_again_after_the_window() {
    let (_s, a, clock) = accounts().await;
    let client = ClientInfo { ip: Some("192.0.2.9".parse().unwrap()), user_agent: None };
    for _ in 0..10 {
        let r = a.login("ada@example.org", SecretString::from("wrong wrong wrong"), None, &client).await;
        assert!(matches!(r, Err(AccountError::InvalidCredentials)));
    }
    assert!(matches!(login(&a).await, Err(AccountError::Throttled { .. })));
    clock.advance(THROTTLE_WINDOW_MS);
    login(&a).await.unwrap();
}

#[tokio::test]
async fn totp_two_factor_with_single_use_codes_and_recovery_codes() {
    use secrecy::ExposeSecret;
    let (_s, a, clock) = accounts().await;
    let client = ClientInfo::default();
    let out = a.login("ada@example.org", SecretString::from(PW), None, &client).await.unwrap();
    let p = a.authenticate_session(out.session_token.expose_secret()).await.unwrap();

    let setup = a.setup_totp(&p).await.unwrap();
    assert!(setup.otpauth_url.starts_with("otpauth://totp/Sigillum:ada%40example.org?"), "{}", setup.otpauth_url);
    assert!(setup.otpauth_url.contains(&format!("secret={}", setup.secret)));
    assert_eq!(setup.secret.len(), 32, "160-bit secret in base32");
    let now = || clock.now_unix_ms() / 1000;
    // Not yet enabled: logins need no code.
    assert!(a.login("ada@example.org", SecretString::from(PW), None, &client).await.is_ok());

    assert!(matches!(a.enable_totp(&p, "000000", &client).await, Err(AccountError::InvalidTotp)));
    let code = sigillum_testkit::totp_code(&setup.secret, now());
    let recovery = a.enable_totp(&p, &code, &client).await.unwrap();
    assert_eq!(recovery.len(), 10);
    assert!(matches!(a.setup_totp(&p).await, Err(AccountError::TotpState("totp_already_enabled"))));

    // Password alone is not enough; the code just used does not work again (RFC 6238 §5.2).
    let login = |code: Option<String>| {
        let a = &a;
        let client = client.clone();
        async move { a.login("ada@example.org", SecretString::from(PW), code.as_deref(), &client).await }
    };
    assert!(matches!(login(None).await, Err(AccountError::TotpRequired)));
    assert!(matches!(login(Some(code.clone())).await, Err(AccountError::InvalidTotp)), "replayed code");
    clock.advance(30_000);
    assert!(login(Some(sigillum_testkit::totp_code(&setup.secret, now()))).await.is_ok());
    // One step of clock skew either way is accepted; more is not.
    clock.advance(30_000);
    assert!(login(Some(sigillum_testkit::totp_code(&setup.secret, now() + 30))).await.is_ok());
    clock.advance(90_000);
    assert!(matches!(
        login(Some(sigillum_testkit::totp_code(&setup.secret, now() + 90))).await,
        Err(AccountError::InvalidTotp)
    ));

    // A recovery code works once, in any case and spacing.
    let rc = recovery[3].to_lowercase().replace('-', " ");
    assert!(login(Some(rc.clone())).await.is_ok());
    assert!(matches!(login(Some(rc)).await, Err(AccountError::InvalidTotp)));
    assert!(login(Some(recovery[4].clone())).await.is_ok());
}
