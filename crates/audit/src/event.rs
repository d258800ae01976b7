//! The audit event: what goes into a leaf, and how personal data stays out of it.
//!
//! A leaf is the RFC 8785 (JCS) canonical JSON of an [`Event`]. Personal values (actor name and
//! email, IP address, user agent, free-text notes such as a decline reason) enter the event only as
//! salted commitments `SHA-256(salt ‖ value)`; the values and their salts travel beside it as a
//! [`Disclosure`], stored encrypted under the envelope key. Shredding the envelope destroys the
//! salts, so the tree stays verifiable while nobody can link a leaf to a person any more, not even by
//! guessing candidate emails. Everything else in the event is non-personal by construction.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::device::Device;
use crate::merkle::{leaf_hash, Hash};

/// Version of the event encoding; bumped on any incompatible change.
pub const EVENT_FORMAT: u32 = 1;

/// Longest personal value kept (a user agent is cut, nothing else should come near it).
pub const MAX_PERSONAL_LEN: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event is not canonical JSON of the expected shape")]
    Malformed,
    #[error("disclosed value for {0} does not match its commitment")]
    DisclosureMismatch(String),
    #[error("disclosure names {0}, which the event does not commit to")]
    UnknownDisclosure(String),
}

/// What happened. The list of DESIGN §5 is the minimum; kinds are strings on the wire so that a
/// verifier built today reads events of kinds added later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    EnvelopeCreated,
    DocumentUploaded,
    RecipientAdded,
    RecipientRemoved,
    FieldAdded,
    FieldRemoved,
    EnvelopeSent,
    EmailSent,
    LinkOpened,
    DocumentViewed,
    ConsentGiven,
    RecipientSigned,
    RecipientDeclined,
    EnvelopeCompleted,
    EnvelopeVoided,
    EnvelopeExpired,
    EnvelopeDeleted,
    ReminderSent,
    DocumentDownloaded,
    WafBlocked,
    AuthLogin,
    AuthLoginFailed,
    AuthLogout,
    KeyUsed,
    KeyRotated,
    AccountCreated,
    ApiKeyCreated,
    ApiKeyRevoked,
    SigningLinkCreated,
    WebhookCreated,
    WebhookDisabled,
    TotpEnabled,
    RecoveryCodeUsed,
    MemberAdded,
    MemberRemoved,
    /// A sender left for a payment provider's hosted checkout.
    BillingCheckoutStarted,
    /// An organisation's subscription changed (plan, status or period), from a verified webhook.
    BillingSubscriptionChanged,
    /// A send refused because the organisation's plan allows no more envelopes this period.
    BillingQuotaExceeded,
    OrganisationErased,
    RetentionChanged,
    OrganisationExported,
}

impl EventKind {
    pub const ALL: [EventKind; 41] = [
        Self::EnvelopeCreated,
        Self::DocumentUploaded,
        Self::RecipientAdded,
        Self::RecipientRemoved,
        Self::FieldAdded,
        Self::FieldRemoved,
        Self::EnvelopeSent,
        Self::EmailSent,
        Self::LinkOpened,
        Self::DocumentViewed,
        Self::ConsentGiven,
        Self::RecipientSigned,
        Self::RecipientDeclined,
        Self::EnvelopeCompleted,
        Self::EnvelopeVoided,
        Self::EnvelopeExpired,
        Self::EnvelopeDeleted,
        Self::ReminderSent,
        Self::DocumentDownloaded,
        Self::WafBlocked,
        Self::AuthLogin,
        Self::AuthLoginFailed,
        Self::AuthLogout,
        Self::KeyUsed,
        Self::KeyRotated,
        Self::AccountCreated,
        Self::ApiKeyCreated,
        Self::ApiKeyRevoked,
        Self::SigningLinkCreated,
        Self::WebhookCreated,
        Self::WebhookDisabled,
        Self::TotpEnabled,
        Self::RecoveryCodeUsed,
        Self::MemberAdded,
        Self::MemberRemoved,
        Self::BillingCheckoutStarted,
        Self::BillingSubscriptionChanged,
        Self::BillingQuotaExceeded,
        Self::OrganisationErased,
        Self::RetentionChanged,
        Self::OrganisationExported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EnvelopeCreated => "envelope.created",
            Self::DocumentUploaded => "document.uploaded",
            Self::RecipientAdded => "recipient.added",
            Self::RecipientRemoved => "recipient.removed",
            Self::FieldAdded => "field.added",
            Self::FieldRemoved => "field.removed",
            Self::EnvelopeSent => "envelope.sent",
            Self::EmailSent => "email.sent",
            Self::LinkOpened => "link.opened",
            Self::DocumentViewed => "document.viewed",
            Self::ConsentGiven => "consent.given",
            Self::RecipientSigned => "recipient.signed",
            Self::RecipientDeclined => "recipient.declined",
            Self::EnvelopeCompleted => "envelope.completed",
            Self::EnvelopeVoided => "envelope.voided",
            Self::EnvelopeExpired => "envelope.expired",
            Self::EnvelopeDeleted => "envelope.deleted",
            Self::ReminderSent => "reminder.sent",
            Self::DocumentDownloaded => "document.downloaded",
            Self::WafBlocked => "waf.blocked",
            Self::AuthLogin => "auth.login",
            Self::AuthLoginFailed => "auth.login_failed",
            Self::AuthLogout => "auth.logout",
            Self::KeyUsed => "key.used",
            Self::KeyRotated => "key.rotated",
            Self::AccountCreated => "account.created",
            Self::ApiKeyCreated => "api_key.created",
            Self::ApiKeyRevoked => "api_key.revoked",
            Self::SigningLinkCreated => "signing_link.created",
            Self::WebhookCreated => "webhook.created",
            Self::WebhookDisabled => "webhook.disabled",
            Self::TotpEnabled => "auth.totp_enabled",
            Self::RecoveryCodeUsed => "auth.recovery_code_used",
            Self::MemberAdded => "member.added",
            Self::MemberRemoved => "member.removed",
            Self::BillingCheckoutStarted => "billing.checkout_started",
            Self::BillingSubscriptionChanged => "billing.subscription_changed",
            Self::BillingQuotaExceeded => "billing.quota_exceeded",
            Self::OrganisationErased => "organisation.erased",
            Self::RetentionChanged => "organisation.retention_changed",
            Self::OrganisationExported => "organisation.exported",
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A signed-in account (session cookie).
    User,
    /// An API key.
    ApiKey,
    /// A recipient through their signing link.
    Recipient,
    /// Sigillum itself (jobs, expiry, sealing).
    System,
    /// An unauthenticated client (e.g. a blocked request).
    Anonymous,
}

/// A salted commitment `SHA-256(salt ‖ value)`, base64 on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commitment(pub Hash);

impl Commitment {
    pub fn new(salt: &[u8; 32], value: &str) -> Self {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(value.as_bytes());
        Self(h.finalize().into())
    }
}

impl Serialize for Commitment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Commitment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bytes = B64.decode(s).map_err(serde::de::Error::custom)?;
        Ok(Self(bytes.try_into().map_err(|_| serde::de::Error::custom("commitment is not 32 bytes"))?))
    }
}

/// The actor as it appears in a leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    // Fields in alphabetical order: serde writes them in this order, which is the RFC 8785
    // order (see `Event::canonical_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Commitment>,
    /// Non-personal identifier (account, API key or recipient id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub kind: ActorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Commitment>,
}

/// A non-personal detail value. No floating point, and integers within ±2^53, so the canonical
/// encoding is unambiguous and round-trips.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Detail {
    Bool(bool),
    Int(i64),
    Text(String),
}

/// One audit event: exactly what the leaf commits to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    // Fields in alphabetical order (see `canonical_bytes`).
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, Detail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// Hex SHA-256 of the envelope's document at the time of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Commitment>,
    pub kind: String,
    /// Commitment to a personal free-text note (decline or void reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Commitment>,
    /// UTC, millisecond precision, RFC 3339 (`2026-11-25T15:40:07.123Z`).
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<Commitment>,
    pub v: u32,
}

impl Event {
    /// RFC 8785 canonical bytes: what the leaf hash covers.
    ///
    /// For the events Sigillum writes, plain compact serde_json output already *is* the RFC 8785
    /// form: struct fields are declared in sorted order, detail keys are ASCII (so byte order is
    /// UTF-16 order), integers are within ±2^53 (so they print as JCS numbers do), and serde_json
    /// escapes strings exactly as JCS does. That fast path is taken when those conditions hold
    /// (a test compares it with the general canonicaliser); anything else goes through
    /// `serde_json_canonicalizer`.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, EventError> {
        const SAFE: i64 = 1 << 53;
        // JSON numbers are doubles to RFC 8785: larger integers would not survive a round trip.
        if self.details.values().any(|v| matches!(v, Detail::Int(i) if !(-SAFE..=SAFE).contains(i))) {
            return Err(EventError::Malformed);
        }
        if self.details.keys().all(|k| k.is_ascii()) {
            serde_json::to_vec(self).map_err(|_| EventError::Malformed)
        } else {
            self.general_canonical_bytes()
        }
    }

    /// RFC 8785 through the general canonicaliser (sorting every object, formatting numbers as
    /// IEEE doubles).
    pub fn general_canonical_bytes(&self) -> Result<Vec<u8>, EventError> {
        serde_json_canonicalizer::to_vec(self).map_err(|_| EventError::Malformed)
    }

    /// Parses stored or received leaf bytes, insisting they are canonical (so the bytes and the
    /// parsed event can never disagree about what was hashed).
    pub fn from_canonical(bytes: &[u8]) -> Result<Self, EventError> {
        let event: Event = serde_json::from_slice(bytes).map_err(|_| EventError::Malformed)?;
        if event.canonical_bytes()? != bytes {
            return Err(EventError::Malformed);
        }
        Ok(event)
    }

    fn commitment_at(&self, path: &str) -> Option<&Commitment> {
        match path {
            "actor.name" => self.actor.name.as_ref(),
            "actor.email" => self.actor.email.as_ref(),
            "ip" => self.ip.as_ref(),
            "user_agent" => self.user_agent.as_ref(),
            "note" => self.note.as_ref(),
            _ => None,
        }
    }

    /// Checks every disclosed value against the commitment it claims to open.
    pub fn check_disclosure(&self, disclosure: &Disclosure) -> Result<(), EventError> {
        for (path, item) in &disclosure.0 {
            let committed = self.commitment_at(path).ok_or_else(|| EventError::UnknownDisclosure(path.clone()))?;
            let salt: [u8; 32] = B64
                .decode(&item.salt)
                .ok()
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| EventError::DisclosureMismatch(path.clone()))?;
            if Commitment::new(&salt, &item.value) != *committed {
                return Err(EventError::DisclosureMismatch(path.clone()));
            }
        }
        Ok(())
    }
}

/// One opened commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disclosed {
    pub value: String,
    /// Standard base64 of the 32-byte salt.
    pub salt: String,
}

/// The personal values of one event with their salts, keyed by the commitment's path in the event
/// (`actor.name`, `actor.email`, `ip`, `user_agent`, `note`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disclosure(pub BTreeMap<String, Disclosed>);

/// Personal values of an event before commitment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Personal {
    pub actor_name: Option<String>,
    pub actor_email: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub note: Option<String>,
}

/// Everything known about an event before it is committed and sequenced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    pub kind: EventKind,
    pub time_unix_ms: i64,
    pub envelope_id: Option<String>,
    pub actor_kind: ActorKind,
    pub actor_id: Option<String>,
    pub personal: Personal,
    pub device: Option<Device>,
    pub document_sha256: Option<String>,
    pub details: BTreeMap<String, Detail>,
}

/// A committed event, ready to append: the leaf's canonical bytes and hash, the parsed event and
/// the disclosure to store encrypted beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedEvent {
    pub event: Event,
    pub canonical: Vec<u8>,
    pub leaf_hash: Hash,
    pub disclosure: Disclosure,
}

fn truncate(value: &str) -> &str {
    if value.len() <= MAX_PERSONAL_LEN {
        return value;
    }
    let mut end = MAX_PERSONAL_LEN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

impl EventDraft {
    /// Commits the personal values with fresh salts from `salt` (one call per value) and encodes
    /// the event canonically.
    pub fn commit(self, mut salt: impl FnMut() -> [u8; 32]) -> Result<CommittedEvent, EventError> {
        let mut disclosure = Disclosure::default();
        let mut commit = |path: &str, value: Option<String>| {
            value.map(|v| {
                let v = truncate(&v).to_owned();
                let s = salt();
                let c = Commitment::new(&s, &v);
                disclosure.0.insert(path.to_owned(), Disclosed { value: v, salt: B64.encode(s) });
                c
            })
        };
        let p = self.personal;
        let actor = Actor {
            kind: self.actor_kind,
            id: self.actor_id,
            name: commit("actor.name", p.actor_name),
            email: commit("actor.email", p.actor_email),
        };
        let event = Event {
            v: EVENT_FORMAT,
            time: format_time(self.time_unix_ms),
            kind: self.kind.as_str().to_owned(),
            envelope_id: self.envelope_id,
            actor,
            ip: commit("ip", p.ip),
            user_agent: commit("user_agent", p.user_agent),
            device: self.device,
            document_sha256: self.document_sha256,
            details: self.details,
            note: commit("note", p.note),
        };
        let canonical = event.canonical_bytes()?;
        let leaf_hash = leaf_hash(&canonical);
        Ok(CommittedEvent { event, canonical, leaf_hash, disclosure })
    }
}

/// RFC 3339 UTC with milliseconds. Times outside the calendar range clamp to the epoch.
pub fn format_time(unix_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&fmt).unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> EventDraft {
        EventDraft {
            kind: EventKind::RecipientSigned,
            time_unix_ms: 1_795_621_207_123,
            envelope_id: Some("0195f0a0-0000-7000-8000-000000000001".into()),
            actor_kind: ActorKind::Recipient,
            actor_id: Some("r-1".into()),
            personal: Personal {
                actor_name: Some("Zoë Ångström".into()),
                actor_email: Some("zoe@example.org".into()),
                ip: Some("203.0.113.9".into()),
                user_agent: Some("Mozilla/5.0".into()),
                note: None,
            },
            device: None,
            document_sha256: Some("ab".repeat(32)),
            details: BTreeMap::from([
                ("routing_order".into(), Detail::Int(2)),
                ("role".into(), Detail::Text("signer".into())),
            ]),
        }
    }

    fn counter_salts() -> impl FnMut() -> [u8; 32] {
        let mut n = 0u8;
        move || {
            n += 1;
            [n; 32]
        }
    }

    #[test]
    fn canonical_bytes_are_sorted_compact_and_carry_no_personal_value() {
        let c = draft().commit(counter_salts()).unwrap();
        let text = String::from_utf8(c.canonical.clone()).unwrap();
        assert!(text.starts_with(r#"{"actor":{"email":""#), "{text}");
        assert!(text.contains(r#""time":"2026-11-25T15:40:07.123Z""#), "{text}");
        for personal in ["Zoë", "zoe@example.org", "203.0.113.9", "Mozilla"] {
            assert!(!text.contains(personal), "{personal} leaked into the leaf: {text}");
        }
        assert_eq!(Event::from_canonical(&c.canonical).unwrap(), c.event);
        assert_eq!(c.leaf_hash, leaf_hash(&c.canonical));
    }

    #[test]
    fn non_canonical_or_unknown_shapes_are_rejected() {
        let c = draft().commit(counter_salts()).unwrap();
        let mut spaced = c.canonical.clone();
        spaced.insert(1, b' ');
        assert_eq!(Event::from_canonical(&spaced), Err(EventError::Malformed));
        let extra = String::from_utf8(c.canonical).unwrap().replacen("{", r#"{"aaa":1,"#, 1);
        assert_eq!(Event::from_canonical(extra.as_bytes()), Err(EventError::Malformed));
    }

    #[test]
    fn disclosure_opens_exactly_the_commitments() {
        let c = draft().commit(counter_salts()).unwrap();
        assert_eq!(c.disclosure.0.len(), 4);
        c.event.check_disclosure(&c.disclosure).unwrap();

        let mut lie = c.disclosure.clone();
        lie.0.get_mut("actor.email").unwrap().value = "mallory@example.org".into();
        assert_eq!(c.event.check_disclosure(&lie), Err(EventError::DisclosureMismatch("actor.email".into())));

        let mut extra = c.disclosure.clone();
        extra.0.insert("note".into(), Disclosed { value: "x".into(), salt: B64.encode([0u8; 32]) });
        assert_eq!(c.event.check_disclosure(&extra), Err(EventError::UnknownDisclosure("note".into())));
    }

    #[test]
    fn every_kind_has_a_distinct_dotted_name() {
        let names: std::collections::HashSet<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), EventKind::ALL.len());
        assert!(names.iter().all(|n| n.contains('.')));
    }

    #[test]
    fn long_personal_values_are_cut_on_a_char_boundary() {
        let mut d = draft();
        d.personal.user_agent = Some("é".repeat(2000));
        let c = d.commit(counter_salts()).unwrap();
        let ua = &c.disclosure.0["user_agent"].value;
        assert!(ua.len() <= MAX_PERSONAL_LEN && ua.chars().all(|ch| ch == 'é'));
        c.event.check_disclosure(&c.disclosure).unwrap();
    }
}
