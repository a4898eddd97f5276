//! The console's Security events: the stored audit trail searched by member, kind and
//! day range (fifty a page, newest first), exported whole as CSV, a member's recent
//! events, and the overview's counts over the last 24 hours and 7 days.
//!
//! Records name members and admins by id; what is shown names them by address, read here
//! once per page for each distinct id.

use std::collections::HashMap;

use super::{Deps, FlowError};
use crate::edge::day::Day;
use crate::edge::email::Email;
use crate::store::{
    audit_hour, AuditCount, AuditQuery, AuditRecord, Millis, UserId, AUDIT_HOUR_MS,
};

/// Events shown on a page.
pub const PAGE: usize = 50;
/// Most rows one CSV export carries (the filter narrows a larger trail).
pub const EXPORT_MAX: usize = 100_000;

/// What the operator asked for, parsed at the edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub member: Option<Email>,
    /// One of [`crate::audit::KINDS`].
    pub kind: Option<&'static str>,
    /// From the start of this day...
    pub from: Option<Day>,
    /// ...to the end of this one.
    pub to: Option<Day>,
}

/// One event as the console shows it.
#[derive(Debug, Clone)]
pub struct Shown {
    pub record: AuditRecord,
    /// The concerned member's address (their account's, else the one the event named).
    pub member: Option<String>,
    /// The acting administrator's address.
    pub admin: Option<String>,
}

/// A page of results.
#[derive(Debug, Default)]
pub struct Found {
    pub events: Vec<Shown>,
    /// Where the next page starts.
    pub next: Option<String>,
    /// The member filter names no account: nothing was searched.
    pub no_such_member: bool,
}

/// The store query for `filter`; `None` when its member has no account.
async fn query_for(
    deps: &Deps,
    filter: &Filter,
    limit: usize,
) -> Result<Option<AuditQuery>, FlowError> {
    let user = match &filter.member {
        Some(email) => match deps.store.user_by_email(email.as_str()).await? {
            Some(u) => Some(u.id),
            None => return Ok(None),
        },
        None => None,
    };
    Ok(Some(AuditQuery {
        user,
        kinds: filter.kind.map(|k| vec![k.to_string()]).unwrap_or_default(),
        from: filter.from.map(Day::start),
        until: filter.to.map(Day::end),
        before: None,
        limit,
    }))
}

/// Names the members and admins of `records` by their addresses.
async fn shown(deps: &Deps, records: Vec<AuditRecord>) -> Result<Vec<Shown>, FlowError> {
    let mut addresses: HashMap<String, Option<String>> = HashMap::new();
    for r in &records {
        for id in [&r.user, &r.admin].into_iter().flatten() {
            if !addresses.contains_key(id) {
                let user = deps.store.user_by_id(&UserId::from_string(id)).await?;
                addresses.insert(id.clone(), user.map(|u| u.email));
            }
        }
    }
    let address = |id: &Option<String>| {
        id.as_ref()
            .and_then(|id| addresses.get(id).cloned().flatten())
    };
    Ok(records
        .into_iter()
        .map(|record| Shown {
            member: address(&record.user).or_else(|| record.email.clone()),
            admin: address(&record.admin),
            record,
        })
        .collect())
}

/// One page of the events matching `filter`, after `before` (a previous page's `next`).
pub async fn search(
    deps: &Deps,
    filter: &Filter,
    before: Option<String>,
) -> Result<Found, FlowError> {
    let Some(mut query) = query_for(deps, filter, PAGE).await? else {
        return Ok(Found {
            no_such_member: true,
            ..Found::default()
        });
    };
    query.before = before;
    let page = deps.store.audit_page(&query).await?;
    let records = page.entries.into_iter().map(|e| e.record).collect();
    Ok(Found {
        events: shown(deps, records).await?,
        next: page.next,
        no_such_member: false,
    })
}

/// Every event matching `filter`, newest first, up to [`EXPORT_MAX`], and true when
/// there were more; `None` when the filter's member has no account.
pub async fn export(deps: &Deps, filter: &Filter) -> Result<Option<(Vec<Shown>, bool)>, FlowError> {
    let Some(mut query) = query_for(deps, filter, 500).await? else {
        return Ok(None);
    };
    let mut records = Vec::new();
    loop {
        let page = deps.store.audit_page(&query).await?;
        records.extend(page.entries.into_iter().map(|e| e.record));
        if records.len() >= EXPORT_MAX {
            let more = records.len() > EXPORT_MAX || page.next.is_some();
            records.truncate(EXPORT_MAX);
            return Ok(Some((shown(deps, records).await?, more)));
        }
        match page.next {
            Some(next) => query.before = Some(next),
            None => return Ok(Some((shown(deps, records).await?, false))),
        }
    }
}

/// A member's `n` most recent events.
pub async fn recent(deps: &Deps, user: &UserId, n: usize) -> Result<Vec<Shown>, FlowError> {
    let query = AuditQuery {
        user: Some(user.clone()),
        limit: n,
        ..AuditQuery::default()
    };
    let mut records = Vec::new();
    let mut query = query;
    // A page may come back short on Redis; a few more calls reach `n`.
    for _ in 0..4 {
        let page = deps.store.audit_page(&query).await?;
        records.extend(page.entries.into_iter().map(|e| e.record));
        match page.next {
            Some(next) if records.len() < n => query.before = Some(next),
            _ => break,
        }
    }
    records.truncate(n);
    shown(deps, records).await
}

/// What the overview charts: a few kinds of events added up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    Logins,
    Failures,
    Lockouts,
    Blocks,
    Overflows,
}

impl Series {
    pub const ALL: [Series; 5] = [
        Series::Logins,
        Series::Failures,
        Series::Lockouts,
        Series::Blocks,
        Series::Overflows,
    ];

    /// The kinds of event it adds up.
    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            Series::Logins => &["login"],
            Series::Failures => &["login_failed", "2fa_failed"],
            Series::Lockouts => &["account_locked", "device_locked"],
            Series::Blocks => &["ip_blocked"],
            Series::Overflows => &["device_overflow", "device_denied", "device_evicted"],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Series::Logins => "logins",
            Series::Failures => "failures",
            Series::Lockouts => "lockouts",
            Series::Blocks => "blocks",
            Series::Overflows => "overflows",
        }
    }
}

/// One series over the last 24 hours (hour by hour, the current one last) and the last
/// 7 days (day by day, today last), in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub series: Series,
    pub hours: [u64; 24],
    pub days: [u64; 7],
    /// The first hour's and the first day's starts.
    pub first_hour: Millis,
    pub first_day: Millis,
}

const DAY_MS: Millis = 24 * AUDIT_HOUR_MS;

/// Every series' counts at `now`, read from the hourly counts in one store call.
pub async fn counts(deps: &Deps, now: Millis) -> Result<Vec<Counts>, FlowError> {
    let first_day = Day::of(now).start() - 6 * DAY_MS;
    let until = audit_hour(now) + AUDIT_HOUR_MS;
    Ok(tally(
        &deps.store.audit_counts(first_day, until).await?,
        now,
    ))
}

/// The series at `now` from hourly counts (any hours; those out of range are left out).
fn tally(stored: &[AuditCount], now: Millis) -> Vec<Counts> {
    let first_hour = audit_hour(now) - 23 * AUDIT_HOUR_MS;
    let first_day = Day::of(now).start() - 6 * DAY_MS;
    let slot = |at: Millis, first: Millis, len: Millis| {
        (at >= first)
            .then(|| usize::try_from((at - first) / len).ok())
            .flatten()
    };
    Series::ALL
        .iter()
        .map(|&series| {
            let mut c = Counts {
                series,
                hours: [0; 24],
                days: [0; 7],
                first_hour,
                first_day,
            };
            for n in stored
                .iter()
                .filter(|n| series.kinds().contains(&n.event.as_str()))
            {
                let hour = slot(n.hour, first_hour, AUDIT_HOUR_MS).and_then(|i| c.hours.get_mut(i));
                if let Some(h) = hour {
                    *h += n.count;
                }
                if let Some(d) = slot(n.hour, first_day, DAY_MS).and_then(|i| c.days.get_mut(i)) {
                    *d += n.count;
                }
            }
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(hour: Millis, event: &str, count: u64) -> AuditCount {
        AuditCount {
            hour,
            event: event.to_string(),
            count,
        }
    }

    #[test]
    fn hours_and_days_add_up_their_kinds_and_leave_out_older_ones() {
        // 2026-12-03 10:30 UTC.
        let now = Day::parse("2026-12-03").unwrap().start() + 10 * AUDIT_HOUR_MS + 1_800_000;
        let this_hour = audit_hour(now);
        let stored = [
            count(this_hour, "login", 3),
            count(this_hour, "login_failed", 2),
            count(this_hour, "2fa_failed", 1),
            count(this_hour - AUDIT_HOUR_MS, "login", 4),
            // 23 hours ago: the first hour shown, and yesterday.
            count(this_hour - 23 * AUDIT_HOUR_MS, "login", 5),
            // 24 hours ago: not in the hours, still in yesterday.
            count(this_hour - 24 * AUDIT_HOUR_MS, "login", 7),
            // Six days ago, at midnight: the first day shown.
            count(Day::of(now).start() - 6 * DAY_MS, "account_locked", 1),
            // Seven days ago: neither.
            count(Day::of(now).start() - 6 * DAY_MS - 1, "account_locked", 9),
            count(this_hour, "signup", 8),
        ];
        let all = tally(&stored, now);
        let logins = &all[0];
        assert_eq!(logins.series, Series::Logins);
        assert_eq!(logins.hours[23], 3);
        assert_eq!(logins.hours[22], 4);
        assert_eq!(logins.hours[0], 5);
        assert_eq!(logins.hours.iter().sum::<u64>(), 12);
        assert_eq!(logins.days[6], 7);
        assert_eq!(logins.days[5], 12);
        assert_eq!(logins.days.iter().sum::<u64>(), 19);
        let failures = &all[1];
        assert_eq!((failures.hours[23], failures.days[6]), (3, 3));
        let lockouts = &all[2];
        assert_eq!(lockouts.days, [1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(lockouts.hours, [0; 24]);
        assert_eq!(logins.first_hour, this_hour - 23 * AUDIT_HOUR_MS);
    }

    #[test]
    fn every_charted_kind_is_an_event_kind() {
        for s in Series::ALL {
            for k in s.kinds() {
                assert!(crate::audit::KINDS.contains(k), "{k}");
            }
        }
    }
}
