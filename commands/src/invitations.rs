//! Invitations (issue #13 [workflow]): an admin invites someone; the mail carries a link with a
//! secret token; the invitee chooses a password there and becomes a user, signed in.
//!
//! **The token.** 32 bytes from the operating system's generator, base64url (43 characters).
//! It exists in three places only: the mail (its body waits in the outbox until it is sent,
//! then the sender removes it), the invitee's mailbox, and the request that accepts it. The
//! events and the `invitations` table hold HMAC-SHA256(SECRET_KEY, label || token) in hex,
//! like session tokens: a copy of the database, or of the events, opens nothing. Resending
//! makes a new token and replaces the hash, so the old link finds nothing.
//!
//! **The mail** is a command's mail ([`SideWrite::Mail`]), written with the invitation's
//! events in one transaction: the link carries the secret, so it cannot come from an event
//! through the `notifications` projection.
//!
//! **Single use.** Accepting appends `InvitationAccepted` at the invitation stream's next
//! sequence, the new user's `UserRegistered` (and `UnitAssigned`), the users row, the password
//! and a conditional update of the invitation's row (pending, this link) — all in one
//! transaction. Two acceptances of one link race for that sequence: one commits, the other
//! re-runs on the accepted invitation and is refused. The conditional update refuses it too,
//! whatever else raced.
//!
//! **Not an oracle.** An unknown, used, revoked, replaced or expired link gets one answer
//! (`DomainError::InvitationInvalid`, 410 `invitation_invalid`); the log says which.

use crate::auth::hash_password;
use crate::context::{CommandContext, RequestMeta};
use crate::error::CommandError;
use crate::mail::templates::{self, InvitationSummary};
use crate::mail::{Links, Mail, MailCategory};
use crate::org::{admin_requester, UnitView};
use crate::service::{user_row, CommandService, Source};
use crate::store::{decide, InvitationRow, Loaded, SideWrite, StreamAppend};
use crate::throttle::keyed;
use crate::Outcome;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::Mac;
use pettycash_domain::invitation::{EmailTaken, Invitation, InvitationCommand, InvitationStatus, NewLink};
use pettycash_domain::user::{normalise_email, AssignedUnit, Requester, User, UserCommand};
use pettycash_domain::visibility::may_see_user;
use pettycash_domain::{Actor, DomainError, Id, Role};
use rand::RngCore;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Precedes the token in its keyed hash: a session token's hash has no label, so the two kinds
/// of hash never coincide.
const TOKEN_LABEL: &[u8] = b"pettycash-invitation-token-v1\0";

/// What issuing and accepting invitations needs besides the store: the key of the tokens'
/// hashes (SECRET_KEY, as for session tokens: every process of one service must share it) and
/// where links point (PUBLIC_URL).
#[derive(Clone)]
pub struct InvitationSetup {
    secret: Vec<u8>,
    links: Links,
}

impl InvitationSetup {
    pub fn new(secret: &[u8], links: Links) -> Self {
        Self { secret: secret.to_vec(), links }
    }

    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The service's secret (SECRET_KEY): also the key of payment codes' hashes
    /// (`crate::payments`, with their own label).
    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The hex of HMAC-SHA256(secret, label || token): what the events and the table hold.
    pub fn token_hash(&self, token: &str) -> String {
        hex::encode(keyed(&self.secret, &[TOKEN_LABEL, token.as_bytes()]).finalize().into_bytes())
    }

    /// A new token: 32 bytes from the operating system's generator, base64url without padding.
    fn new_token() -> String {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        URL_SAFE_NO_PAD.encode(raw)
    }
}

/// An invitation as admins see it (`GET /api/invitations`, and the answer of each command).
/// Never its token nor the token's hash.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct InvitationView {
    pub id: Uuid,
    #[schema(example = "ann@example.com")]
    pub email: String,
    #[schema(example = "Ann Achieng")]
    pub name: String,
    #[schema(value_type = Vec<String>, example = json!(["staff"]))]
    pub roles: Vec<Role>,
    /// The unit the invitee will belong to (`null`: none).
    pub unit_id: Option<Uuid>,
    /// That unit's company: whose admins manage the invitation.
    pub company_id: Option<Uuid>,
    /// `pending`, `accepted`, `revoked`, or `expired` (a pending invitation past its
    /// `expires_at`, as of the request).
    #[schema(value_type = String, example = "pending")]
    pub status: InvitationStatus,
    /// When the current link stops working.
    pub expires_at: DateTime<Utc>,
    /// The admin who invited (`null`: the operator); the new user's sponsor.
    pub invited_by: Option<Uuid>,
    /// The user it became, once accepted.
    pub user_id: Option<Uuid>,
    /// Global position of the invitation's latest event (or of the command's last event).
    #[sqlx(rename = "last_position")]
    pub position: i64,
}

impl InvitationView {
    fn of(i: &Invitation, company_id: Option<Id>, now: DateTime<Utc>) -> Self {
        Self {
            id: i.id.unwrap_or_default(),
            email: i.email.clone(),
            name: i.name.clone(),
            roles: i.roles.clone(),
            unit_id: i.unit_id,
            company_id,
            status: i.status_at(now),
            expires_at: i.expires_at.unwrap_or(now),
            invited_by: i.invited_by,
            user_id: i.accepted_user,
            position: 0,
        }
    }
}

/// What the invitee's page shows before they choose a password.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InvitationPreview {
    #[schema(example = "ann@example.com")]
    pub email: String,
    #[schema(example = "Ann Achieng")]
    pub name: String,
    pub expires_at: DateTime<Utc>,
}

/// An accepted invitation: the user it became.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accepted {
    pub invitation_id: Id,
    pub user_id: Id,
    pub position: i64,
}

/// Input of [`CommandService::invite`].
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub email: String,
    pub name: String,
    pub roles: Vec<Role>,
    /// Default: an admin of a company invites into their company; an admin of no unit, into no
    /// unit.
    pub unit_id: Option<Id>,
}

/// The list's filter and page.
#[derive(Debug, Clone, Default)]
pub struct InvitationQuery {
    pub status: Option<InvitationStatus>,
    /// At most this many (the caller bounds it).
    pub limit: i64,
    /// The `next` of the previous page: invitations older than this one.
    pub after: Option<Id>,
}

/// One page of invitations, newest first.
#[derive(Debug, Clone)]
pub struct InvitationList {
    pub items: Vec<InvitationView>,
    /// Pass as [`InvitationQuery::after`] for the next page; `None` on the last.
    pub next: Option<Id>,
}

/// An invitation decided and ready to append: its stream, its rows (the row, the mail) and
/// what the caller answers. The caller checks the unit open ([`SideWrite::UnitIsOpen`]).
pub(crate) struct Planned {
    pub stream: StreamAppend,
    pub writes: Vec<SideWrite>,
    pub view: InvitationView,
}

/// What [`plan`] needs of the organisation and the people: looked up by the caller.
pub(crate) struct Facts<'a> {
    pub by: &'a Requester,
    /// The unit, as the requester sees it.
    pub unit: Option<&'a UnitView>,
    pub email_taken: Option<EmailTaken>,
    /// The inviter's name, for the mail.
    pub inviter: Option<String>,
    pub valid_days: u32,
    pub now: DateTime<Utc>,
}

/// Decides issuing one invitation and renders its mail.
pub(crate) async fn plan(
    setup: &InvitationSetup,
    input: NewInvitation,
    facts: Facts<'_>,
) -> Result<Planned, CommandError> {
    let token = InvitationSetup::new_token();
    let id = Id::now_v7();
    let mut invitation = Invitation::default();
    let command = InvitationCommand::Issue {
        invitation_id: id,
        email: input.email,
        name: input.name,
        roles: input.roles,
        unit: facts.unit.map(|u| AssignedUnit { path: u.path(), closed: u.closed }),
        email_taken: facts.email_taken,
        link: NewLink { token_hash: setup.token_hash(&token), now: facts.now, valid_days: facts.valid_days },
        by: facts.by.clone(),
    };
    let events = decide(&mut invitation, command).await?;
    let loaded = Loaded { id: id.to_string(), state: Invitation::default(), version: 0 };
    let stream = StreamAppend::of(&loaded, &events, &invitation)?;
    let company = facts.unit.map(|u| u.company_id);
    let mail = mail(setup, &invitation, &token, facts.unit.map(|u| u.name.clone()), facts.inviter);
    let writes = vec![row(&invitation, company), SideWrite::Mail(Box::new(mail))];
    Ok(Planned { stream, writes, view: InvitationView::of(&invitation, company, facts.now) })
}

/// The `invitations` row of `i` (of `company`), as of its latest event.
fn row(i: &Invitation, company_id: Option<Id>) -> SideWrite {
    SideWrite::UpsertInvitation(InvitationRow {
        id: i.id.unwrap_or_default(),
        email: i.email.clone(),
        name: i.name.clone(),
        roles: i.roles.clone(),
        unit_id: i.unit_id,
        company_id,
        token_hash: i.token_hash.clone(),
        expires_at: i.expires_at.unwrap_or_default(),
        status: i.status,
        invited_by: i.invited_by,
    })
}

/// The invitation mail with the link of `token`.
fn mail(
    setup: &InvitationSetup,
    i: &Invitation,
    token: &str,
    unit: Option<String>,
    inviter: Option<String>,
) -> Mail {
    let summary = InvitationSummary {
        name: i.name.clone(),
        email: i.email.clone(),
        roles: i.roles.clone(),
        unit,
        inviter,
        expires_at: i.expires_at.unwrap_or_default(),
    };
    let rendered = templates::invitation(&summary, &setup.links.invitation(token), &setup.links).render();
    Mail {
        category: MailCategory::Invitation,
        recipient_user_id: None,
        recipient_email: i.email.clone(),
        subject: rendered.subject,
        body_text: rendered.text,
        body_html: rendered.html,
        // The page's address carries the token: it stays in the body only (removed once sent).
        link: None,
        source_position: None,
    }
}

/// Whether `by` manages invitations of `company` sent by `invited_by`: their company's (as
/// for users), and those they sent themselves (the organisation's admin inviting a company's
/// first admin must be able to resend or revoke that invitation).
pub(crate) fn manages(by: &Requester, company: Option<Id>, invited_by: Option<Id>) -> bool {
    match by {
        Requester::Operator => true,
        Requester::Admin(actor) => may_see_user(actor, company) || invited_by == Some(actor.user_id),
    }
}

const VIEW_COLUMNS: &str = "id, email, name, roles, unit_id, company_id, \
     CASE WHEN status = 'pending' AND expires_at <= $1 THEN 'expired' ELSE status END AS status, \
     expires_at, invited_by, user_id, last_position";

impl CommandService {
    /// Invites someone (admin): an invitation event, its row and the mail with the link, in
    /// one transaction. The unit: `unit_id` when given (a unit the admin sees), else the
    /// admin's company (none for an admin of no unit). Refused: an email a user or an open
    /// invitation has (409), a unit the admin does not reach (422 naming `unit_id`), what a
    /// registration would refuse (email, name, roles).
    pub async fn invite(
        &self,
        ctx: &CommandContext,
        input: NewInvitation,
    ) -> Result<Outcome<InvitationView>, CommandError> {
        let setup = self.invitation_setup()?;
        let by = admin_requester(ctx)?;
        let unit = self.unit_row_for_new_user(&by, input.unit_id).await?;
        let email_taken = self.email_taken(&input.email).await?;
        let facts = Facts {
            by: &by,
            unit: unit.as_ref(),
            email_taken,
            inviter: self.user_name(by_id(&by)).await?,
            valid_days: self.settings().await?.invitations.expiry_days,
            now: self.clock().now(),
        };
        let planned = plan(&setup, input, facts).await?;
        let mut writes: Vec<SideWrite> =
            unit.map(|u| SideWrite::UnitIsOpen { unit_id: u.id }).into_iter().collect();
        writes.extend(planned.writes);
        self.commit(ctx, &[planned.stream], writes, planned.view, |v, p| v.position = p).await
    }

    /// Sends an invitation again (admin): a new link, valid for `invitation_expiry_days` from
    /// now, in a new mail; the old link stops working. A pending or expired invitation only.
    pub async fn resend_invitation(
        &self,
        ctx: &CommandContext,
        id: Id,
    ) -> Result<Outcome<InvitationView>, CommandError> {
        let setup = &self.invitation_setup()?;
        let by = &admin_requester(ctx)?;
        let company = self.managed_invitation(by, id).await?;
        let valid_days = self.settings().await?.invitations.expiry_days;
        self.retrying(|source| async move {
            let loaded = self.load::<Invitation>(id, source).await?;
            let mut invitation = loaded.state.clone();
            let token = InvitationSetup::new_token();
            let now = self.clock().now();
            let link = NewLink { token_hash: setup.token_hash(&token), now, valid_days };
            let events = decide(&mut invitation, InvitationCommand::Resend { link, by: by.clone() }).await?;
            let stream = StreamAppend::of(&loaded, &events, &invitation)?;
            let unit = match invitation.unit_id {
                Some(unit) => self.unit(unit).await?.map(|u| u.name),
                None => None,
            };
            let inviter = self.user_name(invitation.invited_by).await?;
            let mail = mail(setup, &invitation, &token, unit, inviter);
            let writes = vec![row(&invitation, company), SideWrite::Mail(Box::new(mail))];
            let view = InvitationView::of(&invitation, company, now);
            self.commit(ctx, &[stream], writes, view, |v, p| v.position = p).await
        })
        .await
    }

    /// Revokes an invitation (admin): its link stops working. Revoking a revoked invitation
    /// records nothing; an accepted one cannot be revoked (deactivate the user instead).
    pub async fn revoke_invitation(
        &self,
        ctx: &CommandContext,
        id: Id,
        reason: Option<&str>,
    ) -> Result<Outcome<InvitationView>, CommandError> {
        let by = &admin_requester(ctx)?;
        let company = self.managed_invitation(by, id).await?;
        self.retrying(|source| async move {
            let loaded = self.load::<Invitation>(id, source).await?;
            let mut invitation = loaded.state.clone();
            let command = InvitationCommand::Revoke { reason: reason.map(Into::into), by: by.clone() };
            let events = decide(&mut invitation, command).await?;
            let stream = StreamAppend::of(&loaded, &events, &invitation)?;
            let writes = if events.is_empty() { Vec::new() } else { vec![row(&invitation, company)] };
            let view = InvitationView::of(&invitation, company, self.clock().now());
            self.commit(ctx, &[stream], writes, view, |v, p| v.position = p).await
        })
        .await
    }

    /// Accepts the invitation whose link carries `token`, with the invitee's new `password`
    /// (checked against the password settings first: a refused password leaves the link
    /// usable). In one transaction: the invitation accepted, the user registered with the
    /// invited roles by the inviter (their sponsor) and put in the invited unit, their
    /// password, the invitation's row. No session is needed; the caller signs the new user in.
    pub async fn accept_invitation(
        &self,
        meta: &RequestMeta,
        token: &str,
        password: &str,
    ) -> Result<Outcome<Accepted>, CommandError> {
        let setup = self.invitation_setup()?;
        self.settings().await?.password.check(password)?;
        let token_hash = &setup.token_hash(token);
        let id = self.invitation_of_link(token_hash).await?;
        let user_id = Id::now_v7();
        // Judged once before the password is hashed: a dead link costs no hashing.
        self.usable_link(id, token_hash, Source::Store).await?;
        let hash = &hash_password(password.to_string()).await?;
        let accepted = self
            .retrying(|source| async move {
                let loaded = self.load::<Invitation>(id, source).await?;
                let mut invitation = loaded.state.clone();
                let accept = InvitationCommand::Accept {
                    user_id,
                    token_hash: token_hash.clone(),
                    now: self.clock().now(),
                };
                let events = decide(&mut invitation, accept).await?;
                let unit = match invitation.unit_id {
                    None => None,
                    Some(unit) => {
                        let row = self.unit(unit).await?.ok_or(CommandError::not_found("unit"))?;
                        Some(AssignedUnit { path: row.path(), closed: row.closed })
                    }
                };
                let mut user = User::default();
                let command = UserCommand::AcceptInvitation {
                    user_id,
                    invitation: Box::new(invitation.clone()),
                    unit: unit.clone(),
                };
                let user_events = decide(&mut user, command).await?;
                let new_user = Loaded { id: user_id.to_string(), state: User::default(), version: 0 };
                let streams = [
                    StreamAppend::of(&loaded, &events, &invitation)?,
                    StreamAppend::of(&new_user, &user_events, &user)?,
                ];
                let mut writes = vec![user_row(user_id, &user)];
                if unit.is_some() {
                    writes.extend(crate::org::unit_writes(user_id, unit.as_ref()));
                }
                writes.push(SideWrite::SetPassword { user_id, hash: hash.clone() });
                writes.push(SideWrite::ClaimInvitation { id, token_hash: token_hash.clone(), user_id });
                // The invitee acts: the events' actor is the user they become.
                let ctx = CommandContext::user(Actor::new(user_id, user.roles.clone()), meta.clone());
                let value = Accepted { invitation_id: id, user_id, position: 0 };
                self.commit(&ctx, &streams, writes, value, |v, p| v.position = p).await
            })
            .await;
        logged(id, accepted)
    }

    /// What the invitee's page shows for the link carrying `token`, if the link works.
    pub async fn invitation_by_token(&self, token: &str) -> Result<InvitationPreview, CommandError> {
        let setup = self.invitation_setup()?;
        let token_hash = setup.token_hash(token);
        let id = self.invitation_of_link(&token_hash).await?;
        let invitation = self.usable_link(id, &token_hash, Source::Store).await?;
        Ok(InvitationPreview {
            email: invitation.email,
            name: invitation.name,
            expires_at: invitation.expires_at.unwrap_or_default(),
        })
    }

    /// The invitations `actor` may see (admins and auditors): their company's, and those they
    /// sent; newest first, with their status as of now.
    pub async fn invitations(
        &self,
        actor: &Actor,
        query: InvitationQuery,
    ) -> Result<InvitationList, CommandError> {
        if !(actor.has(Role::Admin) || actor.has(Role::Auditor)) {
            return Err(DomainError::MissingRole { required: Role::Admin }.into());
        }
        let mut items: Vec<InvitationView> = sqlx::query_as(&format!(
            "SELECT * FROM (SELECT {VIEW_COLUMNS} FROM invitations
                            WHERE (company_id IS NOT DISTINCT FROM $2 OR invited_by = $3)
                              AND ($5::uuid IS NULL OR id < $5)) i
             WHERE $4::text IS NULL OR i.status = $4
             ORDER BY id DESC LIMIT $6"
        ))
        .bind(self.clock().now())
        .bind(actor.company())
        .bind(actor.user_id)
        .bind(query.status)
        .bind(query.after)
        .bind(query.limit + 1)
        .fetch_all(self.store().pool())
        .await?;
        let next = if items.len() as i64 > query.limit {
            items.truncate(query.limit.max(0) as usize);
            items.last().map(|i| i.id)
        } else {
            None
        };
        Ok(InvitationList { items, next })
    }

    /// The invitation whose current or former link hashes to `token_hash`; an unknown link is
    /// refused like any other bad one.
    async fn invitation_of_link(&self, token_hash: &str) -> Result<Id, CommandError> {
        let id: Option<Id> = sqlx::query_scalar("SELECT id FROM invitations WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(self.store().pool())
            .await?;
        id.ok_or_else(|| {
            tracing::info!(reason = "unknown", "invitation link refused");
            DomainError::InvitationInvalid { reason: "unknown" }.into()
        })
    }

    /// The invitation `id` if the link `token_hash` would be accepted now (the acceptance's
    /// own rule, decided on a copy); else the uniform refusal, logged with its reason.
    async fn usable_link(
        &self,
        id: Id,
        token_hash: &str,
        source: Source,
    ) -> Result<Invitation, CommandError> {
        let result = async {
            let invitation = self.load::<Invitation>(id, source).await?.state;
            let accept = InvitationCommand::Accept {
                user_id: Id::nil(),
                token_hash: token_hash.to_string(),
                now: self.clock().now(),
            };
            decide(&mut invitation.clone(), accept).await?;
            Ok(invitation)
        }
        .await;
        logged(id, result)
    }

    /// Refuses (as "not found") an invitation `by` does not manage; its company.
    async fn managed_invitation(&self, by: &Requester, id: Id) -> Result<Option<Id>, CommandError> {
        let found: Option<(Option<Id>, Option<Id>)> =
            sqlx::query_as("SELECT company_id, invited_by FROM invitations WHERE id = $1")
                .bind(id)
                .fetch_optional(self.store().pool())
                .await?;
        match found {
            Some((company, invited_by)) if manages(by, company, invited_by) => Ok(company),
            _ => Err(CommandError::not_found("invitation")),
        }
    }

    /// Whether a user or an open invitation has `email` (as it would be stored). An email that
    /// is not valid has neither; the invitation then says what is wrong with it.
    pub(crate) async fn email_taken(&self, email: &str) -> Result<Option<EmailTaken>, CommandError> {
        let Ok(email) = normalise_email(email) else { return Ok(None) };
        let (user, open): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM users WHERE email = $1),
                    EXISTS (SELECT 1 FROM invitations WHERE email = $1 AND status = 'pending')",
        )
        .bind(email)
        .fetch_one(self.store().pool())
        .await?;
        Ok(match (user, open) {
            (true, _) => Some(EmailTaken::User),
            (false, true) => Some(EmailTaken::OpenInvitation),
            (false, false) => None,
        })
    }

    /// The name of user `id`, for mail (`None`: no such user, or no id: the operator).
    pub(crate) async fn user_name(&self, id: Option<Id>) -> Result<Option<String>, CommandError> {
        let Some(id) = id else { return Ok(None) };
        Ok(sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(self.store().pool())
            .await?)
    }
}

/// The requester's user id (`None`: the operator).
pub(crate) fn by_id(by: &Requester) -> Option<Id> {
    match by {
        Requester::Admin(actor) => Some(actor.user_id),
        Requester::Operator => None,
    }
}

/// Logs why a link was refused (the answer does not say).
fn logged<T>(id: Id, result: Result<T, CommandError>) -> Result<T, CommandError> {
    if let Err(CommandError::Domain(DomainError::InvitationInvalid { reason })) = &result {
        tracing::info!(invitation = %id, reason, "invitation link refused");
    }
    result
}
