//! The job queue on SQLite and PostgreSQL: every job runs once per lease even with several nodes
//! claiming at once, a lease that runs out hands the job to another node, enqueueing is
//! idempotent by id, failures retry later or give up. And the jobs of the signing workflow with
//! a clock the test moves: reminders, expiry and the webhook deliveries they report.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use sigillum_core::envelopes::{NewField, NewRecipient};
use sigillum_core::lifecycle::EnvelopeStatus;
use sigillum_core::ports::{
    AuditStore, CheckpointSigner, DeliveryRecord, JobStore, LogKeyRecord, NewJob, NewLeaf, PendingJob, RepoError,
    SigningStore, StoredCheckpoint, StoredLeaf, WebhookStore,
};
use sigillum_core::workflow::{NewWebhook, SendRequest};
use sigillum_core::Repository;
use sigillum_core::{
    AccountError, Accounts, AuditLog, ClientInfo, EnvelopeId, EnvelopeView, Envelopes, NewEvent, Principal, Workflow,
    WorkflowConfig, WorkflowPorts,
};
use sigillum_store::SqlRepository;

fn job(id: &str, run_at: i64) -> NewJob {
    NewJob { id: id.into(), kind: "advance".into(), payload: "{}".into(), run_at_unix_ms: run_at, max_attempts: 3 }
}

async fn queue_semantics(repo: Arc<SqlRepository>, others: Vec<Arc<SqlRepository>>) {
    let now = 1_800_000_000_000;
    // Every node of the test lives throughout (on PostgreSQL, a node whose liveness lock nobody
    // holds has died: its leases are released as soon as another node looks).
    let mut alive = Vec::new();
    for node in ["n1", "n2"].into_iter().map(str::to_owned).chain((0..8).map(|n| format!("node-{n}"))) {
        alive.push(repo.liveness(&node).await.unwrap());
    }
    // Idempotent by id.
    repo.enqueue(&[job("a", now), job("a", now + 5)], now).await.unwrap();
    let due = |id: &str, at: i64| PendingJob { id: id.into(), run_at_unix_ms: at, leased_until_unix_ms: None };
    assert_eq!(repo.pending_jobs().await.unwrap(), vec![due("a", now)]);
    // Not due yet: not claimed.
    repo.enqueue(&[job("later", now + 60_000)], now).await.unwrap();
    let a = repo.claim("n1", now, 1_000).await.unwrap().unwrap();
    assert_eq!((a.id.as_str(), a.attempts), ("a", 1));
    assert!(repo.claim("n2", now + 500, 1_000).await.unwrap().is_none(), "leased, and `later` is not due");
    // A heartbeat keeps the job with its node past the first lease.
    assert!(repo.extend("a", "n1", now + 2_000).await.unwrap());
    assert!(!repo.extend("a", "n2", now + 9_000).await.unwrap(), "only the holder renews");
    assert!(repo.claim("n2", now + 1_500, 1_000).await.unwrap().is_none(), "renewed until now + 2000");
    // The lease runs out (its node died): another node takes the job over, and the old holder's
    // heartbeat now fails.
    let again = repo.claim("n2", now + 2_500, 1_000).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), ("a", 2));
    assert!(!repo.extend("a", "n1", now + 9_000).await.unwrap(), "the lease moved to n2");
    // A failure retries later; giving up ends it.
    repo.fail("a", "boom", Some(now + 10_000), now + 1_600).await.unwrap();
    assert!(repo.claim("n1", now + 9_000, 1_000).await.unwrap().is_none());
    let third = repo.claim("n1", now + 10_000, 1_000).await.unwrap().unwrap();
    assert_eq!(third.attempts, 3);
    repo.fail("a", "boom", None, now + 10_001).await.unwrap();
    assert_eq!(repo.pending_jobs().await.unwrap(), vec![due("later", now + 60_000)]);
    let l = repo.claim("n1", now + 60_000, 1_000).await.unwrap().unwrap();
    repo.finish(&l.id, now + 60_001).await.unwrap();
    assert!(repo.pending_jobs().await.unwrap().is_empty());

    // A claim skips the excluded kinds (a full lane share), even when they are due first.
    let at = now + 70_000;
    let of_kind = |id: &str, kind: &str, run_at: i64| NewJob { kind: kind.into(), ..job(id, run_at) };
    repo.enqueue(
        &[of_kind("hook", "webhook", at), of_kind("mail", "notify", at + 1), of_kind("next", "advance", at + 2)],
        at,
    )
    .await
    .unwrap();
    let skipping = |excluded: &'static [&'static str]| {
        let repo = repo.clone();
        async move { repo.claim_except("n1", at + 10, 1_000, excluded).await.unwrap().map(|j| j.id) }
    };
    assert_eq!(skipping(&["webhook", "invite", "notify"]).await.as_deref(), Some("next"));
    assert_eq!(skipping(&["webhook", "invite", "notify"]).await, None, "only excluded kinds are left");
    assert_eq!(skipping(&["invite", "webhooks"]).await.as_deref(), Some("hook"), "whole kinds, not parts");
    assert_eq!(skipping(&["webhook"]).await.as_deref(), Some("mail"));
    for id in ["hook", "mail", "next"] {
        repo.finish(id, at + 20).await.unwrap();
    }

    // Many nodes claiming at once: each job exactly once.
    let t = now + 100_000;
    let jobs: Vec<NewJob> = (0..300).map(|i| job(&format!("bulk-{i:03}"), t)).collect();
    repo.enqueue(&jobs, now).await.unwrap();
    let mut nodes = vec![repo.clone()];
    nodes.extend(others);
    let mut tasks = Vec::new();
    for (n, r) in nodes.iter().cycle().take(8).enumerate() {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(j) = r.claim(&format!("node-{n}"), t, 60_000).await.unwrap() {
                r.finish(&j.id, t + 1).await.unwrap();
                mine.push(j.id);
            }
            mine
        }));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        for id in task.await.unwrap() {
            *seen.entry(id).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 300, "every job ran");
    assert!(
        seen.values().all(|n| *n == 1),
        "no job ran twice: {:?}",
        seen.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );

    // Done jobs are kept a week, then removed by a claim that finds nothing to do.
    let week_later = t + 7 * DAY + 10;
    repo.enqueue(&[job("fresh", week_later)], week_later).await.unwrap();
    let fresh = repo.claim("n1", week_later, 1_000).await.unwrap().unwrap();
    repo.finish(&fresh.id, week_later).await.unwrap();
    assert!(repo.claim("n1", week_later + 1, 1_000).await.unwrap().is_none());
    let left: Vec<String> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY id").fetch_all(repo.pool()).await.unwrap();
    assert_eq!(left, vec!["fresh".to_owned()], "older done jobs removed, the recent one kept");
    drop(alive);
}

/// On PostgreSQL the jobs a node leased are taken over as soon as the node dies (its liveness
/// lock's connection ends), not when their leases run out; while it lives, nobody takes them.
/// A node that starts again first releases what its id leased before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_jobs_are_taken_over_at_once_on_postgres() {
    let s = common::server_stack().await;
    let other = common::same_stores_as(&s).await;
    let now = 1_800_000_000_000;
    let lease = 20_000;
    s.repo.enqueue(&[job("j1", now), job("j2", now)], now).await.unwrap();
    let (alive_a, _alive_b) = (s.repo.liveness("a").await.unwrap(), other.repo.liveness("b").await.unwrap());
    let j1 = s.repo.claim("a", now, lease).await.unwrap().unwrap();
    // Node b looks more than once a second for dead nodes' leases: a lives, so none.
    for i in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let taken = other.repo.claim("b", now + i, lease).await.unwrap().map(|j| j.id);
        assert!(taken.as_deref() != Some(j1.id.as_str()), "b took a job of a live node");
        if let Some(id) = taken {
            other.repo.finish(&id, now).await.unwrap();
        }
    }
    // Node a dies: b takes its job within the second, long before the lease would run out.
    drop(alive_a);
    let died = std::time::Instant::now();
    let taken = loop {
        if let Some(j) = other.repo.claim("b", now + 10, lease).await.unwrap() {
            break j;
        }
        assert!(died.elapsed() < std::time::Duration::from_secs(3), "the dead node's job was not taken over");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!((taken.id.as_str(), taken.attempts), (j1.id.as_str(), 2));
    assert!(!s.repo.extend(&j1.id, "a", now + lease).await.unwrap(), "the lease moved to b");

    // A node that starts again under its old id releases what that id still leased.
    s.repo.enqueue(&[job("j3", now)], now).await.unwrap();
    let j3 = s.repo.claim("a", now, lease).await.unwrap().unwrap();
    let _alive_a_again = s.repo.liveness("a").await.unwrap();
    let taken = other.repo.claim("b", now + 20, lease).await.unwrap().unwrap();
    assert_eq!(taken.id, j3.id);
}

/// A node whose liveness connection was cut (a database restart, an administrator) takes its
/// lock again on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_liveness_connection_is_replaced() {
    let s = common::server_stack().await;
    let held = |node: &'static str| {
        let pool = s.repo.pool().clone();
        async move {
            let sql = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 \
                       AND objid = hashtext($1)::oid";
            sqlx::query_scalar::<_, i32>(sql).bind(node).fetch_optional(&pool).await.unwrap()
        }
    };
    let mut alive = s.repo.liveness("a").await.unwrap();
    let pid = held("a").await.expect("the lock is held");
    sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(s.repo.pool()).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while held("a").await.is_some() {
        assert!(std::time::Instant::now() < deadline, "the terminated backend kept the lock");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    alive.keep(&s.repo).await.unwrap();
    let again = held("a").await.expect("the lock is held again");
    assert_ne!(again, pid, "on a new connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_queue_on_sqlite() {
    let s = common::local_stack().await;
    let other = common::same_stores_as(&s).await;
    queue_semantics(s.repo.clone(), vec![other.repo.clone()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_queue_on_postgres() {
    let s = common::server_stack().await;
    let a = common::same_stores_as(&s).await;
    let b = common::same_stores_as(&s).await;
    queue_semantics(s.repo.clone(), vec![a.repo.clone(), b.repo.clone()]).await;
}

/// On PostgreSQL a claim does not queue behind another node's claim of the same job: a job whose
/// row another transaction holds is skipped, and the next due one is taken at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_on_postgres_skips_the_job_another_claim_holds() {
    let s = common::server_stack().await;
    let now = 1_800_000_000_000;
    s.repo.enqueue(&[job("first", now - 2), job("second", now - 1)], now).await.unwrap();
    // Another node's claim in flight: it holds the row of the first due job.
    let mut other = s.repo.pool().begin().await.unwrap();
    sqlx::query("SELECT id FROM jobs WHERE id = 'first' FOR UPDATE").execute(&mut *other).await.unwrap();
    let claim = tokio::time::timeout(std::time::Duration::from_secs(5), s.repo.claim("n2", now, 60_000)).await;
    let taken = claim.expect("the claim waited for the other node's row lock").unwrap().expect("a due job");
    assert_eq!(taken.id, "second");
    other.rollback().await.unwrap();
    assert_eq!(s.repo.claim("n2", now, 60_000).await.unwrap().map(|j| j.id).as_deref(), Some("first"));
    assert!(s.repo.claim("n2", now, 60_000).await.unwrap().is_none());
}

const DAY: i64 = 24 * 60 * 60 * 1000;

/// A signing workflow on the embedded stack with a clock the test moves, mail to an outbox, and
/// an owner signed in.
struct Flow {
    s: common::Stack,
    clock: Arc<common::ManualClock>,
    audit: AuditLog,
    accounts: Accounts,
    envelopes: Envelopes,
    wf: Workflow,
    p: Principal,
    client: ClientInfo,
    outbox: std::path::PathBuf,
}

/// [`Flow`] with the audit log on the store `audit_store` makes of the stack's repository.
async fn flow(audit_store: impl FnOnce(Arc<SqlRepository>) -> Arc<dyn AuditStore>) -> Flow {
    flow_on(common::local_stack().await, audit_store).await
}

async fn flow_on(s: common::Stack, audit_store: impl FnOnce(Arc<SqlRepository>) -> Arc<dyn AuditStore>) -> Flow {
    let clock = Arc::new(common::ManualClock::at(1_800_000_000_000));
    let audit = AuditLog::open(audit_store(s.repo.clone()), s.vault.clone(), clock.clone(), "test/log").await.unwrap();
    let accounts = Accounts::new(s.repo.clone(), s.vault.clone(), audit.clone(), clock.clone());
    let client = ClientInfo::default();
    accounts.signup("sam@example.org", "correct horse battery staple".to_owned().into(), "Sam", &client).await.unwrap();
    let out = accounts
        .login("sam@example.org", "correct horse battery staple".to_owned().into(), None, &client)
        .await
        .unwrap();
    let p = accounts.authenticate_session(secrecy::ExposeSecret::expose_secret(&out.session_token)).await.unwrap();
    let envelopes = Envelopes::new(
        s.repo.clone(),
        s.repo.clone(),
        s.vault.clone(),
        audit.clone(),
        clock.clone(),
        Default::default(),
    );
    let outbox = s.dir.path().join("outbox");
    let mailer = sigillum_mail::LettreMailer::new("Sigillum <no-reply@localhost>", None, outbox.clone()).unwrap();
    let wf = Workflow::new(
        WorkflowPorts {
            envelopes: s.repo.clone(),
            parties: s.repo.clone(),
            signing: s.repo.clone(),
            jobs: s.repo.clone(),
            webhooks: s.repo.clone(),
            accounts: s.repo.clone(),
            mailer: Arc::new(mailer),
            hooks: Arc::new(sigillum_web::webhooks::HttpWebhookSender { allow_private: false }),
            sealer: {
                let pki = Arc::new(sigillum_core::pki::Pki::new(
                    s.vault.key_manager().clone(),
                    s.repo.clone(),
                    clock.clone(),
                    "https://sign.example.org",
                ));
                Arc::new(sigillum_core::seal::Sealer::new(pki.clone(), pki))
            },
            quota: None,
        },
        envelopes.clone(),
        s.vault.clone(),
        audit.clone(),
        clock.clone(),
        WorkflowConfig {
            public_url: "https://sign.example.org".into(),
            node: "n1".into(),
            allow_insecure_webhooks: false,
            jurisdiction: "CH".into(),
        },
    );
    Flow { s, clock, audit, accounts, envelopes, wf, p, client, outbox }
}

impl Flow {
    /// A draft with one signer (Rita) and her signature field.
    async fn draft(&self, title: &str) -> EnvelopeView {
        let Self { envelopes, p, client, .. } = self;
        let pdf = sigillum_testkit::pdf::pdf(1);
        let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(pdf))]);
        let env = envelopes.create(p, title, body, client).await.unwrap();
        let r = envelopes.add_recipient(p, env.id, rita(), client).await.unwrap();
        envelopes.add_field(p, env.id, signature_field(r.id.to_string()), client).await.unwrap();
        env
    }
}

/// Reminders go out every `remind_every_days` while the signer has not signed; at its expiry the
/// envelope expires and its links stop working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_then_expiry_with_a_moving_clock() {
    let f = flow(|repo| repo).await;
    let env = f.draft("Lease").await;
    let Flow { s, clock, accounts, wf, p, client, outbox, .. } = f;
    // A webhook for the sending and the expiry; its endpoint (loopback) is refused every time.
    let events = Some(vec!["envelope.sent".into(), "envelope.expired".into()]);
    let hook = NewWebhook { url: "https://127.0.0.1/hooks".into(), events };
    let hook = wf.create_webhook(&p, hook, &client).await.unwrap().webhook.id;
    let req = SendRequest { message: None, expires_in_days: Some(5), remind_every_days: Some(2) };
    wf.send(&p, env.id, req, &client).await.unwrap();
    let pending = s.repo.pending_jobs().await.unwrap();
    assert!(!pending.iter().any(|j| j.id.starts_with("audit:")), "the sending logged its event itself: {pending:?}");

    let mails = || -> Vec<String> {
        std::fs::read_dir(&outbox)
            .map(|d| d.flatten().filter_map(|e| std::fs::read_to_string(e.path()).ok()).collect())
            .unwrap_or_default()
    };
    let count = |what: &str| mails().iter().filter(|m| m.contains(what)).count();
    wf.drain().await;
    assert_eq!(count("to sign"), 1, "the invitation");
    assert_eq!(count("Reminder:"), 0);
    clock.advance(DAY);
    wf.drain().await;
    assert_eq!(count("Reminder:"), 0, "not before two days");
    clock.advance(DAY + 1);
    wf.drain().await;
    assert_eq!(count("Reminder:"), 1, "after two days");
    clock.advance(2 * DAY);
    wf.drain().await;
    assert_eq!(count("Reminder:"), 2, "and again two days later");
    assert_eq!(s.repo.envelope_by_id(env.id).await.unwrap().unwrap().status, EnvelopeStatus::Sent);
    clock.advance(DAY);
    wf.drain().await;
    assert_eq!(s.repo.envelope_by_id(env.id).await.unwrap().unwrap().status, EnvelopeStatus::Expired, "at day 5");
    assert_eq!(count("Reminder:"), 2, "no reminder after expiry");
    // Each event was queued with its change and became one delivery, tried until it gave up.
    for _ in 0..8 {
        clock.advance(60 * 60 * 1000);
        wf.drain().await;
    }
    let deliveries = wf.webhook_deliveries(&p, hook).await.unwrap();
    let events: Vec<&str> = deliveries.iter().map(|d| d.event.as_str()).collect();
    assert_eq!(events, ["envelope.expired", "envelope.sent"], "one delivery per event, newest first");
    for d in &deliveries {
        assert_eq!((d.status.as_str(), d.attempts), ("failed", 8), "{d:?}");
        let body: serde_json::Value = serde_json::from_str(&d.payload).unwrap();
        assert_eq!(body["data"]["envelope_id"], env.id.to_string());
        assert_eq!(body["id"], d.id.to_string());
    }
    // An event job run again (its node stopped before marking it done) stores nothing twice
    // and changes nothing stored.
    let again: Vec<_> =
        deliveries.iter().map(|d| DeliveryRecord { status: "pending".into(), attempts: 0, ..d.clone() }).collect();
    s.repo.insert_deliveries(&again, &[]).await.unwrap();
    let after = wf.webhook_deliveries(&p, hook).await.unwrap();
    assert_eq!(after, deliveries);
    assert!(s.repo.pending_jobs().await.unwrap().is_empty(), "nothing left queued: {:?}", s.repo.pending_jobs().await);

    // Retention: the owner keeps ended envelopes 30 days; the hourly sweep erases them after.
    assert!(accounts.set_retention(&p, Some(0), &client).await.is_err(), "at least a day");
    let view = accounts.set_retention(&p, Some(30), &client).await.unwrap();
    assert_eq!(view.retention_days, Some(30));
    let blobs = s.repo.list_blobs(env.id).await.unwrap();
    assert!(!blobs.is_empty());
    clock.advance(29 * DAY);
    wf.schedule_retention().await.unwrap();
    wf.drain().await;
    assert!(s.repo.envelope_by_id(env.id).await.unwrap().is_some(), "kept for 30 days after it ended");
    clock.advance(2 * DAY);
    wf.schedule_retention().await.unwrap();
    wf.schedule_retention().await.unwrap();
    wf.drain().await;
    assert!(s.repo.envelope_by_id(env.id).await.unwrap().is_none(), "erased after 30 days");
    assert!(s.repo.list_blobs(env.id).await.unwrap().is_empty(), "its blobs are gone");
    for b in &blobs {
        assert!(s.vault.blob_store().size(&b.key).await.unwrap().is_none(), "ciphertext left: {}", b.key);
    }
    assert!(s.repo.get_envelope_key(env.id).await.is_err(), "its key is gone");
    // The log keeps the envelope's leaves and says why it went.
    let leaves = sigillum_core::ports::AuditStore::leaves_from(s.repo.as_ref(), 0, 10_000).await.unwrap();
    let kinds: Vec<serde_json::Value> = leaves.iter().map(|l| serde_json::from_slice(&l.event).unwrap()).collect();
    let deleted: Vec<&serde_json::Value> = kinds.iter().filter(|e| e["kind"] == "envelope.deleted").collect();
    assert_eq!(deleted.len(), 1, "erased once, though the sweep was asked for twice");
    assert_eq!(deleted[0]["details"]["reason"], "retention");
    assert!(kinds.iter().any(|e| e["kind"] == "organisation.retention_changed"));
    assert!(kinds.iter().filter(|e| e["envelope_id"] == env.id.to_string()).count() > 5, "its trail stays");
    let key = sigillum_core::ports::AuditStore::log_key(s.repo.as_ref()).await.unwrap().unwrap().verifier_key;
    let report = sigillum_core::audit_log::verify_log(s.repo.as_ref(), &key, &[]).await.unwrap();
    assert!(report.ok, "{:?}", report.problems);
}

/// The audit store of a node that stops (is killed) between storing a change and appending its
/// event: while `stopped`, appends fail.
struct StopsBeforeLogging {
    repo: Arc<SqlRepository>,
    stopped: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl AuditStore for StopsBeforeLogging {
    async fn append_leaves(
        &self,
        leaves: Vec<NewLeaf>,
        sign: CheckpointSigner<'_>,
        now_unix_ms: i64,
    ) -> Result<(u64, StoredCheckpoint), RepoError> {
        if self.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(RepoError::Unavailable("the node stopped".into()));
        }
        self.repo.append_leaves(leaves, sign, now_unix_ms).await
    }
    async fn tree_size(&self) -> Result<u64, RepoError> {
        self.repo.tree_size().await
    }
    async fn tree_nodes(
        &self,
        ids: &[sigillum_audit::NodeId],
    ) -> Result<HashMap<sigillum_audit::NodeId, [u8; 32]>, RepoError> {
        self.repo.tree_nodes(ids).await
    }
    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, RepoError> {
        self.repo.latest_checkpoint().await
    }
    async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, RepoError> {
        self.repo.checkpoint_at(size).await
    }
    async fn checkpoints_from(&self, from: u64, limit: u32) -> Result<Vec<StoredCheckpoint>, RepoError> {
        self.repo.checkpoints_from(from, limit).await
    }
    async fn leaves_from(&self, from: u64, limit: u32) -> Result<Vec<StoredLeaf>, RepoError> {
        self.repo.leaves_from(from, limit).await
    }
    async fn envelope_leaves(&self, envelope: EnvelopeId, from: u64) -> Result<Vec<StoredLeaf>, RepoError> {
        self.repo.envelope_leaves(envelope, from).await
    }
    async fn log_key(&self) -> Result<Option<LogKeyRecord>, RepoError> {
        self.repo.log_key().await
    }
    async fn insert_log_key(&self, key: &LogKeyRecord) -> Result<(), RepoError> {
        self.repo.insert_log_key(key).await
    }
}

/// The kinds of an envelope's logged events, in order.
async fn logged_kinds(repo: &SqlRepository, envelope: EnvelopeId) -> Vec<String> {
    kinds(&AuditStore::envelope_leaves(repo, envelope, 0).await.unwrap())
}

/// The kinds of every event in the log.
async fn all_logged_kinds(repo: &SqlRepository) -> Vec<String> {
    kinds(&AuditStore::leaves_from(repo, 0, 10_000).await.unwrap())
}

fn kinds(leaves: &[StoredLeaf]) -> Vec<String> {
    leaves
        .iter()
        .map(|l| serde_json::from_slice::<serde_json::Value>(&l.event).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Rita, the one signer of the test envelopes.
fn rita() -> NewRecipient {
    NewRecipient {
        name: "Rita".into(),
        email: "rita@example.org".into(),
        role: "signer".into(),
        routing_order: 1,
        access_code: None,
        language: None,
    }
}

/// A required signature field of `recipient` on page 1.
fn signature_field(recipient: String) -> NewField {
    NewField {
        recipient_id: recipient,
        kind: "signature".into(),
        page: 1,
        x: 10.0,
        y: 10.0,
        width: 100.0,
        height: 30.0,
        required: true,
    }
}

/// A workflow whose audit appends fail while the store is `stopped`.
async fn stopping_flow() -> (Flow, Arc<StopsBeforeLogging>) {
    let store = Arc::new(std::sync::Mutex::new(None));
    let keep = store.clone();
    let f = flow(move |repo| {
        let s = Arc::new(StopsBeforeLogging { repo, stopped: false.into() });
        *keep.lock().unwrap() = Some(s.clone());
        s
    })
    .await;
    let store = store.lock().unwrap().clone().unwrap();
    (f, store)
}

/// An envelope set up (created, a recipient, a field) while its node stops before logging each
/// step: every step is stored, and every event is logged once, in order, when its job is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_set_up_while_its_node_stops_keeps_every_event() {
    let (f, store) = stopping_flow().await;
    let stop = |on: bool| store.stopped.store(on, std::sync::atomic::Ordering::SeqCst);
    stop(true);
    let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(sigillum_testkit::pdf::pdf(1)))]);
    assert!(f.envelopes.create(&f.p, "Set up", body, &f.client).await.is_err(), "stopped before answering");
    stop(false);
    // Each step a second after the one before, as a client makes them.
    f.clock.advance(1_000);
    let listed = f.envelopes.list(&f.p).await.unwrap();
    assert_eq!(listed.len(), 1, "the envelope is stored");
    let id = listed[0].id;
    stop(true);
    assert!(f.envelopes.add_recipient(&f.p, id, rita(), &f.client).await.is_err(), "stopped before answering");
    stop(false);
    f.clock.advance(1_000);
    let recipients = sigillum_core::ports::RecipientStore::recipients(f.s.repo.as_ref(), id).await.unwrap();
    assert_eq!(recipients.len(), 1, "the recipient is stored");
    let field = signature_field(recipients[0].id.to_string());
    stop(true);
    assert!(f.envelopes.add_field(&f.p, id, field, &f.client).await.is_err(), "stopped before answering");
    stop(false);
    assert_eq!(sigillum_core::ports::RecipientStore::fields(f.s.repo.as_ref(), id).await.unwrap().len(), 1);
    assert!(logged_kinds(&f.s.repo, id).await.is_empty());

    f.clock.advance(61_000);
    f.wf.drain().await;
    let kinds = logged_kinds(&f.s.repo, id).await;
    assert_eq!(kinds, ["envelope.created", "document.uploaded", "recipient.added", "field.added"], "{kinds:?}");
    // Taken again (a second node, a retry): nothing more.
    f.clock.advance(61_000);
    f.wf.drain().await;
    assert_eq!(logged_kinds(&f.s.repo, id).await.len(), 4);

    // The organisation's webhooks (events of no envelope): created and disabled while the node
    // stops, each logged once.
    let org_kinds = || async {
        all_logged_kinds(&f.s.repo).await.into_iter().filter(|k| k.starts_with("webhook.")).collect::<Vec<_>>()
    };
    let hook = NewWebhook { url: "https://127.0.0.1/hooks".into(), events: None };
    stop(true);
    assert!(f.wf.create_webhook(&f.p, hook, &f.client).await.is_err(), "stopped before answering");
    stop(false);
    let hooks = f.wf.webhooks(&f.p).await.unwrap();
    assert_eq!(hooks.len(), 1, "the webhook is stored");
    f.clock.advance(1_000);
    stop(true);
    assert!(f.wf.disable_webhook(&f.p, hooks[0].id, &f.client).await.is_err(), "stopped before answering");
    stop(false);
    assert!(org_kinds().await.is_empty());
    for _ in 0..2 {
        f.clock.advance(61_000);
        f.wf.drain().await;
        assert_eq!(org_kinds().await, ["webhook.created", "webhook.disabled"]);
    }
    let key = AuditStore::log_key(f.s.repo.as_ref()).await.unwrap().unwrap().verifier_key;
    let report = sigillum_core::audit_log::verify_log(f.s.repo.as_ref(), &key, &[]).await.unwrap();
    assert!(report.ok, "{:?}", report.problems);
}

/// Account changes made while their node stops before logging each: every change is stored and
/// its event logged once when its job is due. A failed login is logged before it is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_changes_while_the_node_stops_keep_every_event() {
    let (f, store) = stopping_flow().await;
    let stop = |on: bool| store.stopped.store(on, std::sync::atomic::Ordering::SeqCst);
    let account_kinds = || async {
        all_logged_kinds(&f.s.repo).await.into_iter().filter(|k| !k.starts_with("envelope.")).collect::<Vec<_>>()
    };
    let before = account_kinds().await;
    let pw = || "another horse battery staple".to_owned().into();
    let (a, c) = (&f.accounts, &f.client);
    // Each step a second after the one before; each fails to answer, but is stored.
    let step = |ok: bool| {
        assert!(!ok, "the node stopped before answering");
        stop(false);
        f.clock.advance(1_000);
    };
    stop(true);
    step(a.signup("uma@example.org", pw(), "Uma", c).await.is_ok());
    stop(true);
    step(a.login("uma@example.org", pw(), None, c).await.is_ok());
    let out = a.login("uma@example.org", pw(), None, c).await.unwrap();
    let uma = a.authenticate_session(secrecy::ExposeSecret::expose_secret(&out.session_token)).await.unwrap();
    stop(true);
    step(a.create_api_key(&uma, "ci", c).await.is_ok());
    let key = a.list_api_keys(&uma).await.unwrap()[0].id;
    stop(true);
    step(a.revoke_api_key(&uma, key, c).await.is_ok());
    stop(true);
    step(a.set_retention(&uma, Some(30), c).await.is_ok());
    stop(true);
    step(a.add_member(&uma, "vic@example.org", pw(), "Vic", c).await.is_ok());
    let vic = a.members(&uma).await.unwrap().into_iter().find(|m| m.email == "vic@example.org").unwrap().id;
    stop(true);
    step(a.remove_member(&uma, vic, c).await.is_ok());
    stop(true);
    step(a.logout(&uma, c).await.is_ok());
    assert!(a.authenticate_session(secrecy::ExposeSecret::expose_secret(&out.session_token)).await.is_err());
    stop(true);
    assert!(a.login("uma@example.org", "wrong horse battery staple".to_owned().into(), None, c).await.is_err());
    stop(false);

    // Stored: the second login worked, the key is revoked, Vic is gone, the retention is set.
    assert!(a.list_api_keys(&uma).await.unwrap()[0].revoked);
    assert_eq!(a.members(&uma).await.unwrap().len(), 1);
    assert_eq!(a.organisation(&uma).await.unwrap().retention_days, Some(30));
    let logged_now = account_kinds().await;
    assert_eq!(logged_now[before.len()..], ["auth.login"], "only the login that answered: {logged_now:?}");
    for _ in 0..2 {
        f.clock.advance(61_000);
        f.wf.drain().await;
        let kinds = account_kinds().await;
        let mut new: Vec<&str> = kinds[before.len()..].iter().map(String::as_str).collect();
        new.sort_unstable();
        let mut expected = [
            "account.created",
            "auth.login",
            "auth.login",
            "api_key.created",
            "api_key.revoked",
            "organisation.retention_changed",
            "member.added",
            "member.removed",
            "auth.logout",
        ];
        expected.sort_unstable();
        assert_eq!(new, expected, "{kinds:?}");
    }
}

/// A login with a recovery code while the node stops: the code's use is stored with its event's
/// job, so the event is logged once, a minute later, with the count of codes left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_code_used_while_the_node_stops_keeps_its_event() {
    use secrecy::ExposeSecret;
    let (f, store) = stopping_flow().await;
    let stop = |on: bool| store.stopped.store(on, std::sync::atomic::Ordering::SeqCst);
    let (a, c) = (&f.accounts, &f.client);
    let pw = || "another horse battery staple".to_owned().into();
    a.signup("tom@example.org", pw(), "Tom", c).await.unwrap();
    let out = a.login("tom@example.org", pw(), None, c).await.unwrap();
    let tom = a.authenticate_session(out.session_token.expose_secret()).await.unwrap();
    let setup = a.setup_totp(&tom).await.unwrap();
    let code = sigillum_testkit::totp_code(&setup.secret, sigillum_core::ports::Clock::now_unix_ms(&*f.clock) / 1000);
    let recovery = a.enable_totp(&tom, &code, c).await.unwrap();
    let used = || async {
        let leaves = AuditStore::leaves_from(&*f.s.repo, 0, 10_000).await.unwrap();
        leaves
            .iter()
            .map(|l| serde_json::from_slice::<serde_json::Value>(&l.event).unwrap())
            .filter(|e| e["kind"] == "auth.recovery_code_used")
            .collect::<Vec<_>>()
    };

    stop(true);
    let r = a.login("tom@example.org", pw(), Some(&recovery[0]), c).await;
    assert!(r.is_err(), "the node stopped before answering");
    stop(false);
    assert!(used().await.is_empty());
    // The code is spent all the same; a wrong or mistyped code spends nothing and logs nothing.
    let refused = a.login("tom@example.org", pw(), Some(&recovery[0]), c).await;
    assert!(matches!(refused, Err(AccountError::InvalidTotp)), "{:?}", refused.err());
    let mistyped = a.login("tom@example.org", pw(), Some("12345"), c).await;
    assert!(matches!(mistyped, Err(AccountError::InvalidTotp)), "{:?}", mistyped.err());
    for _ in 0..2 {
        f.clock.advance(61_000);
        f.wf.drain().await;
        let events = used().await;
        assert_eq!(events.len(), 1, "logged once, also after a second pass: {events:?}");
        assert_eq!(events[0]["details"]["remaining"], 9, "{}", events[0]);
    }
    // The next code works, and its event counts one fewer.
    a.login("tom@example.org", pw(), Some(&recovery[1]), c).await.unwrap();
    let events = used().await;
    assert_eq!(events.iter().map(|e| e["details"]["remaining"].clone()).collect::<Vec<_>>(), [9, 8]);
}

/// A node that stores a change (here: the sending) and stops before appending its audit event:
/// the event's job, stored with the change, appends it a minute later on a running node, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_node_stopped_before_logging_it_is_logged_by_its_job() {
    let (f, store) = stopping_flow().await;
    let env = f.draft("Stopped").await;

    store.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    let req = SendRequest { message: None, expires_in_days: Some(5), remind_every_days: None };
    assert!(f.wf.send(&f.p, env.id, req, &f.client).await.is_err(), "the node stopped before answering");
    store.stopped.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(f.s.repo.envelope_by_id(env.id).await.unwrap().unwrap().status, EnvelopeStatus::Sent);
    assert!(!logged_kinds(&f.s.repo, env.id).await.contains(&"envelope.sent".to_owned()));

    // Another node (here: the same workflow running again) goes on with the envelope at once,
    // and logs the sending when the event's job is due.
    f.wf.drain().await;
    assert!(!logged_kinds(&f.s.repo, env.id).await.contains(&"envelope.sent".to_owned()), "not due yet");
    f.clock.advance(61_000);
    f.wf.drain().await;
    let kinds = logged_kinds(&f.s.repo, env.id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "envelope.sent").count(), 1, "{kinds:?}");
    assert!(kinds.contains(&"email.sent".to_owned()), "the invitation went out: {kinds:?}");
    assert!(f.s.repo.pending_jobs().await.unwrap().iter().all(|j| !j.id.starts_with("audit:")));

    // The recipient consents while the node stops again: the consent is stored, and so is its
    // event once its job is due.
    let invitation = std::fs::read_dir(&f.outbox).unwrap().flatten().next().unwrap().path();
    let token =
        sigillum_testkit::smtp::Mail::parse(std::fs::read_to_string(invitation).unwrap()).signing_token().unwrap();
    let count = |kinds: &[String], kind: &str| kinds.iter().filter(|k| *k == kind).count();

    // The recipient's first view moves them to `delivered` while the node stops: the change is
    // stored, and its event (`first`: true) is logged once its job is due.
    store.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(f.wf.signer_view(&token, None, &f.client).await.is_err(), "the node stopped before answering");
    store.stopped.store(false, std::sync::atomic::Ordering::SeqCst);
    let recipients = sigillum_core::ports::RecipientStore::recipients(f.s.repo.as_ref(), env.id).await.unwrap();
    assert_eq!(recipients[0].status, "delivered");
    assert_eq!(count(&logged_kinds(&f.s.repo, env.id).await, "link.opened"), 0);
    f.clock.advance(61_000);
    f.wf.drain().await;
    let leaves = AuditStore::envelope_leaves(f.s.repo.as_ref(), env.id, 0).await.unwrap();
    let opened: Vec<serde_json::Value> = leaves
        .iter()
        .map(|l| serde_json::from_slice::<serde_json::Value>(&l.event).unwrap())
        .filter(|e| e["kind"] == "link.opened")
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0]["details"]["first"], true, "{}", opened[0]);
    // Later views change nothing stored and are logged at once.
    f.wf.signer_view(&token, None, &f.client).await.unwrap();
    assert_eq!(count(&logged_kinds(&f.s.repo, env.id).await, "link.opened"), 2);

    // An embedded signing link made while the node stops: the link works, and its creation is
    // logged once its job is due.
    let recipient = sigillum_core::ports::RecipientStore::recipients(f.s.repo.as_ref(), env.id).await.unwrap()[0].id;
    store.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(f.wf.signing_link(&f.p, env.id, recipient, &f.client).await.is_err(), "stopped before answering");
    store.stopped.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(count(&logged_kinds(&f.s.repo, env.id).await, "signing_link.created"), 0);
    f.clock.advance(61_000);
    f.wf.drain().await;
    assert_eq!(count(&logged_kinds(&f.s.repo, env.id).await, "signing_link.created"), 1);

    store.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(f.wf.consent(&token, None, true, &f.client).await.is_err(), "the node stopped before answering");
    store.stopped.store(false, std::sync::atomic::Ordering::SeqCst);
    let recipients = sigillum_core::ports::RecipientStore::recipients(f.s.repo.as_ref(), env.id).await.unwrap();
    assert!(recipients[0].consented_unix_ms.is_some(), "the consent is stored");
    assert!(!logged_kinds(&f.s.repo, env.id).await.contains(&"consent.given".to_owned()));
    f.clock.advance(61_000);
    f.wf.drain().await;
    let kinds = logged_kinds(&f.s.repo, env.id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "consent.given").count(), 1, "{kinds:?}");

    // A prepared event survives its job's payload, and is appended once however often it is
    // offered.
    let e = NewEvent::new(sigillum_audit::EventKind::DocumentViewed, Some(env.id), f.p.actor(), f.client.clone());
    let prepared = f.audit.prepare(e).await.unwrap();
    let kept = sigillum_core::audit_log::PreparedEvent::from_json(&prepared.to_json()).unwrap();
    assert_eq!(kept, prepared);
    assert!(f.audit.append_once(kept.clone()).await.unwrap());
    assert!(!f.audit.append_once(kept).await.unwrap(), "already in the log");
    let viewed = logged_kinds(&f.s.repo, env.id).await.iter().filter(|k| *k == "document.viewed").count();
    assert_eq!(viewed, 1);

    let key = AuditStore::log_key(f.s.repo.as_ref()).await.unwrap().unwrap().verifier_key;
    let report = sigillum_core::audit_log::verify_log(f.s.repo.as_ref(), &key, &[]).await.unwrap();
    assert!(report.ok, "{:?}", report.problems);
}

/// The first signer's signature is stored and their node stops right after the commit: the
/// routing moved on in that same transaction, so the second signer is already invited (their
/// invitation queued, no job left waiting for the dead node's lease), their embedded link works
/// at once, and they get one invitation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_signer_is_invited_in_the_signatures_own_transaction() {
    let (f, store) = stopping_flow().await;
    let env = f.draft("Routing").await;
    let second = NewRecipient { name: "Sol".into(), email: "sol@example.org".into(), routing_order: 2, ..rita() };
    let sol = f.envelopes.add_recipient(&f.p, env.id, second, &f.client).await.unwrap().id;
    f.envelopes.add_field(&f.p, env.id, signature_field(sol.to_string()), &f.client).await.unwrap();
    let req = SendRequest { message: None, expires_in_days: Some(5), remind_every_days: None };
    f.wf.send(&f.p, env.id, req, &f.client).await.unwrap();
    let recipients = sigillum_core::ports::RecipientStore::recipients(f.s.repo.as_ref(), env.id).await.unwrap();
    let rita = recipients.iter().find(|r| r.routing_order == 1).unwrap().id;
    let token = |url: String| url.rsplit('/').next().unwrap().to_owned();

    let link = token(f.wf.signing_link(&f.p, env.id, rita, &f.client).await.unwrap());
    assert!(f.wf.signing_link(&f.p, env.id, sol, &f.client).await.is_err(), "not Sol's turn yet");
    f.wf.consent(&link, None, true, &f.client).await.unwrap();
    let signed: sigillum_core::workflow::CompleteRequest =
        serde_json::from_value(serde_json::json!({"signature": {"kind": "typed", "text": "Rita"}})).unwrap();
    store.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(f.wf.complete(&link, None, signed, &f.client).await.is_err(), "the node stopped before answering");
    store.stopped.store(false, std::sync::atomic::Ordering::SeqCst);
    let status = |rs: &[sigillum_core::ports::RecipientRecord], id| {
        rs.iter().find(|r| r.id == id).map(|r| r.status.clone()).unwrap()
    };
    let recipients = sigillum_core::ports::RecipientStore::recipients(f.s.repo.as_ref(), env.id).await.unwrap();
    assert_eq!(status(&recipients, rita), "signed", "the signature is stored");
    assert_eq!(status(&recipients, sol), "sent", "the routing moved on with it");
    let pending: Vec<String> =
        JobStore::pending_jobs(f.s.repo.as_ref()).await.unwrap().into_iter().map(|j| j.id).collect();
    assert!(pending.contains(&format!("invite:{sol}")), "Sol's invitation is queued: {pending:?}");
    assert!(!pending.iter().any(|j| j.starts_with("advance")), "nothing waits to move the routing on: {pending:?}");

    let link = token(f.wf.signing_link(&f.p, env.id, sol, &f.client).await.unwrap());
    f.wf.signer_view(&link, None, &f.client).await.unwrap();

    f.clock.advance(61_000);
    f.wf.drain().await;
    let invitations = std::fs::read_dir(&f.outbox)
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|m| m.contains("sol@example.org") && m.contains("to sign"))
        .count();
    assert_eq!(invitations, 1, "Sol is invited once");
    let kinds = logged_kinds(&f.s.repo, env.id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "recipient.signed").count(), 1, "{kinds:?}");
}

/// Two signers of the same step sign at the same moment, on SQLite and on PostgreSQL: each
/// signature's transaction reads the recipients under the envelope row's lock, so the one that
/// commits second sees both signatures and invites the next step. The third signer is invited
/// once, with no job run and nothing left to move the routing on later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signers_of_one_step_signing_at_once_move_the_routing_on_once() {
    for stack in [common::local_stack().await, common::server_stack().await] {
        let f = flow_on(stack, |repo| repo).await;
        for round in 0..3 {
            let env = f.draft(&format!("Parallel {round}")).await;
            let add = |name: &str, email: &str, order: u32| {
                let r = NewRecipient { name: name.into(), email: email.into(), routing_order: order, ..rita() };
                let (f, id) = (&f, env.id);
                async move {
                    let rid = f.envelopes.add_recipient(&f.p, id, r, &f.client).await.unwrap().id;
                    f.envelopes.add_field(&f.p, id, signature_field(rid.to_string()), &f.client).await.unwrap();
                    rid
                }
            };
            let pia = add("Pia", "pia@example.org", 1).await;
            let sol = add("Sol", "sol@example.org", 2).await;
            let req = SendRequest { message: None, expires_in_days: Some(5), remind_every_days: None };
            f.wf.send(&f.p, env.id, req, &f.client).await.unwrap();
            let recipients = sigillum_core::ports::RecipientStore::recipients(f.s.repo.as_ref(), env.id).await.unwrap();
            let rita = recipients.iter().find(|r| r.id != pia && r.id != sol).unwrap().id;
            let token = |url: String| url.rsplit('/').next().unwrap().to_owned();
            let mut links = Vec::new();
            for rid in [rita, pia] {
                let link = token(f.wf.signing_link(&f.p, env.id, rid, &f.client).await.unwrap());
                f.wf.consent(&link, None, true, &f.client).await.unwrap();
                links.push(link);
            }
            let sign = |link: String| {
                let req: sigillum_core::workflow::CompleteRequest =
                    serde_json::from_value(serde_json::json!({"signature": {"kind": "typed", "text": "Me"}})).unwrap();
                let f = &f;
                async move { f.wf.complete(&link, None, req, &f.client).await }
            };
            let (a, b) = tokio::join!(sign(links[0].clone()), sign(links[1].clone()));
            a.unwrap();
            b.unwrap();
            let recipients = sigillum_core::ports::RecipientStore::recipients(f.s.repo.as_ref(), env.id).await.unwrap();
            let status = |id| recipients.iter().find(|r| r.id == id).map(|r| r.status.clone()).unwrap();
            assert_eq!((status(rita), status(pia), status(sol)), ("signed".into(), "signed".into(), "sent".into()));
            let pending: Vec<String> =
                JobStore::pending_jobs(f.s.repo.as_ref()).await.unwrap().into_iter().map(|j| j.id).collect();
            assert_eq!(pending.iter().filter(|j| **j == format!("invite:{sol}")).count(), 1, "{pending:?}");
            assert!(!pending.iter().any(|j| j.starts_with("advance")), "{pending:?}");
        }
    }
}

/// An envelope's detail on SQLite reads the envelope, its recipients, fields and key in one
/// snapshot: the same records as the four reads one by one, nothing for another organisation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_with_its_parties_is_read_in_one_snapshot() {
    use sigillum_core::ports::{EnvelopeStore, RecipientStore};
    let f = flow(|repo| repo).await;
    let env = f.draft("NDA").await;
    let repo = &f.s.repo;
    let parts = repo.envelope_with_parties(f.p.org_id, env.id).await.unwrap().expect("read at once on SQLite");
    assert_eq!(Some(parts.envelope), repo.envelope(f.p.org_id, env.id).await.unwrap());
    assert_eq!(parts.recipients, repo.recipients(env.id).await.unwrap());
    assert_eq!(parts.recipients.len(), 1);
    assert_eq!(parts.fields, repo.fields(env.id).await.unwrap());
    assert_eq!(parts.fields.len(), 1);
    assert_eq!(parts.key, repo.get_envelope_key(env.id).await.unwrap());
    let other = sigillum_core::OrgId::new();
    assert!(repo.envelope_with_parties(other, env.id).await.unwrap().is_none());
    // The detail built from it names the recipient and the field.
    let detail = f.envelopes.detail(&f.p, env.id).await.unwrap();
    assert_eq!(detail.envelope.title, "NDA");
    assert_eq!(detail.recipients.len(), 1);
    assert_eq!(detail.fields.len(), 1);
}
