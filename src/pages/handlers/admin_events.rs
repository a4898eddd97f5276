//! The console's Security events: the stored audit trail filtered by member (address),
//! kind and day range, fifty a page, and the same filter exported as CSV. Admins only
//! (a visitor is sent to log in, a member gets 403). Reading changes nothing, so these
//! are GETs whose filter lives in the URL (bookmarkable, shareable between admins).

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::audit::KINDS;
use crate::auth::events::{self, Filter};
use crate::edge::day::Day;
use crate::edge::email::Email;
use crate::pages::console::{Nav, Section};
use crate::pages::console_events::{self, EventsPage, FilterForm, KindOption};
use crate::pages::{render, PageError, Reply};
use crate::routes::Route;
use crate::store::StoreError;

/// The filter of the query string, as typed and as parsed; the catalog key of the first
/// thing wrong with it.
fn filter_of(ctx: &Ctx<'_, '_>) -> (FilterForm, Result<Filter, &'static str>) {
    let q = |name: &str| ctx.req.query_param(name).unwrap_or_default();
    let form = FilterForm {
        email: q("email").trim().to_string(),
        kind: q("kind"),
        from: q("from"),
        to: q("to"),
    };
    let parsed = (|| {
        let member = match form.email.as_str() {
            "" => None,
            typed => Some(Email::parse(typed).map_err(|_| "events-bad-email")?),
        };
        let kind = match form.kind.as_str() {
            "" => None,
            typed => Some(
                *KINDS
                    .iter()
                    .find(|k| **k == typed)
                    .ok_or("events-bad-kind")?,
            ),
        };
        let day = |typed: &str| match typed {
            "" => Ok(None),
            _ => Day::parse(typed).map(Some).ok_or("events-bad-date"),
        };
        let (from, to) = (day(&form.from)?, day(&form.to)?);
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err("events-bad-range");
            }
        }
        Ok(Filter {
            member,
            kind,
            from,
            to,
        })
    })();
    (form, parsed)
}

pub async fn list(ctx: &Ctx<'_, '_>) -> PageResult {
    ctx.admin()?;
    let (form, filter) = filter_of(ctx);
    let kinds = KINDS
        .iter()
        .map(|&kind| KindOption {
            kind,
            key: format!("event-{kind}"),
            selected: form.kind == kind,
        })
        .collect();
    let (status, error, found) = match &filter {
        Ok(filter) => {
            let before = ctx.req.query_param("before");
            (
                StatusCode::OK,
                None,
                events::search(ctx.app, filter, before).await?,
            )
        }
        Err(key) => (
            StatusCode::BAD_REQUEST,
            Some(*key),
            events::Found::default(),
        ),
    };
    let next = found.next.as_ref().map(|next| {
        let mut pairs = form.pairs();
        pairs.push(("before", next.as_str()));
        Route::AdminEvents.with_query(&pairs)
    });
    let page = EventsPage {
        c: ctx.chrome(Route::AdminEvents.path()),
        nav: Nav::new(Section::Events),
        csv: Route::AdminEventsCsv.with_query(&form.pairs()),
        kinds,
        events: console_events::rows(found.events),
        next,
        error,
        no_such_member: found.no_such_member,
        form,
    };
    Ok(render::page(status, &page))
}

/// The filtered events as CSV (UTF-8, RFC 4180, a header row), newest first.
pub async fn csv(ctx: &Ctx<'_, '_>) -> PageResult {
    ctx.admin()?;
    let Ok(filter) = filter_of(ctx).1 else {
        // The section shows what is wrong with the filter.
        return list(ctx).await;
    };
    let (rows, more) = events::export(ctx.app, &filter).await?.unwrap_or_default();
    let body = console_events::to_csv(&rows, true).map_err(unwritable)?;
    let name = format!("vigile-events-{}.csv", Day::of(ctx.now).as_string());
    Ok(Reply::new(StatusCode::OK, "text/csv; charset=utf-8", body)
        .with_header(
            http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .with_header(http::header::CACHE_CONTROL, "no-store".into())
        .with_header(
            http::HeaderName::from_static("vigile-export-truncated"),
            more.to_string(),
        ))
}

/// Writing CSV into memory does not fail; were it to, the export is not served.
fn unwritable(e: csv::Error) -> PageError {
    PageError::Unavailable(StoreError::Corrupt(format!("csv export: {e}")).into())
}
