//! Mail: a transactional outbox (`mail_outbox`, migration 0010), its templates and its sender.
//!
//! **A mail is written in the transaction that decided it, and sent after.** Two ways in:
//!
//! - **From events** (most mail): the `notifications` projection (`pettycash-projections`,
//!   `Kind::SideEffecting`) reads the events, works out who is told what, renders the
//!   [`templates`] and [`enqueue`]s each mail in its batch transaction, with its checkpoint.
//!   A mail for a new event is a template and a match arm there.
//! - **From a command**, when the mail carries something no event may hold (an invitation's
//!   secret link): the command renders it and hands it to the append as
//!   [`SideWrite::Mail`](crate::store::SideWrite::Mail), which [`enqueue`]s it in the same
//!   transaction as the command's events (and wakes the sender after the commit).
//!
//! Either way a recipient's muted categories are honoured by [`enqueue`] itself, from
//! `users.muted_mail` as of that transaction (unmutable categories always go).
//!
//! Mail of a category that carries a secret (`MailCategory::carries_secret`: an invitation's
//! link) keeps its body in the outbox only until it is sent: the sender replaces it when it
//! marks the row sent, so that the outbox (and its backups) do not keep usable links.
//!
//! The [`sender`] claims due rows, sends them through a [`transport::MailTransport`] (SMTP, or
//! a folder in development) outside any transaction, and marks them sent; failures are retried
//! with backoff. See `docs/architecture.md` ("Mail: outbox, sender, templates").

pub mod sender;
pub mod templates;
pub mod transport;

pub use lettre::message::Mailbox;
use pettycash_domain::Id;
pub use pettycash_domain::MailCategory;
use sqlx::PgConnection;
use std::sync::LazyLock;
use tokio::sync::watch;

/// One mail to send: a row of `mail_outbox` before it has an id.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub category: MailCategory,
    /// The user it is for, when it is for one (muting needs it).
    pub recipient_user_id: Option<Id>,
    pub recipient_email: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    /// The page it is about.
    pub link: Option<String>,
    /// The global position of the event that caused it (a projection's mail); `None` for a
    /// command's mail.
    pub source_position: Option<i64>,
}

/// Writes `mail` into the outbox in `tx`, unless its recipient muted its category (read from
/// `users.muted_mail` in the same transaction; invitations, security mail and payment codes
/// are never muted) or a mail for the same event, recipient and category is there already (a
/// projection applying an event again). True when a row was written.
///
/// Whoever calls it commits `tx` and then calls [`enqueued`] (the projection engine and the
/// event store do), or the sender finds the row at its next poll.
pub async fn enqueue(tx: &mut PgConnection, mail: &Mail) -> sqlx::Result<bool> {
    let written = sqlx::query(
        "INSERT INTO mail_outbox (category, recipient_user_id, recipient_email, subject, body_text, body_html,
                                  link, source_position)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8
         WHERE NOT ($9 AND EXISTS (SELECT 1 FROM users WHERE id = $2 AND $1 = ANY (muted_mail)))
         ON CONFLICT (source_position, recipient_email, category) DO NOTHING",
    )
    .bind(mail.category)
    .bind(mail.recipient_user_id)
    .bind(&mail.recipient_email)
    .bind(&mail.subject)
    .bind(&mail.body_text)
    .bind(&mail.body_html)
    .bind(&mail.link)
    .bind(mail.source_position)
    .bind(mail.category.is_mutable())
    .execute(&mut *tx)
    .await?;
    Ok(written.rows_affected() > 0)
}

/// Mail enqueued in this process, counted: the sender here follows it.
static ENQUEUED: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Mail was committed to the outbox in this process: wake the sender here now (senders in
/// other processes find it at their next poll). Never waits.
pub fn enqueued() {
    ENQUEUED.send_modify(|n| *n = n.wrapping_add(1));
}

/// A receiver that changes whenever [`enqueued`] is called in this process.
pub fn subscribe() -> watch::Receiver<u64> {
    ENQUEUED.subscribe()
}

/// Where the service's pages are (`PUBLIC_URL`): the links mail carries. The paths are stable
/// (the web pages arrive later and keep them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    base: String,
}

impl Links {
    /// `public_url` without a trailing slash is what every link starts with.
    pub fn new(public_url: &str) -> Self {
        Self { base: public_url.trim_end_matches('/').to_string() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The requisition's page.
    pub fn requisition(&self, id: Id) -> String {
        format!("{}/requisitions/{id}", self.base)
    }

    /// The page where an invitee chooses their password: it carries the invitation's secret
    /// token, so only the invitation mail holds it (never an event, never a log line of ours).
    /// The page reads the token from its path and calls `POST /api/invitations/lookup` and
    /// `POST /api/invitations/accept`.
    pub fn invitation(&self, token: &str) -> String {
        format!("{}/invitations/{token}", self.base)
    }

    /// An alert's page.
    pub fn alert(&self, id: Id) -> String {
        format!("{}/alerts/{id}", self.base)
    }

    /// Where a user changes which mail they receive.
    pub fn mail_preferences(&self) -> String {
        format!("{}/me/mail-preferences", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_start_with_the_public_url_once() {
        let id = Id::nil();
        for base in ["https://cash.example.com", "https://cash.example.com/"] {
            assert_eq!(
                Links::new(base).requisition(id),
                "https://cash.example.com/requisitions/00000000-0000-0000-0000-000000000000"
            );
        }
    }
}
