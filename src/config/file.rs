//! The configuration file as the operator writes it: one struct per TOML section, every
//! key with its default, unknown keys rejected. Nothing here is interpreted beyond
//! types; `super::validate` turns this into the runtime `Config`.
//!
//! `config/vigile.example.toml` documents every key; a test checks it parses to exactly
//! these defaults, so the two cannot drift apart.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::secret::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    pub upstream: UpstreamSection,
    /// `[[route]]`: paths sent to other upstreams than `[upstream]` (first match wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<super::routes::RouteSection>,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub access: AccessSection,
    #[serde(default)]
    pub sessions: SessionsSection,
    #[serde(default)]
    pub lockout: LockoutSection,
    #[serde(default)]
    pub signup: SignupSection,
    #[serde(default)]
    pub password: PasswordSection,
    #[serde(default)]
    pub mail: MailSection,
    #[serde(default)]
    pub sms: SmsSection,
    #[serde(default)]
    pub contact: ContactSection,
    #[serde(default)]
    pub twofactor: TwoFactorSection,
    #[serde(default)]
    pub orgs: OrgsSection,
    #[serde(default)]
    pub site: SiteSection,
    #[serde(default)]
    pub i18n: I18nSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub headers: HeadersSection,
    #[serde(default)]
    pub log: LogSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address the gateway listens on.
    pub listen: String,
    /// PEM certificate chain; with `tls_key`, the gateway terminates TLS (HTTP/2 via ALPN).
    pub tls_cert: Option<String>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<String>,
    /// CIDRs of reverse proxies in front of Vigile whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// Public base URL, used in email links; `https` makes cookies `Secure` and `__Host-`.
    pub public_url: String,
    /// Worker threads for the proxy (0 = one per CPU).
    pub threads: usize,
    /// Enables developer pages such as `/_vigile/dev/mail`. Never in production.
    pub dev_mode: bool,
    /// Seconds a graceful shutdown waits for in-flight requests.
    pub grace_period_seconds: u64,
    /// Longest time a client may take to send a whole request header (and, on a new
    /// connection, to start); past it the connection is closed. Total, not per read.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// An idle connection between two requests (HTTP/1.1 keep-alive, HTTP/2) is closed
    /// after this long.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Open connections allowed from one client address (an IPv6 /64 counts as one);
    /// more are closed at once. `trusted_proxies` are exempt. 0 = unlimited.
    pub max_connections_per_ip: u32,
    /// Allow-list of Host authorities (`host` or `host:port`); when set, a request whose
    /// Host is not listed gets 400. Empty = any valid host.
    pub hosts: Vec<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8000".into(),
            tls_cert: None,
            tls_key: None,
            trusted_proxies: vec![],
            public_url: "http://127.0.0.1:8000".into(),
            threads: 0,
            dev_mode: false,
            grace_period_seconds: 10,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            max_connections_per_ip: 256,
            hosts: vec![],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// The protected application (`http://` or `https://`). Required.
    pub url: String,
    /// How long to wait for a TCP (and TLS) connection to upstream.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for the response head once the request (and its body) went out;
    /// past it the client gets 504. `read_timeout` is its former name.
    #[serde(
        default = "default_first_byte_timeout",
        with = "humantime_serde",
        alias = "read_timeout"
    )]
    pub first_byte_timeout: Duration,
    /// A started response, or a request body being sent, idle this long is closed.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A `text/event-stream` response idle this long is closed; 0 = never.
    #[serde(default = "default_sse_idle_timeout", with = "humantime_serde")]
    pub sse_idle_timeout: Duration,
    /// An upgraded connection (WebSocket) idle this long is closed; 0 = never.
    #[serde(default, with = "humantime_serde")]
    pub websocket_idle_timeout: Duration,
    /// Largest request body forwarded; past it the client gets 413.
    #[serde(default = "default_max_request_body")]
    pub max_request_body: bytesize::ByteSize,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_first_byte_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(5 * 60)
}
fn default_sse_idle_timeout() -> Duration {
    Duration::from_secs(60 * 60)
}
fn default_max_request_body() -> bytesize::ByteSize {
    bytesize::ByteSize::gib(1)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite://PATH` (embedded, one host) or `redis://HOST:PORT/DB` (shared by instances).
    pub url: Secret,
    /// Serve on a Redis whose `maxmemory-policy` evicts keys. Unsafe: evicted sessions
    /// sign members out, evicted counters reset lockouts.
    pub allow_eviction: bool,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            url: Secret::new("sqlite://data/vigile.db"),
            allow_eviction: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessSection {
    /// Paths anyone may reach (glob; `*` within a segment, `**` across segments).
    pub public: Vec<String>,
    /// Paths that need a member session even if a `public` pattern also matches them.
    pub member: Vec<String>,
    /// Paths that need the admin role. Everything else needs a member session.
    pub admin: Vec<String>,
    /// Paths for members of an organisation (any role).
    pub org_member: Vec<String>,
    /// Paths for organisation admins (and super-admins).
    pub org_admin: Vec<String>,
    /// Paths for organisation super-admins only.
    pub org_super_admin: Vec<String>,
    /// Paths that need a session which passed the second factor, on top of their role
    /// rule: a password-only member is asked for it there (step-up), not refused.
    pub twofactor: Vec<String>,
}

impl Default for AccessSection {
    fn default() -> Self {
        Self {
            public: vec![
                "/".into(),
                "/catalog/**".into(),
                "/static/**".into(),
                "/favicon.ico".into(),
            ],
            member: vec![],
            admin: vec!["/admin/**".into()],
            org_member: vec![],
            org_admin: vec![],
            org_super_admin: vec![],
            twofactor: vec![],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnOverflow {
    Choose,
    EvictOldest,
    Deny,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsSection {
    /// Devices a member may keep signed in (0 = unlimited).
    pub max_per_member: u32,
    /// What a login past the cap does: choose | evict-oldest | deny.
    pub on_overflow: OnOverflow,
    /// A session unused this long ends.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session ends this long after login, whatever its activity.
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
    /// Sessions each instance keeps validated in memory (a few hundred bytes each).
    pub cache_size: usize,
}

impl Default for SessionsSection {
    fn default() -> Self {
        Self {
            max_per_member: 3,
            on_overflow: OnOverflow::Choose,
            idle_timeout: Duration::from_secs(14 * 86_400),
            absolute_timeout: Duration::from_secs(30 * 86_400),
            cache_size: 200_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutSection {
    pub account_max_failures: u32,
    pub ip_max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub ip_window: Duration,
    #[serde(with = "humantime_serde")]
    pub ip_block: Duration,
}

impl Default for LockoutSection {
    fn default() -> Self {
        Self {
            account_max_failures: 6,
            ip_max_failures: 20,
            ip_window: Duration::from_secs(600),
            ip_block: Duration::from_secs(900),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignupMode {
    Open,
    Invite,
    Closed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignupSection {
    pub mode: SignupMode,
    #[serde(with = "humantime_serde")]
    pub activation_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub pending_account_ttl: Duration,
    /// How long an admin's invitation (`vigile user invite`) stays usable in invite mode.
    #[serde(with = "humantime_serde")]
    pub invite_ttl: Duration,
    /// Sign-up, activation-resend and forgot-password forms accepted from one IP address
    /// per `ip_window` (0 = no limit); beyond, a 429 page.
    pub max_per_ip: u32,
    #[serde(with = "humantime_serde")]
    pub ip_window: Duration,
}

impl Default for SignupSection {
    fn default() -> Self {
        Self {
            mode: SignupMode::Open,
            activation_ttl: Duration::from_secs(48 * 3600),
            pending_account_ttl: Duration::from_secs(7 * 86_400),
            invite_ttl: Duration::from_secs(30 * 86_400),
            max_per_ip: 10,
            ip_window: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgRegistration {
    Open,
    Closed,
}

/// Companies registering themselves (`/_vigile/register`) and their seats.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrgsSection {
    pub registration: OrgRegistration,
    /// How long the link mailed at step 1 stays usable (steps 2 and 3 need it).
    #[serde(with = "humantime_serde")]
    pub step_link_ttl: Duration,
    /// Members plus pending invitations an organisation may hold, unless a site admin
    /// sets its own.
    pub default_seats: u32,
}

impl Default for OrgsSection {
    fn default() -> Self {
        Self {
            registration: OrgRegistration::Open,
            step_link_ttl: Duration::from_secs(48 * 3600),
            default_seats: 25,
        }
    }
}

/// About the site itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteSection {
    /// The site's name, shown in the page header and in mails (their first line and
    /// subject). Empty: pages say "Members area" / "Espace membres" (the catalogs'
    /// words) and mails name the host of `server.public_url`.
    pub name: String,
    /// Region (ISO 3166 code) in which phone numbers typed without `+country` are read.
    pub phone_region: String,
    /// The address members write to for help: when set, a "Contact us" mailto line is
    /// shown on error, lock, block and password-recovery pages and at the foot of every
    /// mail, and members who cannot recover their account themselves are told to write
    /// there. Checked as an address at load ([`super::Config::support_email`]); empty:
    /// nothing is shown.
    pub support_email: String,
}

impl Default for SiteSection {
    fn default() -> Self {
        Self {
            name: String::new(),
            phone_region: "FR".into(),
            support_email: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordSection {
    pub min_length: usize,
    pub require_upper: bool,
    pub require_digit: bool,
    pub require_symbol: bool,
    /// How long an emailed password-reset link stays valid.
    #[serde(with = "humantime_serde")]
    pub reset_ttl: Duration,
    /// Argon2id memory cost in KiB (OWASP: 19456 = 19 MiB).
    pub argon2_memory_kib: u32,
    /// Argon2id passes (OWASP: 2).
    pub argon2_iterations: u32,
    /// Argon2id lanes (OWASP: 1).
    pub argon2_parallelism: u32,
    /// Hashes computed at once (0 = half the CPUs, at least one), on low-priority threads;
    /// bounds memory and keeps cores free for proxying. The waiting room scales with it
    /// (`auth::hash_queue`: 32 places per thread in each lane).
    pub hash_concurrency: usize,
}

impl Default for PasswordSection {
    fn default() -> Self {
        Self {
            min_length: 10,
            require_upper: true,
            require_digit: true,
            require_symbol: true,
            reset_ttl: Duration::from_secs(3600),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_concurrency: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    Smtp,
    File,
    Log,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSection {
    pub from: String,
    pub transport: MailTransport,
    /// `smtp://`, `smtps://` or `smtp://...?tls=required`; may carry credentials (redacted).
    pub smtp_url: Secret,
    /// Directory for the `file` transport.
    pub file_dir: String,
    /// Addresses told about security events (device overflow).
    pub admin_notify: Vec<String>,
    /// Bound on one SMTP exchange (connect, send, quit).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Delay before the first retry of a mail that could not be sent; doubles at each
    /// failure up to `retry_max`. Mails wait in the store meanwhile: none is dropped.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Mails the public forms (sign-up, resend, forgot password) may trigger to one
    /// address per `address_window`; beyond, the form answers as usual but sends nothing.
    pub max_per_address: u32,
    #[serde(with = "humantime_serde")]
    pub address_window: Duration,
}

impl Default for MailSection {
    fn default() -> Self {
        Self {
            from: "Vigile <no-reply@example.com>".into(),
            transport: MailTransport::Smtp,
            smtp_url: Secret::new("smtp://127.0.0.1:25"),
            file_dir: "data/mail".into(),
            admin_notify: vec![],
            timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(900),
            max_per_address: 5,
            address_window: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsTransport {
    /// Any provider's HTTP API, through `http_method`, `http_url`, `http_headers`, `http_body`.
    Http,
    /// One file per text message in `file_dir` (development, tests).
    File,
    /// A log line without the text (codes are secret): no message reaches anyone.
    Log,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsSection {
    pub transport: SmsTransport,
    /// Provider endpoint; may carry a token (redacted).
    pub http_url: Secret,
    pub http_method: String,
    /// Extra request headers (an `Authorization` token, say); values redacted.
    pub http_headers: std::collections::BTreeMap<String, Secret>,
    /// Request body; `{to}` (E.164) and `{text}` are replaced by JSON-escaped values.
    pub http_body: String,
    /// Directory of the file transport.
    pub file_dir: String,
    /// Bound on one provider call.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// First retry delay after a failed call; doubles up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Countries (ISO 3166 codes) whose numbers may be texted; empty: any. Texts cost
    /// money per destination: a site whose members live in a few countries lists them, so
    /// the contact form cannot be used to pump texts to premium ranges elsewhere.
    pub countries: Vec<String>,
    /// Texts to one number per hour, whoever asks (0 = unlimited).
    pub max_per_number: u32,
    /// Texts the whole site sends per hour (0 = unlimited): a ceiling on the bill.
    pub max_per_hour: u32,
}

impl Default for SmsSection {
    fn default() -> Self {
        Self {
            transport: SmsTransport::Log,
            http_url: Secret::new("http://127.0.0.1:9000/send"),
            http_method: "POST".into(),
            http_headers: Default::default(),
            http_body: r#"{"to":"{to}","text":"{text}"}"#.into(),
            file_dir: "data/sms".into(),
            timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(900),
            countries: Vec::new(),
            max_per_number: 5,
            max_per_hour: 500,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContactSection {
    /// Ask every member at each login until their contact details are confirmed.
    pub require_confirmed: bool,
    /// The mobile number is part of what is asked and confirmed (else the email alone).
    pub ask_mobile: bool,
    /// How long a mailed or texted confirmation code (and the mailed link) stays valid.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// Wrong codes accepted per code before it is spent.
    pub max_tries: u32,
    /// Codes one member may be sent per channel in an hour...
    pub max_codes_per_hour: u32,
    /// ...and in a day.
    pub max_codes_per_day: u32,
}

impl Default for ContactSection {
    fn default() -> Self {
        Self {
            require_confirmed: false,
            ask_mobile: true,
            code_ttl: Duration::from_secs(600),
            max_tries: 5,
            max_codes_per_hour: 3,
            max_codes_per_day: 10,
        }
    }
}

/// A second-factor method (`[twofactor] methods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactorMethod {
    Totp,
    Webauthn,
    Email,
    Sms,
}

impl FactorMethod {
    pub const ALL: [FactorMethod; 4] = [
        FactorMethod::Totp,
        FactorMethod::Webauthn,
        FactorMethod::Email,
        FactorMethod::Sms,
    ];

    /// Its name in the configuration, forms, metrics, audit and catalog keys.
    pub fn as_str(self) -> &'static str {
        match self {
            FactorMethod::Totp => "totp",
            FactorMethod::Webauthn => "webauthn",
            FactorMethod::Email => "email",
            FactorMethod::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwoFactorSection {
    /// Roles that must pass a second factor at every login ("member", "admin",
    /// "org-admin", "org-super-admin", or "all"); they enrol one at their next login.
    pub required_for: Vec<String>,
    /// Methods members may enrol. "sms" needs an `[sms]` transport that delivers.
    pub methods: Vec<FactorMethod>,
    /// A device that passed the second factor with "trust this device" skips it this
    /// long; "0s" never trusts.
    #[serde(with = "humantime_serde")]
    pub trusted_device: Duration,
    /// Issuer shown in authenticator apps; empty = `site.name`.
    pub issuer: String,
    /// Base64 of 32 bytes sealing TOTP seeds at rest; empty = derived from the secret
    /// every instance shares through the store.
    pub encryption_key: Secret,
}

impl Default for TwoFactorSection {
    fn default() -> Self {
        Self {
            required_for: Vec::new(),
            methods: vec![
                FactorMethod::Totp,
                FactorMethod::Webauthn,
                FactorMethod::Email,
            ],
            trusted_device: Duration::from_secs(30 * 86_400),
            issuer: String::new(),
            encryption_key: Secret::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct I18nSection {
    /// Language used when neither the `vigile_lang` cookie nor `Accept-Language` decide.
    pub default: String,
}

impl Default for I18nSection {
    fn default() -> Self {
        Self {
            default: "fr".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `/metrics`, `/healthz`, `/readyz`. Keep it off the public interface.
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// Standard error: `text` (one readable line per event) or `json` (one object per line).
    pub format: LogFormat,
    /// Also append every security event (the audit log) as JSON lines to this file; empty:
    /// audit events go to standard error only, with the other logs.
    pub audit_file: String,
    /// How long the store keeps security events for the console's Security events.
    #[serde(with = "humantime_serde")]
    pub audit_keep: Duration,
    /// At most this many events kept in the store (the oldest go first); 0: none stored,
    /// the console's Security events and charts stay empty.
    pub audit_keep_events: u64,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            audit_file: String::new(),
            audit_keep: Duration::from_secs(90 * 86_400),
            audit_keep_events: 200_000,
        }
    }
}

/// Names of the identity headers sent upstream (Authelia-compatible defaults).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersSection {
    pub user: String,
    /// What the user header carries.
    pub user_value: UserValue,
    pub email: String,
    pub name: String,
    pub groups: String,
    pub org: String,
    pub session: String,
    /// How the member signed in: `password` or `2fa`.
    pub auth_level: String,
}

/// `headers.user_value`: the member's stable id, their email, or their login name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserValue {
    Id,
    Email,
    /// The login name; members sign in with their email address, so it is the email.
    Username,
}

impl Default for HeadersSection {
    fn default() -> Self {
        Self {
            user: "Remote-User".into(),
            user_value: UserValue::Id,
            email: "Remote-Email".into(),
            name: "Remote-Name".into(),
            groups: "Remote-Groups".into(),
            org: "Remote-Org".into(),
            session: "Remote-Session".into(),
            auth_level: "Remote-Auth-Level".into(),
        }
    }
}
