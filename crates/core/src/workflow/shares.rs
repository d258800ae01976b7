//! Lane shares: the jobs that wait on something the operator does not control (a customer's
//! webhook endpoint, the mail relay) or queue for the CPU (page previews of a bulk upload) may
//! each hold at most a quarter of a node's job lanes. Without the bound, one organisation's
//! webhook endpoint that accepts connections and never answers, or a stalled relay, would hold
//! every lane for its whole timeout (10 s per webhook try, 30 s per mail), and every other
//! organisation's envelopes would wait to be sent, finalised and delivered. A quarter of the
//! lanes is always left to the signing workflow itself (advancing, finalising, expiring, the
//! audit log, fanning out events).
//!
//! A lane takes a place in every share that has one free before it claims a job, and claims
//! only jobs of the kinds whose share had room; it keeps the place of the job it got and gives
//! the others back at once. So no share ever runs more jobs than its places, on this node.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::jobs::JobKind;

/// The jobs that share a bounded part of the lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Share {
    /// Webhook deliveries: the endpoints belong to the organisations.
    Webhooks,
    /// Invitations, reminders and notifications: the relay may stall.
    Mail,
    /// Page previews: queue for the CPU gate after a bulk upload.
    Previews,
}

impl Share {
    const ALL: [Share; 3] = [Share::Webhooks, Share::Mail, Share::Previews];

    /// The kinds of job in this share.
    fn kinds(self) -> &'static [JobKind] {
        match self {
            Share::Webhooks => &[JobKind::Webhook],
            Share::Mail => &[JobKind::Invite, JobKind::Notify],
            Share::Previews => &[JobKind::Previews],
        }
    }

    /// The share a job of `kind` belongs to, if any.
    pub(crate) fn of(kind: JobKind) -> Option<Share> {
        Self::ALL.into_iter().find(|s| s.kinds().contains(&kind))
    }
}

/// The places of each share on one node.
pub(crate) struct LaneShares {
    places: Vec<(Share, Arc<Semaphore>)>,
}

/// Places taken before a claim: one in each share that had room.
pub(crate) struct Reserved {
    places: Vec<(Share, OwnedSemaphorePermit)>,
    /// The kinds of the shares that had no room, for the claim to skip.
    pub(crate) excluded: Vec<&'static str>,
}

impl Reserved {
    /// Keeps the place of `kind`'s share (if it has one) and gives back every other.
    pub(crate) fn keep_for(self, kind: Option<JobKind>) -> Option<OwnedSemaphorePermit> {
        let share = kind.and_then(Share::of)?;
        self.places.into_iter().find(|(s, _)| *s == share).map(|(_, p)| p)
    }
}

impl LaneShares {
    /// Shares for a node running `lanes` lanes: a quarter each, at least one place.
    pub(crate) fn for_lanes(lanes: usize) -> Self {
        Self::with_places((lanes / 4).max(1))
    }

    pub(crate) fn with_places(places: usize) -> Self {
        Self { places: Share::ALL.into_iter().map(|s| (s, Arc::new(Semaphore::new(places)))).collect() }
    }

    /// Takes a place in every share that has one free.
    pub(crate) fn reserve(&self) -> Reserved {
        let mut out = Reserved { places: Vec::new(), excluded: Vec::new() };
        for (share, places) in &self.places {
            match places.clone().try_acquire_owned() {
                Ok(place) => out.places.push((*share, place)),
                Err(_) => out.excluded.extend(share.kinds().iter().map(|k| k.as_str())),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_share_has_its_kinds_and_the_workflow_has_none() {
        assert_eq!(Share::of(JobKind::Webhook), Some(Share::Webhooks));
        assert_eq!(Share::of(JobKind::Invite), Some(Share::Mail));
        assert_eq!(Share::of(JobKind::Notify), Some(Share::Mail));
        assert_eq!(Share::of(JobKind::Previews), Some(Share::Previews));
        for kind in [JobKind::Advance, JobKind::Finalize, JobKind::Expire, JobKind::Audit, JobKind::Event] {
            assert_eq!(Share::of(kind), None, "{kind:?}");
        }
        assert_eq!(LaneShares::for_lanes(32).places.iter().map(|(_, p)| p.available_permits()).sum::<usize>(), 24);
        assert_eq!(LaneShares::for_lanes(2).places[0].1.available_permits(), 1);
    }

    #[test]
    fn a_full_share_is_skipped_and_a_place_kept_is_held_until_its_job_ends() {
        let shares = LaneShares::with_places(2);
        let first = shares.reserve();
        assert!(first.excluded.is_empty());
        let webhook = first.keep_for(Some(JobKind::Webhook));
        assert!(webhook.is_some());
        // The other places of the first reservation came back: only one webhook place is taken.
        let second = shares.reserve().keep_for(Some(JobKind::Webhook));
        assert!(second.is_some());
        let third = shares.reserve();
        assert_eq!(third.excluded, ["webhook"], "both webhook places are taken");
        assert!(third.keep_for(Some(JobKind::Finalize)).is_none(), "the workflow's own jobs take no place");
        drop(webhook);
        let fourth = shares.reserve();
        assert!(fourth.excluded.is_empty(), "a place comes back when its job ends");
        let again = fourth.keep_for(Some(JobKind::Webhook));
        assert!(again.is_some());
        let mails: Vec<_> = (0..2).map(|_| shares.reserve().keep_for(Some(JobKind::Notify))).collect();
        assert!(mails.iter().all(Option::is_some));
        assert_eq!(shares.reserve().excluded, ["webhook", "invite", "notify"]);
    }
}
