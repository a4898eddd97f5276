//! Passkeys (WebAuthn) as a second factor: the registration and authentication ceremonies
//! of `webauthn-rs`, behind an interface of strings so the store and the pages only ever
//! see JSON.
//!
//! A ceremony is two HTTP requests. The first ([`Passkeys::start_registration`],
//! [`Passkeys::start_authentication`]) gives the options the page hands to
//! `navigator.credentials.create` / `.get` (rendered into
//! `<script type="application/json" id="webauthn-options">`, read by
//! `/_vigile/static/passkeys.js`) and a state the server keeps (in the store, never in the
//! browser: it holds the challenge). The second (`finish_*`) takes the browser's answer
//! (the form field `response`) with that state, and verifies it: challenge, origin,
//! relying-party id, signature, user verification, counter.
//!
//! The relying party is `server.public_url`: its host is the RP id, its origin the only
//! origin accepted. Browsers offer WebAuthn only to a domain name (never an IP address),
//! over https, or over http on `localhost` ([`Passkeys::new`] says so at start).
//!
//! Nothing here is secret in the store's sense (a passkey is a public key), but the
//! ceremony state must stay server-side and be used once: the caller deletes it when the
//! second request comes, whatever the outcome.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder, WebauthnError,
};

pub use webauthn_rs::prelude::Uuid;

/// The largest browser answer accepted (`response` form field), in bytes. A real one is
/// about 1 KiB (registration) or 0.5 KiB (authentication).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024;

/// The largest ceremony state read back from the store, in bytes (ours are a few KiB: the
/// authentication state lists the member's passkeys).
const MAX_STATE_BYTES: usize = 256 * 1024;

/// The member's WebAuthn user handle: 16 bytes derived from their account id (the first
/// half of its SHA-256), stable for the life of the account and revealing nothing about
/// it. Authenticators keep it beside the passkey.
pub fn user_handle(member_id: &str) -> Uuid {
    let digest = Sha256::digest(member_id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// The site as a WebAuthn relying party. Built once at start.
#[derive(Clone)]
pub struct Passkeys {
    webauthn: Webauthn,
    rp_id: String,
}

impl fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passkeys")
            .field("rp_id", &self.rp_id)
            .finish_non_exhaustive()
    }
}

/// What the store keeps per passkey: the credential (id, public key, counter, backup
/// state). Serialisable into the factor's JSON document.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredPasskey {
    passkey: Passkey,
}

impl StoredPasskey {
    /// The credential id, base64url without padding (as the browser's `rawId`). Unique
    /// per authenticator credential: a registration should be refused if another account
    /// already holds it.
    pub fn id(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.passkey.cred_id())
    }
}

impl fmt::Debug for StoredPasskey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredPasskey")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// Why a ceremony did not complete. The text names no secret and no input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyError {
    /// The browser's answer is not a WebAuthn credential (not JSON, wrong shape, bad
    /// base64 or CBOR) or is larger than [`MAX_RESPONSE_BYTES`].
    #[error("the passkey response is malformed")]
    Malformed,
    /// The answer is well formed but does not verify: another challenge, origin or
    /// relying party, a bad signature, no user verification, a passkey this member
    /// already has (registration) or does not have (authentication), a counter that went
    /// backwards (a cloned authenticator).
    #[error("the passkey response was rejected")]
    Rejected,
    /// The kept ceremony state cannot be read (corrupt, or from another version).
    #[error("the passkey ceremony state is unreadable")]
    BadState,
    /// Authentication asked for a member who has no passkey.
    #[error("no passkey to authenticate with")]
    NoPasskey,
    /// The options could not be made (the user handle or names were refused).
    #[error("the passkey ceremony could not start")]
    Start,
}

impl Passkeys {
    /// The relying party for `public_url` (`server.public_url`): RP id = its host,
    /// accepted origin = its origin. `site_name` is what authenticators show (the RP id
    /// when empty). Refuses what browsers refuse: an IP address, or http anywhere but on
    /// `localhost`.
    pub fn new(public_url: &str, site_name: &str) -> Result<Passkeys, String> {
        let url = Url::parse(public_url)
            .map_err(|e| format!("server.public_url {public_url:?} is not a URL: {e}"))?;
        let scheme = url.scheme();
        if scheme != "https" && scheme != "http" {
            return Err(format!(
                "server.public_url {public_url:?}: passkeys need an https:// URL"
            ));
        }
        let rp_id = match url.host() {
            Some(url::Host::Domain(domain)) => domain.trim_end_matches('.').to_string(),
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {
                return Err(format!(
                    "server.public_url {public_url:?} is an IP address: browsers offer \
                     passkeys (WebAuthn) only to a domain name, which becomes the \
                     relying-party id; use the site's name (http://localhost:PORT when \
                     testing on this machine)"
                ))
            }
            None => return Err(format!("server.public_url {public_url:?} has no host")),
        };
        let localhost = rp_id == "localhost" || rp_id.ends_with(".localhost");
        if scheme == "http" && !localhost {
            return Err(format!(
                "server.public_url {public_url:?} is http: browsers offer passkeys \
                 (WebAuthn) only on https:// pages, or on http://localhost"
            ));
        }
        let origin = Url::parse(&url.origin().ascii_serialization())
            .map_err(|e| format!("server.public_url {public_url:?}: no origin: {e}"))?;
        let name = if site_name.trim().is_empty() {
            rp_id.as_str()
        } else {
            site_name
        };
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .map_err(|e| format!("server.public_url {public_url:?}: WebAuthn refuses it: {e}"))?
            .rp_name(name)
            .build()
            .map_err(|e| format!("server.public_url {public_url:?}: WebAuthn refuses it: {e}"))?;
        Ok(Passkeys {
            webauthn,
            rp_id: rp_id.clone(),
        })
    }

    /// The relying-party id (the host of `server.public_url`).
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// Starts registering a passkey for a member: the options for
    /// `navigator.credentials.create` (JSON `{"publicKey": …}`, safe to put as is inside a
    /// `<script type="application/json">` element: `<`, `>` and `&` are escaped) and the
    /// state to keep until [`Passkeys::finish_registration`]. `existing` (the member's
    /// passkeys) are excluded: an authenticator that holds one refuses to make another.
    pub fn start_registration(
        &self,
        user_handle: Uuid,
        email: &str,
        display_name: &str,
        existing: &[StoredPasskey],
    ) -> Result<(String, String), PasskeyError> {
        let display = if display_name.trim().is_empty() {
            email
        } else {
            display_name
        };
        let exclude = existing
            .iter()
            .map(|k| k.passkey.cred_id().clone())
            .collect();
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user_handle, email, display, Some(exclude))
            .map_err(|e| start_error("registration", e))?;
        Ok((script_json(&options)?, state_json(&state)?))
    }

    /// Verifies the browser's answer to [`Passkeys::start_registration`] (`state_json`
    /// its state) and returns the new passkey to store.
    pub fn finish_registration(
        &self,
        response_json: &str,
        state_json: &str,
    ) -> Result<StoredPasskey, PasskeyError> {
        let response: RegisterPublicKeyCredential = parse_response(response_json)?;
        let state: PasskeyRegistration = parse_state(state_json)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&response, &state)
            .map_err(|e| finish_error("registration", e))?;
        Ok(StoredPasskey { passkey })
    }

    /// Starts authenticating with one of `keys` (the member's passkeys): the options for
    /// `navigator.credentials.get` (JSON `{"publicKey": …}`, script-safe as above) and the
    /// state to keep until [`Passkeys::finish_authentication`].
    pub fn start_authentication(
        &self,
        keys: &[StoredPasskey],
    ) -> Result<(String, String), PasskeyError> {
        if keys.is_empty() {
            return Err(PasskeyError::NoPasskey);
        }
        let passkeys: Vec<Passkey> = keys.iter().map(|k| k.passkey.clone()).collect();
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|e| start_error("authentication", e))?;
        Ok((script_json(&options)?, state_json(&state)?))
    }

    /// Verifies the browser's answer to [`Passkeys::start_authentication`] against
    /// `state_json`, updates the passkey used in `keys` (its counter and backup state) and
    /// returns its index: the caller stores `keys` back after a success.
    pub fn finish_authentication(
        &self,
        response_json: &str,
        state_json: &str,
        keys: &mut [StoredPasskey],
    ) -> Result<usize, PasskeyError> {
        let response: PublicKeyCredential = parse_response(response_json)?;
        let state: PasskeyAuthentication = parse_state(state_json)?;
        let result = self
            .webauthn
            .finish_passkey_authentication(&response, &state)
            .map_err(|e| finish_error("authentication", e))?;
        // The state only accepts the passkeys it was started with; one the member removed
        // since then is no longer in `keys`.
        let index = keys
            .iter()
            .position(|k| k.passkey.cred_id() == result.cred_id())
            .ok_or(PasskeyError::Rejected)?;
        keys[index].passkey.update_credential(&result);
        Ok(index)
    }
}

fn parse_response<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, PasskeyError> {
    if json.len() > MAX_RESPONSE_BYTES {
        return Err(PasskeyError::Malformed);
    }
    serde_json::from_str(json).map_err(|_| PasskeyError::Malformed)
}

fn parse_state<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, PasskeyError> {
    if json.len() > MAX_STATE_BYTES {
        return Err(PasskeyError::BadState);
    }
    serde_json::from_str(json).map_err(|_| PasskeyError::BadState)
}

fn state_json<T: Serialize>(state: &T) -> Result<String, PasskeyError> {
    serde_json::to_string(state).map_err(|_| PasskeyError::Start)
}

/// JSON that can stand inside a `<script>` element: `<`, `>` and `&` (which only occur
/// inside strings) written as `\u003c`, `\u003e`, `\u0026`, so a display name cannot
/// close the element or open a comment.
fn script_json<T: Serialize>(value: &T) -> Result<String, PasskeyError> {
    let json = serde_json::to_string(value).map_err(|_| PasskeyError::Start)?;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn start_error(ceremony: &str, e: WebauthnError) -> PasskeyError {
    tracing::warn!(ceremony, error = %e, "passkey ceremony could not start");
    PasskeyError::Start
}

/// Parsing failures (the answer is not what a browser sends) apart from verification
/// failures; the library's reason goes to the debug log, never to the page.
fn finish_error(ceremony: &str, e: WebauthnError) -> PasskeyError {
    tracing::debug!(ceremony, error = %e, "passkey response refused");
    match e {
        WebauthnError::ParseBase64Failure(_)
        | WebauthnError::ParseCBORFailure(_)
        | WebauthnError::ParseJSONFailure(_)
        | WebauthnError::ParseNOMFailure
        | WebauthnError::ParseInsufficientBytesAvailable => PasskeyError::Malformed,
        _ => PasskeyError::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Passkeys {
        Passkeys::new("http://localhost:8443", "Cours").unwrap()
    }

    fn options(json: &str) -> serde_json::Value {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn https_host_is_the_relying_party() {
        let p = Passkeys::new("https://courses.example.com/", "Courses").unwrap();
        assert_eq!(p.rp_id(), "courses.example.com");
        let (opts, _) = p
            .start_registration(user_handle("u1"), "ann@example.com", "Ann", &[])
            .unwrap();
        let o = options(&opts);
        assert_eq!(o["publicKey"]["rp"]["id"], "courses.example.com");
        assert_eq!(o["publicKey"]["rp"]["name"], "Courses");
        // A path or a port in public_url does not change the RP id.
        let p = Passkeys::new("https://Courses.Example.com:8443/app/", "").unwrap();
        assert_eq!(p.rp_id(), "courses.example.com");
    }

    #[test]
    fn http_localhost_with_a_port_is_accepted() {
        let p = Passkeys::new("http://localhost:38211", "").unwrap();
        assert_eq!(p.rp_id(), "localhost");
        let (opts, _) = p
            .start_registration(user_handle("u1"), "ann@example.com", "", &[])
            .unwrap();
        let o = options(&opts);
        // An empty site name falls back to the RP id, an empty display name to the email.
        assert_eq!(o["publicKey"]["rp"]["name"], "localhost");
        assert_eq!(o["publicKey"]["user"]["displayName"], "ann@example.com");
        assert!(Passkeys::new("http://app.localhost:8080", "").is_ok());
    }

    #[test]
    fn an_ip_address_is_refused_and_the_error_says_why() {
        for url in [
            "http://127.0.0.1:8000",
            "https://10.1.2.3",
            "http://[::1]:8000",
        ] {
            let err = Passkeys::new(url, "").unwrap_err();
            assert!(err.contains("IP address"), "{url}: {err}");
            assert!(err.contains("domain name"), "{url}: {err}");
        }
    }

    #[test]
    fn plain_http_off_localhost_and_other_schemes_are_refused() {
        let err = Passkeys::new("http://courses.example.com", "").unwrap_err();
        assert!(err.contains("https"), "{err}");
        assert!(Passkeys::new("ftp://example.com", "").is_err());
        assert!(Passkeys::new("not a url", "").is_err());
    }

    #[test]
    fn registration_options_carry_the_user_handle_and_a_fresh_challenge() {
        let p = local();
        let handle = user_handle("member-1");
        let (opts, state) = p
            .start_registration(handle, "ann@example.com", "Ann", &[])
            .unwrap();
        let o = options(&opts);
        let id = o["publicKey"]["user"]["id"].as_str().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(id).unwrap(), handle.as_bytes());
        let challenge = o["publicKey"]["challenge"].as_str().unwrap();
        assert!(URL_SAFE_NO_PAD.decode(challenge).unwrap().len() >= 16);
        // The state keeps the challenge: it is the server's, and reads back.
        assert!(state.contains(challenge), "{state}");
        let again: PasskeyRegistration = serde_json::from_str(&state).unwrap();
        assert_eq!(serde_json::to_string(&again).unwrap(), state);
        // Two starts, two challenges.
        let (opts2, _) = p
            .start_registration(handle, "ann@example.com", "Ann", &[])
            .unwrap();
        assert_ne!(options(&opts2)["publicKey"]["challenge"], challenge);
    }

    #[test]
    fn the_handle_is_stable_per_member_and_differs_between_members() {
        assert_eq!(user_handle("a"), user_handle("a"));
        assert_ne!(user_handle("a"), user_handle("b"));
    }

    #[test]
    fn options_are_safe_inside_a_script_element() {
        let p = local();
        let (opts, _) = p
            .start_registration(
                user_handle("x"),
                "ann@example.com",
                "</script><script>alert(1)</script> & <!--",
                &[],
            )
            .unwrap();
        assert!(!opts.contains('<') && !opts.contains('>') && !opts.contains('&'));
        let o = options(&opts);
        assert_eq!(
            o["publicKey"]["user"]["displayName"],
            "</script><script>alert(1)</script> & <!--"
        );
    }

    #[test]
    fn authentication_needs_a_passkey() {
        assert_eq!(
            local().start_authentication(&[]).unwrap_err(),
            PasskeyError::NoPasskey
        );
    }

    #[test]
    fn malformed_and_oversized_responses_are_refused() {
        let p = local();
        let (_, state) = p
            .start_registration(user_handle("x"), "ann@example.com", "Ann", &[])
            .unwrap();
        for bad in [
            "",
            "null",
            "{}",
            "not json",
            r#"{"id":"AA","rawId":"AA","type":"public-key","response":{}}"#,
            r#"{"id":"AA","rawId":"!!","type":"public-key",
                "response":{"attestationObject":"AA","clientDataJSON":"AA"}}"#,
        ] {
            assert_eq!(
                p.finish_registration(bad, &state).unwrap_err(),
                PasskeyError::Malformed,
                "{bad}"
            );
        }
        // Well-formed JSON and base64, but not CBOR or client data: still malformed.
        let junk = r#"{"id":"AAAA","rawId":"AAAA","type":"public-key",
            "response":{"attestationObject":"AAAA","clientDataJSON":"e30"},"extensions":{}}"#;
        assert_eq!(
            p.finish_registration(junk, &state).unwrap_err(),
            PasskeyError::Malformed
        );
        // Over 16 KiB is refused before parsing, whatever it holds.
        let big = format!(
            r#"{{"id":"AAAA","rawId":"AAAA","type":"public-key","pad":"{}",
                "response":{{"attestationObject":"AAAA","clientDataJSON":"e30"}}}}"#,
            "A".repeat(MAX_RESPONSE_BYTES)
        );
        assert_eq!(
            p.finish_registration(&big, &state).unwrap_err(),
            PasskeyError::Malformed
        );
        let mut keys: Vec<StoredPasskey> = vec![];
        assert_eq!(
            p.finish_authentication(&big, "{}", &mut keys).unwrap_err(),
            PasskeyError::Malformed
        );
        assert_eq!(
            p.finish_authentication("[]", "{}", &mut keys).unwrap_err(),
            PasskeyError::Malformed
        );
    }

    #[test]
    fn an_unreadable_state_is_refused() {
        let p = local();
        let response = r#"{"id":"AAAA","rawId":"AAAA","type":"public-key",
            "response":{"attestationObject":"AAAA","clientDataJSON":"e30"}}"#;
        for state in ["", "{}", "garbage", "[1,2]"] {
            assert_eq!(
                p.finish_registration(response, state).unwrap_err(),
                PasskeyError::BadState,
                "{state}"
            );
        }
    }

    #[test]
    fn errors_name_no_input() {
        for e in [
            PasskeyError::Malformed,
            PasskeyError::Rejected,
            PasskeyError::BadState,
            PasskeyError::NoPasskey,
            PasskeyError::Start,
        ] {
            let text = e.to_string();
            assert!(
                text.starts_with("the ") || text.starts_with("no "),
                "{text}"
            );
        }
    }
}
