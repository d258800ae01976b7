//! Accounts: signup (which creates the organisation), password login with throttling, browser
//! sessions with CSRF tokens, and API keys. Every step is an audit event.
//!
//! Passwords are Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), hashed off the async
//! threads. Session, CSRF and API-key tokens are 256-bit random values, handed out once and stored
//! only as SHA-256 hashes. Sessions end after 30 minutes idle or 12 hours in all; a login always
//! creates a new session (rotation), and logout deletes it. Failed logins are counted per account
//! and per client address in the database, so every node sees the same counters.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sigillum_audit::{ActorKind, Detail, EventKind};

use crate::audit_log::{Actor, AuditLog, ClientInfo, NewEvent};
use crate::ids::{ApiKeyId, OrgId, UserId};
use crate::ports::{
    AccountStore, ApiKeyRecord, Clock, NewJob, RepoError, Role, SessionRecord, UserIdentity, UserRecord,
};
use crate::vault::Vault;
use crate::workflow::ChangeEvent;

/// An account event (of no envelope).
fn account_event(kind: EventKind, actor: Actor, client: &ClientInfo, detail: Option<(&str, Detail)>) -> NewEvent {
    let mut e = NewEvent::new(kind, None, actor, client.clone());
    if let Some((k, v)) = detail {
        e = e.detail(k, v);
    }
    e
}

pub const SESSION_IDLE_MS: i64 = 30 * 60 * 1000;
pub const SESSION_ABSOLUTE_MS: i64 = 12 * 60 * 60 * 1000;
/// A session's last-seen time is written at most this often.
const TOUCH_EVERY_MS: i64 = 60 * 1000;
pub const API_KEY_PREFIX: &str = "sgl_";
/// Login throttling: failures allowed per window, per account and per client address.
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60 * 1000;
pub const MAX_FAILURES_PER_ACCOUNT: u32 = 10;
pub const MAX_FAILURES_PER_IP: u32 = 50;
pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_BYTES: usize = 1024;

/// The longest retention an organisation may set (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// `GET /api/v1/organisation`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrganisationView {
    pub id: String,
    pub name: String,
    pub created_unix_ms: i64,
    /// Envelopes are erased this many days after they end; `null` keeps them.
    pub retention_days: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("email or password is wrong")]
    InvalidCredentials,
    #[error("too many failed attempts; try again later")]
    Throttled { retry_after_s: u64 },
    #[error("not authenticated")]
    Unauthenticated,
    #[error("not found")]
    NotFound,
    /// The password was right; the account also needs its TOTP code (or a recovery code).
    #[error("a two-factor code is required")]
    TotpRequired,
    #[error("the two-factor code is wrong or was used already")]
    InvalidTotp,
    #[error("{0}")]
    TotpState(&'static str),
    /// Only an organisation's owner may do this.
    #[error("only the organisation's owner may do this")]
    OwnerOnly,
    #[error(transparent)]
    Repo(RepoError),
    #[error("internal: {0}")]
    Internal(String),
}

/// The audit log failing is this server's fault, whatever the reason.
impl From<crate::audit_log::AuditError> for AccountError {
    fn from(e: crate::audit_log::AuditError) -> Self {
        Self::Internal(format!("audit: {e}"))
    }
}

impl From<RepoError> for AccountError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound => Self::NotFound,
            e => Self::Repo(e),
        }
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    Session { token_hash: [u8; 32], csrf_hash: [u8; 32] },
    ApiKey(ApiKeyId),
}

fn principal(user: UserIdentity, method: AuthMethod) -> Principal {
    Principal { user_id: user.id, org_id: user.org_id, role: user.role, name: user.name, email: user.email, method }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub role: Role,
    pub name: String,
    pub email: String,
    pub method: AuthMethod,
}

impl Principal {
    /// The actor of audit events caused by this caller.
    pub fn actor(&self) -> Actor {
        let (kind, id) = match &self.method {
            AuthMethod::Session { .. } => (ActorKind::User, self.user_id.to_string()),
            AuthMethod::ApiKey(k) => (ActorKind::ApiKey, k.to_string()),
        };
        Actor { kind, id: Some(id), name: Some(self.name.clone()), email: Some(self.email.clone()) }
    }

    /// Whether a presented CSRF token belongs to this session (API keys need none).
    pub fn csrf_ok(&self, presented: Option<&str>) -> bool {
        match &self.method {
            AuthMethod::ApiKey(_) => true,
            AuthMethod::Session { csrf_hash, .. } => {
                presented.map(|t| sigillum_crypto::constant_time_eq(&sha256(t.as_bytes()), csrf_hash)).unwrap_or(false)
            }
        }
    }
}

/// What the API shows of an account.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    #[schema(value_type = uuid::Uuid)]
    pub id: UserId,
    #[schema(value_type = uuid::Uuid)]
    pub organisation_id: OrgId,
    pub email: String,
    pub name: String,
    pub role: Role,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self { id: u.id, organisation_id: u.org_id, email: u.email.clone(), name: u.name.clone(), role: u.role }
    }
}

/// A successful login: the session token goes into the cookie, the CSRF token to the client.
pub struct LoginOutcome {
    pub session_token: SecretString,
    pub csrf_token: String,
    pub expires_unix_ms: i64,
    pub user: UserView,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    #[schema(value_type = uuid::Uuid)]
    pub id: ApiKeyId,
    pub name: String,
    pub prefix: String,
    pub created_unix_ms: i64,
    pub last_used_unix_ms: Option<i64>,
    pub revoked: bool,
}

impl From<&ApiKeyRecord> for ApiKeyView {
    fn from(k: &ApiKeyRecord) -> Self {
        Self {
            id: k.id,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            created_unix_ms: k.created_unix_ms,
            last_used_unix_ms: k.last_used_unix_ms,
            revoked: k.revoked_unix_ms.is_some(),
        }
    }
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub(crate) fn random_token() -> Result<String, AccountError> {
    let bytes: [u8; 32] = sigillum_crypto::random_array().map_err(|e| AccountError::Internal(e.to_string()))?;
    Ok(B64URL.encode(bytes))
}

fn argon2() -> Result<Argon2<'static>, AccountError> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| AccountError::Internal(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub(crate) async fn hash_password(password: SecretString) -> Result<String, AccountError> {
    let salt: [u8; 16] = sigillum_crypto::random_array().map_err(|e| AccountError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Internal(e.to_string()))?;
        argon2()?
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Internal(e.to_string()))
    })
    .await
    .map_err(|e| AccountError::Internal(e.to_string()))?
}

/// Verifies against `hash`, or against a fixed dummy hash when there is no account, so an unknown
/// email costs the same time as a wrong password.
pub(crate) async fn verify_password(password: SecretString, hash: Option<String>) -> Result<bool, AccountError> {
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c2lnaWxsdW1kdW1teXNhbHQ$3wYp0e3QzE7l3GZ6Y1p4oQm8m2v1rW9x0n5kXj2b8aM";
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let stored = hash.unwrap_or_else(|| DUMMY.to_owned());
        let parsed = PasswordHash::new(&stored).map_err(|e| AccountError::Internal(e.to_string()))?;
        let ok = argon2()?.verify_password(password.expose_secret().as_bytes(), &parsed).is_ok();
        Ok(known && ok)
    })
    .await
    .map_err(|e| AccountError::Internal(e.to_string()))?
}

/// Lower-cases and checks an email address (one `@`, something on both sides, no spaces).
pub fn normalise_email(email: &str) -> Result<String, AccountError> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(e.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@') && !domain.starts_with('.') && !domain.ends_with('.'));
    if valid {
        Ok(e)
    } else {
        Err(AccountError::Invalid("email is not a valid address".into()))
    }
}

fn check_password_policy(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::Invalid(format!("password must have at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::Invalid("password is too long".into()));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<String, AccountError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 || n.chars().any(char::is_control) {
        return Err(AccountError::Invalid("name must be 1 to 200 printable characters".into()));
    }
    Ok(n.to_owned())
}

/// The accounts service.
#[derive(Clone)]
pub struct Accounts {
    pub(crate) store: Arc<dyn AccountStore>,
    pub(crate) vault: Vault,
    pub(crate) audit: AuditLog,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Accounts {
    pub fn new(store: Arc<dyn AccountStore>, vault: Vault, audit: AuditLog, clock: Arc<dyn Clock>) -> Self {
        Self { store, vault, audit, clock }
    }

    /// Records an account event. If the log cannot take it the operation fails: nothing about
    /// an account changes without its event.
    pub(crate) async fn event(
        &self,
        kind: EventKind,
        actor: Actor,
        client: &ClientInfo,
        detail: Option<(&str, Detail)>,
    ) -> Result<(), AccountError> {
        self.audit.record(account_event(kind, actor, client, detail)).await?;
        Ok(())
    }

    /// Prepares the event of an account change, with the job to store in the change's own
    /// transaction: should this node stop before [`Self::logged`] appends the event, the job does
    /// (see `ChangeEvent`). The change and its event never part.
    pub(crate) async fn change(
        &self,
        kind: EventKind,
        actor: Actor,
        client: &ClientInfo,
        detail: Option<(&str, Detail)>,
    ) -> Result<(ChangeEvent, NewJob), AccountError> {
        let e = account_event(kind, actor, client, detail);
        Ok(ChangeEvent::prepare(&self.audit, e, self.clock.now_unix_ms()).await?)
    }

    /// Appends the event of an account change now stored.
    pub(crate) async fn logged(&self, c: ChangeEvent) -> Result<(), AccountError> {
        Ok(c.append(&self.audit).await?)
    }

    /// Creates an organisation and its first account (owner).
    pub async fn signup(
        &self,
        email: &str,
        password: SecretString,
        name: &str,
        client: &ClientInfo,
    ) -> Result<UserView, AccountError> {
        let email = normalise_email(email)?;
        let name = check_name(name)?;
        check_password_policy(password.expose_secret())?;
        if self.store.user_by_email(&email).await?.is_some() {
            return Err(AccountError::EmailTaken);
        }
        let password_hash = hash_password(password).await?;
        let org = self
            .vault
            .create_organisation(&name)
            .await
            .map_err(|e| AccountError::Internal(format!("organisation: {e}")))?;
        let user = UserRecord {
            id: UserId::new(),
            org_id: org.id,
            email,
            name,
            password_hash,
            role: Role::Owner,
            created_unix_ms: self.clock.now_unix_ms(),
        };
        let actor = Actor {
            kind: ActorKind::User,
            id: Some(user.id.to_string()),
            name: Some(user.name.clone()),
            email: Some(user.email.clone()),
        };
        let detail = Some(("organisation_id", Detail::Text(org.id.to_string())));
        let (created, job) = self.change(EventKind::AccountCreated, actor, client, detail).await?;
        match self.store.insert_user(&user, &[job]).await {
            Ok(()) => {}
            Err(RepoError::Conflict(_)) => return Err(AccountError::EmailTaken),
            Err(e) => return Err(e.into()),
        }
        self.logged(created).await?;
        Ok(UserView::from(&user))
    }

    async fn throttled(&self, scopes: &[(String, u32)]) -> Result<(), AccountError> {
        let now = self.clock.now_unix_ms();
        for (scope, limit) in scopes {
            if self.store.login_failures(scope, now, THROTTLE_WINDOW_MS).await? >= *limit {
                return Err(AccountError::Throttled { retry_after_s: (THROTTLE_WINDOW_MS / 1000) as u64 });
            }
        }
        Ok(())
    }

    /// Checks the password and opens a new session.
    pub async fn login(
        &self,
        email: &str,
        password: SecretString,
        second_factor: Option<&str>,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, AccountError> {
        let email = normalise_email(email).map_err(|_| AccountError::InvalidCredentials)?;
        let mut scopes = vec![(format!("account:{email}"), MAX_FAILURES_PER_ACCOUNT)];
        if let Some(ip) = client.ip {
            scopes.push((format!("ip:{ip}"), MAX_FAILURES_PER_IP));
        }
        self.throttled(&scopes).await?;
        let user = self.store.user_by_email(&email).await?;
        let ok = verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
        let now = self.clock.now_unix_ms();
        let Some(user) = user.filter(|_| ok) else {
            // A failed attempt happened whatever is stored next: its event comes first, so a
            // node stopping in between cannot leave counted failures with no event.
            let actor = Actor { kind: ActorKind::Anonymous, id: None, name: None, email: Some(email) };
            self.event(EventKind::AuthLoginFailed, actor, client, None).await?;
            for (scope, _) in &scopes {
                self.store.record_login_failure(scope, now, THROTTLE_WINDOW_MS).await?;
            }
            return Err(AccountError::InvalidCredentials);
        };
        if let Err(e) = self.second_factor(&user, second_factor, client).await {
            if matches!(e, AccountError::InvalidTotp) {
                let actor =
                    Actor { kind: ActorKind::User, id: Some(user.id.to_string()), name: None, email: Some(email) };
                self.event(EventKind::AuthLoginFailed, actor, client, Some(("reason", Detail::Text("totp".into()))))
                    .await?;
                for (scope, _) in &scopes {
                    self.store.record_login_failure(scope, now, THROTTLE_WINDOW_MS).await?;
                }
            }
            return Err(e);
        }
        self.store.clear_login_failures(&scopes[0].0).await?;
        let session_token = random_token()?;
        let csrf_token = random_token()?;
        let session = SessionRecord {
            token_hash: sha256(session_token.as_bytes()),
            user_id: user.id,
            csrf_hash: sha256(csrf_token.as_bytes()),
            created_unix_ms: now,
            last_seen_unix_ms: now,
            expires_unix_ms: now + SESSION_ABSOLUTE_MS,
        };
        let actor = Actor {
            kind: ActorKind::User,
            id: Some(user.id.to_string()),
            name: Some(user.name.clone()),
            email: Some(user.email.clone()),
        };
        let (login, job) = self.change(EventKind::AuthLogin, actor, client, None).await?;
        self.store.insert_session(&session, &[job]).await?;
        self.logged(login).await?;
        Ok(LoginOutcome {
            session_token: SecretString::from(session_token),
            csrf_token,
            expires_unix_ms: session.expires_unix_ms,
            user: UserView::from(&user),
        })
    }

    /// The caller behind a session cookie, if the session is alive (idle and absolute expiry).
    pub async fn authenticate_session(&self, token: &str) -> Result<Principal, AccountError> {
        let hash = sha256(token.as_bytes());
        let (s, user) = self.store.session_with_user(&hash).await?.ok_or(AccountError::Unauthenticated)?;
        let now = self.clock.now_unix_ms();
        if now >= s.expires_unix_ms || now - s.last_seen_unix_ms >= SESSION_IDLE_MS {
            self.store.delete_session(&hash, now, &[]).await?;
            return Err(AccountError::Unauthenticated);
        }
        if now - s.last_seen_unix_ms >= TOUCH_EVERY_MS {
            self.store.touch_session(&hash, now).await?;
        }
        Ok(principal(user, AuthMethod::Session { token_hash: hash, csrf_hash: s.csrf_hash }))
    }

    /// The caller behind an `sgl_…` API key, unless it is unknown or revoked.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal, AccountError> {
        if !key.starts_with(API_KEY_PREFIX) {
            return Err(AccountError::Unauthenticated);
        }
        let (k, user) =
            self.store.api_key_with_user(&sha256(key.as_bytes())).await?.ok_or(AccountError::Unauthenticated)?;
        if k.revoked_unix_ms.is_some() {
            return Err(AccountError::Unauthenticated);
        }
        let now = self.clock.now_unix_ms();
        if k.last_used_unix_ms.is_none_or(|t| now - t >= TOUCH_EVERY_MS) {
            self.store.touch_api_key(k.id, now).await?;
        }
        let p = principal(user, AuthMethod::ApiKey(k.id));
        if p.org_id != k.org_id {
            return Err(AccountError::Unauthenticated);
        }
        Ok(p)
    }

    /// Ends the caller's session.
    pub async fn logout(&self, p: &Principal, client: &ClientInfo) -> Result<(), AccountError> {
        if let AuthMethod::Session { token_hash, .. } = &p.method {
            let (logout, job) = self.change(EventKind::AuthLogout, p.actor(), client, None).await?;
            self.store.delete_session(token_hash, self.clock.now_unix_ms(), &[job]).await?;
            self.logged(logout).await?;
        }
        Ok(())
    }

    /// Adds a member to the caller's organisation (owners only), with a first password the owner
    /// passes on; the member signs in with it.
    pub async fn add_member(
        &self,
        p: &Principal,
        email: &str,
        password: SecretString,
        name: &str,
        client: &ClientInfo,
    ) -> Result<UserView, AccountError> {
        if p.role != Role::Owner {
            return Err(AccountError::OwnerOnly);
        }
        let email = normalise_email(email)?;
        let name = check_name(name)?;
        check_password_policy(password.expose_secret())?;
        if self.store.user_by_email(&email).await?.is_some() {
            return Err(AccountError::EmailTaken);
        }
        let user = UserRecord {
            id: UserId::new(),
            org_id: p.org_id,
            email,
            name,
            password_hash: hash_password(password).await?,
            role: Role::Member,
            created_unix_ms: self.clock.now_unix_ms(),
        };
        let detail = Some(("user_id", Detail::Text(user.id.to_string())));
        let (added, job) = self.change(EventKind::MemberAdded, p.actor(), client, detail).await?;
        match self.store.insert_user(&user, &[job]).await {
            Ok(()) => {}
            Err(RepoError::Conflict(_)) => return Err(AccountError::EmailTaken),
            Err(e) => return Err(e.into()),
        }
        self.logged(added).await?;
        Ok(UserView::from(&user))
    }

    pub async fn members(&self, p: &Principal) -> Result<Vec<UserView>, AccountError> {
        Ok(self.store.users(p.org_id).await?.iter().map(UserView::from).collect())
    }

    /// Removes a member (owners only; an owner cannot remove themselves). Their sessions and
    /// API keys end with them; envelopes they sent stay with the organisation.
    pub async fn remove_member(&self, p: &Principal, id: UserId, client: &ClientInfo) -> Result<(), AccountError> {
        if p.role != Role::Owner {
            return Err(AccountError::OwnerOnly);
        }
        if id == p.user_id {
            return Err(AccountError::Invalid("an owner cannot remove themselves".into()));
        }
        let detail = Some(("user_id", Detail::Text(id.to_string())));
        let (removed, job) = self.change(EventKind::MemberRemoved, p.actor(), client, detail).await?;
        self.store.delete_user(p.org_id, id, self.clock.now_unix_ms(), &[job]).await?;
        self.logged(removed).await
    }

    /// The caller's organisation as its members see it.
    pub async fn organisation(&self, p: &Principal) -> Result<OrganisationView, AccountError> {
        let repo = self.vault.repository();
        let org = repo.get_organisation(p.org_id).await?;
        Ok(OrganisationView {
            id: org.id.to_string(),
            name: org.name,
            created_unix_ms: org.created_unix_ms,
            retention_days: repo.retention_days(p.org_id).await?,
        })
    }

    /// Sets how many days after an envelope ends it is erased (owners only; `None` keeps
    /// envelopes until someone deletes them).
    pub async fn set_retention(
        &self,
        p: &Principal,
        days: Option<u32>,
        client: &ClientInfo,
    ) -> Result<OrganisationView, AccountError> {
        if p.role != Role::Owner {
            return Err(AccountError::OwnerOnly);
        }
        if days.is_some_and(|d| !(1..=MAX_RETENTION_DAYS).contains(&d)) {
            return Err(AccountError::Invalid(format!("retention_days is from 1 to {MAX_RETENTION_DAYS}, or null")));
        }
        let detail = match days {
            Some(d) => Detail::Int(i64::from(d)),
            None => Detail::Text("keep".into()),
        };
        let (changed, job) =
            self.change(EventKind::RetentionChanged, p.actor(), client, Some(("retention_days", detail))).await?;
        self.vault.repository().set_retention_days(p.org_id, days, self.clock.now_unix_ms(), &[job]).await?;
        self.logged(changed).await?;
        self.organisation(p).await
    }

    /// Erases the caller's organisation (owners only; `confirm` must repeat its name): the event
    /// is recorded first, then its key-encryption key is destroyed in the key manager, which makes
    /// every document, value and disclosure of the organisation unreadable wherever a copy is,
    /// backups included; then its envelopes' keys and blobs and its rows (members, sessions, API
    /// keys, envelopes, webhooks, billing) are deleted. The audit log keeps its leaves (hashes),
    /// so it stays verifiable.
    pub async fn erase_organisation(
        &self,
        p: &Principal,
        confirm: &str,
        client: &ClientInfo,
    ) -> Result<(), AccountError> {
        if p.role != Role::Owner {
            return Err(AccountError::OwnerOnly);
        }
        let org = self.vault.repository().get_organisation(p.org_id).await?;
        if confirm.trim() != org.name {
            return Err(AccountError::Invalid("confirm must repeat the organisation's name".into()));
        }
        let envelopes = self.vault.repository().list_envelope_keys(Some(p.org_id)).await?.len();
        let e = NewEvent::new(EventKind::OrganisationErased, None, p.actor(), client.clone())
            .detail("org_id", Detail::Text(p.org_id.to_string()))
            .detail("envelopes", Detail::Int(envelopes as i64));
        self.audit.record(e).await.map_err(|err| AccountError::Internal(format!("audit: {err}")))?;
        self.vault.shred_organisation(p.org_id).await.map_err(|e| AccountError::Internal(format!("erasure: {e}")))?;
        Ok(())
    }

    /// Creates an API key for the caller's organisation; the secret is returned only here.
    pub async fn create_api_key(
        &self,
        p: &Principal,
        name: &str,
        client: &ClientInfo,
    ) -> Result<(ApiKeyView, SecretString), AccountError> {
        let name = check_name(name)?;
        let secret = format!("{API_KEY_PREFIX}{}", random_token()?);
        let record = ApiKeyRecord {
            id: ApiKeyId::new(),
            org_id: p.org_id,
            user_id: p.user_id,
            name,
            prefix: secret.chars().take(API_KEY_PREFIX.len() + 6).collect(),
            key_hash: sha256(secret.as_bytes()),
            created_unix_ms: self.clock.now_unix_ms(),
            last_used_unix_ms: None,
            revoked_unix_ms: None,
        };
        let detail = Some(("api_key_id", Detail::Text(record.id.to_string())));
        let (created, job) = self.change(EventKind::ApiKeyCreated, p.actor(), client, detail).await?;
        self.store.insert_api_key(&record, &[job]).await?;
        self.logged(created).await?;
        Ok((ApiKeyView::from(&record), SecretString::from(secret)))
    }

    pub async fn list_api_keys(&self, p: &Principal) -> Result<Vec<ApiKeyView>, AccountError> {
        Ok(self.store.api_keys(p.org_id).await?.iter().map(ApiKeyView::from).collect())
    }

    /// Revokes one of the organisation's keys (`NotFound` for anyone else's).
    pub async fn revoke_api_key(&self, p: &Principal, id: ApiKeyId, client: &ClientInfo) -> Result<(), AccountError> {
        let detail = Some(("api_key_id", Detail::Text(id.to_string())));
        let (revoked, job) = self.change(EventKind::ApiKeyRevoked, p.actor(), client, detail).await?;
        self.store.revoke_api_key(p.org_id, id, self.clock.now_unix_ms(), &[job]).await?;
        self.logged(revoked).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalise_email("  Ada@Example.ORG ").unwrap(), "ada@example.org");
        for bad in
            ["", "ada", "@example.org", "ada@", "ada@example", "a da@example.org", "ada@@example.org", "ada@.org"]
        {
            assert!(normalise_email(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn passwords_hash_with_argon2id_owasp_parameters_and_verify() {
        let h = hash_password(SecretString::from("correct horse battery")).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(SecretString::from("correct horse battery"), Some(h.clone())).await.unwrap());
        assert!(!verify_password(SecretString::from("wrong horse battery"), Some(h)).await.unwrap());
        assert!(!verify_password(SecretString::from("anything"), None).await.unwrap());
    }

    #[test]
    fn password_policy() {
        assert!(check_password_policy("short").is_err());
        assert!(check_password_policy(&"x".repeat(2000)).is_err());
        assert!(check_password_policy("twelve chars").is_ok());
    }
}
