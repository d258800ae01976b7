//! The CPU-heavy parts of background jobs (rendering page previews, flattening and certifying
//! the final document) run on the blocking pool behind one gate per node, with a permit per core.
//!
//! Why: most of a job's time is spent waiting on the database, the object store, the mail relay
//! or a webhook endpoint, so a node runs many jobs at once (`SIGILLUM_JOB_LANES`) to keep them
//! from queueing behind each other. Letting every one of those lanes render at the same time
//! would only make each render slower and multiply the memory held by documents being worked
//! on; the gate keeps the heavy part at one per core while the other lanes keep mail and
//! webhooks moving.

use tokio::sync::Semaphore;

pub(crate) struct CpuGate {
    permits: Semaphore,
}

impl CpuGate {
    /// One permit per core this process may use (at least one).
    pub(crate) fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map(usize::from).unwrap_or(1))
    }

    pub(crate) fn new(permits: usize) -> Self {
        Self { permits: Semaphore::new(permits.max(1)) }
    }

    /// Runs `work` on the blocking pool once a permit is free; `Err` if it panicked (or the gate
    /// was closed, which never happens: it lives as long as the workflow).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CpuGateError> {
        let _permit = self.permits.acquire().await.map_err(|_| CpuGateError("the CPU gate is closed".into()))?;
        tokio::task::spawn_blocking(work).await.map_err(|e| CpuGateError(e.to_string()))
    }
}

/// CPU-bound work that did not finish (it panicked).
#[derive(Debug, thiserror::Error)]
#[error("CPU-bound task: {0}")]
pub(crate) struct CpuGateError(String);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_work_runs_at_once_than_the_gate_has_permits() {
        let gate = Arc::new(CpuGate::new(2));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    gate.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                    .await
                })
            })
            .collect();
        let mut done = Vec::new();
        for t in tasks {
            done.push(t.await.unwrap().unwrap());
        }
        assert_eq!(done, (0..12).collect::<Vec<_>>(), "every task ran, with its own result");
        assert_eq!(most.load(Ordering::SeqCst), 2, "two at a time, never more (and the gate was used)");
    }

    #[tokio::test]
    async fn a_panicking_task_is_an_error_and_frees_its_permit() {
        let gate = CpuGate::new(1);
        let err = gate.run(|| -> u8 { panic!("renderer bug") }).await.unwrap_err();
        assert!(err.to_string().starts_with("CPU-bound task"), "{err}");
        assert_eq!(gate.run(|| 7).await.unwrap(), 7, "the permit came back");
    }
}
