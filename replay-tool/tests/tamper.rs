//! Tamper evidence: a history written through the API and sealed verifies clean; each kind of
//! tampering, done as a database superuser with the append-only triggers disabled, is
//! reported by `verify` at the right position with the right rule, and exits 1.

use pettycash_projections::seal::{seal_all, SealKey};
use pettycash_tests::seal_everything;
use pettycash_tests::serde_json::{self, Value};
use pettycash_tests::DEV_SECRET_KEY;
use pettycash_tests::{Cast, TestApp};
use reqwest::StatusCode;
use std::process::Output;
use uuid::Uuid;

/// The key the test application seals with (its SECRET_KEY is the development default).
fn key() -> SealKey {
    SealKey::derive(DEV_SECRET_KEY)
}

async fn verify(url: &str, secret: Option<&str>, args: &[&str]) -> (Output, Value) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pettycash-replay"));
    cmd.arg("verify").args(args).arg("--format").arg("json").env("DATABASE_URL", url);
    cmd.env_remove("SEAL_KEY").env_remove("SECRET_KEY");
    if let Some(s) = secret {
        cmd.env("SEAL_KEY", s);
    }
    let out = cmd.output().await.expect("run pettycash-replay");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

async fn text_verify(url: &str) -> (Output, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pettycash-replay"))
        .arg("verify")
        .env("DATABASE_URL", url)
        .env("SEAL_KEY", DEV_SECRET_KEY)
        .output()
        .await
        .expect("run pettycash-replay");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

struct Sealed {
    app: TestApp,
    fund: Uuid,
}

/// A fund, three paid requisitions and a rejected one, all sealed; `verify` is clean.
async fn sealed_history() -> Sealed {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    for amount in ["100.50", "200", "300.25"] {
        let id = app.submitted(&c.staff, fund, amount).await;
        app.approve_by(id, &[&c.head]).await;
        assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);
    }
    let rejected = app.submitted(&c.staff, fund, "50").await;
    let r = app
        .post(&c.head, &format!("/api/requisitions/{rejected}/reject"), serde_json::json!({"reason": "no"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    seal_everything(&app.pool, &key(), 7).await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&app.pool).await.unwrap();

    let (out, report) = verify(&app.database_url, Some(DEV_SECRET_KEY), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{report:#}\n{}", String::from_utf8_lossy(&out.stderr));
    let s = &report["summary"];
    assert_eq!(s["hashed_events"], events);
    assert!(s["seals"].as_u64().unwrap() >= 3, "several seals (7 events each): {s}");
    assert_eq!(s["unsealed_events"], 0, "{s}");
    assert_eq!(s["seal_key_id"], key().id.as_str());
    assert_eq!(s["not_checked"], serde_json::json!([]));
    Sealed { app, fund }
}

impl Sealed {
    /// Runs `sql` as the superuser with the append-only triggers off, as an attacker with full
    /// write access to the database would.
    async fn tamper(&self, sql: &str) {
        let mut tx = self.app.pool.begin().await.unwrap();
        for statement in [
            "ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete",
            "ALTER TABLE event_seals DISABLE TRIGGER event_seals_no_update_or_delete",
            sql,
            "ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete",
            "ALTER TABLE event_seals ENABLE TRIGGER event_seals_no_update_or_delete",
        ] {
            sqlx::raw_sql(statement).execute(&mut *tx).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        tx.commit().await.unwrap();
    }

    async fn position(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).bind(self.fund.to_string()).fetch_one(&self.app.pool).await.unwrap()
    }

    /// `verify` exits 1 and reports `rule` at `position` (JSON and text).
    async fn assert_reported(&self, position: i64, rule: &str) -> Value {
        let (out, report) = verify(&self.app.database_url, Some(DEV_SECRET_KEY), &[]).await;
        assert_eq!(out.status.code(), Some(1), "{report:#}\n{}", String::from_utf8_lossy(&out.stderr));
        let found = report["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["position"] == position && v["rule"] == rule);
        assert!(found, "no {rule} at {position}: {report:#}");
        let (out, text) = text_verify(&self.app.database_url).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("VIOLATION position={position} ")) && l.contains(rule)),
            "{text}"
        );
        report
    }
}

const LAST_DISBURSEMENT: &str = "SELECT max(global_position) FROM events WHERE aggregate_type = 'fund' \
     AND aggregate_id = $1 AND event_type = 'CashDisbursed'";
const FIRST_DISBURSEMENT: &str = "SELECT min(global_position) FROM events WHERE aggregate_type = 'fund' \
     AND aggregate_id = $1 AND event_type = 'CashDisbursed'";

#[tokio::test]
async fn a_changed_payload_is_reported_at_its_event() {
    let h = sealed_history().await;
    let p = h.position(FIRST_DISBURSEMENT).await;
    h.tamper(&format!(
        "UPDATE events SET payload = jsonb_set(payload, '{{CashDisbursed,reference}}', '\"cash box\"')
         WHERE global_position = {p}"
    ))
    .await;
    let report = h.assert_reported(p, "hash_mismatch").await;
    // Only that event: its successor links to the stored hash, which is unchanged.
    let mismatches: Vec<&Value> =
        report["violations"].as_array().unwrap().iter().filter(|v| v["rule"] == "hash_mismatch").collect();
    assert_eq!(mismatches.len(), 1, "{report:#}");
}

#[tokio::test]
async fn changed_metadata_is_reported_at_its_event() {
    let h = sealed_history().await;
    let p: i64 = sqlx::query_scalar(
        "SELECT min(global_position) FROM events WHERE event_type = 'RequisitionApproved'",
    )
    .fetch_one(&h.app.pool)
    .await
    .unwrap();
    h.tamper(&format!(
        "UPDATE events SET metadata = metadata || '{{\"client_ip\": \"10.9.9.9\"}}' WHERE global_position = {p}"
    ))
    .await;
    h.assert_reported(p, "hash_mismatch").await;
}

#[tokio::test]
async fn a_deleted_event_is_reported_at_its_position() {
    let h = sealed_history().await;
    // The last event of the fund's stream: no successor's sequence gap can give it away, only
    // the seal that covers it.
    let p = h.position(LAST_DISBURSEMENT).await;
    h.tamper(&format!("DELETE FROM events WHERE global_position = {p}")).await;
    let report = h.assert_reported(p, "event_missing").await;
    assert!(report["violations"].as_array().unwrap().iter().any(|v| v["rule"] == "seal_chain_mismatch"));
}

#[tokio::test]
async fn two_swapped_events_are_both_reported() {
    let h = sealed_history().await;
    let a = h.position(FIRST_DISBURSEMENT).await;
    let b = h.position(LAST_DISBURSEMENT).await;
    // Exchange what the two disbursements say (amounts, balances, requisitions).
    h.tamper(&format!(
        "UPDATE events e SET payload = o.payload, metadata = o.metadata
         FROM events o
         WHERE (e.global_position, o.global_position) IN (({a}, {b}), ({b}, {a}))"
    ))
    .await;
    h.assert_reported(a, "hash_mismatch").await;
    h.assert_reported(b, "hash_mismatch").await;
}

#[tokio::test]
async fn reordered_events_are_reported() {
    let h = sealed_history().await;
    let a = h.position(FIRST_DISBURSEMENT).await;
    let b = h.position(LAST_DISBURSEMENT).await;
    // Exchange the two events' places in the global order, keeping each one's content.
    h.tamper(&format!(
        "ALTER TABLE events ALTER COLUMN global_position SET GENERATED BY DEFAULT;
         UPDATE events SET global_position = -1 WHERE global_position = {a};
         UPDATE events SET global_position = {a} WHERE global_position = {b};
         UPDATE events SET global_position = {b} WHERE global_position = -1;
         ALTER TABLE events ALTER COLUMN global_position SET GENERATED ALWAYS"
    ))
    .await;
    // The position is part of each event's hash.
    h.assert_reported(a, "hash_mismatch").await;
    h.assert_reported(b, "hash_mismatch").await;
}

#[tokio::test]
async fn an_event_inserted_with_a_valid_hash_inside_the_sealed_history_is_reported() {
    let h = sealed_history().await;
    // A plain INSERT with a made-up MAC (the store refuses one without): the trigger gives it a
    // correct stream hash. Backdated into the sealed
    // part of the global order by taking the transaction id of its stream's last event, so it
    // reads right after its predecessor (stream order intact) and before later sealed events.
    let fund = h.fund.to_string();
    let forged: i64 = sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata,
                             transaction_id)
         SELECT 'fund', $1, max(sequence) + 1, 'CashDisbursed', '1',
                jsonb_build_object('CashDisbursed', jsonb_build_object(
                    'payment_id', gen_random_uuid(), 'requisition_id', gen_random_uuid(), 'amount', '1.00',
                    'balance_after', '0', 'method', 'cash', 'reference', NULL,
                    'paid_by', gen_random_uuid())),
                '{\"actor_id\": \"operator\", \"mac\": \"00\"}',
                (SELECT transaction_id FROM events WHERE aggregate_type = 'fund' AND aggregate_id = $1
                 ORDER BY sequence DESC LIMIT 1)
         FROM events WHERE aggregate_type = 'fund' AND aggregate_id = $1
         RETURNING global_position",
    )
    .bind(&fund)
    .fetch_one(&h.app.pool)
    .await
    .unwrap();
    let report = h.assert_reported(forged, "event_not_sealed").await;
    h.assert_reported(forged, "event_unauthenticated").await;
    let hash_mismatches =
        report["violations"].as_array().unwrap().iter().filter(|v| v["rule"] == "hash_mismatch").count();
    assert_eq!(hash_mismatches, 0, "its own hash is valid: {report:#}");
}

#[tokio::test]
async fn an_event_rewritten_with_a_recomputed_hash_is_reported() {
    let h = sealed_history().await;
    // The last event of its stream, so no successor's link breaks: only the seal can tell.
    let p = h.position(LAST_DISBURSEMENT).await;
    h.tamper(&format!(
        "UPDATE events e SET
             payload = jsonb_set(e.payload, '{{CashDisbursed,reference}}', '\"rewritten\"'),
             event_hash = event_hash_v2(
                 (SELECT p.event_hash FROM events p WHERE p.aggregate_type = e.aggregate_type
                    AND p.aggregate_id = e.aggregate_id AND p.sequence = e.sequence - 1),
                 e.global_position, e.sequence, e.recorded_at,
                 event_content_digest(e.aggregate_type, e.aggregate_id, e.sequence, e.event_type,
                     e.event_version, jsonb_set(e.payload, '{{CashDisbursed,reference}}', '\"rewritten\"'),
                     e.metadata),
                 e.metadata ->> 'mac')
         WHERE global_position = {p}"
    ))
    .await;
    let report = h.assert_reported(p, "event_rewritten").await;
    // Its MAC no longer fits its content either.
    h.assert_reported(p, "event_unauthenticated").await;
    let hash_mismatches =
        report["violations"].as_array().unwrap().iter().filter(|v| v["rule"] == "hash_mismatch").count();
    assert_eq!(hash_mismatches, 0, "the rewritten hash is consistent: {report:#}");
}

#[tokio::test]
async fn a_changed_or_removed_seal_is_reported() {
    let h = sealed_history().await;
    let (id, last): (i64, i64) =
        sqlx::query_as("SELECT seal_id, last_position FROM event_seals ORDER BY seal_id LIMIT 1")
            .fetch_one(&h.app.pool)
            .await
            .unwrap();
    // Whoever changes a seal cannot recompute its MAC without the key.
    h.tamper(&format!(
        "UPDATE event_seals SET sealed_at = sealed_at + interval '1 hour' WHERE seal_id = {id}"
    ))
    .await;
    h.assert_reported(last, "seal_unauthenticated").await;

    // Without the key the change cannot be seen: the report says what was not checked.
    let (out, report) = verify(&h.app.database_url, None, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert!(report["summary"]["not_checked"][0].as_str().unwrap().contains("no key given"));

    // The wrong key: every seal fails, naming the key ids, and no event authenticates.
    let (out, report) = verify(&h.app.database_url, Some(&"w".repeat(40)), &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let violations = report["violations"].as_array().unwrap();
    let first = violations.iter().find(|v| v["rule"] == "seal_unauthenticated").expect("seals fail");
    assert!(first["detail"].as_str().unwrap().contains(&key().id), "{first}");
    let unauthenticated = violations.iter().filter(|v| v["rule"] == "event_unauthenticated").count();
    assert_eq!(unauthenticated as i64, h.app.event_count().await, "{report:#}");

    // A removed seal breaks the sequence of seal ids.
    let h = sealed_history().await;
    let (id, last): (i64, i64) =
        sqlx::query_as("SELECT seal_id, last_position FROM event_seals ORDER BY seal_id LIMIT 1 OFFSET 1")
            .fetch_one(&h.app.pool)
            .await
            .unwrap();
    h.tamper(&format!("DELETE FROM event_seals WHERE seal_id = {id}")).await;
    let next: i64 = sqlx::query_scalar("SELECT last_position FROM event_seals WHERE seal_id = $1")
        .bind(id + 1)
        .fetch_one(&h.app.pool)
        .await
        .unwrap();
    h.assert_reported(next, "seal_missing").await;
    let _ = last;
}

#[tokio::test]
async fn an_unreadable_seal_key_file_is_a_usage_error() {
    let app = TestApp::spawn().await;
    let (out, _) = verify(&app.database_url, None, &["--seal-key-file", "/nonexistent/seal.key"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("seal key file"));
}

#[tokio::test]
async fn the_sealer_refuses_to_seal_over_an_altered_seal() {
    let h = sealed_history().await;
    h.tamper("UPDATE event_seals SET event_count = event_count + 1 WHERE seal_id = (SELECT max(seal_id) FROM event_seals)")
        .await;
    let err = seal_all(&h.app.pool, &key(), 100).await.unwrap_err();
    assert!(err.to_string().contains("does not authenticate"), "{err}");
    let other = seal_all(&h.app.pool, &SealKey::derive(&"o".repeat(40)), 100).await.unwrap_err();
    assert!(other.to_string().contains("made with key"), "{other}");
}

#[tokio::test]
async fn the_service_seals_by_itself() {
    let app = TestApp::spawn_with(|c| c.seal_interval_secs = 1).await;
    let c = Cast::new(&app).await;
    app.fund(&c.admin, "100").await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&app.pool).await.unwrap();
    let mut sealed = 0i64;
    for _ in 0..100 {
        sealed = sqlx::query_scalar("SELECT coalesce(max(event_count), 0) FROM event_seals")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if sealed >= events {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(sealed, events, "the service's sealer covered every event within 10 s");
    let (out, report) = verify(&app.database_url, Some(DEV_SECRET_KEY), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["unsealed_events"], 0);

    // Ops see it in /health/.
    let health = app.send(None, reqwest::Method::GET, "/health/", None).await;
    let sealing = &health.body["sealing"];
    assert_eq!(sealing["sealed_through"], report["summary"]["sealed_through"], "{sealing}");
    assert_eq!(sealing["unsealed_events"], 0, "{sealing}");
    assert!(sealing["last_sealed_at"].is_string(), "{sealing}");
}

/// The events the seals refused, and the positions they cover.
async fn refused_and_sealed(pool: &sqlx::PgPool) -> (Vec<i64>, Vec<i64>) {
    let seals: Vec<pettycash_projections::seal::Seal> = sqlx::query_as(&format!(
        "SELECT {} FROM event_seals ORDER BY seal_id",
        pettycash_projections::seal::SEAL_COLUMNS
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    let refused = seals.iter().flat_map(|s| s.refused().collect::<Vec<_>>()).collect();
    let sealed = seals.iter().flat_map(|s| s.entries().map(|(p, _)| p).collect::<Vec<_>>()).collect();
    (refused, sealed)
}

#[tokio::test]
async fn an_approval_inserted_into_the_database_is_not_acted_on_named_by_verify_and_never_sealed() {
    let h = sealed_history().await;
    let c = Cast::new(&h.app).await;
    let pending = h.app.submitted(&c.staff, h.fund, "120").await;
    let balance = h.app.balance(&c.auditor, h.fund).await;
    let id = pending.to_string();

    // What someone with INSERT rights on `events` alone can write: a made-up approver, the
    // stream's next sequence (the trigger gives it a valid hash), and the MAC of the event
    // before it (they cannot compute one).
    let forge = |metadata: &'static str| {
        format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'requisition', '{id}', max(sequence) + 1, 'RequisitionApproved', '1',
                    jsonb_build_object('RequisitionApproved', jsonb_build_object('step', 0,
                        'role', 'department_head', 'approver_id', gen_random_uuid(), 'completes_chain', true)),
                    {metadata}
             FROM events WHERE aggregate_type = 'requisition' AND aggregate_id = '{id}'
             RETURNING global_position"
        )
    };
    let without_mac = sqlx::query_scalar::<_, i64>(&forge("'{\"actor_id\": \"operator\"}'::jsonb"))
        .fetch_one(&h.app.pool)
        .await
        .unwrap_err();
    assert!(without_mac.to_string().contains("events_carry_a_mac"), "the store refuses it: {without_mac}");
    let copied_mac =
        "(SELECT metadata FROM events WHERE aggregate_type = 'requisition' AND aggregate_id = '{id}' \
                      ORDER BY sequence DESC LIMIT 1)";
    let forged: i64 =
        sqlx::query_scalar(&forge(copied_mac).replace("{id}", &id)).fetch_one(&h.app.pool).await.unwrap();

    // Treasury cannot pay it, and nothing moves.
    let r = h.app.pay(&c.treasury, pending).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert_eq!(r.code(), "integrity_violation", "{r:?}");
    assert_eq!(h.app.balance(&c.auditor, h.fund).await, balance);

    // The sealer refuses it and seals on past it.
    let later = h.app.submitted(&c.staff, h.fund, "5").await;
    seal_everything(&h.app.pool, &key(), 7).await;
    let (refused, sealed) = refused_and_sealed(&h.app.pool).await;
    assert_eq!(refused, vec![forged]);
    assert!(!sealed.contains(&forged));
    let later_position: i64 = sqlx::query_scalar(
        "SELECT max(global_position) FROM events WHERE aggregate_type = 'requisition' AND aggregate_id = $1",
    )
    .bind(later.to_string())
    .fetch_one(&h.app.pool)
    .await
    .unwrap();
    assert!(sealed.contains(&later_position), "events after it are sealed");
    let health = h.app.send(None, reqwest::Method::GET, "/health/", None).await;
    assert_eq!(health.body["sealing"]["refused_events"], 1, "{health:?}");

    // verify names it, with the key and (from the seal) without; nothing else is wrong.
    let report = h.assert_reported(forged, "event_unauthenticated").await;
    h.assert_reported(forged, "event_refused").await;
    let others: Vec<&Value> =
        report["violations"].as_array().unwrap().iter().filter(|v| v["position"] != forged).collect();
    assert!(others.is_empty(), "only the forged event is reported: {others:#?}");
    let (out, keyless) = verify(&h.app.database_url, None, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        keyless["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["position"] == forged && v["rule"] == "event_refused"),
        "{keyless:#}"
    );
}

#[tokio::test]
async fn an_event_without_a_mac_written_past_the_constraint_is_reported_and_refused() {
    let h = sealed_history().await;
    let fund = h.fund.to_string();
    // The table's owner can drop the constraint; the event still does not pass.
    h.tamper(&format!(
        "ALTER TABLE events DROP CONSTRAINT events_carry_a_mac;
         INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'fund', '{fund}', max(sequence) + 1, 'CashDisbursed', '1',
                jsonb_build_object('CashDisbursed', jsonb_build_object(
                    'payment_id', gen_random_uuid(), 'requisition_id', gen_random_uuid(), 'amount', '1.00',
                    'balance_after', '0', 'method', 'cash', 'reference', NULL, 'paid_by', gen_random_uuid())),
                '{{\"actor_id\": \"operator\"}}'
         FROM events WHERE aggregate_type = 'fund' AND aggregate_id = '{fund}'"
    ))
    .await;
    let p = h.position(LAST_DISBURSEMENT).await;
    seal_everything(&h.app.pool, &key(), 100).await;
    assert_eq!(refused_and_sealed(&h.app.pool).await.0, vec![p]);
    h.assert_reported(p, "event_unsigned").await;
    h.assert_reported(p, "event_refused").await;
}
