//! `/alerts/` (issue #16): the alerts the user may see (`alerts::list` under their
//! `AlertScope`, with the filters of `GET /api/alerts/` parsed by `routes::alerts::filter_of`),
//! each with its acknowledge and resolve forms (`acknowledge_alert`, `resolve_alert`, the note
//! checked by the API's `note` / `resolution_note`). Who may act is the commands' rule: a
//! reader who may not is told so beside the form.

use super::csrf::PageForm;
use super::dashboard::words;
use super::layout::Layout;
use super::render;
use super::session::PageUser;
use super::treasury::{choices, command_error, Choice, Refusal};
use crate::error::{ApiError, ApiResult};
use crate::extract::IdPath;
use crate::routes::alerts::{filter_of, note, resolution_note, AlertNote, ListQuery};
use crate::routes::reads::{parse_cursor, parse_limit};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use pettycash_domain::alert::{AlertState, AlertType, Severity};
use pettycash_domain::visibility::AlertScope;
use pettycash_projections::alerts;
use pettycash_projections::queries::PageRequest;
use serde::Deserialize;
use uuid::Uuid;

/// The area's page (the navigation's `href`).
pub const HOME: &str = "/alerts/";

/// An alert as the list shows it.
pub struct AlertLine {
    pub id: Uuid,
    pub title: String,
    pub message: String,
    /// `critical`, `high`, `medium`, `low` (also the stylesheet class).
    pub severity: String,
    /// `open`, `acknowledged`, `resolved`.
    pub state: String,
    pub kind: String,
    pub raised: String,
    pub note: Option<String>,
    /// The requisition it is about, to link to.
    pub requisition: Option<String>,
    /// The fund it is about, to link to.
    pub fund: Option<Uuid>,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    layout: Layout,
    alerts: Vec<AlertLine>,
    states: Vec<Choice>,
    severities: Vec<Choice>,
    types: Vec<Choice>,
    /// The query of the next page, when there is one.
    next: Option<String>,
    refusal: Option<Refusal>,
    /// The note typed into the refused form, kept.
    typed: String,
}

impl AlertsPage {
    fn error(&self, action: &str, id: &Uuid) -> Option<String> {
        Refusal::at(&self.refusal, &format!("{action}-{id}"), None)
    }

    fn typed_for(&self, action: &str, id: &Uuid) -> String {
        if self.refusal.as_ref().is_some_and(|r| r.form == format!("{action}-{id}")) {
            self.typed.clone()
        } else {
            String::new()
        }
    }
}

async fn alerts_page(
    state: &AppState,
    user: &pettycash_commands::auth::AuthUser,
    token: &str,
    q: &ListQuery,
) -> ApiResult<AlertsPage> {
    let filter = filter_of(q)?;
    let page = PageRequest { limit: parse_limit(&q.limit)?, after: parse_cursor(&q.cursor)? };
    let found = alerts::list(&state.pool, &AlertScope::of(&user.actor()), &filter, page).await?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let next = found.next_cursor.map(|cursor| {
        serde_urlencoded::to_string([
            ("state", text(&q.state)),
            ("severity", text(&q.severity)),
            ("type", text(&q.alert_type)),
            ("cursor", cursor),
        ])
        .unwrap_or_default()
    });
    let alerts = found
        .items
        .into_iter()
        .map(|a| AlertLine {
            id: a.id,
            severity: a.severity.as_str().into(),
            state: a.state.as_str().into(),
            kind: words(a.alert_type.as_str()),
            raised: a.raised_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            note: a.resolution_note,
            requisition: (a.object_type.as_str() == "requisition" || a.object_type.as_str() == "advance")
                .then(|| a.object_id.clone()),
            fund: a.fund_id,
            title: a.title,
            message: a.message,
        })
        .collect();
    Ok(AlertsPage {
        layout: Layout::signed_in(state, "Alerts", user, token, HOME)?,
        alerts,
        states: choices(AlertState::ALL.map(AlertState::as_str), &text(&q.state)),
        severities: choices(Severity::ALL.map(Severity::as_str), &text(&q.severity)),
        types: choices(AlertType::ALL.map(AlertType::as_str), &text(&q.alert_type)),
        next,
        refusal: None,
        typed: String::new(),
    })
}

/// `GET /alerts/?state=&severity=&type=`: newest first, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    render(StatusCode::OK, &alerts_page(&state, &user, &token, &q).await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NoteForm {
    note: String,
}

/// `POST /alerts/{id}/acknowledge` (field `note`, optional): back to the list, or the list
/// again with the refusal beside the alert's form.
pub async fn acknowledge(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<NoteForm>,
) -> ApiResult<Response> {
    act_on(&state, form, id, "acknowledge").await
}

/// `POST /alerts/{id}/resolve` (field `note`, required).
pub async fn resolve(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<NoteForm>,
) -> ApiResult<Response> {
    act_on(&state, form, id, "resolve").await
}

async fn act_on(state: &AppState, form: PageForm<NoteForm>, id: Uuid, action: &str) -> ApiResult<Response> {
    let actor = form.user.actor();
    let body = AlertNote { note: Some(form.form.note.clone()) };
    let done: ApiResult<()> = match action {
        "acknowledge" => match note(&body) {
            Ok(n) => state
                .commands
                .acknowledge_alert(&actor, id, n.as_deref())
                .await
                .map_err(|e| command_error(state, &form.session, e)),
            Err(e) => Err(e),
        },
        "resolve" => match resolution_note(&body) {
            Ok(n) => state
                .commands
                .resolve_alert(&actor, id, &n)
                .await
                .map_err(|e| command_error(state, &form.session, e)),
            Err(e) => Err(e),
        },
        _ => return Err(ApiError::not_found("page")),
    };
    match done {
        Ok(()) => Ok(Redirect::to(&format!("{HOME}#alert-{id}")).into_response()),
        Err(e) => {
            let (status, refusal) = Refusal::of(&format!("{action}-{id}"), e)?;
            let mut page = alerts_page(state, &form.user, &form.token, &ListQuery::default()).await?;
            page.refusal = Some(refusal);
            page.typed = form.form.note.clone();
            render(status, &page)
        }
    }
}
