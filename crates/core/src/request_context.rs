//! The id of the request a piece of work belongs to. The HTTP edge runs each request inside
//! [`scope`] with its `X-Request-Id`; every job the request enqueues records that id, and the node
//! that runs the job (any node of the cluster, possibly another than the one that took the
//! request) runs it inside the same scope and logs it under the same id. Jobs enqueued by a job
//! inherit the id, so one request's whole chain (send → invitations → reminders → sealing →
//! webhooks) can be followed across nodes in the logs.

use std::future::Future;

/// Longest id carried (a load balancer's ids are far shorter; a longer one is cut).
const MAX_ID_LEN: usize = 128;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `work` as part of the request `id`.
pub async fn scope<F: Future>(id: String, work: F) -> F::Output {
    let mut id = id;
    if id.len() > MAX_ID_LEN {
        let mut end = MAX_ID_LEN;
        while !id.is_char_boundary(end) {
            end -= 1;
        }
        id.truncate(end);
    }
    REQUEST_ID.scope(id, work).await
}

/// The id of the request the running work belongs to, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_id_is_seen_inside_the_scope_only() {
        assert_eq!(current(), None);
        let seen = scope("req-1".into(), async { current() }).await;
        assert_eq!(seen.as_deref(), Some("req-1"));
        assert_eq!(current(), None);
        let long = scope("é".repeat(100), async { current() }).await.unwrap();
        assert!(long.len() <= MAX_ID_LEN && long.chars().all(|c| c == 'é'));
    }
}
