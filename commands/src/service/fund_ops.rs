//! Fund operations (issue #14 [treasury]): an admin's fund settings, replenishment requests,
//! cash counts and their variances, period close and closing a fund. Every one is a command
//! on the fund's stream, decided by the fund aggregate with the service clock's `now`, so the
//! stream's sequence serialises them with payments (one automatic replenishment, each
//! variance adjusted once).

use super::{actor, CommandService, Source};
use crate::context::CommandContext;
use crate::error::CommandError;
use crate::store::{decide, StreamAppend};
use crate::views::{CountView, FundView, ReplenishmentView};
use crate::Outcome;
use pettycash_domain::fund::{
    Fund, FundCommand, FundEvent, FundSettings, ReplenishmentStatus, VarianceStatus,
};
use pettycash_domain::visibility::{may_read_fund, may_see_user};
use pettycash_domain::{Actor, DomainError, Id};
use rust_decimal::Decimal;
use serde::Serialize;

/// A change of a fund's settings: the fields given replace the current ones.
#[derive(Debug, Clone, Default)]
pub struct FundSettingsPatch {
    /// `Some(None)`: no reorder level any more.
    pub reorder_level: Option<Option<Decimal>>,
    pub minimum_balance: Option<Decimal>,
    pub auto_replenish: Option<bool>,
    /// `Some(None)`: no custodian.
    pub custodian_id: Option<Option<Id>>,
}

impl CommandService {
    /// Decides `make`'s command on fund `fund_id` and appends its events; `view` builds the
    /// answer from the fund after them and the events. 404 for a fund the actor may not read.
    async fn on_fund<T, M, V>(
        &self,
        ctx: &CommandContext,
        fund_id: Id,
        make: M,
        view: V,
        with_position: fn(&mut T, i64),
    ) -> Result<Outcome<T>, CommandError>
    where
        T: Serialize + Clone + Send + 'static,
        M: Fn(Actor, &Fund) -> Result<FundCommand, CommandError>,
        V: Fn(&Fund, &[FundEvent]) -> T,
    {
        let actor = &actor(ctx)?;
        let (make, view) = (&make, &view);
        self.retrying(|source: Source| async move {
            let _guard = self.locks.lock(&fund_id.to_string()).await;
            let loaded = self.load_fund(fund_id, source).await?;
            if loaded.state.id.is_none() || !may_read_fund(actor, loaded.state.unit.map(|u| u.company)) {
                return Err(CommandError::not_found("fund"));
            }
            let mut fund = loaded.state.clone();
            let command = make(actor.clone(), &fund)?;
            let events = decide(&mut fund, command).await?;
            let stream = StreamAppend::of(&loaded, &events, &fund)?;
            let value = view(&fund, &events);
            let outcome = self.commit(ctx, &[stream], vec![], value, with_position).await?;
            if events.iter().any(|e| matches!(e, FundEvent::PeriodClosed { .. })) {
                // A closed period is final: a snapshot at its close bounds later folds (best
                // effort, like every snapshot).
                let version = loaded.version + events.len();
                if let Err(e) = self.store.save_snapshot(&loaded.id, &fund, version).await {
                    tracing::warn!(fund = %loaded.id, error = %e, "could not save a snapshot at a period close");
                }
            } else {
                self.snapshot_if_due(&loaded, &fund, events.len()).await;
            }
            Ok(outcome)
        })
        .await
    }

    /// `PATCH /api/funds/{id}` (admin): reorder level, minimum balance, auto-replenish,
    /// custodian. Never the balance.
    pub async fn change_fund_settings(
        &self,
        ctx: &CommandContext,
        fund_id: Id,
        patch: FundSettingsPatch,
    ) -> Result<Outcome<FundView>, CommandError> {
        let by = actor(ctx)?;
        if let Some(Some(custodian)) = patch.custodian_id {
            if !self.user_company(custodian).await?.is_some_and(|c| may_see_user(&by, c)) {
                return Err(DomainError::invalid("custodian_id", "no user has this id").into());
            }
        }
        self.on_fund(
            ctx,
            fund_id,
            |actor, fund| {
                let now = &fund.settings;
                let settings = FundSettings {
                    reorder_level: patch.reorder_level.unwrap_or(now.reorder_level),
                    minimum_balance: patch.minimum_balance.unwrap_or(now.minimum_balance),
                    auto_replenish: patch.auto_replenish.unwrap_or(now.auto_replenish),
                    custodian_id: patch.custodian_id.unwrap_or(fund.custodian_id),
                };
                Ok(FundCommand::ChangeSettings { settings, actor })
            },
            |fund, _| FundView::new(fund_id, fund, 0),
            |v, p| v.position = p,
        )
        .await
    }

    /// Treasury raises a replenishment request by hand (for float − balance).
    pub async fn request_replenishment(
        &self,
        ctx: &CommandContext,
        fund_id: Id,
    ) -> Result<Outcome<ReplenishmentView>, CommandError> {
        let replenishment_id = Id::now_v7();
        let now = self.clock.now();
        self.on_fund(
            ctx,
            fund_id,
            |actor, _| Ok(FundCommand::RequestReplenishment { replenishment_id, actor, now }),
            |fund, events| replenishment_view(fund_id, fund, events),
            |v, p| v.position = p,
        )
        .await
    }

    /// Approves or rejects a fund's open replenishment request.
    pub async fn decide_replenishment(
        &self,
        ctx: &CommandContext,
        fund_id: Id,
        replenishment_id: Id,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Outcome<ReplenishmentView>, CommandError> {
        self.on_fund(
            ctx,
            fund_id,
            |actor, _| {
                Ok(FundCommand::DecideReplenishment {
                    replenishment_id,
                    approve,
                    reason: reason.clone(),
                    actor,
                })
            },
            |fund, events| replenishment_view(fund_id, fund, events),
            |v, p| v.position = p,
        )
        .await
    }

    /// Treasury records the cash of an approved replenishment as received.
    pub async fn fund_replenishment(
        &self,
        ctx: &CommandContext,
        fund_id: Id,
        replenishment_id: Id,
        bank_reference: String,
    ) -> Result<Outcome<ReplenishmentView>, CommandError> {
        let now = self.clock.now();
        self.on_fund(
            ctx,
            fund_id,
            |actor, _| {
                Ok(FundCommand::FundReplenishment {
                    replenishment_id,
                    bank_reference: bank_reference.clone(),
                    actor,
                    now,
                })
            },
            |fund, events| replenishment_view(fund_id, fund, events),
            |v, p| v.position = p,
        )
        .await
    }

    /// The custodian (or treasury) records a cash count by denomination; with `close_period`
    /// it closes the current month (UTC). A variance within the tolerance setting is adjusted
    /// at once.
    pub async fn record_count(
        &self,
        ctx: &CommandContext,
        fund_id: Id,
        counts: Vec<(String, u64)>,
        close_period: bool,
    ) -> Result<Outcome<CountView>, CommandError> {
        let rules = self.settings().await?.cash_counts;
        let count_id = Id::now_v7();
        let now = self.clock.now();
        self.on_fund(
            ctx,
            fund_id,
            |actor, fund| {
                Ok(FundCommand::RecordCount {
                    count_id,
                    counts: counts.clone(),
                    close_period,
                    tolerance: rules.tolerance(fund.float),
                    actor,
                    now,
                })
            },
            |fund, events| count_view(fund_id, count_id, fund, events),
            |v, p| v.position = p,
        )
        .await
    }

    /// Approves (applies the difference to the balance of now) or rejects a count's variance.
    pub async fn decide_variance(
        &self,
        ctx: &CommandContext,
        fund_id: Id,
        count_id: Id,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Outcome<CountView>, CommandError> {
        let rules = self.settings().await?.cash_counts;
        let now = self.clock.now();
        self.on_fund(
            ctx,
            fund_id,
            |actor, _| {
                Ok(FundCommand::DecideVariance {
                    count_id,
                    approve,
                    reason: reason.clone(),
                    approver_role: rules.approver_role,
                    actor,
                    now,
                })
            },
            |fund, events| count_view(fund_id, count_id, fund, events),
            |v, p| v.position = p,
        )
        .await
    }

    /// An admin closes a fund: its cash goes back to the bank (`bank_reference`), then the
    /// fund is closed.
    pub async fn close_fund(
        &self,
        ctx: &CommandContext,
        fund_id: Id,
        bank_reference: String,
    ) -> Result<Outcome<FundView>, CommandError> {
        let now = self.clock.now();
        self.on_fund(
            ctx,
            fund_id,
            |actor, _| Ok(FundCommand::Close { bank_reference: bank_reference.clone(), actor, now }),
            |fund, _| FundView::new(fund_id, fund, 0),
            |v, p| v.position = p,
        )
        .await
    }
}

/// The replenishment a command acted on, from its events.
fn replenishment_view(fund_id: Id, fund: &Fund, events: &[FundEvent]) -> ReplenishmentView {
    let mut v = ReplenishmentView {
        id: Id::nil(),
        fund_id,
        amount: Decimal::ZERO,
        status: String::new(),
        requested_by: None,
        decided_by: None,
        bank_reference: None,
        fund_balance: fund.balance,
        position: 0,
    };
    if let Some(open) = &fund.replenishment {
        (v.id, v.amount, v.requested_by, v.decided_by) =
            (open.id, open.amount, open.requested_by, open.approved_by);
        v.status = open.status().as_str().into();
    }
    for e in events {
        match e {
            FundEvent::ReplenishmentRejected { replenishment_id, rejected_by, .. } => {
                (v.id, v.decided_by, v.status) =
                    (*replenishment_id, Some(*rejected_by), ReplenishmentStatus::Rejected.as_str().into());
            }
            FundEvent::ReplenishmentFunded { replenishment_id, amount, bank_reference, .. } => {
                (v.id, v.amount, v.status) =
                    (*replenishment_id, *amount, ReplenishmentStatus::Funded.as_str().into());
                v.bank_reference = Some(bank_reference.clone());
            }
            _ => {}
        }
    }
    v
}

/// The count a command recorded or decided, from its events.
fn count_view(fund_id: Id, count_id: Id, fund: &Fund, events: &[FundEvent]) -> CountView {
    let pending = fund.pending_variances.iter().find(|p| p.count_id == count_id);
    let mut v = CountView {
        id: count_id,
        fund_id,
        counted: None,
        book_balance: None,
        variance: pending.map(|p| p.variance).unwrap_or_default(),
        status: if pending.is_some() { VarianceStatus::Pending } else { VarianceStatus::Matched }
            .as_str()
            .into(),
        period_closed: None,
        fund_balance: fund.balance,
        position: 0,
    };
    for e in events {
        match e {
            FundEvent::CashCounted { counted, book_balance, variance, .. } => {
                (v.counted, v.book_balance, v.variance) = (Some(*counted), Some(*book_balance), *variance);
            }
            FundEvent::VarianceAdjusted { amount, .. } => {
                (v.variance, v.status) = (*amount, VarianceStatus::Adjusted.as_str().into())
            }
            FundEvent::VarianceRejected { .. } => v.status = VarianceStatus::Rejected.as_str().into(),
            FundEvent::PeriodClosed { period, .. } => v.period_closed = Some(period.to_string()),
            _ => {}
        }
    }
    v
}
