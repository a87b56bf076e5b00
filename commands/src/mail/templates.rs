//! What mail says. Each kind of mail is one function building a [`Letter`] from plain text
//! (names, purposes, reasons as the users typed them); [`Letter::render`] lays every letter out
//! the same way as text and as HTML, escaping each piece for HTML there, so that no template
//! can forget to. A new kind of mail is a new function here (and a match arm where it is
//! decided: the `notifications` projection, or the command that enqueues it).
//!
//! Plain Rust rather than a template engine: a dozen short letters, checked by the compiler,
//! with one escaping rule in one place.

use super::{Links, MailCategory};
use chrono::{DateTime, Utc};
use pettycash_domain::{Id, Role};

/// A mail's subject and its two bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A link the reader is asked to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub label: String,
    pub url: String,
}

/// A mail as plain-text pieces, laid out by [`Letter::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub category: MailCategory,
    pub subject: String,
    pub greeting: String,
    pub paragraphs: Vec<String>,
    /// Label and value, shown as a short table.
    pub details: Vec<(&'static str, String)>,
    pub action: Option<Action>,
    /// Where the reader changes their mail preferences (shown for mutable categories).
    pub preferences: String,
}

impl Letter {
    pub fn render(&self) -> Rendered {
        let footer = if self.category.is_mutable() {
            format!(
                "You receive this mail about {} from Petty Cash. You can mute this kind of mail in your \
                 mail preferences: {}",
                category_words(self.category),
                self.preferences
            )
        } else {
            "Petty Cash sends this mail whatever your mail preferences say.".to_string()
        };

        let mut text = format!("{}\n\n", self.greeting);
        for p in &self.paragraphs {
            text.push_str(p);
            text.push_str("\n\n");
        }
        for (label, value) in &self.details {
            text.push_str(&format!("  {label}: {}\n", indent_continuation(value)));
        }
        if !self.details.is_empty() {
            text.push('\n');
        }
        if let Some(a) = &self.action {
            text.push_str(&format!("{}: {}\n\n", a.label, a.url));
        }
        text.push_str("-- \n");
        text.push_str(&footer);
        text.push('\n');

        let mut html = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n\
             <body style=\"font-family: sans-serif; line-height: 1.4\">\n",
        );
        html.push_str(&format!("<p>{}</p>\n", escape(&self.greeting)));
        for p in &self.paragraphs {
            html.push_str(&format!("<p>{}</p>\n", escape(p)));
        }
        if !self.details.is_empty() {
            html.push_str("<table cellpadding=\"4\">\n");
            for (label, value) in &self.details {
                html.push_str(&format!(
                    "<tr><th align=\"left\" valign=\"top\">{}</th><td>{}</td></tr>\n",
                    escape(label),
                    escape(value)
                ));
            }
            html.push_str("</table>\n");
        }
        if let Some(a) = &self.action {
            html.push_str(&format!("<p><a href=\"{}\">{}</a></p>\n", escape(&a.url), escape(&a.label)));
        }
        html.push_str(&format!(
            "<hr>\n<p style=\"color: #666; font-size: small\">{}</p>\n</body></html>\n",
            escape(&footer)
        ));
        Rendered { subject: one_line(&self.subject, 150), text, html }
    }
}

/// Text made safe for HTML element content and attribute values; line breaks become `<br>`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// `text` on one line (runs of whitespace and control characters become one space), at most
/// `max` characters (cut with "…"): for subjects, which are headers.
fn one_line(text: &str, max: usize) -> String {
    let words: Vec<&str> =
        text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()).collect();
    let line = words.join(" ");
    if line.chars().count() <= max {
        line
    } else {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    }
}

/// A multi-line value in an indented text table.
fn indent_continuation(value: &str) -> String {
    value.replace('\n', "\n    ")
}

fn category_words(category: MailCategory) -> &'static str {
    match category {
        MailCategory::ApprovalRequested => "requisitions waiting for your approval",
        MailCategory::RequisitionOutcome => "decisions on your requisitions",
        MailCategory::ReadyForPayment => "requisitions ready for payment",
        MailCategory::Paid => "payments of your requisitions",
        MailCategory::Reminder => "things waiting for you",
        MailCategory::Invitation => "invitations",
        MailCategory::Security => "your account's security",
        MailCategory::PaymentCode => "payment codes",
        MailCategory::Alert => "alerts about what you are responsible for",
        MailCategory::CriticalAlert => "critical alerts",
    }
}

/// A requisition as mail describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequisitionSummary {
    pub id: Id,
    pub purpose: String,
    /// With its currency, as the `currency_display` setting writes it (`1500.00 KES`,
    /// `KSh 1,500.00`: `CurrencyDisplay::format`).
    pub amount: String,
    pub requester: String,
    pub fund: Option<String>,
    pub payee: Option<String>,
    /// The requester's other requisitions it may duplicate, while the flag stands (empty:
    /// none, or dismissed), and the window they were found in.
    pub possible_duplicates: Vec<Id>,
    pub duplicate_window_days: u32,
    /// The budgets the latest submission exceeds, each described in one line (`department
    /// budget 2026-12: 50,000.00 KES, 48,000.00 paid already`); empty: none.
    pub budget_exceeded: Vec<String>,
}

impl RequisitionSummary {
    /// `1500.00 KES — Printer toner` (the purpose cut short), for subjects.
    fn headline(&self) -> String {
        format!("{} — {}", self.amount, one_line(&self.purpose, 60))
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        let mut d = vec![("Amount", self.amount.clone()), ("Purpose", self.purpose.clone())];
        if let Some(p) = &self.payee {
            d.push(("Payee", p.clone()));
        }
        d.push(("Requested by", self.requester.clone()));
        if let Some(f) = &self.fund {
            d.push(("Fund", f.clone()));
        }
        d
    }
}

/// What every letter about a requisition shares: greeting, details and the link to it.
fn about(
    category: MailCategory,
    subject: String,
    to: &str,
    paragraphs: Vec<String>,
    r: &RequisitionSummary,
    links: &Links,
) -> Letter {
    Letter {
        category,
        subject,
        greeting: format!("Hello {to},"),
        paragraphs,
        details: r.details(),
        action: Some(Action { label: "Open the requisition".into(), url: links.requisition(r.id) }),
        preferences: links.mail_preferences(),
    }
}

/// To an approver: a requisition waits for their decision at `step` (0-based) of `steps`.
pub fn approval_requested(
    to: &str,
    r: &RequisitionSummary,
    role: Role,
    step: usize,
    steps: usize,
    links: &Links,
) -> Letter {
    let waits = format!(
        "{} asks for {}. It waits for approval by a {} (step {} of {}).",
        r.requester,
        r.amount,
        role_words(role),
        step + 1,
        steps
    );
    let mut paragraphs = vec![waits, "Approve it, reject it or send it back for changes.".into()];
    if !r.budget_exceeded.is_empty() {
        paragraphs.insert(
            1,
            format!(
                "Over budget: approving this requisition would exceed {}. Check before deciding.",
                r.budget_exceeded.join("; ")
            ),
        );
    }
    if !r.possible_duplicates.is_empty() {
        paragraphs.insert(
            1,
            format!(
                "Possible duplicate: {} submitted {} with the same payee and amount in the last {} days. \
                 Compare before deciding; you may dismiss this flag with a reason.",
                r.requester,
                match r.possible_duplicates.len() {
                    1 => "another requisition".to_string(),
                    n => format!("{n} other requisitions"),
                },
                r.duplicate_window_days
            ),
        );
    }
    let mut letter = about(
        MailCategory::ApprovalRequested,
        format!("Approval requested: {}", r.headline()),
        to,
        paragraphs,
        r,
        links,
    );
    for other in &r.possible_duplicates {
        letter.details.push(("Possible duplicate of", links.requisition(*other)));
    }
    letter
}

/// To the requester: the last step approved their requisition.
pub fn approved(to: &str, r: &RequisitionSummary, links: &Links) -> Letter {
    about(
        MailCategory::RequisitionOutcome,
        format!("Approved: {}", r.headline()),
        to,
        vec![format!("Your requisition for {} was approved. Treasury will pay it out.", r.amount)],
        r,
        links,
    )
}

/// To treasury: an approved requisition waits to be paid.
pub fn ready_for_payment(to: &str, r: &RequisitionSummary, links: &Links) -> Letter {
    about(
        MailCategory::ReadyForPayment,
        format!("Ready for payment: {}", r.headline()),
        to,
        vec![format!("{}'s requisition for {} is approved and waits for payment.", r.requester, r.amount)],
        r,
        links,
    )
}

/// To the requester: an approver rejected their requisition.
pub fn rejected(to: &str, r: &RequisitionSummary, by: &str, reason: &str, links: &Links) -> Letter {
    let mut letter = about(
        MailCategory::RequisitionOutcome,
        format!("Rejected: {}", r.headline()),
        to,
        vec![format!("Your requisition for {} was rejected by {by}.", r.amount)],
        r,
        links,
    );
    letter.details.insert(0, ("Reason", reason.to_string()));
    letter
}

/// To the requester: an approver sent their requisition back for changes.
pub fn changes_requested(to: &str, r: &RequisitionSummary, by: &str, reason: &str, links: &Links) -> Letter {
    let mut letter = about(
        MailCategory::RequisitionOutcome,
        format!("Changes requested: {}", r.headline()),
        to,
        vec![
            format!("{by} sent your requisition for {} back for changes.", r.amount),
            "Edit it and submit it again, or cancel it.".into(),
        ],
        r,
        links,
    );
    letter.details.insert(0, ("Reason", reason.to_string()));
    letter
}

/// To the approvers of a step: it has waited past the reminder time.
pub fn reminder(
    to: &str,
    r: &RequisitionSummary,
    role: Role,
    step: usize,
    steps: usize,
    links: &Links,
) -> Letter {
    about(
        MailCategory::Reminder,
        format!("Waiting for you: {}", r.headline()),
        to,
        vec![
            format!(
                "{}'s requisition for {} still waits for approval by a {} (step {} of {}).",
                r.requester,
                r.amount,
                role_words(role),
                step + 1,
                steps
            ),
            "If it waits much longer it goes to the administrators.".into(),
        ],
        r,
        links,
    )
}

/// To the requester: the changes asked for were not made by the deadline.
pub fn expired(to: &str, r: &RequisitionSummary, deadline: &str, links: &Links) -> Letter {
    about(
        MailCategory::RequisitionOutcome,
        format!("Expired: {}", r.headline()),
        to,
        vec![format!(
            "Your requisition for {} was sent back for changes, which were due by {deadline}. It has expired; \
             raise a new one if you still need the cash.",
            r.amount
        )],
        r,
        links,
    )
}

/// To an advance's holder: it is past its due date with `outstanding` (written with its
/// currency) still to settle.
pub fn advance_overdue(to: &str, requisition_id: Id, outstanding: &str, due: &str, links: &Links) -> Letter {
    Letter {
        category: MailCategory::Reminder,
        subject: format!("Advance overdue: {outstanding} to settle"),
        greeting: format!("Hello {to},"),
        paragraphs: vec![
            format!("Your advance was due to be settled by {due}; {outstanding} of it is not settled yet."),
            "Settle it with your receipts and return the change to the fund's custodian. While it is \
             unsettled you may not receive another advance."
                .into(),
        ],
        details: vec![("Outstanding", outstanding.to_string()), ("Due", due.to_string())],
        action: Some(Action { label: "Open the requisition".into(), url: links.requisition(requisition_id) }),
        preferences: links.mail_preferences(),
    }
}

/// To the requester: treasury paid their requisition.
pub fn paid(to: &str, r: &RequisitionSummary, reference: Option<&str>, links: &Links) -> Letter {
    let mut letter = about(
        MailCategory::Paid,
        format!("Paid: {}", r.headline()),
        to,
        vec![format!("Your requisition for {} was paid.", r.amount)],
        r,
        links,
    );
    if let Some(reference) = reference {
        letter.details.push(("Payment reference", reference.to_string()));
    }
    letter
}

/// To the requester: their requisition was paid `days` ago or more and has no receipt yet.
pub fn receipt_missing(to: &str, r: &RequisitionSummary, days: u32, links: &Links) -> Letter {
    about(
        MailCategory::Reminder,
        format!("Receipt missing: {}", r.headline()),
        to,
        vec![
            format!(
                "Your requisition for {} was paid {days} day(s) ago or more and has no receipt yet.",
                r.amount
            ),
            "Attach the receipt (JPEG, PNG or PDF, at most 10 MB) to the requisition.".into(),
        ],
        r,
        links,
    )
}

/// To someone responsible for what an alert concerns: its title, what happened and the link to
/// the alert. Critical alerts are [`MailCategory::CriticalAlert`] (never muted).
pub fn alert(to: &str, alert: &AlertSummary, links: &Links) -> Letter {
    let critical = alert.severity == "critical";
    Letter {
        category: if critical { MailCategory::CriticalAlert } else { MailCategory::Alert },
        subject: format!("Alert ({}): {}", alert.severity, alert.title),
        greeting: format!("Hello {to},"),
        paragraphs: vec![
            alert.message.clone(),
            "Acknowledge the alert when you are looking into it, and resolve it with a note when it \
             is dealt with (it resolves itself when its condition clears)."
                .into(),
        ],
        details: vec![("Alert", alert.title.clone()), ("Severity", alert.severity.clone())],
        action: Some(Action { label: "Open the alert".into(), url: links.alert(alert.id) }),
        preferences: links.mail_preferences(),
    }
}

/// An alert as mail describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSummary {
    pub id: Id,
    pub title: String,
    /// What happened, in a sentence or two.
    pub message: String,
    /// `critical`, `high`, `medium` or `low`.
    pub severity: String,
}

/// An invitation as mail describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationSummary {
    /// The invitee's name and email, as the admin typed them.
    pub name: String,
    pub email: String,
    pub roles: Vec<Role>,
    /// The name of the unit they will belong to.
    pub unit: Option<String>,
    /// Who invited them (`None`: the operator).
    pub inviter: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// To someone invited: the link where they choose a password (`url`, carrying the secret
/// token), and until when it works.
pub fn invitation(i: &InvitationSummary, url: &str, links: &Links) -> Letter {
    let inviter = i.inviter.clone().unwrap_or_else(|| "An administrator".to_string());
    let until = i.expires_at.format("%-d %B %Y, %H:%M UTC").to_string();
    let roles: Vec<&str> = i.roles.iter().map(|r| role_words(*r)).collect();
    let mut details = vec![("Email", i.email.clone()), ("Roles", roles.join(", "))];
    if let Some(unit) = &i.unit {
        details.push(("Unit", unit.clone()));
    }
    details.push(("Link valid until", until.clone()));
    Letter {
        category: MailCategory::Invitation,
        subject: format!("{inviter} invites you to Petty Cash"),
        greeting: format!("Hello {},", i.name),
        paragraphs: vec![
            format!(
                "{inviter} invites you to Petty Cash, where petty cash is requested, approved and paid out."
            ),
            format!(
                "Follow the link to choose your password; you are then signed in. The link works once, \
                 until {until}. If it has expired, ask an administrator to send you a new one."
            ),
            "If you did not expect this invitation, ignore this mail: nothing happens unless the link is \
             used."
                .into(),
        ],
        details,
        action: Some(Action { label: "Choose your password".into(), url: url.to_string() }),
        preferences: links.mail_preferences(),
    }
}

fn role_words(role: Role) -> &'static str {
    match role {
        Role::Staff => "staff member",
        Role::BranchManager => "branch manager",
        Role::DepartmentHead => "department head",
        Role::RegionalManager => "regional manager",
        Role::GroupFinanceManager => "group finance manager",
        Role::Fpa => "FP&A analyst",
        Role::Cfo => "CFO",
        Role::Ceo => "CEO",
        Role::Treasury => "treasurer",
        Role::Auditor => "auditor",
        Role::Admin => "administrator",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(purpose: &str) -> RequisitionSummary {
        RequisitionSummary {
            id: Id::nil(),
            purpose: purpose.into(),
            amount: "1500.00 KES".into(),
            requester: "Jane <Doe>".into(),
            fund: Some("Nairobi & Co".into()),
            payee: None,
            possible_duplicates: vec![],
            duplicate_window_days: 30,
            budget_exceeded: vec![],
        }
    }

    #[test]
    fn user_text_is_escaped_in_html_and_kept_as_typed_in_text() {
        let links = Links::new("https://cash.example.com");
        let r = summary("<script>alert('x')</script> & toner");
        let mail = rejected("Bob \"B\"", &r, "Ann", "Too dear\nTry again", &links).render();
        assert!(!mail.html.contains("<script>"), "{}", mail.html);
        assert!(mail.html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; toner"));
        assert!(mail.html.contains("Jane &lt;Doe&gt;") && mail.html.contains("Nairobi &amp; Co"));
        assert!(mail.html.contains("Bob &quot;B&quot;") && mail.html.contains("Too dear<br>Try again"));
        assert!(mail.text.contains("<script>alert('x')</script> & toner"));
        assert!(mail.text.contains("Hello Bob \"B\","));
    }

    #[test]
    fn every_letter_links_to_the_requisition_in_both_bodies() {
        let links = Links::new("https://cash.example.com/");
        let r = summary("Toner");
        let url = "https://cash.example.com/requisitions/00000000-0000-0000-0000-000000000000";
        for letter in [
            approval_requested("A", &r, Role::DepartmentHead, 0, 2, &links),
            approved("A", &r, &links),
            ready_for_payment("A", &r, &links),
            rejected("A", &r, "B", "no", &links),
            changes_requested("A", &r, "B", "fix", &links),
            paid("A", &r, Some("R-1"), &links),
        ] {
            let mail = letter.render();
            assert!(mail.text.contains(url), "{}", mail.text);
            assert!(mail.html.contains(&format!("<a href=\"{url}\">")), "{}", mail.html);
            assert!(mail.subject.ends_with("1500.00 KES — Toner"), "{}", mail.subject);
            assert!(mail.text.contains("https://cash.example.com/me/mail-preferences"));
        }
    }

    #[test]
    fn subjects_are_one_short_line() {
        let links = Links::new("http://x");
        let long = format!("Line one\r\nBcc: someone@example.com {}", "x".repeat(300));
        let mail = approved("A", &summary(&long), &links).render();
        assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'), "{}", mail.subject);
        assert!(mail.subject.chars().count() <= 150);
        assert!(mail.subject.starts_with("Approved: 1500.00 KES — Line one Bcc:"), "{}", mail.subject);
    }

    #[test]
    fn an_invitation_carries_its_link_and_expiry_and_escapes_what_admins_typed() {
        let links = Links::new("https://cash.example.com/");
        let summary = InvitationSummary {
            name: "Ann <b>".into(),
            email: "ann@example.com".into(),
            roles: vec![Role::Staff, Role::Treasury],
            unit: Some("Ops & Fleet".into()),
            inviter: Some("Bob \"Admin\"".into()),
            expires_at: "2026-03-08T09:05:00Z".parse().unwrap(),
        };
        let url = links.invitation("tok-EN_1");
        assert_eq!(url, "https://cash.example.com/invitations/tok-EN_1");
        let mail = invitation(&summary, &url, &links).render();
        assert_eq!(mail.subject, "Bob \"Admin\" invites you to Petty Cash");
        assert!(mail.text.contains("Hello Ann <b>,") && mail.text.contains(&url), "{}", mail.text);
        assert!(
            mail.text.contains("8 March 2026, 09:05 UTC") && mail.text.contains("staff member, treasurer")
        );
        assert!(mail.html.contains(&format!("<a href=\"{url}\">Choose your password</a>")), "{}", mail.html);
        assert!(mail.html.contains("Hello Ann &lt;b&gt;,") && mail.html.contains("Ops &amp; Fleet"));
        assert!(!mail.text.contains("mute"), "an invitation cannot be muted");
    }

    #[test]
    fn an_approval_request_for_a_possible_duplicate_says_so_and_links_to_the_other() {
        let links = Links::new("https://cash.example.com");
        let other = Id::from_u128(7);
        let plain = approval_requested("A", &summary("Toner"), Role::DepartmentHead, 0, 1, &links).render();
        assert!(!plain.text.contains("Possible duplicate"), "{}", plain.text);
        let r = RequisitionSummary { possible_duplicates: vec![other], ..summary("Toner") };
        let mail = approval_requested("A", &r, Role::DepartmentHead, 0, 1, &links).render();
        let url = format!("https://cash.example.com/requisitions/{other}");
        assert!(
            mail.text.contains("Possible duplicate: Jane <Doe> submitted another requisition"),
            "{}",
            mail.text
        );
        assert!(mail.text.contains(&format!("Possible duplicate of: {url}")), "{}", mail.text);
        assert!(mail.html.contains(&url), "{}", mail.html);
    }

    #[test]
    fn unmutable_mail_does_not_offer_muting() {
        let mut letter = approved("A", &summary("Toner"), &Links::new("http://x"));
        letter.category = MailCategory::Security;
        let mail = letter.render();
        assert!(!mail.text.contains("mute"), "{}", mail.text);
    }
}
