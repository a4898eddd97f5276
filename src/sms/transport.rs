//! How a text message leaves: one HTTP request to the operator's provider (any API that
//! takes a templated body), one `<id>.json` file per message, or a log line.
//!
//! A text holds a confirmation code and the provider headers hold its token, so neither
//! may reach a log: errors are built from the status, the provider's own answer and the
//! network error, and then scrubbed of the text, the code and the header values in case
//! the provider echoes them back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};

use crate::config::{SmsSection, SmsTransport};

/// Bytes of a refusing provider's answer read, and characters of it kept in the error.
const ANSWER_READ: usize = 4096;
const ANSWER_KEPT: usize = 200;

/// Header values and code-like digit runs shorter than this are not scrubbed from
/// errors: masking every `2` of a message for a `X-Version: 2` header would hide the
/// status without protecting anything.
const SCRUB_MIN: usize = 4;

pub enum Transport {
    Http(Box<Http>),
    File(PathBuf),
    Log,
}

/// A provider endpoint, parsed once from `[sms]`.
pub struct Http {
    client: reqwest::Client,
    method: Method,
    url: Url,
    /// The operator's headers (marked sensitive) plus `Content-Type`.
    headers: HeaderMap,
    /// `http_body`, with `{to}` and `{text}` still in it.
    template: String,
    /// What an error must never show besides the text: header values, the URL.
    secrets: Vec<String>,
}

impl Transport {
    /// Builds the configured transport; an invalid value is an error naming its key.
    pub fn from_config(cfg: &SmsSection) -> Result<Self, String> {
        Ok(match cfg.transport {
            SmsTransport::Http => Transport::Http(Box::new(Http::from_config(cfg)?)),
            SmsTransport::File => {
                std::fs::create_dir_all(&cfg.file_dir)
                    .map_err(|e| format!("sms.file_dir {}: {e}", cfg.file_dir))?;
                Transport::File(PathBuf::from(&cfg.file_dir))
            }
            SmsTransport::Log => Transport::Log,
        })
    }

    /// Sends one text to `to` (E.164), bounded by `timeout` whatever the network does.
    /// `id` is the outbox's: it names the file of the file transport and the log line.
    /// An error never holds `text`.
    pub async fn send(
        &self,
        id: &str,
        to: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let attempt = async {
            match self {
                Transport::Http(http) => http.send(to, text).await,
                Transport::File(dir) => {
                    check_id(id)?;
                    let (dir, path) = (dir.clone(), dir.join(format!("{id}.json")));
                    let content = file_content(to, text)?;
                    tokio::task::spawn_blocking(move || write_atomically(&dir, &path, &content))
                        .await
                        .map_err(|e| format!("sms file writer: {e}"))?
                }
                Transport::Log => {
                    tracing::info!(target: "sms", id = %id, to = %to, "sms (log transport; text not logged)");
                    Ok(())
                }
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
    }
}

impl Http {
    fn from_config(cfg: &SmsSection) -> Result<Self, String> {
        let url = Url::parse(cfg.http_url.expose())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or("sms.http_url: expected an http(s) URL")?;
        let method = Method::from_bytes(cfg.http_method.as_bytes()).map_err(|_| {
            format!(
                "sms.http_method: {:?} is not an HTTP method",
                cfg.http_method
            )
        })?;
        let mut headers = HeaderMap::new();
        // The URL, its password and query values (`?token=…`) as a provider might quote them.
        let mut secrets = vec![cfg.http_url.expose().to_string()];
        secrets.extend(url.password().map(str::to_string));
        secrets.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
        for (name, value) in &cfg.http_headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("sms.http_headers: {name}: not a header name"))?;
            // The value is never quoted back: it is usually the provider's token.
            let mut header_value = HeaderValue::from_str(value.expose())
                .map_err(|_| format!("sms.http_headers: {name}: not a header value"))?;
            header_value.set_sensitive(true);
            headers.append(header, header_value);
            secrets.push(value.expose().to_string());
            // A provider echoing "invalid token X" quotes the token without its scheme
            // ("Bearer X"): each word of the value is masked on its own too.
            secrets.extend(value.expose().split_whitespace().map(str::to_string));
        }
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if !cfg.http_body.contains("{to}") || !cfg.http_body.contains("{text}") {
            return Err("sms.http_body: the template must hold both {to} and {text}".into());
        }
        // No redirects: a provider answering 3xx is misconfigured, and following one
        // would turn the POST into a GET or carry the token to another host.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vigile/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("sms.transport: cannot build the HTTP client: {e}"))?;
        secrets.retain(|s| s.chars().count() >= SCRUB_MIN);
        Ok(Self {
            client,
            method,
            url,
            headers,
            template: cfg.http_body.clone(),
            secrets,
        })
    }

    /// One request; 2xx is sent, anything else an error with the status and the start
    /// of the provider's answer.
    async fn send(&self, to: &str, text: &str) -> Result<(), String> {
        let response = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
            .body(fill(&self.template, to, text))
            .send()
            .await
            .map_err(|e| self.scrub(&network_error(e), text))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Scrubbed before it is cut, so that no half of a secret survives the cut.
        let answer = self.scrub(&read_prefix(response, ANSWER_READ).await, text);
        let answer = excerpt(&answer, ANSWER_KEPT);
        Err(if answer.is_empty() {
            format!("provider answered HTTP {status}")
        } else {
            format!("provider answered HTTP {status}: {answer}")
        })
    }

    /// `message` with the text, the code in it, the header values and the URL masked.
    fn scrub(&self, message: &str, text: &str) -> String {
        let mut masked: Vec<String> = self.secrets.clone();
        masked.push(text.to_string());
        masked.push(json_escape(text));
        masked.extend(
            text.split(|c: char| !c.is_ascii_digit())
                .filter(|run| run.len() >= SCRUB_MIN)
                .map(str::to_string),
        );
        masked.retain(|s| !s.is_empty());
        // Longest first, so that the text goes whole before the code inside it.
        masked.sort_by_key(|s| std::cmp::Reverse(s.len()));
        masked.iter().fold(message.to_string(), |m, secret| {
            m.replace(secret.as_str(), "****")
        })
    }
}

/// `template` with `{to}` and `{text}` replaced by their JSON-escaped values, in one pass
/// (a `{to}` inside the text stays as written).
fn fill(template: &str, to: &str, text: &str) -> String {
    let (to, text) = (json_escape(to), json_escape(text));
    let mut out = String::with_capacity(template.len() + to.len() + text.len());
    let mut rest = template;
    loop {
        let next = [("{to}", &to), ("{text}", &text)]
            .into_iter()
            .filter_map(|(key, value)| rest.find(key).map(|at| (at, key, value)))
            .min_by_key(|(at, ..)| *at);
        let Some((at, key, value)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        out.push_str(value);
        rest = &rest[at + key.len()..];
    }
}

/// `s` as the inside of a JSON string: escaped, without the quotes (the template has
/// them).
fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_string()
}

/// The reqwest error and its causes (`connection refused`, a TLS failure…), without the
/// URL reqwest would add: it may carry a token.
fn network_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = format!("provider unreachable: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Up to `limit` bytes of the answer's body, decoded lossily; what could not be read is
/// simply not there (the status already says it failed).
async fn read_prefix(mut response: reqwest::Response, limit: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(limit);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One line of at most `limit` characters.
fn excerpt(s: &str, limit: usize) -> String {
    let flat: String = s
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// Outbox ids are random tokens; anything else could climb out of `file_dir`.
fn check_id(id: &str) -> Result<(), String> {
    if !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(format!(
            "sms id {id:?}: only letters, digits, _ and - name a file"
        ))
    }
}

/// `{"to":"…","text":"…"}`, keys in that order.
fn file_content(to: &str, text: &str) -> Result<Vec<u8>, String> {
    #[derive(serde::Serialize)]
    struct FileSms<'a> {
        to: &'a str,
        text: &'a str,
    }
    serde_json::to_vec(&FileSms { to, text }).map_err(|e| format!("sms file: {e}"))
}

/// Writes `path` whole or not at all (a reader never sees half a message): a temporary
/// file in the same directory, synced, then renamed over.
fn write_atomically(dir: &Path, path: &Path, content: &[u8]) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("sms file {}: {e}", path.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".sms-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(content).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
