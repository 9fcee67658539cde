//! The alert manager: receives evaluations from alert stages, runs the
//! lifecycle ([`Tracker`]), holds silences, records every transition and
//! notification outcome in a bounded history, counts them in Prometheus
//! metrics, sends notifications to channel workers (repeating still-firing
//! alerts after the repeat interval), and saves its state in the data folder.

use super::clock::Clock;
use super::notify::{self, ChannelSettings, Notification, Notifier, Outcome, Report};
use super::rfc3339;
use super::rule::{AlertSink, Evaluation};
use super::silence::{check_limits, Matcher, Silence, SilenceError, MAX_SILENCES};
use super::store::{self, Snapshot};
use super::tracker::{Alert, AlertState, Change, Tracker};
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// How the manager behaves.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// A still-firing alert is notified again after this long.
    pub repeat_interval: Duration,
    /// How many history entries are kept in memory (the newest 1,000 are saved).
    pub history: usize,
    /// Where state is saved; `None` keeps it in memory only.
    pub state_file: Option<PathBuf>,
    /// Write notifications for channels without a worker to the log.
    pub log_unrouted: bool,
    /// The console's public address: alerts' evidence links to its search.
    pub console_url: Option<String>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            repeat_interval: Duration::from_secs(4 * 3600),
            history: 10_000,
            state_file: None,
            log_unrouted: true,
            console_url: None,
        }
    }
}

/// One recorded event: a transition (`pending`, `firing`, `resolved`,
/// `dropped`) or a notification outcome (`notified`, `repeated`, `failed`,
/// `rate_limited`, `silenced`, `queue_full`, `logged`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: u64,
    pub time: String,
    pub time_us: i64,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub alert: Alert,
}

struct State {
    tracker: Tracker,
    silences: Vec<Silence>,
    history: VecDeque<HistoryEntry>,
    next_id: u64,
}

/// See the module docs.
pub struct AlertManager {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    settings: AlertSettings,
    channels: RwLock<HashMap<String, mpsc::Sender<Notification>>>,
    metrics: Option<Metrics>,
    events: broadcast::Sender<HistoryEntry>,
    dirty: AtomicBool,
    /// Notifications to channels without a worker (no config, or `weir test`).
    unrouted: Mutex<Vec<Notification>>,
    myself: Weak<AlertManager>,
}

impl AlertManager {
    /// A manager, with the state saved in `settings.state_file` put back.
    pub fn new(
        clock: Arc<dyn Clock>,
        settings: AlertSettings,
        metrics: Option<Metrics>,
    ) -> Result<Arc<AlertManager>, String> {
        let mut state = State {
            tracker: Tracker::new(),
            silences: Vec::new(),
            history: VecDeque::new(),
            next_id: 1,
        };
        if let Some(path) = &settings.state_file {
            if let Some(snap) = store::load(path)? {
                if let Some(m) = &metrics {
                    for a in snap.alerts.iter().filter(|a| a.state == AlertState::Firing) {
                        m.alerts_firing
                            .with_label_values(&[&a.rule, &a.severity])
                            .inc();
                    }
                }
                tracing::info!(
                    alerts = snap.alerts.len(),
                    silences = snap.silences.len(),
                    "alert state restored from {}",
                    path.display()
                );
                state.tracker.restore(snap.alerts);
                // Regexes compiled once, here, not at each match.
                for m in snap.silences.iter().flat_map(|s| &s.matchers) {
                    if let Err(e) = m.validate() {
                        tracing::warn!("restored silence: {e}");
                    }
                }
                state.silences = snap.silences;
                state.history = snap.history.into();
                state.next_id = snap.next_id.max(1);
            }
        }
        let (events, _) = broadcast::channel(4096);
        Ok(Arc::new_cyclic(|me| AlertManager {
            state: Mutex::new(state),
            clock,
            settings,
            channels: RwLock::new(HashMap::new()),
            metrics,
            events,
            dirty: AtomicBool::new(false),
            unrouted: Mutex::new(Vec::new()),
            myself: me.clone(),
        }))
    }

    /// A manager on the wall clock, in memory only, with no channels and no
    /// metrics: for tests, benchmarks and embedding.
    pub fn in_memory() -> Arc<AlertManager> {
        let settings = AlertSettings {
            log_unrouted: false,
            ..AlertSettings::default()
        };
        // Without a state file nothing can fail.
        match AlertManager::new(Arc::new(super::clock::SystemClock), settings, None) {
            Ok(m) => m,
            Err(e) => unreachable!("no state file to read: {e}"),
        }
    }

    /// Starts a worker for channel `name` (needs a Tokio runtime).
    pub fn add_channel(&self, name: &str, notifier: Arc<dyn Notifier>, settings: ChannelSettings) {
        let tx = notify::spawn_worker(notifier, settings, self.report());
        if let Ok(mut c) = self.channels.write() {
            c.insert(name.to_string(), tx);
        }
    }

    /// Starts the loop that sends repeat notifications, applies silence
    /// expiry and saves the state every second.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(m) = me.upgrade() else { return };
                m.tick();
                m.save_if_dirty();
            }
        })
    }

    /// Sends what is due: firing alerts never notified (a silence ended) or
    /// last notified more than the repeat interval ago.
    pub fn tick(&self) {
        let now = self.clock.now_us();
        let repeat = self.settings.repeat_interval.as_micros() as i64;
        let mut outbox = Vec::new();
        {
            let mut st = lock(&self.state);
            let silences = st.silences.clone();
            let mut due = Vec::new();
            for a in st.tracker.open_mut() {
                if a.state != AlertState::Firing {
                    continue;
                }
                let is_due = match a.last_notified_us {
                    None => true,
                    Some(t) => now - t >= repeat,
                };
                if !is_due || silenced_by(&silences, a, now).is_some() {
                    continue;
                }
                let again = a.last_notified_us.is_some();
                a.last_notified_us = Some(now);
                a.silenced_by = None;
                due.push((a.clone(), again));
            }
            if !due.is_empty() {
                self.dirty.store(true, Ordering::Relaxed);
            }
            for (a, again) in due {
                outbox.extend(notifications(vec![a], AlertState::Firing, again, now));
            }
        }
        self.dispatch(outbox);
    }

    /// Open (pending and firing) alerts, firing first, then by rule and labels.
    pub fn open(&self) -> Vec<Alert> {
        let st = lock(&self.state);
        let mut v: Vec<Alert> = st.tracker.open().cloned().collect();
        v.sort_by(|a, b| {
            (a.state != AlertState::Firing, &a.rule, &a.labels).cmp(&(
                b.state != AlertState::Firing,
                &b.rule,
                &b.labels,
            ))
        });
        v
    }

    /// The newest `limit` history entries, newest first.
    pub fn history(&self, limit: usize) -> Vec<HistoryEntry> {
        lock(&self.state)
            .history
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }

    /// Every history entry from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HistoryEntry> {
        self.events.subscribe()
    }

    /// Notifications handed to channels that have no worker.
    pub fn take_unrouted(&self) -> Vec<Notification> {
        std::mem::take(&mut *lock(&self.unrouted))
    }

    /// Creates a silence from now (or `starts_at_us`) for `duration`,
    /// within the limits of [`silence`](super::silence).
    pub fn add_silence(
        &self,
        matchers: Vec<Matcher>,
        starts_at_us: Option<i64>,
        duration: Duration,
        created_by: String,
        comment: String,
    ) -> Result<Silence, SilenceError> {
        if matchers.is_empty() {
            return Err(SilenceError::Invalid(
                "a silence needs at least one matcher, e.g. service=checkout".into(),
            ));
        }
        for m in &matchers {
            m.validate().map_err(SilenceError::Invalid)?;
        }
        if duration.is_zero() {
            return Err(SilenceError::Invalid(
                "a silence needs a duration above zero".into(),
            ));
        }
        let starts_in = starts_at_us
            .map(|s| s.saturating_sub(self.clock.now_us()).max(0) as u64)
            .map_or(Duration::ZERO, Duration::from_micros);
        check_limits(&matchers, starts_in, duration, &created_by, &comment)?;
        // Drops those expired over a day ago before counting.
        if self.silences().len() >= MAX_SILENCES {
            return Err(SilenceError::OverLimit(format!(
                "{MAX_SILENCES} silences exist already; expire some first"
            )));
        }
        let now = self.clock.now_us();
        let start = starts_at_us.unwrap_or(now);
        let mut st = lock(&self.state);
        let id = format!("{:012x}{:04x}", now & 0xffff_ffff_ffff, st.next_id & 0xffff);
        st.next_id += 1;
        let s = Silence {
            id,
            matchers,
            starts_at_us: start,
            ends_at_us: start.saturating_add(duration.as_micros() as i64),
            created_by,
            comment,
        };
        st.silences.push(s.clone());
        self.dirty.store(true, Ordering::Relaxed);
        Ok(s)
    }

    /// Every silence not expired for more than a day, newest first.
    pub fn silences(&self) -> Vec<Silence> {
        let now = self.clock.now_us();
        let mut st = lock(&self.state);
        st.silences
            .retain(|s| now - s.ends_at_us < 24 * 3600 * 1_000_000);
        let mut v = st.silences.clone();
        v.reverse();
        v
    }

    /// Ends a silence now. False when there is no such silence.
    pub fn expire_silence(&self, id: &str) -> bool {
        let now = self.clock.now_us();
        let mut st = lock(&self.state);
        match st.silences.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                s.ends_at_us = s.ends_at_us.min(now);
                self.dirty.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Wall-clock microseconds as this manager sees them.
    pub fn now_us(&self) -> i64 {
        self.clock.now_us()
    }

    /// Writes the state file now (also done every second when something changed).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.settings.state_file else {
            return Ok(());
        };
        let snap = {
            let st = lock(&self.state);
            Snapshot {
                version: 1,
                alerts: st.tracker.open().cloned().collect(),
                silences: st.silences.clone(),
                history: st
                    .history
                    .iter()
                    .skip(st.history.len().saturating_sub(1000))
                    .cloned()
                    .collect(),
                next_id: st.next_id,
            }
        };
        store::save(path, &snap)
    }

    fn save_if_dirty(&self) {
        if self.dirty.swap(false, Ordering::Relaxed) {
            if let Err(e) = self.save() {
                self.dirty.store(true, Ordering::Relaxed);
                tracing::warn!(error = %e, "could not save the alert state");
            }
        }
    }

    fn record(
        &self,
        st: &mut State,
        event: &str,
        alert: &Alert,
        channel: Option<&str>,
        detail: Option<String>,
    ) {
        let now = self.clock.now_us();
        let e = HistoryEntry {
            id: st.next_id,
            time: rfc3339(now),
            time_us: now,
            event: event.to_string(),
            channel: channel.map(String::from),
            detail,
            alert: alert.clone(),
        };
        st.next_id += 1;
        if st.history.len() >= self.settings.history.max(1) {
            st.history.pop_front();
        }
        st.history.push_back(e.clone());
        self.dirty.store(true, Ordering::Relaxed);
        let _ = self.events.send(e);
    }

    fn report(&self) -> Report {
        let me = self.myself.clone();
        Arc::new(move |n: &Notification, outcome: &Outcome| {
            if let Some(m) = me.upgrade() {
                m.outcome(n, outcome);
            }
        })
    }

    fn outcome(&self, n: &Notification, outcome: &Outcome) {
        let (event, result, detail) = match outcome {
            Outcome::Sent { attempts } => (
                if n.repeat { "repeated" } else { "notified" },
                "sent",
                (*attempts > 1).then(|| format!("after {attempts} attempts")),
            ),
            Outcome::Failed { attempts, error } => (
                "failed",
                "failed",
                Some(format!("{error} (gave up after {attempts} attempts)")),
            ),
            Outcome::RateLimited => ("rate_limited", "rate_limited", None),
            Outcome::QueueFull => ("queue_full", "dropped", None),
        };
        if let Some(m) = &self.metrics {
            m.notifications
                .with_label_values(&[&n.channel, result])
                .inc();
            if result == "sent" {
                let secs = (self.clock.now_us() - n.raised_at_us).max(0) as f64 / 1e6;
                m.notification_latency.observe(secs);
            }
        }
        if result == "failed" {
            tracing::warn!(channel = %n.channel, rule = %n.rule, "notification failed: {}", detail.as_deref().unwrap_or(""));
        }
        let mut st = lock(&self.state);
        for a in &n.alerts {
            self.record(&mut st, event, a, Some(&n.channel), detail.clone());
        }
    }

    fn dispatch(&self, outbox: Vec<Notification>) {
        if outbox.is_empty() {
            return;
        }
        let report = self.report();
        let channels = match self.channels.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        for n in outbox {
            match channels.get(&n.channel) {
                Some(tx) => notify::enqueue(tx, n, &report),
                None => {
                    if self.settings.log_unrouted {
                        tracing::info!(target: "weir::alerts", channel = %n.channel, "{}", n.text().trim_end());
                    }
                    if let Some(m) = &self.metrics {
                        m.notifications
                            .with_label_values(&[&n.channel, "logged"])
                            .inc();
                    }
                    {
                        let mut st = lock(&self.state);
                        for a in &n.alerts {
                            self.record(&mut st, "logged", a, Some(&n.channel), None);
                        }
                    }
                    lock(&self.unrouted).push(n);
                }
            }
        }
    }
}

impl AlertSink for AlertManager {
    fn evaluate(&self, mut eval: Evaluation) {
        let now = self.clock.now_us();
        if let Some(console) = &self.settings.console_url {
            for h in &mut eval.hits {
                if let Some(e) = &mut h.evidence {
                    std::sync::Arc::make_mut(e).link(
                        console,
                        &rfc3339(h.window_start_us),
                        &rfc3339(h.window_end_us),
                    );
                }
            }
        }
        let mut outbox = Vec::new();
        {
            let mut st = lock(&self.state);
            let changes = st.tracker.apply(&eval, now);
            if changes.is_empty() {
                return;
            }
            let silences = st.silences.clone();
            let mut firing = Vec::new();
            let mut resolved = Vec::new();
            for c in changes {
                let (event, mut a) = match c {
                    Change::Pending(a) => ("pending", a),
                    Change::Firing(a) => ("firing", a),
                    Change::Resolved(a) => ("resolved", a),
                    Change::Dropped(a) => ("dropped", a),
                };
                if let Some(m) = &self.metrics {
                    m.alert_transitions
                        .with_label_values(&[&a.rule, event])
                        .inc();
                    let g = m.alerts_firing.with_label_values(&[&a.rule, &a.severity]);
                    match event {
                        "firing" => g.inc(),
                        "resolved" => g.dec(),
                        _ => {}
                    }
                }
                self.record(&mut st, event, &a, None, None);
                let silence = silenced_by(&silences, &a, now);
                match (event, silence) {
                    ("firing", Some(id)) | ("resolved", Some(id)) => {
                        a.silenced_by = Some(id.clone());
                        if let Some(m) = &self.metrics {
                            for ch in &a.notify {
                                m.notifications.with_label_values(&[ch, "silenced"]).inc();
                            }
                        }
                        self.record(&mut st, "silenced", &a, None, Some(format!("silence {id}")));
                        set_open(&mut st, &a, |x| x.silenced_by = Some(id.clone()));
                    }
                    ("firing", None) => {
                        set_open(&mut st, &a, |x| x.last_notified_us = Some(now));
                        a.last_notified_us = Some(now);
                        firing.push(a);
                    }
                    // A resolved notice only for alerts whose firing was sent.
                    ("resolved", None) if a.last_notified_us.is_some() => resolved.push(a),
                    _ => {}
                }
            }
            outbox.extend(notifications(firing, AlertState::Firing, false, now));
            outbox.extend(notifications(resolved, AlertState::Resolved, false, now));
        }
        self.dispatch(outbox);
    }
}

fn set_open(st: &mut State, a: &Alert, f: impl FnOnce(&mut Alert)) {
    if let Some(open) = st.tracker.get_mut(&a.pipeline, &a.rule, &a.fingerprint) {
        f(open);
    }
}

fn silenced_by(silences: &[Silence], a: &Alert, now: i64) -> Option<String> {
    silences
        .iter()
        .find(|s| s.silences(a, now))
        .map(|s| s.id.clone())
}

/// One notification per channel, rule and status.
fn notifications(
    alerts: Vec<Alert>,
    status: AlertState,
    repeat: bool,
    now: i64,
) -> Vec<Notification> {
    let mut out: Vec<Notification> = Vec::new();
    for a in alerts {
        for ch in &a.notify {
            match out
                .iter_mut()
                .find(|n| &n.channel == ch && n.rule == a.rule && n.pipeline == a.pipeline)
            {
                Some(n) => n.alerts.push(a.clone()),
                None => out.push(Notification {
                    channel: ch.clone(),
                    rule: a.rule.clone(),
                    pipeline: a.pipeline.clone(),
                    severity: a.severity.clone(),
                    status,
                    alerts: vec![a.clone()],
                    repeat,
                    raised_at_us: now,
                }),
            }
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
