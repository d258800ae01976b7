//! The final document: the signers' values drawn in, the certificate of completion appended with
//! the audit trail attached, then the PAdES seal. The certificate's facts (IP, device, consent and
//! signing times) come from the audit trail itself, so the pages and the attached evidence cannot
//! disagree.

use std::collections::HashMap;

use serde::Serialize;
use sigillum_pdf::certificate::{CertEvent, CertRecipient, CompletionCertificate};
use sigillum_pdf::MarkContent;

use super::{internal, Person, Workflow};
use crate::audit_log::{Trail, TrailEvent};
use crate::envelopes::{EnvelopeError, ORIGINAL};
use crate::ports::{EnvelopeRecord, RecipientRecord};

/// The attached audit trail (`sigillum-audit-trail.json`): what `sigillum verify` checks.
#[derive(Serialize)]
pub struct AttachedTrail<'a> {
    pub format: &'static str,
    pub envelope_id: String,
    /// SHA-256 of the document sent for signing; the `document.uploaded` event commits to it.
    pub original_sha256: &'a str,
    /// SHA-256 of the document with the values drawn in (before certificate pages and seal).
    pub signed_content_sha256: &'a str,
    pub log_origin: &'a str,
    /// The log's Ed25519 verifier key (also served at `/log/key`).
    pub log_key: &'a str,
    pub checkpoint: &'a str,
    pub tree_size: u64,
    pub events: &'a [TrailEvent],
}

pub const TRAIL_FORMAT: &str = "sigillum-audit-trail/v1";

fn disclosed<'a>(e: &'a TrailEvent, path: &str) -> Option<&'a str> {
    e.disclosed.as_ref()?.0.get(path).map(|d| d.value.as_str())
}

fn device_text(event: &serde_json::Value) -> Option<String> {
    let d = event.get("device")?;
    let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    Some(format!("{} on {} ({})", s("browser"), s("os"), s("kind")))
}

fn actor_text(e: &TrailEvent) -> String {
    match (disclosed(e, "actor.name"), disclosed(e, "actor.email")) {
        (Some(n), Some(m)) => format!("{n} <{m}>"),
        (Some(n), None) => n.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => e.event.pointer("/actor/kind").and_then(|k| k.as_str()).unwrap_or("unknown").to_owned(),
    }
}

fn str_at<'a>(v: &'a serde_json::Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(|x| x.as_str()).unwrap_or("")
}

/// Each signer's locale, as their `recipient.signed` event recorded it.
fn signer_locales(trail: &Trail) -> HashMap<uuid::Uuid, String> {
    trail
        .events
        .iter()
        .filter(|e| str_at(&e.event, "/kind") == "recipient.signed")
        .filter_map(|e| {
            let rid = uuid::Uuid::parse_str(str_at(&e.event, "/actor/id")).ok()?;
            let locale = e.event.pointer("/details/locale")?.as_str()?.to_owned();
            Some((rid, locale))
        })
        .collect()
}

/// Everything the certificate is made from.
pub(super) struct CertificateInputs<'a> {
    pub env: &'a EnvelopeRecord,
    pub title: &'a str,
    pub recipients: &'a [RecipientRecord],
    pub people: &'a HashMap<uuid::Uuid, Person>,
    pub signatures: &'a HashMap<uuid::Uuid, MarkContent>,
    pub trail: &'a Trail,
    pub log_origin: &'a str,
    pub signed_content_sha256: &'a str,
    pub completed_at: String,
    pub jurisdiction: &'a str,
}

/// The certificate's content from the envelope, its recipients and its trail.
pub(super) fn certificate(i: CertificateInputs<'_>) -> CompletionCertificate {
    let CertificateInputs {
        env,
        title,
        recipients,
        people,
        signatures,
        trail,
        log_origin,
        signed_content_sha256,
        completed_at,
        jurisdiction,
    } = i;
    let events: Vec<CertEvent> = trail
        .events
        .iter()
        .map(|e| CertEvent {
            time: str_at(&e.event, "/time").to_owned(),
            kind: str_at(&e.event, "/kind").to_owned(),
            actor: actor_text(e),
            ip: disclosed(e, "ip").map(str::to_owned),
            device: device_text(&e.event),
        })
        .collect();
    let last_of = |rid: &str, kind: &str| {
        trail.events.iter().rev().find(|e| str_at(&e.event, "/kind") == kind && str_at(&e.event, "/actor/id") == rid)
    };
    let mut recipients_out = Vec::new();
    for r in recipients {
        let rid = r.id.to_string();
        let person = people.get(&r.id);
        let consent = last_of(&rid, "consent.given");
        let finished = last_of(&rid, "recipient.signed").or_else(|| last_of(&rid, "recipient.declined"));
        let seen = finished.or(consent);
        recipients_out.push(CertRecipient {
            name: person.map(|p| p.name.clone()).unwrap_or_default(),
            email: person.map(|p| p.email.clone()).unwrap_or_default(),
            role: r.role.clone(),
            status: r.status.clone(),
            ip: seen.and_then(|e| disclosed(e, "ip")).map(str::to_owned),
            device: seen.and_then(|e| device_text(&e.event)),
            consented_at: consent.map(|e| str_at(&e.event, "/time").to_owned()),
            finished_at: finished.map(|e| str_at(&e.event, "/time").to_owned()),
            signature: signatures.get(&r.id).cloned(),
        });
    }
    let sender = trail
        .events
        .iter()
        .find(|e| str_at(&e.event, "/kind") == "envelope.created")
        .map(actor_text)
        .unwrap_or_default();
    CompletionCertificate {
        envelope_id: env.id.to_string(),
        title: title.to_owned(),
        sender,
        original_sha256: env.document_sha256.clone(),
        signed_content_sha256: signed_content_sha256.to_owned(),
        completed_at,
        log_origin: log_origin.to_owned(),
        log_tree_size: trail.tree_size,
        jurisdiction: jurisdiction.to_owned(),
        recipients: recipients_out,
        events,
    }
}

impl Workflow {
    /// Builds the final document of a completed envelope: flattened values, certificate of
    /// completion with the attached trail, PAdES B-LTA seal.
    pub(super) async fn final_document(
        &self,
        env: &EnvelopeRecord,
        recipients: &[RecipientRecord],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let id = env.id;
        let trail = self.inner.audit.envelope_trail(id, 0).await?;
        let locales = signer_locales(&trail);
        let (marks, signatures) = self.marks(env, recipients, &locales).await?;
        let original = self.inner.vault.read_blob(id, ORIGINAL, 1).await?;
        // One parse of the original for the values and the certificate pages (see
        // sigillum_pdf::final_document).
        let flattened = self
            .inner
            .cpu
            .run(move || sigillum_pdf::final_document::FlattenedDocument::new(&original, &marks))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let signed_content_sha256 = hex::encode(flattened.signed_content_sha256());
        let people = self.people(id, recipients).await?;
        let title = self.title(env).await?;
        let now = self.now();
        let cert = certificate(CertificateInputs {
            env,
            title: &title,
            recipients,
            people: &people,
            signatures: &signatures,
            trail: &trail,
            log_origin: self.inner.audit.origin(),
            signed_content_sha256: &signed_content_sha256,
            completed_at: sigillum_audit::event::format_time(now),
            jurisdiction: &self.inner.config.jurisdiction,
        });
        let attached = AttachedTrail {
            format: TRAIL_FORMAT,
            envelope_id: id.to_string(),
            original_sha256: &env.document_sha256,
            signed_content_sha256: &signed_content_sha256,
            log_origin: self.inner.audit.origin(),
            log_key: self.inner.audit.verifier_key(),
            checkpoint: &trail.checkpoint,
            tree_size: trail.tree_size,
            events: &trail.events,
        };
        let json = serde_json::to_vec_pretty(&attached).map_err(internal)?;
        let with_certificate = self
            .inner
            .cpu
            .run(move || flattened.with_certificate(&cert, &json))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let seal = crate::seal::SealRequest {
            reason: format!("Completed and sealed by Sigillum (envelope {id})"),
            signing_time_unix: now / 1000,
        };
        self.inner.ports.sealer.seal(with_certificate, &seal).await.map_err(internal)
    }
}
