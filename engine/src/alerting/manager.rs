//! The alert manager: receives evaluations from alert stages, runs the
//! lifecycle ([`Tracker`]), holds silences, records every transition and
//! notification outcome in a bounded history, counts them in Prometheus
//! metrics, sends notifications to channel workers (repeating still-firing
//! alerts after the repeat interval), and saves its state in the data folder.
//!
//! Notifications go through an outbox: each one handed to a channel stays
//! in the saved state until its outcome is known (sent, or given up on), so
//! one lost to a crash or a kill before delivery is sent after the restart.
//! Pipelines reading replayable sources save the state at every checkpoint
//! before their positions are committed ([`AlertSink::save_job`]): a
//! transition is either saved (and then notified, from the outbox if need
//! be) or replayed and found again — never lost. A crash after a delivery
//! and before the next save (at most a second, or a checkpoint) can send
//! that notification twice; receivers tell repeats apart by the alert's
//! fingerprint and state.

use super::clock::Clock;
use super::notify::{self, ChannelSettings, Notification, Notifier, Outcome, Report};
use super::rfc3339;
use super::rule::{AlertSink, Evaluation};
use super::sent_log::SentLog;
use super::silence::{check_limits, Matcher, Silence, SilenceError, MAX_SILENCES};
use super::store::{self, Snapshot};
use super::tracker::{Alert, AlertState, Change, Tracker};
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
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
    /// Where deliveries are remembered so a replayed transition is not
    /// notified twice (in the state files' `notified/`; see
    /// [`super::sent_log`]); `None`: not remembered.
    pub sent_log: Option<Arc<dyn crate::state_files::StateFiles>>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            repeat_interval: Duration::from_secs(4 * 3600),
            history: 10_000,
            state_file: None,
            log_unrouted: true,
            console_url: None,
            sent_log: None,
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
    /// Shared by the history, its subscribers and the saved state (one
    /// copy per transition, however many read it).
    pub alert: Arc<Alert>,
}

struct State {
    tracker: Tracker,
    silences: Vec<Silence>,
    history: VecDeque<HistoryEntry>,
    next_id: u64,
    /// Notifications handed to channels, not yet delivered or given up on.
    outbox: BTreeMap<u64, Notification>,
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
    sent: Option<SentLog>,
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
            outbox: BTreeMap::new(),
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
                    undelivered = snap.outbox.len(),
                    "alert state restored from {}",
                    path.display()
                );
                // Sent again once their channel is added.
                state.outbox = snap
                    .outbox
                    .into_iter()
                    .map(|(id, mut n)| {
                        n.outbox_ids = vec![id];
                        (id, n)
                    })
                    .collect();
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
        if let Some(m) = &metrics {
            m.notifications_undelivered.set(state.outbox.len() as i64);
        }
        let (events, _) = broadcast::channel(4096);
        let sent = settings.sent_log.clone().map(SentLog::new);
        Ok(Arc::new_cyclic(|me| AlertManager {
            state: Mutex::new(state),
            clock,
            settings,
            channels: RwLock::new(HashMap::new()),
            metrics,
            events,
            dirty: AtomicBool::new(false),
            unrouted: Mutex::new(Vec::new()),
            sent,
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

    /// Starts a worker for channel `name` (needs a Tokio runtime), and hands
    /// it what the outbox still holds for it from before a restart.
    pub fn add_channel(&self, name: &str, notifier: Arc<dyn Notifier>, settings: ChannelSettings) {
        let tx = notify::spawn_worker(notifier, settings, self.report());
        let undelivered: Vec<Notification> = lock(&self.state)
            .outbox
            .values()
            .filter(|n| n.channel == name)
            .cloned()
            .collect();
        if !undelivered.is_empty() {
            tracing::info!(
                channel = name,
                notifications = undelivered.len(),
                "sending notifications not delivered before the restart"
            );
        }
        let report = self.report();
        for n in undelivered {
            notify::enqueue(&tx, n, &report);
        }
        if let Ok(mut c) = self.channels.write() {
            c.insert(name.to_string(), tx);
        }
    }

    /// Notifications handed to channels and not yet delivered or given up on.
    pub fn undelivered(&self) -> usize {
        lock(&self.state).outbox.len()
    }

    /// The outbox changed: its size to the gauge, the state to be saved.
    fn outbox_changed(&self, st: &State) {
        if let Some(m) = &self.metrics {
            m.notifications_undelivered.set(st.outbox.len() as i64);
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Starts the loop that sends repeat notifications, applies silence
    /// expiry and saves the state every second.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        self.drop_unroutable();
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

    /// Outbox entries for channels the configuration no longer has (the
    /// channels are added before the manager starts) are dropped, logged.
    fn drop_unroutable(&self) {
        let channels: Vec<String> = match self.channels.read() {
            Ok(c) => c.keys().cloned().collect(),
            Err(p) => p.into_inner().keys().cloned().collect(),
        };
        let mut st = lock(&self.state);
        let before = st.outbox.len();
        st.outbox.retain(|_, n| channels.contains(&n.channel));
        if st.outbox.len() < before {
            tracing::warn!(
                notifications = before - st.outbox.len(),
                "notifications not delivered before the restart are dropped: their channel is no longer configured"
            );
        }
        self.outbox_changed(&st);
    }

    /// Writes the state file now (also done every second when something changed).
    pub fn save(&self) -> std::io::Result<()> {
        match self.snapshot_for_save() {
            Some((path, snap)) => store::save(&path, &snap),
            None => Ok(()),
        }
    }

    /// The state as it is now and where it goes; `None` without a state file.
    fn snapshot_for_save(&self) -> Option<(PathBuf, Snapshot)> {
        let path = self.settings.state_file.clone()?;
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
                outbox: st.outbox.iter().map(|(id, n)| (*id, n.clone())).collect(),
            }
        };
        Some((path, snap))
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
            alert: Arc::new(alert.clone()),
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
        if let (Some(log), "sent", false) = (&self.sent, result, n.repeat) {
            let keys: Vec<String> = n
                .alerts
                .iter()
                .map(|a| SentLog::key(&n.channel, a, n.status))
                .collect();
            if let Err(e) = log.record(&keys) {
                tracing::warn!(error = %e, "could not remember a delivered notification (a replay after a crash may repeat it)");
            }
        }
        let mut st = lock(&self.state);
        for a in &n.alerts {
            self.record(&mut st, event, a, Some(&n.channel), detail.clone());
        }
        // Delivered or given up on: out of the outbox.
        for id in &n.outbox_ids {
            st.outbox.remove(id);
        }
        self.outbox_changed(&st);
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
        for mut n in outbox {
            match channels.get(&n.channel) {
                Some(tx) => {
                    {
                        let mut st = lock(&self.state);
                        let id = st.next_id;
                        st.next_id += 1;
                        n.outbox_ids = vec![id];
                        st.outbox.insert(id, n.clone());
                        self.outbox_changed(&st);
                    }
                    notify::enqueue(tx, n, &report)
                }
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
    fn save_job(&self) -> Option<super::rule::SaveJob> {
        let (path, snap) = self.snapshot_for_save()?;
        Some(Box::new(move || store::save(&path, &snap)))
    }

    fn export(&self, pipeline: &str, rule: &str) -> Vec<Alert> {
        lock(&self.state).tracker.alerts_of(pipeline, rule)
    }

    fn import(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        lock(&self.state).tracker.restore(alerts);
        self.dirty.store(true, Ordering::Relaxed);
    }

    fn forget(&self, pipeline: &str, rule: &str, fingerprints: Option<&[String]>) {
        lock(&self.state)
            .tracker
            .remove(pipeline, rule, fingerprints);
        self.dirty.store(true, Ordering::Relaxed);
    }

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
        let (firing, resolved) = {
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
            (firing, resolved)
        };
        // Deliveries remembered are read once, outside the lock.
        let known = self
            .sent
            .as_ref()
            .filter(|_| !firing.is_empty() || !resolved.is_empty())
            .map(SentLog::known);
        let firing = self.not_sent_before(known.as_ref(), firing, AlertState::Firing);
        let resolved = self.not_sent_before(known.as_ref(), resolved, AlertState::Resolved);
        let mut outbox = notifications(firing, AlertState::Firing, false, now);
        outbox.extend(notifications(resolved, AlertState::Resolved, false, now));
        self.dispatch(outbox);
    }
}

impl AlertManager {
    /// The alerts to notify of a transition, without the channels a
    /// delivery of the same transition already reached (a replay after a
    /// crash: see [`super::sent_log`]).
    fn not_sent_before(
        &self,
        known: Option<&HashSet<String>>,
        alerts: Vec<Alert>,
        status: AlertState,
    ) -> Vec<Alert> {
        let Some(known) = known else {
            return alerts;
        };
        let mut out = Vec::with_capacity(alerts.len());
        for mut a in alerts {
            let before: Vec<String> = a
                .notify
                .iter()
                .filter(|ch| known.contains(&SentLog::key(ch, &a, status)))
                .cloned()
                .collect();
            for ch in &before {
                self.record(
                    &mut lock(&self.state),
                    "already_notified",
                    &a,
                    Some(ch),
                    Some("delivered before a restart; not sent again".into()),
                );
            }
            a.notify.retain(|ch| !before.contains(ch));
            if !a.notify.is_empty() {
                out.push(a);
            }
        }
        out
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
                    outbox_ids: Vec::new(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notify::NotifyError;
    use crate::alerting::rule::{AlertRule, Hit};
    use crate::alerting::SystemClock;

    /// A channel that records what it was sent, or refuses everything (a
    /// receiver that is down).
    struct Channel {
        up: bool,
        sent: Mutex<Vec<(String, AlertState)>>,
    }

    #[async_trait::async_trait]
    impl Notifier for Channel {
        async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
            if !self.up {
                return Err(NotifyError::Retry("connection refused".into()));
            }
            let mut sent = lock(&self.sent);
            for a in &n.alerts {
                sent.push((a.fingerprint.clone(), n.status));
            }
            Ok(())
        }
    }

    fn channel(up: bool) -> Arc<Channel> {
        Arc::new(Channel {
            up,
            sent: Mutex::new(Vec::new()),
        })
    }

    fn settings() -> ChannelSettings {
        ChannelSettings {
            group_wait: Duration::from_millis(10),
            rate_limit: None,
            // Still retrying when the process "dies".
            attempts: 1_000,
            backoff: Duration::from_millis(50),
        }
    }

    fn manager(path: &std::path::Path) -> Arc<AlertManager> {
        manager_with(path, None)
    }

    fn manager_with(path: &std::path::Path, metrics: Option<Metrics>) -> Arc<AlertManager> {
        AlertManager::new(
            Arc::new(SystemClock),
            AlertSettings {
                state_file: Some(path.to_path_buf()),
                log_unrouted: false,
                ..AlertSettings::default()
            },
            metrics,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn firing_hit() -> Evaluation {
        Evaluation {
            rule: Arc::new(AlertRule {
                name: "errors".into(),
                pipeline: "p".into(),
                severity: "critical".into(),
                labels: vec![],
                annotations: vec![],
                notify: vec!["hook".into()],
                for_us: 0,
                resolve_after_us: 60_000_000,
            }),
            hits: vec![Hit {
                group: [("service".to_string(), "checkout".to_string())].into(),
                values: Default::default(),
                window_start_us: 0,
                window_end_us: 60_000_000,
                evidence: None,
            }],
            closed_until_us: Some(60_000_000),
        }
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..200 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn a_notification_lost_with_the_process_is_sent_after_the_restart_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("alerts.json");

        // The alert fires while the receiver is down; the state is saved
        // (a checkpoint) and the process dies with the notification queued.
        let first = manager(&path);
        let down = channel(false);
        first.add_channel("hook", down.clone(), settings());
        first.evaluate(firing_hit());
        assert_eq!(first.undelivered(), 1);
        let job = first
            .save_job()
            .unwrap_or_else(|| panic!("a manager with a state file saves"));
        job().unwrap_or_else(|e| panic!("{e}"));
        drop(first);

        // After the restart the receiver is up: the outbox sends it.
        let metrics = Metrics::new(&prometheus::Registry::new()).unwrap_or_else(|e| panic!("{e}"));
        let second = manager_with(&path, Some(metrics.clone()));
        assert_eq!(second.undelivered(), 1);
        assert_eq!(metrics.notifications_undelivered.get(), 1);
        let up = channel(true);
        second.add_channel("hook", up.clone(), settings());
        wait_for("the notification", || !lock(&up.sent).is_empty()).await;
        wait_for("the outbox to empty", || second.undelivered() == 0).await;
        assert_eq!(metrics.notifications_undelivered.get(), 0);
        let sent = lock(&up.sent).clone();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].1, AlertState::Firing);
        // The same window again (a replay after the restart): the alert is
        // firing already, nothing new is sent.
        second.evaluate(firing_hit());
        second.save().unwrap_or_else(|e| panic!("{e}"));
        drop(second);

        // Another restart: nothing is left to send.
        let third = manager(&path);
        assert_eq!(third.undelivered(), 0);
        let again = channel(true);
        third.add_channel("hook", again.clone(), settings());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(lock(&again.sent).is_empty());
        assert_eq!(lock(&up.sent).len(), 1);
        assert!(lock(&down.sent).is_empty());
        assert_eq!(third.open().len(), 1);
    }

    /// A process sharing the state folder `log`, its alert
    /// state not saved since (it comes back from an earlier checkpoint).
    fn process(log: &std::path::Path, ch: Arc<Channel>) -> Arc<AlertManager> {
        let m = AlertManager::new(
            Arc::new(SystemClock),
            AlertSettings {
                log_unrouted: false,
                sent_log: Some(Arc::new(crate::state_files::Folder::new(log))),
                ..AlertSettings::default()
            },
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        m.add_channel("hook", ch, settings());
        m
    }

    #[tokio::test]
    async fn a_transition_replayed_after_a_crash_is_not_notified_again_and_a_lost_one_is() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = dir.path().join("notified");
        // A fires and delivers, then dies before its next checkpoint.
        let first = channel(true);
        let a = process(&log, first.clone());
        a.evaluate(firing_hit());
        wait_for("the delivery", || !lock(&first.sent).is_empty()).await;
        wait_for("the outcome", || a.undelivered() == 0).await;
        drop(a);
        // B takes the partition over and replays the same window: the
        // alert fires again in its tracker, but is not notified again.
        let second = channel(true);
        let b = process(&log, second.clone());
        b.evaluate(firing_hit());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(lock(&second.sent).is_empty(), "notified twice");
        assert_eq!(b.open().len(), 1, "the alert fires all the same");
        assert!(b.history(100).iter().any(|h| h.event == "already_notified"));

        // C fires while its receiver is down and dies before delivering:
        // nothing is remembered, so D's replay notifies it.
        let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = other.path().join("notified");
        let c = process(&log, channel(false));
        c.evaluate(firing_hit());
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(c);
        let fourth = channel(true);
        let d = process(&log, fourth.clone());
        d.evaluate(firing_hit());
        wait_for("the lost transition", || !lock(&fourth.sent).is_empty()).await;
        assert_eq!(lock(&fourth.sent)[0].1, AlertState::Firing);
    }

    #[tokio::test]
    async fn undelivered_notifications_of_a_removed_channel_are_dropped_at_start() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("alerts.json");
        let first = manager(&path);
        first.add_channel("hook", channel(false), settings());
        first.evaluate(firing_hit());
        first.save().unwrap_or_else(|e| panic!("{e}"));
        drop(first);
        let second = manager(&path);
        assert_eq!(second.undelivered(), 1);
        let ticker = second.start();
        assert_eq!(second.undelivered(), 0);
        ticker.abort();
    }
}
