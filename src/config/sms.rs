//! Checks of `[sms]`, `[contact]` and `[twofactor]`: a provider call that could never be built, or a
//! configuration that must text codes to members with nothing that delivers a text, is
//! refused at start (and by `vigile check-config`), not discovered at a member's login.

use super::{key_err, ConfigError, FactorMethod, FileConfig, SmsTransport};

pub(super) fn check_sms(file: &FileConfig, source: &str) -> Result<(), ConfigError> {
    let err = |key: &str, reason: String| Err(key_err(source, key, reason));
    let sms = &file.sms;
    if sms.retry_max < sms.retry_initial {
        return err(
            "sms.retry_max",
            "must not be shorter than sms.retry_initial".into(),
        );
    }
    if sms.transport == SmsTransport::Http {
        let url = url::Url::parse(sms.http_url.expose()).ok();
        if !url.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()) {
            return err("sms.http_url", "expected an http(s) URL".into());
        }
        if http::Method::from_bytes(sms.http_method.as_bytes()).is_err() {
            return err("sms.http_method", "not an HTTP method".into());
        }
        for (name, value) in &sms.http_headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return err("sms.http_headers", format!("{name}: not a header name"));
            }
            if http::HeaderValue::from_str(value.expose()).is_err() {
                return err("sms.http_headers", format!("{name}: not a header value"));
            }
        }
        if !sms.http_body.contains("{to}") || !sms.http_body.contains("{text}") {
            return err(
                "sms.http_body",
                "the template must hold both {to} and {text}".into(),
            );
        }
    }
    for c in &sms.countries {
        if crate::edge::phone::Region::parse(c).is_none() {
            return err(
                "sms.countries",
                format!("{c}: expected a region code such as \"FR\""),
            );
        }
    }
    if !sms_delivers(file) {
        if file.twofactor.methods.contains(&FactorMethod::Sms) {
            return err(
                "twofactor.methods",
                "\"sms\" needs text messages, but sms.transport = \"log\" delivers none: \
                 set sms.transport = \"http\" (or \"file\"), or remove \"sms\""
                    .into(),
            );
        }
        if sms_needed(file) {
            return err(
                "sms.transport",
                "\"log\" delivers no text message, but contact.require_confirmed with \
                 contact.ask_mobile texts codes to members: set transport = \"http\" (or \"file\")"
                    .into(),
            );
        }
    }
    Ok(())
}

pub(super) fn check_contact(file: &FileConfig, source: &str) -> Result<(), ConfigError> {
    let err = |key: &str, reason: &str| Err(key_err(source, key, reason));
    let c = &file.contact;
    if c.max_tries == 0 {
        return err("contact.max_tries", "must be at least 1");
    }
    if c.max_codes_per_hour == 0 || c.max_codes_per_day < c.max_codes_per_hour {
        return err(
            "contact.max_codes_per_day",
            "max_codes_per_hour must be at least 1 and max_codes_per_day at least as large",
        );
    }
    Ok(())
}

/// `[twofactor]`: roles it knows, a method to enrol when one is required, a usable key.
pub(super) fn check_twofactor(file: &FileConfig, source: &str) -> Result<(), ConfigError> {
    let err = |key: &str, reason: String| Err(key_err(source, key, reason));
    let t = &file.twofactor;
    for role in &t.required_for {
        if !crate::auth::twofactor::ROLES.contains(&role.as_str()) {
            return err(
                "twofactor.required_for",
                format!(
                    "{role}: expected one of {}",
                    crate::auth::twofactor::ROLES.join(", ")
                ),
            );
        }
    }
    if t.methods.is_empty() && !t.required_for.is_empty() {
        return err(
            "twofactor.methods",
            "required_for names roles, but no method is offered to enrol".into(),
        );
    }
    let key = t.encryption_key.expose();
    if !key.is_empty() && crate::auth::twofactor::parse_key(key).is_none() {
        return err(
            "twofactor.encryption_key",
            "expected the base64 of 32 bytes (e.g. `openssl rand -base64 32`)".into(),
        );
    }
    Ok(())
}

/// Whether this configuration texts codes to members on its own (campaigns decide at run
/// time and are refused then).
pub(super) fn sms_needed(file: &FileConfig) -> bool {
    file.contact.require_confirmed && file.contact.ask_mobile
}

/// Whether a text message reaches someone: a provider, files, or (development only) the
/// dev outbox page.
pub(super) fn sms_delivers(file: &FileConfig) -> bool {
    file.sms.transport != SmsTransport::Log || file.server.dev_mode
}
