//! Routing order (pure): recipients with the same `routing_order` act in parallel; the next order
//! starts once every signer and approver of the earlier ones has signed. A cc recipient never
//! blocks the envelope; cc recipients receive the final document.

use crate::ports::RecipientRecord;

/// What happens next to an envelope in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// These recipients (still `created`) are due now: invite them.
    Activate(Vec<uuid::Uuid>),
    /// The current step's recipients are still at work.
    Waiting,
    /// Every signer and approver has signed: the envelope can complete.
    AllSigned,
}

/// Whether the recipient must act (sign or approve).
pub fn acts(r: &RecipientRecord) -> bool {
    r.role != "cc"
}

/// The next step for `recipients` of an envelope that is `sent`.
pub fn next_step(recipients: &[RecipientRecord]) -> Step {
    let current = recipients.iter().filter(|r| acts(r) && r.status != "signed").map(|r| r.routing_order).min();
    let Some(order) = current else { return Step::AllSigned };
    let due: Vec<uuid::Uuid> = recipients
        .iter()
        .filter(|r| acts(r) && r.routing_order == order && r.status == "created")
        .map(|r| r.id)
        .collect();
    if due.is_empty() {
        Step::Waiting
    } else {
        Step::Activate(due)
    }
}

/// Whether `r` may act now: its order is the current one and it has not finished.
pub fn is_turn(recipients: &[RecipientRecord], r: &RecipientRecord) -> bool {
    acts(r)
        && matches!(r.status.as_str(), "sent" | "delivered")
        && recipients.iter().filter(|o| acts(o) && o.status != "signed").map(|o| o.routing_order).min()
            == Some(r.routing_order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EnvelopeId;

    fn r(order: u32, role: &str, status: &str) -> RecipientRecord {
        RecipientRecord {
            id: uuid::Uuid::new_v4(),
            envelope_id: EnvelopeId::new(),
            name_sealed: vec![],
            email_sealed: vec![],
            role: role.into(),
            routing_order: order,
            status: status.into(),
            created_unix_ms: 0,
            access_code_hash: None,
            consented_unix_ms: None,
            finished_unix_ms: None,
            signature_kind: None,
            signature_sealed: None,
            signature_font: None,
            language: "en".into(),
        }
    }

    #[test]
    fn same_order_in_parallel_next_order_after() {
        let mut rs = vec![
            r(1, "signer", "created"),
            r(1, "approver", "created"),
            r(2, "signer", "created"),
            r(1, "cc", "created"),
        ];
        assert_eq!(next_step(&rs), Step::Activate(vec![rs[0].id, rs[1].id]));
        rs[0].status = "sent".into();
        rs[1].status = "delivered".into();
        assert_eq!(next_step(&rs), Step::Waiting);
        assert!(is_turn(&rs, &rs[0]) && !is_turn(&rs, &rs[2]) && !is_turn(&rs, &rs[3]));
        rs[0].status = "signed".into();
        assert_eq!(next_step(&rs), Step::Waiting, "the approver of order 1 still works");
        rs[1].status = "signed".into();
        assert_eq!(next_step(&rs), Step::Activate(vec![rs[2].id]));
        rs[2].status = "signed".into();
        assert_eq!(next_step(&rs), Step::AllSigned, "cc never blocks");
    }

    #[test]
    fn gaps_in_orders_are_skipped() {
        let rs = vec![r(5, "signer", "created"), r(9, "signer", "created")];
        assert_eq!(next_step(&rs), Step::Activate(vec![rs[0].id]));
    }
}
