//! Where mail goes: an SMTP server (lettre), or a folder of `.eml` files in development.

use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::response::{Category, Severity};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;

/// Why a message was not sent, and whether sending it again may work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// False when the server refused this message itself (a mailbox that does not exist):
    /// sending it again would be refused again. Everything else (the server unreachable, a
    /// timeout, a temporary refusal, a login or TLS problem that a configuration fix cures)
    /// is worth retrying.
    pub retry: bool,
    pub message: String,
}

impl SendError {
    pub fn retry(message: impl Into<String>) -> Self {
        Self { retry: true, message: message.into() }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self { retry: false, message: message.into() }
    }
}

/// Sends one message at a time.
#[async_trait]
pub trait MailTransport: Send + Sync {
    /// Sends `message`, whose `Message-ID` header is `message_id`.
    async fn send(&self, message_id: &str, message: &Message) -> Result<(), SendError>;
    /// Where mail goes, for the log: `smtp://mail.example.com:587 (STARTTLS)`.
    fn describe(&self) -> String;
}

/// How to reach the SMTP server (`EMAIL_HOST`, `EMAIL_PORT`, `EMAIL_USE_TLS`,
/// `EMAIL_HOST_USER`, `EMAIL_HOST_PASSWORD`).
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// Upgrade the connection with STARTTLS (and refuse to send without it).
    pub starttls: bool,
    /// Sign in with this user and password; no sign-in when `None`.
    pub credentials: Option<(String, String)>,
    /// Longest wait for any one step of the conversation with the server.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("starttls", &self.starttls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Mail over SMTP. One connection per message: mail is rare (a few per requisition), and a
/// pooled connection the server dropped would cost a failed attempt.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    described: String,
}

impl Smtp {
    pub fn new(settings: &SmtpSettings) -> Result<Self, SendError> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
            .port(settings.port)
            .timeout(Some(settings.timeout));
        if settings.starttls {
            let tls = TlsParameters::new(settings.host.clone())
                .map_err(|e| SendError::retry(format!("TLS set-up for {}: {e}", settings.host)))?;
            builder = builder.tls(Tls::Required(tls));
        }
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let described = format!(
            "smtp://{}:{}{}",
            settings.host,
            settings.port,
            if settings.starttls { " (STARTTLS)" } else { "" }
        );
        Ok(Self { transport: builder.build(), described })
    }
}

#[async_trait]
impl MailTransport for Smtp {
    async fn send(&self, _message_id: &str, message: &Message) -> Result<(), SendError> {
        self.transport.send(message.clone()).await.map(|_| ()).map_err(|e| {
            // 5x5 (550 no such mailbox, 552, 553, 554): the mail system refuses this message.
            // Other permanent answers (530/535: authentication, 50x: syntax) are about the
            // configuration or the session, which an operator can fix: retried.
            let refused = e.status().is_some_and(|code| {
                code.severity == Severity::PermanentNegativeCompletion
                    && code.category == Category::MailSystem
            });
            let message = format!("{}: {e}", self.described);
            if refused {
                SendError::permanent(message)
            } else {
                SendError::retry(message)
            }
        })
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}

/// Development: each message is a file `<message-id>.eml` in a folder (open it with any mail
/// program). Sending a message again overwrites its file: a duplicate shows as the same file.
pub struct Folder {
    dir: PathBuf,
}

impl Folder {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file a message is written to.
    pub fn path_of(&self, message_id: &str) -> PathBuf {
        let name: String = message_id
            .trim_matches(|c| c == '<' || c == '>')
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "@.-_".contains(c) { c } else { '_' })
            .collect();
        self.dir.join(format!("{name}.eml"))
    }
}

#[async_trait]
impl MailTransport for Folder {
    async fn send(&self, message_id: &str, message: &Message) -> Result<(), SendError> {
        let path = self.path_of(message_id);
        let partial = path.with_extension("eml.partial");
        let failed = |e: std::io::Error| SendError::retry(format!("writing {}: {e}", path.display()));
        tokio::fs::create_dir_all(&self.dir).await.map_err(failed)?;
        tokio::fs::write(&partial, message.formatted()).await.map_err(failed)?;
        // Whole files only: a mail program reading the folder never sees half a message.
        tokio::fs::rename(&partial, &path).await.map_err(failed)
    }

    fn describe(&self) -> String {
        format!("the folder {}", self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_folder_keeps_one_file_per_message_id_whatever_the_attempts() {
        let dir = std::env::temp_dir().join(format!("pettycash-mail-test-{}", std::process::id()));
        let folder = Folder::new(&dir);
        let message = Message::builder()
            .from("cash@example.com".parse().unwrap())
            .to("a@example.com".parse().unwrap())
            .subject("Hello")
            .message_id(Some("<outbox-7@example.com>".into()))
            .body("text".to_string())
            .unwrap();
        folder.send("<outbox-7@example.com>", &message).await.unwrap();
        folder.send("<outbox-7@example.com>", &message).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|f| f.unwrap().file_name()).collect();
        assert_eq!(files, [std::ffi::OsString::from("outbox-7@example.com.eml")]);
        let text = std::fs::read_to_string(dir.join("outbox-7@example.com.eml")).unwrap();
        assert!(
            text.contains("Message-ID: <outbox-7@example.com>") && text.contains("Subject: Hello"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
