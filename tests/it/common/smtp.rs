//! A real SMTP server on a free port that keeps every message it receives, killed on Drop.
//!
//! It is Debian's `python3-aiosmtpd` run as a child process with a subclass of its
//! `Mailbox` handler: `python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c vigile_sink.Sink
//! MAILDIR DIR`. Each message accepted (`250` after DATA) is already a file in
//! `MAILDIR/new/`, with the envelope added as `X-MailFrom` / `X-RcptTo` headers (and
//! `X-Peer`). [`SmtpSink::mails`] reads and parses them with `mail-parser` (decoded
//! subject, text and HTML parts).
//!
//! The handler is that `Mailbox` plus two things a test needs (a small Python class
//! written to the sink's directory, [`HANDLER`]): [`SmtpSink::refuse`] makes the server
//! answer `RCPT TO` for one address with a given reply (`550 ...` for a mailbox that does
//! not exist, `450 ...` for one that is busy), and every `RCPT TO` is logged with the
//! reply given, for [`SmtpSink::rcpt_attempts`].
//!
//! `stop` / `start_again` (same port, mails kept) simulate an outage of the mail server.
//! If Python or aiosmtpd is missing the test panics with instructions: a test that needs
//! an SMTP server must never skip silently, nor use a fake transport.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use mail_parser::{HeaderValue, MessageParser};
use tempfile::TempDir;

use super::{free_port, POLL_INTERVAL};

/// Overrides the interpreter (default: the first of `python3` on `PATH` and
/// `/usr/bin/python3` that can import aiosmtpd).
pub const PYTHON_ENV: &str = "VIGILE_TEST_PYTHON";

/// Readiness polls before giving up (× [`POLL_INTERVAL`]: 30 s, Python on a loaded box).
const READY_TRIES: u32 = 600;

/// Polls of [`SmtpSink::wait_for`] (× [`POLL_INTERVAL`]: 20 s).
const WAIT_TRIES: u32 = 400;

/// Polls after a kill until the port refuses connections (× [`POLL_INTERVAL`]: 10 s).
const STOP_TRIES: u32 = 200;

/// Fresh ports tried when the one picked was taken before the server could bind it.
const PORT_ATTEMPTS: u32 = 5;

/// aiosmtpd's `Mailbox` handler that refuses the recipients listed in `CONTROL/refuse`
/// (`address<TAB>reply` lines, read at each `RCPT TO`, so a test changes them at any time)
/// and logs every `RCPT TO` to `CONTROL/rcpt.log` as `address<TAB>reply`.
const HANDLER: &str = r#"
import os
from aiosmtpd.handlers import Mailbox


class Sink(Mailbox):
    def __init__(self, maildir, control):
        super().__init__(maildir)
        self.control = control

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 2:
            parser.error("usage: -c vigile_sink.Sink MAILDIR CONTROL_DIR")
        return cls(args[0], args[1])

    def refusal(self, address):
        try:
            with open(os.path.join(self.control, "refuse"), encoding="utf-8") as f:
                for line in f:
                    addr, _, reply = line.rstrip("\n").partition("\t")
                    if addr == address:
                        return reply
        except FileNotFoundError:
            pass
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refusal(address)
        with open(os.path.join(self.control, "rcpt.log"), "a", encoding="utf-8") as log:
            log.write(f"{address}\t{reply or '250 OK'}\n")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"
"#;

/// What a test can rely on from a message the sink accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// Envelope recipients (`RCPT TO`), in the order given; not the `To:` header.
    pub to: Vec<String>,
    /// The `From:` header as `Name <address>` (or just the address). The envelope
    /// sender is `header("X-MailFrom")`.
    pub from: String,
    /// Decoded subject (RFC 2047 words turned back into UTF-8).
    pub subject: String,
    /// Decoded `text/plain` body ("" if the message has none).
    pub text: String,
    /// Decoded `text/html` body ("" if the message has none).
    pub html: String,
    /// Top-level headers in order, values unfolded (and decoded where they are text).
    pub headers: Vec<(String, String)>,
    /// The message as stored (the server rewrites it: `\n` line ends, `X-*` headers).
    pub raw: Vec<u8>,
}

impl ReceivedMail {
    /// `http://` and `https://` URLs in the text part, in order.
    pub fn links(&self) -> Vec<String> {
        find_links(&self.text)
    }

    /// The first link that contains `needle`; panics listing the links otherwise.
    pub fn link_containing(&self, needle: &str) -> String {
        let links = self.links();
        if let Some(link) = links.iter().find(|l| l.contains(needle)) {
            return link.clone();
        }
        panic!(
            "no link containing {needle:?} in the mail to {:?} {:?}; links: {links:#?}\n\
             text part:\n{}",
            self.to, self.subject, self.text
        );
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// Parses a stored message.
    pub fn parse(raw: Vec<u8>) -> Self {
        let parser = MessageParser::new().default_header_text();
        let Some(msg) = parser.parse(&raw) else {
            panic!(
                "mail-parser cannot parse a stored mail:\n{}",
                String::from_utf8_lossy(&raw)
            );
        };
        let headers: Vec<(String, String)> = msg
            .headers()
            .iter()
            .map(|h| {
                let value = match h.value() {
                    HeaderValue::Text(t) => unfold(t),
                    HeaderValue::TextList(list) => list
                        .iter()
                        .map(|t| unfold(t))
                        .collect::<Vec<_>>()
                        .join(", "),
                    _ => {
                        let start = h.offset_start() as usize;
                        let end = h.offset_end() as usize;
                        unfold(&String::from_utf8_lossy(&raw[start..end.max(start)]))
                    }
                };
                (h.name().to_string(), value)
            })
            .collect();
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let to = find("X-RcptTo")
            .map(|v| {
                v.split(',')
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let from = msg
            .from()
            .and_then(|a| a.first())
            .map(|a| {
                let address = a.address.as_deref().unwrap_or_default();
                match a.name.as_deref() {
                    Some(name) if !name.is_empty() => format!("{name} <{address}>"),
                    _ => address.to_string(),
                }
            })
            .or_else(|| find("X-MailFrom"))
            .unwrap_or_default();
        let subject = unfold(msg.subject().unwrap_or_default());
        // text_part / html_part fall back to the other kind when one is missing; keep
        // only a real part of each kind.
        let text = msg
            .text_part(0)
            .filter(|p| !p.is_text_html())
            .and_then(|p| p.text_contents())
            .unwrap_or_default()
            .to_string();
        let html = msg
            .html_part(0)
            .filter(|p| p.is_text_html())
            .and_then(|p| p.text_contents())
            .unwrap_or_default()
            .to_string();
        drop(msg);
        ReceivedMail {
            to,
            from,
            subject,
            text,
            html,
            headers,
            raw,
        }
    }

    /// One line for listings: recipients and subject.
    fn summary(&self) -> String {
        format!("to {:?}, subject {:?}", self.to, self.subject)
    }
}

pub struct SmtpSink {
    port: u16,
    dir: TempDir,
    python: PathBuf,
    child: Mutex<Option<Child>>,
}

impl SmtpSink {
    /// Starts a server on a free port and waits until it greets with `220`.
    pub async fn start() -> Self {
        let python = match tokio::task::spawn_blocking(|| python().clone()).await {
            Ok(Ok(python)) => python,
            Ok(Err(tried)) => panic!(
                "no Python with aiosmtpd found. The mail tests need a real SMTP server and \
                 never skip: install it (Debian/Ubuntu: `apt-get install python3-aiosmtpd`; \
                 scripts/test does it when run as root) or set {PYTHON_ENV} to a python3 \
                 that can import aiosmtpd. Tried:\n  {tried}"
            ),
            Err(e) => panic!("probing for python3 failed: {e}"),
        };
        let dir = tempfile::Builder::new()
            .prefix("vigile-smtp-")
            .tempdir()
            .expect("tempdir for the SMTP sink");
        std::fs::write(dir.path().join("vigile_sink.py"), HANDLER).expect("write the SMTP handler");
        let mut sink = SmtpSink {
            port: 0,
            dir,
            python,
            child: Mutex::new(None),
        };
        for _ in 0..PORT_ATTEMPTS {
            sink.port = free_port();
            if sink.spawn_and_wait().await {
                return sink;
            }
        }
        panic!(
            "aiosmtpd did not start after {PORT_ATTEMPTS} ports; log:\n{}",
            sink.log()
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT` for `[mail] smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The Maildir the messages are stored in.
    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("maildir")
    }

    /// Kills the server (SIGKILL: a crash, not a shutdown) and waits until the port
    /// refuses connections. Idempotent.
    pub fn stop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(mut child) = child else {
            return;
        };
        let _ = child.kill();
        let _ = child.wait();
        for _ in 0..STOP_TRIES {
            if !accepts(self.port) {
                return;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        panic!(
            "port {} still accepts connections after the SMTP sink was killed",
            self.port
        );
    }

    /// Starts the server again on the same port after [`stop`](Self::stop); the mails
    /// received so far are kept.
    pub async fn start_again(&mut self) {
        self.stop();
        // The port was ours a moment ago; a few tries cover a slow release.
        for _ in 0..PORT_ATTEMPTS {
            if self.spawn_and_wait().await {
                return;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        panic!(
            "aiosmtpd did not restart on port {}; log:\n{}",
            self.port,
            self.log()
        );
    }

    /// From now on, answers `RCPT TO:<address>` with `reply` (say `550 5.1.1 No such
    /// user`, or `450 4.2.1 Mailbox busy`) instead of accepting it; replaces an earlier
    /// rule for the same address. Takes effect at the next `RCPT TO`.
    pub fn refuse(&self, address: &str, reply: &str) {
        assert!(
            !address.contains(['\t', '\n']) && !reply.contains(['\t', '\n']),
            "one line per rule"
        );
        let path = self.dir.path().join("refuse");
        let mut rules: Vec<String> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split('\t').next() != Some(address))
            .map(str::to_string)
            .collect();
        rules.push(format!("{address}\t{reply}"));
        // Written whole then renamed: the server never reads half a file.
        let tmp = self.dir.path().join("refuse.tmp");
        std::fs::write(&tmp, rules.join("\n") + "\n").expect("write the refusal rules");
        std::fs::rename(&tmp, &path).expect("install the refusal rules");
    }

    /// Accepts `address` again (undoes [`refuse`](Self::refuse)).
    pub fn accept(&self, address: &str) {
        let path = self.dir.path().join("refuse");
        let rules: String = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split('\t').next() != Some(address))
            .map(|l| format!("{l}\n"))
            .collect();
        let tmp = self.dir.path().join("refuse.tmp");
        std::fs::write(&tmp, rules).expect("write the refusal rules");
        std::fs::rename(&tmp, &path).expect("install the refusal rules");
    }

    /// Every `RCPT TO` so far, in order: the address as the client sent it, and the reply.
    pub fn rcpts(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.path().join("rcpt.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (address, reply) = l.split_once('\t').unwrap_or((l, ""));
                (address.to_string(), reply.to_string())
            })
            .collect()
    }

    /// How many times a client said `RCPT TO:<address>`, accepted or refused.
    pub fn rcpt_attempts(&self, address: &str) -> usize {
        self.rcpts().iter().filter(|(a, _)| a == address).count()
    }

    /// Every message received so far (also before a restart), in arrival order.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        let new = self.maildir().join("new");
        let Ok(entries) = std::fs::read_dir(&new) else {
            return Vec::new();
        };
        let mut files: Vec<(ArrivalKey, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .map(|p| (arrival_key(&p), p))
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read(path).ok())
            .map(ReceivedMail::parse)
            .collect()
    }

    /// Polls (up to 20 s) for the first mail, in arrival order, that satisfies `pred`.
    /// Panics naming `what` and listing the mails received.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&ReceivedMail) -> bool) -> ReceivedMail {
        let mut mails = Vec::new();
        for attempt in 0..WAIT_TRIES {
            mails = self.mails();
            if let Some(mail) = mails.iter().find(|m| pred(m)) {
                return mail.clone();
            }
            if attempt + 1 < WAIT_TRIES {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        let listing: String = if mails.is_empty() {
            "  (none)\n".into()
        } else {
            mails
                .iter()
                .enumerate()
                .map(|(i, m)| format!("  {}. {}\n", i + 1, m.summary()))
                .collect()
        };
        let state = match self
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            None => "stopped".to_string(),
            Some(child) => match child.try_wait() {
                Ok(None) => "running".to_string(),
                Ok(Some(status)) => format!("exited ({status})"),
                Err(e) => format!("unknown ({e})"),
            },
        };
        panic!(
            "gave up waiting for {what} after {WAIT_TRIES} tries ({POLL_INTERVAL:?} apart); \
             the SMTP sink on port {} ({state}) received {} mail(s):\n{listing}sink log:\n{}",
            self.port,
            mails.len(),
            self.log()
        );
    }

    /// The first mail whose envelope recipients include `to` (exact address) and whose
    /// subject contains `subject_contains` ("" matches any).
    pub async fn wait_for_to(&self, to: &str, subject_contains: &str) -> ReceivedMail {
        let what = format!("a mail to {to} with a subject containing {subject_contains:?}");
        self.wait_for(&what, |m| {
            m.to.iter().any(|t| t == to) && m.subject.contains(subject_contains)
        })
        .await
    }

    /// Mails received so far whose envelope recipients include `to` (exact address).
    pub fn count_to(&self, to: &str) -> usize {
        self.mails()
            .iter()
            .filter(|m| m.to.iter().any(|t| t == to))
            .count()
    }

    /// The server's output (aiosmtpd logs each SMTP command with `-d`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("aiosmtpd.log")
    }

    /// Spawns the process and polls for the greeting. `false` if it exited (port taken).
    async fn spawn_and_wait(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the aiosmtpd log");
        let spawned = Command::new(&self.python)
            .args(["-m", "aiosmtpd", "-n", "-d", "-u", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "vigile_sink.Sink"])
            .arg(self.maildir())
            .arg(self.dir.path())
            .env("PYTHONPATH", self.dir.path())
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => panic!("cannot run `{}`: {e}", self.python.display()),
        };
        *self.child.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(child);
        for _ in 0..READY_TRIES {
            let exited = {
                let slot = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
                let exited = matches!(slot.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))));
                if exited {
                    *slot = None;
                }
                exited
            };
            if exited {
                return false;
            }
            if greets(self.port).await {
                return true;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        panic!(
            "aiosmtpd on port {} did not greet with 220 after {READY_TRIES} tries; log:\n{}",
            self.port,
            self.log()
        );
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut child) = self
            .child
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The interpreter that runs aiosmtpd, probed once per test process, or what was tried.
fn python() -> &'static Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let candidates: Vec<String> = match std::env::var(PYTHON_ENV) {
            Ok(p) if !p.is_empty() => vec![p],
            _ => vec!["python3".into(), "/usr/bin/python3".into()],
        };
        let mut tried = Vec::new();
        for candidate in &candidates {
            // sys.executable resolves shims (pyenv), so that kill() hits the server itself.
            let out = Command::new(candidate)
                .args(["-c", "import sys, aiosmtpd; print(sys.executable)"])
                .stdin(Stdio::null())
                .output();
            match out {
                Ok(out) if out.status.success() => {
                    let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    return Ok(if exe.is_empty() {
                        PathBuf::from(candidate)
                    } else {
                        PathBuf::from(exe)
                    });
                }
                Ok(out) => tried.push(format!(
                    "{candidate}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => tried.push(format!("{candidate}: {e}")),
            }
        }
        Err(tried.join("\n  "))
    })
}

/// Connects, reads the greeting line and checks it is `220 ...`; off the executor, with
/// short timeouts.
async fn greets(port: u16) -> bool {
    tokio::task::spawn_blocking(move || {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let timeout = Duration::from_millis(500);
        let Ok(stream) = TcpStream::connect_timeout(&addr, timeout) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(timeout));
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("220")
    })
    .await
    .unwrap_or(false)
}

/// Whether anything accepts a TCP connection on the port.
fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Sort key for a Maildir file: Python names them `SECS.M{MICROS}P{PID}Q{N}.HOST`
/// (microseconds not zero-padded, so the names do not sort as text); anything else goes
/// by modification time.
type ArrivalKey = (u64, u64, u64, String);

fn arrival_key(path: &Path) -> ArrivalKey {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parsed = (|| {
        let (secs, rest) = name.split_once(".M")?;
        let (micros, rest) = rest.split_once('P')?;
        let (_pid, rest) = rest.split_once('Q')?;
        let (count, _host) = rest.split_once('.')?;
        Some((
            secs.parse().ok()?,
            micros.parse().ok()?,
            count.parse().ok()?,
        ))
    })();
    let (secs, micros, count) = parsed.unwrap_or_else(|| {
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .unwrap_or_default();
        (modified.as_secs(), u64::from(modified.subsec_micros()), 0)
    });
    (secs, micros, count, name)
}

/// RFC 5322 unfolding (line breaks before whitespace removed), trimmed.
fn unfold(raw: &str) -> String {
    raw.replace("\r\n", "\n")
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .collect::<Vec<_>>()
        .join("")
        .trim()
        .to_string()
}

/// URLs starting with `http://` or `https://`, up to whitespace or a character that
/// cannot end one in prose (`<>"'`), without trailing punctuation.
pub fn find_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    loop {
        let start = match (rest.find("http://"), rest.find("https://")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '`'))
            .unwrap_or(tail.len());
        let mut link = &tail[..end];
        loop {
            let trimmed = link.trim_end_matches(['.', ',', ';', ':', '!', '?']);
            let trimmed = match trimmed.strip_suffix(')') {
                Some(t) if trimmed.matches('(').count() < trimmed.matches(')').count() => t,
                _ => match trimmed.strip_suffix(']') {
                    Some(t) if !trimmed.contains('[') => t,
                    _ => trimmed,
                },
            };
            if trimmed == link {
                break;
            }
            link = trimmed;
        }
        if !matches!(link, "http://" | "https://") {
            links.push(link.to_string());
        }
        rest = &tail[end..];
    }
    links
}
