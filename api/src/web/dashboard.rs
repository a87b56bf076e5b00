//! `/dashboard/`: the figures of `GET /api/dashboard/` for the signed-in user's scope
//! (`routes::reads::dashboard_of`, the same queries and visibility rule), as figures and
//! charts: spend by month, each fund's balance against its float, requisitions by status.

use super::charts::{BarChart, ColumnChart, LineChart};
use super::layout::Layout;
use super::render;
use super::session::PageUser;
use crate::error::ApiResult;
use crate::routes::reads::{dashboard_of, Dashboard, Totals};
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::NaiveDate;
use pettycash_domain::requisition::Status;
use pettycash_projections::queries;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// A headline number.
pub struct Figure {
    pub label: &'static str,
    pub value: String,
    pub detail: String,
}

/// A fund's row in the table.
pub struct FundLine {
    pub name: String,
    pub balance: String,
    pub float: String,
    pub percent_of_float: String,
    /// `ok`, `warning`, `critical` (`FundStatus`): also the stylesheet class.
    pub status: String,
}

/// One budget scope's line this month.
pub struct BudgetLine {
    pub scope: String,
    pub amount: String,
    pub consumed: String,
    pub remaining: String,
    pub percent_consumed: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    /// Only the user's own requisitions are counted (`DashboardScope::Own`).
    own: bool,
    figures: Vec<Figure>,
    spend: Vec<ColumnChart>,
    statuses: BarChart,
    fund_charts: Vec<LineChart>,
    /// More funds than the dashboard carries series of (`MAX_SERIES_FUNDS`): only those
    /// that most need attention are drawn.
    funds_cut: bool,
    funds: Vec<FundLine>,
    budget_month: Option<String>,
    budgets: Vec<BudgetLine>,
}

/// `GET /dashboard/`.
pub async fn page(State(state): State<AppState>, PageUser { user, token }: PageUser) -> ApiResult<Response> {
    let days = queries::BALANCE_DAYS[0];
    let dashboard = dashboard_of(&state, &user, days, &[], None, &HeaderMap::new()).await?;
    let layout = Layout::signed_in(&state, "Dashboard", &user, &token, "/dashboard/")?;
    render(StatusCode::OK, &view(layout, dashboard))
}

fn view(layout: Layout, d: Dashboard) -> DashboardPage {
    let alerts = &d.open_alerts;
    let open_alerts = alerts.critical + alerts.high + alerts.medium + alerts.low;
    let figures = vec![
        Figure {
            label: "Pending approval",
            value: d.pending_approval.count.to_string(),
            detail: format!(
                "{} · {} waiting on you",
                amounts(&d.pending_approval.amount),
                d.pending_approval.awaiting_me
            ),
        },
        totals("Paid today", &d.paid_today),
        totals("Paid this week", &d.paid_week_to_date),
        totals("Paid this month", &d.paid_month_to_date),
        Figure {
            label: "Open alerts",
            value: open_alerts.to_string(),
            detail: format!(
                "{} critical · {} high · {} medium · {} low",
                alerts.critical, alerts.high, alerts.medium, alerts.low
            ),
        },
        Figure {
            label: "Average time to payment",
            value: d.average_seconds_to_payment.map_or_else(|| "—".into(), duration),
            detail: "from submission to payment".into(),
        },
    ];
    let s = &d.by_status;
    let statuses = [
        (Status::Draft, s.draft),
        (Status::PendingApproval, s.pending_approval),
        (Status::ChangesRequested, s.changes_requested),
        (Status::Approved, s.approved),
        (Status::Rejected, s.rejected),
        (Status::Cancelled, s.cancelled),
        (Status::Paid, s.paid),
    ];
    let status_rows: Vec<_> =
        statuses.iter().map(|(st, n)| (words(st.as_str()), Decimal::from(*n), n.to_string())).collect();
    let statuses = BarChart::new(
        "by-status",
        "Requisitions by status",
        "How many requisitions stand at each status.",
        &status_rows,
    );
    let fund_charts = d
        .series
        .fund_balances
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut levels = vec![(f.float, format!("Float {}", money(&f.currency, f.float)), "float")];
            if let Some(reorder) = f.reorder_level {
                levels.push((reorder, format!("Reorder {}", money(&f.currency, reorder)), "reorder"));
            }
            let points: Vec<(NaiveDate, Option<Decimal>)> =
                f.points.iter().map(|p| (p.day, p.balance)).collect();
            LineChart::new(
                &format!("fund-{i}"),
                &f.name,
                &format!(
                    "Closing balance of {} each day of the last {} days, against its float.",
                    f.name, d.series.days
                ),
                &points,
                &levels,
            )
            .with_caption(format!("{}: balance against float, last {} days", f.name, d.series.days))
        })
        .collect();
    DashboardPage {
        layout,
        own: d.scope == "own",
        figures,
        spend: spend_charts(&d),
        statuses,
        fund_charts,
        funds_cut: d.series.fund_balances_omitted > 0,
        funds: d
            .funds
            .iter()
            .map(|f| FundLine {
                name: f.name.clone(),
                balance: money(&f.currency, f.balance),
                float: money(&f.currency, f.float),
                percent_of_float: f.percent_of_float.clone(),
                status: f.status.clone(),
            })
            .collect(),
        budget_month: d.budget_this_month.as_ref().map(|b| b.month.clone()),
        budgets: d
            .budget_this_month
            .iter()
            .flat_map(|b| &b.items)
            .map(|b| BudgetLine {
                scope: words(&b.scope),
                amount: money(&b.currency, b.amount),
                consumed: money(&b.currency, b.consumed),
                remaining: money(&b.currency, b.remaining),
                percent_consumed: b.percent_consumed.clone(),
            })
            .collect(),
    }
}

/// One column chart per currency paid in over the months (one, for none: empty columns).
fn spend_charts(d: &Dashboard) -> Vec<ColumnChart> {
    let months = &d.series.spend_by_month;
    let mut currencies: Vec<&str> = months.iter().flat_map(|m| m.amount.keys().map(String::as_str)).collect();
    currencies.sort_unstable();
    currencies.dedup();
    if currencies.is_empty() {
        currencies.push("");
    }
    currencies
        .into_iter()
        .map(|currency| {
            let columns: Vec<_> = months
                .iter()
                .map(|m| {
                    let amount = m.amount.get(currency).copied().unwrap_or_default();
                    (month_label(&m.month), amount, money(currency, amount))
                })
                .collect();
            let title = match currency {
                "" => "Spend by month".to_string(),
                c => format!("Spend by month ({c})"),
            };
            ColumnChart::new(
                &format!("spend-{}", currency.to_ascii_lowercase()),
                &title,
                "Paid out each month over the last twelve months, this one last.",
                &columns,
            )
        })
        .collect()
}

fn totals(label: &'static str, t: &Totals) -> Figure {
    Figure { label, value: t.count.to_string(), detail: amounts(&t.amount) }
}

/// `2026-03` as `Mar`.
fn month_label(month: &str) -> String {
    NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .map(|d| d.format("%b").to_string())
        .unwrap_or_else(|_| month.to_string())
}

/// `pending_approval` as `Pending approval`.
pub(crate) fn words(code: &str) -> String {
    let text = code.replace('_', " ");
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Amounts per currency, e.g. `KES 1,500.00 · USD 20.00`; `no amount` for none.
pub fn amounts(by_currency: &BTreeMap<String, Decimal>) -> String {
    if by_currency.is_empty() {
        return "no amount".into();
    }
    by_currency.iter().map(|(c, a)| money(c, *a)).collect::<Vec<_>>().join(" · ")
}

/// An amount with its currency and thousands separated: `KES 12,500.50` (digits as stored:
/// the currency's minor units).
pub fn money(currency: &str, amount: Decimal) -> String {
    let text = amount.to_string();
    let (sign, digits) = text.strip_prefix('-').map_or(("", text.as_str()), |d| ("-", d));
    let (whole, fraction) = digits.split_once('.').map_or((digits, None), |(w, f)| (w, Some(f)));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let number = match fraction {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    };
    match currency {
        "" => number,
        c => format!("{c} {number}"),
    }
}

/// Seconds as people say them: `45 min`, `5.5 h`, `2.5 days`.
fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 3600.0 => format!("{:.0} min", (s / 60.0).max(1.0)),
        s if s < 48.0 * 3600.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} days", s / 86_400.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_by_thousands_with_their_currency() {
        assert_eq!(money("KES", Decimal::new(1_250_050, 2)), "KES 12,500.50");
        assert_eq!(money("KES", Decimal::new(-100_000, 2)), "KES -1,000.00");
        assert_eq!(money("JPY", Decimal::new(1500, 0)), "JPY 1,500");
        assert_eq!(money("", Decimal::new(999, 0)), "999");
        let mut by = BTreeMap::new();
        assert_eq!(amounts(&by), "no amount");
        by.insert("USD".to_string(), Decimal::new(2000, 2));
        by.insert("KES".to_string(), Decimal::new(150_000, 2));
        assert_eq!(amounts(&by), "KES 1,500.00 · USD 20.00");
    }

    #[test]
    fn codes_months_and_durations_read_as_words() {
        assert_eq!(words("pending_approval"), "Pending approval");
        assert_eq!(month_label("2026-03"), "Mar");
        assert_eq!(duration(600.0), "10 min");
        assert_eq!(duration(5.5 * 3600.0), "5.5 h");
        assert_eq!(duration(2.5 * 86_400.0), "2.5 days");
    }
}
