//! Starting the mail sender of a `serve` or `project` process, as its configuration says.

use crate::config::{Config, ExposeSecret, MailTransportConfig};
use pettycash_commands::mail::sender::Sender;
use pettycash_commands::mail::transport::{Folder, MailTransport, Smtp, SmtpSettings};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for any one step of an SMTP conversation.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// What `/health/` says of this process's sender.
pub fn sender_kind(config: &Config) -> &'static str {
    match (&config.mail.transport, config.run_projections) {
        (_, false) | (MailTransportConfig::Queue, _) => "off",
        (MailTransportConfig::Smtp { .. }, true) => "smtp",
        (MailTransportConfig::Folder(_), true) => "folder",
    }
}

/// The transport the configuration names; `None` when mail only queues.
pub fn transport(config: &Config) -> anyhow::Result<Option<Arc<dyn MailTransport>>> {
    Ok(match &config.mail.transport {
        MailTransportConfig::Smtp { host, port, starttls, user, password } => {
            let settings = SmtpSettings {
                host: host.clone(),
                port: *port,
                starttls: *starttls,
                credentials: user.clone().map(|u| {
                    (u, password.as_ref().map(|p| p.expose_secret().to_string()).unwrap_or_default())
                }),
                timeout: SMTP_TIMEOUT,
            };
            Some(Arc::new(Smtp::new(&settings).map_err(|e| anyhow::anyhow!("EMAIL_HOST: {e}"))?))
        }
        MailTransportConfig::Folder(dir) => Some(Arc::new(Folder::new(dir.clone()))),
        MailTransportConfig::Queue => None,
    })
}

/// The sender this process runs (`run` it until shutdown), and a line in the log saying where
/// mail goes: to the SMTP server, into the development folder, or nowhere yet (no `EMAIL_HOST`
/// with DEBUG off: mail waits in the outbox, and there is no sender).
pub fn sender(config: &Config, pool: &PgPool) -> anyhow::Result<Option<Sender>> {
    let Some(transport) = transport(config)? else {
        tracing::warn!(
            "EMAIL_HOST is not set and DEBUG is off: no mail is sent; it waits in the outbox (mail_outbox) \
             until EMAIL_HOST is set and the service restarted"
        );
        return Ok(None);
    };
    match &config.mail.transport {
        MailTransportConfig::Folder(dir) => tracing::info!(
            "EMAIL_HOST is not set (development): mail is written to {} as .eml files",
            dir.display()
        ),
        _ => tracing::info!("mail is sent through {}", transport.describe()),
    }
    Ok(Some(Sender::new(pool.clone(), transport, config.mail.from.clone(), config.mail.sender.clone())))
}
