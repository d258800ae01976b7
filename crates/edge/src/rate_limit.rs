//! Request rate limits: token buckets (GCRA, from `governor`) per client IP, per credential (API
//! key or session cookie), per signer token, and much stricter ones per IP on the routes that check
//! secrets (signup, login, two-factor). They run before the WAF and before any handler, so a flood
//! is refused with a cheap 429 and never costs rule evaluation, a database query or an Argon2 hash.
//!
//! Buckets live in each node's memory. With N nodes behind a load balancer a client gets at most
//! N times a bucket (exactly one bucket when the balancer keeps a client on one node); the hard
//! per-account limits that must hold across nodes (failed logins, access codes) are counted in the
//! database by the application. Idle keys are purged, so memory follows the active clients.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a rate such as 600/min, 10/s or off")]
pub struct BadRate(String);

/// At most `count` requests in a burst, refilled evenly over `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl FromStr for Rate {
    type Err = BadRate;

    /// `"<count>/<s|min|h>"`, e.g. `600/min`.
    fn from_str(s: &str) -> Result<Self, BadRate> {
        let bad = || BadRate(s.to_owned());
        let (count, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().ok().filter(|c| *c > 0).ok_or_else(bad)?;
        let period = match unit.trim() {
            "s" | "sec" => Duration::from_secs(1),
            "min" | "m" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        Ok(Self { count, period })
    }
}

impl Rate {
    fn quota(self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.count)?;
        Quota::with_period(self.period / self.count).map(|q| q.allow_burst(burst))
    }
}

/// Parses a rate setting; `off` (or empty) disables that bucket.
pub fn parse_rate(s: &str) -> Result<Option<Rate>, BadRate> {
    match s.trim() {
        "" | "off" => Ok(None),
        other => other.parse().map(Some),
    }
}

/// The buckets and their rates (`None`: that bucket is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    /// Every request, per client IP.
    pub per_ip: Option<Rate>,
    /// Signup, login and two-factor routes, per client IP (on top of `per_ip`).
    pub auth_per_ip: Option<Rate>,
    /// Every request carrying an API key or a session cookie, per credential.
    pub per_credential: Option<Rate>,
    /// Signer routes, per signer token.
    pub per_signer_token: Option<Rate>,
}

impl Default for RateConfig {
    /// Generous for people and integrations, tight where secrets are checked.
    fn default() -> Self {
        let r = |count, secs| Some(Rate { count, period: Duration::from_secs(secs) });
        Self { per_ip: r(600, 60), auth_per_ip: r(20, 60), per_credential: r(1200, 60), per_signer_token: r(300, 60) }
    }
}

/// Which stricter buckets a path belongs to.
#[derive(Debug, PartialEq, Eq)]
enum RouteClass<'a> {
    Auth,
    Signer(&'a str),
    Other,
}

fn classify(path: &str) -> RouteClass<'_> {
    const AUTH: [&str; 4] =
        ["/api/v1/auth/signup", "/api/v1/auth/login", "/api/v1/auth/totp/setup", "/api/v1/auth/totp/enable"];
    if AUTH.contains(&path.trim_end_matches('/')) {
        return RouteClass::Auth;
    }
    let token = path.strip_prefix("/api/v1/signing/").or_else(|| path.strip_prefix("/s/"));
    match token.and_then(|rest| rest.split('/').next()).filter(|t| !t.is_empty()) {
        Some(t) => RouteClass::Signer(t),
        None => RouteClass::Other,
    }
}

/// A 128-bit digest of a secret, so buckets never hold credentials themselves.
type SecretKey = [u8; 16];

fn digest(secret: &[u8]) -> SecretKey {
    let d = Sha256::digest(secret);
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// What identifies a request to the limiter.
#[derive(Debug, Clone, Copy)]
pub struct RequestKey<'a> {
    pub client_ip: IpAddr,
    pub path: &'a str,
    /// The API key or session cookie value, if any.
    pub credential: Option<&'a [u8]>,
}

/// A request over its limit: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
    pub bucket: &'static str,
}

impl Limited {
    /// Whole seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        (self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)).max(1)
    }
}

/// All buckets of one node.
pub struct RateLimiter {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    auth_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_credential: Option<DefaultKeyedRateLimiter<SecretKey>>,
    per_signer_token: Option<DefaultKeyedRateLimiter<SecretKey>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("keys", &self.len()).finish()
    }
}

fn keyed<K: std::hash::Hash + Eq + Clone>(rate: Option<Rate>) -> Option<DefaultKeyedRateLimiter<K>> {
    rate.and_then(Rate::quota).map(governor::RateLimiter::keyed)
}

impl RateLimiter {
    pub fn new(config: RateConfig) -> Self {
        Self {
            per_ip: keyed(config.per_ip),
            auth_per_ip: keyed(config.auth_per_ip),
            per_credential: keyed(config.per_credential),
            per_signer_token: keyed(config.per_signer_token),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one token from every bucket the request belongs to, narrowest first, or says how
    /// long to wait. A refused request takes nothing from the broader buckets.
    pub fn check(&self, req: &RequestKey<'_>) -> Result<(), Limited> {
        let now = self.clock.now();
        let wait = |e: governor::NotUntil<_>, bucket| Limited { retry_after: e.wait_time_from(now), bucket };
        match classify(req.path) {
            RouteClass::Auth => {
                if let Some(l) = &self.auth_per_ip {
                    l.check_key(&req.client_ip).map_err(|e| wait(e, "auth"))?;
                }
            }
            RouteClass::Signer(token) => {
                if let Some(l) = &self.per_signer_token {
                    l.check_key(&digest(token.as_bytes())).map_err(|e| wait(e, "signer_token"))?;
                }
            }
            RouteClass::Other => {}
        }
        if let (Some(l), Some(c)) = (&self.per_credential, req.credential) {
            l.check_key(&digest(c)).map_err(|e| wait(e, "credential"))?;
        }
        if let Some(l) = &self.per_ip {
            l.check_key(&req.client_ip).map_err(|e| wait(e, "ip"))?;
        }
        Ok(())
    }

    /// Forgets keys whose buckets are full again (call periodically).
    pub fn purge(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
        }
        if let Some(l) = &self.auth_per_ip {
            l.retain_recent();
        }
        if let Some(l) = &self.per_credential {
            l.retain_recent();
        }
        if let Some(l) = &self.per_signer_token {
            l.retain_recent();
        }
    }

    /// Keys currently remembered, over all buckets.
    pub fn len(&self) -> usize {
        self.per_ip.as_ref().map_or(0, |l| l.len())
            + self.auth_per_ip.as_ref().map_or(0, |l| l.len())
            + self.per_credential.as_ref().map_or(0, |l| l.len())
            + self.per_signer_token.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn only_ip(count: u32) -> RateLimiter {
        RateLimiter::new(RateConfig {
            per_ip: Some(Rate { count, period: Duration::from_secs(60) }),
            auth_per_ip: None,
            per_credential: None,
            per_signer_token: None,
        })
    }

    #[test]
    fn rates_parse() {
        assert_eq!("600/min".parse(), Ok(Rate { count: 600, period: Duration::from_secs(60) }));
        assert_eq!("10/s".parse(), Ok(Rate { count: 10, period: Duration::from_secs(1) }));
        assert_eq!(parse_rate("off"), Ok(None));
        for bad in ["", "0/min", "ten/min", "5/day", "5"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_above_the_limit_is_refused_and_another_ip_is_not() {
        let l = only_ip(5);
        let key = |last| RequestKey { client_ip: ip(last), path: "/api/v1/envelopes", credential: None };
        for _ in 0..5 {
            assert!(l.check(&key(1)).is_ok());
        }
        let refused = l.check(&key(1)).unwrap_err();
        assert_eq!(refused.bucket, "ip");
        // One token comes back every 12 s.
        assert!(refused.retry_after <= Duration::from_secs(12) && refused.retry_after > Duration::from_secs(10));
        assert_eq!(refused.retry_after_secs(), 12);
        assert!(l.check(&key(2)).is_ok());
    }

    #[test]
    fn login_has_its_own_tight_bucket() {
        let l = RateLimiter::new(RateConfig::default());
        let login = RequestKey { client_ip: ip(3), path: "/api/v1/auth/login", credential: None };
        let other = RequestKey { client_ip: ip(3), path: "/api/v1/envelopes", credential: None };
        for _ in 0..20 {
            assert!(l.check(&login).is_ok());
        }
        assert_eq!(l.check(&login).unwrap_err().bucket, "auth");
        assert!(l.check(&other).is_ok(), "other routes of the same client still work");
    }

    #[test]
    fn signer_tokens_and_credentials_have_buckets_of_their_own() {
        let l = RateLimiter::new(RateConfig {
            per_ip: None,
            auth_per_ip: None,
            per_credential: Some(Rate { count: 2, period: Duration::from_secs(60) }),
            per_signer_token: Some(Rate { count: 3, period: Duration::from_secs(60) }),
        });
        let signer = |t| RequestKey { client_ip: ip(4), path: t, credential: None };
        for _ in 0..3 {
            assert!(l.check(&signer("/api/v1/signing/tokA/document")).is_ok());
        }
        assert_eq!(l.check(&signer("/s/tokA")).unwrap_err().bucket, "signer_token");
        assert!(l.check(&signer("/api/v1/signing/tokB")).is_ok());
        let key = |c: &'static [u8]| RequestKey { client_ip: ip(5), path: "/api/v1/envelopes", credential: Some(c) };
        assert!(l.check(&key(b"Bearer sgl_a")).is_ok());
        assert!(l.check(&key(b"Bearer sgl_a")).is_ok());
        assert_eq!(l.check(&key(b"Bearer sgl_a")).unwrap_err().bucket, "credential");
        assert!(l.check(&key(b"Bearer sgl_b")).is_ok());
    }

    #[test]
    fn routes_are_classified() {
        assert_eq!(classify("/api/v1/auth/login"), RouteClass::Auth);
        assert_eq!(classify("/api/v1/auth/login/"), RouteClass::Auth);
        assert_eq!(classify("/api/v1/auth/me"), RouteClass::Other);
        assert_eq!(classify("/api/v1/signing/abc/complete"), RouteClass::Signer("abc"));
        assert_eq!(classify("/s/abc"), RouteClass::Signer("abc"));
        assert_eq!(classify("/api/v1/signing/"), RouteClass::Other);
    }

    #[test]
    fn idle_keys_are_purged() {
        let l = RateLimiter::new(RateConfig {
            per_ip: Some(Rate { count: 1000, period: Duration::from_millis(10) }),
            auth_per_ip: None,
            per_credential: None,
            per_signer_token: None,
        });
        for i in 0..50 {
            let _ = l.check(&RequestKey { client_ip: ip(i), path: "/", credential: None });
        }
        assert!(l.len() >= 50);
        std::thread::sleep(Duration::from_millis(30));
        l.purge();
        assert!(l.is_empty(), "{}", l.len());
    }
}
