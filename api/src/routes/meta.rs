//! The API index, health and the OpenAPI document.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
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
}

#[derive(Debug, Default, Serialize, ToSchema, sqlx::FromRow)]
pub struct SealingHealth {
    pub last_seal: Option<i64>,
    pub sealed_through: Option<i64>,
    pub last_sealed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Events positioned after the last seal (approximate while transactions are in flight).
    pub unsealed_events: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionHealth {
    pub name: String,
    pub version: i32,
    pub state: String,
    pub position: i64,
    pub lag_events: i64,
}

/// Liveness, database reachability and projection lag: 200, or 503 when the database is
/// unreachable.
#[utoipa::path(get, path = "/health/", tag = "meta",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let sealing = sqlx::query_as::<_, SealingHealth>(
        "SELECT s.seal_id AS last_seal, s.last_position AS sealed_through, s.sealed_at AS last_sealed_at,
                greatest(coalesce((SELECT max(global_position) FROM events), 0) - coalesce(s.last_position, 0), 0)
                    AS unsealed_events
         FROM (SELECT 1) one
         LEFT JOIN (SELECT seal_id, last_position, sealed_at FROM event_seals ORDER BY seal_id DESC LIMIT 1) s
           ON true",
    )
    .fetch_one(&state.pool);
    let probe = async { tokio::try_join!(pettycash_projections::engine::status(&state.pool), sealing) };
    let (status, body) = match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok((rows, sealing))) => {
            let projections = rows
                .into_iter()
                .filter(|r| r.state != "retired")
                .map(|r| ProjectionHealth {
                    name: r.name,
                    version: r.version,
                    state: r.state,
                    position: r.last_position,
                    lag_events: r.lag_events,
                })
                .collect();
            (StatusCode::OK, Health { status: "ok", database: "ok", version: VERSION, projections, sealing })
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Health {
                status: "unavailable",
                database: "unreachable",
                version: VERSION,
                projections: vec![],
                sealing: SealingHealth::default(),
            },
        ),
    };
    (status, [("retry-after", "5")], Json(body))
}

/// This document.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::ApiDoc::openapi())
}
