//! The audit log over real databases: what a party receives verifies with the RFC 9162 verifier,
//! personal data stays encrypted and dies with the envelope key, any tampering with the stored
//! log is found, and concurrent writers on one PostgreSQL get one gap-free sequence.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::{local_stack, same_stores_as, server_stack, Stack};
use sigillum_audit::{verify_checkpoint, verify_consistency, verify_inclusion, ActorKind, Detail, Event, EventKind};
use sigillum_core::audit_log::verify_log;
use sigillum_core::ports::{AuditStore, JobStore, NewJob, SystemClock};
use sigillum_core::{Actor, AuditLog, ClientInfo, EnvelopeId, NewEvent, Trail};

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

async fn open_log(s: &Stack) -> AuditLog {
    AuditLog::open(s.repo.clone(), s.vault.clone(), Arc::new(SystemClock), "test.sigillum.example/log").await.unwrap()
}

fn signer_event(kind: EventKind, env: Option<EnvelopeId>, i: i64) -> NewEvent {
    let actor = Actor {
        kind: ActorKind::Recipient,
        id: Some(format!("recipient-{i}")),
        name: Some("Zoë Signer".into()),
        email: Some("zoe.signer@example.org".into()),
    };
    let client = ClientInfo { ip: Some("203.0.113.77".parse().unwrap()), user_agent: Some(CHROME.into()) };
    NewEvent::new(kind, env, actor, client).document("ab".repeat(32)).detail("n", Detail::Int(i))
}

fn unb64(s: &str) -> Vec<u8> {
    B64.decode(s).unwrap()
}

/// Checks a trail the way a third party would: checkpoint signature, each leaf hash from the
/// event object, each inclusion proof, each disclosure against its commitments.
fn check_trail(trail: &Trail, verifier_key: &str) {
    let head = verify_checkpoint(&trail.checkpoint, verifier_key).unwrap();
    assert_eq!(head.size, trail.tree_size);
    for e in &trail.events {
        let event: Event = serde_json::from_value(e.event.clone()).unwrap();
        let leaf = sigillum_audit::leaf_hash(&event.canonical_bytes().unwrap());
        assert_eq!(B64.encode(leaf), e.leaf_hash);
        let proof: Vec<Vec<u8>> = e.inclusion_proof.iter().map(|h| unb64(h)).collect();
        verify_inclusion(e.seq, head.size, &leaf, &proof, &head.root).unwrap();
        if let Some(d) = &e.disclosed {
            event.check_disclosure(d).unwrap();
        }
    }
}

async fn trail_suite(s: Stack) {
    let log = open_log(&s).await;
    let env = s.new_envelope().await;
    let other = s.new_envelope().await;
    for (i, kind) in
        [EventKind::EnvelopeCreated, EventKind::DocumentUploaded, EventKind::EnvelopeSent].into_iter().enumerate()
    {
        log.record(signer_event(kind, Some(env), i as i64)).await.unwrap();
        log.record(signer_event(kind, Some(other), i as i64)).await.unwrap();
    }
    let signed = log.record(signer_event(EventKind::RecipientSigned, Some(env), 9).note("looks good")).await.unwrap();
    assert_eq!(signed.tree_size, signed.seq + 1, "the commit's checkpoint covers the event");

    let trail = log.envelope_trail(env, 0).await.unwrap();
    assert_eq!(trail.events.len(), 4, "only this envelope's events");
    assert_eq!(trail.events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 2, 4, 6]);
    check_trail(&trail, log.verifier_key());
    let last = trail.events.last().unwrap();
    assert_eq!(last.event["kind"], "recipient.signed");
    assert_eq!(last.event["device"]["browser"], "Chrome 120");
    assert_eq!(last.event["device"]["kind"], "desktop");
    let d = last.disclosed.as_ref().unwrap();
    assert_eq!(d.0["actor.email"].value, "zoe.signer@example.org");
    assert_eq!(d.0["actor.name"].value, "Zoë Signer");
    assert_eq!(d.0["ip"].value, "203.0.113.77");
    assert_eq!(d.0["note"].value, "looks good");

    // Only the events after a given sequence number (what a live stream asks for).
    let tail = log.envelope_trail(env, 3).await.unwrap();
    assert_eq!(tail.events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 6]);

    // Public proofs: every pair of published checkpoints is consistent.
    let cps = s.repo.checkpoints_from(0, 1000).await.unwrap();
    assert_eq!(cps.first().unwrap().size, 0, "the empty tree is signed at first start");
    assert_eq!(cps.last().unwrap().size, 7);
    for a in cps.iter().filter(|c| c.size > 0) {
        for b in cps.iter().filter(|b| b.size >= a.size) {
            let proof = log.consistency_proof(a.size, b.size).await.unwrap();
            verify_consistency(a.size, b.size, &a.root, &b.root, &proof).unwrap();
        }
    }
    assert!(log.inclusion_proof(7, 7).await.is_err());
    assert!(log.inclusion_proof(0, 8).await.is_err(), "beyond the tree");
    assert!(log.consistency_proof(0, 3).await.is_err());
    let report = verify_log(s.repo.as_ref(), log.verifier_key(), &[]).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.leaves, report.checkpoints_checked), (7, 8));

    // An event appended for a change marks the change's fallback job done in the same commit.
    let job = |id: &str| NewJob {
        id: id.into(),
        kind: "audit".into(),
        payload: "{}".into(),
        run_at_unix_ms: i64::MAX / 2,
        max_attempts: 3,
    };
    s.repo.enqueue(&[job("audit:settled"), job("audit:other")], 0).await.unwrap();
    let prepared = log.prepare(signer_event(EventKind::EnvelopeVoided, Some(env), 10)).await.unwrap();
    log.append(prepared.settling("audit:settled".into())).await.unwrap();
    let pending: Vec<String> = s.repo.pending_jobs().await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(pending, ["audit:other"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trail_proofs_and_disclosures_on_sqlite() {
    trail_suite(local_stack().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trail_proofs_and_disclosures_on_postgres() {
    trail_suite(server_stack().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_encrypted_and_dies_with_the_envelope_key() {
    let s = local_stack().await;
    let log = open_log(&s).await;
    let env = s.new_envelope().await;
    for i in 0..5 {
        log.record(signer_event(EventKind::DocumentViewed, Some(env), i)).await.unwrap();
    }
    log.record(signer_event(EventKind::AuthLogin, None, 0)).await.unwrap();
    drop(log);
    s.repo.close().await;
    for entry in std::fs::read_dir(s.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for secret in ["zoe.signer@example.org", "Zoë Signer", "203.0.113.77", "Chrome/120"] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} stored in clear in {}",
                    path.display()
                );
            }
        }
    }

    let s = common::same_stores_as(&s).await;
    let log = open_log(&s).await;
    let before = log.envelope_trail(env, 0).await.unwrap();
    assert!(before.events.iter().all(|e| e.disclosed.is_some()));
    s.vault.shred_envelope(env).await.unwrap();
    let after = log.envelope_trail(env, 0).await.unwrap();
    assert_eq!(after.events.len(), 5, "the tree keeps every leaf");
    assert!(after.events.iter().all(|e| e.disclosed.is_none()), "no personal data after shredding");
    check_trail(&after, log.verifier_key());
    assert!(verify_log(s.repo.as_ref(), log.verifier_key(), &[]).await.unwrap().ok);
}

/// Builds a log of 20 events in 20 commits, lets `tamper` edit the database directly, and
/// returns what `verify_log` finds.
async fn tampered(tamper: &str) -> Vec<String> {
    let s = local_stack().await;
    let log = open_log(&s).await;
    let env = s.new_envelope().await;
    for i in 0..20 {
        log.record(signer_event(EventKind::DocumentViewed, Some(env), i)).await.unwrap();
    }
    let clean = verify_log(s.repo.as_ref(), log.verifier_key(), &[]).await.unwrap();
    assert!(clean.ok, "{clean:?}");
    let published = log.checkpoint().await.unwrap().note;

    let pool = sqlx::SqlitePool::connect(&s.db_url).await.unwrap();
    match tamper {
        "edit one byte" => {
            let (event,): (Vec<u8>,) =
                sqlx::query_as("SELECT event FROM audit_leaves WHERE seq = 5").fetch_one(&pool).await.unwrap();
            let mut event = event;
            let at = event.windows(4).position(|w| w == b"\"n\":").unwrap() + 4;
            event[at] = if event[at] == b'5' { b'6' } else { b'5' };
            sqlx::query("UPDATE audit_leaves SET event = ? WHERE seq = 5").bind(event).execute(&pool).await.unwrap();
        }
        "delete one" => {
            sqlx::query("DELETE FROM audit_leaves WHERE seq = 7").execute(&pool).await.unwrap();
        }
        "reorder two" => {
            // Swap everything but the sequence numbers of leaves 3 and 4.
            sqlx::query("UPDATE audit_leaves SET seq = -1 WHERE seq = 3").execute(&pool).await.unwrap();
            sqlx::query("UPDATE audit_leaves SET seq = 3 WHERE seq = 4").execute(&pool).await.unwrap();
            sqlx::query("UPDATE audit_leaves SET seq = 4 WHERE seq = -1").execute(&pool).await.unwrap();
        }
        "truncate history consistently" => {
            // Cut the newest half off the log, its checkpoints and head with it, so the database
            // is self-consistent: only a checkpoint a party kept can tell.
            sqlx::query("DELETE FROM audit_leaves WHERE seq >= 10").execute(&pool).await.unwrap();
            sqlx::query("DELETE FROM audit_checkpoints WHERE size > 10").execute(&pool).await.unwrap();
            sqlx::query("UPDATE audit_log_head SET size = 10").execute(&pool).await.unwrap();
        }
        other => panic!("unknown tampering {other}"),
    }
    pool.close().await;
    let report = verify_log(s.repo.as_ref(), log.verifier_key(), &[published]).await.unwrap();
    assert!(!report.ok);
    report.problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_verify_finds_an_edited_byte() {
    let problems = tampered("edit one byte").await;
    assert!(problems.iter().any(|p| p == "leaf 5: event bytes do not match the leaf hash"), "{problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_verify_finds_a_deleted_event() {
    let problems = tampered("delete one").await;
    assert!(problems.iter().any(|p| p == "leaf 7 is missing (next stored leaf is 8)"), "{problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_verify_finds_reordered_events() {
    let problems = tampered("reorder two").await;
    assert!(problems.iter().any(|p| p.starts_with("leaf 3: stored tree hashes differ")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("does not match the recomputed tree")), "{problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_verify_finds_a_truncated_history_through_a_kept_checkpoint() {
    let problems = tampered("truncate history consistently").await;
    assert_eq!(problems, vec!["external checkpoint 1 (size 20) covers leaves that are not stored".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_another_node_sees_new_events_within_a_second() {
    let a = local_stack().await;
    let b = same_stores_as(&a).await;
    let log_a = open_log(&a).await;
    let log_b = open_log(&b).await;
    assert_eq!(log_a.verifier_key(), log_b.verifier_key(), "one log key for the deployment");
    let mut watch = log_b.subscribe();
    let env = a.new_envelope().await;
    for i in 0..3 {
        let start = Instant::now();
        let rec = log_a.record(signer_event(EventKind::LinkOpened, Some(env), i)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), watch.wait_for(|size| *size > rec.seq)).await.unwrap().unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}

/// PostgreSQL nodes hear each other at once (LISTEN/NOTIFY): an enqueued job and an append each
/// reach the other node's listener when their transaction commits; SQLite has nobody to tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_hear_each_others_jobs_and_appends() {
    use sigillum_core::ports::{JobStore, NewJob};
    use sigillum_store::notify::Notice;
    assert!(local_stack().await.repo.listen().await.unwrap().is_none());
    let a = server_stack().await;
    let b = same_stores_as(&a).await;
    let log_a = open_log(&a).await;
    let mut heard = b.repo.listen().await.unwrap().expect("a listener on PostgreSQL");
    let job = NewJob {
        id: "notify-1".into(),
        kind: "advance".into(),
        payload: "{}".into(),
        run_at_unix_ms: 0,
        max_attempts: 1,
    };
    a.repo.enqueue(std::slice::from_ref(&job), 0).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), heard.next()).await.unwrap().unwrap();
    assert_eq!(n, Notice::Jobs);
    let env = a.new_envelope().await;
    log_a.record(signer_event(EventKind::LinkOpened, Some(env), 1)).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), heard.next()).await.unwrap().unwrap();
    assert_eq!(n, Notice::Audit);
    // Enqueueing nothing (an idempotent re-enqueue still notifies; an empty list does not), or
    // only jobs due later (the nodes' polls find those when they are due).
    a.repo.enqueue(&[], 0).await.unwrap();
    let later = NewJob { id: "notify-later".into(), run_at_unix_ms: 60_000, ..job.clone() };
    a.repo.enqueue(&[later], 0).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(300), heard.next()).await.is_err(), "nothing due was enqueued");
    a.repo.enqueue(&[NewJob { id: "notify-2".into(), ..job }], 0).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), heard.next()).await.unwrap().unwrap();
    assert_eq!(n, Notice::Jobs);
}

/// A node that heard of another node's append catches up before it appends, instead of laying
/// its batch out against the log as it left it and losing the race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_heard_of_another_nodes_append_does_not_lose_a_try() {
    use sigillum_store::notify::Notice;
    let a = server_stack().await;
    let b = same_stores_as(&a).await;
    let (log_a, log_b) = (open_log(&a).await, open_log(&b).await);
    let mut heard = b.repo.listen().await.unwrap().expect("a listener on PostgreSQL");
    let env = a.new_envelope().await;
    for i in 0..3 {
        // B appends (and remembers the log as it left it), then A appends; B hears both.
        log_b.record(signer_event(EventKind::LinkOpened, Some(env), 2 * i)).await.unwrap();
        log_a.record(signer_event(EventKind::LinkOpened, Some(env), 2 * i + 1)).await.unwrap();
        let mut appends = 0;
        while appends < 2 {
            let n = tokio::time::timeout(Duration::from_secs(2), heard.next()).await.unwrap().unwrap();
            appends += usize::from(n == Notice::Audit);
        }
    }
    log_b.record(signer_event(EventKind::LinkOpened, Some(env), 99)).await.unwrap();
    assert_eq!(b.repo.audit_append_tries_lost(), 0, "B caught up before each append");
    assert_eq!(log_b.checkpoint().await.unwrap().size, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_writers_on_one_postgres_get_gap_free_sequence_numbers_and_one_root() {
    let first = server_stack().await;
    let mut stacks = vec![first];
    for _ in 0..3 {
        let s = same_stores_as(&stacks[0]).await;
        stacks.push(s);
    }
    let env = stacks[0].new_envelope().await;
    // Four "processes" (own pools, own writer) open the log at the same time.
    let logs = futures::future::join_all(stacks.iter().map(open_log)).await;
    let mut tasks = Vec::new();
    for (w, log) in logs.iter().enumerate() {
        for t in 0..25 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..100 {
                    let e = if i % 4 == 0 { Some(env) } else { None };
                    seqs.push(
                        log.record(signer_event(EventKind::DocumentViewed, e, (w * 10_000 + t * 100 + i) as i64))
                            .await
                            .unwrap()
                            .seq,
                    );
                }
                seqs
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), 10_000);
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), 10_000, "sequence numbers are unique");
    assert_eq!((*unique.first().unwrap(), *unique.last().unwrap()), (0, 9_999), "and gap-free");

    let roots: BTreeSet<[u8; 32]> = futures::future::join_all(logs.iter().map(|l| l.checkpoint()))
        .await
        .into_iter()
        .map(|c| c.unwrap().root)
        .collect();
    assert_eq!(roots.len(), 1, "every node publishes the same root");
    let report = verify_log(stacks[0].repo.as_ref(), logs[0].verifier_key(), &[]).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.leaves, 10_000);
    println!("4 writers, 10 000 events, {} commits", report.checkpoints_checked - 1);
}

#[tokio::test]
async fn two_writers_taking_turns_keep_the_tree_and_each_envelope_chain_whole() {
    // Each writer remembers the tree's edge and envelope heads between its commits; when the other
    // wrote in between it must notice and read them again.
    let a = local_stack().await;
    let b = same_stores_as(&a).await;
    let (log_a, log_b) = (open_log(&a).await, open_log(&b).await);
    let env = a.new_envelope().await;
    let mut seqs = Vec::new();
    for i in 0..24 {
        let log = if (i / 3) % 2 == 0 { &log_a } else { &log_b };
        seqs.push(log.record(signer_event(EventKind::DocumentViewed, Some(env), i)).await.unwrap().seq);
    }
    assert_eq!(seqs.windows(2).filter(|w| w[1] != w[0] + 1).count(), 0, "gap-free: {seqs:?}");
    let report = verify_log(a.repo.as_ref(), log_a.verifier_key(), &[]).await.unwrap();
    assert!(report.ok, "{report:?}");
    let trail = log_b.envelope_trail(env, 0).await.unwrap();
    let trail_seqs: Vec<u64> = trail.events.iter().map(|e| e.seq).collect();
    assert_eq!(trail_seqs, seqs, "the envelope's chain has every event of both writers, in order");
    check_trail(&trail, log_a.verifier_key());

    // A writer whose own last commit is the newest (so it predicts) meets an envelope whose
    // newest event it never saw: it must chain onto that event, found under the lock.
    let (x, y) = (a.new_envelope().await, a.new_envelope().await);
    let first_x = log_b.record(signer_event(EventKind::DocumentViewed, Some(x), 100)).await.unwrap().seq;
    log_a.record(signer_event(EventKind::DocumentViewed, Some(y), 101)).await.unwrap();
    let second_x = log_a.record(signer_event(EventKind::DocumentViewed, Some(x), 102)).await.unwrap().seq;
    let trail = log_a.envelope_trail(x, 0).await.unwrap();
    assert_eq!(trail.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [first_x, second_x]);
    check_trail(&trail, log_a.verifier_key());
    assert!(verify_log(a.repo.as_ref(), log_a.verifier_key(), &[]).await.unwrap().ok);
}
