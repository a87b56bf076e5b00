//! `verify`: the business-rule half of the auditor's check (issue [replay]).
//!
//! Replays every event once, in the store's commit-safe global order `(transaction_id,
//! global_position)`, as a stream; state is a few small fields per aggregate (running
//! balances, last sequences, users' roles, each requisition's current round), so memory grows
//! with the number of aggregates, not of events. Events are upcast, then decoded with the
//! domain types. Rules checked (rule names as printed):
//!
//! - `sequence_gap`: a stream's sequences are not 1..n (a missing event, e.g. deleted; reported
//!   at the next event of that stream. A deleted *last* event of a stream is not detectable
//!   here: that needs the hash chain).
//! - `negative_balance`, `balance_mismatch`: a fund's running balance (float − disbursements)
//!   goes below zero, or a recorded `balance_after` disagrees with it.
//! - `double_payment`: a second `RequisitionPaid` for a requisition, or a second
//!   `CashDisbursed` for one requisition id.
//! - `approved_by_requester`, `paid_by_requester`, `paid_by_approver` (any round).
//! - `approval_out_of_order`: an approval whose step/role is not the next one of the chain
//!   recorded by the latest `RequisitionSubmitted` (or with no submission at all).
//! - `acted_on_closed`: an approval or payment of a requisition that was rejected, cancelled,
//!   sent back for changes (and not resubmitted) or already paid.
//! - `approved_twice_in_a_round`: one person approving two steps of the same round.
//! - `approver_lacks_role`, `payer_lacks_role`: the user did not hold the role (approval role,
//!   `treasury`) at that position, per `UserRegistered`/`RoleGranted`/`RoleRevoked` so far.
//! - `incomplete_approval`: paid without every approval of its current chain.
//! - `unmatched_payment`, `payment_mismatch`: a `RequisitionPaid` without a `CashDisbursed`
//!   of the same `payment_id` (or vice versa), or the two disagree on amount, fund or
//!   requisition. Checked at the end.
//! - `chain_not_from_policy`: a submission's recorded chain is not the one the approval policy
//!   in force at that position gives for the requisition's currency, origin and amount and its
//!   requester's roles then (thresholds, "requires CFO/CEO", a treasury requester's chain).
//! - `route_mismatch`: a routed submission's threshold or the people recorded for its steps are
//!   not those routing gives with the users (roles, units, sponsors, active) and the policy at
//!   that position (`domain::routing::route`; compared as sets per step).
//! - `approver_not_eligible`: an approval by someone the step was not routed to.
//! - `expired_early`, `reminded_early`, `escalated_early`: the scheduler's events recorded
//!   before the deadline they act on (changes requested, a step's reminder or escalation time),
//!   or an expiry that is not of the recorded deadline.
//! - `submitted_amount_mismatch`: a submission records an amount other than the requisition's
//!   (as created and edited so far).
//! - `paid_amount_mismatch`: a payment of an amount other than the one approved (the latest
//!   submission's).
//! - `not_by_requester`: an edit (its metadata's acting user) or a cancellation by someone other
//!   than the requester; `acted_on_closed` also covers an edit outside draft and changes
//!   requested, and a cancellation of a requisition already final.
//! - `decision_not_allowed`: a rejection, change request or urgency decision by someone the
//!   step it waits for was not routed to, who lacked its role, or its requester (or an urgency
//!   decided that was not declared or already decided; a fast-track reverted that was not).
//! - `fast_track_not_allowed`: an urgency recorded as fast-trackable, or fast-tracked, on a
//!   threshold that does not allow it.
//! - `override_not_allowed`: an emergency override by someone not an active admin, by the
//!   requester, by someone who approved it or was sponsored by a participant, or of a
//!   requisition not pending approval. The overriding admin counts as an approver for
//!   `paid_by_approver`; an overridden requisition is not `incomplete_approval`.
//! - `undecodable_event`: the payload does not decode as its aggregate's event type.
//! - `delegation_not_allowed`: a delegation granted to someone who was not an active holder of
//!   its role in the delegator's scope (same branch, department or region for the roles that
//!   reach one, same company otherwise), or by a delegator who did not hold it, or to themselves.
//! - `delegation_not_held`: an approval, rejection or change request recorded on someone's
//!   behalf (`on_behalf_of`) without a delegation from that person to the decider, for the
//!   step's role, unrevoked and covering the time it was recorded. For an approval, the person
//!   it was on behalf of must be the one the step was routed to (`approver_not_eligible`
//!   otherwise).
//! - `delegate_already_approved`: a decision on someone's behalf by a delegate who approved the
//!   requisition before (any round).
//! - Payments through a provider (`reservation_twice`, `reservation_not_open`,
//!   `reservation_mismatch`, `overdrawn_by_reservation`, `provider_payment_without_start`,
//!   `payment_started_twice`): module `reservations`.
//!
//! Tamper evidence (see `projections/src/seal.rs`):
//!
//! - `hash_mismatch`: the stored hash is not the hash of the event's content chained to its
//!   stream predecessor's stored hash: its payload, metadata, type, version, aggregate,
//!   sequence, position or time was changed (reported at that event only).
//! - `unhashed_event`: an event without a hash after hashed ones (written with the hashing
//!   trigger disabled). Events recorded before hashing existed come first and are counted.
//! - The global chain against the seals: module [`crate::integrity`].
//!
//! Authentication (issue [security], `pettycash_domain::integrity`):
//!
//! - `event_unauthenticated`: the event's MAC does not verify with the key: the service did
//!   not write it (a row inserted into the database directly, e.g. a made-up approval), or it
//!   was changed, or written under another key. Needs the key.
//! - `event_unsigned`: no MAC, after events began to be authenticated
//!   (`event_authentication.unsigned_through`): written past the store's constraint. Events
//!   at or below that position predate authentication and are counted.
//! - `authentication_boundary_moved`: an authenticated event at or below that position: the
//!   boundary was raised to pass unsigned events off as old ones.
//! - `approved_by_sponsored`, `paid_by_sponsored`: approved or paid by a user whom the
//!   requester or an approver of the requisition had registered or granted a role.
//! - Fund operations (replenishment, counts and variances, period close, closing): module
//!   `fund_ops` (`variance_mismatch`, `variance_adjusted_twice`, `variance_approved_by_counter`,
//!   `movement_in_closed_period`, `replenishment_funded_twice`, `replenishment_not_approved`).

mod budgets;
mod fund_ops;
mod receipts;
mod reconcile;
mod reservations;
mod review;

use crate::integrity::{hex, SealTracker};
use crate::{EventRow, Failure, HashedRow, HistoryFormat, Progress};
use futures::TryStreamExt;
use pettycash_commands::receipts::ReceiptStore;
use pettycash_domain::advance::AdvanceEvent;
use pettycash_domain::delegation::{same_scope, Delegation, DelegationEvent};
use pettycash_domain::fund::FundEvent;
use pettycash_domain::integrity::{Authenticity, EventKey};
use pettycash_domain::organisation::{reach_level, Origin, UnitEvent, UnitPath};
use pettycash_domain::policy::{ApprovalPolicy, PolicyEvent};
use pettycash_domain::requisition::StepDue;
use pettycash_domain::requisition::{RequisitionEvent, Status};
use pettycash_domain::role::Role;
use pettycash_domain::routing::{next_step, waiting_step, Directory, EscalatedTo, EscalationReason, Holder};
use pettycash_domain::user::UserEvent;
use pettycash_domain::Actor;
use pettycash_domain::Currency;
use pettycash_projections::event::StoredDigest;
use pettycash_projections::reader::{self, Filter, Selection};
use pettycash_projections::seal::{Seal, SealKey, SEAL_COLUMNS};
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use uuid::Uuid;

/// What `verify` could not check without the seal key.
pub const NO_KEY: &str =
    "seal MACs: no key given (SEAL_KEY, SECRET_KEY or --seal-key-file); seals were matched but not authenticated";
/// ... nor the events' MACs.
pub const NO_EVENT_KEY: &str =
    "event MACs: no key given; events were not authenticated (only events without any MAC were found)";
/// What `verify` could not check on a store without migration 0006.
pub const NO_BOUNDARY: &str =
    "event MACs: the store predates event authentication (no event_authentication table)";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub rule: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VIOLATION position={} aggregate={}/{} rule={}: {}",
            self.position, self.aggregate_type, self.aggregate_id, self.rule, self.detail
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FundBalance {
    pub currency: String,
    pub balance: Decimal,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub events: u64,
    pub first_position: Option<i64>,
    pub last_position: Option<i64>,
    /// aggregate_type → number of aggregates.
    pub aggregates: BTreeMap<String, u64>,
    pub funds: u64,
    /// Final balance of each fund (computed from the amounts), by fund id.
    pub balances: BTreeMap<Uuid, FundBalance>,
    /// currency → sum of the final balances.
    pub totals: BTreeMap<String, Decimal>,
    /// SHA-256 (hex) over `fund_id|balance\n` for each fund in id order.
    pub ledger_digest: String,
    /// Events carrying a hash / recorded before hashing existed.
    pub hashed_events: u64,
    pub unhashed_events: u64,
    /// Events whose MAC verified / recorded before events were authenticated.
    pub authenticated_events: u64,
    pub unsigned_events: u64,
    /// Seals read, and the last position they cover.
    pub seals: u64,
    pub sealed_through: Option<i64>,
    /// Events after the last seal (not protected by a seal yet).
    pub unsealed_events: u64,
    /// The chain (hex) over every event hash in global order, as recomputed.
    pub chain_hash: String,
    /// The id of the key seals were authenticated with, when one was given.
    pub seal_key_id: Option<String>,
    pub violations: u64,
    /// What could not be checked (empty when everything was).
    pub not_checked: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub summary: Summary,
    pub violations: Vec<Violation>,
}

#[derive(Default, Clone, Copy)]
struct StreamV {
    sequence: i64,
    hash: Option<[u8; 32]>,
}

#[derive(Default)]
struct FundV {
    currency: String,
    balance: Decimal,
}

#[derive(Default)]
struct ReqV {
    requester: Option<Uuid>,
    origin: Option<Origin>,
    unit: Option<UnitPath>,
    /// Who may act at each step of the latest submission (`None`: not recorded).
    eligible: Option<Vec<Vec<Uuid>>>,
    /// The chain index after the last approval of the round.
    step_from: usize,
    /// Steps of the round escalated to the admins.
    to_admin: Vec<usize>,
    /// The deadline of the changes requested (while they are).
    changes_deadline: Option<chrono::DateTime<chrono::Utc>>,
    /// The current step's deadlines.
    due: Option<StepDue>,
    currency: Option<Currency>,
    /// The amount as created and edited so far.
    amount: Decimal,
    /// The amount of the latest submission: what the approvals were given for.
    submitted_amount: Option<Decimal>,
    /// The chain of the latest submission; `None` before any.
    chain: Option<Vec<Role>>,
    /// Approvals of the current round: (step, role, approver).
    approvals: Vec<(usize, Role, Uuid)>,
    /// Status as the events left it.
    status: Status,
    /// Everyone who ever approved it, any round (and the admin who overrode its approval).
    approvers: Vec<Uuid>,
    paid: bool,
    /// The threshold the latest submission fell under.
    threshold: Option<String>,
    /// The latest submission was marked urgent: whether a fast-track was allowed, and whether
    /// the urgency still waits for a decision.
    urgency: Option<(bool, bool)>,
    /// Confirmed urgency shortened the chain to its final step.
    fast_tracked: bool,
    /// Approved by an admin's emergency override.
    overridden: bool,
    /// Possible duplicates and FP&A's review (`review`).
    checks: review::ChecksV,
    /// Receipts attached so far (`receipts`).
    receipts: u32,
    /// Its payment and reconciliation (`reconcile`).
    reconcile: reconcile::ReconcileV,
}

impl ReqV {
    /// The step the chain waits for next (`routing::waiting_step`), whatever the status.
    fn next(&self) -> Option<usize> {
        let chain = self.chain.as_ref()?;
        waiting_step(chain.len(), self.eligible.as_deref(), self.step_from, self.fast_tracked)
    }

    /// The step the requisition waits for, while pending approval.
    fn current(&self) -> Option<usize> {
        self.next().filter(|_| self.status == Status::PendingApproval)
    }
}

/// Where one side of a payment was seen.
#[derive(Clone)]
struct Side {
    position: i64,
    aggregate_type: &'static str,
    aggregate_id: String,
    amount: Decimal,
    fund_id: Uuid,
    requisition_id: Uuid,
}

#[derive(Default)]
struct PaymentV {
    paid: Option<Side>,
    disbursed: Option<Side>,
}

/// The streaming checker: feed it events in global order, then `finish`.
#[derive(Default)]
pub struct Verifier {
    events: u64,
    first_position: Option<i64>,
    last_position: Option<i64>,
    /// Per stream: kept small (the type as an index into `kinds`, a UUID id as 16 bytes), as
    /// there is one per aggregate. Ids that are not UUIDs go to `other_streams`.
    streams: HashMap<(u8, u128), StreamV>,
    other_streams: HashMap<(String, String), StreamV>,
    kinds: Vec<String>,
    hashed: u64,
    unhashed: u64,
    funds: BTreeMap<Uuid, FundV>,
    users: HashMap<Uuid, HashSet<Role>>,
    /// Users deactivated (and not reactivated since): they act in no role.
    deactivated: HashSet<Uuid>,
    /// Each user's unit, and each unit's path: what routing reads.
    user_units: HashMap<Uuid, Uuid>,
    units: HashMap<Uuid, UnitPath>,
    /// Holders of each role (any company), to find a submission's directory without scanning
    /// every user.
    by_role: HashMap<Role, HashSet<Uuid>>,
    /// Holders of a role in a company and (for roles that reach a unit) that unit, as
    /// `directory` gives them: built once per key, emptied by every user or unit event (rare
    /// beside submissions), so a submission does not rebuild hundreds of holders.
    directory_cache: HashMap<(Role, Option<Uuid>, Option<Uuid>), Vec<Holder>>,
    /// Who registered each user or granted them a role (only users that have any).
    sponsors: HashMap<Uuid, Vec<Uuid>>,
    /// The key events are authenticated with (`None`: only missing MACs are found).
    event_key: Option<EventKey>,
    /// `event_authentication.unsigned_through` (`None`: the store predates authentication).
    unsigned_through: Option<i64>,
    authenticated: u64,
    unsigned: u64,
    requisitions: HashMap<Uuid, ReqV>,
    /// The approval policy as its events left it so far.
    policy: ApprovalPolicy,
    /// Requisition ids that have had a `CashDisbursed`.
    disbursed: HashSet<Uuid>,
    /// Payments seen on one side only so far (matched pairs are dropped).
    payments: HashMap<Uuid, PaymentV>,
    /// Reservations of payments through a provider (`reservations`).
    reservations: reservations::ReservationsV,
    /// Delegations as their events left them so far.
    delegations: HashMap<Uuid, Delegation>,
    /// Advances by requisition: what was advanced, whether it was paid, what was settled.
    advances: HashMap<Uuid, AdvanceV>,
    /// Cash returned by a settlement, as the advance account and the fund record it, until
    /// both sides are seen (keyed by settlement id).
    advance_returns: HashMap<Uuid, (Option<ReturnSide>, Option<ReturnSide>)>,
    /// Fund operations per fund (`fund_ops`).
    fund_ops: HashMap<Uuid, fund_ops::FundOpsV>,
    /// Budgets, the `budget_block` setting and what budgets consumed (`budgets`).
    budgets: budgets::BudgetsV,
    /// The runtime settings as their events left them so far.
    settings: pettycash_domain::settings::RuntimeSettings,
    /// Checks `verify_store` could not make (`budgets::BUDGETS_BEHIND`).
    not_checked_extra: Vec<&'static str>,
    /// Receipt files the events name, by SHA-256: where first named (`receipts`).
    receipt_files: BTreeMap<String, receipts::Named>,
    /// Whether the files are read back (a store was given).
    check_receipt_files: bool,
    violations: Vec<Violation>,
}

#[derive(Default)]
struct AdvanceV {
    amount: Decimal,
    issued: bool,
    settled: Decimal,
}

/// One side of an advance's returned cash: the amount, and where it was seen.
struct ReturnSide {
    amount: Decimal,
    position: i64,
    aggregate_type: &'static str,
    aggregate_id: String,
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// A verifier that also authenticates events: with `key` (if given) and the store's
    /// `unsigned_through` boundary (if it has one).
    pub fn authenticating(key: Option<EventKey>, unsigned_through: Option<i64>) -> Self {
        Self { event_key: key, unsigned_through, ..Self::default() }
    }

    /// Checks that the service wrote `e` (see the module documentation), given its
    /// [`EventRow::stored_digest`] when one was computed.
    fn authenticate(&mut self, e: &EventRow, digest: Option<Option<StoredDigest<'_>>>) {
        let Some(through) = self.unsigned_through else { return };
        let old = e.global_position <= through;
        let verdict = match (&self.event_key, digest) {
            (_, Some(None)) => Authenticity::Forged,
            (Some(key), Some(Some((digest, mac)))) => key.verdict(&digest, mac.as_deref()),
            // Without the key only a missing MAC can be told.
            (None, Some(Some((_, None)))) => Authenticity::Unsigned,
            _ => return,
        };
        match verdict {
            Authenticity::Authentic => {
                self.authenticated += 1;
                if old {
                    self.flag(
                        e,
                        "authentication_boundary_moved",
                        format!(
                            "authenticated, yet at or below position {through}, where events are taken to predate \
                             authentication: the boundary was moved"
                        ),
                    );
                }
            }
            Authenticity::Unsigned if old => self.unsigned += 1,
            Authenticity::Unsigned => self.flag(
                e,
                "event_unsigned",
                format!(
                    "no MAC, after events began to be authenticated (position {through}): written past the \
                     store's constraint, not by the service"
                ),
            ),
            Authenticity::Forged => self.flag(
                e,
                "event_unauthenticated",
                "its MAC does not verify with the key: the service did not write it (inserted into the \
                 database directly), or it was changed, or written under another key"
                    .into(),
            ),
        }
    }

    /// True when a sponsor of `user` is the requester or an approver of `r`.
    fn sponsored_by_participant(sponsors: &HashMap<Uuid, Vec<Uuid>>, user: Uuid, r: &ReqV) -> bool {
        sponsors
            .get(&user)
            .is_some_and(|s| s.iter().any(|sp| r.requester == Some(*sp) || r.approvers.contains(sp)))
    }

    /// A decision on the step a requisition waits for (reject, request changes, confirm or
    /// deny its urgency) by someone the domain would let decide it: not the requester, pending,
    /// routed to them (`routed_as`: the delegator, for a decision on someone's behalf, whose
    /// delegation `delegated` checks) and holding the step's role (admin for a step escalated
    /// to the admins). Flags `decision_not_allowed`.
    fn check_decider(&mut self, e: &EventRow, id: Uuid, routed_as: Uuid, by: Uuid, what: &str) {
        let Some(r) = self.requisitions.get(&id) else { return };
        let problem = match (r.current(), r.chain.as_ref()) {
            _ if r.requester == Some(by) => Some("its requester".to_string()),
            (Some(step), Some(chain)) => {
                let role = if r.to_admin.contains(&step) { Role::Admin } else { chain[step] };
                let routed = r
                    .eligible
                    .as_ref()
                    .is_none_or(|lists| lists.get(step).is_some_and(|l| l.contains(&routed_as)));
                if !routed {
                    Some(format!("whom step {step} was not routed to"))
                } else if !self.holds(by, role) {
                    Some(format!("who did not hold {role}"))
                } else {
                    None
                }
            }
            _ => Some(format!("while it was {}", r.status)),
        };
        if let Some(problem) = problem {
            self.flag(e, "decision_not_allowed", format!("{what} by {by}, {problem}"));
        }
    }

    fn flag(&mut self, e: &EventRow, rule: &'static str, detail: String) {
        self.violations.push(Violation {
            position: e.global_position,
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id.clone(),
            rule,
            detail,
        });
    }

    /// Whether `user` held `role` and was active, as of the events fed so far.
    /// The user as an actor at this position: their roles, sponsors and unit.
    fn actor(&self, user: Uuid) -> Actor {
        let mut roles: Vec<Role> =
            self.users.get(&user).map(|r| r.iter().copied().collect()).unwrap_or_default();
        roles.sort();
        let mut actor =
            Actor::new(user, roles).with_sponsors(self.sponsors.get(&user).cloned().unwrap_or_default());
        actor.unit = self.unit_of(user);
        actor
    }

    fn unit_of(&self, user: Uuid) -> Option<UnitPath> {
        self.user_units.get(&user).and_then(|u| self.units.get(u)).copied()
    }

    /// What the command side looked up for a submission: the active holders of the chain's
    /// roles and the active admins, of `company` (or of none).
    /// The directory routing reads for a requisition of `unit` (`None`: unscoped): the active
    /// holders of `chain`'s roles in its company — for a role that reaches a unit, only those
    /// of the requisition's unit at that level, which is all `Directory::holders` keeps anyway —
    /// and the company's admins.
    fn directory(&mut self, chain: &[Role], unit: Option<&UnitPath>) -> Directory {
        let company = unit.map(|u| u.company);
        let mut seen = HashSet::new();
        let mut holders = Vec::new();
        for role in chain {
            let scope = reach_level(*role).and_then(|level| unit.and_then(|u| u.at(level)));
            for h in self.people(*role, company, scope) {
                if seen.insert(h.user_id) {
                    holders.push(h);
                }
            }
        }
        let admins = self.people(Role::Admin, company, None);
        Directory { holders, admins }
    }

    /// The active holders of `role` in `company` and, when given, whose unit is `scope` or
    /// under it (cached, see `directory_cache`).
    fn people(&mut self, role: Role, company: Option<Uuid>, scope: Option<Uuid>) -> Vec<Holder> {
        if let Some(found) = self.directory_cache.get(&(role, company, scope)) {
            return found.clone();
        }
        let level = reach_level(role);
        let mut ids: Vec<Uuid> =
            self.by_role.get(&role).map(|s| s.iter().copied().collect()).unwrap_or_default();
        ids.sort();
        let found: Vec<Holder> = ids
            .into_iter()
            .filter_map(|user| {
                let unit = self.unit_of(user);
                let in_scope = match (scope, level) {
                    (Some(scope), Some(level)) => unit.and_then(|u| u.at(level)) == Some(scope),
                    _ => true,
                };
                (!self.deactivated.contains(&user) && unit.map(|u| u.company) == company && in_scope).then(
                    || Holder {
                        user_id: user,
                        roles: self.users.get(&user).map(|r| r.iter().copied().collect()).unwrap_or_default(),
                        unit,
                        sponsors: self.sponsors.get(&user).cloned().unwrap_or_default(),
                    },
                )
            })
            .collect();
        self.directory_cache.insert((role, company, scope), found.clone());
        found
    }

    fn holds(&self, user: Uuid, role: Role) -> bool {
        !self.deactivated.contains(&user) && self.users.get(&user).is_some_and(|r| r.contains(&role))
    }

    /// Checks and folds one event, with its stored hash.
    pub fn feed(&mut self, e: &EventRow, stored_hash: Option<&[u8]>) {
        self.events += 1;
        self.first_position =
            Some(self.first_position.map_or(e.global_position, |p| p.min(e.global_position)));
        self.last_position = Some(self.last_position.map_or(e.global_position, |p| p.max(e.global_position)));

        let kind = match self.kinds.iter().position(|k| *k == e.aggregate_type) {
            Some(i) => i,
            None => {
                self.kinds.push(e.aggregate_type.clone());
                self.kinds.len() - 1
            }
        };
        let key = match (u8::try_from(kind), e.aggregate_id.parse::<Uuid>()) {
            (Ok(kind), Ok(id)) => Ok((kind, id.as_u128())),
            _ => Err((e.aggregate_type.clone(), e.aggregate_id.clone())),
        };
        let stream = match &key {
            Ok(k) => self.streams.get(k),
            Err(k) => self.other_streams.get(k),
        };
        let stream = stream.copied().unwrap_or_default();
        let last = stream.sequence;
        // Events recorded since authentication began are hashed over their content digest
        // (version 2), which their MAC covers too: it is computed once for both checks.
        let v2 = self.unsigned_through.is_some_and(|through| e.global_position > through);
        let digest = (v2 || self.event_key.is_some()).then(|| e.stored_digest());
        match stored_hash {
            Some(stored) => {
                self.hashed += 1;
                let previous = stream.hash.as_ref().map(|h| h.as_slice());
                let expected = match &digest {
                    // Metadata that is not an object cannot have passed the hash trigger.
                    Some(None) if v2 => [0; 32],
                    Some(Some((digest, mac))) if v2 => e.hash_v2(previous, digest, mac.as_deref()),
                    _ => e.hash_v1(previous),
                };
                if expected.as_slice() != stored {
                    self.flag(
                        e,
                        "hash_mismatch",
                        format!(
                            "stored hash {} is not the hash of its content after its predecessor ({}): the event was changed",
                            hex(stored),
                            hex(&expected)
                        ),
                    );
                }
            }
            None if self.hashed > 0 => self.flag(
                e,
                "unhashed_event",
                "no hash, after hashed events: written with the hashing trigger disabled".into(),
            ),
            None => self.unhashed += 1,
        }
        self.authenticate(e, digest);
        if e.sequence != last + 1 {
            let detail = if e.sequence > last + 1 {
                format!(
                    "sequence {} follows {last}: event(s) {}..={} of this stream are missing",
                    e.sequence,
                    last + 1,
                    e.sequence - 1
                )
            } else {
                format!("sequence {} after {last}: out of order", e.sequence)
            };
            self.flag(e, "sequence_gap", detail);
        }
        let hash = stored_hash.and_then(|h| <[u8; 32]>::try_from(h).ok());
        let stream = StreamV { sequence: e.sequence.max(last), hash };
        match key {
            Ok(k) => self.streams.insert(k, stream),
            Err(k) => self.other_streams.insert(k, stream),
        };

        let result = match e.aggregate_type.as_str() {
            "fund" => e.decode::<FundEvent>().map(|ev| self.fund(e, ev)),
            "requisition" => e.decode::<RequisitionEvent>().map(|ev| self.requisition(e, ev)),
            "user" => e.decode::<UserEvent>().map(|ev| {
                self.directory_cache.clear();
                self.user(e, ev)
            }),
            "approval_policy" => {
                e.decode::<PolicyEvent>().map(|ev| cqrs_es::Aggregate::apply(&mut self.policy, ev))
            }
            // Organisation units and invitations carry no rule `verify` checks; they must still
            // read (an accepted invitation's user is checked by its own `user` events).
            "org_unit" => e.decode::<UnitEvent>().map(|ev| {
                self.directory_cache.clear();
                if let UnitEvent::UnitOpened { unit_id, path, .. } = ev {
                    self.units.insert(unit_id, path);
                }
            }),
            "invitation" => e.decode::<pettycash_domain::invitation::InvitationEvent>().map(|_| ()),
            "delegation" => e.decode::<DelegationEvent>().map(|ev| self.delegation(e, ev)),
            "advance_account" => e.decode::<AdvanceEvent>().map(|ev| self.advance(e, ev)),
            "settings" => e.decode::<pettycash_domain::settings::SettingsEvent>().map(|ev| {
                cqrs_es::Aggregate::apply(&mut self.settings, ev);
                self.budgets.block = self.settings.values.budget_block;
            }),
            "budget_plan" => {
                e.decode::<pettycash_domain::budget::BudgetEvent>().map(|ev| self.budget_plan(e, ev))
            }
            "category_catalogue" => e.decode::<pettycash_domain::category::CategoryEvent>().map(|_| ()),
            _ => Ok(()),
        };
        if let Err(err) = result {
            self.flag(e, "undecodable_event", format!("{err:#}"));
        }
    }

    /// Folds a delegation's event; checks a grant against the users at this position.
    fn delegation(&mut self, e: &EventRow, ev: DelegationEvent) {
        let Some(id) = self.id(e) else { return };
        if let DelegationEvent::DelegationGranted { delegator_id, delegate_id, role, .. } = &ev {
            let why = if delegator_id == delegate_id {
                Some("to the delegator themselves")
            } else if !self.holds(*delegator_id, *role) {
                Some("by a delegator who did not hold the role (or was deactivated)")
            } else if !self.holds(*delegate_id, *role) {
                Some("to someone who did not hold the role (or was deactivated)")
            } else if !same_scope(
                *role,
                self.unit_of(*delegator_id).as_ref(),
                self.unit_of(*delegate_id).as_ref(),
            ) {
                Some("to someone in another part of the organisation")
            } else {
                None
            };
            if let Some(why) = why {
                self.flag(
                    e,
                    "delegation_not_allowed",
                    format!("{role} delegated by {delegator_id} to {delegate_id}: {why}"),
                );
            }
        }
        cqrs_es::Aggregate::apply(self.delegations.entry(id).or_default(), ev);
    }

    /// Checks a decision by `by` recorded on `on_behalf_of`'s behalf with `delegation_id`, for
    /// `role`, on requisition `id` (before the decision is folded).
    #[allow(clippy::too_many_arguments)]
    fn delegated(
        &mut self,
        e: &EventRow,
        id: Uuid,
        role: Role,
        by: Uuid,
        on_behalf_of: Option<Uuid>,
        delegation_id: Option<Uuid>,
    ) {
        let Some(delegator) = on_behalf_of else { return };
        let held = delegation_id.and_then(|d| self.delegations.get(&d)).is_some_and(|d| {
            d.revoked_by.is_none()
                && d.grant.as_ref().is_some_and(|g| {
                    g.delegator_id == delegator
                        && g.delegate_id == by
                        && g.role == role
                        && g.covers(e.recorded_at)
                })
        });
        if !held {
            self.flag(
                e,
                "delegation_not_held",
                format!(
                    "decided by {by} on behalf of {delegator} as {role}; delegation {delegation_id:?} does not give \
                     that at this time (missing, another person or role, revoked, or outside its period)"
                ),
            );
        }
        if self.requisitions.get(&id).is_some_and(|r| r.approvers.contains(&by)) {
            self.flag(
                e,
                "delegate_already_approved",
                format!("{by} decided on behalf of {delegator} a requisition they had approved"),
            );
        }
    }

    fn id(&mut self, e: &EventRow) -> Option<Uuid> {
        match e.aggregate_id.parse() {
            Ok(id) => Some(id),
            Err(_) => {
                self.flag(e, "undecodable_event", format!("aggregate id `{}` is not a UUID", e.aggregate_id));
                None
            }
        }
    }

    fn user(&mut self, e: &EventRow, ev: UserEvent) {
        let Some(id) = self.id(e) else { return };
        let sponsor = match &ev {
            UserEvent::UserRegistered { registered_by, .. } => *registered_by,
            UserEvent::RoleGranted { granted_by, .. } => *granted_by,
            UserEvent::RoleRevoked { .. }
            | UserEvent::MailMuted { .. }
            | UserEvent::UnitAssigned { .. }
            | UserEvent::UserDeactivated { .. }
            | UserEvent::UserReactivated { .. } => None,
        };
        if let Some(by) = sponsor {
            let s = self.sponsors.entry(id).or_default();
            if !s.contains(&by) {
                s.push(by);
            }
        }
        match ev {
            UserEvent::UserRegistered { roles, .. } => {
                for role in &roles {
                    self.by_role.entry(*role).or_default().insert(id);
                }
                self.users.insert(id, roles.into_iter().collect());
            }
            UserEvent::RoleGranted { role, .. } => {
                self.by_role.entry(role).or_default().insert(id);
                self.users.entry(id).or_default().insert(role);
            }
            UserEvent::RoleRevoked { role, .. } => {
                if let Some(holders) = self.by_role.get_mut(&role) {
                    holders.remove(&id);
                }
                self.users.entry(id).or_default().remove(&role);
            }
            UserEvent::MailMuted { .. } => {}
            UserEvent::UnitAssigned { unit_id, .. } => match unit_id {
                Some(unit) => {
                    self.user_units.insert(id, unit);
                }
                None => {
                    self.user_units.remove(&id);
                }
            },
            UserEvent::UserDeactivated { .. } => {
                self.deactivated.insert(id);
            }
            UserEvent::UserReactivated { .. } => {
                self.deactivated.remove(&id);
            }
        }
    }

    fn fund(&mut self, e: &EventRow, ev: FundEvent) {
        let Some(id) = self.id(e) else { return };
        match ev {
            FundEvent::FundOpened { currency, float, .. } => {
                self.funds.insert(id, FundV { currency: currency.to_string(), balance: float });
                if float < Decimal::ZERO {
                    self.flag(e, "negative_balance", format!("opened with a negative float {float}"));
                }
            }
            FundEvent::CashReserved { payment_id, amount, .. } => {
                let balance = self.funds.get(&id).map(|f| f.balance);
                self.reserved(e, id, payment_id, amount, balance);
            }
            FundEvent::ReservationReleased { payment_id, amount, .. } => {
                self.reservation_ended(e, id, payment_id, amount, false);
            }
            FundEvent::CashDisbursed {
                payment_id, requisition_id, amount, balance_after, reserved, ..
            } => {
                if let Some(reserved) = reserved {
                    if reserved != amount {
                        self.flag(
                            e,
                            "reservation_mismatch",
                            format!("disbursed {amount}, recorded as consuming {reserved}"),
                        );
                    }
                    self.reservation_ended(e, id, payment_id, reserved, true);
                }
                self.fund_moved_at(e, id, e.recorded_at);
                let balance = match self.funds.get_mut(&id) {
                    Some(f) => {
                        f.balance -= amount;
                        Some(f.balance)
                    }
                    None => None,
                };
                match balance {
                    None => self.flag(e, "negative_balance", "disbursement from a fund never opened".into()),
                    Some(b) => {
                        if b < Decimal::ZERO {
                            self.flag(
                                e,
                                "negative_balance",
                                format!("disbursing {amount} leaves the fund at {b}"),
                            );
                        }
                        if b != balance_after {
                            self.flag(
                                e,
                                "balance_mismatch",
                                format!(
                                    "balance_after {balance_after} recorded, {b} computed from the amounts"
                                ),
                            );
                        }
                    }
                }
                if !self.disbursed.insert(requisition_id) {
                    self.flag(
                        e,
                        "double_payment",
                        format!(
                            "a second CashDisbursed for requisition {requisition_id} (payment {payment_id})"
                        ),
                    );
                }
                let side = Side {
                    position: e.global_position,
                    aggregate_type: "fund",
                    aggregate_id: e.aggregate_id.clone(),
                    amount,
                    fund_id: id,
                    requisition_id,
                };
                self.payment_side(e, payment_id, side, false);
            }
            FundEvent::AdvanceCashReturned { settlement_id, amount, balance_after, .. } => {
                // The event carries no time of its own: the store's is the movement's.
                self.fund_movement(e, id, amount, balance_after, e.recorded_at);
                let side = ReturnSide {
                    amount,
                    position: e.global_position,
                    aggregate_type: "fund",
                    aggregate_id: e.aggregate_id.clone(),
                };
                self.return_side(e, settlement_id, side, false);
            }
            other => self.fund_op(e, id, other),
        }
    }

    /// Folds an advance account's event: settlements only of a paid advance, never beyond
    /// what was advanced, their returned cash matched by the fund's.
    fn advance(&mut self, e: &EventRow, ev: AdvanceEvent) {
        match ev {
            AdvanceEvent::AdvanceRequested { requisition_id, amount, .. } => {
                self.advances.insert(requisition_id, AdvanceV { amount, ..AdvanceV::default() });
            }
            AdvanceEvent::AdvanceIssued { requisition_id, .. } => {
                match self.advances.get_mut(&requisition_id) {
                    Some(a) => a.issued = true,
                    None => self.flag(
                        e,
                        "advance_unknown",
                        format!("issuing advance {requisition_id} never requested"),
                    ),
                }
            }
            AdvanceEvent::AdvanceSettled {
                requisition_id,
                settlement_id,
                spent,
                returned,
                outstanding_after,
                ..
            } => {
                let Some(a) = self.advances.get_mut(&requisition_id) else {
                    self.flag(
                        e,
                        "advance_unknown",
                        format!("settling advance {requisition_id} never requested"),
                    );
                    return;
                };
                a.settled += spent + returned;
                let (issued, amount, settled) = (a.issued, a.amount, a.settled);
                if !issued {
                    self.flag(
                        e,
                        "settlement_before_payment",
                        format!("advance {requisition_id} settled before it was paid"),
                    );
                }
                if settled > amount {
                    self.flag(
                        e,
                        "settlement_exceeds_advance",
                        format!("advance {requisition_id} of {amount} settled for {settled} in all"),
                    );
                } else if outstanding_after != amount - settled {
                    self.flag(
                        e,
                        "settlement_exceeds_advance",
                        format!(
                            "outstanding_after {outstanding_after} recorded, {} computed",
                            amount - settled
                        ),
                    );
                }
                if !returned.is_zero() {
                    let side = ReturnSide {
                        amount: returned,
                        position: e.global_position,
                        aggregate_type: "advance_account",
                        aggregate_id: e.aggregate_id.clone(),
                    };
                    self.return_side(e, settlement_id, side, true);
                }
            }
            AdvanceEvent::AdvanceOverdue { .. } => {}
        }
    }

    /// Records one side of an advance's returned cash; compares and drops the pair once both
    /// are seen.
    fn return_side(&mut self, e: &EventRow, settlement_id: Uuid, side: ReturnSide, settled: bool) {
        let entry = self.advance_returns.entry(settlement_id).or_default();
        if settled {
            entry.0 = Some(side);
        } else {
            entry.1 = Some(side);
        }
        if let (Some(a), Some(f)) = (&entry.0, &entry.1) {
            let (a, f) = (a.amount, f.amount);
            self.advance_returns.remove(&settlement_id);
            if a != f {
                self.flag(
                    e,
                    "unmatched_advance_return",
                    format!("settlement {settlement_id} returns {a}, the fund received {f}"),
                );
            }
        }
    }

    /// Records one side of a payment; compares and drops the pair once both are seen.
    fn payment_side(&mut self, e: &EventRow, payment_id: Uuid, side: Side, paid: bool) {
        let entry = self.payments.entry(payment_id).or_default();
        let slot = if paid { &mut entry.paid } else { &mut entry.disbursed };
        if slot.is_some() {
            let what = if paid { "RequisitionPaid" } else { "CashDisbursed" };
            self.flag(e, "double_payment", format!("a second {what} with payment_id {payment_id}"));
            return;
        }
        *slot = Some(side);
        if let (Some(p), Some(d)) = (&entry.paid, &entry.disbursed) {
            let mut problems = Vec::new();
            if p.amount != d.amount {
                problems.push(format!("amount {} paid, {} disbursed", p.amount, d.amount));
            }
            if p.fund_id != d.fund_id {
                problems.push(format!("fund {} on the requisition, {} disbursed from", p.fund_id, d.fund_id));
            }
            if p.requisition_id != d.requisition_id {
                problems.push(format!(
                    "requisition {} paid, {} on the disbursement",
                    p.requisition_id, d.requisition_id
                ));
            }
            self.payments.remove(&payment_id);
            if !problems.is_empty() {
                self.flag(e, "payment_mismatch", format!("payment {payment_id}: {}", problems.join("; ")));
            }
        }
    }

    fn requisition(&mut self, e: &EventRow, ev: RequisitionEvent) {
        use RequisitionEvent as E;
        let Some(id) = self.id(e) else { return };
        self.note_participants(id, &ev);
        self.budget_requisition(e, id, &ev);
        self.provider_step(e, id, &ev);
        self.reconcile_step(e, id, &ev);
        match ev {
            E::RequisitionCreated { requester_id, currency, amount, origin, unit, .. } => {
                let r = self.requisitions.entry(id).or_default();
                r.requester = Some(requester_id);
                r.origin = origin;
                r.unit = unit;
                r.currency = Some(currency);
                r.amount = amount;
                r.status = Status::Draft;
            }
            E::RequisitionEdited { amount, .. } => {
                let r = self.requisitions.entry(id).or_default();
                if let Some(amount) = amount {
                    r.amount = amount;
                }
                let (requester, status) = (r.requester, r.status);
                // The acting user is in the metadata (an edit names nobody in its payload).
                if let Some(actor) = e.actor_id().filter(|a| Some(*a) != requester) {
                    self.flag(e, "not_by_requester", format!("edited by {actor}, not its requester"));
                }
                if !matches!(status, Status::Draft | Status::ChangesRequested) {
                    self.flag(e, "acted_on_closed", format!("edited while {status}"));
                }
            }
            E::RequisitionCancelled { cancelled_by, .. } => {
                let r = self.requisitions.entry(id).or_default();
                let (requester, status) = (r.requester, r.status);
                r.status = Status::Cancelled;
                if requester != Some(cancelled_by) {
                    self.flag(
                        e,
                        "not_by_requester",
                        format!("cancelled by {cancelled_by}, not its requester"),
                    );
                }
                if status.is_final() {
                    self.flag(e, "acted_on_closed", format!("cancelled while {status}"));
                }
            }
            E::RequisitionSubmitted { chain, amount, threshold, eligible, due, .. } => {
                let (requester, unit, origin, currency, created_amount) = {
                    let r = self.requisitions.entry(id).or_default();
                    (r.requester, r.unit, r.origin.unwrap_or(Origin::Hq), r.currency.clone(), r.amount)
                };
                let requester_actor = requester.map(|u| self.actor(u));
                let names = |c: &[Role]| c.iter().map(Role::to_string).collect::<Vec<_>>().join(", ");
                if amount != created_amount {
                    self.flag(
                        e,
                        "submitted_amount_mismatch",
                        format!("submitted for {amount}; the requisition is for {created_amount}"),
                    );
                }
                let roles = requester_actor.as_ref().map(|a| a.roles.clone()).unwrap_or_default();
                match currency.as_ref().map(|c| self.policy.chain(c, origin, amount, &roles)) {
                    Some(Ok(want)) if want != chain => self.flag(
                        e,
                        "chain_not_from_policy",
                        format!(
                            "chain [{}] recorded; the policy in force (version {}) gives [{}]",
                            names(&chain),
                            self.policy.version,
                            names(&want)
                        ),
                    ),
                    Some(Err(err)) => self.flag(
                        e,
                        "chain_not_from_policy",
                        format!("chain [{}] recorded; the policy in force gives none: {err}", names(&chain)),
                    ),
                    _ => {}
                }
                if let (Some(recorded), Some(currency), Some(requester)) =
                    (&eligible, &currency, &requester_actor)
                {
                    let directory = self.directory(&chain, unit.as_ref());
                    let routed = pettycash_domain::routing::route(
                        &self.policy.thresholds(),
                        currency,
                        origin,
                        amount,
                        unit.as_ref(),
                        requester,
                        &directory,
                    );
                    let sorted = |lists: &[Vec<Uuid>]| -> Vec<Vec<Uuid>> {
                        lists
                            .iter()
                            .map(|l| {
                                let mut l = l.clone();
                                l.sort();
                                l
                            })
                            .collect()
                    };
                    match routed {
                        Ok(route) => {
                            let want: Vec<Vec<Uuid>> = route.steps.into_iter().map(|s| s.eligible).collect();
                            if threshold.as_deref() != Some(route.threshold.as_str())
                                || sorted(recorded) != sorted(&want)
                            {
                                self.flag(
                                    e,
                                    "route_mismatch",
                                    format!(
                                        "threshold {threshold:?} and people {recorded:?} recorded; routing gives `{}` and {want:?}",
                                        route.threshold
                                    ),
                                );
                            }
                        }
                        Err(err) => self.flag(
                            e,
                            "route_mismatch",
                            format!("a route was recorded; routing gives none: {err}"),
                        ),
                    }
                }
                let r = self.requisitions.entry(id).or_default();
                r.submitted_amount = Some(amount);
                r.threshold = threshold;
                r.urgency = None;
                r.fast_tracked = false;
                r.chain = Some(chain);
                r.eligible = eligible;
                r.step_from = 0;
                r.to_admin.clear();
                r.changes_deadline = None;
                r.due = due;
                r.approvals.clear();
                r.status = Status::PendingApproval;
            }
            E::ApprovalEscalated { step, to, reason, people, .. } => {
                let r = self.requisitions.entry(id).or_default();
                if to == EscalatedTo::Admin {
                    r.to_admin.push(step);
                }
                if let (Some(people), Some(lists)) = (people, r.eligible.as_mut()) {
                    if let Some(list) = lists.get_mut(step) {
                        *list = people;
                    }
                }
                if reason == EscalationReason::Overdue {
                    let due = r.due.map(|d| d.escalate_at);
                    if due.is_none_or(|at| e.recorded_at < at) {
                        self.flag(e, "escalated_early", format!("escalated as overdue; due at {due:?}"));
                    }
                }
            }
            E::ApprovalOverdue { .. } => {
                let due = self.requisitions.get(&id).and_then(|r| r.due).map(|d| d.remind_at);
                if due.is_none_or(|at| e.recorded_at < at) {
                    self.flag(e, "reminded_early", format!("reminded as overdue; due at {due:?}"));
                }
            }
            E::RequisitionExpired { deadline } => {
                let r = self.requisitions.entry(id).or_default();
                let recorded = r.changes_deadline;
                let status = r.status;
                r.status = Status::Expired;
                if status != Status::ChangesRequested
                    || recorded != Some(deadline)
                    || e.recorded_at <= deadline
                {
                    self.flag(
                        e,
                        "expired_early",
                        format!("expired at {} as of deadline {deadline} while {status}; the changes were due {recorded:?}", e.recorded_at),
                    );
                }
            }
            E::UrgencyDeclared { fast_track_allowed, .. } => {
                let threshold = self.requisitions.get(&id).and_then(|r| r.threshold.clone());
                let allows = self
                    .policy
                    .thresholds()
                    .0
                    .iter()
                    .any(|t| Some(&t.name) == threshold.as_ref() && t.fast_track);
                if fast_track_allowed && !allows {
                    self.flag(
                        e,
                        "fast_track_not_allowed",
                        format!("urgency recorded as fast-trackable; threshold {threshold:?} in force does not allow it"),
                    );
                }
                self.requisitions.entry(id).or_default().urgency = Some((fast_track_allowed, true));
            }
            E::UrgencyConfirmed { .. } | E::UrgencyDenied { .. } => {
                let (by, confirmed, fast_tracked) = match &ev {
                    E::UrgencyConfirmed { confirmed_by, fast_tracked, .. } => {
                        (*confirmed_by, true, *fast_tracked)
                    }
                    E::UrgencyDenied { denied_by, .. } => (*denied_by, false, false),
                    _ => unreachable!("matched above"),
                };
                self.check_decider(e, id, by, by, "decided the urgency");
                let r = self.requisitions.entry(id).or_default();
                let urgency = r.urgency;
                if let Some(u) = r.urgency.as_mut() {
                    u.1 = false;
                }
                if confirmed && fast_tracked {
                    r.fast_tracked = true;
                }
                match urgency {
                    Some((_, false)) | None => self.flag(
                        e,
                        "decision_not_allowed",
                        "an urgency decided that was not declared, or was already decided".into(),
                    ),
                    Some((false, true)) if confirmed && fast_tracked => self.flag(
                        e,
                        "fast_track_not_allowed",
                        "fast-tracked on a threshold that does not allow it".into(),
                    ),
                    _ => {}
                }
            }
            E::FastTrackReverted { reverted_by, .. } => {
                let r = self.requisitions.entry(id).or_default();
                let was = std::mem::replace(&mut r.fast_tracked, false);
                let open = r.status == Status::PendingApproval;
                r.due = None;
                if !was || !open || r.requester == Some(reverted_by) {
                    self.flag(
                        e,
                        "decision_not_allowed",
                        format!("fast-track reverted by {reverted_by} while not fast-tracked, not pending, or by its requester"),
                    );
                }
            }
            E::ApprovalOverridden { overridden_by, .. } => {
                let lacks_admin = !self.holds(overridden_by, Role::Admin);
                let r = self.requisitions.entry(id).or_default();
                let sponsored = Self::sponsored_by_participant(&self.sponsors, overridden_by, r);
                let problem = if lacks_admin {
                    Some("who is not an active admin")
                } else if r.requester == Some(overridden_by) {
                    Some("its requester")
                } else if r.approvers.contains(&overridden_by) {
                    Some("someone who approved it")
                } else if sponsored {
                    Some("someone its requester or an approver registered or gave a role")
                } else if r.status != Status::PendingApproval {
                    Some("while it was not pending approval")
                } else {
                    None
                };
                r.status = Status::Approved;
                r.overridden = true;
                r.due = None;
                if !r.approvers.contains(&overridden_by) {
                    r.approvers.push(overridden_by);
                }
                if let Some(problem) = problem {
                    self.flag(
                        e,
                        "override_not_allowed",
                        format!("approval overridden by {overridden_by}, {problem}"),
                    );
                }
            }
            E::RequisitionRejected { .. } | E::ChangesRequested { .. } => {
                let (by, role, on_behalf_of, delegation_id) = match &ev {
                    E::RequisitionRejected { role, rejected_by, on_behalf_of, delegation_id, .. }
                    | E::ChangesRequested {
                        role,
                        requested_by: rejected_by,
                        on_behalf_of,
                        delegation_id,
                        ..
                    } => (*rejected_by, *role, *on_behalf_of, *delegation_id),
                    _ => unreachable!("matched above"),
                };
                self.delegated(e, id, role, by, on_behalf_of, delegation_id);
                self.check_decider(e, id, on_behalf_of.unwrap_or(by), by, "decided");
                let r = self.requisitions.entry(id).or_default();
                r.approvals.clear();
                r.due = None;
                if let E::ChangesRequested { deadline, .. } = &ev {
                    r.changes_deadline = *deadline;
                }
                r.status = if matches!(ev, E::RequisitionRejected { .. }) {
                    Status::Rejected
                } else {
                    Status::ChangesRequested
                };
            }
            E::RequisitionApproved { step, role, approver_id, due, on_behalf_of, delegation_id, .. } => {
                self.delegated(e, id, role, approver_id, on_behalf_of, delegation_id);
                let to_admin = self.requisitions.get(&id).is_some_and(|r| r.to_admin.contains(&step));
                let required = if to_admin { Role::Admin } else { role };
                let lacks_role = !self.holds(approver_id, required);
                let r = self.requisitions.entry(id).or_default();
                // A delegate's approval is the delegator's: the step must have been routed to them.
                let routed_to = on_behalf_of.unwrap_or(approver_id);
                let not_eligible = r
                    .eligible
                    .as_ref()
                    .is_some_and(|lists| !lists.get(step).is_some_and(|l| l.contains(&routed_to)));
                let sponsored = Self::sponsored_by_participant(&self.sponsors, approver_id, r);
                let requester = r.requester;
                let closed = matches!(
                    r.status,
                    Status::Rejected
                        | Status::Cancelled
                        | Status::ChangesRequested
                        | Status::Paid
                        | Status::Expired
                );
                let status = r.status;
                let twice = r.approvals.iter().any(|(_, _, who)| *who == approver_id);
                let expected = r.chain.as_ref().map(|c| {
                    let next = r.next();
                    (next, next.map(|i| c[i]))
                });
                r.approvals.push((step, role, approver_id));
                r.step_from = step + 1;
                r.due = due;
                let complete = r
                    .chain
                    .as_ref()
                    .is_some_and(|c| next_step(c.len(), r.eligible.as_deref(), r.step_from).is_none());
                if complete && !closed {
                    r.status = Status::Approved;
                }
                if !r.approvers.contains(&approver_id) {
                    r.approvers.push(approver_id);
                }
                if closed {
                    self.flag(e, "acted_on_closed", format!("approved while {status}"));
                }
                if twice {
                    self.flag(
                        e,
                        "approved_twice_in_a_round",
                        format!("{approver_id} already approved a step of this round"),
                    );
                }
                if requester == Some(approver_id) {
                    self.flag(e, "approved_by_requester", format!("approved by its requester {approver_id}"));
                }
                if sponsored {
                    self.flag(
                        e,
                        "approved_by_sponsored",
                        format!("approved by {approver_id}, registered or given a role by its requester or an approver"),
                    );
                }
                match expected {
                    None => self.flag(e, "approval_out_of_order", "approved without being submitted".into()),
                    Some((next, want)) if next != Some(step) || want != Some(role) => self.flag(
                        e,
                        "approval_out_of_order",
                        format!(
                            "approval of step {step} as {role}; the chain's next step is {}",
                            match (next, want) {
                                (Some(n), Some(w)) => format!("{n} ({w})"),
                                _ => "none: the chain is complete".to_string(),
                            }
                        ),
                    ),
                    Some(_) => {}
                }
                if not_eligible {
                    self.flag(
                        e,
                        "approver_not_eligible",
                        match on_behalf_of {
                            Some(d) => format!(
                                "approved by {approver_id} on behalf of {d}, whom step {step} was not routed to"
                            ),
                            None => format!("approved by {approver_id}, whom step {step} was not routed to"),
                        },
                    );
                }
                if lacks_role {
                    self.flag(
                        e,
                        "approver_lacks_role",
                        format!("approver {approver_id} did not hold {required} at this position (or was deactivated)"),
                    );
                }
            }
            E::RequisitionPaid { payment_id, fund_id, amount, paid_by, .. } => {
                let lacks_treasury = !self.holds(paid_by, Role::Treasury);
                let r = self.requisitions.entry(id).or_default();
                let approved_amount = r.submitted_amount;
                let sponsored = Self::sponsored_by_participant(&self.sponsors, paid_by, r);
                let closed_as = matches!(
                    r.status,
                    Status::Rejected | Status::Cancelled | Status::ChangesRequested | Status::Expired
                )
                .then_some(r.status);
                r.status = Status::Paid;
                let already_paid = std::mem::replace(&mut r.paid, true);
                let by_requester = r.requester == Some(paid_by);
                let by_approver = r.approvers.contains(&paid_by);
                let chain = r.chain.clone().unwrap_or_default();
                let complete = r.overridden
                    || (r.chain.is_some()
                        && next_step(chain.len(), r.eligible.as_deref(), r.step_from).is_none()
                        && r.approvals.windows(2).all(|w| w[0].0 < w[1].0)
                        && r.approvals.iter().all(|(step, role, _)| chain.get(*step) == Some(role)));
                let given: Vec<String> = r.approvals.iter().map(|(_, role, _)| role.to_string()).collect();
                if let Some(status) = closed_as {
                    self.flag(e, "acted_on_closed", format!("paid while {status}"));
                }
                if already_paid {
                    self.flag(
                        e,
                        "double_payment",
                        format!("a second RequisitionPaid (payment {payment_id})"),
                    );
                }
                if by_requester {
                    self.flag(e, "paid_by_requester", format!("paid by its requester {paid_by}"));
                }
                if by_approver {
                    self.flag(
                        e,
                        "paid_by_approver",
                        format!("paid by {paid_by}, who approved it (or overrode its approval)"),
                    );
                }
                if sponsored {
                    self.flag(
                        e,
                        "paid_by_sponsored",
                        format!(
                            "paid by {paid_by}, registered or given a role by its requester or an approver"
                        ),
                    );
                }
                if let Some(approved) = approved_amount.filter(|a| *a != amount) {
                    self.flag(e, "paid_amount_mismatch", format!("paid {amount}; approved for {approved}"));
                }
                if lacks_treasury {
                    self.flag(
                        e,
                        "payer_lacks_role",
                        format!(
                            "payer {paid_by} did not hold treasury at this position (or was deactivated)"
                        ),
                    );
                }
                if !complete && !already_paid {
                    let want: Vec<String> = chain.iter().map(Role::to_string).collect();
                    self.flag(
                        e,
                        "incomplete_approval",
                        format!("paid with approvals [{}] of chain [{}]", given.join(", "), want.join(", ")),
                    );
                }
                let side = Side {
                    position: e.global_position,
                    aggregate_type: "requisition",
                    aggregate_id: e.aggregate_id.clone(),
                    amount,
                    fund_id,
                    requisition_id: id,
                };
                self.payment_side(e, payment_id, side, true);
                // Paid: only `paid`, the requester and the approvers matter from now on. The
                // chain state is freed, so memory stays small for long histories.
                if let Some(r) = self.requisitions.get_mut(&id) {
                    r.chain = None;
                    r.approvals = Vec::new();
                    r.approvers.shrink_to_fit();
                }
            }
            ev @ (E::DuplicateSuspected { .. }
            | E::DuplicateDismissed { .. }
            | E::PaymentReviewed { .. }
            | E::PaymentFlagged { .. }) => self.review_event(e, id, ev),
            E::CategoryChosen { .. } | E::BudgetExceeded { .. } => {}
            ev @ (E::ReceiptAttached { .. } | E::ReceiptOverdue { .. }) => self.receipt_event(e, id, ev),
            // The audit trail of payment codes: nothing to check against (the codes are not in
            // the events).
            E::PaymentCodeIssued { .. } | E::PaymentCodeRejected { .. } => {}
            // Their money side is checked on the fund (`reservations`); a success is a
            // `RequisitionPaid`, checked as any payment.
            E::PaymentStarted { .. } | E::PaymentFailed { .. } | E::PaymentTimedOut { .. } => {}
            // Checked in `reconcile_step`.
            E::PaymentReconciled { .. } => {}
        }
    }

    /// End-of-stream checks, then the report (with the seal tracker's findings).
    pub fn finish(mut self, seals: SealTracker, key_id: Option<String>) -> Report {
        let mut not_checked = Vec::new();
        if key_id.is_none() {
            not_checked.push(NO_KEY);
        }
        if self.unsigned_through.is_none() {
            not_checked.push(NO_BOUNDARY);
        } else if self.event_key.is_none() {
            not_checked.push(NO_EVENT_KEY);
        }
        not_checked.append(&mut self.not_checked_extra);
        if !self.check_receipt_files && !self.receipt_files.is_empty() {
            not_checked.push(receipts::NO_RECEIPT_STORE);
        }
        let mut unmatched: Vec<(Uuid, Side, &'static str)> = Vec::new();
        for (payment_id, p) in self.payments.drain() {
            match (p.paid, p.disbursed) {
                (Some(s), None) => unmatched.push((payment_id, s, "RequisitionPaid without a CashDisbursed")),
                (None, Some(s)) => unmatched.push((payment_id, s, "CashDisbursed without a RequisitionPaid")),
                _ => {}
            }
        }
        for (settlement_id, (settled, received)) in self.advance_returns.drain() {
            let (side, what) = match (settled, received) {
                (Some(s), None) => (s, "a settlement returning cash without the fund's AdvanceCashReturned"),
                (None, Some(s)) => (s, "AdvanceCashReturned without a settlement returning it"),
                _ => continue,
            };
            self.violations.push(Violation {
                position: side.position,
                aggregate_type: side.aggregate_type.to_string(),
                aggregate_id: side.aggregate_id,
                rule: "unmatched_advance_return",
                detail: format!("settlement {settlement_id}: {what}"),
            });
        }
        for (payment_id, s, what) in unmatched {
            self.violations.push(Violation {
                position: s.position,
                aggregate_type: s.aggregate_type.to_string(),
                aggregate_id: s.aggregate_id,
                rule: "unmatched_payment",
                detail: format!("payment {payment_id}: {what} of the same payment_id"),
            });
        }
        let chain_hash = hex(&seals.chain());
        let (seal_count, sealed_through, unsealed_events) =
            (seals.seals, seals.sealed_through, seals.unsealed);
        self.violations.extend(seals.into_violations());
        // Stable: at one position, the event-level findings come before a seal's summary.
        self.violations.sort_by_key(|v| (v.position, v.aggregate_type == "seal"));

        let mut aggregates: BTreeMap<String, u64> = BTreeMap::new();
        for (kind, _) in self.streams.keys() {
            *aggregates.entry(self.kinds[*kind as usize].clone()).or_default() += 1;
        }
        for (t, _) in self.other_streams.keys() {
            *aggregates.entry(t.clone()).or_default() += 1;
        }
        let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
        let mut hasher = Sha256::new();
        let mut balances = BTreeMap::new();
        for (id, f) in &self.funds {
            *totals.entry(f.currency.clone()).or_default() += f.balance;
            hasher.update(format!("{id}|{}\n", f.balance).as_bytes());
            balances.insert(*id, FundBalance { currency: f.currency.clone(), balance: f.balance });
        }
        let ledger_digest = hex(&hasher.finalize());
        Report {
            summary: Summary {
                events: self.events,
                first_position: self.first_position,
                last_position: self.last_position,
                aggregates,
                funds: self.funds.len() as u64,
                balances,
                totals,
                ledger_digest,
                hashed_events: self.hashed,
                unhashed_events: self.unhashed,
                authenticated_events: self.authenticated,
                unsigned_events: self.unsigned,
                seals: seal_count,
                sealed_through,
                unsealed_events,
                chain_hash,
                not_checked,
                seal_key_id: key_id,
                violations: self.violations.len() as u64,
            },
            violations: self.violations,
        }
    }
}

/// Replays the whole store through a [`Verifier`] and the seals through a [`SealTracker`]
/// (receipt files are not read: the report says so when events name any).
pub async fn verify_store(pool: &PgPool, key: Option<&SealKey>) -> Result<Report, Failure> {
    verify_store_with(pool, key, None).await
}

/// [`verify_store`], and every receipt file the events name read back from `receipt_store`.
pub async fn verify_store_with(
    pool: &PgPool,
    key: Option<&SealKey>,
    receipt_store: Option<&ReceiptStore>,
) -> Result<Report, Failure> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await?;
    let unsigned_through =
        match sqlx::query_scalar::<_, bool>("SELECT to_regclass('event_authentication') IS NOT NULL")
            .fetch_one(pool)
            .await?
        {
            true => Some(pettycash_projections::seal::unsigned_through(pool).await?),
            false => None,
        };
    let mut progress = Progress::new("verify", total.max(0) as u64);
    let mut tracker = SealTracker::new(key.cloned());
    // The seals are read first: every event a seal covers was committed before the seal, so
    // the events query, which starts later, sees all of them.
    let seal_sql = format!("SELECT {SEAL_COLUMNS} FROM event_seals ORDER BY seal_id");
    let mut seals = sqlx::query_as::<_, Seal>(&seal_sql).fetch(pool);
    tracker.push_seal(seals.try_next().await?);
    let read = reader::in_order(&Selection::hashed(), Filter::Everything);
    let mut rows = read.fetch::<HashedRow>(pool);
    let mut v = Verifier::authenticating(key.map(|k| k.events.clone()), unsigned_through);
    v.check_receipt_files = receipt_store.is_some();
    while let Some(row) = rows.try_next().await? {
        while tracker.wants_seal() {
            tracker.push_seal(seals.try_next().await?);
        }
        let e = &row.event;
        let hash = row.event_hash.as_deref();
        v.feed(e, hash);
        tracker.event(e.global_position, (&e.aggregate_type, &e.aggregate_id), hash);
        progress.inc();
    }
    while tracker.wants_seal() {
        tracker.push_seal(seals.try_next().await?);
    }
    tracker.finish_window();
    progress.finish();
    match budgets::compare_consumption(pool, &v.budgets.consumed, v.last_position).await? {
        Ok(violations) => v.violations.extend(violations),
        Err(not_checked) => v.not_checked_extra.push(not_checked),
    }
    if let Some(store) = receipt_store {
        v.check_receipts(store).await?;
    }
    Ok(v.finish(tracker, key.map(|k| k.id.clone())))
}

/// `verify`: prints the report; exit 1 when there is any violation.
pub async fn verify(
    pool: &PgPool,
    key: Option<&SealKey>,
    receipt_store: Option<&ReceiptStore>,
    format: HistoryFormat,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let report = verify_store_with(pool, key, receipt_store).await?;
    let s = &report.summary;
    match format {
        HistoryFormat::Json => writeln!(out, "{}", serde_json::to_string(&report)?)?,
        HistoryFormat::Text => {
            writeln!(out, "events: {}", s.events)?;
            let pos = |p: Option<i64>| p.map_or("-".to_string(), |p| p.to_string());
            writeln!(out, "positions: {}..{}", pos(s.first_position), pos(s.last_position))?;
            for (t, n) in &s.aggregates {
                writeln!(out, "aggregates {t}: {n}")?;
            }
            writeln!(out, "funds: {}", s.funds)?;
            for (c, total) in &s.totals {
                writeln!(out, "total balance {c}: {total}")?;
            }
            writeln!(out, "ledger digest (sha256 of fund_id|balance): {}", s.ledger_digest)?;
            writeln!(
                out,
                "hashed events: {} (recorded before hashing existed: {})",
                s.hashed_events, s.unhashed_events
            )?;
            writeln!(
                out,
                "authenticated events: {} (recorded before events were authenticated: {})",
                s.authenticated_events, s.unsigned_events
            )?;
            match s.sealed_through {
                Some(p) => writeln!(out, "seals: {} covering positions up to {p}", s.seals)?,
                None => writeln!(out, "seals: {}", s.seals)?,
            }
            writeln!(out, "unsealed events (after the last seal): {}", s.unsealed_events)?;
            writeln!(out, "chain hash: {}", s.chain_hash)?;
            if let Some(id) = &s.seal_key_id {
                writeln!(out, "seal key: {id}")?;
            }
            for n in &s.not_checked {
                writeln!(out, "not checked: {n}")?;
            }
            writeln!(out, "violations: {}", s.violations)?;
            for v in &report.violations {
                writeln!(out, "{v}")?;
            }
        }
    }
    if !report.violations.is_empty() {
        out.flush()?;
        return Err(Failure {
            code: crate::EXIT_FAILURE,
            error: anyhow::anyhow!("{} violation(s) found", report.violations.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Feeds events in order, each at the next position and its stream's next sequence.
    struct Feed {
        v: Verifier,
        position: i64,
        sequences: HashMap<String, i64>,
    }

    impl Feed {
        fn new() -> Self {
            Feed { v: Verifier::new(), position: 0, sequences: HashMap::new() }
        }

        fn push(
            &mut self,
            aggregate_type: &str,
            id: impl std::fmt::Display,
            payload: serde_json::Value,
        ) -> i64 {
            self.push_at(aggregate_type, id, payload, chrono::Utc::now())
        }

        /// `push`, recorded at `at`.
        fn push_at(
            &mut self,
            aggregate_type: &str,
            id: impl std::fmt::Display,
            payload: serde_json::Value,
            at: chrono::DateTime<chrono::Utc>,
        ) -> i64 {
            self.position += 1;
            let seq = self.sequences.entry(format!("{aggregate_type}/{id}")).or_insert(0);
            *seq += 1;
            let e = EventRow {
                global_position: self.position,
                aggregate_type: aggregate_type.into(),
                aggregate_id: id.to_string(),
                sequence: *seq,
                event_type: payload.as_object().unwrap().keys().next().unwrap().clone(),
                event_version: "1".into(),
                payload: serde_json::value::to_raw_value(&payload).unwrap().into(),
                metadata: serde_json::value::to_raw_value(&json!({})).unwrap().into(),
                recorded_at: at,
            };
            self.v.feed(&e, None);
            self.position
        }

        fn user(&mut self, id: Uuid, roles: &[&str]) {
            self.push(
                "user",
                id,
                json!({"UserRegistered": {"user_id": id, "email": "e", "name": "n", "roles": roles,
                    "registered_by": null}}),
            );
        }

        fn rules(self) -> Vec<(i64, &'static str)> {
            self.v
                .finish(SealTracker::new(None), None)
                .violations
                .into_iter()
                .map(|v| (v.position, v.rule))
                .collect()
        }
    }

    fn approved(step: usize, role: &str, by: Uuid) -> serde_json::Value {
        json!({"RequisitionApproved": {"step": step, "role": role, "approver_id": by, "completes_chain": false}})
    }

    fn paid(payment: Uuid, fund: Uuid, amount: &str, by: Uuid) -> serde_json::Value {
        json!({"RequisitionPaid": {"payment_id": payment, "fund_id": fund, "amount": amount, "method": "cash",
            "reference": null, "paid_by": by}})
    }

    fn disbursed(payment: Uuid, req: Uuid, amount: &str, after: &str, by: Uuid) -> serde_json::Value {
        json!({"CashDisbursed": {"payment_id": payment, "requisition_id": req, "amount": amount,
            "balance_after": after, "method": "cash", "reference": null, "paid_by": by}})
    }

    #[test]
    fn reservations_end_exactly_once_with_their_amount_and_never_overdraw() {
        let mut f = Feed::new();
        let (fund, by) = (Uuid::now_v7(), Uuid::now_v7());
        let (p1, p2, p3, p4) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        f.push(
            "fund",
            fund,
            json!({"FundOpened": {"fund_id": fund, "name": "F", "currency": "KES", "float": "100.00",
                "custodian_id": null, "opened_by": by, "unit": null}}),
        );
        let reserve = |p: Uuid, amount: &str| {
            json!({"CashReserved": {"payment_id": p, "requisition_id": p, "amount": amount,
                "method": "mobile_money", "reserved_by": by}})
        };
        let release = |p: Uuid, amount: &str| json!({"ReservationReleased": {"payment_id": p, "amount": amount, "reason": "failed"}});
        let consume = |p: Uuid, amount: &str, after: &str, reserved: &str| {
            json!({"CashDisbursed": {"payment_id": p, "requisition_id": p, "amount": amount,
                "balance_after": after, "method": "mobile_money", "reference": null, "paid_by": by,
                "reserved": reserved}})
        };
        f.push("fund", fund, reserve(p1, "60.00"));
        let overdrawn = f.push("fund", fund, reserve(p2, "50.00"));
        let twice = f.push("fund", fund, reserve(p1, "10.00"));
        f.push("fund", fund, release(p1, "60.00"));
        let released_again = f.push("fund", fund, release(p1, "60.00"));
        let never_reserved = f.push("fund", fund, consume(p3, "5.00", "95.00", "5.00"));
        f.push("fund", fund, reserve(p4, "20.00"));
        let mismatch = f.push("fund", fund, consume(p4, "25.00", "70.00", "25.00"));
        let rules: Vec<_> = f
            .rules()
            .into_iter()
            .filter(|(_, r)| r.starts_with("reservation") || r.starts_with("overdrawn"))
            .collect();
        assert_eq!(
            rules,
            [
                (overdrawn, "overdrawn_by_reservation"),
                (twice, "reservation_twice"),
                (released_again, "reservation_not_open"),
                (never_reserved, "reservation_not_open"),
                (mismatch, "reservation_mismatch"),
            ]
        );
    }

    #[test]
    fn a_provider_payment_ends_once_and_only_after_it_started() {
        let mut f = Feed::new();
        let (req, fund, by, p1, p2) =
            (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let started = |p: Uuid| {
            json!({"PaymentStarted": {"payment_id": p, "fund_id": fund, "amount": "10.00",
                "method": "bank", "reference": null, "paid_by": by}})
        };
        let paid_by_bank = |p: Uuid| {
            json!({"RequisitionPaid": {"payment_id": p, "fund_id": fund, "amount": "10.00", "method": "bank",
                "reference": null, "paid_by": by}})
        };
        let without = f.push("requisition", req, paid_by_bank(p1));
        f.push("requisition", req, started(p1));
        let twice = f.push("requisition", req, started(p2));
        f.push(
            "requisition",
            req,
            json!({"PaymentFailed": {"payment_id": p2, "reason": "2001: unregistered"}}),
        );
        let failed_again =
            f.push("requisition", req, json!({"PaymentFailed": {"payment_id": p2, "reason": "again"}}));
        let rules: Vec<_> = f
            .rules()
            .into_iter()
            .filter(|(_, r)| r.starts_with("provider_payment") || r.starts_with("payment_started"))
            .collect();
        assert_eq!(
            rules,
            [
                (without, "provider_payment_without_start"),
                (twice, "payment_started_twice"),
                (failed_again, "provider_payment_without_start"),
            ]
        );
    }

    struct World {
        f: Feed,
        fund: Uuid,
        req: Uuid,
        staff: Uuid,
        head: Uuid,
        gfm: Uuid,
        treasury: Uuid,
    }

    /// Users, a fund of 1000 and a requisition of 100 submitted with a two-step chain.
    fn world() -> World {
        let (fund, req, staff, head, gfm, treasury) =
            (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut f = Feed::new();
        f.user(staff, &["staff"]);
        f.user(head, &["department_head"]);
        f.user(gfm, &["group_finance_manager"]);
        f.user(treasury, &["treasury"]);
        f.push(
            "approval_policy",
            "default",
            json!({"ApprovalPolicyChanged": {"version": 1, "changed_by": head,
                "tiers": [{"up_to": null, "chain": ["department_head", "group_finance_manager"]}]}}),
        );
        f.push(
            "fund",
            fund,
            json!({"FundOpened": {"fund_id": fund, "name": "F", "currency": "KES", "float": "1000.00",
                "custodian_id": null, "opened_by": head}}),
        );
        f.push(
            "requisition",
            req,
            json!({"RequisitionCreated": {"requisition_id": req, "fund_id": fund, "currency": "KES",
                "amount": "100.00", "purpose": "p", "payee": null, "category": null, "requester_id": staff}}),
        );
        f.push(
            "requisition",
            req,
            json!({"RequisitionSubmitted": {"amount": "100.00", "chain": ["department_head", "group_finance_manager"],
                "policy_version": 1, "submitted_by": staff}}),
        );
        World { f, fund, req, staff, head, gfm, treasury }
    }

    fn pay(w: &mut World, by: Uuid) -> (i64, i64) {
        let payment = Uuid::new_v4();
        let p = w.f.push("requisition", w.req, paid(payment, w.fund, "100.00", by));
        let d = w.f.push("fund", w.fund, disbursed(payment, w.req, "100.00", "900.00", by));
        (p, d)
    }

    fn settled(
        req: Uuid,
        settlement: Uuid,
        spent: &str,
        returned: &str,
        after: &str,
        by: Uuid,
    ) -> serde_json::Value {
        json!({"AdvanceSettled": {"requisition_id": req, "settlement_id": settlement, "spent": spent,
            "returned": returned, "outstanding_after": after, "receipt_ids": [], "note": null,
            "reimbursement_requisition_id": null, "extra_owed": null, "settled_by": by, "at": chrono::Utc::now()}})
    }

    fn returned(req: Uuid, settlement: Uuid, amount: &str, after: &str, by: Uuid) -> serde_json::Value {
        json!({"AdvanceCashReturned": {"requisition_id": req, "settlement_id": settlement, "amount": amount,
            "balance_after": after, "returned_by": by}})
    }

    #[test]
    fn advances_settled_within_what_was_paid_with_their_cash_returned_are_clean_and_tampering_is_reported() {
        let mut w = world();
        let (req, staff, fund) = (w.req, w.staff, w.fund);
        w.f.push(
            "advance_account",
            staff,
            json!({"AdvanceRequested": {"holder_id": staff, "requisition_id": req, "fund_id": fund,
                "currency": "KES", "amount": "100.00"}}),
        );
        let early =
            w.f.push("advance_account", staff, settled(req, Uuid::new_v4(), "10.00", "0.00", "90.00", staff));
        w.f.push(
            "advance_account",
            staff,
            json!({"AdvanceIssued": {"requisition_id": req, "payment_id": Uuid::new_v4(),
                "paid_at": chrono::Utc::now(), "due_at": chrono::Utc::now()}}),
        );
        let (s1, s2, s3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        // 30 spent and 20 returned: clean, the fund received the 20.
        w.f.push("advance_account", staff, settled(req, s1, "30.00", "20.00", "40.00", staff));
        w.f.push("fund", fund, returned(req, s1, "20.00", "1020.00", staff));
        // The fund received more than the settlement returned.
        w.f.push("advance_account", staff, settled(req, s2, "0.00", "10.00", "30.00", staff));
        let more = w.f.push("fund", fund, returned(req, s2, "15.00", "1035.00", staff));
        // Settled beyond the advance (60 more of the 30 left); and a return no settlement made.
        let beyond = w.f.push("advance_account", staff, settled(req, s3, "60.00", "0.00", "0.00", staff));
        let orphan = w.f.push("fund", fund, returned(req, Uuid::new_v4(), "5.00", "1040.00", staff));
        let mut rules = w.f.rules();
        rules.sort();
        assert_eq!(
            rules,
            vec![
                (early, "settlement_before_payment"),
                (more, "unmatched_advance_return"),
                (beyond, "settlement_exceeds_advance"),
                (orphan, "unmatched_advance_return"),
            ]
        );
    }

    #[test]
    fn a_complete_chain_paid_by_treasury_is_clean() {
        let mut w = world();
        w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        w.f.push("requisition", w.req, approved(1, "group_finance_manager", w.gfm));
        {
            let by = w.treasury;
            pay(&mut w, by)
        };
        let report = w.f.v.finish(SealTracker::new(None), None);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert_eq!(report.summary.totals["KES"], Decimal::new(90000, 2));
        assert_eq!(report.summary.aggregates["user"], 4);
    }

    fn receipt(sha: char, by: Uuid) -> serde_json::Value {
        json!({"ReceiptAttached": {"receipt_id": Uuid::new_v4(), "sha256": sha.to_string().repeat(64), "size": 10,
            "content_type": "application/pdf", "original_name": "r.pdf", "attached_by": by}})
    }

    #[test]
    fn receipts_by_the_requester_or_treasury_after_payment_are_clean_and_others_reported() {
        let mut w = world();
        w.f.push("requisition", w.req, receipt('a', w.staff));
        let early = w.f.push("requisition", w.req, receipt('b', w.treasury));
        let approver = w.f.push("requisition", w.req, receipt('c', w.head));
        w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        w.f.push("requisition", w.req, approved(1, "group_finance_manager", w.gfm));
        {
            let by = w.treasury;
            pay(&mut w, by)
        };
        w.f.push("requisition", w.req, receipt('d', w.treasury));
        let reminder = w.f.push("requisition", w.req, json!({"ReceiptOverdue": {"days": 3}}));
        assert_eq!(
            w.f.rules(),
            [
                (early, "receipt_not_allowed"),
                (approver, "receipt_not_allowed"),
                (reminder, "receipt_reminder_not_due")
            ]
        );
    }

    #[test]
    fn approving_or_paying_a_closed_requisition_is_reported() {
        let mut w = world();
        w.f.push("requisition", w.req, json!({"RequisitionRejected": {"step": 0, "role": "department_head", "reason": "no", "rejected_by": w.head}}));
        let a = w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        let b = w.f.push("requisition", w.req, approved(1, "group_finance_manager", w.gfm));
        let (p, _) = {
            let by = w.treasury;
            pay(&mut w, by)
        };
        assert_eq!(w.f.rules(), [(a, "acted_on_closed"), (b, "acted_on_closed"), (p, "acted_on_closed")]);
    }

    #[test]
    fn one_person_approving_two_steps_of_a_round_is_reported() {
        let mut w = world();
        w.f.push(
            "user",
            w.head,
            json!({"RoleGranted": {"role": "group_finance_manager", "granted_by": null}}),
        );
        w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        let b = w.f.push("requisition", w.req, approved(1, "group_finance_manager", w.head));
        {
            let by = w.treasury;
            pay(&mut w, by)
        };
        assert_eq!(w.f.rules(), [(b, "approved_twice_in_a_round")]);
    }

    #[test]
    fn paid_with_half_the_chain_is_incomplete() {
        let mut w = world();
        w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        let (p, _) = {
            let by = w.treasury;
            pay(&mut w, by)
        };
        assert_eq!(w.f.rules(), [(p, "incomplete_approval")]);
    }

    #[test]
    fn a_revoked_role_no_longer_counts() {
        let mut w = world();
        w.f.push("user", w.head, json!({"RoleRevoked": {"role": "department_head", "revoked_by": null}}));
        let a = w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        w.f.push("user", w.treasury, json!({"RoleRevoked": {"role": "treasury", "revoked_by": null}}));
        w.f.push("user", w.treasury, json!({"RoleGranted": {"role": "cfo", "granted_by": null}}));
        w.f.push("requisition", w.req, approved(1, "group_finance_manager", w.gfm));
        let (p, _) = {
            let by = w.treasury;
            pay(&mut w, by)
        };
        assert_eq!(w.f.rules(), [(a, "approver_lacks_role"), (p, "payer_lacks_role")]);
    }

    #[test]
    fn approvals_out_of_order_and_of_an_earlier_round() {
        let mut w = world();
        let a = w.f.push("requisition", w.req, approved(1, "group_finance_manager", w.gfm));
        w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 1, "role": "group_finance_manager", "requested_by": w.gfm,
                "reason": "r"}}),
        );
        // Resubmitted under a changed policy: a shorter chain.
        w.f.push(
            "approval_policy",
            "default",
            json!({"ApprovalPolicyChanged": {"version": 2, "changed_by": w.head,
                "tiers": [{"up_to": null, "chain": ["department_head"]}]}}),
        );
        w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionSubmitted": {"amount": "100.00", "chain": ["department_head"],
                "policy_version": 2, "submitted_by": w.staff}}),
        );
        w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        // The gfm approved in the first round and now holds treasury too: still not the payer.
        w.f.push("user", w.gfm, json!({"RoleGranted": {"role": "treasury", "granted_by": null}}));
        let (p, _) = {
            let by = w.gfm;
            pay(&mut w, by)
        };
        // Changes requested once the out-of-order approval completed the chain: no step waited.
        assert_eq!(
            w.f.rules(),
            [(a, "approval_out_of_order"), (a + 1, "decision_not_allowed"), (p, "paid_by_approver")]
        );
    }

    #[test]
    fn payments_must_pair_up() {
        let mut w = world();
        w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        w.f.push("requisition", w.req, approved(1, "group_finance_manager", w.gfm));
        let payment = Uuid::new_v4();
        w.f.push("requisition", w.req, paid(payment, w.fund, "100.00", w.treasury));
        let d = w.f.push("fund", w.fund, disbursed(payment, w.req, "90.00", "900.00", w.treasury));
        let orphan =
            w.f.push("fund", w.fund, disbursed(Uuid::new_v4(), Uuid::new_v4(), "1.00", "909.00", w.treasury));
        assert_eq!(
            w.f.rules(),
            [(d, "balance_mismatch"), (d, "payment_mismatch"), (orphan, "unmatched_payment")]
        );
    }

    #[test]
    fn approving_or_paying_what_ones_sponsor_requested_or_approved_is_reported() {
        let mut w = world();
        // The head registered by the requester, the treasurer granted a role by the gfm.
        let (puppet_head, puppet_payer) = (Uuid::new_v4(), Uuid::new_v4());
        w.f.push(
            "user",
            puppet_head,
            json!({"UserRegistered": {"user_id": puppet_head, "email": "e", "name": "n",
                "roles": ["department_head"], "registered_by": w.staff}}),
        );
        w.f.user(puppet_payer, &["staff"]);
        w.f.push("user", puppet_payer, json!({"RoleGranted": {"role": "treasury", "granted_by": w.gfm}}));
        let a = w.f.push("requisition", w.req, approved(0, "department_head", puppet_head));
        w.f.push("requisition", w.req, approved(1, "group_finance_manager", w.gfm));
        let (p, _) = pay(&mut w, puppet_payer);
        assert_eq!(w.f.rules(), [(a, "approved_by_sponsored"), (p, "paid_by_sponsored")]);
    }

    #[test]
    fn an_undecodable_event_is_reported_and_replay_goes_on() {
        let mut w = world();
        let bad = w.f.push("requisition", w.req, json!({"RequisitionTeleported": {}}));
        let a = w.f.push("requisition", w.req, approved(0, "department_head", w.staff));
        let rules = w.f.rules();
        assert_eq!(rules[0], (bad, "undecodable_event"));
        assert!(rules.contains(&(a, "approved_by_requester")), "{rules:?}");
    }

    #[test]
    fn a_chain_the_policy_does_not_give_is_reported() {
        let mut w = world();
        // Resubmitted (after changes) with a step missing, under the same policy.
        w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.head, "reason": "r"}}),
        );
        let short = w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionSubmitted": {"amount": "100.00", "chain": ["group_finance_manager"],
                "policy_version": 1, "submitted_by": w.staff}}),
        );
        // Thresholds that require the CFO: a chain without that step is not the policy's.
        w.f.push(
            "approval_policy",
            "default",
            json!({"ThresholdsChanged": {"version": 2, "changed_by": w.head, "thresholds": [
                {"name": "All", "currency": null, "origin": null, "min": "0", "max": null, "priority": 10,
                 "chain": ["department_head"], "fast_track": false, "requires_cfo": true, "requires_ceo": false}]}}),
        );
        w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "group_finance_manager", "requested_by": w.gfm, "reason": "r"}}),
        );
        let no_cfo = w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionSubmitted": {"amount": "100.00", "chain": ["department_head"],
                "policy_version": 2, "submitted_by": w.staff}}),
        );
        w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.head, "reason": "r"}}),
        );
        w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionSubmitted": {"amount": "100.00", "chain": ["department_head", "cfo"],
                "policy_version": 2, "submitted_by": w.staff}}),
        );
        assert_eq!(w.f.rules(), [(short, "chain_not_from_policy"), (no_cfo, "chain_not_from_policy")]);
    }

    #[test]
    fn amounts_submitted_or_paid_that_are_not_the_requisitions_are_reported() {
        let mut w = world();
        w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.head, "reason": "r"}}),
        );
        w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionEdited": {"amount": "150.00", "purpose": null, "payee": null, "category": null}}),
        );
        // Submitted with the amount from before the edit: approvals would be for 100, not 150.
        let stale = w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionSubmitted": {"amount": "100.00", "chain": ["department_head", "group_finance_manager"],
                "policy_version": 1, "submitted_by": w.staff}}),
        );
        w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        w.f.push("requisition", w.req, approved(1, "group_finance_manager", w.gfm));
        // Paid 100 (what was approved) would be fine; 150 is not what the approvers saw.
        let payment = Uuid::new_v4();
        let p = w.f.push("requisition", w.req, paid(payment, w.fund, "150.00", w.treasury));
        w.f.push("fund", w.fund, disbursed(payment, w.req, "150.00", "850.00", w.treasury));
        assert_eq!(w.f.rules(), [(stale, "submitted_amount_mismatch"), (p, "paid_amount_mismatch")]);
    }

    #[test]
    fn a_route_other_than_routing_gives_and_an_approver_it_did_not_name_are_reported() {
        let mut w = world();
        w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.head, "reason": "r"}}),
        );
        // Routed as the command side does: each step to the unscoped holders of its role.
        let routed = |eligible: serde_json::Value| {
            json!({"RequisitionSubmitted": {"amount": "100.00", "chain": ["department_head", "group_finance_manager"],
                "policy_version": 1, "submitted_by": w.staff, "threshold": "Tier 1", "eligible": eligible,
                "comment": null}})
        };
        w.f.push("requisition", w.req, routed(json!([[w.head], [w.gfm]])));
        w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.head, "reason": "r"}}),
        );
        // The head's step given to the treasurer instead.
        let wrong = w.f.push("requisition", w.req, routed(json!([[w.treasury], [w.gfm]])));
        // And approved by the head anyway, whom it was not routed to.
        let by_head = w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        assert_eq!(w.f.rules(), [(wrong, "route_mismatch"), (by_head, "approver_not_eligible")]);
    }

    /// The world's requisition sent back at `t0` with changes due at `deadline`, then
    /// resubmitted at `t0` with its first step reminded at +24 h and escalated at +72 h.
    fn with_deadlines(
        w: &mut World,
        t0: chrono::DateTime<chrono::Utc>,
        deadline: chrono::DateTime<chrono::Utc>,
    ) {
        let h = |n| t0 + chrono::Duration::hours(n);
        w.f.push_at(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.head, "reason": "r",
                "deadline": deadline}}),
            t0,
        );
        w.f.push_at(
            "requisition",
            w.req,
            json!({"RequisitionSubmitted": {"amount": "100.00", "chain": ["department_head", "group_finance_manager"],
                "policy_version": 1, "submitted_by": w.staff, "due": {"remind_at": h(24), "escalate_at": h(72)}}}),
            t0,
        );
    }

    fn overdue_escalation(to: Uuid) -> serde_json::Value {
        json!({"ApprovalEscalated": {"step": 0, "role": "department_head", "reason": "overdue", "to": "admin",
            "people": [to]}})
    }

    #[test]
    fn the_schedulers_events_recorded_before_their_times_are_reported() {
        let mut w = world();
        let t0 = chrono::Utc::now() - chrono::Duration::days(30);
        let h = |n| t0 + chrono::Duration::hours(n);
        with_deadlines(&mut w, t0, h(48));
        let reminded = w.f.push_at(
            "requisition",
            w.req,
            json!({"ApprovalOverdue": {"step": 0, "role": "department_head"}}),
            h(23),
        );
        w.f.push("user", w.treasury, json!({"RoleGranted": {"role": "admin", "granted_by": null}}));
        let escalated = w.f.push_at("requisition", w.req, overdue_escalation(w.treasury), h(71));
        // Sent back again (by the admin the step went to) with a deadline, expired an hour
        // before it.
        w.f.push_at(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.treasury, "reason": "r",
                "deadline": h(200)}}),
            h(100),
        );
        let expired =
            w.f.push_at("requisition", w.req, json!({"RequisitionExpired": {"deadline": h(200)}}), h(199));
        assert_eq!(
            w.f.rules(),
            [(reminded, "reminded_early"), (escalated, "escalated_early"), (expired, "expired_early")]
        );

        // An expiry naming another deadline than the one recorded.
        let mut w = world();
        with_deadlines(&mut w, t0, h(48));
        w.f.push_at(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.head, "reason": "r",
                "deadline": h(200)}}),
            h(1),
        );
        let other =
            w.f.push_at("requisition", w.req, json!({"RequisitionExpired": {"deadline": h(2)}}), h(3));
        assert_eq!(w.f.rules(), [(other, "expired_early")]);
    }

    #[test]
    fn the_schedulers_events_at_or_after_their_times_are_clean() {
        let mut w = world();
        let t0 = chrono::Utc::now() - chrono::Duration::days(30);
        let h = |n| t0 + chrono::Duration::hours(n);
        with_deadlines(&mut w, t0, h(48));
        w.f.push_at(
            "requisition",
            w.req,
            json!({"ApprovalOverdue": {"step": 0, "role": "department_head"}}),
            h(24),
        );
        w.f.push("user", w.treasury, json!({"RoleGranted": {"role": "admin", "granted_by": null}}));
        w.f.push_at("requisition", w.req, overdue_escalation(w.treasury), h(72));
        w.f.push_at(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.treasury,
                "reason": "r", "deadline": h(200)}}),
            h(100),
        );
        w.f.push_at("requisition", w.req, json!({"RequisitionExpired": {"deadline": h(200)}}), h(201));
        let report = w.f.v.finish(SealTracker::new(None), None);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
    }

    #[test]
    fn urgency_and_override_within_the_rules_are_clean() {
        // Confirmed urgency on the tiers (which allow no fast-track): the chain goes on.
        let mut w = world();
        w.f.push(
            "requisition",
            w.req,
            json!({"UrgencyDeclared": {"reason": "r", "fast_track_allowed": false}}),
        );
        w.f.push(
            "requisition",
            w.req,
            json!({"UrgencyConfirmed": {"confirmed_by": w.head, "fast_tracked": false, "comment": null, "due": null}}),
        );
        w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        // An admin overrides the last step; a treasurer pays.
        let admin = Uuid::new_v4();
        w.f.user(admin, &["admin"]);
        w.f.push(
            "requisition",
            w.req,
            json!({"ApprovalOverridden": {"overridden_by": admin, "justification": "flood", "skipped": [1]}}),
        );
        let by = w.treasury;
        pay(&mut w, by);
        let report = w.f.v.finish(SealTracker::new(None), None);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
    }

    #[test]
    fn a_fast_track_the_threshold_does_not_allow_is_reported() {
        let mut w = world();
        // The tiers in force allow no fast-track: claimed allowed, then fast-tracked anyway.
        let declared = w.f.push(
            "requisition",
            w.req,
            json!({"UrgencyDeclared": {"reason": "r", "fast_track_allowed": true}}),
        );
        let mut w2 = world();
        w2.f.push(
            "requisition",
            w2.req,
            json!({"UrgencyDeclared": {"reason": "r", "fast_track_allowed": false}}),
        );
        let confirmed = w2.f.push(
            "requisition",
            w2.req,
            json!({"UrgencyConfirmed": {"confirmed_by": w2.head, "fast_tracked": true, "comment": null, "due": null}}),
        );
        // The final step approves straight away, as a fast-track would let it.
        w2.f.push(
            "requisition",
            w2.req,
            json!({"RequisitionApproved": {"step": 1, "role": "group_finance_manager",
            "approver_id": w2.gfm, "completes_chain": true}}),
        );
        assert_eq!(w.f.rules(), [(declared, "fast_track_not_allowed")]);
        assert_eq!(w2.f.rules(), [(confirmed, "fast_track_not_allowed")]);
    }

    #[test]
    fn decisions_by_people_the_step_was_not_for_are_reported() {
        // Urgency confirmed by the gfm (the first step is the head's), and changes requested
        // by the requester.
        let mut w = world();
        w.f.push(
            "requisition",
            w.req,
            json!({"UrgencyDeclared": {"reason": "r", "fast_track_allowed": false}}),
        );
        let confirmed = w.f.push(
            "requisition",
            w.req,
            json!({"UrgencyConfirmed": {"confirmed_by": w.gfm, "fast_tracked": false, "comment": null, "due": null}}),
        );
        let twice =
            w.f.push("requisition", w.req, json!({"UrgencyDenied": {"denied_by": w.head, "reason": "no"}}));
        let by_requester = w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.staff, "reason": "r"}}),
        );
        assert_eq!(
            w.f.rules(),
            [
                (confirmed, "decision_not_allowed"),
                (twice, "decision_not_allowed"),
                (by_requester, "decision_not_allowed")
            ]
        );
        // Rejected by a treasurer at the head's step.
        let mut w = world();
        let rejected = w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionRejected": {"step": 0, "role": "department_head", "rejected_by": w.treasury, "reason": "no"}}),
        );
        assert_eq!(w.f.rules(), [(rejected, "decision_not_allowed")]);
    }

    #[test]
    fn overrides_by_the_requester_an_approver_or_a_non_admin_are_reported_and_the_overrider_may_not_pay() {
        let overridden = |by: Uuid| json!({"ApprovalOverridden": {"overridden_by": by, "justification": "j", "skipped": [0, 1]}});
        // The requester, made admin.
        let mut w = world();
        w.f.push("user", w.staff, json!({"RoleGranted": {"role": "admin", "granted_by": null}}));
        let own = w.f.push("requisition", w.req, overridden(w.staff));
        assert_eq!(w.f.rules(), [(own, "override_not_allowed")]);
        // A non-admin.
        let mut w = world();
        let not_admin = w.f.push("requisition", w.req, overridden(w.gfm));
        assert_eq!(w.f.rules(), [(not_admin, "override_not_allowed")]);
        // The head approved step 0, then overrode as an admin, then paid as a treasurer.
        let mut w = world();
        w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        for role in ["admin", "treasury"] {
            w.f.push("user", w.head, json!({"RoleGranted": {"role": role, "granted_by": null}}));
        }
        let by_approver = w.f.push("requisition", w.req, overridden(w.head));
        let by = w.head;
        let (p, _) = pay(&mut w, by);
        assert_eq!(w.f.rules(), [(by_approver, "override_not_allowed"), (p, "paid_by_approver")]);
    }

    #[test]
    fn edits_and_cancellations_by_someone_else_or_too_late_are_reported() {
        let mut w = world();
        // A cancellation by the head, then a payment-less edit after it.
        let cancelled = w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionCancelled": {"cancelled_by": w.head, "reason": null}}),
        );
        let edited = w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionEdited": {"amount": "1.00", "purpose": null, "payee": null, "category": null}}),
        );
        assert_eq!(w.f.rules(), [(cancelled, "not_by_requester"), (edited, "acted_on_closed")]);
        // Cancelled by its requester while pending: clean.
        let mut w = world();
        w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionCancelled": {"cancelled_by": w.staff, "reason": null}}),
        );
        assert!(w.f.rules().is_empty());
    }

    // ----- payment reconciliation (`reconcile`) --------------------------------------------

    fn reconciled(payment: Uuid, fund: Uuid, reference: &str, by: Uuid) -> serde_json::Value {
        json!({"PaymentReconciled": {"payment_id": payment, "fund_id": fund, "statement_reference": reference,
            "reconciled_by": by, "at": chrono::Utc::now()}})
    }

    /// The world's requisition approved, and paid by `method` (payment id returned).
    fn paid_by(method: &str) -> (World, Uuid) {
        let mut w = world();
        w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        w.f.push("requisition", w.req, approved(1, "group_finance_manager", w.gfm));
        let payment = Uuid::new_v4();
        let through_provider = method != "cash";
        if through_provider {
            let started = json!({"PaymentStarted": {"payment_id": payment, "fund_id": w.fund, "amount": "100.00",
                "method": method, "reference": null, "paid_by": w.treasury}});
            w.f.push("requisition", w.req, started);
            let reserved = json!({"CashReserved": {"payment_id": payment, "requisition_id": w.req,
                "amount": "100.00", "method": method, "reserved_by": w.treasury}});
            w.f.push("fund", w.fund, reserved);
        }
        let mut p = paid(payment, w.fund, "100.00", w.treasury);
        p["RequisitionPaid"]["method"] = json!(method);
        w.f.push("requisition", w.req, p);
        let mut d = disbursed(payment, w.req, "100.00", "900.00", w.treasury);
        d["CashDisbursed"]["method"] = json!(method);
        if through_provider {
            d["CashDisbursed"]["reserved"] = json!("100.00");
        }
        w.f.push("fund", w.fund, d);
        (w, payment)
    }

    #[test]
    fn a_succeeded_bank_payment_reconciled_once_is_clean() {
        let (mut w, payment) = paid_by("bank");
        let by = Uuid::new_v4();
        w.f.push("requisition", w.req, reconciled(payment, w.fund, "STMT-1", by));
        assert_eq!(w.f.rules(), []);
    }

    #[test]
    fn a_reconciliation_of_a_payment_that_did_not_succeed_or_twice_is_reported() {
        // Twice.
        let (mut w, payment) = paid_by("mobile_money");
        let by = Uuid::new_v4();
        w.f.push("requisition", w.req, reconciled(payment, w.fund, "STMT-1", by));
        let second = w.f.push("requisition", w.req, reconciled(payment, w.fund, "STMT-2", by));
        assert_eq!(w.f.rules(), [(second, "double_reconciliation")]);
        // Of another payment than the one that paid it.
        let (mut w, _) = paid_by("bank");
        let other = w.f.push("requisition", w.req, reconciled(Uuid::new_v4(), w.fund, "STMT-1", by));
        assert_eq!(w.f.rules(), [(other, "reconciled_unpaid")]);
        // Before any payment.
        let mut w = world();
        let (req, fund) = (w.req, w.fund);
        let early = w.f.push("requisition", req, reconciled(Uuid::new_v4(), fund, "STMT-1", by));
        assert_eq!(w.f.rules(), [(early, "reconciled_unpaid")]);
        // A cash payment.
        let (mut w, payment) = paid_by("cash");
        let cash = w.f.push("requisition", w.req, reconciled(payment, w.fund, "STMT-1", by));
        assert_eq!(w.f.rules(), [(cash, "reconciled_cash")]);
    }

    // ----- possible duplicates and FP&A review (`review`) ---------------------------------

    /// The world's requisition approved by head and finance manager, paid by treasury.
    fn paid_world() -> World {
        let mut w = world();
        w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        w.f.push("requisition", w.req, approved(1, "group_finance_manager", w.gfm));
        let by = w.treasury;
        pay(&mut w, by);
        w
    }

    fn reviewed(by: Uuid) -> serde_json::Value {
        json!({"PaymentReviewed": {"reviewed_by": by, "comment": null, "at": chrono::Utc::now()}})
    }

    fn flagged(by: Uuid) -> serde_json::Value {
        json!({"PaymentFlagged": {"flagged_by": by, "reason": "r", "at": chrono::Utc::now()}})
    }

    #[test]
    fn a_review_then_a_flag_by_analysts_who_took_no_part_is_clean() {
        let mut w = paid_world();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        w.f.user(a, &["fpa"]);
        w.f.user(b, &["fpa"]);
        w.f.push("requisition", w.req, reviewed(a));
        w.f.push("requisition", w.req, flagged(b));
        assert_eq!(w.f.rules(), []);
    }

    #[test]
    fn a_review_by_someone_who_took_part_is_reported() {
        for part in ["staff", "head", "gfm", "treasury"] {
            let mut w = paid_world();
            let who = match part {
                "staff" => w.staff,
                "head" => w.head,
                "gfm" => w.gfm,
                _ => w.treasury,
            };
            w.f.push("user", who, json!({"RoleGranted": {"role": "fpa", "granted_by": Uuid::new_v4()}}));
            let p = w.f.push("requisition", w.req, reviewed(who));
            assert_eq!(w.f.rules(), [(p, "reviewed_by_participant")], "{part}");
        }
    }

    #[test]
    fn a_review_by_someone_who_asked_for_changes_is_reported() {
        let mut w = world();
        let analyst = Uuid::new_v4();
        w.f.user(analyst, &["fpa", "department_head"]);
        w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": analyst,
                "reason": "r", "deadline": null}}),
        );
        w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionSubmitted": {"amount": "100.00", "chain": ["department_head", "group_finance_manager"],
                "policy_version": 1, "submitted_by": w.staff}}),
        );
        w.f.push("requisition", w.req, approved(0, "department_head", w.head));
        w.f.push("requisition", w.req, approved(1, "group_finance_manager", w.gfm));
        let by = w.treasury;
        pay(&mut w, by);
        let p = w.f.push("requisition", w.req, flagged(analyst));
        assert_eq!(w.f.rules(), [(p, "reviewed_by_participant")]);
    }

    #[test]
    fn a_review_by_someone_without_fpa_or_sponsored_by_a_participant_is_reported() {
        let mut w = paid_world();
        let auditor = Uuid::new_v4();
        w.f.user(auditor, &["auditor"]);
        let lacking = w.f.push("requisition", w.req, reviewed(auditor));
        let mut w2 = paid_world();
        let puppet = Uuid::new_v4();
        w2.f.push(
            "user",
            puppet,
            json!({"UserRegistered": {"user_id": puppet, "email": "p", "name": "p", "roles": ["fpa"],
                "registered_by": w2.treasury}}),
        );
        let sponsored = w2.f.push("requisition", w2.req, reviewed(puppet));
        assert_eq!(w.f.rules(), [(lacking, "reviewer_lacks_role")]);
        assert_eq!(w2.f.rules(), [(sponsored, "reviewed_by_sponsored")]);
    }

    #[test]
    fn a_review_before_payment_or_a_second_one_is_reported() {
        let mut w = world();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        w.f.user(a, &["fpa"]);
        w.f.user(b, &["fpa"]);
        let early = w.f.push("requisition", w.req, reviewed(a));
        assert_eq!(w.f.rules(), [(early, "reviewed_before_payment")]);

        let mut w = paid_world();
        w.f.user(a, &["fpa"]);
        w.f.user(b, &["fpa"]);
        w.f.push("requisition", w.req, flagged(a));
        let again = w.f.push("requisition", w.req, reviewed(b));
        assert_eq!(w.f.rules(), [(again, "reviewed_twice")]);
    }

    #[test]
    fn a_duplicate_flag_dismissed_by_the_requester_or_when_none_stands_is_reported() {
        let suspected = json!({"DuplicateSuspected": {"others": [Uuid::new_v4()], "window_days": 30}});
        let resubmitted = json!({"RequisitionSubmitted": {"amount": "100.00",
            "chain": ["department_head", "group_finance_manager"], "policy_version": 1}});
        let dismissed = |by: Uuid| json!({"DuplicateDismissed": {"dismissed_by": by, "reason": "r"}});
        // The world's submission had no flag.
        let mut w = world();
        let none = w.f.push("requisition", w.req, dismissed(w.head));
        assert_eq!(w.f.rules(), [(none, "duplicate_dismissed_without_flag")]);

        let mut w = world();
        w.f.push("requisition", w.req, suspected.clone());
        let mut resubmitted = resubmitted.clone();
        resubmitted["RequisitionSubmitted"]["submitted_by"] = json!(w.staff);
        w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.head,
                "reason": "r", "deadline": null}}),
        );
        w.f.push("requisition", w.req, suspected);
        w.f.push("requisition", w.req, resubmitted);
        w.f.push("requisition", w.req, dismissed(w.head));
        let by_requester = {
            let staff = w.staff;
            w.f.push("requisition", w.req, dismissed(staff))
        };
        assert_eq!(
            w.f.rules(),
            [
                (by_requester, "duplicate_dismissed_by_requester"),
                (by_requester, "duplicate_dismissed_without_flag")
            ]
        );
    }

    // ----- delegation -----

    /// The world's requisition routed (first step to the head), a deputy department head who
    /// joined after, and the head's delegation to them from `t0` for a week: its id.
    fn delegated_world(t0: chrono::DateTime<chrono::Utc>) -> (World, Uuid, Uuid) {
        let mut w = world();
        w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.head, "reason": "r"}}),
        );
        w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionSubmitted": {"amount": "100.00", "chain": ["department_head", "group_finance_manager"],
                "policy_version": 1, "submitted_by": w.staff, "threshold": "Tier 1",
                "eligible": [[w.head], [w.gfm]], "comment": null}}),
        );
        let deputy = Uuid::new_v4();
        w.f.user(deputy, &["department_head"]);
        let delegation = Uuid::new_v4();
        w.f.push_at("delegation", delegation, granted(delegation, w.head, deputy, "department_head", t0), t0);
        (w, deputy, delegation)
    }

    fn granted(
        id: Uuid,
        from: Uuid,
        to: Uuid,
        role: &str,
        t0: chrono::DateTime<chrono::Utc>,
    ) -> serde_json::Value {
        json!({"DelegationGranted": {"delegation_id": id, "delegator_id": from, "delegate_id": to, "role": role,
            "starts_at": t0, "ends_at": t0 + chrono::Duration::days(7), "company_id": null, "granted_by": from}})
    }

    fn approved_for(
        step: usize,
        role: &str,
        by: Uuid,
        on_behalf_of: Uuid,
        delegation: Uuid,
    ) -> serde_json::Value {
        json!({"RequisitionApproved": {"step": step, "role": role, "approver_id": by, "completes_chain": false,
            "on_behalf_of": on_behalf_of, "delegation_id": delegation}})
    }

    #[test]
    fn an_approval_on_behalf_of_the_steps_approver_by_their_active_delegation_is_clean() {
        let t0 = chrono::Utc::now() - chrono::Duration::days(1);
        let (mut w, deputy, delegation) = delegated_world(t0);
        w.f.push("requisition", w.req, approved_for(0, "department_head", deputy, w.head, delegation));
        let rejected = json!({"RequisitionRejected": {"step": 1, "role": "group_finance_manager",
            "rejected_by": w.gfm, "reason": "no"}});
        w.f.push("requisition", w.req, rejected);
        assert_eq!(w.f.rules(), []);
    }

    #[test]
    fn a_decision_on_behalf_of_someone_without_their_delegation_in_force_is_reported() {
        let t0 = chrono::Utc::now() - chrono::Duration::days(1);
        // A made-up delegation id.
        let (mut w, deputy, _) = delegated_world(t0);
        let forged = w.f.push(
            "requisition",
            w.req,
            approved_for(0, "department_head", deputy, w.head, Uuid::new_v4()),
        );
        assert_eq!(w.f.rules(), [(forged, "delegation_not_held")]);
        // Recorded after the delegation ended.
        let (mut w, deputy, delegation) = delegated_world(t0 - chrono::Duration::days(30));
        let late =
            w.f.push("requisition", w.req, approved_for(0, "department_head", deputy, w.head, delegation));
        assert_eq!(w.f.rules(), [(late, "delegation_not_held")]);
        // After it was revoked.
        let (mut w, deputy, delegation) = delegated_world(t0);
        w.f.push(
            "delegation",
            delegation,
            json!({"DelegationRevoked": {"revoked_by": w.head, "reason": null}}),
        );
        let revoked =
            w.f.push("requisition", w.req, approved_for(0, "department_head", deputy, w.head, delegation));
        assert_eq!(w.f.rules(), [(revoked, "delegation_not_held")]);
        // On behalf of someone the step was not routed to (the other step's approver).
        let (mut w, deputy, delegation) = delegated_world(t0);
        let other =
            w.f.push("requisition", w.req, approved_for(0, "department_head", deputy, w.gfm, delegation));
        assert_eq!(w.f.rules(), [(other, "delegation_not_held"), (other, "approver_not_eligible")]);
        // A change request on the head's behalf by someone else than the delegate.
        let (mut w, _, delegation) = delegated_world(t0);
        let sent_back = w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 0, "role": "department_head", "requested_by": w.treasury,
                "reason": "r", "on_behalf_of": w.head, "delegation_id": delegation}}),
        );
        // (and treasury does not hold the step's role either)
        assert_eq!(w.f.rules(), [(sent_back, "delegation_not_held"), (sent_back, "decision_not_allowed")]);
    }

    #[test]
    fn a_delegation_outside_the_role_or_scope_and_a_delegate_deciding_again_are_reported() {
        let t0 = chrono::Utc::now() - chrono::Duration::days(1);
        let mut w = world();
        let (to_treasury, from_staff) = (Uuid::new_v4(), Uuid::new_v4());
        let bad = w.f.push_at(
            "delegation",
            to_treasury,
            granted(to_treasury, w.head, w.treasury, "department_head", t0),
            t0,
        );
        let not_held = w.f.push_at(
            "delegation",
            from_staff,
            granted(from_staff, w.staff, w.head, "department_head", t0),
            t0,
        );
        assert_eq!(w.f.rules(), [(bad, "delegation_not_allowed"), (not_held, "delegation_not_allowed")]);

        // The deputy approves for the head, the requisition comes back, the deputy again.
        let (mut w, deputy, delegation) = delegated_world(t0);
        w.f.push("requisition", w.req, approved_for(0, "department_head", deputy, w.head, delegation));
        w.f.push(
            "requisition",
            w.req,
            json!({"ChangesRequested": {"step": 1, "role": "group_finance_manager", "requested_by": w.gfm, "reason": "r"}}),
        );
        w.f.push(
            "requisition",
            w.req,
            json!({"RequisitionSubmitted": {"amount": "100.00", "chain": ["department_head", "group_finance_manager"],
                "policy_version": 1, "submitted_by": w.staff}}),
        );
        let again =
            w.f.push("requisition", w.req, approved_for(0, "department_head", deputy, w.head, delegation));
        assert_eq!(w.f.rules(), [(again, "delegate_already_approved")]);
    }
}
