//! The process's audit journal: every [`crate::audit::Event`] emitted is also handed here
//! as an [`AuditRecord`], and one background task stores them in batches
//! ([`AuditStore::audit_append`]) for the admin console. Process-wide, like the log it
//! follows: the events are emitted from flows, pages, the mail sender and the CLI alike,
//! and one process serves one store.
//!
//! Emitting never waits for the store: the queue is bounded ([`QUEUE`]); a batch the
//! store refuses is retried until it is taken, and events that find the queue full
//! meanwhile are counted (`vigile_audit_events_total{result="dropped"}`) and still in the
//! log. A command-line process calls [`flush`] before it exits.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::store::{millis, AuditKeep, AuditRecord, DynStore};

/// Events waiting for the store, at most (a few minutes of a login storm).
const QUEUE: usize = 20_000;
/// Events written in one store call, at most.
const BATCH: usize = 500;
/// Between two attempts at a batch the store refused.
const RETRY: Duration = Duration::from_secs(1);

enum Item {
    Record(AuditRecord),
    /// Answered once everything queued before it is stored.
    Flush(oneshot::Sender<()>),
}

struct Journal {
    queue: mpsc::Sender<Item>,
    metrics: Arc<Metrics>,
}

static JOURNAL: OnceLock<Journal> = OnceLock::new();

/// What the store keeps, from `[log]` (`max_events` 0: nothing; what an earlier setting
/// kept is pruned).
pub fn keep_of(log: &crate::config::LogSection) -> AuditKeep {
    AuditKeep {
        keep_ms: millis(log.audit_keep),
        max_events: log.audit_keep_events,
    }
}

/// Starts the journal's writer on `rt` (once per process: a second call is ignored).
pub fn start(rt: &tokio::runtime::Handle, store: DynStore, keep: AuditKeep, metrics: Arc<Metrics>) {
    let (queue, rx) = mpsc::channel(QUEUE);
    let journal = Journal {
        queue,
        metrics: metrics.clone(),
    };
    if JOURNAL.set(journal).is_ok() {
        rt.spawn(write(rx, store, keep, metrics));
    }
}

/// Queues one record; never waits.
pub fn record(record: AuditRecord) {
    let Some(journal) = JOURNAL.get() else {
        return;
    };
    if journal.queue.try_send(Item::Record(record)).is_err() {
        let dropped = journal.metrics.audit_events.with_label_values(&["dropped"]);
        if dropped.get() == 0 {
            tracing::warn!("audit events not stored: the queue to the store is full");
        }
        dropped.inc();
    }
}

/// Waits until every event queued so far is stored, for up to `timeout`; false when it
/// did not finish (the store is down: the log has the events).
pub async fn flush(timeout: Duration) -> bool {
    let Some(journal) = JOURNAL.get() else {
        return true;
    };
    let (done, wait) = oneshot::channel();
    if journal.queue.send(Item::Flush(done)).await.is_err() {
        return false;
    }
    matches!(tokio::time::timeout(timeout, wait).await, Ok(Ok(())))
}

async fn write(
    mut rx: mpsc::Receiver<Item>,
    store: DynStore,
    keep: AuditKeep,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Item::Record(r) => batch.push(r),
                Item::Flush(done) => flushes.push(done),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        let mut failing = false;
        while !batch.is_empty() {
            match store.audit_append(&batch, keep).await {
                Ok(()) => {
                    let stored = u64::try_from(batch.len()).unwrap_or(u64::MAX);
                    metrics
                        .audit_events
                        .with_label_values(&["stored"])
                        .inc_by(stored);
                    batch.clear();
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "audit events not stored yet; retrying");
                        failing = true;
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}
