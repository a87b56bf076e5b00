//! `/audit/` (issue #16), for auditors: the event history of a requisition, a fund or a user,
//! a fund's cash book as of any instant, and what is known of the last `pettycash-replay
//! verify`. Anyone else gets the refused page (403).
//!
//! Read from the events themselves, never from the read models: a history is one stream
//! (`reader::Filter::Stream`: the primary key, never a scan of the event table), the cash book
//! as of an instant is `pettycash_projections::ledger::for_each_ledger`, the fold
//! `pettycash-replay ledger --as-of` prints. What an auditor may see is the API's rule: the
//! requisition as `GET /api/requisitions/{id}` shows it (`CommandService::requisition`), the
//! fund as `GET /api/funds/{id}` (`CommandService::fund`), the user as `GET /api/users/`
//! lists them (`routes::users::users_of`); anything else is "not found".
//!
//! `verify`'s results are recorded nowhere (it prints them where it runs), so the page says so
//! rather than showing something else in their place.

use super::forms::{AreaPage, Block, Cell, Choice, Failure, Field, Form, Pairs, Row, SectionLink, Table};
use super::layout::Layout;
use super::render;
use super::session::PageUser;
use crate::error::{ApiError, ApiResult};
use crate::routes::users::users_of;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use futures::TryStreamExt;
use pettycash_domain::{Actor, Role};
use pettycash_projections::event::EventRow;
use pettycash_projections::ledger::{for_each_ledger, Movement};
use pettycash_projections::queries;
use pettycash_projections::reader::{self, Filter, Selection};
use std::collections::HashMap;

/// The area's first page (the navigation's link).
pub const HOME: &str = "/audit/";

/// What a history may be of: the form's choice and the aggregate type of its stream (the
/// events' `aggregate_type`, which never changes once events exist).
const STREAMS: [(&str, &str, &str); 3] =
    [("requisition", "requisition", "Requisition"), ("fund", "fund", "Fund"), ("user", "user", "User")];

/// Auditors only, as the navigation shows the area.
fn require_auditor(actor: &Actor) -> ApiResult<()> {
    if actor.has(Role::Auditor) {
        Ok(())
    } else {
        Err(ApiError::forbidden("missing_role", "these pages are for auditors"))
    }
}

fn sections(current: &str) -> Vec<SectionLink> {
    [("Overview", HOME), ("Event history", "/audit/history/"), ("Ledger as of", "/audit/ledger/")]
        .into_iter()
        .map(|(label, href)| SectionLink { label, href: href.into(), current: href == current })
        .collect()
}

async fn page(
    state: &AppState,
    PageUser { user, token }: &PageUser,
    heading: &str,
    current: &str,
    blocks: Vec<Block>,
    status: StatusCode,
) -> ApiResult<Response> {
    let layout = Layout::signed_in(state, heading, user, token, HOME)?;
    let page = AreaPage {
        layout,
        area: "Audit",
        heading: heading.into(),
        sections: sections(current),
        intro: Some("Read from the events themselves, not from the lists the other pages show.".into()),
        blocks,
    };
    render(status, &page)
}

fn history_form(sent: &Pairs, failure: Option<&Failure>) -> Form {
    let kinds = STREAMS.iter().map(|(value, _, label)| Choice::new(*value, *label)).collect();
    Form::get("history", "/audit/history/", "Show the history")
        .field(Field::select("kind", "Of a", kinds).value(sent.get("kind")))
        .field(Field::text("id", "Its id").required().value(sent.get("id")))
        .with_failure(failure)
}

async fn ledger_form(
    state: &AppState,
    actor: &Actor,
    sent: &Pairs,
    failure: Option<&Failure>,
) -> ApiResult<Form> {
    let funds = queries::list_funds(&state.pool, actor.company()).await?;
    let choices =
        funds.iter().map(|f| Choice::new(f.id.to_string(), format!("{} ({})", f.name, f.currency))).collect();
    Ok(Form::get("ledger", "/audit/ledger/", "Show the ledger")
        .field(Field::select("fund_id", "Fund", choices).required().value(sent.get("fund_id")))
        .field(
            Field::new("as_of", "As of (UTC)", "datetime-local")
                .required()
                .value(sent.get("as_of"))
                .hint("The cash book with every movement recorded up to this instant."),
        )
        .with_failure(failure))
}

fn verify_block() -> Block {
    Block::heading("The last verify")
        .alert(
            "No result of `pettycash-replay verify` is recorded anywhere: it prints its findings \
             where it runs and stores nothing (no table, no event), so this page cannot show the \
             last one.",
        )
        .text("Run it with the auditor's database role and the seal key; exit status 0 means no rule was broken:")
        .code("DATABASE_URL=postgres://pettycash_auditor:…@host/pettycash SEAL_KEY=… pettycash-replay verify")
}

/// `GET /audit/`.
pub async fn overview(State(state): State<AppState>, user: PageUser) -> ApiResult<Response> {
    let actor = user.user.actor();
    require_auditor(&actor)?;
    let none = Pairs::default();
    let blocks = vec![
        Block::heading("Event history").form(history_form(&none, None)),
        Block::heading("A fund's ledger as of an instant")
            .form(ledger_form(&state, &actor, &none, None).await?),
        verify_block(),
    ];
    page(&state, &user, "Audit", HOME, blocks, StatusCode::OK).await
}

/// `GET /audit/history/?kind=requisition&id=…`: every event of the stream, in order.
pub async fn history(
    State(state): State<AppState>,
    Query(sent): Query<Vec<(String, String)>>,
    user: PageUser,
) -> ApiResult<Response> {
    let actor = user.user.actor();
    require_auditor(&actor)?;
    let sent = Pairs(sent);
    if sent.opt("id").is_none() {
        let blocks = vec![Block::default().form(history_form(&sent, None))];
        return page(&state, &user, "Event history", "/audit/history/", blocks, StatusCode::OK).await;
    }
    match events_of(&state, &actor, &sent).await {
        Ok((label, table)) => {
            let blocks =
                vec![Block::default().form(history_form(&sent, None)), Block::heading(label).table(table)];
            page(&state, &user, "Event history", "/audit/history/", blocks, StatusCode::OK).await
        }
        Err(e) if [404, 422].contains(&e.status.as_u16()) => {
            let failure = Failure::of("history", &e, &sent);
            let blocks = vec![Block::default().form(history_form(&sent, Some(&failure)))];
            page(&state, &user, "Event history", "/audit/history/", blocks, e.status).await
        }
        Err(e) => Err(e),
    }
}

async fn events_of(state: &AppState, actor: &Actor, sent: &Pairs) -> ApiResult<(String, Table)> {
    let (kind, aggregate_type, label) = STREAMS
        .iter()
        .find(|(k, _, _)| *k == sent.get("kind"))
        .ok_or_else(|| ApiError::unprocessable("kind", "choose a requisition, a fund or a user"))?;
    let id = sent.id("id")?.ok_or_else(|| ApiError::unprocessable("id", "give the id"))?;
    let people = users_of(state, actor).await?;
    // Visible as the API shows it, or not found (with the field to correct).
    let seen = match *kind {
        "requisition" => state.commands.requisition(actor, id).await.map(|_| true).or_else(|e| {
            let e = ApiError::from(e);
            if e.status == StatusCode::NOT_FOUND {
                Ok(false)
            } else {
                Err(e)
            }
        })?,
        "fund" => state.commands.fund(actor, id).await?.is_some(),
        _ => people.iter().any(|u| u.id == id),
    };
    if !seen {
        return Err(ApiError::not_found(&label.to_lowercase()).with_field("id"));
    }
    let names: HashMap<String, String> = people.iter().map(|u| (u.id.to_string(), u.name.clone())).collect();
    let read = reader::in_order(
        &Selection::events(),
        Filter::Stream { aggregate_type: aggregate_type.to_string(), id: id.to_string() },
    );
    let events: Vec<EventRow> = read.fetch::<EventRow>(&state.pool).try_collect().await?;
    let mut table = Table::new(
        "events",
        &format!("{} events, oldest first", events.len()),
        &["#", "Recorded (UTC)", "Event", "By", "Position", "What it records"],
        "No event is recorded for it.",
    );
    for e in &events {
        let by = e
            .meta("actor_id")
            .map(|a| names.get(&a).cloned().unwrap_or(a))
            .unwrap_or_else(|| "the service".into());
        table.rows.push(Row {
            cells: vec![
                Cell::num(e.sequence.to_string()),
                Cell::new(e.recorded_at.format("%Y-%m-%d %H:%M:%S").to_string()),
                Cell::new(e.event_type.clone()),
                Cell::new(by),
                Cell::num(e.global_position.to_string()),
                Cell { text: e.payload.get().to_string(), class: "payload" },
            ],
            actions: vec![],
        });
    }
    Ok((format!("{label} {id}"), table))
}

/// An instant as the form sends it (`datetime-local`, with or without seconds), or RFC 3339,
/// taken as UTC.
fn parse_instant(text: &str) -> Result<DateTime<Utc>, ApiError> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc()))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").map(|t| t.and_utc()))
        .map_err(|_| {
            ApiError::unprocessable(
                "as_of",
                format!("`{text}` is not an instant: write it 2026-12-06T14:30:00"),
            )
        })
}

/// `GET /audit/ledger/?fund_id=…&as_of=…`: the fund's cash book folded from its events
/// recorded up to `as_of`, and its balance then.
pub async fn ledger(
    State(state): State<AppState>,
    Query(sent): Query<Vec<(String, String)>>,
    user: PageUser,
) -> ApiResult<Response> {
    let actor = user.user.actor();
    require_auditor(&actor)?;
    let sent = Pairs(sent);
    if sent.opt("fund_id").is_none() && sent.opt("as_of").is_none() {
        let blocks = vec![Block::default().form(ledger_form(&state, &actor, &sent, None).await?)];
        return page(&state, &user, "Ledger as of", "/audit/ledger/", blocks, StatusCode::OK).await;
    }
    match ledger_as_of(&state, &actor, &sent).await {
        Ok(mut result) => {
            let mut blocks = vec![Block::default().form(ledger_form(&state, &actor, &sent, None).await?)];
            blocks.append(&mut result);
            page(&state, &user, "Ledger as of", "/audit/ledger/", blocks, StatusCode::OK).await
        }
        Err(e) if [404, 422].contains(&e.status.as_u16()) => {
            let failure = Failure::of("ledger", &e, &sent);
            let blocks =
                vec![Block::default().form(ledger_form(&state, &actor, &sent, Some(&failure)).await?)];
            page(&state, &user, "Ledger as of", "/audit/ledger/", blocks, e.status).await
        }
        Err(e) => Err(e),
    }
}

async fn ledger_as_of(state: &AppState, actor: &Actor, sent: &Pairs) -> ApiResult<Vec<Block>> {
    let fund_id = sent.id("fund_id")?.ok_or_else(|| ApiError::unprocessable("fund_id", "choose a fund"))?;
    let as_of = parse_instant(sent.get("as_of"))?;
    let fund = state
        .commands
        .fund(actor, fund_id)
        .await?
        .ok_or_else(|| ApiError::not_found("fund").with_field("fund_id"))?;
    let mut movements: Vec<Movement> = vec![];
    let (_, then) = for_each_ledger(&state.pool, fund_id, as_of, |m| {
        movements.push(m);
        Ok(())
    })
    .await
    .map_err(ApiError::internal)?;
    let money = |a| super::dashboard::money(&fund.currency, a);
    let instant = as_of.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let mut summary =
        Table::new("ledger-summary", "The fund then", &["Fund", "As of", "Balance", "Movements"], "");
    summary.rows.push(Row {
        cells: vec![
            Cell::new(fund.name.clone()),
            Cell::new(instant.clone()),
            Cell::num(then.as_ref().map_or_else(|| "not open yet".into(), |f| money(f.balance))),
            Cell::num(movements.len().to_string()),
        ],
        actions: vec![],
    });
    let mut table = Table::new(
        "ledger-movements",
        &format!("Cash book up to {instant}"),
        &["Position", "Recorded (UTC)", "Movement", "Amount", "Balance after", "Requisition", "Reference"],
        "No movement was recorded by then.",
    );
    for m in &movements {
        let kind =
            serde_json::to_value(m.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        table.rows.push(Row {
            cells: vec![
                Cell::num(m.position.to_string()),
                Cell::new(m.at.format("%Y-%m-%d %H:%M:%S").to_string()),
                Cell::new(kind.replace('_', " ")),
                Cell::num(money(m.amount)),
                Cell::num(money(m.balance_after)),
                Cell::new(m.requisition_id.map(|r| r.to_string()).unwrap_or_default()),
                Cell::new(m.reference.clone().unwrap_or_default()),
            ],
            actions: vec![],
        });
    }
    Ok(vec![Block::default().table(summary), Block::default().table(table)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_read_as_the_form_sends_them_in_utc() {
        let at = |t: &str| parse_instant(t).map(|t| t.to_rfc3339()).map_err(|e| e.field);
        assert_eq!(at("2026-12-06T14:30:05"), Ok("2026-12-06T14:30:05+00:00".into()));
        assert_eq!(at("2026-12-06T14:30"), Ok("2026-12-06T14:30:00+00:00".into()));
        assert_eq!(at("2026-12-06T16:30:00+02:00"), Ok("2026-12-06T14:30:00+00:00".into()));
        assert_eq!(at("yesterday"), Err(Some("as_of".into())));
    }
}
