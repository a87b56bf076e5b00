//! Building the router and running the server.

use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{db_health, input, routes};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Router, ServiceExt};
use pettycash_projections::{Engine, EngineOptions};
use sqlx::PgPool;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Bodies larger than this are refused with 413. Large enough that an over-long field (a
/// 1 MB purpose) reaches validation and is answered with a 422 naming the field.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The application router with every layer except path normalisation.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static(input::REQUEST_ID_HEADER);
    let cors = if state.config.cors_allowed_origins.is_empty() {
        CorsLayer::new()
    } else {
        let origins: Vec<HeaderValue> =
            state.config.cors_allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([HeaderName::from_static("x-event-position"), request_id.clone()])
            .allow_credentials(true)
    };
    // Everything but the index, the OpenAPI document and /health/ (which reports the outage
    // itself) is answered 503 at once while the database is known to be down.
    let needs_database = Router::new()
        .merge(routes::auth::router())
        .merge(routes::users::router())
        .merge(routes::invitations::router())
        .merge(routes::delegations::router())
        .merge(routes::advances::router())
        .merge(routes::alerts::router())
        .merge(routes::mail::router())
        .merge(routes::org::router())
        .merge(routes::funds::router())
        .merge(routes::fund_ops::router())
        .merge(routes::policy::router())
        .merge(routes::settings::router())
        .merge(routes::requisitions::router())
        .merge(routes::review::router())
        .merge(routes::receipts::router())
        .merge(routes::payments::router())
        .merge(routes::bulk_payments::router())
        .merge(routes::reads::router())
        .merge(routes::budgets::router())
        .merge(routes::reports::router())
        .route_layer(middleware::from_fn_with_state(state.db.clone(), db_health::require_database));
    // Layers run from the last added to the first: the request id is checked before it is
    // echoed (PropagateRequestId) or stored, forwarded headers are believed or dropped before
    // anything reads them, and query strings are checked before any handler.
    Router::new()
        .merge(routes::meta::router())
        .merge(needs_database)
        .merge(crate::web::router(&state))
        .fallback(|| async { ApiError::not_found("endpoint") })
        .layer(middleware::from_fn(json_errors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(input::check_query))
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .layer(middleware::from_fn(input::drop_untrusted_forwarded))
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(middleware::from_fn(input::check_request_id))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Refuses requests whose Host header is not in ALLOWED_HOSTS (as Django does).
async fn check_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if !state.config.host_allowed(host) {
        return ApiError::bad_request("disallowed_host", format!("Host `{host}` is not in ALLOWED_HOSTS"))
            .into_response();
    }
    next.run(req).await
}

/// Error responses produced outside the handlers (405, 413, ...) get the JSON error shape;
/// the pages' error pages (`web`, `text/html`) are left as they are.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let shaped = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || shaped {
        return response;
    }
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let message = status.canonical_reason().unwrap_or("error").to_string();
    let (mut parts, _) = response.into_parts();
    let api = ApiError::new(status, code, message);
    let body = serde_json::to_vec(&api.body()).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// A bound, ready-to-run server. Tests bind port 0 and read [`Application::port`].
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Runs beside the projection workers (not with `--no-projections`, nor without a place
    /// to send mail to).
    mail_sender: Option<pettycash_commands::mail::sender::Sender>,
    /// The connections of the projection workers, the mail sender and the sealer
    /// ([`crate::database::background_pool`]); requests use the state's pool.
    background: PgPool,
}

impl Application {
    pub async fn build(config: Config, pool: PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
        let background = crate::database::background_pool(&pool, config.worker_pool_size);
        let mail_sender = match config.run_projections {
            true => crate::mail::sender(&config, &background)?,
            false => None,
        };
        if config.run_projections {
            crate::database::warn_if_autovacuum_off(&pool).await;
        }
        let state = AppState::new(config, pool)?;
        if let (Some(simulator), Ok(addr)) = (&state.simulator, listener.local_addr()) {
            // The simulator runs in this process: it calls back on the loopback.
            let addr = match addr.ip() {
                ip if ip.is_unspecified() => {
                    SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
                }
                _ => addr,
            };
            simulator.set_callback_url(format!(
                "http://{addr}/api/providers/{}/callback",
                pettycash_commands::providers::PaymentProvider::name(simulator)
            ));
        }
        Ok(Self { listener, state, mail_sender, background })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let engine = self.state.config.run_projections.then(|| {
            let projections = pettycash_projections::all(&self.state.config.mail.links());
            let engine = Engine::new(self.background.clone(), projections, EngineOptions::default());
            tokio::spawn(engine.run(stop_rx.clone()))
        });
        let mail_sender = self.mail_sender.map(|sender| tokio::spawn(sender.run(stop_rx.clone())));
        // Deadlines (expiry, overdue approvals) are acted on from inside the service.
        let scheduler = tokio::spawn(pettycash_commands::scheduler::run(
            self.state.commands.clone(),
            std::time::Duration::from_secs(self.state.config.scheduler_interval_secs),
            stop_rx.clone(),
        ));
        let sealer = match (self.state.config.run_projections, self.state.config.seal_key()) {
            (true, Some(key)) => Some(tokio::spawn(pettycash_projections::seal::run(
                self.background.clone(),
                key,
                self.state.config.sealer_options(),
                stop_rx,
            ))),
            _ => None,
        };
        // Paths work with and without a trailing slash: normalise before routing.
        let app = NormalizePathLayer::trim_trailing_slash().layer(router(self.state));
        let result = axum::serve(
            self.listener,
            ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        let _ = stop_tx.send(true);
        if let Some(engine) = engine {
            let _ = engine.await;
        }
        if let Some(sealer) = sealer {
            let _ = sealer.await;
        }
        let _ = scheduler.await;
        if let Some(sender) = mail_sender {
            let _ = sender.await;
        }
        self.background.close().await;
        result
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}
