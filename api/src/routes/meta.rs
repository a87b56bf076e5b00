//! The API index, health and the OpenAPI document.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use std::time::Duration;
use utoipa::{OpenApi, ToSchema};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api", get(index))
        .route("/health", get(health))
        .route("/api/openapi.json", get(openapi))
}

/// Endpoints and the version.
#[utoipa::path(get, path = "/api/", tag = "meta", responses((status = 200, description = "endpoint index")))]
pub async fn index() -> Json<serde_json::Value> {
    let doc = crate::openapi::ApiDoc::openapi();
    let mut endpoints = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                endpoints.push(json!({"method": method, "path": path, "summary": op.summary}));
            }
        }
    }
    Json(
        json!({"name": "Petty Cash API", "version": VERSION, "openapi": "/api/openapi.json", "endpoints": endpoints}),
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    #[schema(example = "ok")]
    pub database: &'static str,
    pub version: &'static str,
    /// Each projection version's state, position and lag (events not yet applied).
    pub projections: Vec<ProjectionHealth>,
    /// How far the seals over the event store reach (tamper evidence). A growing
    /// `unsealed_events` or an old `last_sealed_at` means the sealer is not running or has
    /// stopped (it stops on a seal that does not authenticate: see the runbook).
    pub sealing: SealingHealth,
    /// The mail outbox: what waits, what keeps failing, and this process's sender.
    pub mail: MailHealth,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct MailHealth {
    /// This process's sender: `smtp`, `folder` (development) or `off` (`--no-projections`, or
    /// no `EMAIL_HOST` with DEBUG off: mail waits).
    #[schema(example = "smtp")]
    pub sender: &'static str,
    /// Mail not sent yet (due, waiting for a retry, or claimed by a sender right now), counted
    /// up to [`MAIL_COUNT_CAP`]: a larger backlog shows as the cap (`/health/` stays one cheap
    /// query however much mail waits).
    pub queued: i64,
    /// Of those (of the first [`MAIL_COUNT_CAP`]), mail whose last attempt failed
    /// (`last_error`): anything but 0 for long means the SMTP server is unreachable or refuses
    /// (see the runbook).
    pub failing: i64,
}

/// The most queued mail `/health/` counts (see [`MailHealth::queued`]).
pub const MAIL_COUNT_CAP: i64 = 1000;

#[derive(sqlx::FromRow)]
struct HealthRow {
    name: Option<String>,
    version: Option<i32>,
    state: Option<pettycash_projections::CheckpointState>,
    last_position: Option<i64>,
    lag_events: Option<i64>,
    last_seal: Option<i64>,
    sealed_through: Option<i64>,
    last_sealed_at: Option<chrono::DateTime<chrono::Utc>>,
    unsealed_events: i64,
    refused_events: i64,
    mail_queued: i64,
    mail_failing: i64,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SealingHealth {
    pub last_seal: Option<i64>,
    pub sealed_through: Option<i64>,
    pub last_sealed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Events positioned after the last seal (approximate while transactions are in flight).
    pub unsealed_events: i64,
    /// Events the sealer refused because their MAC does not verify (the service did not
    /// write them): anything but 0 is a tamper finding (see the runbook).
    pub refused_events: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionHealth {
    pub name: String,
    pub version: i32,
    #[schema(value_type = String, example = "live")]
    pub state: pettycash_projections::CheckpointState,
    pub position: i64,
    pub lag_events: i64,
}

/// Liveness, database reachability, projection lag, seals and the mail outbox: 200, or 503
/// with `Retry-After` when the database is unreachable.
#[utoipa::path(get, path = "/health/", tag = "meta",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> Response {
    let unreachable = || {
        let body = Health {
            status: "unavailable",
            database: "unreachable",
            version: VERSION,
            projections: vec![],
            sealing: SealingHealth::default(),
            mail: MailHealth { sender: crate::mail::sender_kind(&state.config), ..Default::default() },
        };
        (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "5")], Json(body)).into_response()
    };
    // Known to be down (`db_health`): say so without a query, which would wait for the pool.
    if state.db.is_down() {
        return unreachable();
    }
    // One round trip for everything: the store's last position, the live and building
    // projections, the last seal.
    let probe = sqlx::query_as::<_, HealthRow>(
        "WITH last AS (SELECT coalesce(max(global_position), 0) AS position FROM events),
              seal AS (SELECT seal_id, last_position, sealed_at FROM event_seals ORDER BY seal_id DESC LIMIT 1)
         SELECT c.name, c.version, c.state, c.last_position,
                greatest(last.position - c.last_position, 0) AS lag_events,
                seal.seal_id AS last_seal, seal.last_position AS sealed_through, seal.sealed_at AS last_sealed_at,
                greatest(last.position - coalesce(seal.last_position, 0), 0) AS unsealed_events,
                (SELECT coalesce(sum(octet_length(refused) / 8), 0)::bigint FROM event_seals
                 WHERE octet_length(refused) > 0) AS refused_events,
                mail.queued AS mail_queued, mail.failing AS mail_failing
         FROM last
         CROSS JOIN (SELECT count(*) AS queued, count(*) FILTER (WHERE last_error IS NOT NULL) AS failing
                     FROM (SELECT last_error FROM mail_outbox WHERE sent_at IS NULL LIMIT $2) waiting) mail
         LEFT JOIN projection_checkpoints c ON c.state <> $1
         LEFT JOIN seal ON true
         ORDER BY c.name, c.version, c.generation",
    )
    .bind(pettycash_projections::CheckpointState::Retired)
    .bind(MAIL_COUNT_CAP)
    .fetch_all(&state.pool);
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(rows)) => {
            let sealing = rows.first().map_or_else(SealingHealth::default, |r| SealingHealth {
                last_seal: r.last_seal,
                sealed_through: r.sealed_through,
                last_sealed_at: r.last_sealed_at,
                unsealed_events: r.unsealed_events,
                refused_events: r.refused_events,
            });
            let mail = MailHealth {
                sender: crate::mail::sender_kind(&state.config),
                queued: rows.first().map_or(0, |r| r.mail_queued),
                failing: rows.first().map_or(0, |r| r.mail_failing),
            };
            let projections = rows
                .into_iter()
                .filter_map(|r| {
                    Some(ProjectionHealth {
                        name: r.name?,
                        version: r.version?,
                        state: r.state?,
                        position: r.last_position?,
                        lag_events: r.lag_events?,
                    })
                })
                .collect();
            Json(Health { status: "ok", database: "ok", version: VERSION, projections, sealing, mail })
                .into_response()
        }
        // Failed or too slow: have it probed, so that commands fail fast if it is down.
        _ => {
            state.db.suspect().await;
            unreachable()
        }
    }
}

/// This document.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::ApiDoc::openapi())
}
