//! The requisitions pages (issue #16): the list with filters and paging, the new requisition
//! form with a receipt, the detail (approval chain, duplicate flag, receipts, timeline, the
//! actions the viewer may take), the edit form, and the forms behind each action.
//!
//! Every read and every command is the JSON API's: `routes::reads::requisitions_of` (the list
//! and its visibility rule), `CommandService::requisition` and `requisition_history` (the
//! detail, 404 for a requisition the viewer may not see), the request conversions of
//! `routes::requisitions` (`new_requisition`, `changes_of`), the receipt upload of
//! `routes::receipts` (`check_receipt`, `attach`), and the command service's create, edit,
//! submit, approve, reject, request-changes and cancel. Who may do what is decided there; the
//! page only chooses which forms to offer, and shows a refusal next to the field it names.

use super::csrf::{self, Binding, PageForm};
use super::dashboard::{money, words};
use super::layout::Layout;
use super::render;
use super::session::{sentence, PageUser};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Amount, IdPath};
use crate::routes::reads::{requisitions_of, RequisitionListQuery};
use crate::routes::receipts::{self, UPLOAD_BODY_LIMIT};
use crate::routes::requisitions::{changes_of, new_requisition, CreateRequisition, EditRequisition};
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, NaiveDateTime, Utc};
use pettycash_commands::advances::Settlement;
use pettycash_commands::auth::AuthUser;
use pettycash_commands::views::{HistoryEntry, RequisitionView};
use pettycash_commands::{CommandContext, CommandError, Outcome, RequestMeta, SessionGuard};
use pettycash_domain::requisition::Status;
use pettycash_domain::visibility::{self, RequisitionScope};
use pettycash_domain::Actor;
use pettycash_domain::DomainError;
use pettycash_projections::queries::{self, FundRow};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use uuid::Uuid;

/// Rows per page of the list.
const PAGE_SIZE: &str = "25";

/// The pages' routes (without their trailing slash, see `super::router`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/requisitions", get(list))
        .route(
            "/requisitions/new",
            get(new_form).post(create).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
        .route("/requisitions/{id}", get(detail))
        .route("/requisitions/{id}/edit", get(edit_form).post(edit))
        .route("/requisitions/{id}/submit", post(submit))
        .route("/requisitions/{id}/cancel", post(cancel))
        .route("/requisitions/{id}/settle", post(settle))
        .route("/requisitions/{id}/approve", post(approve))
        .route("/requisitions/{id}/reject", post(reject))
        .route("/requisitions/{id}/request-changes", post(request_changes))
        .route(
            "/requisitions/{id}/receipts",
            post(attach_receipt).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
}

// ---------------------------------------------------------------------------------------------
// Shared by the forms of these pages and of the approvals pages.

/// A refusal shown on a form: next to `field` when the form has a control of that name, above
/// the form (`field` = [`GENERAL`]) otherwise.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Which form of the page it is about (a page may hold several).
    pub form: &'static str,
    pub field: String,
    pub message: String,
    /// The status the page answers with (the refusal's).
    pub status: StatusCode,
}

/// The `field` of a [`Problem`] that names none of the form's controls.
pub const GENERAL: &str = "form";

impl Problem {
    /// `err` as a problem of `form`, whose controls are `fields`, when a person can do
    /// something about it there (a 4xx other than 401 and 404); anything else stays an error
    /// (an error page, or the sign-in).
    pub fn of(form: &'static str, fields: &[&str], err: ApiError) -> Result<Self, ApiError> {
        let shown = err.status.is_client_error()
            && ![StatusCode::UNAUTHORIZED, StatusCode::NOT_FOUND].contains(&err.status);
        if !shown {
            return Err(err);
        }
        let field = err.field.as_deref().filter(|f| fields.contains(f)).unwrap_or(GENERAL).to_string();
        Ok(Problem { form, field, message: sentence(&err.message), status: err.status })
    }
}

/// The message of `problem` when it is about `field` of `form`.
pub fn problem_at<'a>(problem: &'a Option<Problem>, form: &str, field: &str) -> Option<&'a str> {
    problem.as_ref().filter(|p| p.form == form && p.field == field).map(|p| p.message.as_str())
}

/// A command's result as the pages take it: a changed session is forgotten (as `routes::run`
/// does for the API), the error made an [`ApiError`].
pub async fn outcome<T>(
    state: &AppState,
    session: &SessionGuard,
    result: Result<Outcome<T>, CommandError>,
) -> ApiResult<Outcome<T>> {
    match result {
        Err(err @ CommandError::SessionChanged) => {
            state.auth.forget_session(&session.token_hash);
            Err(err.into())
        }
        other => Ok(other?),
    }
}

/// 303 to `path`: where a form goes after it did what it asked.
pub fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// The status a page shown again with a problem answers with.
pub fn problem_status(problem: &Option<Problem>) -> StatusCode {
    problem.as_ref().map_or(StatusCode::OK, |p| p.status)
}

/// A time as the pages show it: `2026-12-06 14:05 UTC`.
pub fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An optional text field: `None` when blank.
pub fn optional(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The names of users, for showing who did or may do something (`visibility::may_see_user`:
/// the viewer's company only; others stay unnamed).
pub async fn names(state: &AppState, actor: &Actor, ids: Vec<Uuid>) -> ApiResult<HashMap<Uuid, String>> {
    let mut names = HashMap::new();
    for id in ids {
        if names.contains_key(&id) {
            continue;
        }
        if let Some(user) = state.auth.user(id).await? {
            if visibility::may_see_user(actor, user.company_id) {
                names.insert(id, user.name);
            }
        }
    }
    Ok(names)
}

fn name_of(names: &HashMap<Uuid, String>, id: Uuid) -> String {
    names.get(&id).cloned().unwrap_or_else(|| "someone else".into())
}

/// The funds the viewer may choose or filter by (`visibility::may_read_funds`, as the reports
/// page and `GET /api/funds/`).
/// The funds `actor` may read (`visibility::may_read_funds`, as `GET /api/funds/`): the forms'
/// choices of a fund on every page.
pub(crate) async fn funds_of(state: &AppState, actor: &Actor) -> ApiResult<Vec<FundRow>> {
    if !visibility::may_read_funds(actor) {
        return Ok(vec![]);
    }
    Ok(queries::list_funds(&state.pool, actor.company()).await?)
}

/// A fund as a choice of a form.
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// `funds` as a form's choices, `Name (KES)`.
pub(crate) fn fund_choices(funds: &[FundRow]) -> Vec<Choice> {
    funds
        .iter()
        .map(|f| Choice { value: f.id.to_string(), label: format!("{} ({})", f.name, f.currency) })
        .collect()
}

fn status_label(status: Status) -> String {
    words(status.as_str())
}

// ---------------------------------------------------------------------------------------------
// The list

/// The list's filters, as the address carries them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListParams {
    status: String,
    fund_id: String,
    from: String,
    to: String,
    q: String,
    mine: String,
    cursor: String,
}

impl ListParams {
    /// The address of the list with these filters and `cursor`.
    fn href(&self, cursor: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = [
            ("status", self.status.as_str()),
            ("fund_id", &self.fund_id),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
            ("mine", &self.mine),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        if let Some(c) = cursor {
            pairs.push(("cursor", c));
        }
        match serde_urlencoded::to_string(pairs).unwrap_or_default() {
            q if q.is_empty() => "/requisitions/".into(),
            q => format!("/requisitions/?{q}"),
        }
    }
}

/// A requisition's row in a list (also the approvals inbox's).
pub struct Row {
    pub href: String,
    pub purpose: String,
    pub payee: String,
    pub amount: String,
    pub status: String,
    pub status_code: &'static str,
    pub fund: String,
    pub created: String,
    pub submitted: String,
    pub waiting_for: String,
}

pub fn row(r: &queries::RequisitionRow, funds: &[FundRow]) -> Row {
    Row {
        href: format!("/requisitions/{}", r.id),
        purpose: r.purpose.clone(),
        payee: r.payee.clone().unwrap_or_default(),
        amount: money(&r.currency, r.amount),
        status: status_label(r.status),
        status_code: r.status.as_str(),
        fund: funds.iter().find(|f| f.id == r.fund_id).map(|f| f.name.clone()).unwrap_or_default(),
        created: when(&r.created_at),
        submitted: r.submitted_at.as_ref().map(when).unwrap_or_default(),
        waiting_for: r
            .current_role
            .map(|role| super::layout::role_label(role).to_string())
            .unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "requisitions.html")]
struct ListPage {
    layout: Layout,
    params: ListParams,
    statuses: Vec<(&'static str, String)>,
    funds: Vec<Choice>,
    rows: Vec<Row>,
    problem: Option<Problem>,
    next: Option<String>,
    first: Option<String>,
}

impl ListPage {
    fn error(&self, field: &str) -> Option<&str> {
        problem_at(&self.problem, "filters", field)
    }
}

/// `GET /requisitions/`: what `GET /api/requisitions/` answers the viewer for the same filters.
pub async fn list(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    Query(params): Query<ListParams>,
) -> ApiResult<Response> {
    let actor = user.actor();
    let present = |v: &str| optional(v);
    let query = RequisitionListQuery {
        status: present(&params.status),
        fund_id: present(&params.fund_id),
        from: present(&params.from),
        to: present(&params.to),
        q: present(&params.q),
        mine: present(&params.mine),
        cursor: present(&params.cursor),
        limit: Some(PAGE_SIZE.into()),
        ..Default::default()
    };
    let funds = funds_of(&state, &actor).await?;
    let (rows, next, problem) = match requisitions_of(&state, &user, &query, &HeaderMap::new()).await {
        Ok(page) => (page.items.iter().map(|r| row(r, &funds)).collect(), page.next_cursor, None),
        Err(err) => {
            let fields = ["status", "fund_id", "from", "to", "q", "mine", "cursor"];
            (vec![], None, Some(Problem::of("filters", &fields, err)?))
        }
    };
    let page = ListPage {
        layout: Layout::signed_in(&state, "Requisitions", &user, &token, "/requisitions/")?,
        statuses: Status::ALL.iter().map(|s| (s.as_str(), status_label(*s))).collect(),
        funds: fund_choices(&funds),
        rows,
        next: next.map(|c| params.href(Some(&c))),
        first: (!params.cursor.is_empty()).then(|| params.href(None)),
        problem,
        params,
    };
    render(problem_status(&page.problem), &page)
}

// ---------------------------------------------------------------------------------------------
// New requisition

/// What the new requisition form holds (kept when it is shown again with a problem; the file
/// must be chosen again: a browser never refills a file control).
#[derive(Debug, Default)]
pub struct Draft {
    fund_id: String,
    amount: String,
    purpose: String,
    payee: String,
    category: String,
    category_id: String,
}

#[derive(Template)]
#[template(path = "requisition_new.html")]
struct NewPage {
    layout: Layout,
    csrf_token: String,
    draft: Draft,
    funds: Vec<Choice>,
    /// The company's active expense categories; none: the category is free text.
    categories: Vec<Choice>,
    problem: Option<Problem>,
}

impl NewPage {
    fn error(&self, field: &str) -> Option<&str> {
        problem_at(&self.problem, "new", field)
    }
}

const NEW_FIELDS: [&str; 7] = ["fund_id", "amount", "purpose", "payee", "category", "category_id", "file"];

async fn categories_of(state: &AppState, actor: &Actor) -> ApiResult<Vec<Choice>> {
    Ok(state
        .commands
        .categories(actor)
        .await?
        .into_iter()
        .filter(|c| c.active)
        .map(|c| Choice { value: c.id.to_string(), label: format!("{} ({})", c.name, c.code) })
        .collect())
}

async fn new_page(
    state: &AppState,
    user: &AuthUser,
    token: &str,
    draft: Draft,
    problem: Option<Problem>,
) -> ApiResult<Response> {
    let actor = user.actor();
    let page = NewPage {
        layout: Layout::signed_in(state, "New requisition", user, token, "/requisitions/")?,
        csrf_token: csrf::token(state, Binding::Session(token))?,
        funds: fund_choices(&funds_of(state, &actor).await?),
        categories: categories_of(state, &actor).await?,
        draft,
        problem,
    };
    render(problem_status(&page.problem), &page)
}

/// `GET /requisitions/new`.
pub async fn new_form(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
) -> ApiResult<Response> {
    new_page(&state, &user, &token, Draft::default(), None).await
}

/// A `multipart/form-data` form posted by a signed-in user (a form with a file), its CSRF token
/// checked as [`PageForm`] does: its text fields and its one file (`file`; `None` when no file
/// was chosen). The whole body is read (within the route's limit) before the token is checked;
/// nothing is stored or done before.
pub struct PageUpload {
    pub user: AuthUser,
    pub token: String,
    pub session: SessionGuard,
    pub meta: RequestMeta,
    pub fields: HashMap<String, String>,
    pub file: Option<(String, Bytes)>,
    /// The media type the browser declared for the file (lower case, no parameters; empty
    /// when none).
    pub file_type: String,
}

impl PageUpload {
    pub fn context(&self) -> CommandContext {
        CommandContext::user(self.user.actor(), self.meta.clone()).with_session(Some(self.session.clone()))
    }

    fn field(&self, name: &str) -> String {
        self.fields.get(name).cloned().unwrap_or_default()
    }
}

impl FromRequest<AppState> for PageUpload {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let (user, session, meta, token) = csrf::form_parts(&mut parts, state).await?;
        let mut multipart = axum::extract::Multipart::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|_| csrf::refused().into_response())?;
        let unreadable = |e: axum::extract::multipart::MultipartError| {
            ApiError::new(
                e.status(),
                "invalid_multipart",
                format!("the form could not be read: {}", e.body_text()),
            )
            .into_response()
        };
        let mut fields = HashMap::new();
        let mut file = None;
        let mut file_type = String::new();
        while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
            let name = field.name().unwrap_or_default().to_string();
            if name == "file" {
                file_type = field
                    .content_type()
                    .and_then(|t| t.split(';').next())
                    .map(|t| t.trim().to_ascii_lowercase())
                    .unwrap_or_default();
                let (file_name, bytes) =
                    receipts::read_part(field).await.map_err(IntoResponse::into_response)?;
                if !bytes.is_empty() {
                    file = Some((file_name, bytes));
                }
            } else if let Entry::Vacant(slot) = fields.entry(name) {
                slot.insert(field.text().await.map_err(unreadable)?);
            }
        }
        csrf::verify(state, Binding::Session(&token), fields.get(csrf::FIELD).map(String::as_str))
            .map_err(IntoResponse::into_response)?;
        Ok(PageUpload { user, token, session, meta, fields, file, file_type })
    }
}

/// An amount typed into a form, read as the API reads one (`extract::Amount`); 422 naming
/// `amount` when it is no number.
fn amount(text: &str) -> ApiResult<Amount> {
    serde_json::from_value(serde_json::Value::String(text.trim().to_string()))
        .map_err(|_| ApiError::unprocessable("amount", "the amount must be a number, e.g. 1250.50"))
}

fn uuid_field(field: &str, text: &str, missing: &str) -> ApiResult<Option<Uuid>> {
    match optional(text) {
        None => Ok(None),
        Some(t) => {
            Uuid::parse_str(&t).map(Some).map_err(|_| ApiError::unprocessable(field, missing.to_string()))
        }
    }
}

/// `POST /requisitions/new` (multipart): creates the requisition as `POST /api/requisitions/`
/// does, a draft or submitted (`action` = `draft` or `submit`), then attaches the receipt
/// through the API's upload path. The file's type is checked before anything is created.
pub async fn create(State(state): State<AppState>, form: PageUpload) -> ApiResult<Response> {
    let draft = Draft {
        fund_id: form.field("fund_id"),
        amount: form.field("amount"),
        purpose: form.field("purpose"),
        payee: form.field("payee"),
        category: form.field("category"),
        category_id: form.field("category_id"),
    };
    let created = async {
        if let Some((_, bytes)) = &form.file {
            receipts::check_receipt(bytes)?;
        }
        let body = CreateRequisition {
            fund_id: uuid_field("fund_id", &draft.fund_id, "choose a fund")?
                .ok_or_else(|| ApiError::unprocessable("fund_id", "choose a fund"))?,
            amount: amount(&draft.amount)?,
            purpose: draft.purpose.clone(),
            payee: optional(&draft.payee),
            category: optional(&draft.category),
            category_id: uuid_field("category_id", &draft.category_id, "choose a category")?,
            cost_centre_id: None,
            currency: None,
            submit: form.field("action") == "submit",
            origin: None,
            urgent_reason: None,
            advance: false,
        };
        let (input, choice) = new_requisition(&body)?;
        let ctx = form.context();
        outcome(&state, &form.session, state.commands.create_requisition_with(&ctx, input, choice).await)
            .await
    }
    .await;
    let created = match created {
        Ok(created) => created,
        Err(err) => {
            let problem = Problem::of("new", &NEW_FIELDS, err)?;
            return new_page(&state, &form.user, &form.token, draft, Some(problem)).await;
        }
    };
    let id = created.value.id;
    if let Some((name, bytes)) = form.file.clone() {
        if let Err(err) = receipts::attach(&state, &form.context(), &form.session, id, &name, bytes).await {
            // The requisition stands; the receipt is offered again on its page.
            let problem = Problem::of("receipt", &["file"], err)?;
            return detail_page(&state, &form.user, &form.token, id, Some(problem)).await;
        }
    }
    Ok(see_other(&format!("/requisitions/{id}")))
}

// ---------------------------------------------------------------------------------------------
// Detail

/// A step of the approval chain as the page shows it.
pub struct StepLine {
    pub number: usize,
    pub role: &'static str,
    /// `approved`, `current`, `waiting` (a later step), `escalated`.
    pub state: &'static str,
    pub detail: String,
}

pub struct ReceiptLine {
    pub name: String,
    pub href: String,
    pub size: String,
}

pub struct TimelineEntry {
    pub when: String,
    pub iso: String,
    pub who: String,
    pub what: String,
    pub comment: Option<String>,
}

pub struct DuplicateLine {
    pub href: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "requisition.html")]
struct DetailPage {
    layout: Layout,
    csrf_token: String,
    id: Uuid,
    purpose: String,
    amount: String,
    status: String,
    status_code: &'static str,
    fund: String,
    payee: String,
    category: String,
    requester: String,
    reason: Option<String>,
    changes_deadline: Option<String>,
    waits_on: Option<String>,
    steps: Vec<StepLine>,
    duplicates: Vec<DuplicateLine>,
    duplicate_dismissed: Option<String>,
    receipts: Vec<ReceiptLine>,
    timeline: Vec<TimelineEntry>,
    may_edit: bool,
    may_submit: bool,
    may_cancel: bool,
    may_attach: bool,
    /// It waits on the viewer: approve, reject, request changes.
    may_decide: bool,
    /// The viewer's own advance, once paid: what it stands at and the settlement form.
    advance: Option<AdvanceBox>,
    problem: Option<Problem>,
}

/// An advance as its holder sees it on the requisition's page.
pub struct AdvanceBox {
    pub amount: String,
    pub spent: String,
    pub returned: String,
    pub outstanding: String,
    /// `outstanding`, `overdue`, `settled`.
    pub status: String,
    pub due: String,
    pub currency: String,
    /// Something is left to settle.
    pub open: bool,
}

impl DetailPage {
    fn error(&self, form: &str, field: &str) -> Option<&str> {
        problem_at(&self.problem, form, field)
    }
}

/// `GET /requisitions/{id}`: 404 (a page) for one the viewer may not see, as the API.
pub async fn detail(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    detail_page(&state, &user, &token, id, None).await
}

/// The detail page of `id` for `user`, with `problem` on the form it concerns.
async fn detail_page(
    state: &AppState,
    user: &AuthUser,
    token: &str,
    id: Uuid,
    problem: Option<Problem>,
) -> ApiResult<Response> {
    let actor = user.actor();
    // Whether to offer the decision forms: the rule the commands apply (the command still
    // decides when the form is sent, and its refusal is shown).
    let (r, decision) = state.commands.requisition_and_decision(&actor, id).await?;
    let history = state.commands.requisition_history(&actor, id).await?;
    let funds = funds_of(state, &actor).await?;
    let mut people: Vec<Uuid> = vec![r.requester_id];
    people.extend(r.approvals.iter().map(|a| a.approver_id));
    people.extend(r.current_eligible.iter().flatten().copied());
    people.extend(r.duplicate_dismissed.iter().map(|d| d.by));
    let names = names(state, &actor, people).await?;
    let mine = r.requester_id == actor.user_id;
    let may_decide = decision.is_ok();
    // The holder's own advance, once paid (`GET /api/advances/{id}`); a requisition that is no
    // advance has none.
    let advance = if mine && r.status == Status::Paid {
        match state.commands.advance(&actor, id).await {
            Ok(a) => Some(AdvanceBox {
                amount: money(&a.currency, a.amount),
                spent: money(&a.currency, a.spent),
                returned: money(&a.currency, a.returned),
                outstanding: money(&a.currency, a.outstanding),
                open: a.outstanding > Decimal::ZERO,
                status: a.status,
                due: a.due_at.as_ref().map(when).unwrap_or_else(|| "—".into()),
                currency: a.currency,
            }),
            Err(CommandError::Domain(DomainError::NotFound { .. })) => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let open = !r.status.is_final();

    let mut current_seen = false;
    let steps = r
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let approvals: Vec<String> = r
                .approvals
                .iter()
                .filter(|a| a.step == i)
                .map(|a| match a.on_behalf_of {
                    Some(other) => {
                        format!("{} for {}", name_of(&names, a.approver_id), name_of(&names, other))
                    }
                    None => name_of(&names, a.approver_id),
                })
                .collect();
            let (state, detail) = if !approvals.is_empty() {
                ("approved", format!("Approved by {}", approvals.join(", ")))
            } else if r.status == Status::PendingApproval
                && Some(step.role) == r.current_role
                && !current_seen
            {
                current_seen = true;
                ("current", format!("Waiting on {}", waiting_on(&r, &names)))
            } else if step.escalated_to_admin {
                ("escalated", "Escalated to the admins".to_string())
            } else if r.status == Status::PendingApproval {
                ("waiting", "Later".to_string())
            } else {
                ("waiting", "Not reached".to_string())
            };
            StepLine { number: i + 1, role: super::layout::role_label(step.role), state, detail }
        })
        .collect();
    let timeline = history.iter().rev().map(|e| timeline_entry(e, &names)).collect();
    let page = DetailPage {
        layout: Layout::signed_in(state, "Requisition", user, token, "/requisitions/")?,
        csrf_token: csrf::token(state, Binding::Session(token))?,
        id,
        purpose: r.purpose.clone(),
        amount: money(&r.currency, r.amount),
        status: status_label(r.status),
        status_code: r.status.as_str(),
        fund: funds.iter().find(|f| f.id == r.fund_id).map(|f| f.name.clone()).unwrap_or_default(),
        payee: r.payee.clone().unwrap_or_default(),
        category: r.category.clone().unwrap_or_default(),
        requester: name_of(&names, r.requester_id),
        reason: r.reason.clone(),
        changes_deadline: r
            .changes_deadline
            .as_ref()
            .filter(|_| r.status == Status::ChangesRequested)
            .map(when),
        waits_on: (r.status == Status::PendingApproval).then(|| waiting_on(&r, &names)),
        steps,
        duplicates: r
            .possible_duplicates
            .0
            .iter()
            .map(|d| DuplicateLine { href: format!("/requisitions/{}", d.id), label: d.id.to_string() })
            .collect(),
        duplicate_dismissed: r
            .duplicate_dismissed
            .as_ref()
            .map(|d| format!("Dismissed by {}: {}", name_of(&names, d.by), d.reason)),
        receipts: r
            .receipts
            .iter()
            .map(|f| ReceiptLine {
                name: f.name.clone(),
                href: format!("/api/requisitions/{id}/receipts/{}", f.id),
                size: size(f.size),
            })
            .collect(),
        timeline,
        may_edit: mine && matches!(r.status, Status::Draft | Status::ChangesRequested),
        may_submit: mine && r.status == Status::Draft,
        may_cancel: mine && open,
        may_attach: mine && open,
        may_decide,
        advance,
        problem,
    };
    render(problem_status(&page.problem), &page)
}

/// Who the current step waits on: the people it was routed to, or any holder of its role.
fn waiting_on(r: &RequisitionView, names: &HashMap<Uuid, String>) -> String {
    let role = r.current_role.map(super::layout::role_label).unwrap_or("an approver");
    match &r.current_eligible {
        Some(people) if !people.is_empty() => {
            let named: Vec<String> = people.iter().map(|p| name_of(names, *p)).collect();
            format!("{} ({role})", named.join(", "))
        }
        _ => format!("any {}", role.to_lowercase()),
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} bytes"),
        b if b < 1024 * 1024 => format!("{:.0} KB", b as f64 / 1024.0),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// `RequisitionApproved` as `Approved`, `ReceiptAttached` as `Receipt attached`.
fn event_label(event_type: &str) -> String {
    let short = event_type.strip_prefix("Requisition").filter(|s| !s.is_empty()).unwrap_or(event_type);
    let mut text = String::new();
    for (i, c) in short.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            text.push(' ');
            text.extend(c.to_lowercase());
        } else {
            text.push(c);
        }
    }
    text
}

fn timeline_entry(e: &HistoryEntry, names: &HashMap<Uuid, String>) -> TimelineEntry {
    let who = match (&e.actor_name, e.actor_id.as_deref()) {
        (Some(name), _) => name.clone(),
        (None, Some("operator")) => "The operator".into(),
        (None, Some(id)) => {
            id.parse().ok().and_then(|id: Uuid| names.get(&id).cloned()).unwrap_or_else(|| "Someone".into())
        }
        (None, None) => "The system".into(),
    };
    let text = |key: &str| e.data.get(key).and_then(|v| v.as_str()).and_then(optional);
    TimelineEntry {
        when: when(&e.recorded_at),
        iso: e.recorded_at.to_rfc3339(),
        who,
        what: event_label(&e.event_type),
        comment: text("comment").or_else(|| text("reason")),
    }
}

// ---------------------------------------------------------------------------------------------
// Edit and resubmit

#[derive(Template)]
#[template(path = "requisition_edit.html")]
struct EditPage {
    layout: Layout,
    csrf_token: String,
    id: Uuid,
    status_code: &'static str,
    reason: Option<String>,
    changes_deadline: Option<String>,
    draft: Draft,
    categories: Vec<Choice>,
    comment: String,
    problem: Option<Problem>,
}

impl EditPage {
    fn error(&self, field: &str) -> Option<&str> {
        problem_at(&self.problem, "edit", field)
    }
}

const EDIT_FIELDS: [&str; 6] = ["amount", "purpose", "payee", "category", "category_id", "comment"];

async fn edit_page(
    state: &AppState,
    user: &AuthUser,
    token: &str,
    r: &RequisitionView,
    draft: Option<Draft>,
    comment: String,
    problem: Option<Problem>,
) -> ApiResult<Response> {
    let draft = draft.unwrap_or_else(|| Draft {
        fund_id: r.fund_id.to_string(),
        amount: r.amount.to_string(),
        purpose: r.purpose.clone(),
        payee: r.payee.clone().unwrap_or_default(),
        category: r.category.clone().unwrap_or_default(),
        category_id: r.category_id.map(|c| c.to_string()).unwrap_or_default(),
    });
    let page = EditPage {
        layout: Layout::signed_in(state, "Edit requisition", user, token, "/requisitions/")?,
        csrf_token: csrf::token(state, Binding::Session(token))?,
        id: r.id,
        status_code: r.status.as_str(),
        reason: r.reason.clone().filter(|_| r.status == Status::ChangesRequested),
        changes_deadline: r
            .changes_deadline
            .as_ref()
            .filter(|_| r.status == Status::ChangesRequested)
            .map(when),
        categories: categories_of(state, &user.actor()).await?,
        draft,
        comment,
        problem,
    };
    render(problem_status(&page.problem), &page)
}

/// `GET /requisitions/{id}/edit`: the form, filled in (404 for a requisition the viewer may
/// not see). Whether it may be changed is the command's to say, when it is saved.
pub async fn edit_form(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let r = state.commands.requisition(&user.actor(), id).await?;
    edit_page(&state, &user, &token, &r, None, String::new(), None).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EditFields {
    amount: String,
    purpose: String,
    payee: String,
    category: String,
    category_id: String,
    comment: String,
    /// `save`, or `submit` (save, then submit or resubmit).
    action: String,
}

/// `POST /requisitions/{id}/edit`: the fields that changed, as `PATCH /api/requisitions/{id}`
/// (`changes_of`), then with `action=submit` the submission (`POST .../submit`, with the
/// comment): a resubmission after changes were requested.
pub async fn edit(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<EditFields>,
) -> ApiResult<Response> {
    let actor = form.user.actor();
    let r = state.commands.requisition(&actor, id).await?;
    let f = &form.form;
    let result = async {
        let amount = amount(&f.amount)?;
        let changed = |new: &str, old: &str| (new.trim() != old).then(|| new.trim().to_string());
        let body = EditRequisition {
            amount: (amount.0 != r.amount).then_some(amount),
            purpose: changed(&f.purpose, &r.purpose),
            payee: changed(&f.payee, r.payee.as_deref().unwrap_or_default()),
            category: changed(&f.category, r.category.as_deref().unwrap_or_default()),
            category_id: uuid_field("category_id", &f.category_id, "choose a category")?
                .filter(|c| Some(*c) != r.category_id),
            cost_centre_id: None,
        };
        let ctx = form.context();
        match changes_of(&body) {
            Ok((changes, choice)) => {
                outcome(
                    &state,
                    &form.session,
                    state.commands.edit_requisition_with(&ctx, id, changes, choice).await,
                )
                .await?;
            }
            // Nothing changed: nothing to record.
            Err(e) if e.field.as_deref() == Some("body") => {}
            Err(e) => return Err(e),
        }
        if f.action == "submit" {
            let submitted = state.commands.submit_requisition_with(
                &ctx,
                id,
                optional(&f.comment),
                None,
                Default::default(),
            );
            outcome(&state, &form.session, submitted.await).await?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(see_other(&format!("/requisitions/{id}"))),
        Err(err) => {
            let problem = Problem::of("edit", &EDIT_FIELDS, err)?;
            let draft = Draft {
                fund_id: r.fund_id.to_string(),
                amount: f.amount.clone(),
                purpose: f.purpose.clone(),
                payee: f.payee.clone(),
                category: f.category.clone(),
                category_id: f.category_id.clone(),
            };
            edit_page(&state, &form.user, &form.token, &r, Some(draft), f.comment.clone(), Some(problem))
                .await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The actions of the detail page

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CommentForm {
    comment: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReasonForm {
    reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChangesForm {
    reason: String,
    /// A `datetime-local` control's value (`2026-12-08T17:00`), read as UTC; blank: the
    /// default deadline.
    deadline: String,
}

/// After an action: to the requisition, or its page again with the problem on the form.
async fn after<T>(
    state: &AppState,
    form: &PageForm<impl Sized>,
    id: Uuid,
    which: &'static str,
    fields: &[&str],
    result: ApiResult<Outcome<T>>,
) -> ApiResult<Response> {
    match result {
        Ok(_) => Ok(see_other(&format!("/requisitions/{id}"))),
        Err(err) => {
            let problem = Problem::of(which, fields, err)?;
            detail_page(state, &form.user, &form.token, id, Some(problem)).await
        }
    }
}

/// `POST /requisitions/{id}/submit` (a draft; `POST /api/requisitions/{id}/submit`).
pub async fn submit(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<CommentForm>,
) -> ApiResult<Response> {
    let ctx = form.context();
    let comment = optional(&form.form.comment);
    let result = state.commands.submit_requisition_with(&ctx, id, comment, None, Default::default()).await;
    let result = outcome(&state, &form.session, result).await;
    after(&state, &form, id, "submit", &["comment"], result).await
}

/// `POST /requisitions/{id}/cancel` (`POST /api/requisitions/{id}/cancel`).
pub async fn cancel(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<ReasonForm>,
) -> ApiResult<Response> {
    let ctx = form.context();
    let reason = optional(&form.form.reason);
    let result = state.commands.cancel_requisition(&ctx, id, reason.as_deref()).await;
    let result = outcome(&state, &form.session, result).await;
    after(&state, &form, id, "cancel", &["reason"], result).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SettleForm {
    spent: String,
    returned: String,
    note: String,
}

/// `POST /requisitions/{id}/settle`: the holder settles (part of) their advance with what they
/// spent and the cash they return (`POST /api/advances/{id}/settlements`,
/// `CommandService::settle_advance`); a blank amount is none.
pub async fn settle(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<SettleForm>,
) -> ApiResult<Response> {
    const FIELDS: [&str; 3] = ["spent", "returned", "note"];
    let typed = |field: &'static str, text: &str| -> ApiResult<Decimal> {
        match optional(text) {
            None => Ok(Decimal::ZERO),
            Some(t) => amount(&t).map(|a| a.0).map_err(|e| ApiError { field: Some(field.into()), ..e }),
        }
    };
    let input = typed("spent", &form.form.spent).and_then(|spent| {
        Ok(Settlement {
            spent,
            returned: typed("returned", &form.form.returned)?,
            note: optional(&form.form.note),
            ..Default::default()
        })
    });
    let result = match input {
        Ok(input) => {
            let ctx = form.context();
            outcome(&state, &form.session, state.commands.settle_advance(&ctx, id, input).await).await
        }
        Err(e) => Err(e),
    };
    after(&state, &form, id, "settle", &FIELDS, result).await
}

/// `POST /requisitions/{id}/approve` (`POST /api/requisitions/{id}/approve`).
pub async fn approve(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<CommentForm>,
) -> ApiResult<Response> {
    let ctx = form.context();
    let result = state.commands.approve_requisition(&ctx, id, optional(&form.form.comment)).await;
    let result = outcome(&state, &form.session, result).await;
    after(&state, &form, id, "approve", &["comment"], result).await
}

/// `POST /requisitions/{id}/reject` (`POST /api/requisitions/{id}/reject`).
pub async fn reject(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<ReasonForm>,
) -> ApiResult<Response> {
    let ctx = form.context();
    let result = state.commands.reject_requisition(&ctx, id, &form.form.reason).await;
    let result = outcome(&state, &form.session, result).await;
    after(&state, &form, id, "reject", &["reason"], result).await
}

/// The `datetime-local` value `text` as a UTC instant; blank is `None`.
fn deadline(text: &str) -> ApiResult<Option<DateTime<Utc>>> {
    let Some(text) = optional(text) else { return Ok(None) };
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&text, f).ok())
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| ApiError::unprocessable("deadline", "the deadline must be a date and time"))
}

/// `POST /requisitions/{id}/request-changes` (`POST /api/requisitions/{id}/request-changes`).
pub async fn request_changes(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<ChangesForm>,
) -> ApiResult<Response> {
    let ctx = form.context();
    let result = match deadline(&form.form.deadline) {
        Ok(deadline) => {
            let result = state.commands.request_changes(&ctx, id, &form.form.reason, deadline).await;
            outcome(&state, &form.session, result).await
        }
        Err(e) => Err(e),
    };
    after(&state, &form, id, "changes", &["reason", "deadline"], result).await
}

/// `POST /requisitions/{id}/receipts` (multipart, `file`): the API's upload path
/// (`routes::receipts`): 404 for a requisition the viewer may not see, the type checked by
/// content, then stored and attached.
pub async fn attach_receipt(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageUpload,
) -> ApiResult<Response> {
    state.commands.requisition(&form.user.actor(), id).await?;
    let result = match form.file.clone() {
        None => Err(ApiError::unprocessable("file", "choose a file")),
        Some((name, bytes)) => match receipts::check_receipt(&bytes) {
            Ok(()) => receipts::attach(&state, &form.context(), &form.session, id, &name, bytes).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(_) => Ok(see_other(&format!("/requisitions/{id}"))),
        Err(err) => {
            let problem = Problem::of("receipt", &["file"], err)?;
            detail_page(&state, &form.user, &form.token, id, Some(problem)).await
        }
    }
}

/// Whether `actor` has an approvals inbox: a role some approval chain can wait on (the
/// inbox's own rule, as the navigation shows it).
pub fn approves(actor: &Actor) -> bool {
    !RequisitionScope::of(actor).chain_roles.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_words() {
        assert_eq!(event_label("RequisitionApproved"), "Approved");
        assert_eq!(event_label("ChangesRequested"), "Changes requested");
        assert_eq!(event_label("ReceiptAttached"), "Receipt attached");
        assert_eq!(event_label("Requisition"), "Requisition");
    }

    #[test]
    fn the_list_keeps_its_filters_in_its_links() {
        let params =
            ListParams { status: "pending_approval".into(), q: "toner ink".into(), ..Default::default() };
        assert_eq!(params.href(None), "/requisitions/?status=pending_approval&q=toner+ink");
        assert_eq!(params.href(Some("abc")), "/requisitions/?status=pending_approval&q=toner+ink&cursor=abc");
        assert_eq!(ListParams::default().href(None), "/requisitions/");
    }

    #[test]
    fn a_deadline_is_a_local_date_and_time_read_as_utc() {
        assert_eq!(deadline("").unwrap(), None);
        assert_eq!(deadline("2026-12-08T17:00").unwrap().unwrap().to_rfc3339(), "2026-12-08T17:00:00+00:00");
        assert_eq!(deadline("tomorrow").unwrap_err().field.as_deref(), Some("deadline"));
    }
}
