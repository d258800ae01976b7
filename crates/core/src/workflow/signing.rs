//! The signer ceremony behind a signing link: view, document, ESIGN consent, complete, decline.
//! A token is a 256-bit capability stored only as its SHA-256; it reaches exactly one recipient
//! of one envelope and expires with the envelope (embedded links after an hour).

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sigillum_audit::{Detail, EventKind};
use sigillum_crypto::field::FieldContext;

use super::sending::moved;
use super::{conflict, envelope_ctx, internal, recipient_ctx, Person, Workflow};
use crate::audit_log::{ClientInfo, NewEvent};
use crate::envelopes::{EnvelopeError, FieldView, FINAL, ORIGINAL};
use crate::lifecycle::EnvelopeStatus;
use crate::ports::{EnvelopeRecord, FieldRecord, FieldValueRecord, RecipientOutcome, RecipientRecord};
use crate::routing;

/// Version of the electronic-records disclosure a consent refers to.
pub const CONSENT_DISCLOSURE_VERSION: &str = "esign-1";
/// Largest signature PNG accepted.
const MAX_SIGNATURE_BYTES: usize = 512 * 1024;
/// Access-code failures allowed per recipient in the throttle window.
const ACCESS_CODE_ATTEMPTS: u32 = 5;

/// A signer's signature: drawn (`{kind: "drawn", png_base64}`) or typed (`{kind: "typed", text,
/// font?}`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureInput {
    pub kind: String,
    pub png_base64: Option<String>,
    pub text: Option<String>,
    /// For a typed signature, the script face it is drawn in: `dancing-script` (the default) or
    /// `kaushan-script`.
    pub font: Option<String>,
}

/// `POST /api/v1/signing/{token}/complete`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// Values of your `text` (string) and `checkbox` (boolean) fields, by field id.
    #[serde(default)]
    pub values: BTreeMap<String, serde_json::Value>,
    pub signature: Option<SignatureInput>,
    /// The signer's locale (BCP 47, e.g. `de-CH`, the browser's `navigator.language`): how the
    /// `date_signed` fields write the date. ISO 8601 when absent or unknown.
    #[serde(default)]
    pub locale: Option<String>,
}

/// A plausible BCP 47 tag: letters, digits and hyphens, language first, at most 35 characters.
pub(super) fn valid_locale(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang_ok =
        parts.next().is_some_and(|l| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()));
    lang_ok
        && tag.len() <= 35
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The calendar date of `unix_ms` (UTC) as people in `locale` write it.
pub(super) fn local_date(unix_ms: i64, locale: Option<&str>) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000)) else { return String::new() };
    let (y, m, d) = (t.year(), u8::from(t.month()), t.day());
    let tag = locale.unwrap_or("").to_ascii_lowercase();
    let mut parts = tag.split('-');
    let lang = parts.next().unwrap_or("");
    let region = parts.find(|p| p.len() == 2).unwrap_or("");
    match (lang, region) {
        ("en", "us") | ("en", "ph") => format!("{m:02}/{d:02}/{y:04}"),
        ("en", "ca") | ("fr", "ca") | ("sv", _) | ("lt", _) => format!("{y:04}-{m:02}-{d:02}"),
        ("en", _) | ("fr", _) | ("es", _) | ("it", _) | ("pt", _) | ("el", _) | ("ga", _) => {
            format!("{d:02}/{m:02}/{y:04}")
        }
        ("de", _)
        | ("rm", _)
        | ("pl", _)
        | ("cs", _)
        | ("sk", _)
        | ("fi", _)
        | ("nb", _)
        | ("no", _)
        | ("da", _)
        | ("ru", _)
        | ("uk", _)
        | ("tr", _)
        | ("ro", _)
        | ("hr", _)
        | ("sl", _)
        | ("et", _)
        | ("lv", _) => {
            format!("{d:02}.{m:02}.{y:04}")
        }
        ("nl", _) => format!("{d:02}-{m:02}-{y:04}"),
        ("hu", _) => format!("{y:04}. {m:02}. {d:02}."),
        ("ja", _) | ("zh", _) => format!("{y:04}/{m:02}/{d:02}"),
        ("ko", _) => format!("{y:04}. {m:02}. {d:02}."),
        _ => format!("{y:04}-{m:02}-{d:02}"),
    }
}

/// What a signer sees (DESIGN §7 wire shape).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignerView {
    pub envelope: serde_json::Value,
    pub recipient: serde_json::Value,
    pub fields: Vec<FieldView>,
    pub pages: usize,
}

/// Checked input of `complete`: each field's value (JSON text) and the signature (kind, bytes).
type Validated = (Vec<(uuid::Uuid, String)>, Option<ValidSignature>);

/// A checked signature: `drawn` (PNG bytes) or `typed` (UTF-8 text and its script face).
struct ValidSignature {
    kind: &'static str,
    bytes: Vec<u8>,
    font: Option<sigillum_pdf::ScriptFace>,
}

/// A token resolved to its recipient.
pub(super) struct Session {
    pub env: EnvelopeRecord,
    pub recipient: RecipientRecord,
    pub recipients: Vec<RecipientRecord>,
    pub person: Person,
}

impl Session {
    /// An audit event by this signer about the envelope's document.
    fn event(&self, kind: EventKind, client: &ClientInfo) -> NewEvent {
        NewEvent::new(kind, Some(self.env.id), Workflow::recipient_actor(&self.recipient, &self.person), client.clone())
            .document(self.env.document_sha256.clone())
    }
}

fn token_hash(token: &str) -> Option<[u8; 32]> {
    // 32 bytes in unpadded base64url are 43 characters; anything else is no token of ours.
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    (raw.len() == 32).then(|| crate::accounts::sha256(token.as_bytes()))
}

fn field_value_ctx(field: &str) -> FieldContext<'_> {
    FieldContext { table: "field_values", column: "value", row_id: field }
}

/// The UTC calendar date of `unix_ms`, `YYYY-MM-DD`.
pub(super) fn date(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default()
}

impl Workflow {
    /// Resolves a token. Unknown tokens are 404; expired links and envelopes that ended other
    /// than by completion are 410; an access code, when the sender set one, is checked (and
    /// throttled) on every call.
    pub(super) async fn session(&self, token: &str, access_code: Option<&str>) -> Result<Session, EnvelopeError> {
        let hash = token_hash(token).ok_or(EnvelopeError::NotFound)?;
        let t = self.inner.ports.signing.signing_token(&hash).await?.ok_or(EnvelopeError::NotFound)?;
        let env = self.inner.ports.signing.envelope_by_id(t.envelope_id).await?.ok_or(EnvelopeError::NotFound)?;
        match env.status {
            EnvelopeStatus::Sent | EnvelopeStatus::Completed => {}
            EnvelopeStatus::Draft => return Err(EnvelopeError::NotFound),
            EnvelopeStatus::Declined => return Err(EnvelopeError::Gone("envelope_declined")),
            EnvelopeStatus::Voided => return Err(EnvelopeError::Gone("envelope_voided")),
            EnvelopeStatus::Expired => return Err(EnvelopeError::Gone("envelope_expired")),
        }
        if t.expires_unix_ms <= self.now() {
            return Err(EnvelopeError::Gone("link_expired"));
        }
        let recipients = self.inner.ports.parties.recipients(env.id).await?;
        let recipient = recipients.iter().find(|r| r.id == t.recipient_id).cloned().ok_or(EnvelopeError::NotFound)?;
        if let Some(hash) = recipient.access_code_hash.clone() {
            let scope = format!("access:{}", recipient.id);
            let now = self.now();
            let window = crate::accounts::THROTTLE_WINDOW_MS;
            let store = &self.inner.ports.accounts;
            if store.login_failures(&scope, now, window).await? >= ACCESS_CODE_ATTEMPTS {
                return Err(EnvelopeError::Throttled((window / 1000) as u64));
            }
            let Some(code) = access_code else { return Err(EnvelopeError::AccessCode("access_code_required")) };
            let ok = crate::accounts::verify_password(code.to_owned().into(), Some(hash)).await.map_err(internal)?;
            if !ok {
                store.record_login_failure(&scope, now, window).await?;
                return Err(EnvelopeError::AccessCode("access_code_invalid"));
            }
        }
        let person = self.people(env.id, std::slice::from_ref(&recipient)).await?.remove(&recipient.id);
        let person = person.ok_or_else(|| internal("recipient"))?;
        Ok(Session { env, recipient, recipients, person })
    }

    /// `GET /api/v1/signing/{token}`: the envelope, this recipient and their fields. Every
    /// opening is an audit event; the first one marks the recipient `delivered`.
    pub async fn signer_view(
        &self,
        token: &str,
        access_code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<SignerView, EnvelopeError> {
        let mut s = self.session(token, access_code).await?;
        let opened = |s: &Session, first| s.event(EventKind::LinkOpened, client).detail("first", Detail::Bool(first));
        let mut first = false;
        if s.recipient.status == "sent" {
            // The first view moves the recipient to `delivered`: the change and its audit event
            // must not part, so the event's fallback job is stored with it (see `change_reports`).
            let now = self.now();
            let (logged, reports) = self.change_reports(opened(&s, true), None, now).await?;
            first = self.inner.ports.signing.mark_delivered(s.recipient.id, now, &reports).await?;
            if first {
                s.recipient.status = "delivered".into();
                self.record_change(logged).await?;
            }
        }
        if !first {
            self.inner.audit.record(opened(&s, false)).await?;
        }
        let id = s.env.id.to_string();
        let message = match &s.env.message_sealed {
            Some(m) => Some(self.open_text(s.env.id, &envelope_ctx(&id, "message"), m).await?),
            None => None,
        };
        let pages: Vec<sigillum_pdf::PageSize> = serde_json::from_str(&s.env.pages).map_err(internal)?;
        let fields: Vec<FieldView> = self
            .inner
            .ports
            .parties
            .fields(s.env.id)
            .await?
            .iter()
            .filter(|f| f.recipient_id == s.recipient.id)
            .map(FieldView::from)
            .collect();
        let can_act = s.env.status == EnvelopeStatus::Sent && routing::is_turn(&s.recipients, &s.recipient);
        Ok(SignerView {
            envelope: serde_json::json!({
                "id": s.env.id,
                "title": self.title(&s.env).await?,
                "status": s.env.status,
                "message": message,
                "sender": self.sender_name(&s.env).await,
                "document_sha256": s.env.document_sha256,
                "final_sha256": s.env.final_sha256,
                "expires_unix_ms": s.env.expires_unix_ms,
                "page_sizes": pages,
            }),
            recipient: serde_json::json!({
                "id": s.recipient.id,
                "name": s.person.name,
                "email": s.person.email,
                "role": s.recipient.role,
                "status": s.recipient.status,
                "consented": s.recipient.consented_unix_ms.is_some(),
                "can_act": can_act,
                "consent_disclosure_version": CONSENT_DISCLOSURE_VERSION,
            }),
            fields,
            pages: pages.len(),
        })
    }

    /// The document as the signer sees it: the original while signing, the final one after.
    pub async fn signer_document(
        &self,
        token: &str,
        access_code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(String, Vec<u8>), EnvelopeError> {
        let s = self.session(token, access_code).await?;
        let (version, sha) = match (s.env.status, &s.env.final_sha256) {
            (EnvelopeStatus::Completed, Some(sha)) => (FINAL, sha.clone()),
            _ => (ORIGINAL, s.env.document_sha256.clone()),
        };
        let bytes = self.inner.vault.read_blob(s.env.id, version, 1).await?;
        self.inner
            .audit
            .record(
                s.event(EventKind::DocumentViewed, client)
                    .document(sha)
                    .detail("version", Detail::Text(version.into())),
            )
            .await?;
        Ok((self.title(&s.env).await?, bytes))
    }

    fn must_act(s: &Session) -> Result<(), EnvelopeError> {
        if s.env.status != EnvelopeStatus::Sent {
            return Err(conflict("envelope_finished", "the envelope is no longer in progress"));
        }
        if matches!(s.recipient.status.as_str(), "signed" | "declined") {
            return Err(conflict("recipient_finished", "you have already signed or declined"));
        }
        if !routing::is_turn(&s.recipients, &s.recipient) {
            return Err(conflict("not_your_turn", "it is not your turn to sign yet"));
        }
        Ok(())
    }

    /// ESIGN/UETA consent to do business electronically; required before signing.
    pub async fn consent(
        &self,
        token: &str,
        access_code: Option<&str>,
        accepted: bool,
        client: &ClientInfo,
    ) -> Result<(), EnvelopeError> {
        let s = self.session(token, access_code).await?;
        Self::must_act(&s)?;
        if !accepted {
            return Err(EnvelopeError::Invalid("consent requires accepted: true; decline instead to refuse".into()));
        }
        // The consent and its audit event must not part: the event's fallback job is stored with
        // the consent (see `change_reports`).
        let now = self.now();
        let consent = s
            .event(EventKind::ConsentGiven, client)
            .detail("disclosure_version", Detail::Text(CONSENT_DISCLOSURE_VERSION.into()));
        let (logged, reports) = self.change_reports(consent, None, now).await?;
        self.inner.ports.signing.record_consent(s.recipient.id, now, &reports).await?;
        self.record_change(logged).await
    }

    /// Checks the submitted values against this recipient's fields; returns each field's value
    /// as stored (JSON text) and the signature.
    fn validate(s: &Session, fields: &[FieldRecord], req: &CompleteRequest) -> Result<Validated, EnvelopeError> {
        let invalid = |m: String| EnvelopeError::Invalid(m);
        let mine: HashMap<String, &FieldRecord> =
            fields.iter().filter(|f| f.recipient_id == s.recipient.id).map(|f| (f.id.to_string(), f)).collect();
        for key in req.values.keys() {
            let f = mine.get(key).ok_or_else(|| invalid(format!("field {key} is not one of your fields")))?;
            if !matches!(f.kind.as_str(), "text" | "checkbox") {
                return Err(invalid(format!("field {key} ({}) is filled in automatically", f.kind)));
            }
        }
        let signature = match &req.signature {
            None => None,
            Some(sig) => Some(match (sig.kind.as_str(), &sig.png_base64, &sig.text) {
                ("drawn", Some(_), None) if sig.font.is_some() => {
                    return Err(invalid("signature.font is for typed signatures".into()))
                }
                ("drawn", Some(b64), None) => {
                    let png = base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|_| invalid("signature.png_base64 is not base64".into()))?;
                    if png.len() > MAX_SIGNATURE_BYTES {
                        return Err(invalid(format!("the signature image is larger than {MAX_SIGNATURE_BYTES} bytes")));
                    }
                    sigillum_pdf::decode_png(&png).map_err(|e| invalid(e.to_string()))?;
                    ValidSignature { kind: "drawn", bytes: png, font: None }
                }
                ("typed", None, Some(text)) => {
                    let t = text.trim();
                    if t.is_empty() || t.chars().count() > 100 || t.chars().any(char::is_control) {
                        return Err(invalid("signature.text must be 1 to 100 printable characters".into()));
                    }
                    let font = match sig.font.as_deref() {
                        None => sigillum_pdf::ScriptFace::default(),
                        Some(id) => sigillum_pdf::ScriptFace::from_id(id).ok_or_else(|| {
                            let known: Vec<&str> = sigillum_pdf::ScriptFace::ALL.iter().map(|f| f.id()).collect();
                            invalid(format!("signature.font is one of {}", known.join(", ")))
                        })?,
                    };
                    ValidSignature { kind: "typed", bytes: t.as_bytes().to_vec(), font: Some(font) }
                }
                _ => {
                    return Err(invalid("signature is {kind: \"drawn\", png_base64} or {kind: \"typed\", text}".into()))
                }
            }),
        };
        let needs_signature =
            s.recipient.role == "signer" || mine.values().any(|f| matches!(f.kind.as_str(), "signature" | "initials"));
        if needs_signature && signature.is_none() {
            return Err(invalid("a signature is required".into()));
        }
        let mut values = Vec::new();
        for (id, f) in &mine {
            let given = req.values.get(id);
            let stored = match f.kind.as_str() {
                "text" => match given {
                    Some(serde_json::Value::String(t)) => {
                        if t.chars().count() > 1000 || t.chars().any(|c| c.is_control() && c != '\n') {
                            return Err(invalid(format!("field {id}: text of at most 1000 characters")));
                        }
                        if f.required && t.trim().is_empty() {
                            return Err(invalid(format!("field {id} is required")));
                        }
                        Some(serde_json::Value::String(t.clone()))
                    }
                    None | Some(serde_json::Value::Null) if f.required => {
                        return Err(invalid(format!("field {id} is required")))
                    }
                    None | Some(serde_json::Value::Null) => None,
                    Some(_) => return Err(invalid(format!("field {id} takes text"))),
                },
                "checkbox" => match given {
                    Some(serde_json::Value::Bool(b)) => {
                        if f.required && !b {
                            return Err(invalid(format!("field {id} must be checked")));
                        }
                        Some(serde_json::Value::Bool(*b))
                    }
                    None | Some(serde_json::Value::Null) if f.required => {
                        return Err(invalid(format!("field {id} must be checked")))
                    }
                    None | Some(serde_json::Value::Null) => None,
                    Some(_) => return Err(invalid(format!("field {id} takes true or false"))),
                },
                // Signature, initials, name, email and date are filled in from the signature and
                // the recipient when the document is finalised.
                _ => None,
            };
            if let Some(v) = stored {
                values.push((f.id, v.to_string()));
            }
        }
        Ok((values, signature))
    }

    /// Signs: values and signature are validated, sealed and stored with the job that moves the
    /// envelope on (next routing step, or the final document).
    pub async fn complete(
        &self,
        token: &str,
        access_code: Option<&str>,
        req: CompleteRequest,
        client: &ClientInfo,
    ) -> Result<(), EnvelopeError> {
        let s = self.session(token, access_code).await?;
        Self::must_act(&s)?;
        if s.recipient.consented_unix_ms.is_none() {
            return Err(conflict("consent_required", "consent to electronic records and signatures first"));
        }
        if req.locale.as_deref().is_some_and(|l| !valid_locale(l)) {
            return Err(EnvelopeError::Invalid("locale must be a BCP 47 language tag such as de-CH".into()));
        }
        let fields = self.inner.ports.parties.fields(s.env.id).await?;
        let (values, signature) = Self::validate(&s, &fields, &req)?;
        let now = self.now();
        let mut sealed = Vec::with_capacity(values.len());
        for (field, v) in &values {
            let fid = field.to_string();
            sealed.push(FieldValueRecord {
                field_id: *field,
                envelope_id: s.env.id,
                recipient_id: s.recipient.id,
                value_sealed: self.inner.vault.seal_field(s.env.id, &field_value_ctx(&fid), v.as_bytes()).await?,
                created_unix_ms: now,
            });
        }
        let rid = s.recipient.id.to_string();
        let (signature_kind, signature_sealed) = match &signature {
            Some(sig) => (
                Some(sig.kind.to_owned()),
                Some(self.inner.vault.seal_field(s.env.id, &recipient_ctx(&rid, "signature"), &sig.bytes).await?),
            ),
            None => (None, None),
        };
        let signature_font = signature.as_ref().and_then(|sig| sig.font).map(|f| f.id().to_owned());
        let mut event = s
            .event(EventKind::RecipientSigned, client)
            .detail("role", Detail::Text(s.recipient.role.clone()))
            .detail("values", Detail::Int(values.len() as i64));
        if let Some(kind) = signature_kind.clone() {
            event = event.detail("signature", Detail::Text(kind));
        }
        if let Some(font) = signature_font.clone() {
            event = event.detail("signature_font", Detail::Text(font));
        }
        if let Some(sig) = &signature {
            event = event.detail("signature_sha256", Detail::Text(hex::encode(crate::accounts::sha256(&sig.bytes))));
        }
        if let Some(locale) = &req.locale {
            event = event.detail("locale", Detail::Text(locale.clone()));
        }
        let data = serde_json::json!({ "envelope_id": s.env.id, "recipient_id": s.recipient.id });
        let (logged, reports) = self.change_reports(event, Some((s.env.org_id, "recipient.signed", data)), now).await?;
        let outcome = RecipientOutcome {
            envelope_id: s.env.id,
            recipient_id: s.recipient.id,
            status: "signed",
            now_unix_ms: now,
            values: sealed,
            signature_kind,
            signature_sealed,
            signature_font,
            decline_reason_sealed: None,
            jobs: reports,
            route_on: true,
        };
        self.inner.ports.signing.record_outcome(&outcome).await.map_err(|e| match e {
            crate::ports::RepoError::Conflict(_) => {
                conflict("recipient_finished", "you have already signed or declined")
            }
            e => e.into(),
        })?;
        self.inner.wake.notify_one();
        self.record_change(logged).await
    }

    /// Declines: the envelope ends as `declined`, and the sender and the other recipients who
    /// were invited are told.
    pub async fn decline(
        &self,
        token: &str,
        access_code: Option<&str>,
        reason: &str,
        client: &ClientInfo,
    ) -> Result<(), EnvelopeError> {
        let s = self.session(token, access_code).await?;
        Self::must_act(&s)?;
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 1000 {
            return Err(EnvelopeError::Invalid("reason must be 1 to 1000 characters".into()));
        }
        let id = s.env.id.to_string();
        let now = self.now();
        let me = s.recipient.id;
        let mut jobs =
            self.notify_jobs(s.env.id, &s.recipients, "declined", now, |r| r.id != me && r.status != "created");
        let data = serde_json::json!({ "envelope_id": s.env.id, "status": "declined", "recipient_id": me });
        let declined = s.event(EventKind::RecipientDeclined, client).note(reason);
        let (logged, reports) =
            self.change_reports(declined, Some((s.env.org_id, "envelope.declined", data)), now).await?;
        jobs.extend(reports);
        let outcome = RecipientOutcome {
            envelope_id: s.env.id,
            recipient_id: me,
            status: "declined",
            now_unix_ms: now,
            values: vec![],
            signature_kind: None,
            signature_sealed: None,
            signature_font: None,
            decline_reason_sealed: Some(self.seal_text(s.env.id, &envelope_ctx(&id, "reason"), reason).await?),
            jobs,
            route_on: false,
        };
        self.inner.ports.signing.record_outcome(&outcome).await.map_err(moved)?;
        self.inner.wake.notify_one();
        self.record_change(logged).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(1_764_028_800_000), "2025-11-25");
        assert_eq!(super::date(1_764_028_799_999), "2025-11-24");
    }

    #[test]
    fn signing_dates_follow_the_signers_locale() {
        let t = 1_764_028_800_000; // 2025-11-25
        for (locale, want) in [
            (Some("en-US"), "11/25/2025"),
            (Some("en-GB"), "25/11/2025"),
            (Some("de-CH"), "25.11.2025"),
            (Some("fr-CH"), "25/11/2025"),
            (Some("it"), "25/11/2025"),
            (Some("nl-NL"), "25-11-2025"),
            (Some("ja-JP"), "2025/11/25"),
            (Some("sv-SE"), "2025-11-25"),
            (Some("zz"), "2025-11-25"),
            (None, "2025-11-25"),
        ] {
            assert_eq!(super::local_date(t, locale), want, "{locale:?}");
        }
        for ok in ["de", "de-CH", "zh-Hant-TW", "es-419"] {
            assert!(super::valid_locale(ok), "{ok}");
        }
        for bad in ["", "d", "deutsch", "de_CH", "de-", "de-CH-<script>", &"a".repeat(40)] {
            assert!(!super::valid_locale(bad), "{bad}");
        }
    }
}
