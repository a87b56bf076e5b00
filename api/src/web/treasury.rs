//! `/treasury/...` (issue #16): the payments queue, paying with the one-time code, a provider
//! payment's status, the funds with their cash counts, replenishments, variances and period
//! close, advances and bulk payment files.
//!
//! Every page reads with the query the JSON API's handler uses (`queries::list_requisitions`
//! under the caller's `RequisitionScope`, `queries::list_funds`, `CommandService::fund`,
//! `advances`, `payment_batches`, `provider_payment`) and every form runs the command the API
//! runs (`routes::payments::{pay_cash, pay_through_provider}`, `request_payment_code`,
//! `record_count`, `decide_variance`, the replenishment commands). The area is for payment
//! readers (`visibility::may_read_payments`, the rule of `GET /api/treasury/payments/`); who
//! may do what within it is the commands' to say, and their refusal is shown beside the form
//! that asked.

use super::csrf::PageForm;
use super::dashboard::{money, words};
use super::layout::Layout;
use super::render;
use super::requisitions::PageUpload;
use super::session::{sentence, PageUser};
use crate::error::{ApiError, ApiResult};
use crate::extract::IdPath;
use crate::routes::bulk_payments::import_results_file;
pub use crate::routes::command_error;
use crate::routes::consistent;
use crate::routes::payments::{pay_cash, pay_through_provider, PayRequest};
use crate::routes::reads::{parse_cursor, parse_min_position, present, query_error};
use crate::state::AppState;
use crate::upload;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use pettycash_commands::advances::{AdvanceFilter, STATUSES};
use pettycash_commands::bulk_payments::ResultLineReport;
use pettycash_commands::views::FundView;
use pettycash_commands::CommandError;
use pettycash_domain::denomination::{self, Form};
use pettycash_domain::fund::PaymentMethod;
use pettycash_domain::money::Currency;
use pettycash_domain::requisition::Status;
use pettycash_domain::visibility::{self, RequisitionScope};
use pettycash_domain::{Actor, Role};
use pettycash_projections::queries::{self, PageRequest, RequisitionFilter};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// The area's first page (the navigation's `href`).
pub const HOME: &str = "/treasury/";

/// The payment methods a payer chooses from, as the API names them.
const METHODS: [(&str, &str); 3] =
    [("cash", "Cash"), ("mobile_money", "Mobile money"), ("bank", "Bank transfer")];

/// An option of a filter.
pub struct Choice {
    pub value: &'static str,
    pub label: String,
    pub selected: bool,
}

/// `all` as a filter's options, `chosen` selected.
pub fn choices(all: impl IntoIterator<Item = &'static str>, chosen: &str) -> Vec<Choice> {
    all.into_iter().map(|value| Choice { value, label: words(value), selected: value == chosen }).collect()
}

/// A tab of the area.
pub struct Tab {
    pub label: &'static str,
    pub href: &'static str,
    pub current: bool,
}

fn tabs(current: &str) -> Vec<Tab> {
    [
        ("Payments queue", HOME),
        ("Funds", "/treasury/funds/"),
        ("Advances", "/treasury/advances/"),
        ("Bulk payments", "/treasury/bulk-payments/"),
    ]
    .into_iter()
    .map(|(label, href)| Tab { label, href, current: href == current })
    .collect()
}

/// A refusal of a command, shown beside the form that asked for it: the form, the field the
/// API names (`ApiError::field`) and its message as a sentence.
pub struct Refusal {
    pub form: String,
    pub field: Option<String>,
    pub message: String,
}

impl Refusal {
    /// `err` as a refusal of `form`, with the status the page answers; what is no refusal of a
    /// form (not found, the database, a fault) stays an error page.
    pub fn of(form: &str, err: ApiError) -> Result<(StatusCode, Refusal), ApiError> {
        match err.status.as_u16() {
            400 | 403 | 409 | 410 | 413 | 415 | 422 | 429 => Ok((
                err.status,
                Refusal { form: form.into(), field: err.field.clone(), message: sentence(&err.message) },
            )),
            _ => Err(err),
        }
    }

    /// The message when it is about `form` (and, given one, its `field`; a refusal naming no
    /// field of the form is shown with the form's button).
    pub fn at(refusal: &Option<Refusal>, form: &str, field: Option<&str>) -> Option<String> {
        let r = refusal.as_ref().filter(|r| r.form == form)?;
        match field {
            Some(f) => (r.field.as_deref() == Some(f)).then(|| r.message.clone()),
            None => Some(r.message.clone()),
        }
    }
}

/// The area is for payment readers (the rule of `GET /api/treasury/payments/`): 403 otherwise,
/// with the API's message.
fn may_enter(actor: &Actor) -> ApiResult<()> {
    if visibility::may_read_payments(actor) {
        return Ok(());
    }
    let readers: Vec<&str> = visibility::PAYMENT_READERS.iter().map(|r| r.as_str()).collect();
    Err(ApiError::forbidden(
        "missing_role",
        format!("the treasury pages need one of the roles {}", readers.join(", ")),
    ))
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `YYYY-MM-DD HH:MM UTC`.
fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The names of the funds the user may read, by id.
async fn fund_names(state: &AppState, actor: &Actor) -> ApiResult<HashMap<Uuid, String>> {
    Ok(queries::list_funds(&state.pool, actor.company()).await?.into_iter().map(|f| (f.id, f.name)).collect())
}

// ---------------------------------------------------------------------------------------------
// The payments queue

/// An approved requisition waiting to be paid.
pub struct QueueLine {
    pub id: Uuid,
    pub purpose: String,
    pub payee: String,
    pub fund: String,
    pub amount: String,
    pub submitted: String,
}

#[derive(Template)]
#[template(path = "treasury_queue.html")]
struct QueuePage {
    layout: Layout,
    tabs: Vec<Tab>,
    lines: Vec<QueueLine>,
    /// The query of the next page, when there is one.
    next: Option<String>,
    /// A requisition just paid (from the pay form's redirect).
    paid: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueueQuery {
    paid: Option<String>,
    cursor: Option<String>,
    min_position: Option<String>,
}

/// One page (50) of the payments queue: approved requisitions `actor` may see, newest first
/// (`GET /api/requisitions/?status=approved`'s query and scope), from `cursor`; and the query
/// of the next page (`cursor=…`), when there is one.
async fn approved(
    state: &AppState,
    actor: &Actor,
    cursor: &Option<String>,
) -> ApiResult<(Vec<queries::RequisitionRow>, Option<String>)> {
    let filter = RequisitionFilter { status: Some(Status::Approved), ..Default::default() };
    let page = PageRequest { limit: None, after: parse_cursor(cursor)? };
    let found = queries::list_requisitions(&state.pool, &RequisitionScope::of(actor), &filter, page)
        .await
        .map_err(query_error)?;
    let next = found.next_cursor.map(|c| serde_urlencoded::to_string([("cursor", c)]).unwrap_or_default());
    Ok((found.items, next))
}

/// `GET /treasury/`: approved requisitions the user may see (`GET /api/requisitions/?status=approved`
/// under the same scope), oldest last as the list orders them, each with its pay action.
pub async fn queue(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    headers: HeaderMap,
    Query(q): Query<QueueQuery>,
) -> ApiResult<Response> {
    let actor = user.actor();
    may_enter(&actor)?;
    let min = parse_min_position(&q.min_position)?;
    consistent(&state, &["requisitions", "cash"], min, &headers).await?;
    let (items, next) = approved(&state, &actor, &q.cursor).await?;
    let funds = fund_names(&state, &actor).await?;
    let lines = items
        .into_iter()
        .map(|r| QueueLine {
            id: r.id,
            purpose: r.purpose,
            payee: r.payee.unwrap_or_default(),
            fund: funds.get(&r.fund_id).cloned().unwrap_or_default(),
            amount: money(&r.currency, r.amount),
            submitted: r.submitted_at.map(when).unwrap_or_default(),
        })
        .collect();
    let layout = Layout::signed_in(&state, "Payments queue", &user, &token, HOME)?;
    let paid = present(&q.paid).and_then(|p| p.parse().ok());
    render(StatusCode::OK, &QueuePage { layout, tabs: tabs(HOME), lines, next, paid })
}

// ---------------------------------------------------------------------------------------------
// Paying with the one-time code

#[derive(Template)]
#[template(path = "treasury_pay.html")]
struct PayPage {
    layout: Layout,
    tabs: Vec<Tab>,
    id: Uuid,
    purpose: String,
    payee: String,
    fund: String,
    amount: String,
    status: String,
    payable: bool,
    methods: [(&'static str, &'static str); 3],
    /// The method chosen (kept between the steps).
    method: String,
    destination: String,
    reference: String,
    /// The code was mailed: to whom, until when.
    sent: Option<String>,
    refusal: Option<Refusal>,
}

impl PayPage {
    fn error(&self, form: &str, field: Option<&str>) -> Option<String> {
        Refusal::at(&self.refusal, form, field)
    }

    /// A refusal of `form` naming none of the pay form's fields: shown with its button.
    fn general(&self, form: &str) -> Option<String> {
        let r = self.refusal.as_ref().filter(|r| r.form == form)?;
        match r.field.as_deref() {
            Some("method" | "code" | "destination" | "reference") => None,
            _ => Some(r.message.clone()),
        }
    }

    fn is_method(&self, value: &str) -> bool {
        self.method == value
    }
}

/// The pay page of requisition `id` as `user` may see it (`CommandService::requisition`, the
/// API's `GET /api/requisitions/{id}`).
async fn pay_page(
    state: &AppState,
    user: &pettycash_commands::auth::AuthUser,
    token: &str,
    id: Uuid,
) -> ApiResult<PayPage> {
    let actor = user.actor();
    may_enter(&actor)?;
    let r = state.commands.requisition(&actor, id).await?;
    let fund = fund_names(state, &actor).await?.remove(&r.fund_id).unwrap_or_default();
    // A code asked for earlier that still works: the page says so, with its method chosen.
    let open = match r.status {
        Status::Approved => state.commands.open_payment_code(&actor, id).await?,
        _ => None,
    };
    Ok(PayPage {
        layout: Layout::signed_in(state, "Pay a requisition", user, token, HOME)?,
        tabs: tabs(HOME),
        id,
        purpose: r.purpose,
        payee: r.payee.unwrap_or_default(),
        fund,
        amount: money(&r.currency, r.amount),
        status: words(r.status.as_str()),
        payable: r.status == Status::Approved,
        methods: METHODS,
        method: open.as_ref().map_or("cash", |c| c.method.as_str()).into(),
        destination: String::new(),
        reference: String::new(),
        sent: open.map(|c| {
            format!("A code was mailed to {}. It works once, until {}.", c.sent_to, when(c.expires_at))
        }),
        refusal: None,
    })
}

/// `GET /treasury/pay/{id}`.
pub async fn pay_form(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    render(StatusCode::OK, &pay_page(&state, &user, &token, id).await?)
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    method: PaymentMethod,
}

/// `POST /treasury/pay/{id}/code`: mails the payer a one-time code for paying `id` by `method`
/// (`request_payment_code`, as `POST /api/treasury/payments/code`), then 303 to the pay page,
/// which says to whom the code went and until when (`open_payment_code`): reloading that page
/// asks for nothing. A refusal (not payable by this user, asked too often) is the pay page
/// again with the reason beside the button.
pub async fn request_code(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<CodeForm>,
) -> ApiResult<Response> {
    let method = form.form.method;
    match state.commands.request_payment_code(&form.context(), id, method).await {
        Ok(_) => Ok(see_other(&format!("/treasury/pay/{id}"))),
        Err(e) => {
            let (status, refusal) = Refusal::of("code", command_error(&state, &form.session, e))?;
            let mut page = pay_page(&state, &form.user, &form.token, id).await?;
            page.method = method.as_str().into();
            page.refusal = Some(refusal);
            render(status, &page)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PayForm {
    method: PaymentMethod,
    #[serde(default)]
    code: String,
    #[serde(default)]
    destination: String,
    #[serde(default)]
    reference: String,
}

/// `POST /treasury/pay/{id}`: pays with the code (`routes::payments::pay_cash` or
/// `pay_through_provider`, as `POST /api/treasury/payments/`). Cash goes back to the queue,
/// a provider payment to its status; a refusal shows the form again with the reason beside
/// the field it names (the code, the destination, …).
pub async fn pay(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<PayForm>,
) -> ApiResult<Response> {
    let f = &form.form;
    let text = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let request = PayRequest {
        requisition_id: id,
        method: f.method,
        destination: text(&f.destination),
        reference: text(&f.reference),
        code: text(&f.code),
    };
    let ctx = form.context();
    let done = if f.method.through_provider() {
        pay_through_provider(&state, &ctx, &request)
            .await
            .map(|o| format!("/treasury/payments/{}", o.value.id))
    } else {
        pay_cash(&state, &ctx, &request)
            .await
            .map(|o| format!("{HOME}?paid={id}&min_position={}", o.position))
    };
    match done {
        Ok(to) => Ok(see_other(&to)),
        Err(e) => {
            let (status, refusal) = Refusal::of("pay", command_error(&state, &form.session, e))?;
            let mut page = pay_page(&state, &form.user, &form.token, id).await?;
            page.method = f.method.as_str().into();
            page.destination = f.destination.clone();
            page.reference = f.reference.clone();
            page.refusal = Some(refusal);
            render(status, &page)
        }
    }
}

#[derive(Template)]
#[template(path = "treasury_payment.html")]
struct PaymentPage {
    layout: Layout,
    tabs: Vec<Tab>,
    payment: pettycash_commands::provider_payments::ProviderPaymentRead,
    amount: String,
    /// `Pending`, `Confirmed` or `Failed` (the API's `executing`, `succeeded`, `failed`).
    shown: &'static str,
    started: String,
}

/// `GET /treasury/payments/{id}`: a payment through the provider as
/// `GET /api/treasury/payments/{id}` shows it.
pub async fn payment(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let actor = user.actor();
    may_enter(&actor)?;
    let payment = state.commands.provider_payment(&actor, id).await?;
    let shown = match payment.status.as_str() {
        "succeeded" => "Confirmed",
        "failed" => "Failed",
        _ => "Pending",
    };
    let page = PaymentPage {
        layout: Layout::signed_in(&state, "Payment", &user, &token, HOME)?,
        tabs: tabs(HOME),
        amount: money(&payment.currency, payment.amount),
        started: when(payment.started_at),
        shown,
        payment,
    };
    render(StatusCode::OK, &page)
}

// ---------------------------------------------------------------------------------------------
// Funds

/// A fund's row.
pub struct FundLine {
    pub id: Uuid,
    pub name: String,
    pub balance: String,
    pub float: String,
    pub reorder_level: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "treasury_funds.html")]
struct FundsPage {
    layout: Layout,
    tabs: Vec<Tab>,
    funds: Vec<FundLine>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PositionQuery {
    min_position: Option<String>,
}

/// `GET /treasury/funds/`: the funds of `GET /api/funds/` with balance, float, reorder level
/// and status.
pub async fn funds(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    headers: HeaderMap,
    Query(q): Query<PositionQuery>,
) -> ApiResult<Response> {
    let actor = user.actor();
    may_enter(&actor)?;
    consistent(&state, &["cash"], parse_min_position(&q.min_position)?, &headers).await?;
    let funds = queries::list_funds(&state.pool, actor.company())
        .await?
        .into_iter()
        .map(|f| FundLine {
            id: f.id,
            balance: money(&f.currency, f.balance),
            float: money(&f.currency, f.float),
            reorder_level: f.reorder_level.map_or_else(|| "—".into(), |r| money(&f.currency, r)),
            status: f.status.clone(),
            name: f.name,
        })
        .collect();
    let layout = Layout::signed_in(&state, "Funds", &user, &token, HOME)?;
    render(StatusCode::OK, &FundsPage { layout, tabs: tabs("/treasury/funds/"), funds })
}

/// A denomination's line of the count form.
pub struct DenominationField {
    /// The form field: `n` and the face value (`n1000`, `n0.50`).
    pub name: String,
    /// The element id (no dot): `count-1000`, `count-0-50`.
    pub id: String,
    pub label: String,
    pub value: String,
}

/// A count's variance waiting for an approver.
pub struct VarianceLine {
    pub count_id: Uuid,
    pub variance: String,
}

#[derive(Template)]
#[template(path = "treasury_fund.html")]
struct FundPage {
    layout: Layout,
    tabs: Vec<Tab>,
    fund: FundView,
    balance: String,
    float: String,
    available: String,
    reorder_level: String,
    minimum_balance: String,
    /// The open replenishment: its amount and status.
    replenishment: Option<(Uuid, String, String)>,
    variances: Vec<VarianceLine>,
    denominations: Vec<DenominationField>,
    notice: Option<String>,
    refusal: Option<Refusal>,
}

impl FundPage {
    fn error(&self, form: &str, field: Option<&str>) -> Option<String> {
        Refusal::at(&self.refusal, form, field)
    }

    fn variance_error(&self, count_id: &Uuid) -> Option<String> {
        Refusal::at(&self.refusal, &format!("variance-{count_id}"), None)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FundQuery {
    done: Option<String>,
    variance: Option<String>,
    count_status: Option<String>,
}

/// What a fund form did, as the page says it after the redirect (only these words: a link
/// cannot make the page say anything else).
fn notice(q: &FundQuery, currency: &str) -> Option<String> {
    let variance = present(&q.variance).and_then(|v| v.parse::<Decimal>().ok());
    Some(match present(&q.done)? {
        "count" | "close" => {
            let status = present(&q.count_status).filter(|s| ["matched", "adjusted", "pending"].contains(s));
            let what = if q.done.as_deref() == Some("close") {
                "The period was closed with the count"
            } else {
                "The count was recorded"
            };
            match (variance, status) {
                (Some(v), Some(s)) => {
                    format!("{what}: variance {} ({}).", money(currency, v), words(s).to_lowercase())
                }
                _ => format!("{what}."),
            }
        }
        "replenishment_requested" => "The replenishment was requested.".into(),
        "replenishment_approved" => "The replenishment was approved.".into(),
        "replenishment_rejected" => "The replenishment was rejected.".into(),
        "replenishment_funded" => "The replenishment's cash was recorded as received.".into(),
        "variance_approved" => "The variance was approved and applied.".into(),
        "variance_rejected" => "The variance was rejected.".into(),
        _ => return None,
    })
}

/// The fund page of `id` (`CommandService::fund`, as `GET /api/funds/{id}`; 404 for a fund
/// the user may not read).
async fn fund_page(
    state: &AppState,
    user: &pettycash_commands::auth::AuthUser,
    token: &str,
    id: Uuid,
) -> ApiResult<FundPage> {
    let actor = user.actor();
    may_enter(&actor)?;
    let fund = state.commands.fund(&actor, id).await?.ok_or_else(|| ApiError::not_found("fund"))?;
    let c = fund.currency.clone();
    let denominations = Currency::parse(&c)
        .ok()
        .and_then(|cur| denomination::of(&cur))
        .unwrap_or_default()
        .into_iter()
        .map(|(value, form)| {
            let face = value.to_string();
            DenominationField {
                name: format!("n{face}"),
                id: format!("count-{}", face.replace('.', "-")),
                label: format!(
                    "{} {face} {}",
                    c,
                    match form {
                        Form::Note => "notes",
                        Form::Coin => "coins",
                    }
                ),
                value: String::new(),
            }
        })
        .collect();
    Ok(FundPage {
        layout: Layout::signed_in(state, &fund.name, user, token, HOME)?,
        tabs: tabs("/treasury/funds/"),
        balance: money(&c, fund.balance),
        float: money(&c, fund.float),
        available: money(&c, fund.available),
        reorder_level: fund.reorder_level.map_or_else(|| "—".into(), |r| money(&c, r)),
        minimum_balance: money(&c, fund.minimum_balance),
        replenishment: fund.replenishment.as_ref().map(|r| (r.id, money(&c, r.amount), r.status.clone())),
        variances: fund
            .pending_variances
            .iter()
            .map(|v| VarianceLine { count_id: v.count_id, variance: money(&c, v.variance) })
            .collect(),
        denominations,
        notice: None,
        refusal: None,
        fund,
    })
}

/// `GET /treasury/funds/{id}`.
pub async fn fund(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    IdPath(id): IdPath,
    Query(q): Query<FundQuery>,
) -> ApiResult<Response> {
    let mut page = fund_page(&state, &user, &token, id).await?;
    page.notice = notice(&q, &page.fund.currency);
    render(StatusCode::OK, &page)
}

/// After a fund form: back to the fund with what was done, or its page again with the
/// refusal beside `form`.
async fn fund_result<T>(
    state: &AppState,
    form: &PageForm<impl Sized>,
    id: Uuid,
    name: &str,
    result: Result<T, CommandError>,
    done: impl FnOnce(T) -> String,
    keep: impl FnOnce(&mut FundPage),
) -> ApiResult<Response> {
    match result {
        Ok(value) => Ok(see_other(&format!("/treasury/funds/{id}?{}", done(value)))),
        Err(e) => {
            let (status, refusal) = Refusal::of(name, command_error(state, &form.session, e))?;
            let mut page = fund_page(state, &form.user, &form.token, id).await?;
            keep(&mut page);
            page.refusal = Some(refusal);
            render(status, &page)
        }
    }
}

/// `POST /treasury/funds/{id}/counts`: the count form, pieces per denomination (fields `n` +
/// face value; empty ones are not counted), `close_period` to close the month with it
/// (`record_count`, as `POST /api/funds/{id}/counts` and `/periods/close`).
pub async fn record_count(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let close = form.form.get("close_period").is_some_and(|v| v == "on");
    let mut lines = Vec::new();
    let mut bad = None;
    for (name, value) in &form.form {
        let (Some(face), Some(pieces)) =
            (name.strip_prefix('n'), Some(value.trim()).filter(|v| !v.is_empty()))
        else {
            continue;
        };
        match pieces.parse::<u64>() {
            Ok(n) => lines.push((face.to_string(), n)),
            Err(_) => bad = Some(format!("“{pieces}” pieces of {face} is not a whole number")),
        }
    }
    let result = match bad {
        Some(message) => Err(CommandError::from(pettycash_domain::DomainError::invalid("counts", message))),
        None => state.commands.record_count(&form.context(), id, lines, close).await,
    };
    let kept = form.form.clone();
    fund_result(
        &state,
        &form,
        id,
        "count",
        result,
        |o| {
            let done = if close { "close" } else { "count" };
            format!("done={done}&variance={}&count_status={}", o.value.variance, o.value.status)
        },
        move |page| {
            for d in &mut page.denominations {
                d.value = kept.get(&d.name).cloned().unwrap_or_default();
            }
        },
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReasonForm {
    reason: String,
    bank_reference: String,
}

/// `POST /treasury/funds/{id}/replenishments`: raise a replenishment by hand
/// (`request_replenishment`).
pub async fn request_replenishment(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageForm<ReasonForm>,
) -> ApiResult<Response> {
    let result = state.commands.request_replenishment(&form.context(), id).await;
    fund_result(&state, &form, id, "replenishment", result, |_| "done=replenishment_requested".into(), |_| ())
        .await
}

/// A fund's id, the id of something of it and what to do with it, from the path (a malformed
/// id is a 400 naming it, as the API's `FundAndId`).
pub struct SubAction(Uuid, Uuid, String);

impl axum::extract::FromRequestParts<AppState> for SubAction {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let axum::extract::Path((fund, sub, action)) =
            axum::extract::Path::<(String, String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::bad_request("invalid_id", "the path needs two ids"))?;
        let parse = |raw: &str, field: &'static str| {
            Uuid::parse_str(raw).map_err(|_| {
                ApiError::bad_request("invalid_id", format!("`{raw}` is not a valid id")).with_field(field)
            })
        };
        Ok(SubAction(parse(&fund, "id")?, parse(&sub, "sub_id")?, action))
    }
}

/// `POST /treasury/funds/{id}/replenishments/{sub}/{approve,reject,fund}`: decide the open
/// replenishment or record its cash as received (`decide_replenishment`,
/// `fund_replenishment`).
pub async fn replenishment(
    State(state): State<AppState>,
    SubAction(id, sub, action): SubAction,
    form: PageForm<ReasonForm>,
) -> ApiResult<Response> {
    let ctx = form.context();
    let reason = Some(form.form.reason.trim().to_string()).filter(|r| !r.is_empty());
    let c = &state.commands;
    let result = match action.as_str() {
        "approve" => c.decide_replenishment(&ctx, id, sub, true, None).await,
        "reject" => c.decide_replenishment(&ctx, id, sub, false, reason).await,
        "fund" => c.fund_replenishment(&ctx, id, sub, form.form.bank_reference.trim().to_string()).await,
        _ => return Err(ApiError::not_found("page")),
    };
    let done = match action.as_str() {
        "approve" => "replenishment_approved",
        "reject" => "replenishment_rejected",
        _ => "replenishment_funded",
    };
    fund_result(&state, &form, id, "replenishment", result, |_| format!("done={done}"), |_| ()).await
}

/// `POST /treasury/funds/{id}/counts/{sub}/{approve,reject}`: decide a count's variance
/// (`decide_variance`).
pub async fn variance(
    State(state): State<AppState>,
    SubAction(id, sub, action): SubAction,
    form: PageForm<ReasonForm>,
) -> ApiResult<Response> {
    let approve = match action.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(ApiError::not_found("page")),
    };
    let reason = Some(form.form.reason.trim().to_string()).filter(|r| !r.is_empty());
    let result = state.commands.decide_variance(&form.context(), id, sub, approve, reason).await;
    let done = if approve { "variance_approved" } else { "variance_rejected" };
    fund_result(&state, &form, id, &format!("variance-{sub}"), result, |_| format!("done={done}"), |_| ())
        .await
}

// ---------------------------------------------------------------------------------------------
// Advances and bulk payments

/// An advance's row.
pub struct AdvanceLine {
    pub requisition_id: Uuid,
    pub fund: String,
    pub amount: String,
    pub spent: String,
    pub returned: String,
    pub outstanding: String,
    pub status: String,
    pub due: String,
}

#[derive(Template)]
#[template(path = "treasury_advances.html")]
struct AdvancesPage {
    layout: Layout,
    tabs: Vec<Tab>,
    advances: Vec<AdvanceLine>,
    statuses: Vec<Choice>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AdvancesQuery {
    status: Option<String>,
}

/// `GET /treasury/advances/`: the advances of `GET /api/advances/` (the company's, for a
/// payment reader), filtered by status.
pub async fn advances(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    Query(q): Query<AdvancesQuery>,
) -> ApiResult<Response> {
    let actor = user.actor();
    may_enter(&actor)?;
    let status = present(&q.status).map(String::from);
    if let Some(s) = status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::unprocessable(
            "status",
            format!("`{s}` is not one of {}", STATUSES.join(", ")),
        ));
    }
    let filter = AdvanceFilter { holder_id: None, status: status.clone() };
    let funds = fund_names(&state, &actor).await?;
    let advances = state
        .commands
        .advances(&actor, &filter)
        .await?
        .into_iter()
        .map(|a| AdvanceLine {
            requisition_id: a.requisition_id,
            fund: funds.get(&a.fund_id).cloned().unwrap_or_default(),
            amount: money(&a.currency, a.amount),
            spent: money(&a.currency, a.spent),
            returned: money(&a.currency, a.returned),
            outstanding: money(&a.currency, a.outstanding),
            status: a.status,
            due: a.due_at.map(when).unwrap_or_else(|| "—".into()),
        })
        .collect();
    let layout = Layout::signed_in(&state, "Advances", &user, &token, HOME)?;
    let page = AdvancesPage {
        layout,
        tabs: tabs("/treasury/advances/"),
        advances,
        statuses: choices(STATUSES, status.as_deref().unwrap_or_default()),
    };
    render(StatusCode::OK, &page)
}

/// A batch's row.
pub struct BatchLine {
    pub id: Uuid,
    pub fund: String,
    pub count: i32,
    pub total: String,
    pub status: String,
    pub created: String,
}

/// An approved requisition that may go into a new batch.
pub struct Candidate {
    pub id: Uuid,
    pub purpose: String,
    pub fund: String,
    pub amount: String,
    pub checked: bool,
    pub destination: String,
}

#[derive(Template)]
#[template(path = "treasury_batches.html")]
struct BatchesPage {
    layout: Layout,
    tabs: Vec<Tab>,
    batches: Vec<BatchLine>,
    candidates: Vec<Candidate>,
    /// The queue's page the candidates are from (kept through the form), and the next one's
    /// query.
    cursor: String,
    next: Option<String>,
    /// The batch just created.
    created: Option<Uuid>,
    /// The code was mailed: to whom, for what, until when.
    sent: Option<String>,
    refusal: Option<Refusal>,
}

impl BatchesPage {
    fn error(&self) -> Option<String> {
        Refusal::at(&self.refusal, "batch", None)
    }

    /// Whether the refusal names this requisition's line (`requisition_ids.<id>`,
    /// `destinations.<id>`).
    fn names(&self, id: &Uuid) -> bool {
        let id = id.to_string();
        self.refusal.as_ref().and_then(|r| r.field.as_deref()).is_some_and(|f| f.ends_with(&id))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BatchesQuery {
    created: Option<String>,
    cursor: Option<String>,
}

/// The bulk payments page, its candidates from the queue's page at `cursor` (the first: none).
async fn batches_page(
    state: &AppState,
    user: &pettycash_commands::auth::AuthUser,
    token: &str,
    cursor: &Option<String>,
) -> ApiResult<BatchesPage> {
    let actor = user.actor();
    may_enter(&actor)?;
    let funds = fund_names(state, &actor).await?;
    let batches = state
        .commands
        .payment_batches(&actor)
        .await?
        .into_iter()
        .map(|b| BatchLine {
            id: b.id,
            fund: funds.get(&b.fund_id).cloned().unwrap_or_default(),
            count: b.count,
            total: money(&b.currency, b.total),
            status: b.status,
            created: when(b.created_at),
        })
        .collect();
    // A page of the queue: what may go into a batch.
    let (items, next) = approved(state, &actor, cursor).await?;
    let candidates = items
        .into_iter()
        .map(|r| Candidate {
            id: r.id,
            purpose: r.purpose,
            fund: funds.get(&r.fund_id).cloned().unwrap_or_default(),
            amount: money(&r.currency, r.amount),
            checked: false,
            destination: String::new(),
        })
        .collect();
    Ok(BatchesPage {
        layout: Layout::signed_in(state, "Bulk payments", user, token, HOME)?,
        tabs: tabs("/treasury/bulk-payments/"),
        batches,
        candidates,
        cursor: present(cursor).unwrap_or_default().to_string(),
        next,
        created: None,
        sent: None,
        refusal: None,
    })
}

/// `GET /treasury/bulk-payments/`: the batches of `GET /api/treasury/bulk-payments/`, each
/// with its provider file to download (`GET /api/treasury/bulk-payments/{id}/file`), and the
/// form of a new batch: approved requisitions to choose, each with the payee's mobile number.
pub async fn batches(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    Query(q): Query<BatchesQuery>,
) -> ApiResult<Response> {
    let mut page = batches_page(&state, &user, &token, &q.cursor).await?;
    page.created = present(&q.created).and_then(|c| c.parse().ok());
    render(StatusCode::OK, &page)
}

/// `POST /treasury/bulk-payments/`: fields `r` (a chosen requisition, repeated), `d.<id>` (its
/// payee's mobile number), `code`, `cursor` (the queue's page shown) and `step`: `code` mails the batch's one-time code
/// (`request_batch_code`, as `POST /api/treasury/bulk-payments/code`), `create` starts the
/// batch with it (`create_payment_batch`, as `POST /api/treasury/bulk-payments/`). A refusal
/// shows the form again with the choices kept.
pub async fn create_batch(
    State(state): State<AppState>,
    form: PageForm<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let text = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let (mut ids, mut typed, mut code, mut step) = (Vec::<Uuid>::new(), HashMap::new(), None, "create");
    let mut cursor = None;
    for (name, value) in &form.form {
        match name.as_str() {
            "r" => ids.extend(value.parse::<Uuid>().ok()),
            "code" => code = text(value),
            "cursor" => cursor = text(value),
            "step" => step = if value == "code" { "code" } else { "create" },
            other => {
                if let Some(id) = other.strip_prefix("d.").and_then(|id| id.parse::<Uuid>().ok()) {
                    typed.insert(id, value.clone());
                }
            }
        }
    }
    let destinations: HashMap<Uuid, String> =
        ids.iter().filter_map(|id| Some((*id, text(typed.get(id)?)?))).collect();
    let ctx = form.context();
    let c = &state.commands;
    let (sent, refused) = if step == "code" {
        match c.request_batch_code(&ctx, &ids, None).await {
            Ok(issued) => {
                let i = issued.value;
                let sent = format!(
                    "A code for {} payments, {} in all, was mailed to {}. It works once, until {}.",
                    i.count,
                    money(&i.currency, i.total),
                    i.sent_to,
                    when(i.expires_at)
                );
                (Some(sent), None)
            }
            Err(e) => (None, Some(e)),
        }
    } else {
        match c.create_payment_batch(&ctx, &ids, None, &destinations, code.as_deref()).await {
            Ok(batch) => {
                return Ok(see_other(&format!("/treasury/bulk-payments/?created={}", batch.value.id)))
            }
            Err(e) => (None, Some(e)),
        }
    };
    let mut page = batches_page(&state, &form.user, &form.token, &cursor).await?;
    for candidate in &mut page.candidates {
        candidate.checked = ids.contains(&candidate.id);
        candidate.destination = typed.get(&candidate.id).cloned().unwrap_or_default();
    }
    page.sent = sent;
    let mut status = StatusCode::OK;
    if let Some(e) = refused {
        let (s, refusal) = Refusal::of("batch", command_error(&state, &form.session, e))?;
        status = s;
        page.refusal = Some(refusal);
    }
    render(status, &page)
}

// ---------------------------------------------------------------------------------------------
// A batch and its result file

/// A payment of a batch.
pub struct BatchPaymentLine {
    pub requisition_id: Uuid,
    pub name: String,
    pub mobile_number: String,
    pub amount: String,
    /// `Waiting for the result`, `Paid` or `Failed` (`executing`, `succeeded`, `failed`).
    pub status: &'static str,
    /// The provider's receipt, or why it failed.
    pub detail: String,
}

/// A result file imported into the batch.
pub struct ImportLine {
    pub id: Uuid,
    pub when: String,
    /// The start of the file's SHA-256.
    pub sha256: String,
    pub summary: String,
}

/// A line of the result file just imported, as the import reported it.
pub struct ResultLine {
    pub row: usize,
    pub reference: String,
    /// `Paid`, `Failed`, `Already applied`, `Unknown reference`, `Amount does not match`,
    /// `Invalid`.
    pub outcome: &'static str,
    pub message: String,
}

#[derive(Template)]
#[template(path = "treasury_batch.html")]
struct BatchPage {
    layout: Layout,
    tabs: Vec<Tab>,
    batch: BatchLine,
    lines: Vec<BatchPaymentLine>,
    imports: Vec<ImportLine>,
    /// The import just done (`?import=`): what it did in a sentence, and each line.
    report: Option<(String, Vec<ResultLine>)>,
    /// Treasury may import the result file (the command decides; the page offers the form).
    may_import: bool,
    refusal: Option<Refusal>,
}

impl BatchPage {
    fn error(&self) -> Option<String> {
        Refusal::at(&self.refusal, "results", None)
    }
}

/// A line's outcome as the page says it.
fn outcome(line: &ResultLineReport) -> &'static str {
    match (line.outcome.as_str(), line.payment_status.as_deref()) {
        ("applied", Some("succeeded")) => "Paid",
        ("applied", Some("failed")) => "Failed",
        ("applied", _) => "Applied",
        ("already_applied", _) => "Already applied",
        ("unknown_reference", _) => "Unknown reference",
        ("amount_mismatch", _) => "Amount does not match",
        _ => "Invalid",
    }
}

/// How many lines had each outcome, in the order they first came: `2 lines: 1 paid, 1 failed.`
fn outcome_summary(lines: &[ResultLine]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for line in lines {
        match counts.iter_mut().find(|(o, _)| *o == line.outcome) {
            Some((_, n)) => *n += 1,
            None => counts.push((line.outcome, 1)),
        }
    }
    let parts: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {}", o.to_lowercase())).collect();
    let noun = if lines.len() == 1 { "line" } else { "lines" };
    format!("{} {noun}: {}.", lines.len(), parts.join(", "))
}

/// The page of batch `id` (`CommandService::payment_batch`, as
/// `GET /api/treasury/bulk-payments/{id}`; 404 for a batch the user may not read), with the
/// report of its import `import` when given.
async fn batch_page(
    state: &AppState,
    user: &pettycash_commands::auth::AuthUser,
    token: &str,
    id: Uuid,
    import: Option<Uuid>,
) -> ApiResult<BatchPage> {
    let actor = user.actor();
    may_enter(&actor)?;
    let read = state.commands.payment_batch(&actor, id).await?;
    let b = read.batch;
    let fund = fund_names(state, &actor).await?.remove(&b.fund_id).unwrap_or_default();
    let c = b.currency.clone();
    let lines = read
        .lines
        .into_iter()
        .map(|l| BatchPaymentLine {
            requisition_id: l.requisition_id,
            name: l.name,
            mobile_number: l.mobile_number,
            amount: money(&c, l.amount),
            status: match l.status.as_str() {
                "succeeded" => "Paid",
                "failed" => "Failed",
                _ => "Waiting for the result",
            },
            detail: l.provider_receipt.or(l.last_result_reason).unwrap_or_default(),
        })
        .collect();
    let mut report = None;
    let mut imports = Vec::new();
    for i in read.imports.iter().rev() {
        let shown: Vec<ResultLine> = i
            .lines()
            .iter()
            .map(|l| ResultLine {
                row: l.row,
                reference: l.reference.map(|r| r.to_string()).unwrap_or_default(),
                outcome: outcome(l),
                message: match (&l.column, &l.message) {
                    (Some(column), Some(m)) => format!("{column}: {m}"),
                    (None, Some(m)) => m.clone(),
                    _ => String::new(),
                },
            })
            .collect();
        let summary = outcome_summary(&shown);
        imports.push(ImportLine {
            id: i.id,
            when: when(i.imported_at),
            sha256: i.file_sha256.chars().take(12).collect(),
            summary: summary.clone(),
        });
        if import == Some(i.id) {
            report = Some((summary, shown));
        }
    }
    Ok(BatchPage {
        layout: Layout::signed_in(state, "Payment batch", user, token, HOME)?,
        tabs: tabs("/treasury/bulk-payments/"),
        batch: BatchLine {
            id: b.id,
            fund,
            count: b.count,
            total: money(&c, b.total),
            status: b.status,
            created: when(b.created_at),
        },
        lines,
        imports,
        report,
        may_import: actor.has(Role::Treasury),
        refusal: None,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BatchQuery {
    import: Option<String>,
}

/// `GET /treasury/bulk-payments/{id}?import=`: a batch, its payments with their state, the
/// result files imported into it (`?import=`: that import's report, line by line) and the
/// form to import one.
pub async fn batch(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    IdPath(id): IdPath,
    Query(q): Query<BatchQuery>,
) -> ApiResult<Response> {
    let import = present(&q.import).and_then(|i| i.parse().ok());
    render(StatusCode::OK, &batch_page(&state, &user, &token, id, import).await?)
}

/// The media type of an uploaded table: the one the browser declared when it is CSV or XLSX,
/// else the one its name says (browsers on Windows declare a `.csv` as
/// `application/vnd.ms-excel`), else the declared one (refused by the reader, 415).
fn table_type(declared: &str, name: &str) -> String {
    let name = name.to_ascii_lowercase();
    match declared {
        upload::CSV | upload::XLSX => declared,
        _ if name.ends_with(".csv") => upload::CSV,
        _ if name.ends_with(".xlsx") => upload::XLSX,
        _ => declared,
    }
    .to_string()
}

/// `POST /treasury/bulk-payments/{id}/results` (`multipart/form-data`: `csrf_token`, `file`):
/// the provider's result file, imported as `POST /api/treasury/bulk-payments/{id}/results`
/// imports it (`routes::bulk_payments::import_results_file`). 303 to the batch's page with the
/// import's report; a refusal (no file, not CSV or XLSX, a column missing, not treasury) is
/// the page again with the reason beside the file field.
pub async fn import_results(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    form: PageUpload,
) -> ApiResult<Response> {
    let result = match &form.file {
        None => Err(ApiError::unprocessable("file", "choose the provider's result file (CSV or Excel)")),
        Some((name, bytes)) => {
            let media_type = table_type(&form.file_type, name);
            import_results_file(&state, &form.context(), &form.session, id, &media_type, bytes).await
        }
    };
    match result {
        Ok(report) => Ok(see_other(&format!("/treasury/bulk-payments/{id}?import={}", report.import_id))),
        Err(e) => {
            let (status, refusal) = Refusal::of("results", e)?;
            let mut page = batch_page(&state, &form.user, &form.token, id, None).await?;
            page.refusal = Some(refusal);
            render(status, &page)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_shown_beside_the_field_it_names_and_other_errors_stay_error_pages() {
        let wrong =
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "payment_code_wrong", "the code is wrong")
                .with_field("code");
        let (status, refusal) = Refusal::of("pay", wrong).unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let refusal = Some(refusal);
        assert_eq!(Refusal::at(&refusal, "pay", Some("code")).as_deref(), Some("The code is wrong."));
        assert_eq!(Refusal::at(&refusal, "pay", Some("destination")), None);
        assert_eq!(Refusal::at(&refusal, "code", None), None);
        assert!(Refusal::of("pay", ApiError::not_found("requisition")).is_err());
    }

    #[test]
    fn a_result_file_is_read_as_the_type_declared_else_as_its_name_says() {
        assert_eq!(table_type(upload::CSV, "results.xlsx"), upload::CSV);
        assert_eq!(table_type("application/vnd.ms-excel", "Results.CSV"), upload::CSV);
        assert_eq!(table_type("application/octet-stream", "results.xlsx"), upload::XLSX);
        assert_eq!(table_type("application/pdf", "results.pdf"), "application/pdf");
    }

    #[test]
    fn an_imports_lines_are_summed_up_by_outcome_in_the_order_they_came() {
        let line = |outcome: &str, status: Option<&str>| ResultLineReport {
            row: 2,
            reference: None,
            outcome: outcome.into(),
            payment_status: status.map(String::from),
            column: None,
            message: None,
        };
        let shown: Vec<ResultLine> = [
            line("applied", Some("succeeded")),
            line("applied", Some("failed")),
            line("unknown_reference", None),
            line("applied", Some("succeeded")),
        ]
        .iter()
        .map(|l| ResultLine {
            row: l.row,
            reference: String::new(),
            outcome: outcome(l),
            message: String::new(),
        })
        .collect();
        assert_eq!(outcome_summary(&shown), "4 lines: 2 paid, 1 failed, 1 unknown reference.");
        assert_eq!(outcome_summary(&shown[2..3]), "1 line: 1 unknown reference.");
    }

    #[test]
    fn a_notice_says_only_what_the_page_knows_how_to_say() {
        let q = |done: &str, variance: &str, status: &str| FundQuery {
            done: Some(done.into()),
            variance: Some(variance.into()),
            count_status: Some(status.into()),
        };
        assert_eq!(
            notice(&q("count", "-150.00", "pending"), "KES").as_deref(),
            Some("The count was recorded: variance KES -150.00 (pending).")
        );
        assert_eq!(notice(&q("count", "<b>", "pending"), "KES").as_deref(), Some("The count was recorded."));
        assert_eq!(notice(&q("you have been hacked", "", ""), "KES"), None);
    }
}
