//! Group commit (`commands/src/group.rs`): appends that are ready at the same moment go into
//! the store in one statement, and each keeps its own checks and answer.
//!
//! These tests call the event store directly. On the test's single-threaded runtime, all the
//! appends of a `join_all` are queued before the flusher task they start gets to run, so they
//! meet in one group.

use futures::future::join_all;
use pettycash_commands::store::{AppendError, StreamAppend};
use pettycash_commands::{EventStore, SessionGuard};
use pettycash_tests::fresh_database;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// `events` new events of a new requisition stream (or after `after` events).
fn stream(id: Uuid, after: usize, events: usize) -> StreamAppend {
    StreamAppend {
        aggregate_type: "requisition",
        aggregate_id: id.to_string(),
        expected_version: after,
        events: (0..events)
            .map(|i| {
                let payload = json!({ "Note": { "n": after + i + 1 } });
                ("Note".to_string(), "1".to_string(), payload)
            })
            .collect(),
        after: None,
    }
}

fn metadata(n: usize) -> Value {
    json!({ "request_id": format!("request-{n}"), "actor_id": Uuid::nil() })
}

/// (sequence, position, transaction id, request id of the metadata) of a stream's events.
async fn stored(pool: &PgPool, id: Uuid) -> Vec<(i64, i64, String, String)> {
    sqlx::query_as(
        "SELECT sequence, global_position, transaction_id::text, metadata->>'request_id' FROM events
         WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(id.to_string())
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn appends_ready_together_share_one_transaction_each_with_its_own_events_and_answer() {
    let (_, pool) = fresh_database().await;
    let store = EventStore::new(pool.clone(), pettycash_tests::event_key());
    let ids: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
    let appends = ids.iter().enumerate().map(|(n, id)| {
        let store = store.clone();
        async move { store.append(&[stream(*id, 0, 2)], &metadata(n), Vec::new(), None).await }
    });
    let answers = join_all(appends).await;

    let mut transactions = std::collections::HashSet::new();
    for (n, (id, answer)) in ids.iter().zip(answers).enumerate() {
        let position = answer.unwrap_or_else(|e| panic!("append {n} failed: {e}"));
        let events = stored(&pool, *id).await;
        assert_eq!(events.len(), 2, "append {n}: both events written");
        let (first, second) = (&events[0], &events[1]);
        assert_eq!((first.0, second.0), (1, 2));
        assert!(second.1 > first.1, "append {n}: its events in order");
        assert_eq!(position, second.1, "append {n}: answered with the position of its last event");
        for event in &events {
            assert_eq!(event.3, format!("request-{n}"), "append {n}: its own metadata");
        }
        transactions.insert(first.2.clone());
        transactions.insert(second.2.clone());
    }
    assert_eq!(transactions.len(), 1, "40 appends queued together were written by one transaction");
    let hashed: i64 =
        sqlx::query_scalar("SELECT count(event_hash) FROM events").fetch_one(&pool).await.unwrap();
    assert_eq!(hashed, 80, "every event carries its hash (each found its predecessor)");
}

#[tokio::test]
async fn a_stale_append_fails_alone_and_the_rest_of_its_group_is_written() {
    let (_, pool) = fresh_database().await;
    let store = EventStore::new(pool.clone(), pettycash_tests::event_key());
    let taken = Uuid::now_v7();
    store.append(&[stream(taken, 0, 1)], &metadata(0), Vec::new(), None).await.unwrap();

    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    let mut appends: Vec<_> = ids.iter().map(|id| (*id, stream(*id, 0, 1))).collect();
    // Decided on a stale state: the stream already has an event 1.
    appends.insert(10, (taken, stream(taken, 0, 2)));
    let answers = join_all(appends.iter().enumerate().map(|(n, (_, s))| {
        let store = store.clone();
        async move { store.append(std::slice::from_ref(s), &metadata(n + 1), Vec::new(), None).await }
    }))
    .await;

    for ((id, _), answer) in appends.iter().zip(&answers) {
        if *id == taken {
            assert!(matches!(answer, Err(AppendError::Conflict("requisition"))), "stale append: {answer:?}");
        } else {
            let position = answer.as_ref().expect("a fresh stream's append succeeds");
            assert_eq!(stored(&pool, *id).await.last().map(|e| e.1), Some(*position));
        }
    }
    assert_eq!(stored(&pool, taken).await.len(), 1, "nothing of the stale append was written");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
    assert_eq!(total, 21);
}

#[tokio::test]
async fn two_appends_at_the_same_sequence_at_once_write_exactly_one() {
    let (_, pool) = fresh_database().await;
    let store = EventStore::new(pool.clone(), pettycash_tests::event_key());
    let id = Uuid::now_v7();
    let answers = join_all((0..6).map(|n| {
        let store = store.clone();
        async move { store.append(&[stream(id, 0, 1)], &metadata(n), Vec::new(), None).await }
    }))
    .await;
    let written = answers.iter().filter(|a| a.is_ok()).count();
    let conflicts = answers.iter().filter(|a| matches!(a, Err(AppendError::Conflict(_)))).count();
    assert_eq!((written, conflicts), (1, 5), "{answers:?}");
    assert_eq!(stored(&pool, id).await.len(), 1);
}

#[tokio::test]
async fn an_append_whose_session_changed_writes_nothing_and_its_group_is_written() {
    let (_, pool) = fresh_database().await;
    let store = EventStore::new(pool.clone(), pettycash_tests::event_key());
    let user = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO users (id, email, name, roles, active, last_position)
         VALUES ($1, 'clerk@example.test', 'Clerk', '{staff,treasury}', true, 0)",
    )
    .bind(user)
    .execute(&pool)
    .await
    .unwrap();
    for (token, revoked) in [(&b"live"[..], false), (&b"ended"[..], true)] {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, expires_at, revoked_at)
             VALUES ($1, $2, now() + interval '1 hour', CASE WHEN $3 THEN now() END)",
        )
        .bind(token)
        .bind(user)
        .bind(revoked)
        .execute(&pool)
        .await
        .unwrap();
    }
    let guard = |token: &[u8], roles: &[&str]| SessionGuard {
        token_hash: token.to_vec(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        sponsors: vec![],
        unit_id: None,
    };
    let cases = [
        ("live session, same roles", Some(guard(b"live", &["staff", "treasury"])), true),
        ("ended session", Some(guard(b"ended", &["staff", "treasury"])), false),
        ("roles changed since", Some(guard(b"live", &["staff"])), false),
        (
            "unit changed since",
            Some(SessionGuard { unit_id: Some(Uuid::now_v7()), ..guard(b"live", &["staff", "treasury"]) }),
            false,
        ),
        ("unknown session", Some(guard(b"forged", &["staff", "treasury"])), false),
        ("no guard (operator)", None, true),
        ("live session again", Some(guard(b"live", &["staff", "treasury"])), true),
    ];
    let ids: Vec<Uuid> = cases.iter().map(|_| Uuid::now_v7()).collect();
    let answers = join_all(cases.iter().zip(&ids).enumerate().map(|(n, ((_, g, _), id))| {
        let store = store.clone();
        async move { store.append(&[stream(*id, 0, 2)], &metadata(n), Vec::new(), g.as_ref()).await }
    }))
    .await;
    for (((case, _, written), id), answer) in cases.iter().zip(&ids).zip(&answers) {
        let events = stored(&pool, *id).await;
        if *written {
            assert!(answer.is_ok(), "{case}: {answer:?}");
            assert_eq!(events.len(), 2, "{case}");
        } else {
            assert!(matches!(answer, Err(AppendError::SessionChanged)), "{case}: {answer:?}");
            assert!(events.is_empty(), "{case}: nothing written");
        }
    }
}
