//! Delegation while away (issue #13 [workflow]): granting, revoking and listing delegations,
//! and finding those a user received when they decide on a requisition.
//!
//! The rules are the `delegation` aggregate's (`pettycash_domain::delegation`); this module
//! looks up the people it judges (`users`: active, roles, unit) and keeps the `delegations`
//! table (migration 0015) in the same transaction as the events. The approvals inbox
//! (`projections::queries`) and the `notifications` projection read that table; acting on a
//! delegation is decided by the requisition with what [`CommandService::received_delegations`]
//! found.

use crate::context::CommandContext;
use crate::error::CommandError;
use crate::service::{CommandService, Outcome};
use crate::store::{decide, DelegationRow, Loaded, SideWrite, StreamAppend};
use chrono::{DateTime, Utc};
use pettycash_domain::delegation::{Delegation, DelegationCommand, DelegationStatus, Grant, Party, Received};
use pettycash_domain::requisition::RequisitionEvent;
use pettycash_domain::visibility::may_see_user;
use pettycash_domain::{Actor, DomainError, Id, Role};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A delegation as its delegator, its delegate and their admins see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct DelegationView {
    pub id: Uuid,
    /// Whose approvals are delegated.
    pub delegator_id: Uuid,
    /// Who decides on their behalf.
    pub delegate_id: Uuid,
    #[schema(value_type = String, example = "branch_manager")]
    pub role: Role,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The delegator's company (`null`: unscoped).
    pub company_id: Option<Uuid>,
    pub granted_by: Uuid,
    /// `scheduled`, `active`, `ended` (past `ends_at`) or `revoked`, as of the request.
    #[schema(value_type = String, example = "active")]
    pub status: DelegationStatus,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<Uuid>,
    /// Global position of the delegation's latest event (or of the command's last event).
    #[sqlx(rename = "last_position")]
    pub position: i64,
}

impl DelegationView {
    fn of(d: &Delegation, revoked_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        let g = d.grant.clone().expect("a granted delegation");
        Self {
            id: g.delegation_id,
            delegator_id: g.delegator_id,
            delegate_id: g.delegate_id,
            role: g.role,
            starts_at: g.starts_at,
            ends_at: g.ends_at,
            company_id: g.company_id,
            granted_by: g.granted_by,
            status: d.status_at(now),
            revoked_at,
            revoked_by: d.revoked_by,
            position: 0,
        }
    }
}

/// Input of [`CommandService::grant_delegation`].
#[derive(Debug, Clone)]
pub struct NewDelegation {
    /// Whose approvals (default: the caller's; an admin may grant for someone of their
    /// company).
    pub delegator_id: Option<Id>,
    pub delegate_id: Id,
    pub role: Role,
    /// Default: now.
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
}

const VIEW_COLUMNS: &str =
    "id, delegator_id, delegate_id, role, starts_at, ends_at, company_id, granted_by, \
     CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN $1 < starts_at THEN 'scheduled' \
          WHEN $1 < ends_at THEN 'active' ELSE 'ended' END AS status, \
     revoked_at, revoked_by, last_position";

/// How long after its end a delegation still counts among those a user received: old enough
/// ones cannot explain a refusal any more than "not routed to you" does.
const RECENT_DAYS: i64 = 30;

/// A delegation's row, as the table holds it.
#[derive(sqlx::FromRow)]
struct Stored {
    id: Uuid,
    delegator_id: Uuid,
    delegate_id: Uuid,
    role: Role,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    company_id: Option<Uuid>,
    granted_by: Uuid,
    revoked_by: Option<Uuid>,
}

impl From<Stored> for Delegation {
    fn from(s: Stored) -> Self {
        Delegation {
            grant: Some(Grant {
                delegation_id: s.id,
                delegator_id: s.delegator_id,
                delegate_id: s.delegate_id,
                role: s.role,
                starts_at: s.starts_at,
                ends_at: s.ends_at,
                company_id: s.company_id,
                granted_by: s.granted_by,
            }),
            revoked_by: s.revoked_by,
        }
    }
}

fn signed_in(ctx: &CommandContext) -> Result<Actor, CommandError> {
    ctx.actor.clone().ok_or(CommandError::Unauthenticated("this command needs a signed-in user"))
}

impl CommandService {
    /// Delegates the approvals of `input.delegator_id` (default: the caller) in `input.role` to
    /// `input.delegate_id` from `starts_at` (default: now) until `ends_at`. The delegation's
    /// rules decide (`pettycash_domain::delegation`); a person the caller may not see is "no
    /// user" (422 naming the field).
    pub async fn grant_delegation(
        &self,
        ctx: &CommandContext,
        input: NewDelegation,
    ) -> Result<Outcome<DelegationView>, CommandError> {
        let by = signed_in(ctx)?;
        let now = self.clock().now();
        let delegator_id = input.delegator_id.unwrap_or(by.user_id);
        let delegator = self.party(&by, delegator_id, "delegator_id").await?;
        let delegate = self.party(&by, input.delegate_id, "delegate_id").await?;
        let id = Id::now_v7();
        let mut delegation = Delegation::default();
        let command = DelegationCommand::Grant {
            delegation_id: id,
            delegator,
            delegate,
            role: input.role,
            starts_at: input.starts_at.unwrap_or(now),
            ends_at: input.ends_at,
            now,
            by,
        };
        let events = decide(&mut delegation, command).await?;
        let loaded = Loaded { id: id.to_string(), state: Delegation::default(), version: 0 };
        let stream = StreamAppend::of(&loaded, &events, &delegation)?;
        let row = row(&delegation, None);
        let view = DelegationView::of(&delegation, None, now);
        self.commit(ctx, &[stream], vec![row], view, |v, p| v.position = p).await
    }

    /// Revokes a delegation now (its delegator, or an admin of their company). Revoking a
    /// revoked one records nothing. One the caller may not see is not found.
    pub async fn revoke_delegation(
        &self,
        ctx: &CommandContext,
        id: Id,
        reason: Option<&str>,
    ) -> Result<Outcome<DelegationView>, CommandError> {
        let by = &signed_in(ctx)?;
        let visible: Option<(Uuid, Uuid, Option<Uuid>)> =
            sqlx::query_as("SELECT delegator_id, delegate_id, company_id FROM delegations WHERE id = $1")
                .bind(id)
                .fetch_optional(self.store().pool())
                .await?;
        match visible {
            Some((delegator, delegate, company))
                if by.user_id == delegator || by.user_id == delegate || may_see_user(by, company) => {}
            _ => return Err(CommandError::not_found("delegation")),
        }
        self.retrying(|source| async move {
            let loaded = self.load::<Delegation>(id, source).await?;
            let mut delegation = loaded.state.clone();
            let command = DelegationCommand::Revoke { reason: reason.map(Into::into), by: by.clone() };
            let events = decide(&mut delegation, command).await?;
            let stream = StreamAppend::of(&loaded, &events, &delegation)?;
            let now = self.clock().now();
            let (writes, revoked_at) = if events.is_empty() {
                let at: Option<DateTime<Utc>> =
                    sqlx::query_scalar("SELECT revoked_at FROM delegations WHERE id = $1")
                        .bind(id)
                        .fetch_one(self.store().pool())
                        .await?;
                (Vec::new(), at)
            } else {
                (vec![row(&delegation, Some(now))], Some(now))
            };
            let view = DelegationView::of(&delegation, revoked_at, now);
            self.commit(ctx, &[stream], writes, view, |v, p| v.position = p).await
        })
        .await
    }

    /// The delegations `actor` gave or received; for an admin, also every one of their
    /// company. Newest first, at most `limit`, each with its status as of now.
    pub async fn delegations(&self, actor: &Actor, limit: i64) -> Result<Vec<DelegationView>, CommandError> {
        let admin = actor.has(Role::Admin) || actor.has(Role::Auditor);
        Ok(sqlx::query_as(&format!(
            "SELECT {VIEW_COLUMNS} FROM delegations
             WHERE delegator_id = $2 OR delegate_id = $2
                OR ($3 AND company_id IS NOT DISTINCT FROM $4)
             ORDER BY id DESC LIMIT $5"
        ))
        .bind(self.clock().now())
        .bind(actor.user_id)
        .bind(admin)
        .bind(actor.company())
        .bind(limit)
        .fetch_all(self.store().pool())
        .await?)
    }

    /// The delegations the signed-in user received that have not long ended (whatever their
    /// status), and the time now: what a decision on a requisition judges acting on someone's
    /// behalf with. No signed-in user: none.
    pub(crate) async fn received_delegations(&self, ctx: &CommandContext) -> Result<Received, CommandError> {
        match &ctx.actor {
            Some(actor) => self.received_by(actor).await,
            None => Ok(Received::none(self.clock().now())),
        }
    }

    /// The delegations `actor` received (recent ones, whatever their status).
    pub(crate) async fn received_by(&self, actor: &Actor) -> Result<Received, CommandError> {
        let now = self.clock().now();
        let rows: Vec<Stored> = sqlx::query_as(
            "SELECT id, delegator_id, delegate_id, role, starts_at, ends_at, company_id, granted_by, revoked_by
             FROM delegations WHERE delegate_id = $1 AND ends_at > $2 ORDER BY id DESC LIMIT 100",
        )
        .bind(actor.user_id)
        .bind(now - chrono::Duration::days(RECENT_DAYS))
        .fetch_all(self.store().pool())
        .await?;
        Ok(Received { now, delegations: rows.into_iter().map(Delegation::from).collect() })
    }

    /// User `id` as a grant judges them, if `by` may see them (their company's); else "no
    /// user has this id", naming `field`.
    async fn party(&self, by: &Actor, id: Id, field: &'static str) -> Result<Party, CommandError> {
        #[derive(sqlx::FromRow)]
        struct Person {
            active: bool,
            roles: Vec<Role>,
            #[sqlx(flatten)]
            unit: crate::org::UnitColumns,
        }
        let found: Option<Person> = sqlx::query_as(
            "SELECT active, roles, unit_id, company_id, region_id, branch_id, department_id, cost_centre_id
             FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.store().pool())
        .await?;
        let p = match found {
            Some(p) if may_see_user(by, p.unit.company_id) => p,
            _ => return Err(DomainError::invalid(field, "no user has this id").into()),
        };
        Ok(Party { user_id: id, active: p.active, roles: p.roles, unit: p.unit.path() })
    }
}

/// For each decision among `events` taken on someone's behalf, the check that its delegation is
/// still active at `at` when it commits ([`SideWrite::DelegationInForce`]).
pub(crate) fn in_force(events: &[RequisitionEvent], at: DateTime<Utc>) -> Vec<SideWrite> {
    use RequisitionEvent as E;
    events
        .iter()
        .filter_map(|e| match e {
            E::RequisitionApproved { delegation_id, .. }
            | E::RequisitionRejected { delegation_id, .. }
            | E::ChangesRequested { delegation_id, .. } => *delegation_id,
            _ => None,
        })
        .map(|id| SideWrite::DelegationInForce { id, at })
        .collect()
}

/// The `delegations` row of `d`, revoked at `revoked_at` (when it is).
fn row(d: &Delegation, revoked_at: Option<DateTime<Utc>>) -> SideWrite {
    SideWrite::UpsertDelegation(DelegationRow {
        grant: d.grant.clone().expect("a granted delegation"),
        revoked: revoked_at.zip(d.revoked_by),
    })
}
