//! One-time payment codes (issue #14 [treasury]): `POST /api/treasury/payments/code` issues
//! one, `POST /api/treasury/payments` executes a payment with it.
//!
//! **The code.** 6 digits from the operating system's generator (`OsRng`). It exists in the
//! mail (its body waits in the outbox until sent, then the sender removes it: the
//! `payment_code` category carries a secret and cannot be muted), the payer's mailbox and the
//! request that pays. The `payment_codes` table (migration 0016) holds
//! HMAC-SHA256(SECRET_KEY, label || requisition || payer || amount || currency || method ||
//! code): the code is bound to the payment it was asked for, a copy of the database opens
//! nothing, and the key is the one of session and invitation tokens.
//!
//! **Rules** (pure, in `pettycash_domain::payment`): valid 5 minutes on the service's clock,
//! single use, 5 wrong attempts then a new code is needed, asked for at most once every 30 s
//! and 5 times an hour per payer and requisition (429 `payment_code_rate_limited`). The
//! latest code issued to the payer for the requisition is the one that counts.
//!
//! **Audit.** `PaymentCodeIssued` and `PaymentCodeRejected` on the requisition stream (no code
//! or hash in them) record every issue and every refusal; a wrong attempt's counter is
//! incremented in the transaction of its event, the use in the transaction of the payment.
//!
//! **Waiver.** The setting `payment_code_waiver_below` (a whole amount of the fund's currency,
//! default 0: never) waives the code for cash payments below it.

use crate::context::CommandContext;
use crate::error::CommandError;
use crate::mail::{Mail, MailCategory};
use crate::service::{CommandService, Source};
use crate::store::{decide, AppendError, SideWrite, StreamAppend};
use crate::throttle::keyed;
use crate::Outcome;
use chrono::{DateTime, Utc};
use hmac::Mac;
use pettycash_domain::fund::PaymentMethod;
use pettycash_domain::payment::{self, CodeProblem, IssuedCode};
use pettycash_domain::requisition::{Requisition, RequisitionCommand};
use pettycash_domain::{Actor, DomainError, Id};
use rand::Rng;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

/// Precedes the bound fields in a code's keyed hash: no other hash of the service coincides.
const CODE_LABEL: &[u8] = b"pettycash-payment-code-v1\0";

/// What `POST /api/treasury/payments/code` answers (the code itself goes by mail only).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentCodeIssued {
    pub requisition_id: Uuid,
    #[schema(value_type = String, example = "cash")]
    pub method: PaymentMethod,
    /// The code works once, until then.
    pub expires_at: DateTime<Utc>,
    /// The address the code was mailed to (the paying user's).
    pub sent_to: String,
    pub position: i64,
}

/// A write on `payment_codes`, in the transaction of the events it goes with.
#[derive(Debug, Clone)]
pub enum CodeWrite {
    /// A new code (with `PaymentCodeIssued`).
    Insert {
        id: Id,
        requisition_id: Id,
        payer_id: Id,
        method: PaymentMethod,
        amount: Decimal,
        currency: String,
        code_hash: Vec<u8>,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    /// A wrong attempt (with `PaymentCodeRejected`); refused (`payment_code_locked`) once the
    /// code has had its attempts or was used.
    Attempt { id: Id },
    /// The payment (with its events); refused (`payment_code_used`) unless the code is unused
    /// and not locked: a code pays once whatever raced it.
    Use { id: Id, at: DateTime<Utc> },
}

pub(crate) async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    write: CodeWrite,
) -> Result<(), AppendError> {
    let refused = |problem| AppendError::Rule(DomainError::PaymentCode { problem });
    match write {
        CodeWrite::Insert {
            id,
            requisition_id,
            payer_id,
            method,
            amount,
            currency,
            code_hash,
            issued_at,
            expires_at,
        } => {
            sqlx::query(
                "INSERT INTO payment_codes (id, requisition_id, payer_id, method, amount, currency, code_hash,
                                            issued_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(id)
            .bind(requisition_id)
            .bind(payer_id)
            .bind(method.as_str())
            .bind(amount)
            .bind(currency)
            .bind(code_hash)
            .bind(issued_at)
            .bind(expires_at)
            .execute(&mut **tx)
            .await
            .map_err(AppendError::Database)?;
            Ok(())
        }
        CodeWrite::Attempt { id } => {
            let done = sqlx::query(
                "UPDATE payment_codes SET attempts = attempts + 1
                 WHERE id = $1 AND used_at IS NULL AND attempts < $2",
            )
            .bind(id)
            .bind(payment::CODE_MAX_ATTEMPTS as i32)
            .execute(&mut **tx)
            .await
            .map_err(AppendError::Database)?;
            if done.rows_affected() == 0 {
                return Err(refused(CodeProblem::Locked));
            }
            Ok(())
        }
        CodeWrite::Use { id, at } => {
            let done = sqlx::query(
                "UPDATE payment_codes SET used_at = $2
                 WHERE id = $1 AND used_at IS NULL AND attempts < $3",
            )
            .bind(id)
            .bind(at)
            .bind(payment::CODE_MAX_ATTEMPTS as i32)
            .execute(&mut **tx)
            .await
            .map_err(AppendError::Database)?;
            if done.rows_affected() == 0 {
                return Err(refused(CodeProblem::Used));
            }
            Ok(())
        }
    }
}

/// A stored code of a requisition.
#[derive(sqlx::FromRow)]
struct CodeRow {
    id: Id,
    payer_id: Id,
    code_hash: Vec<u8>,
    issued_at: DateTime<Utc>,
    attempts: i32,
    used: bool,
}

impl CodeRow {
    fn issued(&self) -> IssuedCode {
        IssuedCode { issued_at: self.issued_at, attempts: self.attempts.max(0) as u32, used: self.used }
    }
}

/// The keyed hash of `code` for this payment.
fn code_hash(
    secret: &[u8],
    requisition: &Requisition,
    payer_id: Id,
    method: PaymentMethod,
    code: &str,
) -> Vec<u8> {
    let requisition_id = requisition.id.unwrap_or_default();
    let amount = requisition.amount.normalize().to_string();
    let currency = requisition.currency.as_ref().map(|c| c.to_string()).unwrap_or_default();
    keyed(
        secret,
        &[
            CODE_LABEL,
            requisition_id.as_bytes(),
            payer_id.as_bytes(),
            amount.as_bytes(),
            b"\0",
            currency.as_bytes(),
            b"\0",
            method.as_str().as_bytes(),
            b"\0",
            code.as_bytes(),
        ],
    )
    .finalize()
    .into_bytes()
    .to_vec()
}

/// Constant-time comparison of two hashes.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new code: 6 digits, uniform, from the operating system's generator.
pub(crate) fn new_code() -> String {
    let n: u32 = rand::rngs::OsRng.gen_range(0..10u32.pow(payment::CODE_DIGITS));
    format!("{n:0width$}", width = payment::CODE_DIGITS as usize)
}

/// Refuses a method that goes through a provider (`bank`, `mobile_money`) on the path that pays
/// at once: they are reserved and sent to the provider
/// ([`CommandService::start_provider_payment`](crate::CommandService::start_provider_payment)),
/// never paid as if the money had left (422 naming `method`).
pub fn paid_at_once(method: PaymentMethod) -> Result<(), CommandError> {
    if method.through_provider() {
        return Err(DomainError::invalid(
            "method",
            "bank and mobile money payments go through the payment provider and need a destination",
        )
        .into());
    }
    Ok(())
}

/// The context of a code's refusal: the caller's, without its Idempotency-Key (a refusal is
/// not the answer stored for the key).
pub(crate) fn without_key(ctx: &CommandContext) -> CommandContext {
    let mut ctx = ctx.clone();
    ctx.idempotency = None;
    ctx
}

impl CommandService {
    /// Where a payer's codes are mailed.
    pub(crate) async fn payer_email(&self, payer_id: Id) -> Result<String, CommandError> {
        sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
            .bind(payer_id)
            .fetch_optional(self.store().pool())
            .await?
            .ok_or(CommandError::not_found("user"))
    }

    /// When `payer_id` was issued codes for `key` (a requisition, or a batch's key) in the hour
    /// before `now`, newest first: what the rate limit (`payment::may_request_code`) looks at.
    pub(crate) async fn codes_issued_last_hour(
        &self,
        key: Id,
        payer_id: Id,
        now: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, CommandError> {
        Ok(sqlx::query_scalar(
            "SELECT issued_at FROM payment_codes
             WHERE requisition_id = $1 AND payer_id = $2 AND issued_at > $3
             ORDER BY issued_at DESC",
        )
        .bind(key)
        .bind(payer_id)
        .bind(now - chrono::Duration::hours(1))
        .fetch_all(self.store().pool())
        .await?)
    }

    /// The latest code `payer` was issued for paying `requisition_id`, while it still works
    /// (not used, not locked by wrong attempts, not expired: `payment::check_code`'s rule):
    /// its method, until when, and the address it was mailed to. `None` otherwise. What the
    /// pay page says after a code was asked for, so that the page can be shown again (a
    /// reload, a redirect) without asking for another.
    pub async fn open_payment_code(
        &self,
        payer: &Actor,
        requisition_id: Id,
    ) -> Result<Option<PaymentCodeIssued>, CommandError> {
        #[derive(sqlx::FromRow)]
        struct Latest {
            #[sqlx(flatten)]
            code: CodeRow,
            method: String,
            expires_at: DateTime<Utc>,
        }
        let latest: Option<Latest> = sqlx::query_as(
            "SELECT id, payer_id, code_hash, issued_at, attempts, used_at IS NOT NULL AS used, method,
                    expires_at
             FROM payment_codes WHERE requisition_id = $1 AND payer_id = $2
             ORDER BY issued_at DESC, id DESC LIMIT 1",
        )
        .bind(requisition_id)
        .bind(payer.user_id)
        .fetch_optional(self.store().pool())
        .await?;
        let Some(Latest { code, method, expires_at }) = latest else { return Ok(None) };
        let works = payment::check_code(Some(&code.issued()), self.clock().now(), true).is_ok();
        let (Ok(method), true) = (method.parse::<PaymentMethod>(), works) else { return Ok(None) };
        let sent_to = self.payer_email(payer.user_id).await?;
        Ok(Some(PaymentCodeIssued { requisition_id, method, expires_at, sent_to, position: 0 }))
    }

    /// Issues a one-time code for paying `requisition_id` by `method` and mails it to the
    /// signed-in payer. The same checks as a payment first (treasury, neither requester nor
    /// approver, approved and unpaid); rate-limited per payer and requisition.
    pub async fn request_payment_code(
        &self,
        ctx: &CommandContext,
        requisition_id: Id,
        method: PaymentMethod,
    ) -> Result<Outcome<PaymentCodeIssued>, CommandError> {
        let payer =
            &ctx.actor.clone().ok_or(CommandError::Unauthenticated("this command needs a signed-in user"))?;
        let secret = self.invitation_setup()?;
        let email = &self.payer_email(payer.user_id).await?;
        let secret = &secret;
        self.retrying(|source| async move {
            let loaded = self.visible_requisition(payer, requisition_id, source).await?;
            let now = self.clock().now();
            let earlier = self.codes_issued_last_hour(requisition_id, payer.user_id, now).await?;
            // Decide first: someone who may not pay gets no code (and is not rate-limited).
            let mut requisition = loaded.state.clone();
            let issued = IssuedCode { issued_at: now, attempts: 0, used: false };
            let command = RequisitionCommand::IssuePaymentCode {
                method,
                expires_at: issued.expires_at(),
                payer: payer.clone(),
            };
            let events = decide(&mut requisition, command).await?;
            if let Err(retry_after_secs) = payment::may_request_code(&earlier, now) {
                return Err(CommandError::CodeRateLimited { retry_after_secs });
            }
            let code = new_code();
            let hash = code_hash(secret.secret(), &requisition, payer.user_id, method, &code);
            let currency = requisition.currency.as_ref().map(|c| c.to_string()).unwrap_or_default();
            let mail = code_mail(payer.user_id, email, &requisition, method, &code, issued.expires_at());
            let writes = vec![
                SideWrite::PaymentCode(CodeWrite::Insert {
                    id: Id::now_v7(),
                    requisition_id,
                    payer_id: payer.user_id,
                    method,
                    amount: requisition.amount,
                    currency,
                    code_hash: hash,
                    issued_at: now,
                    expires_at: issued.expires_at(),
                }),
                SideWrite::Mail(Box::new(mail)),
            ];
            let stream = StreamAppend::of(&loaded, &events, &requisition)?;
            let view = PaymentCodeIssued {
                requisition_id,
                method,
                expires_at: issued.expires_at(),
                sent_to: email.clone(),
                position: 0,
            };
            self.commit(ctx, &[stream], writes, view, |v, p| v.position = p).await
        })
        .await
    }

    /// Checks the code given to pay `requisition` by `method` (`None` when the payment needs
    /// none: waived). A refusal is recorded (`PaymentCodeRejected`, and a wrong attempt
    /// counted) before it is returned. On success, the code's id: the payment marks it used in
    /// its own transaction ([`CodeWrite::Use`]).
    pub(crate) async fn check_payment_code(
        &self,
        ctx: &CommandContext,
        payer: &Actor,
        requisition: &Requisition,
        method: PaymentMethod,
        code: Option<&str>,
    ) -> Result<Option<Id>, CommandError> {
        let waiver = self.settings().await?.payments.code_waiver_below;
        if method == PaymentMethod::Cash && requisition.amount < Decimal::from(waiver) {
            return Ok(None);
        }
        let Some(code) = code else {
            return Err(DomainError::PaymentCode { problem: CodeProblem::Missing }.into());
        };
        if !payment::well_formed(code) {
            return Err(DomainError::invalid("code", "a payment code is 6 digits").into());
        }
        let requisition_id = requisition.id.ok_or(CommandError::not_found("requisition"))?;
        let setup = self.invitation_setup()?;
        let rows: Vec<CodeRow> = sqlx::query_as(
            "SELECT id, payer_id, code_hash, issued_at, attempts, used_at IS NOT NULL AS used
             FROM payment_codes WHERE requisition_id = $1 ORDER BY issued_at DESC, id DESC",
        )
        .bind(requisition_id)
        .fetch_all(self.store().pool())
        .await?;
        let now = self.clock().now();
        let mine = rows.iter().find(|r| r.payer_id == payer.user_id);
        let given = code_hash(setup.secret(), requisition, payer.user_id, method, code);
        let verdict = match mine {
            Some(row) => payment::check_code(Some(&row.issued()), now, same(&row.code_hash, &given)),
            None => {
                let another_users = rows.iter().any(|r| {
                    r.payer_id != payer.user_id
                        && payment::check_code(
                            Some(&r.issued()),
                            now,
                            same(
                                &r.code_hash,
                                &code_hash(setup.secret(), requisition, r.payer_id, method, code),
                            ),
                        )
                        .is_ok()
                });
                Err(if another_users { CodeProblem::NotYours } else { CodeProblem::NotIssued })
            }
        };
        let problem = match verdict {
            Ok(()) => return Ok(mine.map(|r| r.id)),
            Err(problem) => problem,
        };
        let counted = problem == CodeProblem::Wrong;
        let attempts = mine.map(|r| r.attempts.max(0) as u32 + u32::from(counted)).unwrap_or(0);
        let code_id = mine.map(|r| r.id);
        let ctx = &without_key(ctx);
        let payer_id = payer.user_id;
        let recorded = self
            .retrying(|_| async move {
                let loaded = self.load::<Requisition>(requisition_id, Source::Store).await?;
                let mut state = loaded.state.clone();
                let command = RequisitionCommand::RecordCodeRejected { payer_id, problem, attempts };
                let events = decide(&mut state, command).await?;
                let stream = StreamAppend::of(&loaded, &events, &state)?;
                let writes = match (counted, code_id) {
                    (true, Some(id)) => vec![SideWrite::PaymentCode(CodeWrite::Attempt { id })],
                    _ => vec![],
                };
                self.commit(ctx, &[stream], writes, (), |_, _| {}).await
            })
            .await;
        match recorded {
            Ok(_) => Err(DomainError::PaymentCode { problem }.into()),
            Err(e) => Err(e),
        }
    }
}

/// The mail that carries a code to its payer.
fn code_mail(
    payer_id: Id,
    email: &str,
    requisition: &Requisition,
    method: PaymentMethod,
    code: &str,
    expires_at: DateTime<Utc>,
) -> Mail {
    let id = requisition.id.unwrap_or_default();
    let currency = requisition.currency.as_ref().map(|c| c.to_string()).unwrap_or_default();
    let amount = requisition.amount;
    let until = expires_at.format("%H:%M UTC");
    let text = format!(
        "Your one-time code to pay requisition {id} ({amount} {currency}, {method}):\n\n\
         Code: {code}\n\n\
         It works once, until {until} ({minutes} minutes). Nobody from the service will ask you for it.\n\
         If you did not ask for it, tell your administrator: someone may be using your account.\n",
        method = method.as_str(),
        minutes = payment::CODE_VALID_MINUTES,
    );
    let html = format!(
        "<p>Your one-time code to pay requisition {id} ({amount} {currency}, {method}):</p>\
         <p style=\"font-size:1.5em\"><strong>Code: {code}</strong></p>\
         <p>It works once, until {until} ({minutes} minutes). Nobody from the service will ask you for it. \
         If you did not ask for it, tell your administrator: someone may be using your account.</p>",
        method = method.as_str(),
        minutes = payment::CODE_VALID_MINUTES,
    );
    Mail {
        category: MailCategory::PaymentCode,
        recipient_user_id: Some(payer_id),
        recipient_email: email.to_string(),
        subject: format!("Payment code: {amount} {currency}"),
        body_text: text,
        body_html: html,
        link: None,
        source_position: None,
    }
}
