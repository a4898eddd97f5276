//! Text messages (SMS): how one leaves ([`transport`]: a provider's HTTP API, one file
//! per message, or a log line) and what it costs ([`segments`]: GSM-7 / UCS-2 segment
//! count, to keep confirmation codes to one SMS).
//!
//! Kept apart from `mail` because nothing is shared but the idea: no MIME, no SMTP, and
//! a provider is any HTTP endpoint the operator describes in `[sms]`. A text carries a
//! confirmation code, so this module must never log or return it in an error.

pub mod segments;
pub mod transport;

pub use segments::gsm7_segments;
pub use transport::Transport;
