//! TOTP two-factor authentication (RFC 6238: SHA-1, 6 digits, 30 s, ±1 step) with one-time
//! recovery codes. The shared secret is wrapped by the key manager; every code is accepted once
//! (the last used step is stored); recovery codes are stored as SHA-256 and used once.

use sigillum_audit::{Detail, EventKind};
use sigillum_crypto::{Dek, KekRef, WrappedDek};
use totp_rs::{Builder, Secret, Totp};

use crate::accounts::{sha256, AccountError, Accounts, Principal};
use crate::audit_log::{Actor, ClientInfo};
use crate::ports::{RepoError, TotpRecord, UserRecord};

/// The KEK that wraps TOTP secrets.
pub const KEK: &str = "system:totp";
const ISSUER: &str = "Sigillum";
pub const RECOVERY_CODES: usize = 10;

/// What `setup` returns: the secret for an authenticator app.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TotpSetup {
    /// Base32, for typing into an app.
    pub secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub otpauth_url: String,
}

fn internal(e: impl std::fmt::Display) -> AccountError {
    AccountError::Internal(e.to_string())
}

fn totp(secret: &[u8], account: &str) -> Result<Totp, AccountError> {
    Builder::new()
        .with_secret(Secret::new(secret.to_vec().into_boxed_slice()))
        .with_skew(1)
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .map_err(internal)
}

/// Recovery codes are compared without dashes, spaces or case.
fn normalise_recovery(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// Characters of a recovery code, without its dash.
const RECOVERY_CODE_CHARS: usize = 10;

/// A fresh recovery code: 10 base32 characters (50 bits), shown as `XXXXX-XXXXX`.
fn recovery_code() -> Result<String, AccountError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes: [u8; 10] = sigillum_crypto::random_array().map_err(internal)?;
    let chars: String = bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
    Ok(format!("{}-{}", &chars[..5], &chars[5..]))
}

impl Accounts {
    async fn totp_secret(&self, rec: &TotpRecord) -> Result<Vec<u8>, AccountError> {
        let wrapped = WrappedDek {
            kek: KekRef { key_id: rec.kek_key_id.clone(), version: rec.kek_version },
            wrapped: rec.secret_wrapped.clone(),
        };
        let dek = self.vault.unwrap_system_secret(&wrapped).await.map_err(internal)?;
        // 160 bits, the size RFC 4226 recommends and authenticator apps expect.
        Ok(dek.expose_secret()[..20].to_vec())
    }

    /// Whether the caller's account has two-factor authentication on (for the settings page).
    pub async fn totp_enabled(&self, p: &Principal) -> Result<bool, AccountError> {
        Ok(self.store.totp(p.user_id).await?.is_some_and(|t| t.enabled_unix_ms.is_some()))
    }

    /// Starts two-factor set-up: a new secret, not active until [`Accounts::enable_totp`].
    pub async fn setup_totp(&self, p: &Principal) -> Result<TotpSetup, AccountError> {
        if self.store.totp(p.user_id).await?.is_some_and(|t| t.enabled_unix_ms.is_some()) {
            return Err(AccountError::TotpState("totp_already_enabled"));
        }
        let dek = Dek::generate().map_err(internal)?;
        let wrapped = self.vault.wrap_system_secret(KEK, &dek).await.map_err(internal)?;
        let rec = TotpRecord {
            user_id: p.user_id,
            kek_key_id: wrapped.kek.key_id.clone(),
            kek_version: wrapped.kek.version,
            secret_wrapped: wrapped.wrapped.clone(),
            enabled_unix_ms: None,
            last_step: None,
            created_unix_ms: self.clock.now_unix_ms(),
        };
        match self.store.put_pending_totp(&rec).await {
            Err(RepoError::Conflict(_)) => return Err(AccountError::TotpState("totp_already_enabled")),
            other => other?,
        }
        let t = totp(&dek.expose_secret()[..20], &p.email)?;
        Ok(TotpSetup { secret: t.secret().to_base32(), otpauth_url: t.to_url().map_err(internal)? })
    }

    /// Checks a code against `rec` now, and spends its step (no code works twice).
    async fn check_code(&self, rec: &TotpRecord, account: &str, code: &str) -> Result<bool, AccountError> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(false);
        }
        let secret = self.totp_secret(rec).await?;
        let now_s = (self.clock.now_unix_ms().max(0) / 1000) as u64;
        let Some(step) = totp(&secret, account)?.check(code, now_s) else { return Ok(false) };
        Ok(self.store.use_totp_step(rec.user_id, step as i64).await?)
    }

    /// Turns two-factor on with a first code from the app; returns the recovery codes (shown once).
    pub async fn enable_totp(
        &self,
        p: &Principal,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>, AccountError> {
        let rec = self.store.totp(p.user_id).await?.ok_or(AccountError::TotpState("totp_not_set_up"))?;
        if rec.enabled_unix_ms.is_some() {
            return Err(AccountError::TotpState("totp_already_enabled"));
        }
        if !self.check_code(&rec, &p.email, code).await? {
            return Err(AccountError::InvalidTotp);
        }
        let codes = (0..RECOVERY_CODES).map(|_| recovery_code()).collect::<Result<Vec<_>, _>>()?;
        let hashes: Vec<[u8; 32]> = codes.iter().map(|c| sha256(normalise_recovery(c).as_bytes())).collect();
        let (enabled, job) = self.change(EventKind::TotpEnabled, p.actor(), client, None).await?;
        match self.store.enable_totp(p.user_id, self.clock.now_unix_ms(), &hashes, &[job]).await {
            Err(RepoError::Conflict(_)) => return Err(AccountError::TotpState("totp_already_enabled")),
            other => other?,
        }
        self.logged(enabled).await?;
        Ok(codes)
    }

    /// The second factor of a login: nothing to do without TOTP; otherwise a valid unused code
    /// or recovery code.
    pub(crate) async fn second_factor(
        &self,
        user: &UserRecord,
        code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(), AccountError> {
        let Some(rec) = self.store.totp(user.id).await?.filter(|t| t.enabled_unix_ms.is_some()) else {
            return Ok(());
        };
        let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
            return Err(AccountError::TotpRequired);
        };
        if self.check_code(&rec, &user.email, code).await? {
            return Ok(());
        }
        // Only what can be a recovery code is tried as one (a mistyped app code is not), and
        // only while some are left: each try prepares the audit event that its use stores.
        let recovery = normalise_recovery(code);
        if recovery.len() != RECOVERY_CODE_CHARS {
            return Err(AccountError::InvalidTotp);
        }
        let left = self.store.unused_recovery_codes(user.id).await?;
        if left == 0 {
            return Err(AccountError::InvalidTotp);
        }
        let actor = Actor {
            kind: sigillum_audit::ActorKind::User,
            id: Some(user.id.to_string()),
            name: Some(user.name.clone()),
            email: Some(user.email.clone()),
        };
        // The code's use and its event are stored together. `remaining` is counted before the
        // use: two codes used at the same instant would both report the same count.
        let remaining = Some(("remaining", Detail::Int(i64::from(left) - 1)));
        let (used, job) = self.change(EventKind::RecoveryCodeUsed, actor, client, remaining).await?;
        let hash = sha256(recovery.as_bytes());
        if !self.store.use_recovery_code(user.id, &hash, self.clock.now_unix_ms(), &[job]).await? {
            return Err(AccountError::InvalidTotp);
        }
        self.logged(used).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (8-digit vectors, checked on their last 6 digits).
    #[test]
    fn rfc6238_vectors() {
        let t = totp(b"12345678901234567890", "x@example.com").unwrap();
        for (time, code) in
            [(59, "287082"), (1_111_111_109, "081804"), (1_234_567_890, "005924"), (2_000_000_000, "279037")]
        {
            assert_eq!(t.generate(time).to_string(), code, "t={time}");
        }
    }

    #[test]
    fn recovery_codes_look_right_and_normalise() {
        let c = recovery_code().unwrap();
        assert_eq!(c.len(), 11);
        assert_eq!(&c[5..6], "-");
        assert_eq!(normalise_recovery(&c.to_lowercase().replace('-', " ")), c.replace('-', ""));
        assert_eq!(normalise_recovery(&c).len(), RECOVERY_CODE_CHARS);
    }
}
