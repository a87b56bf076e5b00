//! The sender: delivers the outbox's due rows, marks them sent, retries failures with backoff.
//!
//! Any number of senders may run (each `serve` and `project` process runs one). A row is
//! claimed in a transaction of its own (`FOR UPDATE SKIP LOCKED`, so senders never wait for
//! each other), which counts the attempt, fixes the row's `Message-ID` and moves its
//! `next_attempt_at` to the end of the claim ([`SenderOptions::claim_for`]). The message is
//! sent outside any transaction — an open transaction during a slow SMTP conversation would
//! hold back the visibility horizon every projection waits for — and the row is then marked
//! sent, or failed with its next attempt after a backoff.
//!
//! A crash (or a lost database) between the send and the mark leaves the row claimed: it is
//! claimed again when the claim ends and sent a second time, with the same `Message-ID`. That
//! is the price of never losing a mail; mail programs recognise the duplicate.

use super::transport::{MailTransport, SendError};
use super::MailCategory;
use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::Message;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What a sent mail that carried a secret keeps of its body.
pub const REMOVED: &str = "(removed once sent: this mail carried a secret link)";

#[derive(Debug, Clone)]
pub struct SenderOptions {
    /// How often the sender looks for due mail when nothing woke it (mail enqueued by another
    /// process, retries coming due).
    pub poll: Duration,
    /// How long a claimed row is left to its sender before another may claim it: longer than
    /// any one send can take (the SMTP timeout applies to each step of it).
    pub claim_for: Duration,
    /// The wait after the first failure; it doubles with each further one, up to `max_retry`,
    /// and stays there: mail is never given up on while it may still go through.
    pub first_retry: Duration,
    pub max_retry: Duration,
}

impl Default for SenderOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            claim_for: Duration::from_secs(600),
            first_retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(3600),
        }
    }
}

/// The wait before the next attempt of a mail that failed its `attempts`-th attempt.
pub fn backoff(attempts: i32, options: &SenderOptions) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
    options.first_retry.saturating_mul(1u32 << doublings).min(options.max_retry)
}

/// A row claimed for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub message_id: String,
    pub recipient_email: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

/// What one pass over the due rows did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub sent: usize,
    pub failed: usize,
}

pub struct Sender {
    pool: PgPool,
    transport: Arc<dyn MailTransport>,
    from: Mailbox,
    /// The domain of `Message-ID`s: the sender address's.
    domain: String,
    options: SenderOptions,
}

impl Sender {
    /// A sender of mail from `from` (`DEFAULT_FROM_EMAIL`) through `transport`.
    pub fn new(
        pool: PgPool,
        transport: Arc<dyn MailTransport>,
        from: Mailbox,
        options: SenderOptions,
    ) -> Self {
        let domain = from.email.domain().to_string();
        Self { pool, transport, from, domain, options }
    }

    /// Delivers due mail until `shutdown` turns true: when woken by mail enqueued in this
    /// process ([`super::enqueued`]), else every [`SenderOptions::poll`]. Idle, it costs one
    /// indexed statement per poll that finds nothing.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut woken = super::subscribe();
        tracing::info!(transport = %self.transport.describe(), from = %self.from, "mail sender running");
        loop {
            if *shutdown.borrow() {
                return;
            }
            woken.borrow_and_update();
            if let Err(e) = self.deliver_due().await {
                tracing::warn!(error = format!("{e:#}"), "mail sender could not reach the outbox; retrying");
            }
            tokio::select! {
                _ = woken.changed() => {}
                _ = tokio::time::sleep(self.options.poll) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Sends every row that is due, one at a time. Stops at the first failure worth retrying:
    /// the server is probably unreachable, and the rows not tried yet are due again at the next
    /// pass (each failed row waits its own backoff).
    pub async fn deliver_due(&self) -> anyhow::Result<Pass> {
        let mut pass = Pass::default();
        while let Some(mail) = self.claim().await.context("claiming due mail")? {
            match self.send(&mail).await {
                Ok(()) => {
                    self.mark_sent(mail.id)
                        .await
                        .with_context(|| format!("marking mail {} sent", mail.id))?;
                    pass.sent += 1;
                }
                Err(e) => {
                    let next = self
                        .mark_failed(&mail, &e)
                        .await
                        .with_context(|| format!("recording the failure of mail {}", mail.id))?;
                    pass.failed += 1;
                    tracing::warn!(
                        outbox_id = mail.id,
                        attempts = mail.attempts,
                        retry_in_secs = next.map(|d| d.as_secs()),
                        error = %e.message,
                        "mail not sent"
                    );
                    if e.retry {
                        break;
                    }
                }
            }
        }
        Ok(pass)
    }

    /// Claims the next due row, if any: counts the attempt, fixes its `Message-ID`, and keeps
    /// other senders off it for [`SenderOptions::claim_for`].
    pub async fn claim(&self) -> sqlx::Result<Option<Claimed>> {
        sqlx::query_as(
            "UPDATE mail_outbox m
             SET attempts = m.attempts + 1,
                 next_attempt_at = now() + make_interval(secs => $2),
                 message_id = coalesce(m.message_id, '<outbox-' || m.id || '@' || $1 || '>')
             FROM (SELECT id FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at <= now()
                   ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) due
             WHERE m.id = due.id
             RETURNING m.id, m.message_id, m.recipient_email, m.subject, m.body_text, m.body_html, m.attempts",
        )
        .bind(&self.domain)
        .bind(self.options.claim_for.as_secs_f64())
        .fetch_optional(&self.pool)
        .await
    }

    /// The message of a claimed row: text and HTML alternatives, its stable `Message-ID`.
    pub fn message(&self, mail: &Claimed) -> Result<Message, SendError> {
        let to: Mailbox = mail.recipient_email.parse().map_err(|e| {
            SendError::permanent(format!(
                "the recipient address `{}` is not valid: {e}",
                mail.recipient_email
            ))
        })?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(mail.message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(mail.body_text.clone(), mail.body_html.clone()))
            .map_err(|e| SendError::permanent(format!("the message cannot be built: {e}")))
    }

    /// Sends a claimed row through the transport.
    pub async fn send(&self, mail: &Claimed) -> Result<(), SendError> {
        let message = self.message(mail)?;
        self.transport.send(&mail.message_id, &message).await
    }

    /// Marks a row sent. A mail carrying a secret (an invitation's link) loses its body and
    /// link here: once delivered, the outbox has no reason to keep a usable link, and every
    /// reader of the database (the auditor role, backups) could otherwise use it.
    pub async fn mark_sent(&self, id: i64) -> sqlx::Result<()> {
        let secret: Vec<MailCategory> =
            MailCategory::ALL.into_iter().filter(|c| c.carries_secret()).collect();
        sqlx::query(
            "UPDATE mail_outbox
             SET sent_at = now(),
                 body_text = CASE WHEN category = ANY ($2) THEN $3 ELSE body_text END,
                 body_html = CASE WHEN category = ANY ($2) THEN $4 ELSE body_html END,
                 link = CASE WHEN category = ANY ($2) THEN NULL ELSE link END
             WHERE id = $1",
        )
        .bind(id)
        .bind(secret)
        .bind(REMOVED)
        .bind(format!("<p>{REMOVED}</p>"))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failure: due again after the backoff, or never (`'infinity'`) when the message
    /// itself was refused. Returns the wait, `None` for never.
    pub async fn mark_failed(&self, mail: &Claimed, error: &SendError) -> sqlx::Result<Option<Duration>> {
        let wait = error.retry.then(|| backoff(mail.attempts, &self.options));
        sqlx::query(
            "UPDATE mail_outbox
             SET last_error = $2,
                 next_attempt_at = CASE WHEN $3::float8 IS NULL THEN 'infinity'
                                        ELSE now() + make_interval(secs => $3) END
             WHERE id = $1 AND sent_at IS NULL",
        )
        .bind(mail.id)
        .bind(&error.message)
        .bind(wait.map(|w| w.as_secs_f64()))
        .execute(&self.pool)
        .await?;
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_to_an_hour_and_stays() {
        let o = SenderOptions::default();
        let waits: Vec<u64> = (1..=12).map(|n| backoff(n, &o).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]);
        assert_eq!(backoff(i32::MAX, &o), o.max_retry);
        assert_eq!(backoff(0, &o), o.first_retry);
    }
}
