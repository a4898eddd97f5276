//! The stack the contact tests run against: a real HTTP server standing in for the SMS
//! provider, and the gateway texting through it.

use crate::common::backend::{Backend, Stack};
use crate::common::sms_sink::SmsSink;

use super::merged;

/// A stack whose text messages go to `sms` (an HTTP provider), retried quickly.
pub(crate) struct Site {
    pub s: Stack,
    pub sms: SmsSink,
}

/// `[sms]` through the HTTP transport to `sink`, retried within a second.
pub(crate) fn sms_config(sink: &SmsSink) -> String {
    format!(
        "[sms]\ntransport = \"http\"\nhttp_url = \"{}\"\n\
         retry_initial = \"200ms\"\nretry_max = \"1s\"\ntimeout = \"2s\"\n",
        sink.url()
    )
}

/// The SMS sink, then the stack (upstream, store, SMTP, gateway) texting through it, with
/// `extra` merged over the SMS settings.
pub(crate) async fn site(backend: Backend, extra: &str) -> Site {
    let sms = SmsSink::start().await;
    let s = backend.stack(&merged(&[&sms_config(&sms), extra])).await;
    Site { s, sms }
}

impl Site {
    pub(crate) fn gw(&self) -> String {
        self.s.gw.url()
    }
}
