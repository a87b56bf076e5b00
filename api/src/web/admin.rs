//! `/admin/` (issue #16): the organisation's units, users and invitations, funds, the approval
//! policy, expense categories, budgets, runtime settings and imports, for admins. Anyone else gets the refused
//! page (403), as the API refuses them.
//!
//! Every page lists through the query the API's list answers with, and every form runs the
//! command the API's handler runs (`CommandService::open_unit`, `invite`, `open_fund_with`, …,
//! `routes::org::import_file`, `routes::users::assign_unit_of`, `routes::policy::tiers_of` and
//! `thresholds_of`), so that the rules (who may, what is valid, what is visible) are
//! the commands' alone. A refused command shows its page again with the error beside the field
//! it names and what was typed kept (`forms::Failure`); a done one goes back to its page (303),
//! where the list shows the change.

use super::csrf::{self, Binding, PageForm};
use super::dashboard::money;
use super::forms::{AreaPage, Block, Cell, Choice, Failure, Field, Form, Pairs, Row, SectionLink, Table};
use super::layout::{role_label, Layout};
use super::render;
use super::session::PageUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::{command_parts, Amount};
use crate::routes;
use crate::routes::policy::{ThresholdInput, TierInput};
use crate::state::AppState;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use pettycash_commands::budgets::NewBudget;
use pettycash_commands::import::{ImportKind, ImportOptions, ImportReport};
use pettycash_commands::invitations::{InvitationQuery, NewInvitation};
use pettycash_commands::org::{NewUnit, UnitView};
use pettycash_commands::service::FundSettingsPatch;
use pettycash_commands::{CommandError, Outcome, SessionGuard};
use pettycash_domain::budget::{Month, ScopeKind};
use pettycash_domain::fund::FundSettings;
use pettycash_domain::invitation::InvitationStatus;
use pettycash_domain::organisation::{Origin, UnitKind};
use pettycash_domain::settings::SettingKey;
use pettycash_domain::{Actor, Role};
use pettycash_projections::queries;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// The area's first page (the navigation's link).
pub const HOME: &str = "/admin/";

/// A page of the area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Overview,
    Organisation,
    Users,
    Funds,
    Policy,
    Categories,
    Budgets,
    Settings,
    Imports,
}

impl Section {
    const ALL: [Section; 9] = [
        Section::Overview,
        Section::Organisation,
        Section::Users,
        Section::Funds,
        Section::Policy,
        Section::Categories,
        Section::Budgets,
        Section::Settings,
        Section::Imports,
    ];

    fn slug(self) -> &'static str {
        match self {
            Section::Overview => "",
            Section::Organisation => "organisation",
            Section::Users => "users",
            Section::Funds => "funds",
            Section::Policy => "policy",
            Section::Categories => "categories",
            Section::Budgets => "budgets",
            Section::Settings => "settings",
            Section::Imports => "imports",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Section::Overview => "Overview",
            Section::Organisation => "Organisation",
            Section::Users => "Users and invitations",
            Section::Funds => "Funds",
            Section::Policy => "Approval policy",
            Section::Categories => "Categories",
            Section::Budgets => "Budgets",
            Section::Settings => "Settings",
            Section::Imports => "Imports",
        }
    }

    fn about(self) -> &'static str {
        match self {
            Section::Overview => "What an admin looks after.",
            Section::Organisation => {
                "Companies, regions, branches, departments, cost centres and positions: who sees what follows them."
            }
            Section::Users => {
                "Invite people, change their roles and units, deactivate and reactivate them."
            }
            Section::Funds => {
                "Open funds with their float, reorder level and minimum balance; change the thresholds, the custodian and auto-replenishment."
            }
            Section::Policy => {
                "Who approves what: the chain of roles a requisition waits on, by amount (tiers) or by currency, origin and amount (thresholds)."
            }
            Section::Categories => "The expense categories requisitions choose from, with their general-ledger codes.",
            Section::Budgets => "Monthly budgets of branches, departments and cost centres, against what was paid.",
            Section::Settings => "Password rules, sign-in throttling, payment codes, alerts.",
            Section::Imports => "Units or users from a CSV or Excel file, every row checked first.",
        }
    }

    fn href(self) -> String {
        match self {
            Section::Overview => HOME.into(),
            s => format!("{HOME}{}/", s.slug()),
        }
    }

    fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.slug() == slug)
    }
}

/// Admins only: anyone else is refused (the refused page), as the API refuses their commands.
fn require_admin(actor: &Actor) -> ApiResult<()> {
    if actor.has(Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::forbidden("missing_role", "these pages are for admins"))
    }
}

/// `GET /admin/` and `GET /admin/{section}/`.
pub async fn overview(State(state): State<AppState>, user: PageUser) -> ApiResult<Response> {
    show(&state, &user, Section::Overview, Extra::default(), StatusCode::OK).await
}

/// `GET /admin/{section}/` (`?month=YYYY-MM` on budgets; `?min_position=` after a form: the
/// page waits, briefly, for the lists to include it).
pub async fn page(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    user: PageUser,
) -> ApiResult<Response> {
    let section =
        Section::from_slug(slug.trim_end_matches('/')).ok_or_else(|| ApiError::not_found("page"))?;
    if let Some(min) = query.get("min_position").and_then(|p| p.parse::<i64>().ok()) {
        // After a form: the read models these lists come from include its events (read your
        // writes, as the API's `min_position`); the others are written with the events.
        let projections: &[&str] = match section {
            Section::Funds => &["cash"],
            Section::Budgets => &["budgets"],
            _ => &[],
        };
        if !projections.is_empty() {
            routes::consistent(&state, projections, Some(min), &HeaderMap::new()).await?;
        }
    }
    let extra = Extra { month: query.get("month").cloned(), ..Extra::default() };
    show(&state, &user, section, extra, StatusCode::OK).await
}

/// What a page shows beside its lists: the last refusal, the budgets' month, an import's report.
#[derive(Default)]
struct Extra {
    failure: Option<Failure>,
    month: Option<String>,
    report: Option<ImportReport>,
}

async fn show(
    state: &AppState,
    PageUser { user, token }: &PageUser,
    section: Section,
    extra: Extra,
    status: StatusCode,
) -> ApiResult<Response> {
    let actor = user.actor();
    require_admin(&actor)?;
    let csrf = csrf::token(state, Binding::Session(token))?;
    let ctx = Ctx { state, actor: &actor, csrf: &csrf, failure: extra.failure.as_ref() };
    let blocks = match section {
        Section::Overview => overview_blocks(),
        Section::Organisation => organisation(&ctx).await?,
        Section::Users => users(&ctx).await?,
        Section::Funds => funds(&ctx).await?,
        Section::Policy => policy(&ctx).await?,
        Section::Categories => categories(&ctx).await?,
        Section::Budgets => budgets(&ctx, extra.month.as_deref()).await?,
        Section::Settings => settings(&ctx).await?,
        Section::Imports => imports(&ctx, extra.report),
    };
    let title = match section {
        Section::Overview => "Admin".to_string(),
        s => format!("Admin: {}", s.label()),
    };
    let layout = Layout::signed_in(state, &title, user, token, HOME)?;
    let sections = Section::ALL
        .into_iter()
        .map(|s| SectionLink { label: s.label(), href: s.href(), current: s == section })
        .collect();
    let page = AreaPage {
        layout,
        area: "Admin",
        heading: title,
        sections,
        intro: (section != Section::Overview).then(|| section.about().to_string()),
        blocks,
    };
    render(status, &page)
}

/// What every section's builder needs.
struct Ctx<'a> {
    state: &'a AppState,
    actor: &'a Actor,
    csrf: &'a str,
    failure: Option<&'a Failure>,
}

impl Ctx<'_> {
    fn post(&self, id: impl Into<String>, action: impl Into<String>, submit: &str) -> Form {
        Form::post(id, action, submit, self.csrf)
    }
}

fn overview_blocks() -> Vec<Block> {
    let mut table = Table::new("admin-sections", "Admin pages", &["Page", "What it is for"], "");
    for s in Section::ALL.into_iter().skip(1) {
        table.rows.push(Row { cells: vec![Cell::new(s.label()), Cell::new(s.about())], actions: vec![] });
    }
    vec![Block::default().table(table)]
}

/// A unit as a choice: `Branch · NBI-01 · Nairobi CBD`.
fn unit_label(u: &UnitView) -> String {
    format!("{} · {} · {}", words(u.kind.as_str()), u.code, u.name)
}

/// `cost_centre` as `Cost centre`.
fn words(snake: &str) -> String {
    let text = snake.replace(['_', '-'], " ");
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn unit_choices(units: &[UnitView], none: &str, keep: impl Fn(&UnitView) -> bool) -> Vec<Choice> {
    std::iter::once(Choice::new("", none))
        .chain(
            units
                .iter()
                .filter(|u| !u.closed && keep(u))
                .map(|u| Choice::new(u.id.to_string(), unit_label(u))),
        )
        .collect()
}

async fn organisation(c: &Ctx<'_>) -> ApiResult<Vec<Block>> {
    let units = c.state.commands.units(c.actor).await?;
    // The list comes parent first, each unit right after its parent: its depth is its parent's
    // plus one.
    let mut depth: HashMap<Uuid, usize> = HashMap::new();
    let mut table =
        Table::new("units", "Units", &["Unit", "Kind", "Code", "Phone", "State"], "There are no units yet.");
    for u in &units {
        let d = u.parent_id.and_then(|p| depth.get(&p)).map_or(0, |d| d + 1);
        depth.insert(u.id, d);
        let mut actions = vec![];
        if !u.closed {
            actions.push(
                c.post(
                    format!("rename-{}", u.id),
                    format!("{HOME}organisation/units/{}/rename", u.id),
                    "Rename",
                )
                .inline()
                .field(
                    Field::text("name", &format!("New name of {}", u.code)).value(u.name.clone()).required(),
                ),
            );
            actions.push(
                c.post(
                    format!("close-{}", u.id),
                    format!("{HOME}organisation/units/{}/close", u.id),
                    "Close",
                )
                .inline(),
            );
        }
        table.rows.push(Row {
            cells: vec![
                Cell { text: format!("{}{}", "— ".repeat(d), u.name), class: "unit" },
                Cell::new(words(u.kind.as_str())),
                Cell::new(u.code.clone()),
                Cell::new(u.phone.clone().unwrap_or_default()),
                Cell::new(if u.closed { "Closed" } else { "Open" }),
            ],
            actions: actions.into_iter().map(|f| f.with_failure(c.failure)).collect(),
        });
    }
    let kinds = UnitKind::ALL.into_iter().map(|k| Choice::new(k.as_str(), words(k.as_str()))).collect();
    let form = c
        .post("open-unit", format!("{HOME}organisation/units"), "Open the unit")
        .field(Field::select("kind", "Kind", kinds).required())
        .field(Field::text("name", "Name").required())
        .field(Field::text("code", "Code").required().hint("Unique within the company; upper case."))
        .field(Field::new("phone", "Phone (optional)", "tel"))
        .field(
            Field::select("parent_id", "Under", unit_choices(&units, "Nothing (a company)", |_| true))
                .hint("A region goes under a company, a branch under a region, a department under a branch, a cost centre or position under a department."),
        )
        .with_failure(c.failure);
    Ok(vec![Block::default().table(table), Block::heading("Open a unit").form(form)])
}

fn role_choices(roles: impl IntoIterator<Item = Role>) -> Vec<Choice> {
    roles.into_iter().map(|r| Choice::new(r.as_str(), role_label(r))).collect()
}

fn roles_text(roles: &[String]) -> String {
    roles
        .iter()
        .map(|r| r.parse::<Role>().map_or_else(|_| r.clone(), |r| role_label(r).to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn users(c: &Ctx<'_>) -> ApiResult<Vec<Block>> {
    let units = c.state.commands.units(c.actor).await?;
    let unit_name: HashMap<Uuid, String> = units.iter().map(|u| (u.id, unit_label(u))).collect();
    let people = routes::users::users_of(c.state, c.actor).await?;
    let mut table =
        Table::new("users", "Users", &["Name", "Email", "Roles", "Unit", "State"], "There are no users.");
    for u in &people {
        let id = u.id;
        let held: Vec<Role> = u.roles.iter().filter_map(|r| r.parse().ok()).collect();
        let mut actions = vec![c
            .post(format!("grant-{id}"), format!("{HOME}users/{id}/roles"), "Grant")
            .inline()
            .field(Field::select(
                "role",
                "Role to grant",
                role_choices(Role::ALL.into_iter().filter(|r| !held.contains(r))),
            ))];
        if !held.is_empty() {
            actions.push(
                c.post(format!("revoke-{id}"), format!("{HOME}users/{id}/roles/revoke"), "Revoke")
                    .inline()
                    .field(Field::select("role", "Role to revoke", role_choices(held.iter().copied()))),
            );
        }
        actions.push(
            c.post(format!("unit-{id}"), format!("{HOME}users/{id}/unit"), "Move").inline().field(
                Field::select("unit_id", "Unit", unit_choices(&units, "No unit", |_| true))
                    .value(u.unit_id.map(|id| id.to_string()).unwrap_or_default()),
            ),
        );
        if u.active {
            actions.push(
                c.post(format!("deactivate-{id}"), format!("{HOME}users/{id}/deactivate"), "Deactivate")
                    .inline()
                    .field(Field::text("reason", "Reason").required()),
            );
        } else {
            actions.push(
                c.post(format!("reactivate-{id}"), format!("{HOME}users/{id}/reactivate"), "Reactivate")
                    .inline(),
            );
        }
        table.rows.push(Row {
            cells: vec![
                Cell::new(u.name.clone()),
                Cell::new(u.email.clone()),
                Cell::new(roles_text(&u.roles)),
                Cell::new(u.unit_id.and_then(|id| unit_name.get(&id).cloned()).unwrap_or_else(|| "—".into())),
                Cell::new(if u.active { "Active" } else { "Deactivated" }),
            ],
            actions: actions.into_iter().map(|f| f.with_failure(c.failure)).collect(),
        });
    }
    let query = InvitationQuery { status: None, limit: queries::DEFAULT_LIMIT, after: None };
    let invitations = c.state.commands.invitations(c.actor, query).await?.items;
    let mut sent = Table::new(
        "invitations",
        "Invitations (the latest)",
        &["Name", "Email", "Roles", "State", "Link works until"],
        "No invitation was sent yet.",
    );
    for i in &invitations {
        let id = i.id;
        let mut actions = vec![];
        if matches!(i.status, InvitationStatus::Pending | InvitationStatus::Expired) {
            actions.push(
                c.post(format!("resend-{id}"), format!("{HOME}invitations/{id}/resend"), "Send again")
                    .inline(),
            );
            actions.push(
                c.post(format!("revoke-invitation-{id}"), format!("{HOME}invitations/{id}/revoke"), "Revoke")
                    .inline(),
            );
        }
        sent.rows.push(Row {
            cells: vec![
                Cell::new(i.name.clone()),
                Cell::new(i.email.clone()),
                Cell::new(i.roles.iter().map(|r| role_label(*r)).collect::<Vec<_>>().join(", ")),
                Cell::new(words(i.status.as_str())),
                Cell::new(i.expires_at.format("%Y-%m-%d %H:%M UTC").to_string()),
            ],
            actions: actions.into_iter().map(|f| f.with_failure(c.failure)).collect(),
        });
    }
    let invite = c
        .post("invite", format!("{HOME}users/invite"), "Send the invitation")
        .field(Field::new("email", "Email", "email").required())
        .field(Field::text("name", "Name").required())
        .field(Field::checkboxes("roles", "Roles", role_choices(Role::ALL)).hint("At least one."))
        .field(Field::select("unit_id", "Unit", unit_choices(&units, "Your own company (default)", |_| true)))
        .with_failure(c.failure);
    Ok(vec![
        Block::default().table(table),
        Block::heading("Invite someone")
            .text("They get a mail with a link that works once; they choose their password there.")
            .form(invite),
        Block::heading("Invitations").table(sent),
    ])
}

async fn funds(c: &Ctx<'_>) -> ApiResult<Vec<Block>> {
    let units = c.state.commands.units(c.actor).await?;
    let funds = queries::list_funds(&c.state.pool, c.actor.company()).await?;
    // Who may hold a fund: the people the command accepts (the admin's own company's, as the
    // users' list), the active ones offered.
    let people = routes::users::users_of(c.state, c.actor).await?;
    let name_of: HashMap<Uuid, &str> = people.iter().map(|u| (u.id, u.name.as_str())).collect();
    let mut table = Table::new(
        "funds",
        "Funds",
        &[
            "Fund",
            "Float",
            "Balance",
            "Reorder level",
            "Minimum balance",
            "Custodian",
            "Auto-replenish",
            "Status",
        ],
        "There are no funds yet.",
    );
    for f in &funds {
        let id = f.id;
        let custodians = std::iter::once(Choice::new("", "Nobody"))
            .chain(
                people
                    .iter()
                    .filter(|u| u.active || f.custodian_id == Some(u.id))
                    .map(|u| Choice::new(u.id.to_string(), format!("{} ({})", u.name, u.email))),
            )
            .collect();
        let settings = c
            .post(format!("settings-{id}"), format!("{HOME}funds/{id}/settings"), "Change")
            .inline()
            .field(
                Field::amount("reorder_level", "Reorder level")
                    .value(f.reorder_level.map(|r| r.to_string()).unwrap_or_default())
                    .hint("Blank: none."),
            )
            .field(Field::amount("minimum_balance", "Minimum balance").value(f.minimum_balance.to_string()))
            .field(
                Field::select("custodian_id", "Custodian", custodians)
                    .value(f.custodian_id.map(|u| u.to_string()).unwrap_or_default()),
            )
            .field(
                Field::new("auto_replenish", "Replenish automatically", "checkbox")
                    .value(if f.auto_replenish { "true" } else { "" }),
            )
            .with_failure(c.failure);
        table.rows.push(Row {
            cells: vec![
                Cell::new(format!("{} ({})", f.name, f.currency)),
                Cell::num(money(&f.currency, f.float)),
                Cell::num(money(&f.currency, f.balance)),
                Cell::num(f.reorder_level.map_or_else(|| "—".into(), |r| money(&f.currency, r))),
                Cell::num(money(&f.currency, f.minimum_balance)),
                Cell::new(f.custodian_id.map_or("—", |u| name_of.get(&u).copied().unwrap_or("Someone else"))),
                Cell::new(if f.auto_replenish { "Yes" } else { "No" }),
                Cell { text: words(&f.status), class: "status" },
            ],
            actions: vec![settings],
        });
    }
    let form = c
        .post("open-fund", format!("{HOME}funds"), "Open the fund")
        .field(Field::text("name", "Name").required())
        .field(Field::text("currency", "Currency").required().value("KES").hint("ISO 4217 code, e.g. KES."))
        .field(Field::amount("float", "Float").required().hint("The starting balance."))
        .field(
            Field::amount("reorder_level", "Reorder level (optional)")
                .hint("Below it a replenishment is due."),
        )
        .field(
            Field::amount("minimum_balance", "Minimum balance (optional)")
                .hint("Below it the fund is critical. Default 0."),
        )
        .field(Field::select(
            "unit_id",
            "Owned by",
            unit_choices(&units, "Your own company (default)", |_| true),
        ))
        .with_failure(c.failure);
    Ok(vec![Block::default().table(table), Block::heading("Open a fund").form(form)])
}

/// A chain of roles as people read it: `Department head → CFO`.
fn chain_text(chain: &[Role]) -> String {
    chain.iter().map(|r| role_label(*r)).collect::<Vec<_>>().join(" → ")
}

/// A chain of roles as a form shows it, to be typed again: `Department head, CFO`.
fn chain_value(chain: &[Role]) -> String {
    chain.iter().map(|r| role_label(*r)).collect::<Vec<_>>().join(", ")
}

/// A chain as typed: roles separated by commas, each by its name or its label (`cfo`, `CFO`,
/// `Department head`); an unknown one is passed on as typed, for the API's parse to refuse.
fn chain_input(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            Role::ALL
                .into_iter()
                .find(|role| role_label(*role).eq_ignore_ascii_case(r))
                .map_or_else(|| r.to_string(), |role| role.as_str().to_string())
        })
        .collect()
}

/// Blank rows a policy form offers below the ones in force (more: save, and the page offers
/// two more).
const SPARE_ROWS: usize = 2;

/// What a chain may hold, from the domain's list of approver roles.
fn chain_hint() -> String {
    format!(
        "Roles in order, separated by commas: {} (a threshold's chain also Treasury).",
        chain_value(&Role::APPROVERS)
    )
}

async fn policy(c: &Ctx<'_>) -> ApiResult<Vec<Block>> {
    let view = routes::policy::policy_of(c.state).await?;
    let mut blocks = vec![];
    let version = if view.version == 0 {
        "The built-in policy (version 0) is in force.".to_string()
    } else {
        format!("Version {} of the policy is in force.", view.version)
    };
    let intro = format!(
        "{version} A requisition's chain is decided when it is submitted: a change applies to those submitted afterwards."
    );
    if !view.tiers.is_empty() {
        let mut tiers = Table::new("tiers", "Tiers", &["Tier", "Amounts", "Approved by, in order"], "");
        let mut above: Option<rust_decimal::Decimal> = None;
        for (i, t) in view.tiers.iter().enumerate() {
            let amounts = match (above, t.up_to) {
                (None, Some(to)) => format!("Up to {}", money("", to)),
                (Some(from), Some(to)) => format!("Above {} up to {}", money("", from), money("", to)),
                (Some(from), None) => format!("Above {}", money("", from)),
                (None, None) => "Any amount".into(),
            };
            above = t.up_to;
            tiers.rows.push(Row {
                cells: vec![
                    Cell::new(format!("Tier {}", i + 1)),
                    Cell::new(amounts),
                    Cell::new(chain_text(&t.chain)),
                ],
                actions: vec![],
            });
        }
        blocks.push(Block::default().text(intro).table(tiers));
    } else {
        blocks.push(Block::default().text(format!("{intro} It is given as thresholds.")));
    }
    let mut thresholds = Table::new(
        "thresholds",
        "Thresholds in force",
        &["Threshold", "Currency", "Origin", "From", "Up to", "Priority", "Approved by, in order", "Also"],
        "",
    );
    for t in &view.thresholds {
        let currency = t.currency.as_ref().map(|c| c.to_string()).unwrap_or_default();
        let also: Vec<&str> =
            [(t.fast_track, "Fast track"), (t.requires_cfo, "+ CFO"), (t.requires_ceo, "+ CEO")]
                .into_iter()
                .filter_map(|(on, what)| on.then_some(what))
                .collect();
        thresholds.rows.push(Row {
            cells: vec![
                Cell::new(t.name.clone()),
                Cell::new(if currency.is_empty() { "Any".to_string() } else { currency.clone() }),
                Cell::new(t.origin.map_or("Any", origin_label)),
                Cell::num(money(&currency, t.min)),
                Cell::num(t.max.map_or_else(|| "—".into(), |m| money(&currency, m))),
                Cell::num(t.priority.to_string()),
                Cell::new(chain_text(&t.chain)),
                Cell::new(also.join(", ")),
            ],
            actions: vec![],
        });
    }
    blocks.push(Block::default().table(thresholds));
    if c.actor.company().is_some() {
        blocks.push(Block::default().text(
            "One policy serves every company: an admin of the whole organisation (of no unit) changes it.",
        ));
        return Ok(blocks);
    }

    let mut tier_rows = vec![];
    let shown = view.tiers.iter().map(Some).chain(std::iter::repeat_n(None, SPARE_ROWS));
    for (i, t) in shown.enumerate() {
        tier_rows.extend(Field::group(
            &format!("tiers[{i}]"),
            &format!("Tier {}", i + 1),
            None,
            vec![
                Field::amount(&format!("tiers[{i}].up_to"), "Up to")
                    .value(t.and_then(|t| t.up_to).map(|a| a.to_string()).unwrap_or_default()),
                Field::text(&format!("tiers[{i}].chain"), "Approved by, in order")
                    .value(t.map(|t| chain_value(&t.chain)).unwrap_or_default()),
            ],
        ));
    }
    let tiers_form = c
        .post("policy-tiers", format!("{HOME}policy/tiers"), "Put these tiers in force")
        .group(
            "tiers",
            "Tiers, smallest amounts first",
            Some(&format!(
                "A tier covers the amounts up to its bound; the last one has none (leave it blank). {} Empty rows are left out.",
                chain_hint()
            )),
            tier_rows,
        )
        .with_failure(c.failure);

    let mut threshold_rows = vec![];
    let shown = view.thresholds.iter().map(Some).chain(std::iter::repeat_n(None, SPARE_ROWS));
    for (i, t) in shown.enumerate() {
        let name = |field: &str| format!("thresholds[{i}].{field}");
        let text = |v: Option<String>| v.unwrap_or_default();
        let origins = std::iter::once(Choice::new("", "Any"))
            .chain(Origin::ALL.into_iter().map(|o| Choice::new(o.as_str(), origin_label(o))))
            .collect();
        let flag = |on: Option<bool>| if on == Some(true) { "true" } else { "" };
        let fields = vec![
            Field::text(&name("name"), "Name").value(text(t.map(|t| t.name.clone()))),
            Field::text(&name("currency"), "Currency")
                .value(text(t.and_then(|t| t.currency.as_ref().map(|c| c.to_string()))))
                .hint("Blank: any."),
            Field::select(&name("origin"), "Origin", origins)
                .value(text(t.and_then(|t| t.origin.map(|o| o.as_str().to_string())))),
            Field::amount(&name("min"), "From").value(text(t.map(|t| t.min.to_string()))),
            Field::amount(&name("max"), "Up to")
                .value(text(t.and_then(|t| t.max.map(|m| m.to_string()))))
                .hint("Blank: no bound."),
            Field::text(&name("priority"), "Priority")
                .value(text(t.map(|t| t.priority.to_string())))
                .hint(format!("Lower wins. Blank: {}.", routes::policy::default_priority())),
            Field::text(&name("chain"), "Approved by, in order")
                .value(text(t.map(|t| chain_value(&t.chain)))),
            Field::new(&name("fast_track"), "Urgent ones may be fast-tracked", "checkbox")
                .value(flag(t.map(|t| t.fast_track))),
            Field::new(&name("requires_cfo"), "Add a CFO step", "checkbox")
                .value(flag(t.map(|t| t.requires_cfo))),
            Field::new(&name("requires_ceo"), "Add a CEO step", "checkbox")
                .value(flag(t.map(|t| t.requires_ceo))),
        ];
        threshold_rows.extend(Field::group(
            &format!("thresholds[{i}]"),
            &format!("Threshold {}", i + 1),
            None,
            fields,
        ));
    }
    let thresholds_form = c
        .post("policy-thresholds", format!("{HOME}policy/thresholds"), "Put these thresholds in force")
        .group(
            "thresholds",
            "Thresholds",
            Some(&format!(
                "Every amount of a currency they cover needs a threshold, for every origin; two of the same priority may not both match one requisition. {} Empty rows are left out.",
                chain_hint()
            )),
            threshold_rows,
        )
        .with_failure(c.failure);
    blocks.push(
        Block::heading("Change the tiers")
            .text(
                "Tiers take the place of thresholds: one chain per amount, whatever the currency or origin.",
            )
            .form(tiers_form),
    );
    blocks.push(
        Block::heading("Change the thresholds")
            .text("Thresholds take the place of tiers: chains by currency, origin and amount.")
            .form(thresholds_form),
    );
    Ok(blocks)
}

fn origin_label(origin: Origin) -> &'static str {
    match origin {
        Origin::Branch => "Branch",
        Origin::Hq => "Head office",
        Origin::Field => "Field",
    }
}

async fn categories(c: &Ctx<'_>) -> ApiResult<Vec<Block>> {
    let list = c.state.commands.categories(c.actor).await?;
    let mut table = Table::new(
        "categories",
        "Expense categories",
        &["Code", "Name", "GL code", "State"],
        "There are no categories yet.",
    );
    for k in &list {
        let mut actions = vec![c
            .post(format!("rename-category-{}", k.id), format!("{HOME}categories/{}/rename", k.id), "Rename")
            .inline()
            .field(Field::text("name", &format!("New name of {}", k.code)).value(k.name.clone()).required())];
        if k.active {
            actions.push(
                c.post(
                    format!("deactivate-category-{}", k.id),
                    format!("{HOME}categories/{}/deactivate", k.id),
                    "Deactivate",
                )
                .inline(),
            );
        }
        let actions = actions.into_iter().map(|f| f.with_failure(c.failure)).collect();
        table.rows.push(Row {
            cells: vec![
                Cell::new(k.code.clone()),
                Cell::new(k.name.clone()),
                Cell::new(k.gl_code.clone()),
                Cell::new(if k.active { "Active" } else { "Inactive" }),
            ],
            actions,
        });
    }
    let form = c
        .post("create-category", format!("{HOME}categories"), "Create the category")
        .field(Field::text("code", "Code").required().hint("Unique in the company; upper case."))
        .field(Field::text("name", "Name").required())
        .field(Field::text("gl_code", "General-ledger code").required())
        .with_failure(c.failure);
    Ok(vec![Block::default().table(table), Block::heading("Create a category").form(form)])
}

async fn budgets(c: &Ctx<'_>, month: Option<&str>) -> ApiResult<Vec<Block>> {
    let month = match month.map(str::trim).filter(|m| !m.is_empty()) {
        Some(text) => Month::parse(text).map_err(|m| ApiError::unprocessable("month", m))?,
        None => Month::of(Utc::now()),
    };
    let units = c.state.commands.units(c.actor).await?;
    let lines = c.state.commands.budget_report(c.actor, month).await?;
    let mut table = Table::new(
        "budgets",
        &format!("Budgets of {month}"),
        &["Scope", "Unit", "Budget", "Paid", "Remaining"],
        &format!("No budget is set for {month}."),
    );
    for b in &lines {
        table.rows.push(Row {
            cells: vec![
                Cell::new(words(&b.scope)),
                Cell::new(format!(
                    "{} {}",
                    b.scope_code.clone().unwrap_or_default(),
                    b.scope_name.clone().unwrap_or_default()
                )),
                Cell::num(money(&b.currency, b.amount)),
                Cell::num(money(&b.currency, b.consumed)),
                Cell::num(money(&b.currency, b.remaining)),
            ],
            actions: vec![],
        });
    }
    let pick = Form::get("budget-month", format!("{HOME}budgets/"), "Show")
        .field(Field::new("month", "Month", "month").value(month.to_string()));
    let scopes = [ScopeKind::Branch, ScopeKind::Department, ScopeKind::CostCentre]
        .into_iter()
        .map(|s| Choice::new(s.as_str(), words(s.as_str())))
        .collect();
    let scoped =
        |u: &UnitView| matches!(u.kind, UnitKind::Branch | UnitKind::Department | UnitKind::CostCentre);
    let form = c
        .post("set-budget", format!("{HOME}budgets"), "Set the budget")
        .field(Field::select("scope", "Scope", scopes).required())
        .field(Field::select("scope_id", "Unit", unit_choices(&units, "Choose a unit", scoped)).required())
        .field(Field::new("month", "Month", "month").required().value(month.to_string()).hint("YYYY-MM"))
        .field(Field::text("currency", "Currency").required().value("KES"))
        .field(Field::amount("amount", "Amount").required())
        .with_failure(c.failure);
    Ok(vec![
        Block::default().form(pick),
        Block::default().table(table),
        Block::heading("Set a budget")
            .text("Setting the same unit, month and currency again replaces its amount.")
            .form(form),
    ])
}

async fn settings(c: &Ctx<'_>) -> ApiResult<Vec<Block>> {
    let view = pettycash_commands::views::SettingsView::new(&c.state.commands.runtime_settings().await?, 0);
    let mut table = Table::new("settings", "Settings in force", &["Setting", "Value"], "");
    for s in &view.settings {
        let value = match &s.value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let form = c
            .post(format!("setting-{}", s.key), format!("{HOME}settings/{}", s.key), "Save")
            .inline()
            .field(
                Field::text("value", &format!("New value of {}", words(&s.key)))
                    .value(value.clone())
                    .required(),
            )
            .with_failure(c.failure);
        table.rows.push(Row { cells: vec![Cell::new(words(&s.key)), Cell::new(value)], actions: vec![form] });
    }
    Ok(vec![Block::default()
        .text(format!(
            "Version {} of the settings. A value is a whole number or true/false; each change is recorded.",
            view.version
        ))
        .table(table)])
}

fn imports(c: &Ctx<'_>, report: Option<ImportReport>) -> Vec<Block> {
    let kinds = ImportKind::ALL.into_iter().map(|k| Choice::new(k.as_str(), words(k.as_str()))).collect();
    let mut form = c
        .post("import", format!("{HOME}imports"), "Import")
        .field(Field::select("what", "What the file holds", kinds).required())
        .field(
            Field::new("file", "File (CSV or Excel)", "file")
                .required()
                .hint("Its first row names the columns (docs/api.md)."),
        )
        .field(Field::new("skip_invalid", "Record the valid rows even when others are rejected", "checkbox"))
        .field(Field::new("dry_run", "Only check the file: record nothing", "checkbox"))
        .with_failure(c.failure);
    form.multipart = true;
    let mut blocks = vec![Block::default().form(form)];
    if let Some(r) = report {
        let verdict = if r.imported {
            format!(
                "Imported: {} created, {} unchanged, {} rejected.",
                r.totals.created, r.totals.unchanged, r.totals.rejected
            )
        } else if r.dry_run {
            format!(
                "Checked, nothing recorded: {} would be created, {} unchanged, {} rejected.",
                r.totals.created, r.totals.unchanged, r.totals.rejected
            )
        } else {
            format!("Nothing was recorded: {} rejected.", r.totals.rejected)
        };
        let mut table = Table::new(
            "import-report",
            "Every row's verdict",
            &["Row", "Verdict", "Errors"],
            "The file has no rows.",
        );
        for row in &r.rows {
            let errors = row
                .errors
                .iter()
                .map(|e| {
                    if e.message.starts_with(&format!("{}:", e.field)) {
                        e.message.clone()
                    } else {
                        format!("{}: {}", e.field, e.message)
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            table.rows.push(Row {
                cells: vec![
                    Cell::num(row.row.to_string()),
                    Cell::new(words(&format!("{:?}", row.status).to_lowercase())),
                    Cell::new(errors),
                ],
                actions: vec![],
            });
        }
        let block = Block::heading(format!("Import of {}", words(&r.what)));
        let block = if r.totals.rejected > 0 { block.alert(verdict) } else { block.text(verdict) };
        blocks.push(block.table(table));
    }
    blocks
}

// ---------------------------------------------------------------------------------------------
// Forms

/// A command's outcome as the page needs it: the position of its last event, its error as the
/// API answers it (`routes::command_error`: a session that changed under it is forgotten).
fn outcome<T>(
    state: &AppState,
    session: &SessionGuard,
    r: Result<Outcome<T>, CommandError>,
) -> ApiResult<i64> {
    r.map(|done| done.position).map_err(|e| routes::command_error(state, session, e))
}

/// `POST /admin/{section}/…`: the forms of the pages (the import's file: [`import`]).
pub async fn act(State(state): State<AppState>, Path(rest): Path<String>, req: Request) -> Response {
    if rest.trim_end_matches('/') == "imports" {
        return import(state, req).await.unwrap_or_else(IntoResponse::into_response);
    }
    let form = match PageForm::<Pairs>::from_request(req, &state).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    dispatch(&state, &rest, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn dispatch(state: &AppState, rest: &str, page: PageForm<Pairs>) -> ApiResult<Response> {
    require_admin(&page.user.actor())?;
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let ctx = page.context();
    let f = &page.form;
    let cmd = &state.commands;
    let s = &page.session;
    let (section, form, result, month): (Section, String, ApiResult<i64>, Option<&str>) = match parts
        .as_slice()
    {
        ["organisation", "units"] => {
            let r = async {
                let kind = f
                    .get("kind")
                    .parse::<UnitKind>()
                    .map_err(|e| ApiError::unprocessable("kind", e.to_string()))?;
                let input = NewUnit {
                    kind,
                    name: f.get("name").into(),
                    code: f.get("code").into(),
                    phone: f.opt("phone").map(String::from),
                    parent_id: f.id("parent_id")?,
                };
                outcome(state, s, cmd.open_unit(&ctx, input).await)
            };
            (Section::Organisation, "open-unit".into(), r.await, None)
        }
        ["organisation", "units", unit, "rename"] => {
            let unit = path_id(unit)?;
            let r = outcome(state, s, cmd.rename_unit(&ctx, unit, f.get("name")).await);
            (Section::Organisation, format!("rename-{unit}"), r, None)
        }
        ["organisation", "units", unit, "close"] => {
            let unit = path_id(unit)?;
            (
                Section::Organisation,
                format!("close-{unit}"),
                outcome(state, s, cmd.close_unit(&ctx, unit).await),
                None,
            )
        }
        ["users", "invite"] => {
            let r = async {
                let roles = f
                    .all("roles")
                    .into_iter()
                    .map(|r| r.parse::<Role>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ApiError::unprocessable("roles", e.to_string()))?;
                let input = NewInvitation {
                    email: f.get("email").into(),
                    name: f.get("name").into(),
                    roles,
                    unit_id: f.id("unit_id")?,
                };
                outcome(state, s, cmd.invite(&ctx, input).await)
            };
            (Section::Users, "invite".into(), r.await, None)
        }
        ["users", user, "roles"] | ["users", user, "roles", "revoke"] => {
            let user = path_id(user)?;
            let grant = parts.len() == 3;
            let r = async {
                let role = f
                    .get("role")
                    .parse::<Role>()
                    .map_err(|e| ApiError::unprocessable("role", e.to_string()))?;
                let r = outcome(state, s, cmd.change_role(&ctx, user, role, grant).await);
                // Their cached sessions carry the old roles (as the API's handlers).
                state.auth.forget_user(user);
                r
            };
            let form = if grant { format!("grant-{user}") } else { format!("revoke-{user}") };
            (Section::Users, form, r.await, None)
        }
        ["users", user, "unit"] => {
            let user = path_id(user)?;
            let r = async {
                let unit = f.id("unit_id")?;
                outcome(state, s, routes::users::assign_unit_of(state, &ctx, user, unit).await)
            };
            (Section::Users, format!("unit-{user}"), r.await, None)
        }
        ["users", user, "deactivate"] => {
            let user = path_id(user)?;
            let r = outcome(state, s, cmd.deactivate_user(&ctx, user, f.get("reason")).await);
            state.auth.forget_user(user);
            (Section::Users, format!("deactivate-{user}"), r, None)
        }
        ["users", user, "reactivate"] => {
            let user = path_id(user)?;
            (
                Section::Users,
                format!("reactivate-{user}"),
                outcome(state, s, cmd.reactivate_user(&ctx, user).await),
                None,
            )
        }
        ["invitations", inv, "resend"] => {
            let inv = path_id(inv)?;
            (
                Section::Users,
                format!("resend-{inv}"),
                outcome(state, s, cmd.resend_invitation(&ctx, inv).await),
                None,
            )
        }
        ["invitations", inv, "revoke"] => {
            let inv = path_id(inv)?;
            let r = outcome(state, s, cmd.revoke_invitation(&ctx, inv, None).await);
            (Section::Users, format!("revoke-invitation-{inv}"), r, None)
        }
        ["funds"] => {
            let r = async {
                let float = f
                    .amount("float")?
                    .ok_or_else(|| ApiError::unprocessable("float", "give the fund's float"))?;
                let settings = FundSettings {
                    reorder_level: f.amount("reorder_level")?,
                    minimum_balance: f.amount("minimum_balance")?.unwrap_or_default(),
                    auto_replenish: true,
                    custodian_id: None,
                };
                let unit = f.id("unit_id")?;
                outcome(
                    state,
                    s,
                    cmd.open_fund_with(&ctx, f.get("name"), f.get("currency"), float, None, unit, settings)
                        .await,
                )
            };
            (Section::Funds, "open-fund".into(), r.await, None)
        }
        ["funds", fund, "settings"] => {
            let fund = path_id(fund)?;
            let r = async {
                let patch = FundSettingsPatch {
                    reorder_level: Some(f.amount("reorder_level")?),
                    minimum_balance: Some(f.amount("minimum_balance")?.unwrap_or_default()),
                    // The box is shown ticked when it is on: unticked, it is sent as nothing.
                    auto_replenish: Some(f.opt("auto_replenish").is_some()),
                    custodian_id: Some(f.id("custodian_id")?),
                };
                outcome(state, s, cmd.change_fund_settings(&ctx, fund, patch).await)
            };
            (Section::Funds, format!("settings-{fund}"), r.await, None)
        }
        ["policy", "tiers"] => {
            let r = async {
                let rows = filled_rows(f, "tiers");
                let mut input = vec![];
                for i in &rows {
                    input.push(TierInput {
                        up_to: f.amount(&format!("tiers[{i}].up_to"))?.map(Amount),
                        chain: chain_input(f.get(&format!("tiers[{i}].chain"))),
                    });
                }
                let tiers = routes::policy::tiers_of(&input).map_err(|e| in_rows(e, "tiers", &rows))?;
                outcome(state, s, cmd.change_policy(&ctx, tiers).await)
            };
            (Section::Policy, "policy-tiers".into(), r.await, None)
        }
        ["policy", "thresholds"] => {
            let r = async {
                let rows = filled_rows(f, "thresholds");
                let mut input = vec![];
                for i in &rows {
                    input.push(threshold_input(f, *i)?);
                }
                let thresholds =
                    routes::policy::thresholds_of(&input).map_err(|e| in_rows(e, "thresholds", &rows))?;
                outcome(state, s, cmd.change_thresholds(&ctx, thresholds).await)
            };
            (Section::Policy, "policy-thresholds".into(), r.await, None)
        }
        ["categories"] => {
            let r = cmd.create_category(&ctx, f.get("code"), f.get("name"), f.get("gl_code")).await;
            (Section::Categories, "create-category".into(), outcome(state, s, r), None)
        }
        ["categories", category, "rename"] => {
            let category = path_id(category)?;
            let r = outcome(state, s, cmd.rename_category(&ctx, category, f.get("name")).await);
            (Section::Categories, format!("rename-category-{category}"), r, None)
        }
        ["categories", category, "deactivate"] => {
            let category = path_id(category)?;
            let r = outcome(state, s, cmd.deactivate_category(&ctx, category).await);
            (Section::Categories, format!("deactivate-category-{category}"), r, None)
        }
        ["budgets"] => {
            let r = async {
                let scope: ScopeKind = f.get("scope").parse().map_err(|_| {
                    ApiError::unprocessable("scope", format!("`scope` is one of {}", ScopeKind::NAMES))
                })?;
                let scope_id = f
                    .id("scope_id")?
                    .ok_or_else(|| ApiError::unprocessable("scope_id", "choose the unit"))?;
                let amount = f
                    .amount("amount")?
                    .ok_or_else(|| ApiError::unprocessable("amount", "give the amount"))?;
                let input = NewBudget {
                    scope,
                    scope_id,
                    month: f.get("month").into(),
                    currency: f.get("currency").into(),
                    amount,
                };
                outcome(state, s, cmd.set_budget(&ctx, input).await)
            };
            (Section::Budgets, "set-budget".into(), r.await, f.opt("month"))
        }
        ["settings", key] => {
            let r = async {
                let key: SettingKey =
                    key.parse().map_err(|e: pettycash_domain::settings::UnknownSetting| {
                        ApiError::unprocessable("key", e.to_string())
                    })?;
                outcome(state, s, cmd.change_setting(&ctx, key, setting_value(f.get("value"))).await)
            };
            (Section::Settings, format!("setting-{key}"), r.await, None)
        }
        _ => return Err(ApiError::not_found("page")),
    };
    match result {
        Ok(position) => {
            // Back to the page, which shows the change once the lists it reads have it.
            let mut query = vec![("min_position", position.to_string())];
            query.extend(month.map(|m| ("month", m.to_string())));
            let query = serde_urlencoded::to_string(query).map_err(ApiError::internal)?;
            Ok(Redirect::to(&format!("{}?{query}", section.href())).into_response())
        }
        Err(e) if shown_beside_the_form(&e) => {
            let user = PageUser { user: page.user.clone(), token: page.token.clone() };
            let extra = Extra {
                failure: Some(Failure::of(&form, &e, f)),
                month: f.opt("month").map(String::from),
                report: None,
            };
            show(state, &user, section, extra, e.status).await
        }
        Err(e) => Err(e),
    }
}

/// The rows of a form's `{prefix}[i].…` fields that hold anything, by their index in the form
/// (empty rows are left out).
fn filled_rows(f: &Pairs, prefix: &str) -> Vec<usize> {
    let rows: std::collections::BTreeSet<usize> =
        f.0.iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .filter_map(|(name, _)| row_of(name, prefix).map(|(i, _)| i))
            .collect();
    rows.into_iter().collect()
}

/// `tiers[2].chain` as `(2, ".chain")` for the prefix `tiers`.
fn row_of<'a>(name: &'a str, prefix: &str) -> Option<(usize, &'a str)> {
    let (index, rest) = name.strip_prefix(prefix)?.strip_prefix('[')?.split_once(']')?;
    Some((index.parse().ok()?, rest))
}

/// An error of the API's parse of the rows given (`tiers[1].chain`, the second row given),
/// naming the row of the form it came from (`tiers[3].chain` when two empty rows came before).
fn in_rows(mut e: ApiError, prefix: &str, rows: &[usize]) -> ApiError {
    if let Some((k, rest)) = e.field.as_deref().and_then(|f| row_of(f, prefix)) {
        if let Some(row) = rows.get(k) {
            e.field = Some(format!("{prefix}[{row}]{rest}"));
        }
    }
    e
}

/// Row `i` of the thresholds' form as the API's body gives a threshold.
fn threshold_input(f: &Pairs, i: usize) -> ApiResult<ThresholdInput> {
    let name = |field: &str| format!("thresholds[{i}].{field}");
    let min = f
        .amount(&name("min"))?
        .ok_or_else(|| ApiError::unprocessable(&name("min"), "give the lowest amount it covers"))?;
    let priority = match f.opt(&name("priority")) {
        None => routes::policy::default_priority(),
        Some(p) => {
            p.parse().map_err(|_| ApiError::unprocessable(&name("priority"), "a whole number, 0 or more"))?
        }
    };
    Ok(ThresholdInput {
        name: f.get(&name("name")).into(),
        currency: f.opt(&name("currency")).map(String::from),
        origin: f.opt(&name("origin")).map(String::from),
        min: Amount(min),
        max: f.amount(&name("max"))?.map(Amount),
        priority,
        chain: chain_input(f.get(&name("chain"))),
        fast_track: f.opt(&name("fast_track")).is_some(),
        requires_cfo: f.opt(&name("requires_cfo")).is_some(),
        requires_ceo: f.opt(&name("requires_ceo")).is_some(),
    })
}

/// An id of the form's address (another text: no such page).
fn path_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::not_found("page"))
}

/// Refusals a person can do something about on the same page (a field, a conflict); the others
/// (403, 404, 5xx) are pages of their own.
fn shown_beside_the_form(e: &ApiError) -> bool {
    matches!(e.status.as_u16(), 400 | 409 | 410 | 413 | 415 | 422)
}

/// A setting's value as typed: `true`/`false`, a whole number, else the text (the setting's own
/// check says what it takes).
fn setting_value(text: &str) -> serde_json::Value {
    match text {
        "true" => true.into(),
        "false" => false.into(),
        t => t.parse::<i64>().map(Into::into).unwrap_or_else(|_| t.into()),
    }
}

/// `POST /admin/imports` (`multipart/form-data`: `csrf_token`, `what`, `file`, `skip_invalid`,
/// `dry_run`): the API's import (`routes::org::import_file`), its report shown on the page.
async fn import(state: AppState, req: Request) -> ApiResult<Response> {
    let (mut parts, body) = req.into_parts();
    let (user, session, meta) = command_parts(&mut parts, &state).await?;
    let token = crate::extract::session_token(&parts.headers).map(|(t, _)| t).unwrap_or_default();
    let mut multipart =
        Multipart::from_request(Request::from_parts(parts, body), &state).await.map_err(|e| {
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", e.body_text())
        })?;
    let mut fields = Pairs::default();
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(part) = multipart.next_field().await.map_err(|e| {
        ApiError::new(e.status(), "invalid_form", format!("the form could not be read: {}", e.body_text()))
    })? {
        let name = part.name().unwrap_or_default().to_string();
        if name == "file" {
            let media = part.content_type().unwrap_or_default().to_ascii_lowercase();
            let bytes =
                part.bytes().await.map_err(|e| ApiError::new(e.status(), "invalid_form", e.body_text()))?;
            file = Some((media, bytes.to_vec()));
        } else {
            let text =
                part.text().await.map_err(|e| ApiError::new(e.status(), "invalid_form", e.body_text()))?;
            fields.0.push((name, text));
        }
    }
    // The token before anything else the form asks for.
    csrf::verify(&state, Binding::Session(&token), fields.opt(csrf::FIELD))?;
    require_admin(&user.actor())?;
    let ctx =
        pettycash_commands::CommandContext::user(user.actor(), meta).with_session(Some(session.clone()));
    let result = async {
        let kind = fields
            .get("what")
            .parse::<ImportKind>()
            .map_err(|e| ApiError::unprocessable("what", e.to_string()))?;
        let (media, bytes) = file
            .filter(|(_, b)| !b.is_empty())
            .ok_or_else(|| ApiError::unprocessable("file", "choose a file"))?;
        let options = ImportOptions {
            skip_invalid: fields.opt("skip_invalid").is_some(),
            dry_run: fields.opt("dry_run").is_some(),
        };
        routes::org::import_file(&state, &ctx, &session, kind, &media, &bytes, options).await
    }
    .await;
    let page = PageUser { user, token };
    match result {
        Ok(report) => {
            let status = if report.totals.rejected > 0 && !report.imported && !report.dry_run {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            show(&state, &page, Section::Imports, Extra { report: Some(report), ..Extra::default() }, status)
                .await
        }
        Err(e) if shown_beside_the_form(&e) => {
            let extra = Extra { failure: Some(Failure::of("import", &e, &fields)), ..Extra::default() };
            show(&state, &page, Section::Imports, extra, e.status).await
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_have_one_address_each() {
        for s in Section::ALL {
            assert_eq!(Section::from_slug(s.slug()), Some(s));
        }
        assert_eq!(Section::Funds.href(), "/admin/funds/");
        assert_eq!(Section::Overview.href(), "/admin/");
        assert_eq!(Section::from_slug("nothing"), None);
    }

    #[test]
    fn setting_values_are_read_as_the_api_takes_them() {
        assert_eq!(setting_value("true"), serde_json::json!(true));
        assert_eq!(setting_value("16"), serde_json::json!(16));
        assert_eq!(setting_value("cfo"), serde_json::json!("cfo"));
    }

    #[test]
    fn a_chain_is_typed_by_role_names_or_labels_and_an_unknown_one_is_passed_on() {
        assert_eq!(chain_input(" Department head, cfo,, FP&A "), ["department_head", "cfo", "fpa"]);
        assert_eq!(chain_input("the boss"), ["the boss"]);
        assert_eq!(chain_value(&[Role::GroupFinanceManager, Role::Cfo]), "Group finance manager, CFO");
        assert_eq!(chain_input(&chain_value(&Role::ALL)).len(), Role::ALL.len(), "labels read back");
    }

    #[test]
    fn empty_rows_are_left_out_and_an_error_names_the_row_of_the_form() {
        let sent = Pairs(vec![
            ("csrf_token".into(), "t".into()),
            ("tiers[0].up_to".into(), " ".into()),
            ("tiers[0].chain".into(), "".into()),
            ("tiers[1].up_to".into(), "500".into()),
            ("tiers[2].chain".into(), "boss".into()),
            ("tiers[10].chain".into(), "cfo".into()),
        ]);
        let rows = filled_rows(&sent, "tiers");
        assert_eq!(rows, [1, 2, 10]);
        let e = in_rows(ApiError::unprocessable("tiers[1].chain", "`boss` is not a role"), "tiers", &rows);
        assert_eq!(e.field.as_deref(), Some("tiers[2].chain"));
        let whole = in_rows(ApiError::unprocessable("tiers", "increasing"), "tiers", &rows);
        assert_eq!(whole.field.as_deref(), Some("tiers"));
        assert_eq!(row_of("thresholds[3].min", "tiers"), None);
    }

    #[test]
    fn snake_case_reads_as_words() {
        assert_eq!(words("cost_centre"), "Cost centre");
        assert_eq!(words("password_min_length"), "Password min length");
    }
}
