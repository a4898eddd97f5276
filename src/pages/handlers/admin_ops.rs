//! The console's operations sections: blocked client addresses (list, unblock) and the
//! mail outbox (waiting, retrying, refused for good, sent in the last 24 hours; retry
//! now). Admins only: anonymous visitors are sent to log in, members get 403, before the
//! CSRF token is even looked at. Each action is the one in `auth::admin` the CLI calls too,
//! so it does the same store work and leaves the same audit line; its outcome comes back
//! as a query parameter of the section's URL (post, redirect, get).

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::auth::admin::{self as actions, Admin};
use crate::pages::console::{Nav, Section};
use crate::pages::console_ops::{
    self, BlockRow, BlockedPage, OutboxPage, RefusedRow, WaitingList, WaitingRow,
};
use crate::pages::{render, Reply};
use crate::routes::Route;
use crate::store::{Channel, Due, WaitingCursor, WaitingMail, WaitingQuery};

/// Blocks listed at most (the CLI lists them all).
const BLOCKS_SHOWN: usize = 500;
/// Waiting messages per page of each list, and failed ones listed at most (most recent).
const MAIL_SHOWN: usize = 50;
const FAILED_SHOWN: usize = 100;

fn admin_by<'a>(ctx: &'a Ctx<'_, '_>, user: &'a crate::store::UserId) -> Admin<'a> {
    Admin::Page {
        user,
        ip: ctx.req.client_ip,
    }
}

pub async fn blocked(ctx: &Ctx<'_, '_>) -> PageResult {
    let t = ctx.lang().tr();
    let notice = if let Some(a) = ctx.req.query_param("unblocked") {
        Some(t.with("ops-unblocked", &[("address", a)]))
    } else {
        ctx.req
            .query_param("not_blocked")
            .map(|a| t.with("ops-not-blocked", &[("address", a)]))
    };
    blocked_page(ctx, StatusCode::OK, notice, None).await
}

async fn blocked_page(
    ctx: &Ctx<'_, '_>,
    status: StatusCode,
    notice: Option<String>,
    error: Option<&'static str>,
) -> PageResult {
    ctx.admin()?;
    let mut blocks = actions::ip_blocks(&ctx.app.store, ctx.now, BLOCKS_SHOWN + 1).await?;
    let more = blocks.len() > BLOCKS_SHOWN;
    blocks.truncate(BLOCKS_SHOWN);
    let blocks = blocks
        .into_iter()
        .map(|b| BlockRow {
            until: super::devices::when(b.until),
            left: console_ops::left(b.until - ctx.now),
            ip: b.ip,
        })
        .collect();
    let page = BlockedPage {
        c: ctx.chrome(Route::AdminBlocked.path()),
        nav: Nav::new(Section::Blocked),
        blocks,
        more,
        notice,
        error,
    };
    Ok(render::page(status, &page))
}

/// Lifts the block on the posted `address` (as listed), on every instance.
pub async fn unblock(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.admin()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let Some(addr) = actions::parse_client(f.get("address")) else {
        let bad = Some("ops-bad-address");
        return blocked_page(ctx, StatusCode::BAD_REQUEST, None, bad).await;
    };
    let was =
        actions::ip_unblock(&ctx.app.store, admin_by(ctx, &id.user_id), addr, ctx.now).await?;
    let key = crate::auth::lockout::client_key(addr);
    let param = if was { "unblocked" } else { "not_blocked" };
    Ok(Reply::see_other(
        &Route::AdminBlocked.with_query(&[(param, key.as_str())]),
    ))
}

/// The outbox section's query parameters: where each list's page starts.
const QUEUED_AFTER: &str = "queued_after";
const RETRYING_AFTER: &str = "retrying_after";

pub async fn outbox(ctx: &Ctx<'_, '_>) -> PageResult {
    ctx.admin()?;
    let t = ctx.lang().tr();
    let q = |name: &str| ctx.req.query_param(name);
    let notice = if let Some(to) = q("retried") {
        Some(t.with("ops-retried", &[("to", to)]))
    } else if let Some(n) = q("retried_all") {
        Some(t.with("ops-retried-all", &[("count", n)]))
    } else {
        q("gone").map(|_| t.get("ops-retry-gone"))
    };
    let cursor = |name: &str| q(name).as_deref().and_then(WaitingCursor::parse);
    let (queued_after, retrying_after) = (cursor(QUEUED_AFTER), cursor(RETRYING_AFTER));
    let page = |due, after| WaitingQuery {
        due,
        now: ctx.now,
        after,
        limit: MAIL_SHOWN,
    };
    let queued_query = page(Due::Now, queued_after.clone());
    let retrying_query = page(Due::Later, retrying_after.clone());
    let store = &ctx.app.store;
    let sms = ctx.app.config.sms_delivers;
    let (queued, retrying, failed, failed_total, sent_mail, sent_sms) = tokio::try_join!(
        store.outbox_page(&queued_query),
        store.outbox_page(&retrying_query),
        store.outbox_failed(FAILED_SHOWN),
        store.outbox_failed_count(ctx.now),
        store.outbox_sent_count(Channel::Email, ctx.now),
        store.outbox_sent_count(Channel::Mobile, ctx.now),
    )?;
    // A list's pager keeps the other list where it is.
    let link = |queued: Option<&WaitingCursor>, retrying: Option<&WaitingCursor>| {
        let (q, r) = (
            queued.map(WaitingCursor::to_param),
            retrying.map(WaitingCursor::to_param),
        );
        let mut pairs = Vec::new();
        if let Some(q) = &q {
            pairs.push((QUEUED_AFTER, q.as_str()));
        }
        if let Some(r) = &r {
            pairs.push((RETRYING_AFTER, r.as_str()));
        }
        if pairs.is_empty() {
            Route::AdminOutbox.path().to_string()
        } else {
            Route::AdminOutbox.with_query(&pairs)
        }
    };
    let shown = |page: &crate::store::WaitingPage| {
        let args = [
            ("shown", page.mails.len().to_string()),
            ("total", page.total.to_string()),
        ];
        t.with("ops-shown", &args)
    };
    let queued = WaitingList {
        id: "outbox-queued",
        title: "ops-queued",
        none: "ops-queued-none",
        help: None,
        shown: shown(&queued),
        next: queued
            .next
            .as_ref()
            .map(|n| link(Some(n), retrying_after.as_ref())),
        first: queued_after
            .as_ref()
            .map(|_| link(None, retrying_after.as_ref())),
        total: queued.total,
        rows: queued.mails.into_iter().map(waiting_row).collect(),
    };
    let retrying = WaitingList {
        id: "outbox-retrying",
        title: "ops-retrying",
        none: "ops-retrying-none",
        help: Some("ops-retrying-help"),
        shown: shown(&retrying),
        next: retrying
            .next
            .as_ref()
            .map(|n| link(queued_after.as_ref(), Some(n))),
        first: retrying_after
            .as_ref()
            .map(|_| link(queued_after.as_ref(), None)),
        total: retrying.total,
        rows: retrying.mails.into_iter().map(waiting_row).collect(),
    };
    let failed = failed
        .into_iter()
        .map(|m| RefusedRow {
            failed: super::devices::when(m.failed_at),
            kind: m.kind,
            to: m.to,
            subject: m.subject,
            attempts: m.attempts,
            error: m.last_error,
        })
        .collect();
    let page = OutboxPage {
        c: ctx.chrome(Route::AdminOutbox.path()),
        nav: Nav::new(Section::Outbox),
        sent_mail,
        sent_sms: sms.then_some(sent_sms),
        queued,
        retrying,
        failed,
        failed_total,
        notice,
        error: None,
    };
    Ok(render::page(StatusCode::OK, &page))
}

/// What the console shows of a waiting message: never its bodies (the store does not
/// even read them).
fn waiting_row(m: WaitingMail) -> WaitingRow {
    WaitingRow {
        channel: match m.channel {
            Channel::Email => "ops-channel-email",
            Channel::Mobile => "ops-channel-mobile",
        },
        created: super::devices::when(m.created_at),
        next: super::devices::when(m.next_attempt),
        error: m.last_error.unwrap_or_default(),
        id: m.id,
        kind: m.kind,
        to: m.to,
        subject: m.subject,
        attempts: m.attempts,
    }
}

/// "Retry now": the posted message `id`, or with `all` every waiting one, becomes due.
pub async fn retry(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.admin()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let by = admin_by(ctx, &id.user_id);
    let store = &ctx.app.store;
    let to = if f.get("all").is_empty() {
        match actions::mail_retry(store, by, f.get("id"), ctx.now).await? {
            Some(m) => Route::AdminOutbox.with_query(&[("retried", m.to.as_str())]),
            None => Route::AdminOutbox.with_query(&[("gone", "1")]),
        }
    } else {
        let done = actions::mail_retry_all(store, by, ctx.now).await?;
        Route::AdminOutbox.with_query(&[("retried_all", done.len().to_string().as_str())])
    };
    // This instance's senders look now; the others within their one-second poll.
    ctx.app.mailer.wake_senders();
    Ok(Reply::see_other(&to))
}
