//! Bulk import of the organisation from a table (a CSV or XLSX file, read by the API):
//! companies, regions, branches, departments, cost centres, users — with the old system's
//! columns.
//!
//! Every row is decided like the command it stands for (opening a unit, inviting a user into a
//! unit), against the organisation as it is plus nothing else: a file holds one kind, whose
//! parents must exist already (import companies, then regions, ...). Each row gets a verdict:
//!
//! - `created`: it will be (or was) recorded, with its new id (a user row's: its invitation's);
//! - `unchanged`: the same unit (code, kind, name, parent), or user or open invitation (email,
//!   name, roles, unit) exists already: nothing is recorded, so importing a file twice changes
//!   nothing (and mails nobody again);
//! - `rejected`: with one error per field (`{field, message}`, the field being the file's
//!   column, or `row` for what concerns the whole row).
//!
//! With any rejected row nothing is recorded, unless the caller asked to skip bad rows. What is
//! recorded is recorded in one transaction (all the events, their `org_units` and
//! `invitations` rows, the invitation mails), so an import is never half done. Users are
//! invited, as the old system's import did: each gets a mail with a link and chooses their own
//! password ([`crate::invitations`]); nobody's password passes through the importer.

use crate::context::CommandContext;
use crate::error::CommandError;
use crate::invitations::{plan as plan_invitation, Facts, NewInvitation};
use crate::org::{admin_requester, decide_open, unit_row, NewUnit, UnitView};
use crate::service::CommandService;
use crate::store::{Loaded, SideWrite, StreamAppend};
use crate::Outcome;
use pettycash_domain::organisation::{clean_code, OrgUnit, ParentUnit, UnitKind};
use pettycash_domain::user::{normalise_email, Requester};
use pettycash_domain::visibility::{may_see_unit, may_see_user};
use pettycash_domain::{DomainError, Id, Role};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use utoipa::ToSchema;

/// The most rows one file may hold.
pub const MAX_ROWS: usize = 5_000;

/// What a file holds. One text form, the path segment of `POST /api/org/import/{what}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    Companies,
    Regions,
    Branches,
    Departments,
    CostCentres,
    Users,
}

impl ImportKind {
    pub const ALL: [ImportKind; 6] = [
        ImportKind::Companies,
        ImportKind::Regions,
        ImportKind::Branches,
        ImportKind::Departments,
        ImportKind::CostCentres,
        ImportKind::Users,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Companies => "companies",
            ImportKind::Regions => "regions",
            ImportKind::Branches => "branches",
            ImportKind::Departments => "departments",
            ImportKind::CostCentres => "cost-centres",
            ImportKind::Users => "users",
        }
    }

    /// The file's columns, as in the old system's files: `(name, required)`. A required
    /// column must be in the header; its cells are checked like the command's fields.
    pub fn columns(self) -> &'static [(&'static str, bool)] {
        match self {
            ImportKind::Companies => &[("name", true), ("code", true)],
            ImportKind::Regions => &[("name", true), ("code", true), ("company_code", true)],
            ImportKind::Branches => &[
                ("name", true),
                ("code", true),
                ("region_code", true),
                ("company_code", true),
                ("phone", false),
            ],
            ImportKind::Departments => {
                &[("name", true), ("code", true), ("branch_code", true), ("company_code", true)]
            }
            ImportKind::CostCentres => {
                &[("name", true), ("code", true), ("department_code", true), ("company_code", true)]
            }
            ImportKind::Users => &[
                ("email", true),
                ("name", true),
                ("roles", true),
                ("unit_code", false),
                ("company_code", false),
            ],
        }
    }

    /// The kind of unit each row opens; `None` for users.
    fn unit_kind(self) -> Option<UnitKind> {
        match self {
            ImportKind::Companies => Some(UnitKind::Company),
            ImportKind::Regions => Some(UnitKind::Region),
            ImportKind::Branches => Some(UnitKind::Branch),
            ImportKind::Departments => Some(UnitKind::Department),
            ImportKind::CostCentres => Some(UnitKind::CostCentre),
            ImportKind::Users => None,
        }
    }

    /// The column naming a row's parent unit (for regions: their company).
    fn parent_column(self) -> Option<&'static str> {
        match self {
            ImportKind::Regions => Some("company_code"),
            ImportKind::Branches => Some("region_code"),
            ImportKind::Departments => Some("branch_code"),
            ImportKind::CostCentres => Some("department_code"),
            ImportKind::Companies | ImportKind::Users => None,
        }
    }
}

impl fmt::Display for ImportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ImportKind {
    type Err = pettycash_domain::fund::UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| pettycash_domain::fund::UnknownWord { what: "import", text: s.to_string() })
    }
}

/// A file read into text: its header and its rows, each with its row number in the file (the
/// header is row 1), blank rows left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<TableRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRow {
    pub number: usize,
    pub cells: Vec<String>,
}

/// A row's verdict. One text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    Created,
    Unchanged,
    Rejected,
}

impl RowStatus {
    pub const ALL: [RowStatus; 3] = [RowStatus::Created, RowStatus::Unchanged, RowStatus::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Created => "created",
            RowStatus::Unchanged => "unchanged",
            RowStatus::Rejected => "rejected",
        }
    }
}

impl std::str::FromStr for RowStatus {
    type Err = pettycash_domain::fund::UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| pettycash_domain::fund::UnknownWord { what: "row status", text: s.to_string() })
    }
}

/// What is wrong with one field of a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The file's column (`row`: the row as a whole).
    #[schema(example = "region_code")]
    pub field: String,
    pub message: String,
}

/// One row's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RowReport {
    /// Its row number in the file (the header is row 1).
    pub row: usize,
    #[schema(value_type = String, example = "created")]
    pub status: RowStatus,
    /// The unit or user: new (`created`; not yet on a dry run) or existing (`unchanged`).
    pub id: Option<uuid::Uuid>,
    /// Empty unless rejected.
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImportTotals {
    pub created: usize,
    pub unchanged: usize,
    pub rejected: usize,
}

/// The answer of an import: every row's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImportReport {
    /// `companies`, `regions`, `branches`, `departments`, `cost-centres` or `users`.
    #[schema(example = "branches")]
    pub what: String,
    pub dry_run: bool,
    pub skip_invalid: bool,
    /// Whether the `created` rows were recorded: false on a dry run, and when rows were
    /// rejected without `skip_invalid` (then nothing was recorded).
    pub imported: bool,
    pub totals: ImportTotals,
    pub rows: Vec<RowReport>,
    /// Global position of the last event recorded (0 when none was).
    pub position: i64,
}

/// How to import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Record the valid rows even when others are rejected.
    pub skip_invalid: bool,
    /// Decide every row and record nothing.
    pub dry_run: bool,
}

/// Why a file cannot be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A column is missing, unknown or given twice.
    #[error("{column}: {message}")]
    Column { column: String, message: String },
    #[error("a file may hold at most {MAX_ROWS} rows; split it")]
    TooManyRows,
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl From<DomainError> for ImportError {
    fn from(e: DomainError) -> Self {
        ImportError::Command(e.into())
    }
}

/// What a row will do.
enum Plan {
    Rejected(Vec<FieldError>),
    Unchanged(Id),
    Created { id: Id, stream: StreamAppend, writes: Vec<SideWrite>, locks: Vec<Id> },
}

fn error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_string(), message: message.into() }
}

/// A domain error about a row, on the column it concerns: the field it names (the same names
/// as the columns), `parent` for errors about the parent unit, else `row`.
fn domain_error(e: &DomainError, parent: &str) -> FieldError {
    let field = match e {
        DomainError::WrongParent { .. } | DomainError::UnitClosed => parent,
        _ => e.field().unwrap_or("row"),
    };
    error(field, e.to_string())
}

/// The cells of a row by column name.
struct Cells<'a> {
    index: &'a HashMap<&'static str, usize>,
    row: &'a TableRow,
}

impl Cells<'_> {
    /// The trimmed cell of `column` (empty when the file has no such column).
    fn get(&self, column: &str) -> &str {
        self.index.get(column).and_then(|&i| self.row.cells.get(i)).map_or("", |c| c.trim())
    }
}

impl Table {
    /// The index of each known column, or why the header will not do: a required column
    /// missing, an unknown one, or one given twice (named, case and spaces aside).
    pub fn column_index(&self, kind: ImportKind) -> Result<HashMap<&'static str, usize>, ImportError> {
        let known = kind.columns();
        let mut index = HashMap::new();
        for (i, raw) in self.columns.iter().enumerate() {
            let wanted = raw.trim().to_ascii_lowercase().replace([' ', '-'], "_");
            if wanted.is_empty()
                && self.rows.iter().all(|r| r.cells.get(i).is_none_or(|c| c.trim().is_empty()))
            {
                continue; // an empty column, as spreadsheets leave them
            }
            let Some((name, _)) = known.iter().find(|(name, _)| *name == wanted) else {
                let expected: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
                return Err(ImportError::Column {
                    column: raw.clone(),
                    message: format!("unknown column; {kind} files have the columns {}", expected.join(", ")),
                });
            };
            if index.insert(*name, i).is_some() {
                return Err(ImportError::Column {
                    column: raw.clone(),
                    message: "the column is given twice".into(),
                });
            }
        }
        if let Some((missing, _)) =
            known.iter().find(|(name, required)| *required && !index.contains_key(name))
        {
            return Err(ImportError::Column {
                column: missing.to_string(),
                message: format!("{kind} files need this column"),
            });
        }
        Ok(index)
    }
}

/// Everything the rows are decided against: the units the importer may see, by code.
struct Organisation {
    companies: HashMap<String, UnitView>,
    /// By (company, code).
    units: HashMap<(Id, String), UnitView>,
}

impl Organisation {
    fn company(&self, code: &str) -> Option<&UnitView> {
        self.companies.get(code)
    }

    fn unit(&self, company: Id, code: &str) -> Option<&UnitView> {
        self.units.get(&(company, code.to_string()))
    }
}

impl CommandService {
    /// Imports `table` as `kind` (see the module documentation). Rows are decided against the
    /// organisation as the importer sees it; with `skip_invalid` the valid ones are recorded
    /// even if others are rejected; with `dry_run` nothing is recorded.
    pub async fn import(
        &self,
        ctx: &CommandContext,
        kind: ImportKind,
        table: &Table,
        options: ImportOptions,
    ) -> Result<Outcome<ImportReport>, ImportError> {
        let by = admin_requester(ctx)?;
        let index = table.column_index(kind)?;
        if table.rows.len() > MAX_ROWS {
            return Err(ImportError::TooManyRows);
        }
        let org = self.organisation(&by).await?;
        let plans = match kind.unit_kind() {
            Some(unit_kind) => self.plan_units(&by, kind, unit_kind, table, &index, &org).await,
            None => self.plan_users(&by, table, &index, &org).await?,
        };
        let mut report = ImportReport {
            what: kind.as_str().to_string(),
            dry_run: options.dry_run,
            skip_invalid: options.skip_invalid,
            imported: false,
            totals: ImportTotals::default(),
            rows: Vec::with_capacity(plans.len()),
            position: 0,
        };
        let (mut streams, mut writes, mut locks) = (Vec::new(), Vec::new(), BTreeSet::new());
        for (row, plan) in table.rows.iter().zip(plans) {
            let (status, id, errors) = match plan {
                Plan::Rejected(errors) => (RowStatus::Rejected, None, errors),
                Plan::Unchanged(id) => (RowStatus::Unchanged, Some(id), Vec::new()),
                Plan::Created { id, stream, writes: w, locks: l } => {
                    streams.push(stream);
                    writes.extend(w);
                    locks.extend(l);
                    (RowStatus::Created, (!options.dry_run).then_some(id), Vec::new())
                }
            };
            match status {
                RowStatus::Created => report.totals.created += 1,
                RowStatus::Unchanged => report.totals.unchanged += 1,
                RowStatus::Rejected => report.totals.rejected += 1,
            }
            report.rows.push(RowReport { row: row.number, status, id, errors });
        }
        let refused = report.totals.rejected > 0 && !options.skip_invalid;
        report.imported = !options.dry_run && !refused;
        if !report.imported || streams.is_empty() {
            return Ok(Outcome { value: report, position: 0 });
        }
        // Parents and units taken are checked open (and share-locked against closing) first.
        let mut all: Vec<SideWrite> =
            locks.into_iter().map(|unit_id| SideWrite::UnitIsOpen { unit_id }).collect();
        all.extend(writes);
        Ok(self.commit(ctx, &streams, all, report, |r, p| r.position = p).await?)
    }

    /// The units `by` may see.
    async fn organisation(&self, by: &Requester) -> Result<Organisation, CommandError> {
        let units = self.units_seen_by(by).await?;
        let mut org = Organisation { companies: HashMap::new(), units: HashMap::new() };
        for unit in units {
            if unit.kind == UnitKind::Company {
                org.companies.insert(unit.code.clone(), unit.clone());
            }
            org.units.insert((unit.company_id, unit.code.clone()), unit);
        }
        Ok(org)
    }

    async fn plan_units(
        &self,
        by: &Requester,
        kind: ImportKind,
        unit_kind: UnitKind,
        table: &Table,
        index: &HashMap<&'static str, usize>,
        org: &Organisation,
    ) -> Vec<Plan> {
        let parent_column = kind.parent_column().unwrap_or("row");
        // (company, code) → the row that opens it, for codes given twice in the file.
        let mut seen: HashMap<(Option<Id>, String), usize> = HashMap::new();
        let mut plans = Vec::with_capacity(table.rows.len());
        for row in &table.rows {
            let cells = Cells { index, row };
            let plan = match plan_unit(by, kind, unit_kind, &cells, org, &mut seen, parent_column).await {
                Ok(plan) => plan,
                Err(errors) => Plan::Rejected(errors),
            };
            plans.push(plan);
        }
        plans
    }

    /// Users: each new one is invited (an invitation and its mail, as `POST /api/invitations`
    /// would), not registered: they choose their own password. A row whose email a user or an
    /// open invitation has already is `unchanged` when it says the same (name, roles, unit),
    /// else rejected.
    async fn plan_users(
        &self,
        by: &Requester,
        table: &Table,
        index: &HashMap<&'static str, usize>,
        org: &Organisation,
    ) -> Result<Vec<Plan>, CommandError> {
        /// A user, or an open invitation, holding an email.
        #[derive(sqlx::FromRow)]
        struct Existing {
            id: Id,
            email: String,
            name: String,
            roles: Vec<String>,
            unit_id: Option<Id>,
            company_id: Option<Id>,
            /// Invitations only: who sent it.
            invited_by: Option<Id>,
            invitation: bool,
        }
        let setup = self.invitation_setup()?;
        let emails: Vec<String> = table
            .rows
            .iter()
            .filter_map(|row| normalise_email(Cells { index, row }.get("email")).ok())
            .collect();
        // A user comes first: an accepted invitation's email is its user's.
        let existing: HashMap<String, Existing> = sqlx::query_as::<_, Existing>(
            "SELECT id, email, name, roles, unit_id, company_id, NULL::uuid AS invited_by, false AS invitation
             FROM users WHERE email = ANY($1)
             UNION ALL
             SELECT id, email, name, roles, unit_id, company_id, invited_by, true
             FROM invitations WHERE email = ANY($1) AND status = 'pending'
             ORDER BY invitation DESC",
        )
        .bind(&emails)
        .fetch_all(self.store().pool())
        .await?
        .into_iter()
        .map(|u| (u.email.clone(), u))
        .collect();
        let inviter = self.user_name(crate::invitations::by_id(by)).await?;
        let valid_days = self.settings().await?.invitations.expiry_days;
        let now = self.clock().now();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut plans = Vec::with_capacity(table.rows.len());
        for row in &table.rows {
            let cells = Cells { index, row };
            let plan = async {
                check_cells(&cells)?;
                let email = normalise_email(cells.get("email")).map_err(|e| vec![domain_error(&e, "row")])?;
                if let Some(first) = seen.insert(email.clone(), row.number) {
                    return Err(vec![error("email", format!("the same email is on row {first}"))]);
                }
                let mut errors = Vec::new();
                let roles = parse_roles(cells.get("roles")).map_err(|e| errors.push(e)).ok();
                let unit = user_unit(by, &cells, org).map_err(|e| errors.push(e)).ok();
                let (Some(roles), Some(unit), true) = (roles, unit, errors.is_empty()) else {
                    return Err(errors);
                };
                let name = cells.get("name").to_string();
                if let Some(found) = existing.get(&email) {
                    let visible = match (by, found.invitation) {
                        (Requester::Operator, _) => true,
                        (Requester::Admin(actor), false) => may_see_user(actor, found.company_id),
                        (by, true) => crate::invitations::manages(by, found.company_id, found.invited_by),
                    };
                    let mut held: Vec<Role> = found.roles.iter().filter_map(|r| r.parse().ok()).collect();
                    held.sort();
                    // The same user (or invitation) as the row: unchanged, even if the importer
                    // no longer sees them (the organisation's admin who put them in a company):
                    // the row names a unit the importer sees, so it tells them nothing new.
                    let same = found.name == name && held == roles && found.unit_id == unit.map(|u| u.id);
                    let what = if found.invitation {
                        "an open invitation to this email"
                    } else {
                        "a user with this email"
                    };
                    return match (visible, same) {
                        (_, true) => Ok(Plan::Unchanged(found.id)),
                        (true, false) => Err(vec![error(
                            "email",
                            format!(
                                "{what} exists with another name, roles or unit; change them over the API{}",
                                if found.invitation {
                                    " (revoke the invitation and invite again)"
                                } else {
                                    ""
                                }
                            ),
                        )]),
                        (false, false) => Err(vec![error("email", format!("{what} exists"))]),
                    };
                }
                let input = NewInvitation { email, name, roles, unit_id: unit.map(|u| u.id) };
                let facts = Facts { by, unit, email_taken: None, inviter: inviter.clone(), valid_days, now };
                let planned = plan_invitation(&setup, input, facts).await.map_err(|e| match e {
                    CommandError::Domain(e) => vec![domain_error(&e, "unit_code")],
                    other => vec![error("row", other.to_string())],
                })?;
                let locks = unit.iter().map(|u| u.id).collect();
                Ok(Plan::Created {
                    id: planned.view.id,
                    stream: planned.stream,
                    writes: planned.writes,
                    locks,
                })
            }
            .await;
            plans.push(plan.unwrap_or_else(Plan::Rejected));
        }
        Ok(plans)
    }
}

/// Refuses control characters in any cell (PostgreSQL cannot store U+0000; a line break or tab
/// in a name or code is never meant), naming the column.
fn check_cells(cells: &Cells<'_>) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut columns: Vec<(&&str, &usize)> = cells.index.iter().collect();
    columns.sort_by_key(|(_, i)| **i);
    for (name, &i) in columns {
        if cells.row.cells.get(i).is_some_and(|c| c.chars().any(char::is_control)) {
            errors.push(error(name, "must not contain control characters"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

async fn plan_unit(
    by: &Requester,
    kind: ImportKind,
    unit_kind: UnitKind,
    cells: &Cells<'_>,
    org: &Organisation,
    seen: &mut HashMap<(Option<Id>, String), usize>,
    parent_column: &'static str,
) -> Result<Plan, Vec<FieldError>> {
    check_cells(cells)?;
    let mut errors = Vec::new();
    let code =
        clean_code("code", cells.get("code")).map_err(|e| errors.push(domain_error(&e, parent_column))).ok();
    // The company and the parent, for all but companies.
    let company = match kind {
        ImportKind::Companies => None,
        _ => match find_company(cells.get("company_code"), org) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    let parent: Option<&UnitView> = match (kind, company) {
        (ImportKind::Regions, Some(company)) => Some(company),
        (ImportKind::Companies, _) | (_, None) => None,
        (_, Some(company)) => {
            let expected = unit_kind.parent_kind().unwrap_or(UnitKind::Company);
            match clean_code(parent_column, cells.get(parent_column)) {
                Err(e) => {
                    errors.push(domain_error(&e, parent_column));
                    None
                }
                Ok(code) => match org.unit(company.id, &code).filter(|u| u.kind == expected) {
                    Some(p) => Some(p),
                    None => {
                        errors.push(error(
                            parent_column,
                            format!("the company {} has no {expected} with this code", company.code),
                        ));
                        None
                    }
                },
            }
        }
    };
    let Some(code) = code else { return Err(errors) };
    if !errors.is_empty() {
        return Err(errors);
    }
    let company_id = company.map(|c| c.id);
    if let Some(first) = seen.insert((company_id, code.clone()), cells.row.number) {
        return Err(vec![error("code", format!("the same code is on row {first}"))]);
    }
    let name = cells.get("name").to_string();
    let phone = cells.index.contains_key("phone").then(|| cells.get("phone").to_string());
    // The same unit, already there?
    let existing = match company {
        None => org.company(&code),
        Some(c) => org.unit(c.id, &code),
    };
    if let Some(unit) = existing {
        let clean_phone = pettycash_domain::organisation::clean_phone(phone.as_deref()).ok().flatten();
        let same = unit.kind == unit_kind
            && unit.name == name
            && unit.parent_id == parent.map(|p| p.id)
            && (phone.is_none() || unit.phone == clean_phone);
        return if same {
            Ok(Plan::Unchanged(unit.id))
        } else {
            Err(vec![error(
                "code",
                format!("already used in this company by the {} `{}`", unit.kind, unit.name),
            )])
        };
    }
    let input = NewUnit { kind: unit_kind, name, code, phone, parent_id: parent.map(|p| p.id) };
    let parent_unit = parent.map(|p| ParentUnit { kind: p.kind, path: p.path(), closed: p.closed });
    let (events, unit) =
        decide_open(by, input, parent_unit).await.map_err(|e| vec![domain_error(&e, parent_column)])?;
    let id = unit.id.unwrap_or_default();
    let loaded = Loaded { id: id.to_string(), state: OrgUnit::default(), version: 0 };
    let stream = StreamAppend::of(&loaded, &events, &unit).map_err(|e| vec![error("row", e.to_string())])?;
    let writes = unit_row(&unit).into_iter().collect();
    Ok(Plan::Created { id, stream, writes, locks: parent.map(|p| p.id).into_iter().collect() })
}

/// The company a `company_code` cell names, among those the importer sees.
fn find_company<'o>(cell: &str, org: &'o Organisation) -> Result<&'o UnitView, FieldError> {
    let code = clean_code("company_code", cell).map_err(|e| domain_error(&e, "company_code"))?;
    org.company(&code).ok_or_else(|| error("company_code", "no company has this code"))
}

/// `staff; treasury` as roles, sorted, without repeats.
fn parse_roles(cell: &str) -> Result<Vec<Role>, FieldError> {
    let mut roles = cell
        .split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| r.parse::<Role>().map_err(|e| error("roles", e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if roles.is_empty() {
        return Err(error("roles", "at least one role is required (separate roles with `;`)"));
    }
    roles.sort();
    roles.dedup();
    Ok(roles)
}

/// The unit a user row puts its user in: `unit_code` in `company_code`'s company; the company
/// itself without a unit code; without a company code, an admin's own company (none for an
/// admin of no unit or the operator).
fn user_unit<'o>(
    by: &Requester,
    cells: &Cells<'_>,
    org: &'o Organisation,
) -> Result<Option<&'o UnitView>, FieldError> {
    let (company_cell, unit_cell) = (cells.get("company_code"), cells.get("unit_code"));
    let company = if company_cell.is_empty() {
        let own = match by {
            Requester::Admin(actor) => actor.company(),
            Requester::Operator => None,
        };
        match own {
            Some(own) => org.companies.values().find(|c| c.id == own),
            None if unit_cell.is_empty() => return Ok(None),
            None => return Err(error("company_code", "give the company of the unit")),
        }
    } else {
        Some(find_company(company_cell, org)?)
    };
    let Some(company) = company else { return Ok(None) };
    let unit = if unit_cell.is_empty() {
        company
    } else {
        let code = clean_code("unit_code", unit_cell).map_err(|e| domain_error(&e, "unit_code"))?;
        org.unit(company.id, &code).ok_or_else(|| {
            error("unit_code", format!("the company {} has no unit with this code", company.code))
        })?
    };
    let sees = match by {
        Requester::Operator => true,
        Requester::Admin(actor) => may_see_unit(actor, unit.company_id),
    };
    if !sees {
        return Err(error("company_code", "no company has this code"));
    }
    if unit.closed {
        return Err(error("unit_code", DomainError::UnitClosed.to_string()));
    }
    Ok(Some(unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(columns: &[&str]) -> Table {
        Table { columns: columns.iter().map(|c| c.to_string()).collect(), rows: Vec::new() }
    }

    #[test]
    fn columns_are_named_like_the_old_files_in_any_order_and_case() {
        let index = table(&["Code", "Region Code", "name", "company_code", "PHONE"])
            .column_index(ImportKind::Branches)
            .unwrap();
        assert_eq!((index["code"], index["region_code"], index["phone"]), (0, 1, 4));
        let err = table(&["name", "code"]).column_index(ImportKind::Regions).unwrap_err();
        assert!(matches!(err, ImportError::Column { ref column, .. } if column == "company_code"), "{err}");
        let err = table(&["name", "code", "colour"]).column_index(ImportKind::Companies).unwrap_err();
        assert!(matches!(err, ImportError::Column { ref column, .. } if column == "colour"), "{err}");
        let err = table(&["name", "code", "Name"]).column_index(ImportKind::Companies).unwrap_err();
        assert!(matches!(err, ImportError::Column { ref column, .. } if column == "Name"), "{err}");
        assert!(table(&["name", "code", ""]).column_index(ImportKind::Companies).is_ok(), "an empty column");
    }

    #[test]
    fn words_round_trip() {
        for kind in ImportKind::ALL {
            assert_eq!(kind.as_str().parse::<ImportKind>().unwrap(), kind);
        }
        for status in RowStatus::ALL {
            assert_eq!(status.as_str().parse::<RowStatus>().unwrap(), status);
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    #[test]
    fn roles_are_separated_by_semicolons() {
        assert_eq!(parse_roles(" staff; Treasury ;staff").unwrap(), vec![Role::Staff, Role::Treasury]);
        assert_eq!(parse_roles("").unwrap_err().field, "roles");
        assert_eq!(parse_roles("staff;king").unwrap_err().field, "roles");
    }
}
