//! The admin console's section pages (the frame is `console.rs`).

use askama::Template;

use super::console::Nav;
use super::console_events::ChartRow;
use super::forms::{CampaignRow, MemberRow};
use super::render::Chrome;
use crate::{i18n::Lang, routes::Route};

/// One figure of the overview.
pub struct Stat {
    /// Catalog key of what it counts.
    pub key: &'static str,
    pub value: u64,
    /// Where to see the detail.
    pub href: &'static str,
}

#[derive(Template)]
#[template(path = "pages/admin.html")]
pub struct OverviewPage {
    pub c: Chrome,
    pub nav: Nav,
    pub stats: Vec<Stat>,
    /// Mails refused for good (listed in the Mail outbox section), up to its list's length.
    pub refused: usize,
    /// Each series over the last 24 hours and the last 7 days.
    pub charts: Vec<ChartRow>,
    pub chart_height: u32,
}

#[derive(Template)]
#[template(path = "pages/admin_members.html")]
pub struct MembersPage {
    pub c: Chrome,
    pub nav: Nav,
    pub members: Vec<MemberRow>,
    /// The address just unlocked, for the notice.
    pub unlocked: Option<String>,
    /// Catalog key of an error (a bad address).
    pub error: Option<&'static str>,
    /// The search as typed, and the state filter (`member_search::State::as_str`).
    pub text: String,
    pub state: &'static str,
    /// (value, catalog key) of each state.
    pub states: Vec<(&'static str, &'static str)>,
    /// Links to the next page and back to the first, when there are.
    pub next: Option<String>,
    pub first: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/admin_orgs.html")]
pub struct OrgsPage {
    pub c: Chrome,
    pub nav: Nav,
    pub orgs: Vec<super::org_pages::OrgRow>,
}

#[derive(Template)]
#[template(path = "pages/admin_campaigns.html")]
pub struct CampaignsPage {
    pub c: Chrome,
    pub nav: Nav,
    /// For the "one organisation" choice.
    pub orgs: Vec<super::org_pages::OrgRow>,
    /// Contact-confirmation campaigns, newest first.
    pub campaigns: Vec<CampaignRow>,
    /// Whether the campaign form offers mobile numbers (text messages can be sent).
    pub sms: bool,
    /// The campaign just started, for the notice.
    pub started: bool,
}

#[derive(Template)]
#[template(path = "pages/admin_settings.html")]
pub struct SettingsPage {
    pub c: Chrome,
    pub nav: Nav,
    /// Device cap in force (store setting, else the configuration file's).
    pub max_per_member: u32,
    /// "choose" | "evict-oldest" | "deny".
    pub on_overflow: &'static str,
    /// The configuration file's values, shown as the defaults.
    pub file_max: u32,
    pub file_overflow: &'static str,
    /// Catalog key of a notice (settings saved) or an error (bad value).
    pub notice: Option<&'static str>,
    pub error: Option<&'static str>,
}
