//! [`ContactStore`] on SQLite: an account's contact state as JSON in `users.contact`
//! (NULL for rows written before it existed), pending codes in `contact_codes` (one per
//! account and channel, the mailed link's hash unique), campaigns in `campaigns`. Each
//! check-then-write is one `BEGIN IMMEDIATE` transaction.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row, Transaction, TransactionBehavior};

use super::{map_err, parsed, user_from_row, SqliteStore, USER_COLUMNS};
use crate::store::{
    Campaign, CampaignMark, Channel, Confirmed, Contact, ContactCheck, ContactCode, ContactStore,
    Millis, Proof, StoreError, StoreResult, TokenHash, User, UserId,
};

/// The `contact` column read back; NULL is an account from before confirmations.
pub(super) fn from_column(json: Option<String>) -> rusqlite::Result<Contact> {
    match json {
        None => Ok(Contact::before()),
        Some(json) => serde_json::from_str(&json).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Text, e.into())
        }),
    }
}

pub(super) fn to_column(contact: &Contact) -> String {
    // A struct of plain fields: serialising cannot fail.
    serde_json::to_string(contact).unwrap_or_else(|_| "{}".into())
}

/// The account, read inside the caller's transaction.
pub(super) fn user_in(tx: &Transaction<'_>, id: &UserId) -> rusqlite::Result<Option<User>> {
    tx.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        [id.as_str()],
        user_from_row,
    )
    .optional()
}

fn set_contact(tx: &Transaction<'_>, id: &UserId, contact: &Contact) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE users SET contact = ?2 WHERE id = ?1",
        params![id.as_str(), to_column(contact)],
    )?;
    Ok(())
}

const CODE_COLUMNS: &str = "channel, value, code_hash, link_hash, attempts, expires_at";

fn code_from_row(r: &Row<'_>) -> rusqlite::Result<ContactCode> {
    Ok(ContactCode {
        channel: parsed(r, 0, "channel", Channel::parse)?,
        value: r.get(1)?,
        code_hash: TokenHash::from_hex(r.get::<_, String>(2)?),
        link_hash: r.get::<_, Option<String>>(3)?.map(TokenHash::from_hex),
        attempts: r.get(4)?,
        expires_at: r.get(5)?,
    })
}

fn code_of(
    tx: &Transaction<'_>,
    user: &UserId,
    channel: Channel,
    now: Millis,
) -> rusqlite::Result<Option<ContactCode>> {
    tx.query_row(
        &format!(
            "SELECT {CODE_COLUMNS} FROM contact_codes \
             WHERE user_id = ?1 AND channel = ?2 AND expires_at > ?3"
        ),
        params![user.as_str(), channel.as_str(), now],
        code_from_row,
    )
    .optional()
}

fn drop_code(tx: &Transaction<'_>, user: &UserId, channel: Channel) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM contact_codes WHERE user_id = ?1 AND channel = ?2",
        params![user.as_str(), channel.as_str()],
    )?;
    Ok(())
}

/// The right code was shown: the account takes the code's value. Returns what replaced
/// what, or `Taken` when another account holds the new address.
fn apply(
    tx: &Transaction<'_>,
    mut user: User,
    code: &ContactCode,
    at: Confirmed,
) -> StoreResult<ContactCheck> {
    let previous = match code.channel {
        Channel::Email if user.email != code.value => {
            let holder: Option<String> = tx
                .query_row(
                    "SELECT id FROM users WHERE email = ?1",
                    [&code.value],
                    |r| r.get(0),
                )
                .optional()?;
            if holder.is_some() {
                return Ok(ContactCheck::Taken);
            }
            tx.execute(
                "UPDATE users SET email = ?2 WHERE id = ?1",
                params![user.id.as_str(), code.value],
            )?;
            Some(std::mem::replace(&mut user.email, code.value.clone()))
        }
        Channel::Email => None,
        Channel::Mobile => {
            let old = user.contact.mobile.replace(code.value.clone());
            old.filter(|o| *o != code.value)
        }
    };
    match code.channel {
        Channel::Email => user.contact.email_confirmed = Some(at),
        Channel::Mobile => user.contact.mobile_confirmed = Some(at),
    }
    set_contact(tx, &user.id, &user.contact)?;
    Ok(ContactCheck::Confirmed {
        user: Box::new(user),
        previous,
    })
}

#[async_trait]
impl ContactStore for SqliteStore {
    async fn contact_code_put(&self, user: &UserId, code: &ContactCode) -> StoreResult<bool> {
        let (user, code) = (user.clone(), code.clone());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if user_in(&tx, &user)?.is_none() {
                return Ok(false);
            }
            drop_code(&tx, &user, code.channel)?;
            tx.execute(
                &format!(
                    "INSERT INTO contact_codes (user_id, {CODE_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    user.as_str(),
                    code.channel.as_str(),
                    code.value,
                    code.code_hash.as_str(),
                    code.link_hash.as_ref().map(TokenHash::as_str),
                    code.attempts,
                    code.expires_at
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn contact_code_get(
        &self,
        user: &UserId,
        channel: Channel,
        now: Millis,
    ) -> StoreResult<Option<ContactCode>> {
        let user = user.clone();
        self.run(move |c| {
            let tx = c.transaction()?;
            Ok(code_of(&tx, &user, channel, now)?)
        })
        .await
    }

    async fn contact_confirm(
        &self,
        user: &UserId,
        channel: Channel,
        proof: Proof<'_>,
        max_tries: u32,
        at: Confirmed,
        now: Millis,
    ) -> StoreResult<ContactCheck> {
        let user = user.clone();
        let (typed, link) = match proof {
            Proof::Code(hash) => (Some(hash.clone()), None),
            Proof::Link(hash) => (None, Some(hash.clone())),
        };
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (Some(account), Some(mut code)) =
                (user_in(&tx, &user)?, code_of(&tx, &user, channel, now)?)
            else {
                return Ok(ContactCheck::Missing);
            };
            if let Some(link) = &link {
                if code.link_hash.as_ref() != Some(link) {
                    return Ok(ContactCheck::Missing);
                }
            }
            if let Some(typed) = &typed {
                if code.attempts >= max_tries {
                    drop_code(&tx, &user, channel)?;
                    tx.commit()?;
                    return Ok(ContactCheck::Exhausted);
                }
                code.attempts += 1;
                if *typed != code.code_hash {
                    let outcome = if code.attempts >= max_tries {
                        drop_code(&tx, &user, channel)?;
                        ContactCheck::Exhausted
                    } else {
                        tx.execute(
                            "UPDATE contact_codes SET attempts = ?3 \
                             WHERE user_id = ?1 AND channel = ?2",
                            params![user.as_str(), channel.as_str(), code.attempts],
                        )?;
                        ContactCheck::Wrong {
                            left: max_tries - code.attempts,
                        }
                    };
                    tx.commit()?;
                    return Ok(outcome);
                }
            }
            // Spent whatever follows: a taken address needs a new code for another one.
            drop_code(&tx, &user, channel)?;
            let outcome = apply(&tx, account, &code, at)?;
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn contact_link(&self, link: &TokenHash, now: Millis) -> StoreResult<Option<UserId>> {
        let link = link.as_str().to_string();
        self.run(move |c| {
            let id: Option<String> = c
                .query_row(
                    "SELECT user_id FROM contact_codes \
                     WHERE link_hash = ?1 AND channel = 'email' AND expires_at > ?2",
                    params![link, now],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(id.map(UserId::from_string))
        })
        .await
    }

    async fn contact_ask(&self, user: &UserId, mark: &CampaignMark) -> StoreResult<bool> {
        let (user, mark) = (user.clone(), mark.clone());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut account) = user_in(&tx, &user)? else {
                return Ok(false);
            };
            if mark.channels.email {
                account.contact.email_confirmed = None;
            }
            if mark.channels.mobile {
                account.contact.mobile_confirmed = None;
            }
            account.contact.campaign = Some(mark);
            set_contact(&tx, &user, &account.contact)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn contact_seen(&self, user: &UserId, id: &str, now: Millis) -> StoreResult<bool> {
        let (user, id) = (user.clone(), id.to_string());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut account) = user_in(&tx, &user)? else {
                return Ok(false);
            };
            let Some(mark) = account.contact.campaign.as_mut() else {
                return Ok(false);
            };
            if mark.id != id || mark.seen_at.is_some() {
                return Ok(false);
            }
            mark.seen_at = Some(now);
            set_contact(&tx, &user, &account.contact)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn campaign_insert(&self, campaign: &Campaign) -> StoreResult<()> {
        let campaign = campaign.clone();
        let record = serde_json::to_string(&campaign)
            .map_err(|e| StoreError::Corrupt(format!("campaign: {e}")))?;
        self.run(move |c| {
            c.execute(
                "INSERT INTO campaigns (id, started_at, record) VALUES (?1, ?2, ?3)",
                params![campaign.id, campaign.started_at, record],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn campaign_list(&self) -> StoreResult<Vec<Campaign>> {
        self.run(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT record FROM campaigns ORDER BY started_at DESC, id DESC")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for json in rows {
                let json = json?;
                out.push(
                    serde_json::from_str(&json)
                        .map_err(|e| StoreError::Corrupt(format!("campaign: {e}")))?,
                );
            }
            Ok(out)
        })
        .await
    }
}
