//! The audit log: security events (sign-ins and failures, lockouts, IP blocks, devices
//! replaced or signed out, password changes, admin actions), each an [`Event`] written by
//! [`Event::emit`] as one `tracing` event with target `"audit"` and the same field names
//! for every event: what (`event`), who did it (`by`, and `admin` for an administrator),
//! whom it concerns (`user`, `email` or `address`), when (`at`) and from where (`ip`),
//! then what the event needs (`count`, `session`, ...). The [`AuditFile`] layer also
//! appends them, one JSON object per line, to `[log] audit_file`, so they can be kept
//! apart from the operational logs.
//!
//! An event must never carry a secret: no password, token, code or hash. The variants
//! hold ids and addresses only, so a secret cannot be passed by mistake.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

use crate::clock::rfc3339;
use crate::config::OnOverflow;
use crate::store::{overflow_str, AuditRecord, Millis, OrgId, SessionId, UserId};

/// The target every audit event uses.
pub const TARGET: &str = "audit";

/// Every `event` name, in [`Event::name`]'s order (a test keeps the two together): the
/// console's filter offers these.
pub const KINDS: [&str; 47] = [
    "signup",
    "signup_existing",
    "activation",
    "login",
    "login_failed",
    "logout",
    "account_locked",
    "device_locked",
    "ip_blocked",
    "password_reset_requested",
    "password_reset",
    "password_changed",
    "profile_changed",
    "device_overflow",
    "device_denied",
    "device_evicted",
    "device_replaced",
    "device_revoked",
    "devices_revoked",
    "unlock",
    "member_cap_changed",
    "session_revoked",
    "sessions_revoked",
    "settings_changed",
    "ip_unblock",
    "mail_failed",
    "mail_retried",
    "org_registered",
    "org_invited",
    "org_invite_cancelled",
    "org_joined",
    "org_role_changed",
    "org_transferred",
    "org_member_removed",
    "org_profile_updated",
    "org_settings_changed",
    "campaign_started",
    "contact_confirmed",
    "contact_changed",
    "2fa_enrolled",
    "2fa_removed",
    "2fa_passed",
    "2fa_failed",
    "2fa_reset",
    "recovery_code_used",
    "member_created",
    "signup_invited",
];

/// Who did it.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// Someone at a client address acting for themselves: signing up, in or out, managing
    /// their own devices (or claiming an address, for a failed sign-in).
    Visitor(IpAddr),
    /// An administrator on the admin pages.
    Admin { user: &'a UserId, ip: IpAddr },
    /// An organisation's admin or super-admin on the organisation page.
    OrgAdmin { user: &'a UserId, ip: IpAddr },
    /// The command line, on the gateway's host.
    Cli,
    /// Vigile itself (a lockout, the mail sender); `Some` when a client address caused it.
    System(Option<IpAddr>),
}

impl Actor<'_> {
    fn by(&self) -> &'static str {
        match self {
            Actor::Visitor(_) => "visitor",
            Actor::Admin { .. } => "admin",
            Actor::OrgAdmin { .. } => "org_admin",
            Actor::Cli => "cli",
            Actor::System(_) => "system",
        }
    }

    fn ip(&self) -> Option<IpAddr> {
        match *self {
            Actor::Visitor(ip)
            | Actor::Admin { ip, .. }
            | Actor::OrgAdmin { ip, .. }
            | Actor::System(Some(ip)) => Some(ip),
            Actor::Cli | Actor::System(None) => None,
        }
    }
}

/// One security event: what happened and whom it concerns. The serialized `event` names
/// are part of the log's format; never rename one.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A pending account was created; its activation link is mailed.
    Signup {
        user: &'a UserId,
        email: &'a str,
    },
    /// A sign-up for an address that already has an active account (its owner is told).
    SignupExisting {
        email: &'a str,
    },
    Activation {
        user: &'a UserId,
    },
    Login {
        user: &'a UserId,
    },
    LoginFailed {
        email: &'a str,
    },
    Logout {
        user: &'a UserId,
    },
    /// Too many failures on an account from unknown devices: locked, owner mailed.
    AccountLocked {
        user: &'a UserId,
    },
    /// Too many failures from one of the account's known devices: that device is locked.
    DeviceLocked {
        user: &'a UserId,
    },
    IpBlocked {
        address: IpAddr,
        until: Millis,
    },
    PasswordResetRequested {
        user: &'a UserId,
    },
    /// The password was changed with a reset link; `ended` sessions were signed out.
    PasswordReset {
        user: &'a UserId,
        ended: u64,
    },
    /// The member changed their password on the account page (the current one typed);
    /// `ended` other sessions were signed out at their request.
    PasswordChanged {
        user: &'a UserId,
        ended: u64,
    },
    /// The member changed their display name or preferred language.
    ProfileChanged {
        user: &'a UserId,
    },
    /// Over the device cap with `choose`: a code was mailed.
    DeviceOverflow {
        email: &'a str,
    },
    /// Over the device cap with `deny`.
    DeviceDenied {
        email: &'a str,
    },
    /// The cap's `evict-oldest` policy signed these sessions out to make room.
    DeviceEvicted {
        user: &'a UserId,
        sessions: &'a [SessionId],
    },
    /// The member chose which devices to sign out to make room.
    DeviceReplaced {
        user: &'a UserId,
        sessions: &'a [SessionId],
    },
    /// The member signed out one of their devices.
    DeviceRevoked {
        user: &'a UserId,
        session: &'a SessionId,
    },
    /// The member signed out every other device.
    DevicesRevoked {
        user: &'a UserId,
        count: u64,
    },
    /// An admin lifted a lockout (`cleared` failure counters).
    Unlock {
        email: &'a str,
        cleared: u64,
    },
    /// An admin set a member's own device cap (`None`: back to the site's).
    MemberCapChanged {
        user: &'a UserId,
        email: &'a str,
        cap: Option<u32>,
    },
    SessionRevoked {
        user: &'a UserId,
        email: &'a str,
        session: &'a SessionId,
    },
    SessionsRevoked {
        user: &'a UserId,
        email: &'a str,
        count: u64,
    },
    /// The site's device cap settings (`None`: the configuration file's).
    SettingsChanged {
        max_per_member: Option<u32>,
        on_overflow: Option<OnOverflow>,
    },
    IpUnblock {
        address: IpAddr,
    },
    /// A company registered: the organisation and its super-admin were created.
    OrgRegistered {
        org: &'a OrgId,
        user: &'a UserId,
        email: &'a str,
    },
    OrgInvited {
        org: &'a OrgId,
        email: &'a str,
    },
    OrgInviteCancelled {
        org: &'a OrgId,
        email: &'a str,
    },
    /// An invited address set its password: the account exists, in the organisation.
    OrgJoined {
        org: &'a OrgId,
        user: &'a UserId,
        email: &'a str,
    },
    OrgRoleChanged {
        org: &'a OrgId,
        user: &'a UserId,
        role: &'static str,
    },
    /// The super-admin role went to `user`.
    OrgTransferred {
        org: &'a OrgId,
        user: &'a UserId,
    },
    /// A member was removed: their account and sessions were deleted.
    OrgMemberRemoved {
        org: &'a OrgId,
        user: &'a UserId,
        email: &'a str,
    },
    OrgProfileUpdated {
        org: &'a OrgId,
    },
    /// A site admin set the organisation's seats, plan or device cap.
    OrgTermsChanged {
        org: &'a OrgId,
    },
    /// A contact-confirmation campaign asked `count` members to confirm `channels`.
    CampaignStarted {
        campaign: &'a str,
        channels: &'a str,
        scope: &'a str,
        count: u64,
    },
    /// A member confirmed a channel (`via` a code, the mailed link...).
    ContactConfirmed {
        user: &'a UserId,
        channel: &'static str,
        via: &'static str,
    },
    /// A member's address or mobile number was replaced by a confirmed new one.
    ContactChanged {
        user: &'a UserId,
        channel: &'static str,
    },
    /// A second factor was verified and added (`method`: totp, webauthn, email, sms).
    SecondFactorEnrolled {
        user: &'a UserId,
        method: &'static str,
    },
    /// A member removed one of their second factors.
    SecondFactorRemoved {
        user: &'a UserId,
        method: &'static str,
    },
    /// The second step of a login (or step-up) passed.
    SecondFactorPassed {
        user: &'a UserId,
        method: &'static str,
    },
    /// A wrong (or replayed) second-factor answer.
    SecondFactorFailed {
        user: &'a UserId,
        method: &'static str,
    },
    /// An admin removed every second factor of a member.
    SecondFactorReset {
        user: &'a UserId,
        email: &'a str,
    },
    /// A recovery code was spent; `left` remain.
    RecoveryCodeUsed {
        user: &'a UserId,
        left: usize,
    },
    /// The mail server refused a mail for good (it is listed on the admin page).
    MailFailed {
        mail: &'a str,
        kind: &'a str,
        to: &'a str,
        attempts: u32,
        error: &'a str,
    },
    /// An admin made a waiting mail or text message due now ("Retry now", `vigile mail
    /// retry`).
    MailRetried {
        mail: &'a str,
        kind: &'a str,
        to: &'a str,
    },
    /// An admin created an account (an import's row; it gets in by a password reset).
    MemberCreated {
        user: &'a UserId,
        email: &'a str,
    },
    /// An admin invited an address to sign up (an import's row).
    SignupInvited {
        email: &'a str,
    },
}

/// An event's fields, by their names in the log; `None` is left out.
#[derive(Debug, Default)]
struct Fields<'a> {
    user: Option<&'a str>,
    email: Option<&'a str>,
    address: Option<String>,
    session: Option<&'a str>,
    sessions: Option<String>,
    count: Option<u64>,
    cap: Option<String>,
    until: Option<String>,
    max_per_member: Option<String>,
    on_overflow: Option<&'static str>,
    mail: Option<&'a str>,
    kind: Option<&'a str>,
    to: Option<&'a str>,
    attempts: Option<u32>,
    error: Option<&'a str>,
    org: Option<&'a str>,
    role: Option<&'static str>,
    campaign: Option<&'a str>,
    channel: Option<&'a str>,
    via: Option<&'static str>,
    scope: Option<&'a str>,
    method: Option<&'static str>,
    left: Option<u64>,
}

/// A cap or a setting as logged: the number, or `default` when it follows the next level.
fn or_default(n: Option<u32>) -> String {
    n.map_or_else(|| "default".to_string(), |n| n.to_string())
}

impl Fields<'_> {
    /// The fields that are not columns of the stored trail, as a JSON object.
    fn detail(&self) -> String {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        let s = |v: Option<&str>| v.map(Value::from);
        put("address", s(self.address.as_deref()));
        put("session", s(self.session));
        put("sessions", s(self.sessions.as_deref()));
        put("count", self.count.map(Value::from));
        put("cap", s(self.cap.as_deref()));
        put("until", s(self.until.as_deref()));
        put("max_per_member", s(self.max_per_member.as_deref()));
        put("on_overflow", s(self.on_overflow));
        put("mail", s(self.mail));
        put("kind", s(self.kind));
        put("attempts", self.attempts.map(Value::from));
        put("error", s(self.error));
        put("org", s(self.org));
        put("role", s(self.role));
        put("campaign", s(self.campaign));
        put("channel", s(self.channel));
        put("via", s(self.via));
        put("scope", s(self.scope));
        put("method", s(self.method));
        put("left", self.left.map(Value::from));
        Value::Object(m).to_string()
    }
}

fn ids(sessions: &[SessionId]) -> String {
    let ids: Vec<&str> = sessions.iter().map(SessionId::as_str).collect();
    ids.join(", ")
}

impl<'a> Event<'a> {
    /// The `event` field.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Signup { .. } => "signup",
            Event::SignupExisting { .. } => "signup_existing",
            Event::Activation { .. } => "activation",
            Event::Login { .. } => "login",
            Event::LoginFailed { .. } => "login_failed",
            Event::Logout { .. } => "logout",
            Event::AccountLocked { .. } => "account_locked",
            Event::DeviceLocked { .. } => "device_locked",
            Event::IpBlocked { .. } => "ip_blocked",
            Event::PasswordResetRequested { .. } => "password_reset_requested",
            Event::PasswordReset { .. } => "password_reset",
            Event::PasswordChanged { .. } => "password_changed",
            Event::ProfileChanged { .. } => "profile_changed",
            Event::DeviceOverflow { .. } => "device_overflow",
            Event::DeviceDenied { .. } => "device_denied",
            Event::DeviceEvicted { .. } => "device_evicted",
            Event::DeviceReplaced { .. } => "device_replaced",
            Event::DeviceRevoked { .. } => "device_revoked",
            Event::DevicesRevoked { .. } => "devices_revoked",
            Event::Unlock { .. } => "unlock",
            Event::MemberCapChanged { .. } => "member_cap_changed",
            Event::SessionRevoked { .. } => "session_revoked",
            Event::SessionsRevoked { .. } => "sessions_revoked",
            Event::SettingsChanged { .. } => "settings_changed",
            Event::IpUnblock { .. } => "ip_unblock",
            Event::MailFailed { .. } => "mail_failed",
            Event::MailRetried { .. } => "mail_retried",
            Event::OrgRegistered { .. } => "org_registered",
            Event::OrgInvited { .. } => "org_invited",
            Event::OrgInviteCancelled { .. } => "org_invite_cancelled",
            Event::OrgJoined { .. } => "org_joined",
            Event::OrgRoleChanged { .. } => "org_role_changed",
            Event::OrgTransferred { .. } => "org_transferred",
            Event::OrgMemberRemoved { .. } => "org_member_removed",
            Event::OrgProfileUpdated { .. } => "org_profile_updated",
            Event::OrgTermsChanged { .. } => "org_settings_changed",
            Event::CampaignStarted { .. } => "campaign_started",
            Event::ContactConfirmed { .. } => "contact_confirmed",
            Event::ContactChanged { .. } => "contact_changed",
            Event::SecondFactorEnrolled { .. } => "2fa_enrolled",
            Event::SecondFactorRemoved { .. } => "2fa_removed",
            Event::SecondFactorPassed { .. } => "2fa_passed",
            Event::SecondFactorFailed { .. } => "2fa_failed",
            Event::SecondFactorReset { .. } => "2fa_reset",
            Event::RecoveryCodeUsed { .. } => "recovery_code_used",
            Event::MemberCreated { .. } => "member_created",
            Event::SignupInvited { .. } => "signup_invited",
        }
    }

    /// The human-readable message.
    fn summary(&self) -> &'static str {
        match self {
            Event::Signup { .. } => "account created, pending activation",
            Event::SignupExisting { .. } => "sign-up for an existing address; owner notified",
            Event::Activation { .. } => "account activated",
            Event::Login { .. } => "login succeeded",
            Event::LoginFailed { .. } => "login failed",
            Event::Logout { .. } => "logout",
            Event::AccountLocked { .. } => "account locked after repeated failures",
            Event::DeviceLocked { .. } => "known device locked after repeated failures",
            Event::IpBlocked { .. } => "address blocked after repeated failures",
            Event::PasswordResetRequested { .. } => "password reset link sent",
            Event::PasswordReset { .. } => "password reset; every session ended",
            Event::PasswordChanged { .. } => "password changed by its owner",
            Event::ProfileChanged { .. } => "name or language changed by its owner",
            Event::DeviceOverflow { .. } => "device cap reached, code mailed",
            Event::DeviceDenied { .. } => "device cap reached, login refused",
            Event::DeviceEvicted { .. } => {
                "least recently used devices signed out by the device cap"
            }
            Event::DeviceReplaced { .. } => "member replaced a device",
            Event::DeviceRevoked { .. } => "member signed out one of their devices",
            Event::DevicesRevoked { .. } => "member signed out every other device",
            Event::Unlock { .. } => "admin lifted a lockout",
            Event::MemberCapChanged { .. } => "admin changed a member's device cap",
            Event::SessionRevoked { .. } => "admin signed a member's device out",
            Event::SessionsRevoked { .. } => "admin signed every device of a member out",
            Event::SettingsChanged { .. } => "admin changed the device cap",
            Event::IpUnblock { .. } => "admin lifted an IP block",
            Event::MailFailed { .. } => {
                "the mail server refused a mail for good; it is listed on the admin page"
            }
            Event::MailRetried { .. } => "admin asked for a waiting mail to be sent now",
            Event::OrgRegistered { .. } => "organisation registered with its super-admin",
            Event::OrgInvited { .. } => "address invited to join an organisation",
            Event::OrgInviteCancelled { .. } => "organisation invitation withdrawn",
            Event::OrgJoined { .. } => "invited member joined the organisation",
            Event::OrgRoleChanged { .. } => "organisation role changed",
            Event::OrgTransferred { .. } => "organisation super-admin handed over",
            Event::OrgMemberRemoved { .. } => {
                "member removed from the organisation; account deleted"
            }
            Event::OrgProfileUpdated { .. } => "organisation profile updated",
            Event::OrgTermsChanged { .. } => {
                "site admin changed an organisation's seats, plan or device cap"
            }
            Event::CampaignStarted { .. } => "contact-confirmation campaign started",
            Event::ContactConfirmed { .. } => "member confirmed a contact channel",
            Event::ContactChanged { .. } => "member's address or mobile replaced",
            Event::SecondFactorEnrolled { .. } => "second factor added",
            Event::SecondFactorRemoved { .. } => "second factor removed",
            Event::SecondFactorPassed { .. } => "second factor passed",
            Event::SecondFactorFailed { .. } => "second factor refused",
            Event::SecondFactorReset { .. } => "second factors reset by an admin",
            Event::RecoveryCodeUsed { .. } => "recovery code used",
            Event::MemberCreated { .. } => "account created by an admin",
            Event::SignupInvited { .. } => "address invited to sign up by an admin",
        }
    }

    /// Failures and lockouts are warnings in the operational log; the rest is info.
    fn is_warning(&self) -> bool {
        matches!(
            self,
            Event::AccountLocked { .. }
                | Event::DeviceLocked { .. }
                | Event::IpBlocked { .. }
                | Event::MailFailed { .. }
        )
    }

    fn fields(&self) -> Fields<'a> {
        let f = Fields::default();
        match *self {
            Event::Signup { user, email } => Fields {
                user: Some(user.as_str()),
                email: Some(email),
                ..f
            },
            Event::SignupExisting { email }
            | Event::SignupInvited { email }
            | Event::LoginFailed { email }
            | Event::DeviceOverflow { email }
            | Event::DeviceDenied { email } => Fields {
                email: Some(email),
                ..f
            },
            Event::Activation { user }
            | Event::Login { user }
            | Event::Logout { user }
            | Event::AccountLocked { user }
            | Event::DeviceLocked { user }
            | Event::PasswordResetRequested { user }
            | Event::ProfileChanged { user } => Fields {
                user: Some(user.as_str()),
                ..f
            },
            Event::IpBlocked { address, until } => Fields {
                address: Some(address.to_string()),
                until: Some(rfc3339(until)),
                ..f
            },
            Event::PasswordReset { user, ended: count }
            | Event::PasswordChanged { user, ended: count }
            | Event::DevicesRevoked { user, count } => Fields {
                user: Some(user.as_str()),
                count: Some(count),
                ..f
            },
            Event::DeviceEvicted { user, sessions } | Event::DeviceReplaced { user, sessions } => {
                Fields {
                    user: Some(user.as_str()),
                    sessions: Some(ids(sessions)),
                    ..f
                }
            }
            Event::DeviceRevoked { user, session } => Fields {
                user: Some(user.as_str()),
                session: Some(session.as_str()),
                ..f
            },
            Event::Unlock { email, cleared } => Fields {
                email: Some(email),
                count: Some(cleared),
                ..f
            },
            Event::MemberCapChanged { user, email, cap } => Fields {
                user: Some(user.as_str()),
                email: Some(email),
                cap: Some(or_default(cap)),
                ..f
            },
            Event::SessionRevoked {
                user,
                email,
                session,
            } => Fields {
                user: Some(user.as_str()),
                email: Some(email),
                session: Some(session.as_str()),
                ..f
            },
            Event::SessionsRevoked { user, email, count } => Fields {
                user: Some(user.as_str()),
                email: Some(email),
                count: Some(count),
                ..f
            },
            Event::SettingsChanged {
                max_per_member,
                on_overflow,
            } => Fields {
                max_per_member: Some(or_default(max_per_member)),
                on_overflow: Some(on_overflow.map_or("default", overflow_str)),
                ..f
            },
            Event::IpUnblock { address } => Fields {
                address: Some(address.to_string()),
                ..f
            },
            Event::OrgRegistered { org, user, email }
            | Event::OrgJoined { org, user, email }
            | Event::OrgMemberRemoved { org, user, email } => Fields {
                org: Some(org.as_str()),
                user: Some(user.as_str()),
                email: Some(email),
                ..f
            },
            Event::OrgInvited { org, email } | Event::OrgInviteCancelled { org, email } => Fields {
                org: Some(org.as_str()),
                email: Some(email),
                ..f
            },
            Event::OrgRoleChanged { org, user, role } => Fields {
                org: Some(org.as_str()),
                user: Some(user.as_str()),
                role: Some(role),
                ..f
            },
            Event::OrgTransferred { org, user } => Fields {
                org: Some(org.as_str()),
                user: Some(user.as_str()),
                ..f
            },
            Event::OrgProfileUpdated { org } | Event::OrgTermsChanged { org } => Fields {
                org: Some(org.as_str()),
                ..f
            },
            Event::CampaignStarted {
                campaign,
                channels,
                scope,
                count,
            } => Fields {
                campaign: Some(campaign),
                channel: Some(channels),
                scope: Some(scope),
                count: Some(count),
                ..f
            },
            Event::ContactConfirmed { user, channel, via } => Fields {
                user: Some(user.as_str()),
                channel: Some(channel),
                via: Some(via),
                ..f
            },
            Event::ContactChanged { user, channel } => Fields {
                user: Some(user.as_str()),
                channel: Some(channel),
                ..f
            },
            Event::SecondFactorEnrolled { user, method }
            | Event::SecondFactorRemoved { user, method }
            | Event::SecondFactorPassed { user, method }
            | Event::SecondFactorFailed { user, method } => Fields {
                user: Some(user.as_str()),
                method: Some(method),
                ..f
            },
            Event::SecondFactorReset { user, email } | Event::MemberCreated { user, email } => {
                Fields {
                    user: Some(user.as_str()),
                    email: Some(email),
                    ..f
                }
            }
            Event::RecoveryCodeUsed { user, left } => Fields {
                user: Some(user.as_str()),
                left: Some(left as u64),
                ..f
            },
            Event::MailFailed {
                mail,
                kind,
                to,
                attempts,
                error,
            } => Fields {
                email: Some(to),
                mail: Some(mail),
                kind: Some(kind),
                to: Some(to),
                attempts: Some(attempts),
                error: Some(error),
                ..f
            },
            Event::MailRetried { mail, kind, to } => Fields {
                email: Some(to),
                mail: Some(mail),
                kind: Some(kind),
                to: Some(to),
                ..f
            },
        }
    }

    /// Writes the event: one `tracing` event, target `"audit"`, done `by` at `at` (the
    /// caller's `now`), and the same to the stored trail ([`crate::journal`]).
    pub fn emit(&self, by: &Actor<'_>, at: Millis) {
        let f = self.fields();
        let admin = match by {
            Actor::Admin { user, .. } | Actor::OrgAdmin { user, .. } => Some(user.as_str()),
            _ => None,
        };
        let ip = by.ip().map(|ip| ip.to_string());
        crate::journal::record(AuditRecord {
            at,
            event: self.name().to_string(),
            by: by.by().to_string(),
            admin: admin.map(str::to_string),
            user: f.user.map(str::to_string),
            email: f.email.map(str::to_string),
            ip: ip.clone(),
            detail: f.detail(),
        });
        let at = rfc3339(at);
        // One field list for both levels (tracing fixes the level per call site).
        macro_rules! audit_event {
            ($level:ident) => {
                tracing::$level!(
                    target: TARGET,
                    event = self.name(),
                    by = by.by(),
                    admin,
                    user = f.user,
                    email = f.email,
                    address = f.address.as_deref(),
                    ip = ip.as_deref(),
                    at = at.as_str(),
                    session = f.session,
                    sessions = f.sessions.as_deref(),
                    count = f.count,
                    cap = f.cap.as_deref(),
                    until = f.until.as_deref(),
                    max_per_member = f.max_per_member.as_deref(),
                    on_overflow = f.on_overflow,
                    mail = f.mail,
                    kind = f.kind,
                    to = f.to,
                    attempts = f.attempts,
                    error = f.error,
                    org = f.org,
                    role = f.role,
                    campaign = f.campaign,
                    channel = f.channel,
                    via = f.via,
                    scope = f.scope,
                    method = f.method,
                    left = f.left,
                    "{}",
                    self.summary()
                )
            };
        }
        if self.is_warning() {
            audit_event!(warn);
        } else {
            audit_event!(info);
        }
    }
}

/// Appends audit events to a file as JSON lines.
pub struct AuditFile {
    file: Mutex<File>,
}

impl AuditFile {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }
}

/// Collects an event's fields into a JSON object.
struct Json(Map<String, Value>);

impl Visit for Json {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

impl<S: Subscriber> Layer<S> for AuditFile {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut fields = Json(Map::new());
        // When the line is written; `at` is when the event happened, by the flow's clock.
        #[allow(clippy::disallowed_methods)] // the log's own time, not a flow's
        let ts = rfc3339(crate::clock::now_ms());
        fields.0.insert("ts".into(), ts.into());
        event.record(&mut fields);
        let mut line = Value::Object(fields.0).to_string();
        line.push('\n');
        // One write per line, under the lock: lines from several threads never interleave.
        if let Ok(mut file) = self.file.lock() {
            if let Err(e) = file.write_all(line.as_bytes()) {
                eprintln!("vigile: cannot write the audit log: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::{IpAddr, Ipv4Addr};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    /// One of each variant, with the actor its call site uses.
    fn samples<'a>(
        user: &'a UserId,
        admin: &'a UserId,
        sessions: &'a [SessionId],
    ) -> Vec<(Event<'a>, Actor<'a>)> {
        let email = "ann@example.com";
        let session = &sessions[0];
        let web_admin = Actor::Admin {
            user: admin,
            ip: IP,
        };
        let org_admin = Actor::OrgAdmin {
            user: admin,
            ip: IP,
        };
        let org = org_id();
        vec![
            (Event::Signup { user, email }, Actor::Visitor(IP)),
            (Event::SignupExisting { email }, Actor::Visitor(IP)),
            (Event::Activation { user }, Actor::Visitor(IP)),
            (Event::Login { user }, Actor::Visitor(IP)),
            (Event::LoginFailed { email }, Actor::Visitor(IP)),
            (Event::Logout { user }, Actor::Visitor(IP)),
            (Event::AccountLocked { user }, Actor::System(Some(IP))),
            (Event::DeviceLocked { user }, Actor::System(Some(IP))),
            (
                Event::IpBlocked {
                    address: IP,
                    until: 1_700_000_000_000,
                },
                Actor::System(Some(IP)),
            ),
            (Event::PasswordResetRequested { user }, Actor::Visitor(IP)),
            (Event::PasswordReset { user, ended: 2 }, Actor::Visitor(IP)),
            (Event::DeviceOverflow { email }, Actor::Visitor(IP)),
            (Event::DeviceDenied { email }, Actor::Visitor(IP)),
            (
                Event::DeviceEvicted { user, sessions },
                Actor::System(Some(IP)),
            ),
            (Event::DeviceReplaced { user, sessions }, Actor::Visitor(IP)),
            (Event::DeviceRevoked { user, session }, Actor::Visitor(IP)),
            (Event::DevicesRevoked { user, count: 1 }, Actor::Visitor(IP)),
            (Event::Unlock { email, cleared: 3 }, web_admin),
            (
                Event::MemberCapChanged {
                    user,
                    email,
                    cap: Some(2),
                },
                Actor::Cli,
            ),
            (
                Event::SessionRevoked {
                    user,
                    email,
                    session,
                },
                web_admin,
            ),
            (
                Event::SessionsRevoked {
                    user,
                    email,
                    count: 2,
                },
                Actor::Cli,
            ),
            (
                Event::SettingsChanged {
                    max_per_member: Some(3),
                    on_overflow: None,
                },
                web_admin,
            ),
            (Event::IpUnblock { address: IP }, Actor::Cli),
            (
                Event::MailFailed {
                    mail: "m1",
                    kind: "activation",
                    to: email,
                    attempts: 1,
                    error: "550 no such user",
                },
                Actor::System(None),
            ),
            (
                Event::OrgRegistered { org, user, email },
                Actor::Visitor(IP),
            ),
            (Event::OrgInvited { org, email }, org_admin),
            (Event::OrgInviteCancelled { org, email }, org_admin),
            (Event::OrgJoined { org, user, email }, Actor::Visitor(IP)),
            (
                Event::OrgRoleChanged {
                    org,
                    user,
                    role: "org-admin",
                },
                org_admin,
            ),
            (Event::OrgTransferred { org, user }, org_admin),
            (Event::OrgMemberRemoved { org, user, email }, org_admin),
            (Event::OrgProfileUpdated { org }, org_admin),
            (Event::OrgTermsChanged { org }, Actor::Cli),
            (
                Event::CampaignStarted {
                    campaign: "c-1",
                    channels: "email,mobile",
                    scope: "all",
                    count: 12,
                },
                Actor::Cli,
            ),
            (
                Event::ContactConfirmed {
                    user,
                    channel: "mobile",
                    via: "code",
                },
                Actor::Visitor(IP),
            ),
            (
                Event::ContactChanged {
                    user,
                    channel: "email",
                },
                Actor::Visitor(IP),
            ),
            (
                Event::SecondFactorEnrolled {
                    user,
                    method: "totp",
                },
                Actor::Visitor(IP),
            ),
            (
                Event::SecondFactorRemoved {
                    user,
                    method: "webauthn",
                },
                Actor::Visitor(IP),
            ),
            (
                Event::SecondFactorPassed {
                    user,
                    method: "email",
                },
                Actor::Visitor(IP),
            ),
            (
                Event::SecondFactorFailed {
                    user,
                    method: "sms",
                },
                Actor::Visitor(IP),
            ),
            (Event::SecondFactorReset { user, email }, Actor::Cli),
            (
                Event::RecoveryCodeUsed { user, left: 9 },
                Actor::Visitor(IP),
            ),
            (
                Event::PasswordChanged { user, ended: 1 },
                Actor::Visitor(IP),
            ),
            (Event::ProfileChanged { user }, Actor::Visitor(IP)),
            (
                Event::MailRetried {
                    mail: "m2",
                    kind: "activation",
                    to: email,
                },
                web_admin,
            ),
            (Event::MemberCreated { user, email }, web_admin),
            (Event::SignupInvited { email }, Actor::Cli),
        ]
    }

    /// Fails to compile when a variant is added without a sample above.
    fn variant(e: &Event<'_>) -> usize {
        match e {
            Event::Signup { .. } => 0,
            Event::SignupExisting { .. } => 1,
            Event::Activation { .. } => 2,
            Event::Login { .. } => 3,
            Event::LoginFailed { .. } => 4,
            Event::Logout { .. } => 5,
            Event::AccountLocked { .. } => 6,
            Event::DeviceLocked { .. } => 7,
            Event::IpBlocked { .. } => 8,
            Event::PasswordResetRequested { .. } => 9,
            Event::PasswordReset { .. } => 10,
            Event::DeviceOverflow { .. } => 11,
            Event::DeviceDenied { .. } => 12,
            Event::DeviceEvicted { .. } => 13,
            Event::DeviceReplaced { .. } => 14,
            Event::DeviceRevoked { .. } => 15,
            Event::DevicesRevoked { .. } => 16,
            Event::Unlock { .. } => 17,
            Event::MemberCapChanged { .. } => 18,
            Event::SessionRevoked { .. } => 19,
            Event::SessionsRevoked { .. } => 20,
            Event::SettingsChanged { .. } => 21,
            Event::IpUnblock { .. } => 22,
            Event::MailFailed { .. } => 23,
            Event::OrgRegistered { .. } => 24,
            Event::OrgInvited { .. } => 25,
            Event::OrgInviteCancelled { .. } => 26,
            Event::OrgJoined { .. } => 27,
            Event::OrgRoleChanged { .. } => 28,
            Event::OrgTransferred { .. } => 29,
            Event::OrgMemberRemoved { .. } => 30,
            Event::OrgProfileUpdated { .. } => 31,
            Event::OrgTermsChanged { .. } => 32,
            Event::CampaignStarted { .. } => 33,
            Event::ContactConfirmed { .. } => 34,
            Event::ContactChanged { .. } => 35,
            Event::SecondFactorEnrolled { .. } => 36,
            Event::SecondFactorRemoved { .. } => 37,
            Event::SecondFactorPassed { .. } => 38,
            Event::SecondFactorFailed { .. } => 39,
            Event::SecondFactorReset { .. } => 40,
            Event::RecoveryCodeUsed { .. } => 41,
            Event::PasswordChanged { .. } => 42,
            Event::ProfileChanged { .. } => 43,
            Event::MailRetried { .. } => 44,
            Event::MemberCreated { .. } => 45,
            Event::SignupInvited { .. } => 46,
        }
    }
    const VARIANTS: usize = 47;

    fn org_id() -> &'static OrgId {
        static ORG: std::sync::LazyLock<OrgId> =
            std::sync::LazyLock::new(|| OrgId::from_string("o-acme"));
        &ORG
    }

    #[test]
    fn every_event_says_what_who_when_where_and_no_secret() {
        let (user, admin) = (UserId::from_string("u-ann"), UserId::from_string("u-boss"));
        let sessions = [SessionId::from_string("s-1"), SessionId::from_string("s-2")];
        let samples = samples(&user, &admin, &sessions);
        let covered: BTreeSet<usize> = samples.iter().map(|(e, _)| variant(e)).collect();
        assert_eq!(covered.len(), VARIANTS, "a variant has no sample");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let layer = AuditFile::open(&path).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        let at = 1_700_000_000_123;
        tracing::subscriber::with_default(subscriber, || {
            for (event, by) in &samples {
                event.emit(by, at);
            }
        });

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Map<String, Value>> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), samples.len());
        let mut names = BTreeSet::new();
        for ((event, _), line) in samples.iter().zip(&lines) {
            // What.
            assert_eq!(line["event"], event.name(), "{line:?}");
            names.insert(event.name());
            // Who did it, and whom it concerns (the site's settings concern everyone).
            let by = line["by"].as_str().unwrap();
            assert!(
                ["visitor", "admin", "org_admin", "cli", "system"].contains(&by),
                "{line:?}"
            );
            assert_eq!(
                by == "admin" || by == "org_admin",
                line.contains_key("admin"),
                "{line:?}"
            );
            let subject = ["user", "email", "address", "org", "campaign"]
                .iter()
                .any(|k| line.contains_key(*k));
            assert!(
                subject || line["event"] == "settings_changed",
                "whom? {line:?}"
            );
            // When: the caller's time; the write time as well.
            assert_eq!(line["at"], "2023-11-14T22:13:20.123Z", "{line:?}");
            assert!(line["ts"].as_str().is_some_and(|t| t.ends_with('Z')));
            // Where: the client's address, unless on the host itself.
            assert!(
                line.contains_key("ip") || by == "cli" || by == "system",
                "from where? {line:?}"
            );
            for key in line.keys() {
                for secret in ["password", "token", "code", "hash", "secret", "key"] {
                    assert!(!key.contains(secret), "{key} in {line:?}");
                }
            }
        }
        assert_eq!(names.len(), VARIANTS, "two variants share a name");
        assert_eq!(names, KINDS.iter().copied().collect(), "KINDS");
        let replaced = &lines[14];
        assert_eq!(replaced["sessions"], "s-1, s-2");
        assert_eq!(lines[21]["on_overflow"], "default");
    }
}
