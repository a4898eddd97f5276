//! The audit log: security events (sign-ins and failures, lockouts, IP blocks, devices
//! replaced or signed out, password changes, admin actions) with who, what, when and from
//! which address. Flows emit them as `tracing` events with target `"audit"` and an
//! `event` field; this module's layer also appends them, one JSON object per line, to
//! `[log] audit_file`, so they can be kept apart from the operational logs.
//!
//! Call sites must never put a secret in an audit event: no password, token, code or
//! hash; identify people by user id or address, sessions by their public id.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// The target every audit event uses.
pub const TARGET: &str = "audit";

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
struct Fields(Map<String, Value>);

impl Visit for Fields {
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
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut fields = Fields(Map::new());
        #[allow(clippy::disallowed_methods)] // when the line is written, not a flow's time
        let ts = crate::clock::rfc3339(crate::clock::now_ms());
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
