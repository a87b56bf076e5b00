//! A real SMTP server on loopback for tests: it accepts every message and keeps it, parsed as
//! a recipient's mail program would read it (headers decoded, bodies decoded). It can be
//! started late, stopped and started again on the same port, so that tests can take the mail
//! server away from a running service.
//!
//! ```ignore
//! let mut smtp = MailServer::start().await;
//! let app = TestApp::spawn_with(|c| smtp.configure(c)).await;
//! // ... act ...
//! let mails = smtp.wait_for(1).await;
//! assert_eq!(mails[0].to, [head.email.clone()]);
//! ```
//!
//! The protocol is the `mailin` crate's state machine; the sockets are tokio's, so that
//! stopping closes the port (connections are then refused, as with a server that is down).

use crate::Config;
use mailin::{Action, Handler, Response, SessionBuilder};
use pettycash_api::config::MailTransportConfig;
use pettycash_commands::mail::sender::SenderOptions;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What mail links start with in tests ([`MailServer::configure`]).
pub const PUBLIC_URL: &str = "https://cash.test";

/// One message as received.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope's sender (`MAIL FROM`).
    pub from: String,
    /// The envelope's recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The `Subject` header, decoded.
    pub subject: String,
    /// The `Message-ID` header.
    pub message_id: String,
    /// The `From` header, decoded.
    pub from_header: String,
    /// The `text/plain` part, decoded.
    pub text: String,
    /// The `text/html` part, decoded.
    pub html: String,
    /// The message as it came.
    pub raw: String,
}

impl ReceivedMail {
    fn parse(from: String, to: Vec<String>, raw: Vec<u8>) -> Self {
        let raw_text = String::from_utf8_lossy(&raw).into_owned();
        let parsed = mailparse::parse_mail(&raw).expect("the service sent a parsable message");
        let header = |name: &str| {
            use mailparse::MailHeaderMap;
            parsed.headers.get_first_value(name).unwrap_or_default()
        };
        let mut text = String::new();
        let mut html = String::new();
        let mut parts = vec![&parsed];
        while let Some(part) = parts.pop() {
            match part.ctype.mimetype.as_str() {
                "text/plain" => text = part.get_body().expect("a decodable text part"),
                "text/html" => html = part.get_body().expect("a decodable HTML part"),
                _ => parts.extend(part.subparts.iter()),
            }
        }
        ReceivedMail {
            from,
            to,
            subject: header("Subject"),
            message_id: header("Message-ID"),
            from_header: header("From"),
            text,
            html,
            raw: raw_text,
        }
    }
}

type Inbox = Arc<Mutex<Vec<ReceivedMail>>>;

/// An SMTP server on `127.0.0.1:{port}`.
pub struct MailServer {
    port: u16,
    received: Inbox,
    running: Option<JoinHandle<()>>,
}

impl MailServer {
    /// A server listening on a free port.
    pub async fn start() -> Self {
        let mut server = Self::down();
        server.listen().await;
        server
    }

    /// A server that is down: it has a free port, on which nothing listens until
    /// [`MailServer::listen`] (connecting is refused).
    pub fn down() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        Self { port, received: Arc::default(), running: None }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts listening on its port (again).
    pub async fn listen(&mut self) {
        if self.running.is_some() {
            return;
        }
        // tokio sets SO_REUSEADDR: the port can be listened on again right after a stop.
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("listen on the SMTP port");
        let received = self.received.clone();
        self.running = Some(tokio::spawn(async move {
            // Sessions end with the server: aborting this task drops the set, which aborts them.
            let mut sessions = tokio::task::JoinSet::new();
            while let Ok((stream, peer)) = listener.accept().await {
                sessions.spawn(session(stream, peer.ip(), received.clone()));
            }
        }));
    }

    /// Stops listening and drops every open session: the server is down.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
            let _ = running.await;
        }
    }

    /// Every message received so far, in order of arrival.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.received.lock().unwrap().clone()
    }

    /// Forgets the messages received so far.
    pub fn clear(&self) {
        self.received.lock().unwrap().clear();
    }

    /// Waits (up to 20 s) until at least `n` messages arrived; returns all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mails = self.received();
            if mails.len() >= n {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} mails within 20 s, got {}: {mails:#?}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets `quiet` pass and returns what arrived: for asserting that nothing (more) came.
    pub async fn after(&self, quiet: Duration) -> Vec<ReceivedMail> {
        tokio::time::sleep(quiet).await;
        self.received()
    }

    /// Points `config` at this server: SMTP on its port without TLS or sign-in, links starting
    /// with [`PUBLIC_URL`], a sender that polls and retries quickly.
    pub fn configure(&self, config: &mut Config) {
        config.mail.transport = MailTransportConfig::Smtp {
            host: "127.0.0.1".into(),
            port: self.port,
            starttls: false,
            user: None,
            password: None,
        };
        config.mail.public_url = PUBLIC_URL.into();
        config.mail.sender = fast_sender();
    }
}

/// Sender options for tests: polls every 100 ms, retries after 200 ms doubling up to 1 s.
pub fn fast_sender() -> SenderOptions {
    SenderOptions {
        poll: Duration::from_millis(100),
        claim_for: Duration::from_secs(60),
        first_retry: Duration::from_millis(200),
        max_retry: Duration::from_secs(1),
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }
}

/// Collects one session's messages.
struct Collector {
    received: Inbox,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collector {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_string();
        self.to.clear();
        self.data.clear();
        mailin::response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.to.push(to.to_string());
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = ReceivedMail::parse(self.from.clone(), self.to.clone(), std::mem::take(&mut self.data));
        self.received.lock().unwrap().push(mail);
        mailin::response::OK
    }
}

async fn session(stream: TcpStream, peer: IpAddr, received: Inbox) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let collector = Collector { received, from: String::new(), to: Vec::new(), data: Vec::new() };
    let mut smtp = SessionBuilder::new("mail.test").build(peer, collector);
    let mut line = Vec::new();
    let mut reply = smtp.greeting();
    loop {
        let mut out = Vec::new();
        if reply.action != Action::NoReply && reply.write_to(&mut out).is_err() {
            return;
        }
        if writer.write_all(&out).await.is_err() || reply.action == Action::Close {
            return;
        }
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => reply = smtp.process(&line),
        }
        // STARTTLS is not offered, so no upgrade is ever asked for.
        if reply.action == Action::UpgradeTls {
            return;
        }
    }
}
