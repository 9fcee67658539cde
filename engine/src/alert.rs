//! Alert events raised by `| alert` stages, and the in-memory log that keeps the
//! recent ones for the API and fans them out to subscribers (stdout, files, and
//! notification channels).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::broadcast;

/// One alert: a window result for which a rule's condition held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: u64,
    pub rule: String,
    pub pipeline: String,
    pub severity: String,
    /// Group-by values of the window, plus the rule's own labels.
    pub labels: BTreeMap<String, String>,
    /// The window's aggregate values.
    pub values: serde_json::Map<String, serde_json::Value>,
    pub window_start: String,
    pub window_end: String,
    pub fired_at: String,
    /// Channels to notify.
    pub notify: Vec<String>,
}

/// Where alert stages send alerts.
pub trait AlertSink: Send + Sync {
    fn emit(&self, alert: Alert);
}

/// Keeps the most recent alerts and broadcasts each new one.
pub struct AlertLog {
    recent: Mutex<VecDeque<Alert>>,
    capacity: usize,
    next_id: AtomicU64,
    tx: broadcast::Sender<Alert>,
}

impl AlertLog {
    pub fn new(capacity: usize) -> AlertLog {
        let (tx, _) = broadcast::channel(4096);
        AlertLog {
            recent: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity,
            next_id: AtomicU64::new(1),
            tx,
        }
    }

    /// The newest `limit` alerts, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Alert> {
        match self.recent.lock() {
            Ok(r) => r.iter().rev().take(limit).cloned().collect(),
            Err(poisoned) => poisoned
                .into_inner()
                .iter()
                .rev()
                .take(limit)
                .cloned()
                .collect(),
        }
    }

    /// Every alert from now on. A subscriber that falls more than 4096 alerts
    /// behind misses the oldest (and is told so by the receiver).
    pub fn subscribe(&self) -> broadcast::Receiver<Alert> {
        self.tx.subscribe()
    }
}

impl AlertSink for AlertLog {
    fn emit(&self, mut alert: Alert) {
        alert.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut r = match self.recent.lock() {
                Ok(r) => r,
                Err(poisoned) => poisoned.into_inner(),
            };
            if r.len() == self.capacity {
                r.pop_front();
            }
            r.push_back(alert.clone());
        }
        // No subscriber is fine.
        let _ = self.tx.send(alert);
    }
}
