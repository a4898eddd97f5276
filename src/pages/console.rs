//! The admin console's frame: its sections, the navigation between them, and the layout
//! every section page extends (`templates/pages/admin_layout.html`: full width, the
//! navigation beside the section on a wide screen and above it on a phone).

use crate::routes::Route;

/// One section of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Members,
    Orgs,
    Campaigns,
    Blocked,
    Outbox,
    Events,
    Settings,
}

impl Section {
    /// The sections the navigation offers, in its order.
    pub const ALL: [Section; 8] = [
        Section::Overview,
        Section::Members,
        Section::Orgs,
        Section::Campaigns,
        Section::Blocked,
        Section::Outbox,
        Section::Events,
        Section::Settings,
    ];

    pub fn route(self) -> Route {
        match self {
            Section::Overview => Route::Admin,
            Section::Members => Route::AdminMembers,
            Section::Orgs => Route::AdminOrgs,
            Section::Campaigns => Route::AdminCampaigns,
            Section::Blocked => Route::AdminBlocked,
            Section::Outbox => Route::AdminOutbox,
            Section::Events => Route::AdminEvents,
            Section::Settings => Route::AdminSettings,
        }
    }

    /// Catalog key of its name.
    pub fn key(self) -> &'static str {
        match self {
            Section::Overview => "console-overview",
            Section::Members => "console-members",
            Section::Orgs => "console-orgs",
            Section::Campaigns => "console-campaigns",
            Section::Blocked => "console-blocked",
            Section::Outbox => "console-outbox",
            Section::Events => "console-events",
            Section::Settings => "console-settings",
        }
    }
}

/// The navigation of a section page: which section is shown.
pub struct Nav {
    pub current: Section,
}

/// One link of the navigation.
pub struct NavLink {
    pub href: &'static str,
    pub key: &'static str,
    pub current: bool,
}

impl Nav {
    pub fn new(current: Section) -> Nav {
        Nav { current }
    }

    pub fn links(&self) -> Vec<NavLink> {
        Section::ALL
            .iter()
            .map(|s| NavLink {
                href: s.route().path(),
                key: s.key(),
                current: *s == self.current,
            })
            .collect()
    }
}
