//! The command service: one method per command. Each loads what the decision needs, asks the
//! pure aggregate(s), and appends the resulting events in one transaction, retrying on a
//! concurrent append by re-running the command on the fresh state.
//!
//! Loads come from the [`AggregateCache`] when it has the aggregate (see `cache` for why that
//! is safe with several processes): a command on a requisition or fund this process handled
//! recently is one round trip to the database, the append.

use crate::auth::hash_password;
use crate::budgets::CategoryChoice;
use crate::cache::AggregateCache;
use crate::clock::Clock;
use crate::context::CommandContext;
use crate::error::CommandError;
use crate::invitations::InvitationSetup;
use crate::locks::KeyedLocks;
use crate::store::{decide, AppendError, EventStore, Loaded, SideWrite, StreamAppend, SNAPSHOT_EVERY};
use crate::views::{
    FundView, HistoryEntry, MailPreferences, PaymentReceipt, PolicyView, RequisitionView, SettingsView,
    UserView,
};
use chrono::{DateTime, Utc};
use pettycash_domain::fund::{Fund, FundCommand, PaymentMethod};
use pettycash_domain::organisation::{Origin, UnitKind, UnitPath};
use pettycash_domain::policy::{ApprovalPolicy, PolicyCommand, Tiers, POLICY_ID};
use pettycash_domain::requisition::{Changes, Deadlines, Requisition, RequisitionCommand, Status};
use pettycash_domain::routing::{Directory, Holder, Thresholds};
use pettycash_domain::settings::{RuntimeSettings, SettingKey, Settings, SettingsCommand, SETTINGS_ID};
use pettycash_domain::user::{Requester, User, UserCommand};
use pettycash_domain::visibility::{may_read_fund, may_see_user};
use pettycash_domain::{Actor, Currency, DomainError, Id, MailCategory, Role};
use rust_decimal::Decimal;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How many times a command is re-run after losing a race to a concurrent append.
const MAX_ATTEMPTS: u32 = 6;

// Fund operations (issue #14 [treasury]): settings, replenishment, counts, period close,
// closing.
mod fund_ops;
pub use fund_ops::FundSettingsPatch;

/// How old cached settings may be when a rule reads them (a change made through another
/// process takes effect here within this time).
pub const SETTINGS_MAX_AGE: Duration = Duration::from_secs(1);

/// How old a cached approval policy may be when a submission uses it. A policy changed through
/// this process is cached at once; one changed through another process applies here within
/// this time.
pub const POLICY_MAX_AGE: Duration = Duration::from_secs(1);

/// Whether an attempt may decide on cached aggregates, or must load them from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Cache,
    Store,
}

/// A command's answer and the global position of its last event.
#[derive(Debug, Clone)]
pub struct Outcome<T> {
    pub value: T,
    pub position: i64,
}

/// Input of `create_requisition`.
#[derive(Debug, Clone)]
pub struct NewRequisition {
    pub fund_id: Id,
    pub amount: Decimal,
    /// When given, must be the fund's currency.
    pub currency: Option<String>,
    pub purpose: String,
    pub payee: Option<String>,
    pub category: Option<String>,
    /// Submit for approval right away.
    pub submit: bool,
    /// With `submit`: the requester marks it urgent, for this reason.
    pub urgent_reason: Option<String>,
    /// The origin the requester asks for (`None`: the one their unit gives;
    /// `Origin::of`).
    pub origin: Option<Origin>,
    /// An advance: paid before the spend, then settled by the requester
    /// (`CommandService::settle_advance`).
    pub advance: bool,
}

#[derive(Clone)]
pub struct CommandService {
    store: EventStore,
    pub(crate) locks: Arc<KeyedLocks>,
    cache: Arc<AggregateCache>,
    /// The time decisions are made with (`Clock::now`; tests move it).
    clock: Clock,
    /// What issuing invitations needs (their tokens' key, their links); `None` in services
    /// that issue none (the command line).
    invitations: Option<Arc<InvitationSetup>>,
    /// The payment provider bank and mobile-money payments go through; `None` in services
    /// that send none (the command line).
    provider: Option<Arc<dyn crate::providers::PaymentProvider>>,
}

/// The approval policy and the runtime settings are one stream for every company: an admin of
/// one company does not change them for the others, only an admin of no unit may.
fn organisation_admin(actor: &Actor, action: &'static str) -> Result<(), CommandError> {
    if actor.has(Role::Admin) && actor.company().is_some() {
        return Err(DomainError::OrganisationAdminOnly { action }.into());
    }
    Ok(())
}

/// The actor of a user command; operator contexts may not run user commands.
fn actor(ctx: &CommandContext) -> Result<Actor, CommandError> {
    ctx.actor.clone().ok_or(CommandError::Unauthenticated("this command needs a signed-in user"))
}

fn ensure_exists<T>(found: Option<T>, what: &'static str) -> Result<T, CommandError> {
    found.ok_or(CommandError::not_found(what))
}

impl CommandService {
    pub fn new(store: EventStore) -> Self {
        Self::with_cache(store, AggregateCache::default())
    }

    /// A service with the given aggregate cache (`AggregateCache::with_capacity(0)`: none).
    pub fn with_cache(store: EventStore, cache: AggregateCache) -> Self {
        Self {
            store,
            locks: Arc::new(KeyedLocks::default()),
            cache: Arc::new(cache),
            clock: Clock::default(),
            invitations: None,
            provider: None,
        }
    }

    /// This service sending bank and mobile-money payments through `provider`.
    pub fn with_provider(mut self, provider: Arc<dyn crate::providers::PaymentProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// The payment provider, if this service has one.
    pub fn provider(&self) -> Option<&Arc<dyn crate::providers::PaymentProvider>> {
        self.provider.as_ref()
    }

    /// This service issuing invitations with `setup` (the API's service).
    pub fn with_invitations(mut self, setup: InvitationSetup) -> Self {
        self.invitations = Some(Arc::new(setup));
        self
    }

    /// What issuing invitations needs; an error in a service set up without it.
    pub(crate) fn invitation_setup(&self) -> Result<Arc<InvitationSetup>, CommandError> {
        self.invitations
            .clone()
            .ok_or_else(|| anyhow::anyhow!("this command service was not set up to issue invitations").into())
    }

    /// The links mail carries, in a service set up to issue invitations (the API's).
    pub(crate) fn links(&self) -> Option<crate::mail::Links> {
        self.invitations.as_ref().map(|s| s.links().clone())
    }

    /// The same service deciding with `clock` (a test's, shared with a server it runs).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock decisions are made with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The deadlines a step that becomes current now gets, from the settings.
    async fn deadlines(&self) -> Result<Deadlines, CommandError> {
        let waiting = self.settings().await?.waiting;
        Ok(Deadlines {
            now: self.clock.now(),
            remind_after_hours: waiting.approval_reminder_hours,
            escalate_after_hours: waiting.approval_escalation_hours,
        })
    }

    pub fn cache(&self) -> &AggregateCache {
        &self.cache
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Runs `attempt` until it does not lose a race, at most [`MAX_ATTEMPTS`] times, with a
    /// short randomised pause between attempts. The first attempt may decide on cached
    /// aggregates; after a lost race, or when it was refused (a business rule, "not found"),
    /// the command runs again on aggregates loaded from the store, so that a stale cache entry
    /// costs a round trip but never changes an answer.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, CommandError>
    where
        F: FnMut(Source) -> Fut,
        Fut: Future<Output = Result<T, CommandError>>,
    {
        let mut tries = 0;
        let mut source = Source::Cache;
        loop {
            tries += 1;
            match attempt(source).await {
                Err(CommandError::Conflict { aggregate }) if tries < MAX_ATTEMPTS => {
                    tracing::debug!(aggregate, tries, "concurrent append, re-running command");
                    source = Source::Store;
                    let jitter = rand::random::<u64>() % (5 * u64::from(tries));
                    tokio::time::sleep(Duration::from_millis(1 + jitter)).await;
                }
                Err(CommandError::Domain(e)) if source == Source::Cache => {
                    tracing::debug!(error = %e, "refused on cached state, re-running on the store's");
                    source = Source::Store;
                }
                other => return other,
            }
        }
    }

    /// Appends `streams` with the context's metadata, plus the idempotency record when the
    /// request carried a key. `respond` builds the response body from the final position.
    pub(crate) async fn commit<T: Serialize + Clone + Send + 'static>(
        &self,
        ctx: &CommandContext,
        streams: &[StreamAppend],
        mut side_writes: Vec<SideWrite>,
        value: T,
        with_position: fn(&mut T, i64),
    ) -> Result<Outcome<T>, CommandError> {
        if let (Some(record), Some(actor)) = (&ctx.idempotency, &ctx.actor) {
            let mut stored = value.clone();
            side_writes.push(SideWrite::Idempotency {
                user_id: actor.user_id,
                record: record.clone(),
                body: Box::new(move |position| {
                    with_position(&mut stored, position);
                    serde_json::to_value(&stored).unwrap_or_default()
                }),
            });
        }
        match self.store.append(streams, &ctx.metadata(), side_writes, ctx.session.as_ref()).await {
            Ok(position) => {
                for s in streams {
                    if let Some(after) = &s.after {
                        let version = s.expected_version + s.events.len();
                        self.cache.put_any(s.aggregate_type, &s.aggregate_id, after.clone(), version);
                    }
                }
                let mut value = value;
                with_position(&mut value, position);
                Ok(Outcome { value, position })
            }
            Err(AppendError::Conflict(aggregate)) => {
                for s in streams {
                    self.cache.evict(s.aggregate_type, &s.aggregate_id);
                }
                Err(CommandError::Conflict { aggregate })
            }
            Err(AppendError::SessionChanged) => Err(CommandError::SessionChanged),
            Err(AppendError::Rule(e)) => Err(e.into()),
            Err(AppendError::Unique(constraint)) if constraint == "idempotency_keys_pkey" => {
                Err(CommandError::IdempotentReplay)
            }
            Err(AppendError::Unique(constraint)) if constraint == "users_email_key" => {
                Err(DomainError::AlreadyExists { what: "a user with this email" }.into())
            }
            Err(AppendError::Unique(constraint)) if constraint == "invitations_open_email_key" => {
                Err(DomainError::AlreadyExists { what: pettycash_domain::invitation::OPEN_INVITATION }.into())
            }
            Err(AppendError::Unique(constraint))
                if constraint == "org_units_code_key" || constraint == "org_units_company_code_key" =>
            {
                Err(DomainError::CodeTaken.into())
            }
            Err(AppendError::Unique(constraint)) => {
                Err(anyhow::anyhow!("unexpected unique violation on {constraint}").into())
            }
            Err(AppendError::Database(e)) => Err(e.into()),
        }
    }

    /// An aggregate from the cache (with `Source::Cache`, when cached) or folded from the
    /// store (and then cached, if it exists).
    pub(crate) async fn load<A: cqrs_es::Aggregate + Clone + 'static>(
        &self,
        id: Id,
        source: Source,
    ) -> Result<Loaded<A>, CommandError> {
        let id = id.to_string();
        if let Some(hit) = self.cached::<A>(&id, source) {
            return Ok(hit);
        }
        let loaded = self.store.load::<A>(&id).await?;
        self.remember(&loaded);
        Ok(loaded)
    }

    /// The cached aggregate, when `source` allows the cache and it has one.
    fn cached<A: cqrs_es::Aggregate + Clone + 'static>(&self, id: &str, source: Source) -> Option<Loaded<A>> {
        (source == Source::Cache).then(|| self.cache.get::<A>(id, None)).flatten()
    }

    fn remember<A: cqrs_es::Aggregate + Clone + 'static>(&self, loaded: &Loaded<A>) {
        if loaded.version > 0 {
            self.cache.put(&loaded.id, loaded.state.clone(), loaded.version);
        }
    }

    /// A fund, from the cache or from its snapshot and the events after it (its stream grows
    /// with every payment).
    pub(crate) async fn load_fund(&self, id: Id, source: Source) -> Result<Loaded<Fund>, CommandError> {
        let id = id.to_string();
        if let Some(hit) = self.cached::<Fund>(&id, source) {
            return Ok(hit);
        }
        let loaded = self.store.load_snapshotted::<Fund>(&id).await?;
        self.remember(&loaded);
        Ok(loaded)
    }

    // ----- users -------------------------------------------------------------------------

    /// Registers a user with roles. Admins through the API, without a password: an admin
    /// who knew other people's passwords could act as them (the person sets their own through
    /// an invitation, [workflow]). The operator at the command line gives one
    /// (`pettycash user add`).
    pub async fn register_user(
        &self,
        ctx: &CommandContext,
        email: &str,
        name: &str,
        roles: Vec<Role>,
        password: Option<&str>,
    ) -> Result<Outcome<UserView>, CommandError> {
        self.register_user_in(ctx, email, name, roles, password, None).await
    }

    /// Registers a user in a unit: `unit_id` when given (a unit the admin may see), else an
    /// admin of a company registers into their company (at the company level); the operator
    /// and an admin of no unit register users of no unit.
    pub async fn register_user_in(
        &self,
        ctx: &CommandContext,
        email: &str,
        name: &str,
        roles: Vec<Role>,
        password: Option<&str>,
        unit_id: Option<Id>,
    ) -> Result<Outcome<UserView>, CommandError> {
        let by = ctx.actor.clone().map(Requester::Admin).unwrap_or(Requester::Operator);
        let through_api = matches!(by, Requester::Admin(_));
        let user_id = Id::now_v7();
        let mut user = User::default();
        let command =
            UserCommand::Register { user_id, email: email.into(), name: name.into(), roles, by: by.clone() };
        let mut events = decide(&mut user, command).await?;
        if password.is_some() && through_api {
            return Err(DomainError::invalid(
                "password",
                "admins do not set other people's passwords; the person sets their own",
            )
            .into());
        }
        let unit = self.unit_for_new_user(&by, unit_id).await?;
        if unit.is_some() {
            events.extend(decide(&mut user, UserCommand::AssignUnit { unit: unit.clone(), by }).await?);
        }
        let mut writes = vec![user_row(user_id, &user)];
        if let Some(password) = password {
            self.settings().await?.password.check(password)?;
            let hash = hash_password(password.to_string()).await?;
            writes.push(SideWrite::SetPassword { user_id, hash });
        }
        if unit.is_some() {
            writes.extend(crate::org::unit_writes(user_id, unit.as_ref()));
        }
        let loaded = Loaded { id: user_id.to_string(), state: User::default(), version: 0 };
        let stream = StreamAppend::of(&loaded, &events, &user)?;
        self.commit(ctx, &[stream], writes, user_view(user_id, &user), |v, p| v.position = p).await
    }

    /// Sets a user's password: the operator at the command line only (`pettycash user
    /// password`). Not an event: credentials never enter the event store.
    pub async fn set_password(&self, email: &str, password: &str) -> Result<Id, CommandError> {
        self.settings().await?.password.check(password)?;
        let email = pettycash_domain::user::normalise_email(email)?;
        let user_id: Option<Id> = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(&email)
            .fetch_optional(self.store.pool())
            .await?;
        let user_id = user_id.ok_or(CommandError::not_found("user"))?;
        let hash = hash_password(password.to_string()).await?;
        let mut tx = self.store.pool().begin().await?;
        SideWrite::SetPassword { user_id, hash }.apply(&mut tx, 0).await.map_err(|e| match e {
            AppendError::Database(e) => CommandError::Database(e),
            other => CommandError::Other(other.into()),
        })?;
        tx.commit().await?;
        Ok(user_id)
    }

    /// Grants or revokes one role.
    pub async fn change_role(
        &self,
        ctx: &CommandContext,
        user_id: Id,
        role: Role,
        grant: bool,
    ) -> Result<Outcome<UserView>, CommandError> {
        let by = ctx.actor.clone().map(Requester::Admin).unwrap_or(Requester::Operator);
        // Another company's users are not found by an admin (one who is no admin is told so
        // by the aggregate, whoever the user is).
        if matches!(&by, Requester::Admin(a) if a.has(Role::Admin)) {
            self.check_user_visible(&by, user_id).await?;
        }
        let by = &by;
        self.retrying(|source| async move {
            let by = by.clone();
            let loaded = self.load::<User>(user_id, source).await?;
            let mut user = loaded.state.clone();
            let command = if grant {
                UserCommand::GrantRole { role, by }
            } else {
                UserCommand::RevokeRole { role, by }
            };
            let events = decide(&mut user, command).await?;
            let stream = StreamAppend::of(&loaded, &events, &user)?;
            let mut writes = vec![user_row(user_id, &user)];
            if role == Role::Admin && !grant && !events.is_empty() {
                writes.push(SideWrite::KeepAnAdmin);
            }
            self.commit(ctx, &[stream], writes, user_view(user_id, &user), |v, p| v.position = p).await
        })
        .await
    }

    /// The signed-in user mutes these categories of mail from now on (replacing the set
    /// before; empty: every mail again). Invitations, security mail and payment codes cannot be
    /// muted (422 naming `muted`). The `users` row carries the set, written with the event, so
    /// that mail enqueued after the commit honours it.
    pub async fn mute_mail(
        &self,
        ctx: &CommandContext,
        categories: Vec<MailCategory>,
    ) -> Result<Outcome<MailPreferences>, CommandError> {
        let user_id = actor(ctx)?.user_id;
        let categories = &categories;
        self.retrying(|source| async move {
            let loaded = self.load::<User>(user_id, source).await?;
            let mut user = loaded.state.clone();
            let events = decide(&mut user, UserCommand::MuteMail { categories: categories.clone() }).await?;
            let stream = StreamAppend::of(&loaded, &events, &user)?;
            let view = MailPreferences { muted: user.muted_mail.clone(), position: 0 };
            self.commit(ctx, &[stream], vec![user_row(user_id, &user)], view, |v, p| v.position = p).await
        })
        .await
    }

    // ----- funds ------------------------------------------------------------------------

    pub async fn open_fund(
        &self,
        ctx: &CommandContext,
        name: &str,
        currency: &str,
        float: Decimal,
        custodian_id: Option<Id>,
        unit_id: Option<Id>,
    ) -> Result<Outcome<FundView>, CommandError> {
        let settings = pettycash_domain::fund::FundSettings { auto_replenish: true, ..Default::default() };
        self.open_fund_with(ctx, name, currency, float, custodian_id, unit_id, settings).await
    }

    /// [`Self::open_fund`] with reorder level, minimum balance and auto-replenish (defaults:
    /// none, zero, on).
    #[allow(clippy::too_many_arguments)]
    pub async fn open_fund_with(
        &self,
        ctx: &CommandContext,
        name: &str,
        currency: &str,
        float: Decimal,
        custodian_id: Option<Id>,
        unit_id: Option<Id>,
        settings: pettycash_domain::fund::FundSettings,
    ) -> Result<Outcome<FundView>, CommandError> {
        let actor = actor(ctx)?;
        if let Some(custodian) = custodian_id {
            if !self.user_company(custodian).await?.is_some_and(|c| may_see_user(&actor, c)) {
                return Err(DomainError::invalid("custodian_id", "no user has this id").into());
            }
        }
        // The owning unit: the one given, else the admin's company (none for an admin of no
        // unit).
        let unit = match unit_id {
            Some(id) => {
                let by = Requester::Admin(actor.clone());
                Some(self.visible_unit(&by, id, Some("unit_id")).await?.path())
            }
            None => actor.company().and_then(|c| UnitPath::child(c, UnitKind::Company, None)),
        };
        let fund_id = Id::now_v7();
        let loaded = Loaded { id: fund_id.to_string(), state: Fund::default(), version: 0 };
        let mut fund = Fund::default();
        let command = FundCommand::Open {
            fund_id,
            name: name.into(),
            currency: currency.into(),
            float,
            custodian_id,
            unit,
            settings,
            actor,
        };
        let events = decide(&mut fund, command).await?;
        let stream = StreamAppend::of(&loaded, &events, &fund)?;
        self.commit(ctx, &[stream], vec![], FundView::new(fund_id, &fund, 0), |v, p| v.position = p).await
    }

    /// A fund folded from its events; `None` when there is no such fund or `actor` may not
    /// read it (another company's).
    pub async fn fund(&self, actor: &Actor, id: Id) -> Result<Option<FundView>, CommandError> {
        let loaded = self.load_fund(id, Source::Store).await?;
        let readable = may_read_fund(actor, loaded.state.unit.map(|u| u.company));
        Ok(loaded.state.id.filter(|_| readable).map(|_| FundView::new(id, &loaded.state, 0)))
    }

    // ----- runtime settings -------------------------------------------------------------

    /// The settings in force, read from the store at most [`SETTINGS_MAX_AGE`] ago (a change
    /// made through this process is seen at once).
    pub async fn settings(&self) -> Result<Settings, CommandError> {
        Ok(self.runtime_settings().await?.values)
    }

    /// [`Self::settings`] with how many changes led to them.
    pub async fn runtime_settings(&self) -> Result<RuntimeSettings, CommandError> {
        if let Some(hit) = self.cache.get::<RuntimeSettings>(SETTINGS_ID, Some(SETTINGS_MAX_AGE)) {
            return Ok(hit.state);
        }
        Ok(self.settings_loaded().await?.state)
    }

    async fn settings_loaded(&self) -> Result<Loaded<RuntimeSettings>, CommandError> {
        let loaded = self.store.load::<RuntimeSettings>(SETTINGS_ID).await?;
        self.remember(&loaded);
        Ok(loaded)
    }

    /// Changes one setting (admin); an event.
    pub async fn change_setting(
        &self,
        ctx: &CommandContext,
        key: SettingKey,
        value: serde_json::Value,
    ) -> Result<Outcome<SettingsView>, CommandError> {
        let actor = actor(ctx)?;
        organisation_admin(&actor, "change a runtime setting")?;
        self.retrying(|_| async {
            let loaded = self.settings_loaded().await?;
            let mut settings = loaded.state.clone();
            let command = SettingsCommand::Change { key, value: value.clone(), actor: actor.clone() };
            let events = decide(&mut settings, command).await?;
            let stream = StreamAppend::of(&loaded, &events, &settings)?;
            self.commit(ctx, &[stream], vec![], SettingsView::new(&settings, 0), |v, p| v.position = p).await
        })
        .await
    }

    // ----- approval policy --------------------------------------------------------------

    /// The approval policy in force, as stored.
    pub async fn policy(&self) -> Result<Loaded<ApprovalPolicy>, CommandError> {
        let loaded = self.store.load::<ApprovalPolicy>(POLICY_ID).await?;
        self.remember(&loaded);
        Ok(loaded)
    }

    /// The policy for a submission: cached for at most [`POLICY_MAX_AGE`].
    async fn policy_for_submission(&self) -> Result<ApprovalPolicy, CommandError> {
        match self.cache.get::<ApprovalPolicy>(POLICY_ID, Some(POLICY_MAX_AGE)) {
            Some(hit) => Ok(hit.state),
            None => Ok(self.policy().await?.state),
        }
    }

    pub async fn change_policy(
        &self,
        ctx: &CommandContext,
        tiers: Tiers,
    ) -> Result<Outcome<PolicyView>, CommandError> {
        let actor = actor(ctx)?;
        self.on_policy(ctx, || PolicyCommand::ChangePolicy { tiers: tiers.clone(), actor: actor.clone() })
            .await
    }

    /// Replaces the policy with thresholds by currency, origin and amount.
    pub async fn change_thresholds(
        &self,
        ctx: &CommandContext,
        thresholds: Thresholds,
    ) -> Result<Outcome<PolicyView>, CommandError> {
        let actor = actor(ctx)?;
        self.on_policy(ctx, || PolicyCommand::ChangeThresholds {
            thresholds: thresholds.clone(),
            actor: actor.clone(),
        })
        .await
    }

    async fn on_policy(
        &self,
        ctx: &CommandContext,
        make: impl Fn() -> PolicyCommand,
    ) -> Result<Outcome<PolicyView>, CommandError> {
        organisation_admin(&actor(ctx)?, "change the approval policy")?;
        let make = &make;
        self.retrying(|_| async move {
            let loaded = self.policy().await?;
            let mut policy = loaded.state.clone();
            let events = decide(&mut policy, make()).await?;
            let stream = StreamAppend::of(&loaded, &events, &policy)?;
            self.commit(ctx, &[stream], vec![], PolicyView::new(&policy, 0), |v, p| v.position = p).await
        })
        .await
    }

    // ----- requisitions -----------------------------------------------------------------

    /// Creates a draft, and submits it in the same transaction when `submit` is set. An
    /// advance is recorded on the requester's advance account in the same transaction.
    pub async fn create_requisition(
        &self,
        ctx: &CommandContext,
        input: NewRequisition,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        self.create_requisition_with(ctx, input, CategoryChoice::default()).await
    }

    /// [`Self::create_requisition`] with the expense category and cost centre chosen
    /// (`crate::budgets`): the category is checked against the requester's company's
    /// catalogue, or found from the free text `category` (`Catalogue::resolve`). An advance is
    /// recorded on the requester's advance account in the same transaction.
    pub async fn create_requisition_with(
        &self,
        ctx: &CommandContext,
        input: NewRequisition,
        choice: CategoryChoice,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        let actor = &actor(ctx)?;
        let (input, choice) = (&input, &choice);
        self.retrying(|source| async move {
            let (stream, requisition, fund_company) =
                self.new_requisition_streams(actor, input.clone(), *choice).await?;
            let mut streams = vec![stream];
            let mut writes = Vec::new();
            if input.advance {
                let (account, row) = self.request_advance(&requisition, actor, fund_company, source).await?;
                streams.push(account);
                writes.push(row);
            }
            self.commit(ctx, &streams, writes, RequisitionView::new(&requisition, 0), |v, p| v.position = p)
                .await
        })
        .await
    }

    /// The new stream of a requisition created (and, with `submit`, submitted) by `actor`, the
    /// requisition, and its fund's company.
    pub(crate) async fn new_requisition_streams(
        &self,
        actor: &Actor,
        input: NewRequisition,
        choice: CategoryChoice,
    ) -> Result<(StreamAppend, Requisition, Option<Id>), CommandError> {
        // A fund's currency never changes, so a cached fund answers as well as the store; a
        // fund not found in the cache is looked up in the store.
        let fund = self.load_fund(input.fund_id, Source::Cache).await?;
        let fund_company = fund.state.unit.map(|u| u.company);
        // A fund of another company is no fund to this requester.
        let (Some(currency), true) = (fund.state.currency.clone(), may_read_fund(actor, fund_company)) else {
            return Err(DomainError::invalid("fund_id", "no fund has this id").into());
        };
        if let Some(given) = &input.currency {
            let given = Currency::parse(given).map_err(|e| DomainError::money("currency", e))?;
            if given != currency {
                return Err(DomainError::CurrencyMismatch {
                    expected: currency.to_string(),
                    got: given.to_string(),
                }
                .into());
            }
        }
        let catalogue = self.catalogue(actor.company()).await?.state;
        let chosen = catalogue.resolve(choice.category_id, input.category.as_deref())?;
        if let Some(cost_centre) = choice.cost_centre_id {
            self.check_cost_centre(actor.company(), cost_centre).await?;
        }
        let requisition_id = Id::now_v7();
        let loaded = Loaded { id: requisition_id.to_string(), state: Requisition::default(), version: 0 };
        let mut requisition = Requisition::default();
        let command = RequisitionCommand::Create {
            requisition_id,
            fund_id: input.fund_id,
            currency,
            amount: input.amount,
            purpose: input.purpose,
            payee: input.payee,
            category: input.category,
            category_id: chosen.category_id,
            cost_centre_id: choice.cost_centre_id,
            requester: actor.clone(),
            origin: input.origin,
        };
        let mut events = decide(&mut requisition, command).await?;
        if input.submit {
            let block = self.settings().await?.budget_block;
            let flags = self.budget_flags(&requisition).await?;
            let check = RequisitionCommand::CheckBudgets { flags, block, actor: actor.clone() };
            events.extend(decide(&mut requisition, check).await?);
            let policy = self.policy_for_submission().await?;
            let directory = self.directory(&policy, &requisition, actor).await?;
            let deadlines = self.deadlines().await?;
            let duplicates = self.duplicate_check(&requisition).await?;
            let submit = RequisitionCommand::Submit {
                policy,
                directory,
                comment: None,
                urgency: input.urgent_reason,
                deadlines,
                duplicates,
                actor: actor.clone(),
            };
            events.extend(decide(&mut requisition, submit).await?);
        }
        let stream = StreamAppend::of(&loaded, &events, &requisition)?;
        Ok((stream, requisition, fund_company))
    }

    /// Loads a requisition the actor may see; others get "not found", as if it did not exist.
    pub(crate) async fn visible_requisition(
        &self,
        actor: &Actor,
        id: Id,
        source: Source,
    ) -> Result<Loaded<Requisition>, CommandError> {
        let loaded = self.load::<Requisition>(id, source).await?;
        if loaded.state.id.is_none() || !loaded.state.readable_by(actor) {
            return Err(CommandError::not_found("requisition"));
        }
        Ok(loaded)
    }

    /// The state of a requisition the actor may read (others: not found).
    pub(crate) async fn visible_requisition_state(
        &self,
        actor: &Actor,
        id: Id,
    ) -> Result<Requisition, CommandError> {
        Ok(self.visible_requisition(actor, id, Source::Store).await?.state)
    }

    /// A requisition folded from its events, if the actor may read it.
    pub async fn requisition(&self, actor: &Actor, id: Id) -> Result<RequisitionView, CommandError> {
        let loaded = self.visible_requisition(actor, id, Source::Store).await?;
        Ok(RequisitionView::new(&loaded.state, 0))
    }

    /// A requisition the actor may read (as [`Self::requisition`]) and whether they may decide
    /// it now (approve, reject, request changes), judged by the rule those commands apply
    /// (`Requisition::check_may_decide`, with the delegations they received): what a page
    /// asks before it offers the decision forms. The command still decides when it is sent.
    pub async fn requisition_and_decision(
        &self,
        actor: &Actor,
        id: Id,
    ) -> Result<(RequisitionView, Result<(), DomainError>), CommandError> {
        let loaded = self.visible_requisition(actor, id, Source::Store).await?;
        let decision = match loaded.state.status {
            Status::PendingApproval if loaded.state.requester_id != Some(actor.user_id) => {
                loaded.state.check_may_decide(actor, &self.received_by(actor).await?)
            }
            status => Err(DomainError::InvalidTransition { status, action: "decide" }),
        };
        Ok((RequisitionView::new(&loaded.state, 0), decision))
    }

    /// Runs one command on one requisition. `make` builds the command from the actor and the
    /// current state.
    pub(crate) async fn on_requisition<F>(
        &self,
        ctx: &CommandContext,
        id: Id,
        make: F,
    ) -> Result<Outcome<RequisitionView>, CommandError>
    where
        F: Fn(Actor, &Requisition) -> RequisitionCommand,
    {
        self.on_requisition_with(ctx, id, |actor, r| Ok(make(actor, r))).await
    }

    /// [`Self::on_requisition`] for a command whose making may fail (it looks something up).
    async fn on_requisition_with<F>(
        &self,
        ctx: &CommandContext,
        id: Id,
        make: F,
    ) -> Result<Outcome<RequisitionView>, CommandError>
    where
        F: Fn(Actor, &Requisition) -> Result<RequisitionCommand, CommandError>,
    {
        let actor = &actor(ctx)?;
        let make = &make;
        self.retrying(|source| async move {
            let loaded = self.visible_requisition(actor, id, source).await?;
            let mut requisition = loaded.state.clone();
            let command = make(actor.clone(), &requisition)?;
            let events = decide(&mut requisition, command).await?;
            let stream = StreamAppend::of(&loaded, &events, &requisition)?;
            // A decision on someone's behalf commits only while its delegation is in force.
            let writes = crate::delegations::in_force(&events, self.clock.now());
            self.commit(ctx, &[stream], writes, RequisitionView::new(&requisition, 0), |v, p| v.position = p)
                .await
        })
        .await
    }

    pub async fn edit_requisition(
        &self,
        ctx: &CommandContext,
        id: Id,
        changes: Changes,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::Edit { changes: changes.clone(), actor })
            .await
    }

    /// [`Self::edit_requisition`] with a category and cost centre to choose (either may be
    /// all there is to change: `changes` equal to `Changes::default()` changes no other
    /// field). A new free-text `category` that names an active category of the company
    /// chooses it; one that names none is refused while the company has categories.
    pub async fn edit_requisition_with(
        &self,
        ctx: &CommandContext,
        id: Id,
        changes: Changes,
        choice: CategoryChoice,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        let actor = &actor(ctx)?;
        let (changes, choice) = (&changes, &choice);
        self.retrying(|source| async move {
            let loaded = self.visible_requisition(actor, id, source).await?;
            let mut requisition = loaded.state.clone();
            let company = requisition.unit.map(|u| u.company);
            let catalogue = self.catalogue(company).await?.state;
            let mut choice = *choice;
            if let (None, Some(text)) = (choice.category_id, changes.category.as_deref()) {
                if !text.trim().is_empty() && catalogue.has_active() {
                    choice.category_id = catalogue.resolve(None, Some(text))?.category_id;
                }
            }
            self.check_choice(&catalogue, company, choice).await?;
            let mut events = Vec::new();
            if !choice.is_empty() {
                let categorise = RequisitionCommand::Categorise {
                    category_id: choice.category_id,
                    cost_centre_id: choice.cost_centre_id,
                    actor: actor.clone(),
                };
                events.extend(decide(&mut requisition, categorise).await?);
            }
            if *changes != Changes::default() || choice.is_empty() {
                let edit = RequisitionCommand::Edit { changes: changes.clone(), actor: actor.clone() };
                events.extend(decide(&mut requisition, edit).await?);
            }
            let stream = StreamAppend::of(&loaded, &events, &requisition)?;
            self.commit(ctx, &[stream], vec![], RequisitionView::new(&requisition, 0), |v, p| v.position = p)
                .await
        })
        .await
    }

    /// Submits, routed by the policy in force for the current amount: the threshold, the chain
    /// and who may act at each step.
    pub async fn submit_requisition(
        &self,
        ctx: &CommandContext,
        id: Id,
        comment: Option<String>,
        urgent_reason: Option<String>,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        self.submit_requisition_with(ctx, id, comment, urgent_reason, CategoryChoice::default()).await
    }

    /// [`Self::submit_requisition`] choosing a category and cost centre first (a draft made
    /// before its company had categories needs one now). The budgets the submission would
    /// exceed are flagged (`BudgetExceeded`) or, with the `budget_block` setting, refuse it.
    pub async fn submit_requisition_with(
        &self,
        ctx: &CommandContext,
        id: Id,
        comment: Option<String>,
        urgent_reason: Option<String>,
        choice: CategoryChoice,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        let block = self.settings().await?.budget_block;
        let choice = &choice;
        // The policy is read once, before the retries: a policy change racing a submission
        // may or may not apply to it, like any two concurrent requests.
        let policy = self.policy_for_submission().await?;
        let actor = &actor(ctx)?;
        let (policy, comment, urgent_reason) = (&policy, &comment, &urgent_reason);
        self.retrying(|source| async move {
            let loaded = self.visible_requisition(actor, id, source).await?;
            let mut requisition = loaded.state.clone();
            let company = requisition.unit.map(|u| u.company);
            let catalogue = self.catalogue(company).await?.state;
            let mut events = Vec::new();
            if !choice.is_empty() {
                self.check_choice(&catalogue, company, *choice).await?;
                let categorise = RequisitionCommand::Categorise {
                    category_id: choice.category_id,
                    cost_centre_id: choice.cost_centre_id,
                    actor: actor.clone(),
                };
                events.extend(decide(&mut requisition, categorise).await?);
            }
            let flags = self.budget_flags(&requisition).await?;
            let check = RequisitionCommand::CheckBudgets { flags, block, actor: actor.clone() };
            events.extend(decide(&mut requisition, check).await?);
            catalogue.check_submission(requisition.category_id)?;
            let directory = self.directory(policy, &requisition, actor).await?;
            let command = RequisitionCommand::Submit {
                policy: policy.clone(),
                directory,
                comment: comment.clone(),
                urgency: urgent_reason.clone(),
                deadlines: self.deadlines().await?,
                duplicates: self.duplicate_check(&requisition).await?,
                actor: actor.clone(),
            };
            events.extend(decide(&mut requisition, command).await?);
            let stream = StreamAppend::of(&loaded, &events, &requisition)?;
            self.commit(ctx, &[stream], vec![], RequisitionView::new(&requisition, 0), |v, p| v.position = p)
                .await
        })
        .await
    }

    /// The people a submission of `r` by `requester` may be routed to: the active holders of
    /// the roles of the chain the policy gives, in the requisition's company (unscoped: of no
    /// company), and its active admins. One query on `users` by company and roles (indexed,
    /// migration 0013), not a scan of every user; the domain narrows them to the
    /// requisition's branch, department or region (`Directory::holders`).
    async fn directory(
        &self,
        policy: &ApprovalPolicy,
        r: &Requisition,
        requester: &Actor,
    ) -> Result<Directory, CommandError> {
        let Some(currency) = r.currency.as_ref() else { return Ok(Directory::default()) };
        let origin = r.origin.unwrap_or(Origin::Hq);
        // A policy that gives no chain answers its error in the aggregate, in rule order.
        let mut roles: Vec<Role> =
            policy.chain(currency, origin, r.amount, &requester.roles).unwrap_or_default();
        roles.push(Role::Admin);
        self.people_in(r.unit.as_ref().map(|u| u.company), &roles).await
    }

    /// The active holders of any of `roles` in `company` (`None`: of no company), as a
    /// [`Directory`]: admins among `admins`, other roles among `holders`. Routing reads it at
    /// submission, the scheduler when it gives an overdue step to the admins.
    async fn people_in(&self, company: Option<Id>, roles: &[Role]) -> Result<Directory, CommandError> {
        #[derive(sqlx::FromRow)]
        struct Person {
            id: Id,
            roles: Vec<Role>,
            #[sqlx(flatten)]
            unit: crate::org::UnitColumns,
            sponsors: Vec<Id>,
        }
        let people: Vec<Person> = sqlx::query_as(
            "SELECT id, roles, unit_id, company_id, region_id, branch_id, department_id, cost_centre_id, sponsors
             FROM users
             WHERE active AND roles && $2
               AND (company_id = $1 OR ($1::uuid IS NULL AND company_id IS NULL))",
        )
        .bind(company)
        .bind(roles)
        .fetch_all(self.store.pool())
        .await?;
        let mut directory = Directory::default();
        for p in people {
            let holder = Holder { user_id: p.id, roles: p.roles, unit: p.unit.path(), sponsors: p.sponsors };
            if holder.roles.contains(&Role::Admin) {
                directory.admins.push(holder.clone());
            }
            if holder.roles.iter().any(|r| *r != Role::Admin) {
                directory.holders.push(holder);
            }
        }
        Ok(directory)
    }

    pub async fn approve_requisition(
        &self,
        ctx: &CommandContext,
        id: Id,
        comment: Option<String>,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        let deadlines = self.deadlines().await?;
        let delegations = self.received_delegations(ctx).await?;
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::Approve {
            comment: comment.clone(),
            deadlines,
            delegations: delegations.clone(),
            actor,
        })
        .await
    }

    /// The first step's approver confirms that an urgent requisition is urgent (fast-tracked
    /// when its threshold allows).
    pub async fn confirm_urgency(
        &self,
        ctx: &CommandContext,
        id: Id,
        comment: Option<String>,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        let deadlines = self.deadlines().await?;
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::ConfirmUrgency {
            comment: comment.clone(),
            deadlines,
            actor,
        })
        .await
    }

    /// The first step's approver denies the urgency: the normal chain goes on.
    pub async fn deny_urgency(
        &self,
        ctx: &CommandContext,
        id: Id,
        reason: &str,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::DenyUrgency {
            reason: reason.into(),
            actor,
        })
        .await
    }

    /// Undoes a fast-track: the full recorded chain applies again.
    pub async fn revert_fast_track(
        &self,
        ctx: &CommandContext,
        id: Id,
        reason: &str,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        let deadlines = self.deadlines().await?;
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::RevertFastTrack {
            reason: reason.into(),
            deadlines,
            actor,
        })
        .await
    }

    /// An admin approves in an emergency, with a justification.
    pub async fn override_approval(
        &self,
        ctx: &CommandContext,
        id: Id,
        justification: &str,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::Override {
            justification: justification.into(),
            actor,
        })
        .await
    }

    pub async fn reject_requisition(
        &self,
        ctx: &CommandContext,
        id: Id,
        reason: &str,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        let delegations = self.received_delegations(ctx).await?;
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::Reject {
            reason: reason.into(),
            delegations: delegations.clone(),
            actor,
        })
        .await
    }

    /// Sends a requisition back for changes, to be made by `deadline` (default: now plus the
    /// `change_request_hours` setting); past it the scheduler expires it.
    pub async fn request_changes(
        &self,
        ctx: &CommandContext,
        id: Id,
        reason: &str,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        let now = self.clock.now();
        let hours = self.settings().await?.waiting.change_request_hours;
        let deadline = deadline.unwrap_or(now + chrono::Duration::hours(i64::from(hours)));
        let delegations = self.received_delegations(ctx).await?;
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::RequestChanges {
            reason: reason.into(),
            deadline,
            now,
            delegations: delegations.clone(),
            actor,
        })
        .await
    }

    // ----- the scheduler's commands -------------------------------------------------------

    /// Expires a requisition whose requested changes were not made by their deadline.
    pub async fn expire(&self, id: Id) -> Result<Outcome<RequisitionView>, CommandError> {
        let now = self.clock.now();
        self.on_requisition_as_system(id, move |_| RequisitionCommand::Expire { now }).await
    }

    /// Reminds the current step's approvers of a requisition that waited past the reminder
    /// time (the `notifications` projection mails them).
    pub async fn remind_overdue(&self, id: Id) -> Result<Outcome<RequisitionView>, CommandError> {
        let now = self.clock.now();
        self.on_requisition_as_system(id, move |_| RequisitionCommand::RemindOverdue { now }).await
    }

    /// Gives the current step of a requisition that waited past its escalation time to its
    /// company's active admins.
    pub async fn escalate_overdue(&self, id: Id) -> Result<Outcome<RequisitionView>, CommandError> {
        let now = self.clock.now();
        let loaded = self.load::<Requisition>(id, Source::Store).await?;
        let company = loaded.state.unit.as_ref().map(|u| u.company);
        let admins = self.people_in(company, &[Role::Admin]).await?.admins;
        self.on_requisition_as_system(id, move |_| RequisitionCommand::EscalateOverdue {
            now,
            admins: admins.clone(),
        })
        .await
    }

    /// Runs a command of the service itself (no user) on one requisition.
    pub(crate) async fn on_requisition_as_system<F>(
        &self,
        id: Id,
        make: F,
    ) -> Result<Outcome<RequisitionView>, CommandError>
    where
        F: Fn(&Requisition) -> RequisitionCommand,
    {
        let ctx = &CommandContext::operator("scheduler");
        let make = &make;
        self.retrying(|source| async move {
            let loaded = self.load::<Requisition>(id, source).await?;
            if loaded.state.id.is_none() {
                return Err(CommandError::not_found("requisition"));
            }
            let mut requisition = loaded.state.clone();
            let command = make(&requisition);
            let events = decide(&mut requisition, command).await?;
            let stream = StreamAppend::of(&loaded, &events, &requisition)?;
            self.commit(ctx, &[stream], vec![], RequisitionView::new(&requisition, 0), |v, p| v.position = p)
                .await
        })
        .await
    }

    pub async fn cancel_requisition(
        &self,
        ctx: &CommandContext,
        id: Id,
        reason: Option<&str>,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::Cancel {
            reason: reason.map(Into::into),
            actor,
        })
        .await
    }

    /// Pays an approved requisition from its fund.
    ///
    /// The requisition decides whether it may be paid (approved, not paid before, payer holds
    /// treasury and is neither requester nor approver); the fund decides whether its balance
    /// covers the amount. Both streams are appended in one transaction, each guarded by its
    /// expected sequence: a concurrent payment of the same requisition, or any concurrent
    /// disbursement from the same fund, makes one of the two appends fail and the command
    /// re-runs on fresh state. So no requisition is paid twice and no fund goes below zero,
    /// across any number of processes.
    ///
    /// `code` is the one-time code mailed to the payer (`payments`), unless waived for this
    /// payment; it is checked (and a refusal recorded) before anything else is decided, and
    /// marked used in the payment's transaction.
    pub async fn pay(
        &self,
        ctx: &CommandContext,
        requisition_id: Id,
        method: PaymentMethod,
        reference: Option<String>,
        code: Option<&str>,
    ) -> Result<Outcome<PaymentReceipt>, CommandError> {
        self.pay_checked(ctx, requisition_id, method, reference, Some(code)).await
    }

    /// [`Self::pay`] without a one-time code: for the demo loader (`pettycash demo`), which
    /// pays as a treasury user it created and has no mailbox, and for in-process tests of
    /// other parts (projections). Never reachable over HTTP.
    pub async fn pay_without_code(
        &self,
        ctx: &CommandContext,
        requisition_id: Id,
        method: PaymentMethod,
        reference: Option<String>,
    ) -> Result<Outcome<PaymentReceipt>, CommandError> {
        self.pay_checked(ctx, requisition_id, method, reference, None).await
    }

    /// `code`: `None` when no code is asked for (the demo loader), else the code given.
    async fn pay_checked(
        &self,
        ctx: &CommandContext,
        requisition_id: Id,
        method: PaymentMethod,
        reference: Option<String>,
        code: Option<Option<&str>>,
    ) -> Result<Outcome<PaymentReceipt>, CommandError> {
        let payer = &actor(ctx)?;
        crate::payments::paid_at_once(method)?;
        let reference = &reference;
        let before = self.visible_requisition(payer, requisition_id, Source::Store).await?;
        // Who may not pay is told so before anything about codes; a code given for a
        // requisition paid meanwhile is checked (a used code says so).
        // The input is checked before the code (a refused code is recorded, a bad reference
        // is the request's mistake).
        pettycash_domain::error::clean_optional(
            "reference",
            reference.as_deref(),
            pettycash_domain::requisition::REFERENCE_MAX,
        )?;
        let code_id = match code {
            None => None,
            Some(code) => {
                match before.state.check_payer(payer) {
                    Ok(()) => {}
                    Err(DomainError::AlreadyPaid) if code.is_some() => {}
                    Err(e) => return Err(e.into()),
                }
                self.check_payment_code(ctx, payer, &before.state, method, code).await?
            }
        };
        let now = self.clock.now();
        self.retrying(|source| async move {
            let req = self.visible_requisition(payer, requisition_id, source).await?;
            let fund_id = ensure_exists(req.state.fund_id, "requisition")?;
            // Queue behind other payments from this fund in this process (see `locks`), then
            // decide on the state as it is once it is this payment's turn.
            let _guard = self.locks.lock(&fund_id.to_string()).await;
            let req = self.visible_requisition(payer, requisition_id, source).await?;
            let mut requisition = req.state.clone();
            let payment_id = Id::now_v7();
            let pay = RequisitionCommand::Pay {
                payment_id,
                method,
                reference: reference.clone(),
                payer: payer.clone(),
            };
            let req_events = decide(&mut requisition, pay).await?;
            let fund = self.load_fund(fund_id, source).await?;
            let mut fund_state = fund.state.clone();
            let disburse = FundCommand::Disburse {
                payment_id,
                requisition_id,
                amount: requisition.amount,
                currency: ensure_exists(requisition.currency.clone(), "requisition")?,
                method,
                reference: requisition.payment.as_ref().and_then(|p| p.reference.clone()),
                paid_by: payer.user_id,
                now: self.clock.now(),
            };
            let fund_events = decide(&mut fund_state, disburse).await?;
            let mut streams = vec![
                StreamAppend::of(&req, &req_events, &requisition)?,
                StreamAppend::of(&fund, &fund_events, &fund_state)?,
            ];
            // An advance is issued by its payment, in the same commit.
            let requester_id = ensure_exists(requisition.requester_id, "requisition")?;
            let fund_company = fund_state.unit.map(|u| u.company);
            let mut writes = Vec::new();
            if let Some((account, row)) = self
                .issue_advance(requester_id, requisition_id, payment_id, fund_company, true, source)
                .await?
            {
                streams.push(account);
                writes.push(row);
            }
            let receipt = PaymentReceipt {
                id: payment_id,
                requisition_id,
                fund_id,
                amount: requisition.amount,
                currency: fund_state.currency.as_ref().map(|c| c.to_string()).unwrap_or_default(),
                method,
                reference: requisition.payment.as_ref().and_then(|p| p.reference.clone()),
                fund_balance_after: fund_state.balance,
                paid_by: payer.user_id,
                position: 0,
            };
            writes.extend(
                code_id.map(|id| SideWrite::PaymentCode(crate::payments::CodeWrite::Use { id, at: now })),
            );
            let outcome = self.commit(ctx, &streams, writes, receipt, |v, p| v.position = p).await?;
            self.snapshot_if_due(&fund, &fund_state, fund_events.len()).await;
            Ok(outcome)
        })
        .await
    }

    /// Writes a snapshot of a fund whose stream just grew past a multiple of
    /// [`SNAPSHOT_EVERY`]: commands decided on the cached fund never fold its stream, so the
    /// snapshot that bounds a load from the store (after a restart, or in another process)
    /// is kept here. Best effort, like the snapshot written by a load.
    pub(crate) async fn snapshot_if_due(&self, before: &Loaded<Fund>, after: &Fund, appended: usize) {
        let version = before.version + appended;
        if version / SNAPSHOT_EVERY > before.version / SNAPSHOT_EVERY {
            if let Err(e) = self.store.save_snapshot(&before.id, after, version).await {
                tracing::warn!(fund = %before.id, error = %e, "could not save a snapshot");
            }
        }
    }

    /// Every event of a requisition the actor may read, oldest first, with who did it.
    pub async fn requisition_history(
        &self,
        actor: &Actor,
        id: Id,
    ) -> Result<Vec<HistoryEntry>, CommandError> {
        self.visible_requisition(actor, id, Source::Store).await?;
        let events =
            self.store.stream_history(<Requisition as cqrs_es::Aggregate>::TYPE, &id.to_string()).await?;
        let actor_ids: Vec<Id> = events
            .iter()
            .filter_map(|e| e.metadata.get("actor_id").and_then(|v| v.as_str()).and_then(|s| s.parse().ok()))
            .collect();
        let names: Vec<(Id, String)> = sqlx::query_as("SELECT id, name FROM users WHERE id = ANY($1)")
            .bind(&actor_ids)
            .fetch_all(self.store.pool())
            .await?;
        Ok(events
            .into_iter()
            .map(|e| {
                let actor_id = e.metadata.get("actor_id").and_then(|v| v.as_str()).map(String::from);
                let actor_name = actor_id
                    .as_deref()
                    .and_then(|a| names.iter().find(|(id, _)| id.to_string() == a))
                    .map(|(_, n)| n.clone());
                // Stored payloads are externally tagged (`{"RequisitionApproved": {...}}`).
                let data = match e.payload {
                    serde_json::Value::Object(mut m) if m.len() == 1 => {
                        m.remove(&e.event_type).unwrap_or(serde_json::Value::Object(m))
                    }
                    other => other,
                };
                HistoryEntry {
                    sequence: e.sequence,
                    position: e.global_position,
                    event_type: e.event_type,
                    event_version: e.event_version,
                    recorded_at: e.recorded_at,
                    actor_id,
                    actor_name,
                    request_id: e.metadata.get("request_id").and_then(|v| v.as_str()).map(String::from),
                    data,
                }
            })
            .collect())
    }
}

pub(crate) fn user_row(id: Id, user: &User) -> SideWrite {
    SideWrite::UpsertUser {
        id,
        email: user.email.clone(),
        name: user.name.clone(),
        roles: user.roles.iter().map(|r| r.as_str().to_string()).collect(),
        active: user.active,
        sponsors: user.sponsors.clone(),
        muted_mail: user.muted_mail.clone(),
    }
}

pub(crate) fn user_view(id: Id, user: &User) -> UserView {
    UserView {
        id,
        email: user.email.clone(),
        name: user.name.clone(),
        roles: user.roles.clone(),
        active: user.active,
        unit_id: user.unit_id,
        position: 0,
    }
}
