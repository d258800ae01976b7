//! Session lifetimes and throttling windows, with a clock the test moves: a session dies after 30
//! idle minutes or 12 hours in all, and a throttled account opens again when its window passes.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use secrecy::SecretString;
use sigillum_core::accounts::{AccountError, SESSION_ABSOLUTE_MS, SESSION_IDLE_MS, THROTTLE_WINDOW_MS};
use sigillum_core::ports::Clock;
use sigillum_core::{Accounts, AuditLog, ClientInfo};

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_unix_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

const PW: &str = "correct horse battery staple";

async fn accounts() -> (common::Stack, Accounts, Arc<ManualClock>) {
    let s = common::local_stack().await;
    let clock = Arc::new(ManualClock(AtomicI64::new(1_795_000_000_000)));
    let audit = AuditLog::open(s.repo.clone(), s.vault.clone(), clock.clone(), "test/log").await.unwrap();
    let accounts = Accounts::new(s.repo.clone(), s.vault.clone(), audit, clock.clone());
    accounts.signup("ada@example.org", SecretString::from(PW), "Ada", &ClientInfo::default()).await.unwrap();
    (s, accounts, clock)
}

async fn login(a: &Accounts) -> Result<String, AccountError> {
    let client = ClientInfo { ip: Some("192.0.2.1".parse().unwrap()), user_agent: None };
    let out = a.login("ada@example.org", SecretString::from(PW), &client).await?;
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
        let r = a.login("ada@example.org", SecretString::from("wrong wrong wrong"), &client).await;
        assert!(matches!(r, Err(AccountError::InvalidCredentials)));
    }
    assert!(matches!(login(&a).await, Err(AccountError::Throttled { .. })));
    clock.advance(THROTTLE_WINDOW_MS);
    login(&a).await.unwrap();
}
