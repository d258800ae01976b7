//! The envelope state machine (DESIGN §7 statuses). Every change of an envelope asks [`next`]
//! first; an action that does not apply to the current status is a conflict with a code the API
//! returns as is (409).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeStatus {
    Draft,
    Sent,
    Completed,
    Declined,
    Voided,
    Expired,
}

impl EnvelopeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Sent => "sent",
            Self::Completed => "completed",
            Self::Declined => "declined",
            Self::Voided => "voided",
            Self::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Draft, Self::Sent, Self::Completed, Self::Declined, Self::Voided, Self::Expired]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// Something a sender, a signer or the system does to an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Add or remove recipients and fields.
    Edit,
    Send,
    /// The last signer completed.
    Complete,
    Decline,
    Void,
    Expire,
    /// Crypto-shred.
    Delete,
}

/// Why an action does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Conflict {
    pub code: &'static str,
    pub message: &'static str,
}

const fn conflict(code: &'static str, message: &'static str) -> Conflict {
    Conflict { code, message }
}

/// The status after `action`, or why it is not allowed now. `Delete` leaves no status; it returns
/// the current one when allowed.
pub fn next(status: EnvelopeStatus, action: Action) -> Result<EnvelopeStatus, Conflict> {
    use Action as A;
    use EnvelopeStatus as S;
    match (status, action) {
        (S::Draft, A::Edit) => Ok(S::Draft),
        (_, A::Edit) => Err(conflict("envelope_not_draft", "only a draft envelope can be changed")),
        (S::Draft, A::Send) => Ok(S::Sent),
        (_, A::Send) => Err(conflict("envelope_not_draft", "only a draft envelope can be sent")),
        (S::Sent, A::Complete) => Ok(S::Completed),
        (S::Sent, A::Decline) => Ok(S::Declined),
        (S::Sent, A::Void) => Ok(S::Voided),
        (S::Sent, A::Expire) => Ok(S::Expired),
        (S::Draft, A::Void) => Err(conflict("envelope_not_sent", "a draft is deleted, not voided")),
        (_, A::Complete | A::Decline | A::Void | A::Expire) => {
            Err(conflict("envelope_finished", "the envelope is no longer in progress"))
        }
        (S::Sent, A::Delete) => Err(conflict("envelope_in_progress", "void the envelope before deleting it")),
        (s, A::Delete) => Ok(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action as A;
    use EnvelopeStatus as S;

    #[test]
    fn the_whole_table() {
        let all = [S::Draft, S::Sent, S::Completed, S::Declined, S::Voided, S::Expired];
        let actions = [A::Edit, A::Send, A::Complete, A::Decline, A::Void, A::Expire, A::Delete];
        let allowed = |s: S, a: A| -> Option<S> {
            Some(match (s, a) {
                (S::Draft, A::Edit) => S::Draft,
                (S::Draft, A::Send) => S::Sent,
                (S::Sent, A::Complete) => S::Completed,
                (S::Sent, A::Decline) => S::Declined,
                (S::Sent, A::Void) => S::Voided,
                (S::Sent, A::Expire) => S::Expired,
                (s, A::Delete) if s != S::Sent => s,
                _ => return None,
            })
        };
        for s in all {
            assert_eq!(S::parse(s.as_str()), Some(s));
            for a in actions {
                match (next(s, a), allowed(s, a)) {
                    (Ok(got), Some(want)) => assert_eq!(got, want, "{s:?} {a:?}"),
                    (Err(c), None) => assert!(!c.code.is_empty()),
                    (got, want) => panic!("{s:?} {a:?}: got {got:?}, want {want:?}"),
                }
            }
        }
    }
}
