//! The console's Security events section (`/_vigile/admin/events`, its CSV at
//! `/_vigile/admin/events.csv`) and the overview's charts: bar charts drawn here as inline
//! SVG (no script, no external resource: the pages' CSP allows neither), each bar titled
//! with its hour or day and count for screen readers and hovering.

use askama::Template;

use super::console::Nav;
use super::render::Chrome;
use crate::auth::events::{Counts, Shown};
use crate::edge::day::Day;
use crate::i18n::Lang;
use crate::routes::Route;
use crate::store::{Millis, AUDIT_HOUR_MS};

/// One event row.
pub struct EventRow {
    pub when: String,
    /// The event's name and the catalog key of its label.
    pub kind: String,
    pub kind_key: String,
    pub by_key: &'static str,
    pub member: Option<String>,
    pub admin: Option<String>,
    pub ip: String,
    /// The other fields, `key: value` joined.
    pub detail: String,
}

/// When an event happened, to the second (several can share a minute): `2026-12-03
/// 07:42:13 UTC`.
pub fn when(at: Millis) -> String {
    let s = crate::clock::rfc3339(at);
    match (s.get(..10), s.get(11..19)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => s,
    }
}

/// The catalog key of who did it.
fn by_key(by: &str) -> &'static str {
    match by {
        "visitor" => "events-by-visitor",
        "admin" => "events-by-admin",
        "org_admin" => "events-by-org-admin",
        "cli" => "events-by-cli",
        _ => "events-by-system",
    }
}

/// `{"count":3,"org":"o1"}` as `count: 3, org: o1`.
pub fn detail_text(detail: &str) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str(detail) else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}: {s}"),
            other => format!("{k}: {other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn rows(events: Vec<Shown>) -> Vec<EventRow> {
    events
        .into_iter()
        .map(|e| EventRow {
            when: when(e.record.at),
            kind_key: format!("event-{}", e.record.event),
            by_key: by_key(&e.record.by),
            member: e.member,
            admin: e.admin,
            ip: e.record.ip.unwrap_or_default(),
            detail: detail_text(&e.record.detail),
            kind: e.record.event,
        })
        .collect()
}

/// The filter as the form shows it back.
#[derive(Default)]
pub struct FilterForm {
    pub email: String,
    pub kind: String,
    pub from: String,
    pub to: String,
}

impl FilterForm {
    /// The filter's query pairs (empty ones left out), for the next page and the CSV.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("email", self.email.as_str()),
            ("kind", self.kind.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }
}

/// One kind in the filter's list.
pub struct KindOption {
    pub kind: &'static str,
    pub key: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "pages/admin_events.html")]
pub struct EventsPage {
    pub c: Chrome,
    pub nav: Nav,
    pub form: FilterForm,
    pub kinds: Vec<KindOption>,
    pub events: Vec<EventRow>,
    /// Link to the next page, with the filter.
    pub next: Option<String>,
    pub csv: String,
    /// Catalog key of what was wrong with the filter.
    pub error: Option<&'static str>,
    pub no_such_member: bool,
}

/// One bar of a chart, in the SVG's own units.
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    /// Its hour or day and its count, as its title.
    pub title: String,
}

/// One small bar chart.
pub struct Chart {
    /// Catalog key of what it counts.
    pub key: &'static str,
    /// `24h` or `7d`.
    pub span: &'static str,
    pub total: u64,
    pub bars: Vec<Bar>,
    /// What the chart says as a whole, for screen readers.
    pub label: String,
}

/// The SVG's drawing area (the page scales it).
pub const CHART_HEIGHT: u32 = 40;
const SLOT: u32 = 10;

fn bars(values: &[u64], label: impl Fn(usize) -> String) -> Vec<Bar> {
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            // At least a pixel for a non-zero count, so one event is seen among thousands.
            let scaled = u32::try_from(v.saturating_mul(u64::from(CHART_HEIGHT)) / max)
                .unwrap_or(CHART_HEIGHT);
            let height = if v > 0 { scaled.max(1) } else { 0 };
            Bar {
                x: u32::try_from(i).unwrap_or(0) * SLOT,
                y: CHART_HEIGHT - height,
                height,
                title: format!("{}: {v}", label(i)),
            }
        })
        .collect()
}

/// One series: its charts over 24 hours and 7 days.
pub struct ChartRow {
    pub key: &'static str,
    /// The Security events of its main kind.
    pub href: String,
    pub charts: Vec<Chart>,
}

/// The two charts (24 hours, 7 days) of each series, in `lang`.
pub fn charts(all: &[Counts], lang: Lang) -> Vec<ChartRow> {
    let t = lang.tr();
    all.iter()
        .map(|c| {
            let key = match c.series.as_str() {
                "logins" => "chart-logins",
                "failures" => "chart-failures",
                "lockouts" => "chart-lockouts",
                "blocks" => "chart-blocks",
                _ => "chart-overflows",
            };
            let hour = |i: usize| {
                let at = c.first_hour + Millis::try_from(i).unwrap_or(0) * AUDIT_HOUR_MS;
                let s = crate::clock::rfc3339(at);
                s.get(11..16).map(|h| format!("{h} UTC")).unwrap_or(s)
            };
            let day = |i: usize| {
                Day::of(c.first_day + Millis::try_from(i).unwrap_or(0) * 24 * AUDIT_HOUR_MS)
                    .as_string()
            };
            let name = t.get(key);
            let hours: u64 = c.hours.iter().sum();
            let days: u64 = c.days.iter().sum();
            ChartRow {
                key,
                href: events_of(c.series.kinds().first().copied().unwrap_or_default()),
                charts: vec![
                    Chart {
                        key,
                        span: "24h",
                        total: hours,
                        bars: bars(&c.hours, hour),
                        label: t.with(
                            "chart-label-24h",
                            &[("what", name.clone()), ("n", hours.to_string())],
                        ),
                    },
                    Chart {
                        key,
                        span: "7d",
                        total: days,
                        bars: bars(&c.days, day),
                        label: t.with("chart-label-7d", &[("what", name), ("n", days.to_string())]),
                    },
                ],
            }
        })
        .collect()
}

/// The Security events of one kind.
pub fn events_of(kind: &str) -> String {
    Route::AdminEvents.with_query(&[("kind", kind)])
}

/// A CSV cell a spreadsheet would not run: a leading `=`, `+`, `-`, `@`, tab or carriage
/// return makes it a formula (OWASP "CSV injection"), so such a cell gets a leading `'`.
pub fn csv_cell(value: &str) -> std::borrow::Cow<'_, str> {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}").into(),
        _ => value.into(),
    }
}

/// `rows` as CSV (RFC 4180, a header row). `for_spreadsheets` (the console's download):
/// every cell through [`csv_cell`]; `vigile audit export` writes the values as they are,
/// for scripts (an id may start with `-`).
pub fn to_csv(rows: &[Shown], for_spreadsheets: bool) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let cell = |c: &str| {
        if for_spreadsheets {
            csv_cell(c).into_owned()
        } else {
            c.to_string()
        }
    };
    let mut write = |cells: [&str; 8]| out.write_record(cells.map(cell));
    write([
        "at", "event", "by", "admin", "member", "user_id", "ip", "details",
    ])?;
    for e in rows {
        let r = &e.record;
        let at = crate::clock::rfc3339(r.at);
        write([
            &at,
            &r.event,
            &r.by,
            e.admin.as_deref().unwrap_or(""),
            e.member.as_deref().unwrap_or(""),
            r.user.as_deref().unwrap_or(""),
            r.ip.as_deref().unwrap_or(""),
            &r.detail,
        ])?;
    }
    out.into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formula_never_leaves_as_a_formula() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("ann@example.com"), "ann@example.com");
        assert_eq!(csv_cell(""), "");
    }

    #[test]
    fn an_event_shows_its_second() {
        assert_eq!(when(1_796_284_933_123), "2026-12-03 08:02:13 UTC");
    }

    #[test]
    fn details_read_as_pairs() {
        assert_eq!(
            detail_text(r#"{"count":3,"org":"o1"}"#),
            "count: 3, org: o1"
        );
        assert_eq!(detail_text("{}"), "");
        assert_eq!(detail_text("not json"), "");
    }

    #[test]
    fn bars_scale_to_the_largest_and_show_a_single_event() {
        let b = bars(&[0, 1, 1000], |i| i.to_string());
        assert_eq!(b[0].height, 0);
        assert_eq!(b[1].height, 1);
        assert_eq!(b[2].height, CHART_HEIGHT);
        assert_eq!(b[2].y, 0);
        assert_eq!(b[1].title, "1: 1");
        assert_eq!(b[2].x, 2 * SLOT);
        assert!(bars(&[0, 0], |_| String::new())
            .iter()
            .all(|b| b.height == 0));
    }
}
