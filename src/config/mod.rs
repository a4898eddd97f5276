//! Configuration: one TOML file, `VIGILE_SECTION__KEY` environment overrides, unknown keys
//! rejected, then validated once into the runtime [`Config`] the rest of Vigile reads.
//!
//! Errors name the file, the key and the reason, because an operator reads them at 3 a.m.
//! Secrets are wrapped in [`Secret`] so they can never be printed by accident.

mod file;
pub mod reload;
mod routes;
mod secret;
mod sms;

use std::path::{Path, PathBuf};

pub use file::*;
pub use routes::{
    parse_upstream, route_for, upstream_target, RouteAccessSection, RouteSection, StripPrefix,
    UpstreamRoute, UpstreamTarget,
};
pub use secret::Secret;

use crate::access::AccessRules;
use crate::i18n::Lang;
use crate::store::StoreUrl;

/// The validated configuration. Sections keep the operator's types; derived values that
/// every request needs (compiled globs, parsed URLs) are computed here once.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: FileConfig,
    pub source: String,
    pub store_url: StoreUrl,
    pub access: AccessRules,
    pub upstream: UpstreamTarget,
    /// `[[route]]`, in order (the first match wins).
    pub routes: Vec<UpstreamRoute>,
    pub public_url: url::Url,
    /// Cookies get `Secure` and the `__Host-` prefix.
    pub secure_cookies: bool,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `server.hosts`, validated; empty allows any valid Host.
    pub allowed_hosts: Vec<crate::edge::host::Authority>,
    pub default_lang: Lang,
    /// `site.phone_region`: where phone numbers typed without `+country` are read.
    pub phone_region: crate::edge::phone::Region,
    /// A text message reaches someone (`sms.transport` is not `log`, or `dev_mode`).
    pub sms_delivers: bool,
    /// `site.support_email`, parsed (the one check of it); `None` when empty.
    pub support_email: Option<crate::edge::email::Email>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}: {reason}")]
    Parse { file: String, reason: String },
    #[error("{file}: key `{key}`: {reason}")]
    Key {
        file: String,
        key: String,
        reason: String,
    },
    #[error("environment variable {var}: {reason}")]
    Env { var: String, reason: String },
}

/// Reads `path`, applies environment overrides from `env`, validates.
pub fn load(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    from_str(&text, &file, env)
}

/// Parses configuration text; `source` names it in errors.
pub fn from_str(
    text: &str,
    source: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            file: source.to_string(),
            reason: e.to_string().trim_end().to_string(),
        })?;
    let overridden = apply_env(&mut table, env)?;
    let file: FileConfig =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            let origin = overridden
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, var)| format!(" (set by {var})"))
                .unwrap_or_default();
            ConfigError::Key {
                file: source.to_string(),
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                reason: format!("{}{origin}", e.into_inner()),
            }
        })?;
    validate(file, source)
}

/// `VIGILE_SECTION__KEY=value` sets `[section] key`. The value is read as a TOML value
/// when it parses as one (`5`, `true`, `["/a"]`), else as a string. Returns which keys
/// came from the environment, so errors can say so.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = vec![];
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix("VIGILE_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue; // VIGILE_CONFIG, VIGILE_LOG: not overrides
        };
        if section.is_empty() || key.is_empty() {
            return Err(ConfigError::Env {
                var,
                reason: "expected VIGILE_SECTION__KEY".into(),
            });
        }
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            return Err(ConfigError::Env {
                var,
                reason: format!("`{section}` is not a section"),
            });
        };
        section_table.insert(key.clone(), value);
        applied.push((format!("{section}.{key}"), var));
    }
    Ok(applied)
}

fn key_err(file: &str, key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        file: file.into(),
        key: key.into(),
        reason: reason.into(),
    }
}

fn validate(file: FileConfig, source: &str) -> Result<Config, ConfigError> {
    let err = |key: &str, reason: String| key_err(source, key, reason);
    check_server(&file, source)?;
    check_durations(&file, source)?;
    check_mail(&file.mail, source)?;
    sms::check_sms(&file, source)?;
    sms::check_contact(&file, source)?;
    sms::check_twofactor(&file, source)?;
    check_password(&file.password, source)?;

    check_headers(&file.headers, source)?;

    let public_url = url::Url::parse(&file.server.public_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| err("server.public_url", "expected an http(s) URL".into()))?;
    if public_url.path() != "/" {
        return Err(err(
            "server.public_url",
            "public_url: a path is not supported; Vigile's pages live at /_vigile/ on the \
             site's host"
                .into(),
        ));
    }
    let trusted_proxies = file
        .server
        .trusted_proxies
        .iter()
        .map(|c| {
            parse_cidr(c).ok_or_else(|| err("server.trusted_proxies", format!("not a CIDR: {c}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_hosts = file
        .server
        .hosts
        .iter()
        .map(|h| {
            crate::edge::host::Authority::parse(h)
                .map_err(|_| err("server.hosts", format!("not a host[:port]: {h}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let upstream = parse_upstream(&file.upstream.url).map_err(|r| err("upstream.url", r))?;
    let routes = routes::check_routes(&file, source)?;
    let store_url = StoreUrl::parse(file.store.url.expose()).map_err(|r| err("store.url", r))?;
    let access =
        AccessRules::from_section(&file.access).map_err(|(k, r)| err(&format!("access.{k}"), r))?;
    let default_lang = Lang::parse(&file.i18n.default)
        .ok_or_else(|| err("i18n.default", "expected \"fr\" or \"en\"".into()))?;
    let phone_region =
        crate::edge::phone::Region::parse(&file.site.phone_region).ok_or_else(|| {
            err(
                "site.phone_region",
                "expected a region code such as \"FR\", \"BE\" or \"GB\"".into(),
            )
        })?;

    let support_email = match file.site.support_email.trim() {
        "" => None,
        address => Some(crate::edge::email::Email::parse(address).map_err(|e| {
            err(
                "site.support_email",
                format!("not a mail address: {address}: {e}"),
            )
        })?),
    };
    if file.site.name.chars().any(char::is_control) || file.site.name.chars().count() > 100 {
        return Err(err(
            "site.name",
            "at most 100 characters, without line breaks or control characters".into(),
        ));
    }

    let secure_cookies = public_url.scheme() == "https" || file.server.tls_cert.is_some();
    let sms_delivers = sms::sms_delivers(&file);
    Ok(Config {
        file,
        source: source.to_string(),
        store_url,
        access,
        upstream,
        routes,
        public_url,
        secure_cookies,
        trusted_proxies,
        allowed_hosts,
        default_lang,
        phone_region,
        sms_delivers,
        support_email,
    })
}

/// Listen addresses and the TLS pair.
fn check_server(file: &FileConfig, source: &str) -> Result<(), ConfigError> {
    let err = |key: &str, reason: &str| Err(key_err(source, key, reason));
    if file.server.listen.parse::<std::net::SocketAddr>().is_err() {
        return err("server.listen", "expected IP:PORT, e.g. 0.0.0.0:8000");
    }
    if file.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
        return err("metrics.listen", "expected IP:PORT, e.g. 127.0.0.1:9464");
    }
    match (&file.server.tls_cert, &file.server.tls_key) {
        (Some(_), None) | (None, Some(_)) => err(
            "server.tls_cert",
            "tls_cert and tls_key must be set together",
        ),
        (Some(cert), Some(key)) => {
            for (k, p) in [("server.tls_cert", cert), ("server.tls_key", key)] {
                if !Path::new(p).is_file() {
                    return Err(key_err(source, k, format!("file not found: {p}")));
                }
            }
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

/// Every duration that a zero would turn into "never" or "at once".
fn check_durations(file: &FileConfig, source: &str) -> Result<(), ConfigError> {
    let s = &file.sessions;
    if s.idle_timeout.is_zero() || s.absolute_timeout.is_zero() {
        return Err(key_err(
            source,
            "sessions.idle_timeout",
            "timeouts must be positive",
        ));
    }
    for (key, d) in [
        ("server.header_timeout", file.server.header_timeout),
        ("server.keepalive_timeout", file.server.keepalive_timeout),
        ("signup.activation_ttl", file.signup.activation_ttl),
        (
            "signup.pending_account_ttl",
            file.signup.pending_account_ttl,
        ),
        ("signup.invite_ttl", file.signup.invite_ttl),
        ("signup.ip_window", file.signup.ip_window),
        ("password.reset_ttl", file.password.reset_ttl),
        ("mail.timeout", file.mail.timeout),
        ("mail.retry_initial", file.mail.retry_initial),
        ("mail.address_window", file.mail.address_window),
        ("sms.timeout", file.sms.timeout),
        ("sms.retry_initial", file.sms.retry_initial),
        ("contact.code_ttl", file.contact.code_ttl),
    ] {
        if d.is_zero() {
            return Err(key_err(source, key, "must be positive"));
        }
    }
    // Kept in Redis as a TTL in milliseconds: a day to ten years.
    let keep = file.log.audit_keep;
    let day = std::time::Duration::from_secs(86_400);
    if keep < day || keep > day * 3660 {
        return Err(key_err(
            source,
            "log.audit_keep",
            "must be between 1 day and 10 years",
        ));
    }
    Ok(())
}

fn check_mail(mail: &file::MailSection, source: &str) -> Result<(), ConfigError> {
    let err = |key: &str, reason: String| key_err(source, key, reason);
    if mail.retry_max < mail.retry_initial {
        return Err(err(
            "mail.retry_max",
            "must not be shorter than mail.retry_initial".into(),
        ));
    }
    mail.from
        .parse::<lettre::message::Mailbox>()
        .map_err(|e| err("mail.from", format!("not a mail address: {e}")))?;
    if mail.transport == MailTransport::Smtp {
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(mail.smtp_url.expose())
            .map_err(|e| err("mail.smtp_url", format!("invalid SMTP URL: {e}")))?;
    }
    for a in &mail.admin_notify {
        a.parse::<lettre::Address>()
            .map_err(|e| err("mail.admin_notify", format!("{a}: {e}")))?;
    }
    Ok(())
}

fn check_password(p: &file::PasswordSection, source: &str) -> Result<(), ConfigError> {
    if p.min_length == 0 || p.min_length > 256 {
        return Err(key_err(source, "password.min_length", "expected 1..=256"));
    }
    argon2::Params::new(
        p.argon2_memory_kib,
        p.argon2_iterations,
        p.argon2_parallelism,
        None,
    )
    .map_err(|e| {
        key_err(
            source,
            "password.argon2_memory_kib",
            format!("invalid argon2 parameters: {e}"),
        )
    })?;
    Ok(())
}

/// Each identity header name is valid, is no header that frames the request or that Vigile
/// sets itself, and is no other identity header in another spelling: the identity headers
/// go out after the request's own (see `proxy::headers`), so a name shared with one of
/// those would send two values, or a framing header Pingora does not know of.
fn check_headers(h: &HeadersSection, source: &str) -> Result<(), ConfigError> {
    use crate::edge::header_name::{fold, not_for_identity};
    let mut seen: Vec<(String, &str)> = Vec::new();
    for (key, name) in [
        ("headers.user", &h.user),
        ("headers.email", &h.email),
        ("headers.name", &h.name),
        ("headers.groups", &h.groups),
        ("headers.org", &h.org),
        ("headers.session", &h.session),
        ("headers.auth_level", &h.auth_level),
    ] {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(key_err(
                source,
                key,
                format!("not a valid header name: {name}"),
            ));
        }
        let folded = fold(name);
        if not_for_identity(&folded) {
            return Err(key_err(
                source,
                key,
                format!(
                    "{name} frames the request or is set by Vigile itself; choose another name"
                ),
            ));
        }
        if let Some((_, other)) = seen.iter().find(|(f, _)| *f == folded) {
            return Err(key_err(
                source,
                key,
                format!("{name} is the same header as {other} (names are compared as applications read them: any case, _ or . for -)"),
            ));
        }
        seen.push((folded, key));
    }
    Ok(())
}

fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

impl Config {
    /// The request-target the upstream receives for `target` when the request matched
    /// `route` (`None`: `[upstream]`): stripped and prefixed as configured. `None` when
    /// it is the canonical target unchanged, the common case, which allocates nothing.
    pub fn upstream_target(
        &self,
        route: Option<usize>,
        target: &crate::edge::path::Target,
    ) -> Option<String> {
        match route.and_then(|i| self.routes.get(i)) {
            Some(r) => r.rewrite(target),
            None => upstream_target(None, &self.upstream.prefix, target),
        }
    }

    /// The effective configuration as TOML, secrets redacted (for `vigile check-config`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(&self.file).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// "sqlite" or "redis", for start-up logs (never the URL: it may hold a password).
    pub fn store_url_kind(&self) -> &'static str {
        match self.store_url {
            StoreUrl::Sqlite(_) => "sqlite",
            StoreUrl::Redis(_) => "redis",
        }
    }

    /// Default config file path: `$VIGILE_CONFIG` or `config/vigile.toml`.
    pub fn default_path() -> PathBuf {
        std::env::var_os("VIGILE_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config/vigile.toml"))
    }
}

#[cfg(test)]
mod tests;
