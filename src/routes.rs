//! Vigile's own pages as a type: every `/_vigile/…` path is spelled once, here, and parsed
//! back from a request path. Dispatch, redirects, links in templates and mails all go
//! through [`Route`], so a page cannot be renamed in one place and not another.
//!
//! This module depends on nothing but the language list: mails (under `auth`) and pages
//! both use it.

use crate::i18n::Lang;

/// Where Vigile's pages live; also the cookie-free static prefix.
pub const BASE: &str = "/_vigile";

/// One list gives the variants, their paths and whether a blocked address may use them.
macro_rules! routes {
    ($( $(#[$doc:meta])* $variant:ident = $path:literal $(, $guarded:ident)? ;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Route {
            $( $(#[$doc])* $variant, )*
            /// `lang/fr`, `lang/en`: the language switch.
            Lang(Lang),
        }

        impl Route {
            const FIXED: &'static [Route] = &[$(Route::$variant),*];

            /// The absolute path of this page (no query).
            pub fn path(self) -> &'static str {
                match self {
                    $( Route::$variant => concat!("/_vigile", $path), )*
                    Route::Lang(Lang::Fr) => "/_vigile/lang/fr",
                    Route::Lang(Lang::En) => "/_vigile/lang/en",
                }
            }

            /// Pages closed to a blocked client address: the ones that take credentials
            /// or codes, or send mail.
            pub fn guarded(self) -> bool {
                match self {
                    $( Route::$variant => routes!(@guarded $($guarded)?), )*
                    Route::Lang(_) => false,
                }
            }
        }
    };
    (@guarded guarded) => { true };
    (@guarded) => { false };
}

routes! {
    Login = "/login", guarded;
    Logout = "/logout";
    Signup = "/signup", guarded;
    /// The activation link (`?token=`).
    Activate = "/activate", guarded;
    ActivateResend = "/activate/resend", guarded;
    PasswordForgot = "/password/forgot", guarded;
    /// The reset link (`?token=`).
    PasswordReset = "/password/reset", guarded;
    Account = "/account";
    AccountDevicesRevoke = "/account/devices/revoke";
    AccountDevicesOthers = "/account/devices/others";
    /// The member's display name and preferred language.
    AccountProfile = "/account/profile";
    /// The member changes their password (the current one typed again).
    AccountPassword = "/account/password", guarded;
    /// The device-overflow code.
    Verify = "/verify", guarded;
    VerifyResend = "/verify/resend", guarded;
    DevicesChoose = "/devices/choose";
    DevicesCancel = "/devices/cancel";
    /// The console's overview.
    Admin = "/admin";
    /// Console sections (see `pages::console`).
    AdminMembers = "/admin/members";
    AdminOrgs = "/admin/orgs";
    AdminCampaigns = "/admin/campaigns";
    AdminBlocked = "/admin/blocked";
    AdminOutbox = "/admin/outbox";
    /// The stored audit trail (`?email=&kind=&from=&to=&before=`), and as CSV.
    AdminEvents = "/admin/events";
    AdminEventsCsv = "/admin/events.csv";
    AdminUnlock = "/admin/unlock";
    AdminSettings = "/admin/settings";
    /// One member (`?email=`).
    AdminMember = "/admin/member";
    AdminMemberCap = "/admin/member/cap";
    AdminMemberRevoke = "/admin/member/revoke";
    /// Members from a CSV file: the upload form, and its preview (multipart POST).
    AdminImport = "/admin/import";
    /// Does what the preview showed, checking the file again (POST).
    AdminImportConfirm = "/admin/import/confirm";
    /// One organisation (`?id=`), its seats, plan and device cap.
    AdminOrg = "/admin/org";
    /// Company registration, three steps (the step-1 link carries `?token=`).
    Register = "/register", guarded;
    /// The member's organisation: profile, members, invitations.
    Org = "/org";
    OrgBilling = "/org/billing";
    OrgProfile = "/org/profile";
    OrgInvite = "/org/invite";
    OrgInviteCancel = "/org/invite/cancel";
    OrgRemove = "/org/remove";
    OrgRole = "/org/role";
    OrgTransfer = "/org/transfer";
    /// An invitation's link (`?token=`): set a password and join.
    OrgJoin = "/org/join", guarded;
    /// Confirming the member's email and mobile (also the mailed link, `?token=`).
    Contact = "/contact", guarded;
    /// Sends a code to the email or mobile typed (`channel`).
    ContactSend = "/contact/send", guarded;
    /// Checks a typed code (`channel`, `code`).
    ContactConfirm = "/contact/confirm", guarded;
    /// Starts a contact-confirmation campaign.
    AdminCampaign = "/admin/campaign";
    /// The current identity as JSON, for single-page apps.
    ApiMe = "/api/me";
    /// Mails the gateway sent (demo and `dev_mode` only).
    DevMail = "/dev/mail";
    /// Text messages the gateway sent (demo and `dev_mode` only).
    DevSms = "/dev/sms";
    Stylesheet = "/static/vigile.css";
    /// The passkey ceremonies' script (no inline script: the pages' CSP forbids it).
    PasskeysScript = "/static/passkeys.js";
    /// The second step of a login (and of a step-up).
    TwoFactor = "/2fa", guarded;
    /// The member's second factors: enrol, name, remove; recovery codes.
    AccountTwoFactor = "/account/2fa", guarded;
    /// An admin removes a member's second factors.
    AdminMemberTwoFactorReset = "/admin/member/2fa-reset";
}

impl Route {
    /// The route for an (already canonical) request path, if it is one of Vigile's pages.
    pub fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix(BASE)?;
        if let Some(code) = rest.strip_prefix("/lang/") {
            return Lang::parse(code).map(Route::Lang);
        }
        Route::FIXED
            .iter()
            .copied()
            .find(|r| &r.path()[BASE.len()..] == rest)
    }

    /// `path()` with a query string, its values encoded.
    pub fn with_query(self, pairs: &[(&str, &str)]) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        format!("{}?{}", self.path(), query.finish())
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_parses_back_from_its_path() {
        let all = Route::FIXED
            .iter()
            .copied()
            .chain([Route::Lang(Lang::Fr), Route::Lang(Lang::En)]);
        for route in all {
            assert!(route.path().starts_with("/_vigile/"), "{route:?}");
            assert_eq!(Route::parse(route.path()), Some(route), "{route:?}");
        }
    }

    #[test]
    fn other_paths_are_not_routes() {
        for path in [
            "/",
            "/login",
            "/_vigile",
            "/_vigile/",
            "/_vigile/login/",
            "/_vigile/lang/de",
        ] {
            assert_eq!(Route::parse(path), None, "{path}");
        }
        assert!(Route::Login.guarded() && !Route::Account.guarded());
        assert_eq!(
            Route::AdminMember.with_query(&[("email", "a+b@example.com")]),
            "/_vigile/admin/member?email=a%2Bb%40example.com"
        );
    }
}
