//! Contact-confirmation campaigns (SPEC §6): an admin (admin page or `vigile campaign
//! start`) asks chosen members to confirm their email and/or mobile. Each chosen member's
//! chosen channels become unconfirmed, values kept, and the member is marked as being in
//! the campaign; the contact page is then offered at each of their sign-ins until those
//! channels are confirmed. Progress is counted from the members' marks.

use std::collections::HashMap;

use super::{Deps, FlowError};
use crate::audit::{Actor, Event};
use crate::crypto::random_token;
use crate::edge::email::Email;
use crate::store::{AccountStatus, Campaign, CampaignMark, Channels, Millis, OrgId, User};

/// Who is asked.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every active account.
    All,
    /// The organisation's active members.
    Org(OrgId),
    /// These addresses, each with the line it came from (for error messages).
    Members(Vec<(usize, Email)>),
}

/// Why a campaign was not started; nothing changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No channel chosen.
    NoChannel,
    /// Mobile asked, but no text message can be delivered.
    NoSms,
    UnknownOrg,
    /// Lines naming no active account.
    UnknownMembers(Vec<usize>),
    /// Nobody to ask.
    Nobody,
}

/// A campaign's progress, counted from its members' marks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Members still in this campaign (a newer one takes a member over).
    pub asked: u64,
    pub email: u64,
    pub mobile: u64,
    /// Members who have not opened the contact page since they were asked.
    pub unseen: u64,
}

async fn chosen(deps: &Deps, scope: &Scope) -> Result<Result<Vec<User>, Refused>, FlowError> {
    let active = |u: &User| u.status == AccountStatus::Active;
    Ok(Ok(match scope {
        Scope::All => deps
            .store
            .user_list()
            .await?
            .into_iter()
            .filter(active)
            .collect(),
        Scope::Org(id) => {
            if deps.store.org_get(id).await?.is_none() {
                return Ok(Err(Refused::UnknownOrg));
            }
            deps.store
                .org_members(id)
                .await?
                .into_iter()
                .filter(active)
                .collect()
        }
        Scope::Members(lines) => {
            let mut users = Vec::with_capacity(lines.len());
            let mut unknown = Vec::new();
            for (line, email) in lines {
                match deps.store.user_by_email(email.as_str()).await? {
                    Some(u) if active(&u) => {
                        if !users.iter().any(|known: &User| known.id == u.id) {
                            users.push(u);
                        }
                    }
                    _ => unknown.push(*line),
                }
            }
            if !unknown.is_empty() {
                return Ok(Err(Refused::UnknownMembers(unknown)));
            }
            users
        }
    }))
}

/// Starts a campaign asking `scope` to confirm `channels`. `by` names the starter in the
/// campaign list (an admin's address, or "cli").
pub async fn start(
    deps: &Deps,
    actor: &Actor<'_>,
    by: &str,
    scope: &Scope,
    channels: Channels,
    now: Millis,
) -> Result<Result<Campaign, Refused>, FlowError> {
    if channels.is_empty() {
        return Ok(Err(Refused::NoChannel));
    }
    if channels.mobile && !deps.config.sms_delivers {
        return Ok(Err(Refused::NoSms));
    }
    let users = match chosen(deps, scope).await? {
        Ok(users) if users.is_empty() => return Ok(Err(Refused::Nobody)),
        Ok(users) => users,
        Err(refused) => return Ok(Err(refused)),
    };
    let id = format!("c-{}", random_token(6));
    let mark = CampaignMark {
        id: id.clone(),
        channels,
        asked_at: now,
        seen_at: None,
    };
    let mut asked = 0;
    for u in &users {
        if deps.store.contact_ask(&u.id, &mark).await? {
            asked += 1;
        }
    }
    let scope_label = match scope {
        Scope::All => "all".to_string(),
        Scope::Org(org) => format!("org:{org}"),
        Scope::Members(_) => "members".to_string(),
    };
    let campaign = Campaign {
        id,
        started_at: now,
        by: by.to_string(),
        scope: scope_label,
        channels,
        asked,
    };
    deps.store.campaign_insert(&campaign).await?;
    let started = Event::CampaignStarted {
        campaign: &campaign.id,
        channels: &channels.label(),
        scope: &campaign.scope,
        count: asked,
    };
    started.emit(actor, now);
    Ok(Ok(campaign))
}

/// Every campaign, newest first, with its progress.
pub async fn progress(deps: &Deps) -> Result<Vec<(Campaign, Progress)>, FlowError> {
    let campaigns = deps.store.campaign_list().await?;
    if campaigns.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_id: HashMap<String, Progress> = HashMap::new();
    for u in deps.store.user_list().await? {
        let Some(mark) = &u.contact.campaign else {
            continue;
        };
        let p = by_id.entry(mark.id.clone()).or_default();
        p.asked += 1;
        if mark.channels.email && u.contact.email_confirmed.is_some() {
            p.email += 1;
        }
        if mark.channels.mobile && u.contact.mobile_confirmed.is_some() {
            p.mobile += 1;
        }
        if mark.seen_at.is_none() {
            p.unseen += 1;
        }
    }
    Ok(campaigns
        .into_iter()
        .map(|c| {
            let p = by_id.get(&c.id).copied().unwrap_or_default();
            (c, p)
        })
        .collect())
}

/// `--channels email,mobile` or the admin form's boxes; `None` for an unknown channel.
pub fn parse_channels<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<Channels> {
    let mut c = Channels::default();
    for name in names {
        match name.trim() {
            "email" => c.email = true,
            "mobile" => c.mobile = true,
            "" => {}
            _ => return None,
        }
    }
    Some(c)
}

/// The channels a campaign asks when none are named: email, and mobile when the site
/// asks for mobiles.
pub fn default_channels(deps: &Deps) -> Channels {
    Channels {
        email: true,
        mobile: deps.config.file.contact.ask_mobile,
    }
}

/// Line numbers as people read them in a message: `3, 7, 12`.
pub fn line_list(numbers: &[usize]) -> String {
    let n: Vec<String> = numbers.iter().map(usize::to_string).collect();
    n.join(", ")
}

/// One address per line; blank lines and `#` comments skipped. Lines that are not an
/// address are returned as errors with their number.
pub fn parse_members(text: &str) -> Result<Vec<(usize, Email)>, Vec<usize>> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match Email::parse(line) {
            Ok(e) => ok.push((i + 1, e)),
            Err(_) => bad.push(i + 1),
        }
    }
    if bad.is_empty() {
        Ok(ok)
    } else {
        Err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_files_name_their_bad_lines() {
        let text = "# cohort\nana@example.org\n\n not an address\nbob@example.org\n";
        assert_eq!(parse_members(text), Err(vec![4]));
        let good = parse_members("ana@example.org\n#x\nBOB@example.org").unwrap_or_default();
        let lines: Vec<usize> = good.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 3]);
    }

    #[test]
    fn channels_parse_strictly() {
        assert_eq!(
            parse_channels("email,mobile".split(',')),
            Some(Channels {
                email: true,
                mobile: true
            })
        );
        assert_eq!(parse_channels(["sms"]), None);
        assert_eq!(parse_channels([" mobile "]).map(|c| c.email), Some(false));
    }
}
