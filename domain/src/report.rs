//! Reports as data: the names, the shape every report has (sections of typed columns and rows,
//! summary figures, the period and filters it was run for), and who may run which. Pure: the
//! figures come from the read models (`pettycash_projections::reports`) or, for auditors, from
//! the events (`pettycash-replay report`); the formats (JSON, CSV, XLSX, PDF) are the `api`'s.
//! Both sources build the same [`Report`] with the same builder, so a test can compare them
//! figure by figure.

use crate::role::Role;
use crate::visibility::{DashboardScope, RequisitionScope};
use crate::{Actor, Id};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The reports there are. The text form (kebab-case) is the URL's `{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReportName {
    CashBook,
    Transactions,
    Spending,
    BudgetVsActual,
    Approvals,
    Payments,
    Treasury,
    Exceptions,
    UserActivity,
    Forecast,
}

impl ReportName {
    pub const ALL: [ReportName; 10] = [
        ReportName::CashBook,
        ReportName::Transactions,
        ReportName::Spending,
        ReportName::BudgetVsActual,
        ReportName::Approvals,
        ReportName::Payments,
        ReportName::Treasury,
        ReportName::Exceptions,
        ReportName::UserActivity,
        ReportName::Forecast,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportName::CashBook => "cash-book",
            ReportName::Transactions => "transactions",
            ReportName::Spending => "spending",
            ReportName::BudgetVsActual => "budget-vs-actual",
            ReportName::Approvals => "approvals",
            ReportName::Payments => "payments",
            ReportName::Treasury => "treasury",
            ReportName::Exceptions => "exceptions",
            ReportName::UserActivity => "user-activity",
            ReportName::Forecast => "forecast",
        }
    }

    /// The heading printed on the report.
    pub fn title(self) -> &'static str {
        match self {
            ReportName::CashBook => "Cash book",
            ReportName::Transactions => "Transactions",
            ReportName::Spending => "Spending",
            ReportName::BudgetVsActual => "Budget against actual",
            ReportName::Approvals => "Approvals",
            ReportName::Payments => "Payments",
            ReportName::Treasury => "Treasury",
            ReportName::Exceptions => "Overrides and exceptions",
            ReportName::UserActivity => "User activity",
            ReportName::Forecast => "Forecast",
        }
    }

    /// One sentence on what it holds (the report list).
    pub fn description(self) -> &'static str {
        match self {
            ReportName::CashBook => {
                "Every movement of one fund with its running balance, and the opening and closing balance."
            }
            ReportName::Transactions => {
                "Requisitions with status, requester, unit, category and amount; count, sum and average."
            }
            ReportName::Spending => {
                "Paid spending by category, cost centre, department, branch and requester, per month."
            }
            ReportName::BudgetVsActual => {
                "Budget against actual per cost centre, department and branch per month, with variance and percentage."
            }
            ReportName::Approvals => {
                "Each approver's actions and time to act, and approvals stuck for longer than a number of days."
            }
            ReportName::Payments => {
                "Payments by method and status, success rate and time from submission to payment."
            }
            ReportName::Treasury => {
                "Fund health, replenishments, variances and advances outstanding with their age."
            }
            ReportName::Exceptions => {
                "Fast-tracked, escalated, overridden, over-budget and duplicate-flagged requisitions."
            }
            ReportName::UserActivity => "Per user: requests, approvals, payments and sign-ins.",
            ReportName::Forecast => {
                "Each fund's daily spend from its recent history and the date it is predicted to reach its reorder level."
            }
        }
    }

    /// Who may run it at all (the figures are then narrowed by [`ReportScope`]).
    pub fn readers(self) -> &'static [Role] {
        use Role::*;
        const FINANCE: &[Role] = &[Treasury, Auditor, Admin, Cfo, Ceo, Fpa, GroupFinanceManager];
        const APPROVERS: &[Role] = &[
            BranchManager,
            DepartmentHead,
            RegionalManager,
            GroupFinanceManager,
            Fpa,
            Cfo,
            Ceo,
            Treasury,
            Auditor,
            Admin,
        ];
        const EVERYONE: &[Role] = &Role::ALL;
        match self {
            // Everyone sees their own requisitions' figures and their company's funds.
            ReportName::CashBook | ReportName::Transactions | ReportName::Spending => EVERYONE,
            ReportName::Approvals | ReportName::Exceptions => APPROVERS,
            ReportName::UserActivity => &[Auditor, Admin, Cfo, Ceo],
            ReportName::BudgetVsActual
            | ReportName::Payments
            | ReportName::Treasury
            | ReportName::Forecast => FINANCE,
        }
    }
}

impl ReportName {
    /// The query parameters it takes besides the period (`from`, `to`, `period`) and the
    /// format, for the report list.
    pub fn parameters(self) -> &'static [&'static str] {
        const UNITS: &[&str] =
            &["company_id", "region_id", "branch_id", "department_id", "cost_centre_id", "fund_id"];
        match self {
            ReportName::CashBook => &["fund_id"],
            ReportName::Approvals => &[
                "company_id",
                "region_id",
                "branch_id",
                "department_id",
                "cost_centre_id",
                "fund_id",
                "stuck_days",
            ],
            ReportName::Forecast => &["company_id", "fund_id", "lookback_days"],
            _ => UNITS,
        }
    }

    /// The parameters it cannot run without (400 naming the first one missing).
    pub fn required(self) -> &'static [&'static str] {
        match self {
            ReportName::CashBook => &["fund_id"],
            _ => &[],
        }
    }
}

impl fmt::Display for ReportName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReportName {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ReportName::ALL.into_iter().find(|n| n.as_str() == s).ok_or(())
    }
}

impl Serialize for ReportName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Whose figures a caller gets from a report: the visibility rule for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportScope {
    /// Requisitions as the actor may see them (their own only, for a requester).
    pub requisitions: RequisitionScope,
    /// The company whose funds, payments, budgets and users the figures cover (`None`: the
    /// unscoped organisation).
    pub company: Option<Id>,
    /// Only the actor's own requisitions (a requester; an approver's own spending).
    pub own_only: bool,
}

impl ReportScope {
    /// `None` when the actor may not run `name` at all: the API answers 404, as for any object
    /// they may not see.
    pub fn of(actor: &Actor, name: ReportName) -> Option<Self> {
        if !name.readers().iter().any(|r| actor.has(*r)) {
            return None;
        }
        Some(Self {
            requisitions: RequisitionScope::of(actor),
            company: actor.company(),
            own_only: DashboardScope::of(actor) == DashboardScope::Own,
        })
    }
}

/// The organisation filters a report takes (each narrows; none: the caller's whole scope).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UnitFilter {
    pub company_id: Option<Id>,
    pub region_id: Option<Id>,
    pub branch_id: Option<Id>,
    pub department_id: Option<Id>,
    pub cost_centre_id: Option<Id>,
    pub fund_id: Option<Id>,
}

/// What a report is run for: the instants `[from, to)` (UTC) and the filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportParams {
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    #[serde(flatten)]
    pub units: UnitFilter,
    /// The approvals report's "stuck for more than N days" (default 7).
    pub stuck_days: u32,
    /// The forecast's look-back in days (default 30).
    pub lookback_days: u32,
}

impl ReportParams {
    /// The calendar month `YYYY-MM` (UTC) as the instants `[its first day, the next month's
    /// first day)`: `period=` of the API and `--period` of `pettycash-replay report`.
    pub fn month(text: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if text.len() != 7 {
            return None;
        }
        let first = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok()?;
        let next = first.checked_add_months(chrono::Months::new(1))?;
        let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
        Some((midnight(first), midnight(next)))
    }

    /// The default period: the 30 days up to `now`.
    pub const DEFAULT_DAYS: i64 = 30;
    /// The default of [`ReportParams::stuck_days`].
    pub const DEFAULT_STUCK_DAYS: u32 = 7;
    /// The default of [`ReportParams::lookback_days`].
    pub const DEFAULT_LOOKBACK_DAYS: u32 = 30;
}

/// The kind of a column: how each format writes its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    Text,
    /// An amount in the row's currency (a `currency` column says which when it varies).
    Money,
    Integer,
    /// A plain decimal (days, hours, a rate).
    Number,
    /// A percentage, 0–100, one decimal.
    Percent,
    Date,
    DateTime,
}

/// One cell. JSON writes money, numbers and percentages as decimal strings, integers as
/// numbers, dates as ISO 8601 text and empty cells as `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Empty,
    Text(String),
    Money(Decimal),
    Integer(i64),
    Number(Decimal),
    Percent(Decimal),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Empty => s.serialize_none(),
            Cell::Text(t) => s.serialize_str(t),
            Cell::Money(d) | Cell::Number(d) | Cell::Percent(d) => s.serialize_str(&d.to_string()),
            Cell::Integer(i) => s.serialize_i64(*i),
            Cell::Date(d) => s.serialize_str(&d.format("%Y-%m-%d").to_string()),
            Cell::DateTime(t) => s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        }
    }
}

impl fmt::Display for Cell {
    /// The cell as text (CSV, PDF): what JSON writes, without quotes; empty for `Empty`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Empty => Ok(()),
            Cell::Text(t) => f.write_str(t),
            Cell::Money(d) | Cell::Number(d) | Cell::Percent(d) => write!(f, "{d}"),
            Cell::Integer(i) => write!(f, "{i}"),
            Cell::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Cell::DateTime(t) => f.write_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        }
    }
}

impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Self {
        v.map_or(Cell::Empty, Cell::Text)
    }
}

/// A column: its key (JSON field, CSV header), its printed title and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Column {
    pub key: &'static str,
    pub title: &'static str,
    pub kind: CellKind,
}

impl Column {
    pub const fn new(key: &'static str, title: &'static str, kind: CellKind) -> Self {
        Self { key, title, kind }
    }
}

/// One table of a report (a report may have several: the approvals report has the approvers'
/// figures and the stuck approvals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    pub key: &'static str,
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

/// A headline figure (count, sum, opening balance), per currency where it is money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Figure {
    pub key: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub value: Cell,
}

impl Figure {
    /// A figure of no currency (a count, a date, a rate).
    pub fn new(key: &str, title: &str, value: Cell) -> Self {
        Self { key: key.to_string(), title: title.to_string(), currency: None, value }
    }

    /// A figure in `currency` (a report sums money per currency, never across).
    pub fn in_currency(currency: &str, key: &str, title: &str, value: Cell) -> Self {
        Self { currency: Some(currency.to_string()), ..Self::new(key, title, value) }
    }
}

/// A report as run: everything every format prints. `generated_at` is the only part that
/// differs between two runs over a closed period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub name: ReportName,
    pub title: String,
    pub params: ReportParams,
    /// The filters as people read them (label, value): "Fund", "Petty cash — Nairobi".
    pub filters: Vec<(String, String)>,
    pub summary: Vec<Figure>,
    pub sections: Vec<Section>,
    pub generated_at: DateTime<Utc>,
}

/// A report as JSON answers it (`GET /api/reports/{name}?format=json`, `pettycash-replay
/// report`): the [`Report`] with `filters` as `{label, value}` objects and each row as an
/// object keyed by its columns' keys.
pub struct Json<'a>(pub &'a Report);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};

        struct Filters<'a>(&'a [(String, String)]);
        impl Serialize for Filters<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for (label, value) in self.0 {
                    let mut m = std::collections::BTreeMap::new();
                    m.insert("label", label);
                    m.insert("value", value);
                    seq.serialize_element(&m)?;
                }
                seq.end()
            }
        }
        struct Row<'a>(&'a [Column], &'a [Cell]);
        impl Serialize for Row<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (column, cell) in self.0.iter().zip(self.1) {
                    m.serialize_entry(column.key, cell)?;
                }
                m.end()
            }
        }
        struct Rows<'a>(&'a Section);
        impl Serialize for Rows<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.rows.iter().map(|r| Row(&self.0.columns, r)))
            }
        }
        struct Sections<'a>(&'a [Section]);
        impl Serialize for Sections<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for section in self.0 {
                    #[derive(Serialize)]
                    struct Out<'a> {
                        key: &'a str,
                        title: &'a str,
                        columns: &'a [Column],
                        rows: Rows<'a>,
                    }
                    seq.serialize_element(&Out {
                        key: section.key,
                        title: &section.title,
                        columns: &section.columns,
                        rows: Rows(section),
                    })?;
                }
                seq.end()
            }
        }

        let r = self.0;
        let mut out = s.serialize_struct("Report", 7)?;
        out.serialize_field("name", &r.name)?;
        out.serialize_field("title", &r.title)?;
        out.serialize_field("params", &r.params)?;
        out.serialize_field("filters", &Filters(&r.filters))?;
        out.serialize_field("summary", &r.summary)?;
        out.serialize_field("sections", &Sections(&r.sections))?;
        out.serialize_field("generated_at", &r.generated_at)?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in ReportName::ALL {
            assert_eq!(n.as_str().parse::<ReportName>(), Ok(n));
        }
        assert!("cash_book".parse::<ReportName>().is_err());
    }

    #[test]
    fn a_requester_may_not_run_finance_reports() {
        let staff = Actor::new(Id::new_v4(), [Role::Staff]);
        assert!(ReportScope::of(&staff, ReportName::Treasury).is_none());
        let own = ReportScope::of(&staff, ReportName::Transactions).unwrap();
        assert!(own.own_only);
        let treasury = Actor::new(Id::new_v4(), [Role::Treasury]);
        assert!(!ReportScope::of(&treasury, ReportName::Transactions).unwrap().own_only);
    }

    #[test]
    fn cells_serialise_as_documented() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let json = serde_json::to_string(&vec![
            Cell::Empty,
            Cell::Money(d("12.50")),
            Cell::Integer(3),
            Cell::Date(NaiveDate::from_ymd_opt(2026, 1, 31).unwrap()),
        ])
        .unwrap();
        assert_eq!(json, r#"[null,"12.50",3,"2026-01-31"]"#);
    }
}
