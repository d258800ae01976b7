//! Lane shares: the jobs that wait on something the operator does not control (a customer's
//! webhook endpoint, the mail relay) or queue for the CPU (page previews of a bulk upload) may
//! hold only part of a node's job lanes: webhook deliveries and previews a quarter each, mail
//! half, and all of them together three quarters. Without the bound, one organisation's webhook
//! endpoint that accepts connections and never answers, or a stalled relay, would hold every
//! lane for its whole timeout (10 s per webhook try, 30 s per mail), and every other
//! organisation's envelopes would wait to be sent and finalised. A quarter of the lanes is
//! always left to the signing workflow itself (advancing, finalising, expiring, the audit log,
//! fanning out events).
//!
//! A lane takes a place in the shared part and in every share that has one free before it
//! claims a job, and claims only jobs of the kinds whose share had room; it keeps the places of
//! the job it got and gives the others back at once. So no share ever runs more jobs than its
//! places, on this node.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::jobs::JobKind;

/// The jobs that share a bounded part of the lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Share {
    /// Webhook deliveries: the endpoints belong to the organisations.
    Webhooks,
    /// Invitations, reminders and notifications: the relay may stall. Most jobs are mail.
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

    /// Its part of the lanes, in quarters.
    fn quarters(self) -> usize {
        match self {
            Share::Webhooks | Share::Previews => 1,
            Share::Mail => 2,
        }
    }

    /// The share a job of `kind` belongs to, if any.
    pub(crate) fn of(kind: JobKind) -> Option<Share> {
        Self::ALL.into_iter().find(|s| s.kinds().contains(&kind))
    }
}

/// The part of the lanes all shares together may hold, in quarters.
const SHARED_QUARTERS: usize = 3;

/// The places of each share on one node, and of all together.
pub(crate) struct LaneShares {
    together: Arc<Semaphore>,
    places: Vec<(Share, Arc<Semaphore>)>,
}

/// Places taken before a claim: one in the shared part and one in each share that had room.
pub(crate) struct Reserved {
    together: Option<OwnedSemaphorePermit>,
    places: Vec<(Share, OwnedSemaphorePermit)>,
    /// The kinds of the shares that had no room, for the claim to skip.
    pub(crate) excluded: Vec<&'static str>,
}

/// The places a running job holds.
pub(crate) struct Place {
    _share: OwnedSemaphorePermit,
    _together: OwnedSemaphorePermit,
}

impl Reserved {
    /// Keeps the places of `kind`'s share (if it has one) and gives back every other.
    pub(crate) fn keep_for(self, kind: Option<JobKind>) -> Option<Place> {
        let share = kind.and_then(Share::of)?;
        let place = self.places.into_iter().find(|(s, _)| *s == share).map(|(_, p)| p)?;
        Some(Place { _share: place, _together: self.together? })
    }
}

impl LaneShares {
    /// Shares for a node running `lanes` lanes (each share at least one place).
    pub(crate) fn for_lanes(lanes: usize) -> Self {
        let places = |quarters: usize| Arc::new(Semaphore::new((lanes * quarters / 4).max(1)));
        Self {
            together: places(SHARED_QUARTERS),
            places: Share::ALL.into_iter().map(|s| (s, places(s.quarters()))).collect(),
        }
    }

    /// Takes a place in the shared part and in every share that has one free.
    pub(crate) fn reserve(&self) -> Reserved {
        let mut out = Reserved {
            together: self.together.clone().try_acquire_owned().ok(),
            places: Vec::new(),
            excluded: Vec::new(),
        };
        for (share, places) in &self.places {
            match out.together.as_ref().and_then(|_| places.clone().try_acquire_owned().ok()) {
                Some(place) => out.places.push((*share, place)),
                None => out.excluded.extend(share.kinds().iter().map(|k| k.as_str())),
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
        let sizes = |s: &LaneShares| s.places.iter().map(|(_, p)| p.available_permits()).collect::<Vec<_>>();
        let shares = LaneShares::for_lanes(32);
        assert_eq!((shares.together.available_permits(), sizes(&shares)), (24, vec![8, 16, 8]));
        let shares = LaneShares::for_lanes(2);
        assert_eq!((shares.together.available_permits(), sizes(&shares)), (1, vec![1, 1, 1]));
    }

    #[test]
    fn a_full_share_is_skipped_and_a_place_kept_is_held_until_its_job_ends() {
        let shares = LaneShares::for_lanes(8); // webhooks 2, mail 4, previews 2, together 6
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
        let previews: Vec<_> = (0..2).map(|_| shares.reserve().keep_for(Some(JobKind::Previews))).collect();
        let mails: Vec<_> = (0..2).map(|_| shares.reserve().keep_for(Some(JobKind::Notify))).collect();
        assert!(previews.iter().chain(&mails).all(Option::is_some));
        // Mail has two places left, but the shares together hold six of eight lanes: the rest
        // is the workflow's.
        assert_eq!(shares.reserve().excluded, ["webhook", "invite", "notify", "previews"]);
        drop(mails);
        assert_eq!(shares.reserve().excluded, ["webhook", "previews"]);
    }
}
