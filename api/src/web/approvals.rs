//! The approvals pages (issue #16): the viewer's inbox (`routes::reads::approvals_of`, what
//! `GET /api/approvals/` answers) and delegation while away (`GET /api/delegations/` and the
//! grant and revoke commands). The decisions themselves (approve with a comment, reject with a
//! reason, request changes with a reason and a deadline) are forms of the requisition's page
//! (`super::requisitions`), which the inbox links to.
//!
//! Only for those with an inbox: a role some approval chain can wait on (the navigation's
//! rule); anyone else is answered 403.

use super::csrf::{self, Binding, PageForm};
use super::layout::{role_label, Layout};
use super::render;
use super::requisitions::{
    approves, names, optional, outcome, problem_at, problem_status, row, see_other, when, Problem, Row,
};
use super::session::PageUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::IdPath;
use crate::routes::delegations::{new_delegation, Grant};
use crate::routes::reads::{approvals_of, PageQuery};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;
use pettycash_commands::auth::AuthUser;
use pettycash_domain::delegation::DelegationStatus;
use pettycash_domain::visibility::{self, RequisitionScope};
use pettycash_domain::{Actor, Role};
use pettycash_projections::queries;
use serde::Deserialize;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/approvals", get(inbox))
        .route("/approvals/delegation", get(delegation).post(grant))
        .route("/approvals/delegation/{id}/revoke", post(revoke))
}

/// 403 for a viewer without an inbox.
fn approver_only(actor: &Actor) -> ApiResult<()> {
    if approves(actor) {
        return Ok(());
    }
    Err(ApiError::forbidden(
        "missing_role",
        "the approvals pages are for approvers: none of your roles approves requisitions",
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InboxParams {
    cursor: String,
    /// A decision's event position: the inbox waits until it reflects it.
    min_position: String,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct InboxPage {
    layout: Layout,
    rows: Vec<(Row, String)>,
    next: Option<String>,
    first: bool,
}

/// `GET /approvals/`: what waits on the viewer, the longest-waiting first.
pub async fn inbox(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    Query(params): Query<InboxParams>,
) -> ApiResult<Response> {
    let actor = user.actor();
    approver_only(&actor)?;
    let query = PageQuery {
        limit: Some("25".into()),
        cursor: optional(&params.cursor),
        min_position: optional(&params.min_position),
    };
    let page = approvals_of(&state, &user, &query, &HeaderMap::new()).await?;
    let funds = if visibility::may_read_funds(&actor) {
        queries::list_funds(&state.pool, actor.company()).await?
    } else {
        vec![]
    };
    let ids: Vec<Uuid> = page.items.iter().map(|r| r.requester_id).collect();
    let requesters = names(&state, &actor, ids).await?;
    let rows = page
        .items
        .iter()
        .map(|r| {
            let by = requesters.get(&r.requester_id).cloned().unwrap_or_default();
            (row(r, &funds), by)
        })
        .collect();
    let next = page
        .next_cursor
        .map(|c| format!("/approvals/?{}", serde_urlencoded::to_string([("cursor", c)]).unwrap_or_default()));
    let page = InboxPage {
        layout: Layout::signed_in(&state, "Approvals", &user, &token, "/approvals/")?,
        rows,
        next,
        first: !params.cursor.is_empty(),
    };
    render(StatusCode::OK, &page)
}

// ---------------------------------------------------------------------------------------------
// Delegation

pub struct DelegationLine {
    pub id: Uuid,
    pub role: &'static str,
    pub from: String,
    pub to: String,
    pub starts: String,
    pub ends: String,
    pub status: &'static str,
    /// The viewer may revoke it (theirs, not over).
    pub revocable: bool,
}

pub struct Choice {
    pub value: String,
    pub label: String,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct GrantFields {
    role: String,
    delegate_id: String,
    /// `YYYY-MM-DD`; blank: now.
    starts_on: String,
    /// `YYYY-MM-DD`, the last day (to its end, UTC).
    ends_on: String,
}

#[derive(Template)]
#[template(path = "delegation.html")]
struct DelegationPage {
    layout: Layout,
    csrf_token: String,
    delegations: Vec<DelegationLine>,
    roles: Vec<Choice>,
    colleagues: Vec<Choice>,
    fields: GrantFields,
    problem: Option<Problem>,
}

impl DelegationPage {
    fn error(&self, field: &str) -> Option<&str> {
        problem_at(&self.problem, "grant", field)
    }
}

const GRANT_FIELDS: [&str; 4] = ["role", "delegate_id", "starts_on", "ends_on"];

/// The viewer's roles an approval chain can wait on: what they may delegate.
fn delegable(actor: &Actor) -> Vec<Role> {
    let chain = RequisitionScope::of(actor).chain_roles;
    Role::ALL.into_iter().filter(|r| actor.has(*r) && chain.contains(r)).collect()
}

async fn delegation_page(
    state: &AppState,
    user: &AuthUser,
    token: &str,
    fields: GrantFields,
    problem: Option<Problem>,
) -> ApiResult<Response> {
    let actor = user.actor();
    let roles = delegable(&actor);
    let given = state.commands.delegations(&actor, queries::DEFAULT_LIMIT).await?;
    let people: Vec<Uuid> = given.iter().flat_map(|d| [d.delegator_id, d.delegate_id]).collect();
    let named = names(state, &actor, people).await?;
    let name = |id: Uuid| {
        if id == user.id {
            "You".to_string()
        } else {
            named.get(&id).cloned().unwrap_or_default()
        }
    };
    let delegations = given
        .iter()
        .map(|d| DelegationLine {
            id: d.id,
            role: role_label(d.role),
            from: name(d.delegator_id),
            to: name(d.delegate_id),
            starts: when(&d.starts_at),
            ends: when(&d.ends_at),
            status: match d.status {
                DelegationStatus::Scheduled => "Scheduled",
                DelegationStatus::Active => "Active",
                DelegationStatus::Ended => "Ended",
                DelegationStatus::Revoked => "Revoked",
            },
            revocable: d.delegator_id == user.id
                && matches!(d.status, DelegationStatus::Scheduled | DelegationStatus::Active),
        })
        .collect();
    // Colleagues who hold one of the roles (the users of the viewer's company, which
    // `visibility::may_see_user` lets them see); the grant decides who is eligible.
    let colleagues = state
        .auth
        .list_users(actor.company())
        .await?
        .into_iter()
        .filter(|u| u.id != user.id && u.active)
        .filter_map(|u| {
            let theirs: Vec<&str> =
                u.actor().roles.iter().filter(|r| roles.contains(r)).map(|r| role_label(*r)).collect();
            (!theirs.is_empty()).then(|| Choice {
                value: u.id.to_string(),
                label: format!("{} ({})", u.name, theirs.join(", ")),
            })
        })
        .collect();
    let page = DelegationPage {
        layout: Layout::signed_in(state, "Delegation", user, token, "/approvals/")?,
        csrf_token: csrf::token(state, Binding::Session(token))?,
        delegations,
        roles: roles
            .iter()
            .map(|r| Choice { value: r.as_str().into(), label: role_label(*r).into() })
            .collect(),
        colleagues,
        fields,
        problem,
    };
    render(problem_status(&page.problem), &page)
}

/// `GET /approvals/delegation`: the delegations the viewer gave or received, and the form to
/// give one.
pub async fn delegation(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
) -> ApiResult<Response> {
    approver_only(&user.actor())?;
    delegation_page(&state, &user, &token, GrantFields::default(), None).await
}

/// A date control's value as the start of that day (UTC), or its end (`end`).
fn day(field: &str, text: &str, end: bool) -> ApiResult<Option<String>> {
    let Some(text) = optional(text) else { return Ok(None) };
    let date = NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|_| ApiError::unprocessable(field, "give a date"))?;
    let at = if end { date.and_hms_opt(23, 59, 59) } else { date.and_hms_opt(0, 0, 0) };
    Ok(at.map(|t| t.and_utc().to_rfc3339()))
}

/// `POST /approvals/delegation`: delegates as `POST /api/delegations/` does.
pub async fn grant(State(state): State<AppState>, form: PageForm<GrantFields>) -> ApiResult<Response> {
    approver_only(&form.user.actor())?;
    let f = &form.form;
    let result = async {
        let delegate_id = optional(&f.delegate_id)
            .and_then(|d| Uuid::parse_str(&d).ok())
            .ok_or_else(|| ApiError::unprocessable("delegate_id", "choose who decides for you"))?;
        let ends_at = day("ends_on", &f.ends_on, true)?
            .ok_or_else(|| ApiError::unprocessable("ends_on", "give the last day of the delegation"))?;
        let body = Grant {
            delegate_id,
            role: f.role.clone(),
            delegator_id: None,
            // Today is from now: the start of a day already begun is in the past.
            starts_at: day("starts_on", &f.starts_on, false)?.filter(|_| {
                optional(&f.starts_on) != Some(state.commands.clock().now().date_naive().to_string())
            }),
            ends_at,
        };
        let input = new_delegation(&body)?;
        let ctx = form.context();
        outcome(&state, &form.session, state.commands.grant_delegation(&ctx, input).await).await
    }
    .await;
    match result {
        Ok(_) => Ok(see_other("/approvals/delegation")),
        Err(mut err) => {
            // The API's names of the times are the page's dates.
            err.field = err.field.map(|f| match f.as_str() {
                "starts_at" => "starts_on".into(),
                "ends_at" => "ends_on".into(),
                _ => f,
            });
            let problem = Problem::of("grant", &GRANT_FIELDS, err)?;
            delegation_page(&state, &form.user, &form.token, f.clone(), Some(problem)).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RevokeFields {
    reason: String,
}

/// `POST /approvals/delegation/{id}/revoke` (`POST /api/delegations/{id}/revoke`).
pub async fn revoke(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<RevokeFields>,
) -> ApiResult<Response> {
    let ctx = form.context();
    let reason = optional(&form.form.reason);
    outcome(&state, &form.session, state.commands.revoke_delegation(&ctx, id, reason.as_deref()).await)
        .await?;
    Ok(see_other("/approvals/delegation"))
}
