//! Bulk payments (issue #14 [treasury]): treasury selects approved requisitions, pays them
//! with ONE one-time code as a batch of mobile money payments, downloads the provider's batch
//! file ([`crate::bulk`]), uploads it to the provider's portal, and imports the provider's
//! result file back.
//!
//! - **The batch** ([`CommandService::create_payment_batch`]): every line is checked first
//!   (visible, approved, payable by this payer as a single payment, one fund, a valid mobile
//!   number); any bad line refuses the whole batch, every bad line named at once
//!   ([`CommandError::BatchRefused`]). Then, in ONE transaction: per line `PaymentStarted` on
//!   the requisition and `CashReserved` on the fund (the fund's available balance checked line
//!   by line), its `provider_payments` row marked with the batch's id, the `payment_batches`
//!   row and the code's use. A requisition is in one batch at most: its stream's sequence
//!   refuses the second of two racing batches (it is executing already, 409).
//! - **Never sent by API**: a payment with a `batch_id` is paid by the uploaded file, so
//!   `submit_provider_payment`, the scheduler's status chase and its timeout leave it alone
//!   (sending it too would pay it twice).
//! - **The code**: one code for the whole batch, in `payment_codes` under the batch's *key* (a
//!   UUID derived from the sorted requisition ids, in the `requisition_id` column) with the
//!   batch's total; its hash binds the key, the payer, the total, the currency and the code.
//!   Same rules as a single payment's code: 6 digits, 5 minutes, 5 wrong attempts, single use,
//!   mailed to the payer, rate-limited per payer and key. Its issue and every refusal are
//!   recorded as on a single payment, on EACH requisition of the selection
//!   (`PaymentCodeIssued`, `PaymentCodeRejected`, in the commit that writes the code row or
//!   counts the attempt), so a requisition's history and the `otp_failures` alert see them.
//! - **Results** ([`CommandService::import_batch_results`]): each line matched by reference to
//!   a payment OF THIS BATCH, with the same amount; a success or failure is settled through
//!   [`CommandService::settle_provider_payment`] (idempotent: a line already applied says so
//!   and changes nothing). Malformed and unknown lines are reported, not applied. Each import
//!   is recorded (`payment_batch_imports`: the file's SHA-256, who, when, the report).

use crate::bulk::{BatchLine, LineOutcome, LineProblem};
use crate::context::CommandContext;
use crate::error::{BatchRefusal, CommandError};
use crate::import::Table;
use crate::mail::{Mail, MailCategory};
use crate::provider_payments::{ProviderResult, ProviderWrite};
use crate::service::{CommandService, Source};
use crate::store::{decide, AppendError, SideWrite, StreamAppend};
use crate::throttle::keyed;
use crate::Outcome;
use chrono::{DateTime, Utc};
use hmac::Mac;
use pettycash_domain::fund::{FundCommand, PaymentMethod};
use pettycash_domain::payment::{self, BatchStatus, CodeProblem, IssuedCode};
use pettycash_domain::requisition::{Requisition, RequisitionCommand};
use pettycash_domain::{Actor, DomainError, Id, Role};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use sqlx::{Postgres, Transaction};
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;
use uuid::Uuid;

/// Precedes the bound fields in a batch code's keyed hash (distinct from a single payment's).
const BATCH_CODE_LABEL: &[u8] = b"pettycash-batch-code-v1\0";
/// Most lines in a batch.
pub const MAX_BATCH_LINES: usize = 500;

/// What `POST /api/treasury/bulk-payments/code` answers (the code goes by mail only).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchCodeIssued {
    /// The key the code is bound to (derived from the requisition ids).
    pub batch_key: Uuid,
    pub count: usize,
    #[schema(value_type = String, example = "4500.00")]
    pub total: Decimal,
    pub currency: String,
    pub expires_at: DateTime<Utc>,
    pub sent_to: String,
    pub position: i64,
}

/// A batch as listed.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct BatchSummary {
    pub id: Uuid,
    pub fund_id: Uuid,
    pub currency: String,
    pub count: i32,
    #[schema(value_type = String, example = "4500.00")]
    pub total: Decimal,
    /// `open` while a line is executing, then `settled`.
    pub status: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

/// One line of a batch with its payment's status.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct BatchLineRead {
    /// The payment id: the line's reference in the batch and result files.
    pub payment_id: Uuid,
    pub requisition_id: Uuid,
    pub mobile_number: String,
    #[schema(value_type = String, example = "1500.00")]
    pub amount: Decimal,
    pub name: String,
    /// `executing`, `succeeded` or `failed`.
    pub status: String,
    pub provider_receipt: Option<String>,
    pub last_result_code: Option<String>,
    pub last_result_reason: Option<String>,
}

/// A result file imported into a batch.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct BatchImportRead {
    pub id: Uuid,
    pub file_sha256: String,
    pub imported_by: Uuid,
    pub imported_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub summary: sqlx::types::Json<serde_json::Value>,
}

impl BatchImportRead {
    /// The report of each line, as recorded with the import (`summary.lines`).
    pub fn lines(&self) -> Vec<ResultLineReport> {
        serde_json::from_value(self.summary.0["lines"].clone()).unwrap_or_default()
    }
}

/// A batch with its lines and the result files imported into it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchRead {
    #[serde(flatten)]
    pub batch: BatchSummary,
    pub lines: Vec<BatchLineRead>,
    pub imports: Vec<BatchImportRead>,
    pub position: i64,
}

/// What one line of a result file did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResultLineReport {
    /// The line's number in the file (the header is 1).
    pub row: usize,
    pub reference: Option<Uuid>,
    /// `applied`, `already_applied`, `unknown_reference`, `amount_mismatch` or `invalid`.
    pub outcome: String,
    /// The payment's status after the line (matched lines).
    pub payment_status: Option<String>,
    /// The column at fault (`invalid`).
    pub column: Option<String>,
    pub message: Option<String>,
}

/// What importing a result file did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResultImportReport {
    pub import_id: Uuid,
    pub batch_id: Uuid,
    pub file_sha256: String,
    /// Lines per outcome.
    pub totals: BTreeMap<String, usize>,
    pub lines: Vec<ResultLineReport>,
    /// The batch's status after the import.
    pub batch_status: String,
}

/// The `payment_batches` row, written with the batch's events.
#[derive(Debug, Clone)]
pub struct BatchWrite {
    pub id: Id,
    pub fund_id: Id,
    pub currency: String,
    pub count: i32,
    pub total: Decimal,
    pub created_by: Id,
    pub created_at: DateTime<Utc>,
}

pub(crate) async fn apply(tx: &mut Transaction<'static, Postgres>, w: BatchWrite) -> Result<(), AppendError> {
    sqlx::query(
        "INSERT INTO payment_batches (id, fund_id, currency, count, total, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(w.id)
    .bind(w.fund_id)
    .bind(w.currency)
    .bind(w.count)
    .bind(w.total)
    .bind(w.created_by)
    .bind(w.created_at)
    .execute(&mut **tx)
    .await
    .map_err(AppendError::Database)?;
    Ok(())
}

/// The key a batch's code is bound to: the first 16 bytes of SHA-256 over the sorted, distinct
/// requisition ids (the same selection gives the same key, another selection another).
pub fn batch_key(requisition_ids: &[Id]) -> Id {
    let mut ids = requisition_ids.to_vec();
    ids.sort();
    ids.dedup();
    let mut h = sha2::Sha256::new();
    h.update(b"pettycash-batch-key-v1\0");
    for id in ids {
        h.update(id.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

fn batch_code_hash(secret: &[u8], key: Id, payer: Id, total: Decimal, currency: &str, code: &str) -> Vec<u8> {
    let total = total.normalize().to_string();
    keyed(
        secret,
        &[
            BATCH_CODE_LABEL,
            key.as_bytes(),
            payer.as_bytes(),
            total.as_bytes(),
            b"\0",
            currency.as_bytes(),
            b"\0",
            code.as_bytes(),
        ],
    )
    .finalize()
    .into_bytes()
    .to_vec()
}

/// The latest batch code of a payer: id, hash, issued at, wrong attempts, used.
type CodeRow = (Id, Vec<u8>, DateTime<Utc>, i32, bool);

/// The checked selection: requisitions in request order, their fund, currency and total.
struct Selection {
    lines: Vec<Requisition>,
    fund_id: Id,
    currency: String,
    total: Decimal,
}

fn refusal(id: Id, field: &str, e: CommandError) -> BatchRefusal {
    let (code, conflict) = match &e {
        CommandError::Domain(d) => {
            (d.code().to_string(), matches!(d.kind(), pettycash_domain::error::ErrorKind::Conflict))
        }
        _ => ("refused".to_string(), false),
    };
    BatchRefusal {
        requisition_id: id,
        field: format!("{field}.{id}"),
        code,
        message: e.to_string(),
        conflict,
    }
}

impl CommandService {
    /// Every line payable by `payer` as a mobile money payment from one fund; every bad line
    /// refused at once.
    async fn check_selection(
        &self,
        payer: &Actor,
        ids: &[Id],
        fund_id: Option<Id>,
        source: Source,
    ) -> Result<Selection, CommandError> {
        if !payer.has(Role::Treasury) {
            return Err(DomainError::MissingRole { required: Role::Treasury }.into());
        }
        if ids.is_empty() || ids.len() > MAX_BATCH_LINES {
            return Err(DomainError::invalid(
                "requisition_ids",
                format!("a batch has 1 to {MAX_BATCH_LINES} requisitions"),
            )
            .into());
        }
        let mut seen = std::collections::HashSet::new();
        if !ids.iter().all(|id| seen.insert(*id)) {
            return Err(DomainError::invalid("requisition_ids", "a requisition is listed twice").into());
        }
        let mut refused = Vec::new();
        let mut lines = Vec::new();
        let mut fund = fund_id;
        for &id in ids {
            let checked = async {
                let loaded = self.visible_requisition(payer, id, source).await?;
                let state = loaded.state;
                state.check_payer(payer)?;
                if let Some(requester) = state.requester_id {
                    self.advance_payable(requester, id, source).await?;
                }
                // The payment's own rules (approved, not paid, not in flight), decided on a copy.
                let mut probe = state.clone();
                let start = RequisitionCommand::StartPayment {
                    payment_id: Id::now_v7(),
                    method: PaymentMethod::MobileMoney,
                    reference: None,
                    payer: payer.clone(),
                };
                decide(&mut probe, start).await?;
                Ok::<_, CommandError>(state)
            }
            .await;
            match checked {
                Ok(state) => {
                    let this_fund = state.fund_id.unwrap_or_default();
                    match fund {
                        Some(f) if f != this_fund => refused.push(refusal(
                            id,
                            "requisition_ids",
                            DomainError::invalid(
                                "fund_id",
                                "all requisitions of a batch are paid from one fund",
                            )
                            .into(),
                        )),
                        _ => fund = Some(this_fund),
                    }
                    lines.push(state);
                }
                Err(e) => refused.push(refusal(id, "requisition_ids", e)),
            }
        }
        if !refused.is_empty() {
            return Err(CommandError::BatchRefused(refused));
        }
        let currency = lines[0].currency.as_ref().map(|c| c.to_string()).unwrap_or_default();
        let total = lines.iter().map(|r| r.amount).sum();
        Ok(Selection { lines, fund_id: fund.unwrap_or_default(), currency, total })
    }

    /// Issues one code for paying `requisition_ids` as a batch, mailed to the signed-in payer.
    pub async fn request_batch_code(
        &self,
        ctx: &CommandContext,
        requisition_ids: &[Id],
        fund_id: Option<Id>,
    ) -> Result<Outcome<BatchCodeIssued>, CommandError> {
        let payer =
            &ctx.actor.clone().ok_or(CommandError::Unauthenticated("this command needs a signed-in user"))?;
        let selection = self.check_selection(payer, requisition_ids, fund_id, Source::Store).await?;
        let secret = self.invitation_setup()?;
        let email = self.payer_email(payer.user_id).await?;
        let key = batch_key(requisition_ids);
        let now = self.clock().now();
        let earlier = self.codes_issued_last_hour(key, payer.user_id, now).await?;
        if let Err(retry_after_secs) = payment::may_request_code(&earlier, now) {
            return Err(CommandError::CodeRateLimited { retry_after_secs });
        }
        let code = crate::payments::new_code();
        let issued = IssuedCode { issued_at: now, attempts: 0, used: false };
        let hash =
            batch_code_hash(secret.secret(), key, payer.user_id, selection.total, &selection.currency, &code);
        let mail = batch_code_mail(payer.user_id, &email, key, &selection, &code, issued.expires_at());
        let command = || RequisitionCommand::IssuePaymentCode {
            method: PaymentMethod::MobileMoney,
            expires_at: issued.expires_at(),
            payer: payer.clone(),
        };
        let streams = self.on_each_requisition(&selection, command).await?;
        let writes = vec![
            SideWrite::PaymentCode(crate::payments::CodeWrite::Insert {
                id: Id::now_v7(),
                requisition_id: key,
                payer_id: payer.user_id,
                method: PaymentMethod::MobileMoney,
                amount: selection.total,
                currency: selection.currency.clone(),
                code_hash: hash,
                issued_at: now,
                expires_at: issued.expires_at(),
            }),
            SideWrite::Mail(Box::new(mail)),
        ];
        let view = BatchCodeIssued {
            batch_key: key,
            count: selection.lines.len(),
            total: selection.total,
            currency: selection.currency.clone(),
            expires_at: issued.expires_at(),
            sent_to: email,
            position: 0,
        };
        self.commit(ctx, &streams, writes, view, |v, p| v.position = p).await
    }

    /// The audit events `command` decides on each requisition of `selection` (loaded afresh
    /// from the store: the commit's sequence check refuses a requisition changed meanwhile).
    async fn on_each_requisition(
        &self,
        selection: &Selection,
        command: impl Fn() -> RequisitionCommand,
    ) -> Result<Vec<StreamAppend>, CommandError> {
        let mut streams = Vec::with_capacity(selection.lines.len());
        for line in &selection.lines {
            let id = line.id.ok_or(CommandError::not_found("requisition"))?;
            let loaded = self.load::<Requisition>(id, Source::Store).await?;
            let mut state = loaded.state.clone();
            let events = decide(&mut state, command()).await?;
            streams.push(StreamAppend::of(&loaded, &events, &state)?);
        }
        Ok(streams)
    }

    /// Checks the batch code; the code's id on success. A wrong code counts an attempt; every
    /// refusal is recorded on each requisition of the selection (`PaymentCodeRejected`).
    async fn check_batch_code(
        &self,
        ctx: &CommandContext,
        payer: &Actor,
        key: Id,
        selection: &Selection,
        code: Option<&str>,
    ) -> Result<Id, CommandError> {
        let Some(code) = code else {
            return Err(DomainError::PaymentCode { problem: CodeProblem::Missing }.into());
        };
        if !payment::well_formed(code) {
            return Err(DomainError::invalid("code", "a payment code is 6 digits").into());
        }
        let setup = self.invitation_setup()?;
        let row: Option<CodeRow> = sqlx::query_as(
            "SELECT id, code_hash, issued_at, attempts, used_at IS NOT NULL FROM payment_codes
             WHERE requisition_id = $1 AND payer_id = $2 ORDER BY issued_at DESC, id DESC LIMIT 1",
        )
        .bind(key)
        .bind(payer.user_id)
        .fetch_optional(self.store().pool())
        .await?;
        let Some((id, stored, issued_at, attempts, used)) = row else {
            let problem = CodeProblem::NotIssued;
            self.record_batch_code_refusal(ctx, payer.user_id, selection, problem, None).await?;
            return Err(DomainError::PaymentCode { problem }.into());
        };
        let given =
            batch_code_hash(setup.secret(), key, payer.user_id, selection.total, &selection.currency, code);
        let issued = IssuedCode { issued_at, attempts: attempts.max(0) as u32, used };
        let problem = match payment::check_code(
            Some(&issued),
            self.clock().now(),
            crate::payments::same(&stored, &given),
        ) {
            Ok(()) => return Ok(id),
            Err(problem) => problem,
        };
        self.record_batch_code_refusal(ctx, payer.user_id, selection, problem, Some((id, issued.attempts)))
            .await?;
        Err(DomainError::PaymentCode { problem }.into())
    }

    /// Records a refused batch code: `PaymentCodeRejected` on each requisition of the
    /// selection and, for a wrong code, the attempt counted on `code` (its id and the wrong
    /// attempts before this one), in one commit.
    async fn record_batch_code_refusal(
        &self,
        ctx: &CommandContext,
        payer_id: Id,
        selection: &Selection,
        problem: CodeProblem,
        code: Option<(Id, u32)>,
    ) -> Result<(), CommandError> {
        let counted = problem == CodeProblem::Wrong;
        let attempts = code.map(|(_, before)| before + u32::from(counted)).unwrap_or(0);
        let ctx = &crate::payments::without_key(ctx);
        self.retrying(|_| async move {
            let command = || RequisitionCommand::RecordCodeRejected { payer_id, problem, attempts };
            let streams = self.on_each_requisition(selection, command).await?;
            let writes = match (counted, code) {
                (true, Some((id, _))) => {
                    vec![SideWrite::PaymentCode(crate::payments::CodeWrite::Attempt { id })]
                }
                _ => vec![],
            };
            self.commit(ctx, &streams, writes, (), |_, _| {}).await
        })
        .await
        .map(|_| ())
    }

    /// Starts paying `requisition_ids` as one batch (see the module's doc). `destinations`:
    /// the mobile number per requisition (the users table holds no phone).
    pub async fn create_payment_batch(
        &self,
        ctx: &CommandContext,
        requisition_ids: &[Id],
        fund_id: Option<Id>,
        destinations: &HashMap<Id, String>,
        code: Option<&str>,
    ) -> Result<Outcome<BatchSummary>, CommandError> {
        let payer =
            &ctx.actor.clone().ok_or(CommandError::Unauthenticated("this command needs a signed-in user"))?;
        let selection = self.check_selection(payer, requisition_ids, fund_id, Source::Store).await?;
        // Every destination, every bad one named at once.
        let mut numbers = HashMap::new();
        let mut refused = Vec::new();
        for &id in requisition_ids {
            match destinations.get(&id).map(|d| crate::bulk::normalise_msisdn(d)) {
                Some(Some(n)) => {
                    numbers.insert(id, n);
                }
                Some(None) => refused.push(refusal(
                    id,
                    "destinations",
                    DomainError::invalid("destination", "a Kenyan mobile number, e.g. 0712345678").into(),
                )),
                None => refused.push(refusal(
                    id,
                    "destinations",
                    DomainError::invalid("destination", "no mobile number for this requisition").into(),
                )),
            }
        }
        if !refused.is_empty() {
            return Err(CommandError::BatchRefused(refused));
        }
        let key = batch_key(requisition_ids);
        let code_id = self.check_batch_code(ctx, payer, key, &selection, code).await?;
        let names: HashMap<Id, String> =
            sqlx::query_as::<_, (Id, String)>("SELECT id, name FROM users WHERE id = ANY($1)")
                .bind(selection.lines.iter().filter_map(|r| r.requester_id).collect::<Vec<_>>())
                .fetch_all(self.store().pool())
                .await?
                .into_iter()
                .collect();
        let fund_id = selection.fund_id;
        let (numbers, names, selection) = (&numbers, &names, &selection);
        self.retrying(|source| async move {
            let _guard = self.locks.lock(&fund_id.to_string()).await;
            let fund = self.load_fund(fund_id, source).await?;
            let mut fund_state = fund.state.clone();
            let mut fund_events = Vec::new();
            let mut loaded = Vec::new();
            let now = self.clock().now();
            let batch_id = Id::now_v7();
            let mut writes = Vec::new();
            for &id in requisition_ids {
                let req = self.visible_requisition(payer, id, source).await?;
                let mut requisition = req.state.clone();
                let payment_id = Id::now_v7();
                let start = RequisitionCommand::StartPayment {
                    payment_id,
                    method: PaymentMethod::MobileMoney,
                    reference: Some(format!("batch {batch_id}")),
                    payer: payer.clone(),
                };
                let events = decide(&mut requisition, start).await?;
                let currency = requisition.currency.clone().ok_or(CommandError::not_found("requisition"))?;
                let reserve = FundCommand::Reserve {
                    payment_id,
                    requisition_id: id,
                    amount: requisition.amount,
                    currency: currency.clone(),
                    method: PaymentMethod::MobileMoney,
                    reserved_by: payer.user_id,
                    now,
                };
                fund_events.extend(decide(&mut fund_state, reserve).await?);
                writes.push(SideWrite::ProviderPayment(ProviderWrite::Start {
                    id: payment_id,
                    requisition_id: id,
                    fund_id,
                    method: PaymentMethod::MobileMoney,
                    amount: requisition.amount,
                    currency: currency.to_string(),
                    paid_by: payer.user_id,
                    destination: numbers.get(&id).cloned(),
                    at: now,
                    batch: Some((
                        batch_id,
                        requisition.requester_id.and_then(|r| names.get(&r).cloned()).unwrap_or_default(),
                    )),
                }));
                loaded.push((req, events, requisition));
            }
            let mut streams = Vec::new();
            for (req, events, state) in &loaded {
                streams.push(StreamAppend::of(req, events, state)?);
            }
            streams.push(StreamAppend::of(&fund, &fund_events, &fund_state)?);
            // The batch row first: the payments' rows refer to it.
            let view = BatchSummary {
                id: batch_id,
                fund_id,
                currency: selection.currency.clone(),
                count: requisition_ids.len() as i32,
                total: selection.total,
                status: BatchStatus::Open.as_str().into(),
                created_by: payer.user_id,
                created_at: now,
            };
            writes.insert(
                0,
                SideWrite::PaymentBatch(BatchWrite {
                    id: batch_id,
                    fund_id,
                    currency: selection.currency.clone(),
                    count: view.count,
                    total: selection.total,
                    created_by: payer.user_id,
                    created_at: now,
                }),
            );
            writes.push(SideWrite::PaymentCode(crate::payments::CodeWrite::Use { id: code_id, at: now }));
            let outcome = self.commit(ctx, &streams, writes, view, |_, _| {}).await?;
            self.snapshot_if_due(&fund, &fund_state, fund_events.len()).await;
            Ok(outcome)
        })
        .await
    }

    fn check_payment_reader(actor: &Actor) -> Result<(), CommandError> {
        if !pettycash_domain::visibility::may_read_payments(actor) {
            return Err(DomainError::MissingRole { required: Role::Treasury }.into());
        }
        Ok(())
    }

    /// The batches of the actor's company's funds, newest first (payment readers).
    pub async fn payment_batches(&self, actor: &Actor) -> Result<Vec<BatchSummary>, CommandError> {
        Self::check_payment_reader(actor)?;
        let all: Vec<BatchSummary> = sqlx::query_as(
            "SELECT id, fund_id, currency, count, total, status, created_by, created_at
             FROM payment_batches ORDER BY created_at DESC, id DESC LIMIT 500",
        )
        .fetch_all(self.store().pool())
        .await?;
        let mut visible = Vec::new();
        let mut funds: HashMap<Id, bool> = HashMap::new();
        for b in all {
            let ok = match funds.get(&b.fund_id) {
                Some(ok) => *ok,
                None => {
                    let fund = self.load_fund(b.fund_id, Source::Cache).await?;
                    let ok = pettycash_domain::visibility::may_read_fund(
                        actor,
                        fund.state.unit.map(|u| u.company),
                    );
                    funds.insert(b.fund_id, ok);
                    ok
                }
            };
            if ok {
                visible.push(b);
            }
        }
        Ok(visible)
    }

    /// One batch with its lines and imports (payment readers of its fund's company; 404
    /// otherwise).
    pub async fn payment_batch(&self, actor: &Actor, id: Id) -> Result<BatchRead, CommandError> {
        Self::check_payment_reader(actor)?;
        let batch: BatchSummary = sqlx::query_as(
            "SELECT id, fund_id, currency, count, total, status, created_by, created_at
             FROM payment_batches WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.store().pool())
        .await?
        .ok_or(CommandError::not_found("batch"))?;
        let fund = self.load_fund(batch.fund_id, Source::Store).await?;
        if !pettycash_domain::visibility::may_read_fund(actor, fund.state.unit.map(|u| u.company)) {
            return Err(CommandError::not_found("batch"));
        }
        let lines: Vec<BatchLineRead> = sqlx::query_as(
            "SELECT id AS payment_id, requisition_id, coalesce(destination, '') AS mobile_number, amount,
                    coalesce(payee_name, '') AS name, status, provider_reference AS provider_receipt,
                    last_result_code, last_result_reason
             FROM provider_payments WHERE batch_id = $1 ORDER BY started_at, id",
        )
        .bind(id)
        .fetch_all(self.store().pool())
        .await?;
        let imports: Vec<BatchImportRead> = sqlx::query_as(
            "SELECT id, file_sha256, imported_by, imported_at, summary FROM payment_batch_imports
             WHERE batch_id = $1 ORDER BY imported_at, id",
        )
        .bind(id)
        .fetch_all(self.store().pool())
        .await?;
        Ok(BatchRead { batch, lines, imports, position: 0 })
    }

    /// The batch's lines as the batch file carries them.
    pub async fn batch_file_lines(&self, actor: &Actor, id: Id) -> Result<Vec<BatchLine>, CommandError> {
        let batch = self.payment_batch(actor, id).await?;
        Ok(batch
            .lines
            .into_iter()
            .map(|l| BatchLine {
                mobile_number: l.mobile_number,
                amount: l.amount,
                reference: l.payment_id,
                name: l.name,
            })
            .collect())
    }

    /// Imports the provider's result file into batch `batch_id` (treasury of its fund's
    /// company). `Err` when the file lacks a required column (nothing applied).
    pub async fn import_batch_results(
        &self,
        ctx: &CommandContext,
        batch_id: Id,
        table: &Table,
        file_sha256: String,
    ) -> Result<ResultImportReport, CommandError> {
        let actor =
            &ctx.actor.clone().ok_or(CommandError::Unauthenticated("this command needs a signed-in user"))?;
        if !actor.has(Role::Treasury) {
            return Err(DomainError::MissingRole { required: Role::Treasury }.into());
        }
        // Visible to this treasurer (404 otherwise).
        self.payment_batch(actor, batch_id).await?;
        let lines = crate::bulk::read_results(table).map_err(|p: LineProblem| {
            let field = p.column.clone().unwrap_or_else(|| "file".into());
            CommandError::BatchRefused(vec![BatchRefusal {
                requisition_id: Uuid::nil(),
                field,
                code: "invalid_file".into(),
                message: p.message,
                conflict: false,
            }])
        })?;
        let mut reports = Vec::new();
        for line in lines {
            let report = match line {
                Err(p) => ResultLineReport {
                    row: p.row,
                    reference: None,
                    outcome: "invalid".into(),
                    payment_status: None,
                    column: p.column,
                    message: Some(p.message),
                },
                Ok(l) => {
                    let found: Option<(Decimal, String)> = sqlx::query_as(
                        "SELECT amount, status FROM provider_payments WHERE id = $1 AND batch_id = $2",
                    )
                    .bind(l.reference)
                    .bind(batch_id)
                    .fetch_optional(self.store().pool())
                    .await?;
                    let base =
                        |outcome: &str, status: Option<String>, message: Option<String>| ResultLineReport {
                            row: l.row,
                            reference: Some(l.reference),
                            outcome: outcome.into(),
                            payment_status: status,
                            column: None,
                            message,
                        };
                    match found {
                        None => base(
                            "unknown_reference",
                            None,
                            Some("no payment of this batch has this reference".into()),
                        ),
                        Some((amount, status)) if amount != l.amount => ResultLineReport {
                            column: Some("Amount".into()),
                            ..base(
                                "amount_mismatch",
                                Some(status),
                                Some(format!("the payment is {amount}, the line says {}", l.amount)),
                            )
                        },
                        Some((_, status)) if status != crate::provider_payments::EXECUTING => {
                            base("already_applied", Some(status), None)
                        }
                        Some(_) => {
                            let result = match l.outcome {
                                LineOutcome::Succeeded { receipt } => {
                                    ProviderResult::Succeeded { transaction_id: receipt }
                                }
                                LineOutcome::Failed { result_code, reason } => {
                                    ProviderResult::Failed { result_code, description: reason }
                                }
                            };
                            let done = self.settle_provider_payment(l.reference, result).await?;
                            let outcome = if done.value.changed { "applied" } else { "already_applied" };
                            base(outcome, Some(done.value.status), None)
                        }
                    }
                }
            };
            reports.push(report);
        }
        let mut totals = BTreeMap::new();
        for r in &reports {
            *totals.entry(r.outcome.clone()).or_insert(0) += 1;
        }
        let now = self.clock().now();
        let mut tx = self.store().pool().begin().await?;
        let batch_status: String = sqlx::query_scalar(
            "UPDATE payment_batches SET status = CASE WHEN EXISTS
                 (SELECT 1 FROM provider_payments WHERE batch_id = $1 AND status = $2)
                 THEN $3 ELSE $4 END
             WHERE id = $1 RETURNING status",
        )
        .bind(batch_id)
        .bind(crate::provider_payments::EXECUTING)
        .bind(BatchStatus::Open.as_str())
        .bind(BatchStatus::Settled.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let import_id = Id::now_v7();
        let report = ResultImportReport {
            import_id,
            batch_id,
            file_sha256: file_sha256.clone(),
            totals,
            lines: reports,
            batch_status,
        };
        sqlx::query(
            "INSERT INTO payment_batch_imports (id, batch_id, file_sha256, imported_by, imported_at, summary)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(import_id)
        .bind(batch_id)
        .bind(&file_sha256)
        .bind(actor.user_id)
        .bind(now)
        .bind(sqlx::types::Json(serde_json::json!({"totals": report.totals, "lines": report.lines})))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(report)
    }
}

/// The mail that carries a batch code to its payer.
fn batch_code_mail(
    payer_id: Id,
    email: &str,
    key: Id,
    s: &Selection,
    code: &str,
    expires_at: DateTime<Utc>,
) -> Mail {
    let until = expires_at.format("%H:%M UTC");
    let (count, total, currency) = (s.lines.len(), s.total, &s.currency);
    let minutes = payment::CODE_VALID_MINUTES;
    let text = format!(
        "Your one-time code to pay a batch of {count} mobile money payments ({total} {currency}, batch key {key}):\n\n\
         Code: {code}\n\n\
         It works once, until {until} ({minutes} minutes). Nobody from the service will ask you for it.\n\
         If you did not ask for it, tell your administrator: someone may be using your account.\n"
    );
    let html = format!(
        "<p>Your one-time code to pay a batch of {count} mobile money payments ({total} {currency}, batch key {key}):</p>\
         <p style=\"font-size:1.5em\"><strong>Code: {code}</strong></p>\
         <p>It works once, until {until} ({minutes} minutes). Nobody from the service will ask you for it. \
         If you did not ask for it, tell your administrator: someone may be using your account.</p>"
    );
    Mail {
        category: MailCategory::PaymentCode,
        recipient_user_id: Some(payer_id),
        recipient_email: email.to_string(),
        subject: format!("Batch payment code: {total} {currency}"),
        body_text: text,
        body_html: html,
        link: None,
        source_position: None,
    }
}
