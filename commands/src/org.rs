//! Organisation commands: opening, renaming and closing units; putting users in units;
//! deactivating and reactivating users. Like every command, each looks up what the decision
//! needs (the parent unit and its path, how many open children and members a unit has, the
//! target user's company), asks the pure aggregate, and appends with the transactional rows
//! (`org_units`, `users`, `sessions`) in the same transaction.
//!
//! Tenancy: an admin acts on the units and users of their own company; an admin of no unit
//! on every unit (they open companies and give them their first members) and on the users
//! of no company (`pettycash_domain::visibility`). Anything else is "not found".

use crate::context::CommandContext;
use crate::error::CommandError;
use crate::service::{user_row, user_view, CommandService};
use crate::store::{count_unit_contents, decide, Loaded, SideWrite, StreamAppend, UnitRow};
use crate::views::UserView;
use crate::Outcome;
use pettycash_domain::organisation::{OrgUnit, ParentUnit, UnitCommand, UnitKind, UnitPath};
use pettycash_domain::user::{AssignedUnit, Requester, User, UserCommand};
use pettycash_domain::visibility::{may_see_unit, may_see_user};
use pettycash_domain::{DomainError, Id, Role};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A unit as the `org_units` table holds it, and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct UnitView {
    pub id: Uuid,
    #[schema(value_type = String, example = "branch")]
    pub kind: UnitKind,
    #[schema(example = "Nairobi CBD")]
    pub name: String,
    /// Unique within its company (company codes across companies); upper case.
    #[schema(example = "NBI-01")]
    pub code: String,
    pub phone: Option<String>,
    /// The unit it hangs under (`null` for a company).
    pub parent_id: Option<Uuid>,
    /// Its path: the unit at each level above it, itself at its own level.
    pub company_id: Uuid,
    pub region_id: Option<Uuid>,
    pub branch_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    pub cost_centre_id: Option<Uuid>,
    pub closed: bool,
    /// Global position of the unit's latest event (or of the command's last event).
    #[sqlx(rename = "last_position")]
    pub position: i64,
}

pub(crate) const UNIT_COLUMNS: &str =
    "id, kind, name, code, phone, parent_id, company_id, region_id, branch_id, \
     department_id, cost_centre_id, closed, last_position";

impl UnitView {
    /// The unit's path.
    pub fn path(&self) -> UnitPath {
        UnitPath {
            unit_id: self.id,
            company: self.company_id,
            region: self.region_id,
            branch: self.branch_id,
            department: self.department_id,
            cost_centre: self.cost_centre_id,
        }
    }

    fn of(unit: &OrgUnit, position: i64) -> Option<Self> {
        let (id, kind, path) = (unit.id?, unit.kind?, unit.path?);
        Some(Self {
            id,
            kind,
            name: unit.name.clone(),
            code: unit.code.clone(),
            phone: unit.phone.clone(),
            parent_id: unit.parent_id,
            company_id: path.company,
            region_id: path.region,
            branch_id: path.branch,
            department_id: path.department,
            cost_centre_id: path.cost_centre,
            closed: unit.closed,
            position,
        })
    }
}

/// The `org_units` row of `unit`, as of its latest event.
pub(crate) fn unit_row(unit: &OrgUnit) -> Option<SideWrite> {
    Some(SideWrite::UpsertUnit(UnitRow {
        kind: unit.kind?,
        name: unit.name.clone(),
        code: unit.code.clone(),
        phone: unit.phone.clone(),
        parent_id: unit.parent_id,
        path: unit.path?,
        closed: unit.closed,
    }))
}

/// Input of `open_unit`.
#[derive(Debug, Clone)]
pub struct NewUnit {
    pub kind: UnitKind,
    pub name: String,
    pub code: String,
    pub phone: Option<String>,
    pub parent_id: Option<Id>,
}

/// Who asks for an organisation change: an admin (refused at once otherwise, before anything
/// is looked up), or the operator.
pub(crate) fn admin_requester(ctx: &CommandContext) -> Result<Requester, CommandError> {
    match &ctx.actor {
        None => Ok(Requester::Operator),
        Some(actor) if actor.has(Role::Admin) => Ok(Requester::Admin(actor.clone())),
        Some(_) => Err(DomainError::MissingRole { required: Role::Admin }.into()),
    }
}

/// Refuses a signed-in user who is no admin (`MissingRole`), before anything is looked up.
pub fn check_admin(ctx: &CommandContext) -> Result<(), CommandError> {
    admin_requester(ctx).map(|_| ())
}

/// Whether the requester may see a unit of `company`.
fn sees_unit(by: &Requester, company: Id) -> bool {
    match by {
        Requester::Operator => true,
        Requester::Admin(actor) => may_see_unit(actor, company),
    }
}

/// Whether the requester may see (and manage) a user of `company`.
fn sees_user(by: &Requester, company: Option<Id>) -> bool {
    match by {
        Requester::Operator => true,
        Requester::Admin(actor) => may_see_user(actor, company),
    }
}

impl CommandService {
    /// The unit `id` as the `org_units` table holds it.
    pub async fn unit(&self, id: Id) -> Result<Option<UnitView>, CommandError> {
        Ok(sqlx::query_as(&format!("SELECT {UNIT_COLUMNS} FROM org_units WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.store().pool())
            .await?)
    }

    /// The units `actor` may see (their company's; every unit for an admin of no unit), each
    /// company followed by its units, parents before children.
    pub async fn units(&self, actor: &pettycash_domain::Actor) -> Result<Vec<UnitView>, CommandError> {
        self.units_seen_by(&Requester::Admin(actor.clone())).await
    }

    /// The units `by` may see (the operator: every unit), in the order of [`Self::units`].
    pub(crate) async fn units_seen_by(&self, by: &Requester) -> Result<Vec<UnitView>, CommandError> {
        let (company, everything) = match by {
            Requester::Operator => (None, true),
            Requester::Admin(actor) => (actor.company(), actor.company().is_none() && actor.has(Role::Admin)),
        };
        if company.is_none() && !everything {
            return Ok(Vec::new());
        }
        // The codes along its path sort a unit right after its parent, before its parent's
        // next sibling.
        let columns = UNIT_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ");
        let rows: Vec<UnitView> = sqlx::query_as(&format!(
            "SELECT {columns} FROM org_units u
             JOIN org_units c ON c.id = u.company_id
             LEFT JOIN org_units r ON r.id = u.region_id
             LEFT JOIN org_units b ON b.id = u.branch_id
             LEFT JOIN org_units d ON d.id = u.department_id
             WHERE $1 OR u.company_id = $2
             ORDER BY array_remove(ARRAY[c.code, r.code, b.code, d.code,
                                         CASE WHEN u.kind IN ('cost_centre', 'position') THEN u.code END], NULL),
                      u.kind"
        ))
        .bind(everything)
        .bind(company)
        .fetch_all(self.store().pool())
        .await?;
        Ok(rows)
    }

    /// A unit `by` may see; others are "not found" (`field` names the body field that gave the
    /// id, if one did: then it is a 422 on that field, else a 404).
    pub(crate) async fn visible_unit(
        &self,
        by: &Requester,
        id: Id,
        field: Option<&'static str>,
    ) -> Result<UnitView, CommandError> {
        match self.unit(id).await?.filter(|u| sees_unit(by, u.company_id)) {
            Some(unit) => Ok(unit),
            None => Err(match field {
                Some(field) => DomainError::invalid(field, "no unit has this id").into(),
                None => CommandError::not_found("unit"),
            }),
        }
    }

    /// The company of user `user_id` (`Some(None)`: of none); `None` when there is no such
    /// user.
    pub(crate) async fn user_company(&self, user_id: Id) -> Result<Option<Option<Id>>, CommandError> {
        Ok(sqlx::query_scalar("SELECT company_id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(self.store().pool())
            .await?)
    }

    /// Refuses (as "not found") a user `by` may not manage: of another company.
    pub(crate) async fn check_user_visible(&self, by: &Requester, user_id: Id) -> Result<(), CommandError> {
        match self.user_company(user_id).await? {
            Some(company) if sees_user(by, company) => Ok(()),
            _ => Err(CommandError::not_found("user")),
        }
    }

    /// Opens a unit under `parent_id` (a company: under none).
    pub async fn open_unit(
        &self,
        ctx: &CommandContext,
        input: NewUnit,
    ) -> Result<Outcome<UnitView>, CommandError> {
        let by = admin_requester(ctx)?;
        let parent = match input.parent_id {
            None => None,
            Some(id) => {
                let row = self.visible_unit(&by, id, Some("parent_id")).await?;
                Some(ParentUnit { kind: row.kind, path: row.path(), closed: row.closed })
            }
        };
        let (events, unit) = decide_open(&by, input.clone(), parent).await?;
        let loaded =
            Loaded { id: unit.id.unwrap_or_default().to_string(), state: OrgUnit::default(), version: 0 };
        let stream = StreamAppend::of(&loaded, &events, &unit)?;
        let mut writes: Vec<SideWrite> =
            input.parent_id.map(|id| SideWrite::UnitIsOpen { unit_id: id }).into_iter().collect();
        writes.extend(unit_row(&unit));
        let view = UnitView::of(&unit, 0).ok_or(CommandError::not_found("unit"))?;
        self.commit(ctx, &[stream], writes, view, |v, p| v.position = p).await
    }

    /// Renames a unit (recording nothing when the name is the same).
    pub async fn rename_unit(
        &self,
        ctx: &CommandContext,
        id: Id,
        name: &str,
    ) -> Result<Outcome<UnitView>, CommandError> {
        let by = admin_requester(ctx)?;
        self.visible_unit(&by, id, None).await?;
        self.on_unit(ctx, id, |_| async { Ok(UnitCommand::Rename { name: name.into(), by: by.clone() }) })
            .await
    }

    /// Closes a unit that has no open units under it and no active members.
    pub async fn close_unit(&self, ctx: &CommandContext, id: Id) -> Result<Outcome<UnitView>, CommandError> {
        let by = admin_requester(ctx)?;
        self.visible_unit(&by, id, None).await?;
        let pool = self.store().pool();
        self.on_unit(ctx, id, |_| async {
            let (open_children, members) = count_unit_contents(pool, id).await?;
            Ok(UnitCommand::Close { open_children, members, by: by.clone() })
        })
        .await
    }

    /// Runs one command on one unit, with its row; closing also checks, under a lock, that
    /// the unit is still empty.
    async fn on_unit<F, Fut>(
        &self,
        ctx: &CommandContext,
        id: Id,
        make: F,
    ) -> Result<Outcome<UnitView>, CommandError>
    where
        F: Fn(&OrgUnit) -> Fut,
        Fut: std::future::Future<Output = Result<UnitCommand, CommandError>>,
    {
        let make = &make;
        self.retrying(|source| async move {
            let loaded = self.load::<OrgUnit>(id, source).await?;
            let mut unit = loaded.state.clone();
            let command = make(&unit).await?;
            let closing = matches!(command, UnitCommand::Close { .. });
            let events = decide(&mut unit, command).await?;
            let stream = StreamAppend::of(&loaded, &events, &unit)?;
            let mut writes = Vec::new();
            if !events.is_empty() {
                if closing {
                    writes.push(SideWrite::UnitIsEmpty { unit_id: id });
                }
                writes.extend(unit_row(&unit));
            }
            let view = UnitView::of(&unit, 0).ok_or(CommandError::not_found("unit"))?;
            self.commit(ctx, &[stream], writes, view, |v, p| v.position = p).await
        })
        .await
    }

    /// Puts a user in a unit (`None`: in none). The user's sessions carry their unit: the API
    /// drops this process's cached ones, and commands decided on the old unit are refused at
    /// their append (`SessionGuard::unit_id`).
    pub async fn assign_unit(
        &self,
        ctx: &CommandContext,
        user_id: Id,
        unit_id: Option<Id>,
    ) -> Result<Outcome<UserView>, CommandError> {
        let by = admin_requester(ctx)?;
        self.check_user_visible(&by, user_id).await?;
        let unit = match unit_id {
            None => None,
            Some(id) => {
                let row = self.visible_unit(&by, id, Some("unit_id")).await?;
                Some(AssignedUnit { path: row.path(), closed: row.closed })
            }
        };
        let (by, unit) = (&by, &unit);
        self.retrying(|source| async move {
            let loaded = self.load::<User>(user_id, source).await?;
            let mut user = loaded.state.clone();
            let command = UserCommand::AssignUnit { unit: unit.clone(), by: by.clone() };
            let events = decide(&mut user, command).await?;
            let stream = StreamAppend::of(&loaded, &events, &user)?;
            let writes = if events.is_empty() { Vec::new() } else { unit_writes(user_id, unit.as_ref()) };
            self.commit(ctx, &[stream], writes, user_view(user_id, &user), |v, p| v.position = p).await
        })
        .await
    }

    /// Deactivates a user: every session of theirs ends in the same transaction (the API also
    /// drops this process's cached ones); their history stays. The last active admin cannot be
    /// deactivated.
    pub async fn deactivate_user(
        &self,
        ctx: &CommandContext,
        user_id: Id,
        reason: &str,
    ) -> Result<Outcome<UserView>, CommandError> {
        let by = admin_requester(ctx)?;
        self.check_user_visible(&by, user_id).await?;
        let by = &by;
        self.retrying(|source| async move {
            let loaded = self.load::<User>(user_id, source).await?;
            let mut user = loaded.state.clone();
            let command = UserCommand::Deactivate { reason: reason.into(), by: by.clone() };
            let events = decide(&mut user, command).await?;
            let stream = StreamAppend::of(&loaded, &events, &user)?;
            let mut writes = Vec::new();
            if !events.is_empty() {
                writes.push(user_row(user_id, &user));
                writes.push(SideWrite::EndSessions { user_id });
                if user.roles.contains(&Role::Admin) {
                    writes.push(SideWrite::KeepAnAdmin);
                }
            }
            self.commit(ctx, &[stream], writes, user_view(user_id, &user), |v, p| v.position = p).await
        })
        .await
    }

    /// Reactivates a user, in the unit they were in (which must still be open).
    pub async fn reactivate_user(
        &self,
        ctx: &CommandContext,
        user_id: Id,
    ) -> Result<Outcome<UserView>, CommandError> {
        let by = admin_requester(ctx)?;
        self.check_user_visible(&by, user_id).await?;
        let by = &by;
        self.retrying(|source| async move {
            let loaded = self.load::<User>(user_id, source).await?;
            let mut user = loaded.state.clone();
            let unit_closed = match user.unit_id {
                Some(unit) => self.unit(unit).await?.is_none_or(|u| u.closed),
                None => false,
            };
            let events = decide(&mut user, UserCommand::Reactivate { unit_closed, by: by.clone() }).await?;
            let stream = StreamAppend::of(&loaded, &events, &user)?;
            let mut writes = Vec::new();
            if !events.is_empty() {
                writes.extend(user.unit_id.map(|unit_id| SideWrite::UnitIsOpen { unit_id }));
                writes.push(user_row(user_id, &user));
            }
            self.commit(ctx, &[stream], writes, user_view(user_id, &user), |v, p| v.position = p).await
        })
        .await
    }

    /// The unit a new user registered by `by` goes to: `unit_id` when given (a unit `by` may
    /// see), else an admin's company (at the company level); none for an admin of no unit or
    /// the operator.
    pub(crate) async fn unit_for_new_user(
        &self,
        by: &Requester,
        unit_id: Option<Id>,
    ) -> Result<Option<AssignedUnit>, CommandError> {
        let row = self.unit_row_for_new_user(by, unit_id).await?;
        Ok(row.map(|row| AssignedUnit { path: row.path(), closed: row.closed }))
    }

    /// [`Self::unit_for_new_user`], as the `org_units` table holds it (with its name).
    pub(crate) async fn unit_row_for_new_user(
        &self,
        by: &Requester,
        unit_id: Option<Id>,
    ) -> Result<Option<UnitView>, CommandError> {
        if let Some(id) = unit_id {
            return Ok(Some(self.visible_unit(by, id, Some("unit_id")).await?));
        }
        let company = match by {
            Requester::Admin(actor) => actor.company(),
            Requester::Operator => None,
        };
        match company {
            None => Ok(None),
            Some(company) => Ok(Some(self.unit(company).await?.ok_or(CommandError::not_found("unit"))?)),
        }
    }
}

/// Decides opening a unit: the events and the unit they lead to.
pub(crate) async fn decide_open(
    by: &Requester,
    input: NewUnit,
    parent: Option<ParentUnit>,
) -> Result<(Vec<pettycash_domain::organisation::UnitEvent>, OrgUnit), DomainError> {
    let mut unit = OrgUnit::default();
    let command = UnitCommand::Open {
        unit_id: Id::now_v7(),
        kind: input.kind,
        name: input.name,
        code: input.code,
        phone: input.phone,
        parent,
        by: by.clone(),
    };
    let events = decide(&mut unit, command).await?;
    Ok((events, unit))
}

/// A user's unit as the `users` table holds it (the columns of its path), read with
/// `#[sqlx(flatten)]` beside the user's other columns.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub(crate) struct UnitColumns {
    pub unit_id: Option<Id>,
    pub company_id: Option<Id>,
    pub region_id: Option<Id>,
    pub branch_id: Option<Id>,
    pub department_id: Option<Id>,
    pub cost_centre_id: Option<Id>,
}

impl UnitColumns {
    /// The path (`None`: a user of no unit).
    pub(crate) fn path(&self) -> Option<UnitPath> {
        match (self.unit_id, self.company_id) {
            (Some(unit_id), Some(company)) => Some(UnitPath {
                unit_id,
                company,
                region: self.region_id,
                branch: self.branch_id,
                department: self.department_id,
                cost_centre: self.cost_centre_id,
            }),
            _ => None,
        }
    }
}

/// The rows written when a user is put in `unit`: its row is checked open (and share-locked
/// against closing) and the user's unit and path are set.
pub(crate) fn unit_writes(user_id: Id, unit: Option<&AssignedUnit>) -> Vec<SideWrite> {
    let mut writes: Vec<SideWrite> =
        unit.map(|u| SideWrite::UnitIsOpen { unit_id: u.path.unit_id }).into_iter().collect();
    writes.push(SideWrite::SetUserUnit { user_id, unit: unit.map(|u| u.path) });
    writes
}
