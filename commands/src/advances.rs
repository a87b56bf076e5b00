//! Advances (issue #14 [treasury]): asking for one with a requisition, issuing it when that
//! requisition is paid, settling it (spent, change returned to the fund, extra claimed by a
//! reimbursement requisition) and finding those overdue.
//!
//! The rules are the `advance_account` aggregate's (`pettycash_domain::advance`); this module
//! loads what it needs, appends the account's events with those of the requisition and the
//! fund they go with in one transaction, and keeps the `advances` table (migration 0020) in
//! that same transaction.

use crate::budgets::CategoryChoice;
use crate::context::CommandContext;
use crate::error::CommandError;
use crate::service::{CommandService, NewRequisition, Outcome, Source};
use crate::store::{decide, AdvanceRow, SideWrite, StreamAppend};
use chrono::{DateTime, Utc};
use pettycash_domain::advance::{AdvanceAccount, AdvanceCommand, Reimbursement};
use pettycash_domain::fund::FundCommand;
use pettycash_domain::requisition::Requisition;
use pettycash_domain::visibility::{may_read_advance, AdvanceScope};
use pettycash_domain::{Actor, Currency, DomainError, Id};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// An advance as its holder and treasury see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct AdvanceView {
    /// The advance's requisition.
    pub requisition_id: Uuid,
    pub holder_id: Uuid,
    pub fund_id: Uuid,
    pub company_id: Option<Uuid>,
    #[schema(example = "KES")]
    pub currency: String,
    /// Advanced (once paid) or asked for.
    #[schema(value_type = String, example = "5000.00")]
    pub amount: Decimal,
    #[schema(value_type = String, example = "3200.00")]
    pub spent: Decimal,
    #[schema(value_type = String, example = "300.00")]
    pub returned: Decimal,
    /// Remaining to settle (0 before it is paid and once settled).
    #[schema(value_type = String, example = "1500.00")]
    pub outstanding: Decimal,
    /// `requested` (not paid yet), `outstanding` (paid, not fully settled), `overdue`
    /// (outstanding past `due_at`), `settled`.
    #[schema(example = "outstanding")]
    pub status: String,
    pub payment_id: Option<Uuid>,
    pub paid_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub settlements: i32,
    /// Global position of the advance's latest event (or of the command's last event).
    #[sqlx(rename = "last_position")]
    pub position: i64,
}

/// The columns of [`AdvanceView`], its status as of `$1`.
const VIEW_COLUMNS: &str =
    "requisition_id, holder_id, fund_id, company_id, currency, amount, spent, returned, \
     outstanding, \
     CASE WHEN payment_id IS NULL THEN 'requested' WHEN outstanding = 0 THEN 'settled' \
          WHEN due_at < $1 THEN 'overdue' ELSE 'outstanding' END AS status, \
     payment_id, paid_at, due_at, settlements, last_position";

/// Input of [`CommandService::settle_advance`].
#[derive(Debug, Clone, Default)]
pub struct Settlement {
    pub spent: Decimal,
    pub returned: Decimal,
    /// When given, must be the advance's currency.
    pub currency: Option<String>,
    pub receipt_ids: Vec<Id>,
    pub note: Option<String>,
    /// Spent beyond the advance: claimed by a new requisition through the normal approval.
    pub extra_owed: Option<Decimal>,
}

/// What a settlement did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettlementReceipt {
    pub settlement_id: Uuid,
    pub requisition_id: Uuid,
    #[schema(value_type = String)]
    pub spent: Decimal,
    #[schema(value_type = String)]
    pub returned: Decimal,
    /// Remaining to settle after this settlement.
    #[schema(value_type = String)]
    pub outstanding: Decimal,
    /// The requisition claiming what was spent beyond the advance (submitted for approval).
    pub reimbursement_requisition_id: Option<Uuid>,
    /// The fund's balance after the returned cash (when some was returned).
    #[schema(value_type = Option<String>)]
    pub fund_balance_after: Option<Decimal>,
    pub position: i64,
}

/// Filters of [`CommandService::advances`].
#[derive(Debug, Clone, Default)]
pub struct AdvanceFilter {
    pub holder_id: Option<Id>,
    /// `requested`, `outstanding`, `overdue`, `settled`.
    pub status: Option<String>,
}

pub const STATUSES: [&str; 4] = ["requested", "outstanding", "overdue", "settled"];

fn row(account: &AdvanceAccount, requisition_id: Id, company_id: Option<Id>) -> Option<SideWrite> {
    let advance = account.advance(requisition_id)?.clone();
    Some(SideWrite::UpsertAdvance(AdvanceRow { holder_id: account.holder_id?, company_id, advance }))
}

impl CommandService {
    /// The account stream and row recording that `requisition` (just created by `holder`) is
    /// an advance; part of the requisition's creation.
    pub(crate) async fn request_advance(
        &self,
        requisition: &Requisition,
        holder: &Actor,
        fund_company: Option<Id>,
        source: Source,
    ) -> Result<(StreamAppend, SideWrite), CommandError> {
        let requisition_id = requisition.id.ok_or(CommandError::not_found("requisition"))?;
        let settings = self.settings().await?;
        let loaded = self.load::<AdvanceAccount>(holder.user_id, source).await?;
        let mut account = loaded.state.clone();
        let command = AdvanceCommand::Request {
            requisition_id,
            fund_id: requisition.fund_id.ok_or(CommandError::not_found("requisition"))?,
            currency: requisition.currency.clone().ok_or(CommandError::not_found("requisition"))?,
            amount: requisition.amount,
            holder: holder.clone(),
            block_while_unsettled: settings.advances.block_while_unsettled,
        };
        let events = decide(&mut account, command).await?;
        let stream = StreamAppend::of(&loaded, &events, &account)?;
        let write = row(&account, requisition_id, fund_company).expect("the advance was just requested");
        Ok((stream, write))
    }

    /// The account stream and row issuing the advance of `requisition_id` (requested by
    /// `requester_id`) paid now by `payment_id`; `None` when it is no advance. Part of the
    /// payment's commit, so an advance is issued exactly when its requisition is paid.
    /// `check_block`: refuse while another advance of the holder is unsettled (a cash payment;
    /// a provider's success is past refusing: its start was checked, [`Self::advance_payable`]).
    pub(crate) async fn issue_advance(
        &self,
        requester_id: Id,
        requisition_id: Id,
        payment_id: Id,
        fund_company: Option<Id>,
        check_block: bool,
        source: Source,
    ) -> Result<Option<(StreamAppend, SideWrite)>, CommandError> {
        let loaded = self.load::<AdvanceAccount>(requester_id, source).await?;
        if loaded.state.advance(requisition_id).is_none() {
            return Ok(None);
        }
        let settings = self.settings().await?;
        let mut account = loaded.state.clone();
        let command = AdvanceCommand::Issue {
            requisition_id,
            payment_id,
            paid_at: self.clock().now(),
            due_days: settings.advances.due_days,
            block_while_unsettled: check_block && settings.advances.block_while_unsettled,
        };
        let events = decide(&mut account, command).await?;
        let stream = StreamAppend::of(&loaded, &events, &account)?;
        let write = row(&account, requisition_id, fund_company).expect("the advance exists");
        Ok(Some((stream, write)))
    }

    /// Refuses to start paying the advance of `requisition_id` through a provider while the
    /// holder has another unsettled (the same rule as a cash payment's, decided before the
    /// money leaves rather than when the provider reports it left).
    pub(crate) async fn advance_payable(
        &self,
        requester_id: Id,
        requisition_id: Id,
        source: Source,
    ) -> Result<(), CommandError> {
        self.issue_advance(requester_id, requisition_id, Id::nil(), None, true, source).await.map(|_| ())
    }

    /// The caller settles (part of) their advance `requisition_id`: what they spent, the cash
    /// they return (recorded by the fund in the same commit) and, when they spent more than was
    /// advanced, a reimbursement requisition for the extra, submitted for approval.
    pub async fn settle_advance(
        &self,
        ctx: &CommandContext,
        requisition_id: Id,
        input: Settlement,
    ) -> Result<Outcome<SettlementReceipt>, CommandError> {
        let actor =
            &ctx.actor.clone().ok_or(CommandError::Unauthenticated("this command needs a signed-in user"))?;
        let currency = input
            .currency
            .as_deref()
            .map(Currency::parse)
            .transpose()
            .map_err(|e| DomainError::money("currency", e))?;
        let (input, currency) = (&input, &currency);
        self.retrying(|source| async move {
            // Queue behind the holder's other settlements in this process (as payments queue
            // per fund): a burst of them then costs waiting, not failed retries.
            let _guard = self.locks.lock(&format!("advance_account/{}", actor.user_id)).await;
            let loaded = self.load::<AdvanceAccount>(actor.user_id, source).await?;
            let Some(advance) = loaded.state.advance(requisition_id).cloned() else {
                // Someone else's advance (or none): not found, as with requisitions.
                return Err(CommandError::not_found("advance"));
            };
            // The receipts a settlement names are those attached to the advance's requisition
            // (`POST /api/requisitions/{id}/receipts`).
            if !input.receipt_ids.is_empty() {
                let original = self.load::<Requisition>(requisition_id, source).await?.state;
                if let Some(unknown) = input
                    .receipt_ids
                    .iter()
                    .find(|id| !original.receipts.iter().any(|r| r.receipt_id == **id))
                {
                    return Err(DomainError::invalid(
                        "receipt_ids",
                        format!("{unknown} is not a receipt attached to this advance's requisition"),
                    )
                    .into());
                }
            }
            let fund = self.load_fund(advance.fund_id, source).await?;
            let fund_company = fund.state.unit.map(|u| u.company);
            let settlement_id = Id::now_v7();
            let now = self.clock().now();
            let mut streams = Vec::new();
            let mut writes = Vec::new();
            // The extra spent: a requisition for it, created and submitted in this commit.
            let reimbursement = match input.extra_owed {
                Some(extra) if !extra.is_zero() => {
                    // Charged like the advance: its category and cost centre.
                    let original = self.load::<Requisition>(requisition_id, source).await?.state;
                    let choice = CategoryChoice {
                        category_id: original.category_id,
                        cost_centre_id: original.cost_centre_id,
                    };
                    let created = self
                        .new_requisition_streams(
                            actor,
                            NewRequisition {
                                fund_id: advance.fund_id,
                                amount: extra,
                                currency: Some(advance.currency.to_string()),
                                purpose: format!("Spent beyond advance {requisition_id}"),
                                payee: None,
                                category: None,
                                submit: true,
                                urgent_reason: None,
                                origin: None,
                                advance: false,
                            },
                            choice,
                        )
                        .await
                        .map_err(|e| match e {
                            CommandError::Domain(DomainError::Money { source, .. }) => {
                                DomainError::money("extra_owed", source).into()
                            }
                            other => other,
                        })?;
                    let id = created.1.id.expect("created");
                    streams.push(created.0);
                    Some(Reimbursement { requisition_id: id, amount: extra })
                }
                _ => None,
            };
            let mut account = loaded.state.clone();
            let events = decide(
                &mut account,
                AdvanceCommand::Settle {
                    requisition_id,
                    settlement_id,
                    spent: input.spent,
                    returned: input.returned,
                    currency: currency.clone(),
                    receipt_ids: input.receipt_ids.clone(),
                    note: input.note.clone(),
                    reimbursement,
                    actor: actor.clone(),
                    now,
                },
            )
            .await?;
            let settled = account.advance(requisition_id).expect("settled").clone();
            streams.insert(0, StreamAppend::of(&loaded, &events, &account)?);
            writes.extend(row(&account, requisition_id, fund_company));
            let mut fund_balance_after = None;
            let returned = settled.currency.rescale(input.returned);
            if !returned.is_zero() {
                let mut fund_state = fund.state.clone();
                let fund_events = decide(
                    &mut fund_state,
                    FundCommand::ReceiveAdvanceReturn {
                        requisition_id,
                        settlement_id,
                        amount: returned,
                        currency: settled.currency.clone(),
                        returned_by: actor.user_id,
                        now,
                    },
                )
                .await?;
                streams.push(StreamAppend::of(&fund, &fund_events, &fund_state)?);
                fund_balance_after = Some(fund_state.balance);
            }
            let receipt = SettlementReceipt {
                settlement_id,
                requisition_id,
                spent: settled.currency.rescale(input.spent),
                returned,
                outstanding: settled.outstanding(),
                reimbursement_requisition_id: reimbursement.map(|r| r.requisition_id),
                fund_balance_after,
                position: 0,
            };
            self.commit(ctx, &streams, writes, receipt, |v, p| v.position = p).await
        })
        .await
    }

    /// The scheduler: records that the advance of `requisition_id` held by `holder_id` is
    /// overdue (its holder is mailed by the `notifications` projection).
    pub async fn record_advance_overdue(
        &self,
        holder_id: Id,
        requisition_id: Id,
    ) -> Result<(), CommandError> {
        let ctx = &CommandContext::operator("scheduler");
        self.retrying(|source| async move {
            let loaded = self.load::<AdvanceAccount>(holder_id, source).await?;
            let company = match loaded.state.advance(requisition_id) {
                Some(a) => self.load_fund(a.fund_id, Source::Cache).await?.state.unit.map(|u| u.company),
                None => return Err(CommandError::not_found("advance")),
            };
            let mut account = loaded.state.clone();
            let now = self.clock().now();
            let events = decide(&mut account, AdvanceCommand::RecordOverdue { requisition_id, now }).await?;
            let stream = StreamAppend::of(&loaded, &events, &account)?;
            let writes = row(&account, requisition_id, company).into_iter().collect();
            self.commit(ctx, &[stream], writes, (), |_, _| {}).await.map(|_| ())
        })
        .await
    }

    /// Unsettled advances past their due date and not yet recorded overdue: (holder,
    /// requisition).
    pub async fn overdue_advances(&self, now: DateTime<Utc>) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
        sqlx::query_as(
            "SELECT holder_id, requisition_id FROM advances
             WHERE outstanding > 0 AND NOT overdue_recorded AND due_at < $1 ORDER BY due_at",
        )
        .bind(now)
        .fetch_all(self.store().pool())
        .await
    }

    /// One advance, if the actor may read it (its holder, or treasury and the other payment
    /// readers of the fund's company).
    pub async fn advance(&self, actor: &Actor, requisition_id: Id) -> Result<AdvanceView, CommandError> {
        let found: Option<AdvanceView> =
            sqlx::query_as(&format!("SELECT {VIEW_COLUMNS} FROM advances WHERE requisition_id = $2"))
                .bind(self.clock().now())
                .bind(requisition_id)
                .fetch_optional(self.store().pool())
                .await?;
        found
            .filter(|a| may_read_advance(actor, a.holder_id, a.company_id))
            .ok_or(CommandError::not_found("advance"))
    }

    /// The advances the actor may read (`AdvanceScope`), newest first, at most 500.
    pub async fn advances(
        &self,
        actor: &Actor,
        filter: &AdvanceFilter,
    ) -> Result<Vec<AdvanceView>, CommandError> {
        let (company, own) = match AdvanceScope::of(actor) {
            AdvanceScope::Company(c) => (c, None),
            AdvanceScope::Own(u) => (None, Some(u)),
        };
        let rows: Vec<AdvanceView> = sqlx::query_as(&format!(
            "SELECT * FROM (SELECT {VIEW_COLUMNS} FROM advances
               WHERE CASE WHEN $2::uuid IS NOT NULL THEN holder_id = $2
                          ELSE company_id IS NOT DISTINCT FROM $3 END
                 AND ($4::uuid IS NULL OR holder_id = $4)
               ORDER BY requisition_id DESC) a
             WHERE $5::text IS NULL OR status = $5
             LIMIT 500"
        ))
        .bind(self.clock().now())
        .bind(own)
        .bind(company)
        .bind(filter.holder_id)
        .bind(filter.status.as_deref())
        .fetch_all(self.store().pool())
        .await?;
        Ok(rows)
    }
}
