//! [`OrgStore`] on SQLite: organisations in `orgs`, memberships as two columns of `users`
//! (`org_id`, `org_role`), invitations in `org_invites`. Each operation that checks before
//! it writes is one `BEGIN IMMEDIATE` transaction.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row, Transaction, TransactionBehavior};

use super::{free_email, insert_user, map_err, user_from_row, SqliteStore, USER_COLUMNS};
use crate::store::{
    Invited, Joined, Membership, Millis, Org, OrgId, OrgInvite, OrgProfile, OrgRole, OrgStore,
    OrgTerms, Registered, StoreError, StoreResult, TokenHash, TokenKind, User, UserId,
};

const ORG_COLUMNS: &str = "id, company, id_type, id_number, phone, address, super_admin, \
                           seats, plan, max_devices, created_at";
const INVITE_COLUMNS: &str = "org_id, email, token_hash, invited_by, created_at, expires_at";

/// The membership stored in a user row's `org_id` and `org_role`.
pub(super) fn membership(
    org: Option<String>,
    role: Option<String>,
) -> rusqlite::Result<Option<Membership>> {
    match (org, role) {
        (None, _) => Ok(None),
        (Some(org), role) => {
            let role = role.as_deref().and_then(OrgRole::parse).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    9,
                    rusqlite::types::Type::Text,
                    format!("unknown organisation role {role:?}").into(),
                )
            })?;
            Ok(Some(Membership {
                org: OrgId::from_string(org),
                role,
            }))
        }
    }
}

fn org_from_row(r: &Row<'_>) -> rusqlite::Result<Org> {
    Ok(Org {
        id: OrgId::from_string(r.get::<_, String>(0)?),
        profile: OrgProfile {
            company: r.get(1)?,
            id_type: r.get(2)?,
            id_number: r.get(3)?,
            phone: r.get(4)?,
            address: r.get(5)?,
        },
        super_admin: UserId::from_string(r.get::<_, String>(6)?),
        terms: OrgTerms {
            seats: r.get(7)?,
            plan: r.get(8)?,
            max_devices: r.get(9)?,
        },
        created_at: r.get(10)?,
    })
}

fn invite_from_row(r: &Row<'_>) -> rusqlite::Result<OrgInvite> {
    Ok(OrgInvite {
        org: OrgId::from_string(r.get::<_, String>(0)?),
        email: r.get(1)?,
        token_hash: TokenHash::from_hex(r.get::<_, String>(2)?),
        invited_by: UserId::from_string(r.get::<_, String>(3)?),
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
    })
}

/// The member's role in `org`, if they belong to it.
fn role_in(tx: &Transaction<'_>, org: &str, user: &str) -> rusqlite::Result<Option<OrgRole>> {
    let role: Option<String> = tx
        .query_row(
            "SELECT org_role FROM users WHERE id = ?1 AND org_id = ?2",
            [user, org],
            |r| r.get(0),
        )
        .optional()?;
    Ok(role.as_deref().and_then(OrgRole::parse))
}

/// Takes a token of `kind` issued to `subject`; true if it was still valid at `now`.
fn take_token(
    tx: &Transaction<'_>,
    kind: TokenKind,
    hash: &str,
    subject: &str,
    now: Millis,
) -> rusqlite::Result<bool> {
    let expires_at: Option<Millis> = tx
        .query_row(
            "DELETE FROM tokens WHERE kind = ?1 AND hash = ?2 AND subject = ?3 \
             RETURNING expires_at",
            [kind.as_str(), hash, subject],
            |r| r.get(0),
        )
        .optional()?;
    Ok(expires_at.is_some_and(|e| now < e))
}

#[async_trait]
impl OrgStore for SqliteStore {
    async fn org_register(
        &self,
        org: &Org,
        founder: &User,
        link: &TokenHash,
        now: Millis,
    ) -> StoreResult<Registered> {
        let (org, founder, link) = (org.clone(), founder.clone(), link.clone());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !take_token(
                &tx,
                TokenKind::OrgRegistration,
                link.as_str(),
                &founder.email,
                now,
            )? {
                return Ok(Registered::LinkGone);
            }
            match free_email(&tx, &founder.email) {
                Ok(()) => {}
                // Rolled back: the link stays, so its holder can read why again.
                Err(StoreError::Conflict) => return Ok(Registered::EmailTaken),
                Err(e) => return Err(e),
            }
            let (p, t) = (&org.profile, &org.terms);
            tx.execute(
                &format!(
                    "INSERT INTO orgs ({ORG_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ),
                params![
                    org.id.as_str(),
                    p.company,
                    p.id_type,
                    p.id_number,
                    p.phone,
                    p.address,
                    org.super_admin.as_str(),
                    t.seats,
                    t.plan,
                    t.max_devices,
                    org.created_at
                ],
            )?;
            insert_user(&tx, &founder, None)?;
            tx.commit()?;
            Ok(Registered::Created)
        })
        .await
    }

    async fn org_get(&self, id: &OrgId) -> StoreResult<Option<Org>> {
        let id = id.as_str().to_string();
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = ?1"),
                [id],
                org_from_row,
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn org_list(&self) -> StoreResult<Vec<Org>> {
        self.run(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ORG_COLUMNS} FROM orgs ORDER BY company, id"
            ))?;
            let rows = stmt.query_map([], org_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn org_members(&self, id: &OrgId) -> StoreResult<Vec<User>> {
        let id = id.as_str().to_string();
        self.run(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE org_id = ?1 ORDER BY email"
            ))?;
            let rows = stmt.query_map([id], user_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn org_member_count(&self, id: &OrgId) -> StoreResult<u64> {
        let id = id.as_str().to_string();
        self.run(move |c| {
            let n: i64 =
                c.query_row("SELECT COUNT(*) FROM users WHERE org_id = ?1", [id], |r| {
                    r.get(0)
                })?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn org_set_profile(&self, id: &OrgId, profile: &OrgProfile) -> StoreResult<bool> {
        let (id, p) = (id.as_str().to_string(), profile.clone());
        self.run(move |c| {
            let n = c.execute(
                "UPDATE orgs SET company = ?2, id_type = ?3, id_number = ?4, phone = ?5, \
                 address = ?6 WHERE id = ?1",
                params![id, p.company, p.id_type, p.id_number, p.phone, p.address],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn org_set_terms(&self, id: &OrgId, terms: &OrgTerms) -> StoreResult<bool> {
        let (id, t) = (id.as_str().to_string(), terms.clone());
        self.run(move |c| {
            let n = c.execute(
                "UPDATE orgs SET seats = ?2, plan = ?3, max_devices = ?4 WHERE id = ?1",
                params![id, t.seats, t.plan, t.max_devices],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn org_set_role(&self, id: &OrgId, user: &UserId, role: OrgRole) -> StoreResult<bool> {
        if role == OrgRole::SuperAdmin {
            return Ok(false);
        }
        let (id, user) = (id.as_str().to_string(), user.as_str().to_string());
        self.run(move |c| {
            let n = c.execute(
                "UPDATE users SET org_role = ?3 WHERE id = ?1 AND org_id = ?2 AND org_role != ?4",
                params![user, id, role.as_str(), OrgRole::SuperAdmin.as_str()],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn org_transfer(&self, id: &OrgId, from: &UserId, to: &UserId) -> StoreResult<bool> {
        let (id, from, to) = (
            id.as_str().to_string(),
            from.as_str().to_string(),
            to.as_str().to_string(),
        );
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let holder: Option<String> = tx
                .query_row("SELECT super_admin FROM orgs WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()?;
            if from == to
                || holder.as_deref() != Some(from.as_str())
                || role_in(&tx, &id, &from)? != Some(OrgRole::SuperAdmin)
                || role_in(&tx, &id, &to)?.is_none()
            {
                return Ok(false);
            }
            let set = "UPDATE users SET org_role = ?2 WHERE id = ?1";
            tx.execute(set, [&from, OrgRole::Admin.as_str()])?;
            tx.execute(set, [&to, OrgRole::SuperAdmin.as_str()])?;
            tx.execute("UPDATE orgs SET super_admin = ?2 WHERE id = ?1", [&id, &to])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn org_invite(
        &self,
        invite: &OrgInvite,
        seats: u32,
        now: Millis,
    ) -> StoreResult<Invited> {
        let i = invite.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let org = i.org.as_str();
            let member: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM users WHERE org_id = ?1 AND email = ?2)",
                [org, &i.email],
                |r| r.get(0),
            )?;
            if member {
                return Ok(Invited::AlreadyMember);
            }
            let used: i64 = tx.query_row(
                "SELECT (SELECT COUNT(*) FROM users WHERE org_id = ?1) + \
                        (SELECT COUNT(*) FROM org_invites \
                         WHERE org_id = ?1 AND email != ?2 AND expires_at > ?3)",
                params![org, i.email, now],
                |r| r.get(0),
            )?;
            if used >= i64::from(seats) {
                return Ok(Invited::NoSeat);
            }
            tx.execute(
                &format!(
                    "INSERT INTO org_invites ({INVITE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (org_id, email) DO UPDATE SET token_hash = excluded.token_hash, \
                     invited_by = excluded.invited_by, created_at = excluded.created_at, \
                     expires_at = excluded.expires_at"
                ),
                params![
                    org,
                    i.email,
                    i.token_hash.as_str(),
                    i.invited_by.as_str(),
                    i.created_at,
                    i.expires_at
                ],
            )?;
            tx.commit()?;
            Ok(Invited::Invited)
        })
        .await
    }

    async fn org_invites(&self, id: &OrgId, now: Millis) -> StoreResult<Vec<OrgInvite>> {
        let id = id.as_str().to_string();
        self.run(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {INVITE_COLUMNS} FROM org_invites \
                 WHERE org_id = ?1 AND expires_at > ?2 ORDER BY created_at, email"
            ))?;
            let rows = stmt.query_map(params![id, now], invite_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn org_invite_cancel(&self, id: &OrgId, email: &str) -> StoreResult<bool> {
        let (id, email) = (id.as_str().to_string(), email.to_string());
        self.run(move |c| {
            let n = c.execute(
                "DELETE FROM org_invites WHERE org_id = ?1 AND email = ?2",
                [id, email],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn org_invite_by_token(
        &self,
        token: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<OrgInvite>> {
        let token = token.as_str().to_string();
        self.run(move |c| {
            c.query_row(
                &format!(
                    "SELECT {INVITE_COLUMNS} FROM org_invites \
                     WHERE token_hash = ?1 AND expires_at > ?2"
                ),
                params![token, now],
                invite_from_row,
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn org_join(&self, token: &TokenHash, user: &User, now: Millis) -> StoreResult<Joined> {
        let (token, user) = (token.as_str().to_string(), user.clone());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(org) = user.org.as_ref().map(|m| m.org.as_str().to_string()) else {
                return Ok(Joined::Gone);
            };
            let taken = tx.execute(
                "DELETE FROM org_invites WHERE token_hash = ?1 AND org_id = ?2 AND email = ?3 \
                 AND expires_at > ?4",
                params![token, org, user.email, now],
            )?;
            if taken == 0 {
                return Ok(Joined::Gone);
            }
            match free_email(&tx, &user.email) {
                Ok(()) => {}
                Err(StoreError::Conflict) => {
                    // The invitation is spent all the same.
                    tx.commit()?;
                    return Ok(Joined::EmailTaken);
                }
                Err(e) => return Err(e),
            }
            insert_user(&tx, &user, None)?;
            tx.commit()?;
            Ok(Joined::Joined)
        })
        .await
    }

    async fn org_remove(&self, id: &OrgId, user: &UserId) -> StoreResult<bool> {
        let (id, user) = (id.as_str().to_string(), user.as_str().to_string());
        self.run(move |c| {
            // One statement: its sessions go with it by the foreign key's cascade.
            let n = c.execute(
                "DELETE FROM users WHERE id = ?1 AND org_id = ?2 AND org_role != ?3",
                params![user, id, OrgRole::SuperAdmin.as_str()],
            )?;
            Ok(n > 0)
        })
        .await
    }
}
