//! The alert lifecycle per fingerprint, driven by window time only (so a
//! replay or `weir test` behaves exactly like live traffic):
//!
//! - a match opens an alert in `pending` (or straight in `firing` when the
//!   rule has no `for`); it fires once its matches have covered `for`;
//! - an open alert whose key has not matched for `resolve after` of window time
//!   is `resolved` (a pending one is simply dropped).

use super::rfc3339;
use super::rule::{AlertRule, Evaluation, Hit};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Pending,
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert: a rule and one set of labels (its fingerprint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Hash of pipeline, rule and labels: the identity used for dedup.
    pub fingerprint: String,
    pub rule: String,
    pub pipeline: String,
    pub severity: String,
    pub state: AlertState,
    /// Group-by values of the window plus the rule's own labels.
    pub labels: BTreeMap<String, String>,
    /// Rendered annotation templates (from the latest match).
    pub annotations: BTreeMap<String, String>,
    /// Aggregate values of the latest matching window.
    pub values: Map<String, Value>,
    /// The latest matching window.
    pub window_start: String,
    pub window_end: String,
    /// End of the first matching window of this run of matches (like
    /// Prometheus' `activeAt`): `for` counts from here.
    pub active_since: String,
    /// Wall-clock time it started firing / resolved.
    #[serde(default)]
    pub fired_at: Option<String>,
    #[serde(default)]
    pub resolved_at: Option<String>,
    /// Channels to notify.
    pub notify: Vec<String>,
    /// The silence that held back the latest notification, if any.
    #[serde(default)]
    pub silenced_by: Option<String>,
    pub active_since_us: i64,
    /// Window end of the latest match.
    pub last_match_us: i64,
    /// Wall-clock time of the last firing notification handed to channels.
    #[serde(default)]
    pub last_notified_us: Option<i64>,
    /// Why it fired: samples of the latest matching window, its query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<std::sync::Arc<super::Evidence>>,
}

/// A lifecycle step the manager records and notifies.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Pending(Alert),
    Firing(Alert),
    Resolved(Alert),
    /// A pending alert whose matches stopped before `for` was reached.
    Dropped(Alert),
}

#[derive(Default)]
struct RuleAlerts {
    alerts: HashMap<String, Alert>,
    /// Window time up to which this rule's windows are closed.
    closed_until: i64,
    /// The earliest window time at which an open alert may expire.
    next_check: i64,
}

/// Open (pending and firing) alerts, per rule.
#[derive(Default)]
pub struct Tracker {
    rules: HashMap<(String, String), RuleAlerts>,
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Applies one evaluation at wall-clock time `now_us`.
    pub fn apply(&mut self, eval: &Evaluation, now_us: i64) -> Vec<Change> {
        let rule = &eval.rule;
        let key = (rule.pipeline.clone(), rule.name.clone());
        let ra = self.rules.entry(key).or_default();
        let mut changes = Vec::new();
        for hit in &eval.hits {
            let labels = labels_of(rule, hit);
            let fp = fingerprint(&rule.pipeline, &rule.name, &labels);
            match ra.alerts.get_mut(&fp) {
                Some(a) => {
                    update(a, rule, hit);
                    if a.state == AlertState::Pending
                        && a.last_match_us - a.active_since_us >= rule.for_us
                    {
                        a.state = AlertState::Firing;
                        a.fired_at = Some(rfc3339(now_us));
                        changes.push(Change::Firing(a.clone()));
                    }
                }
                None => {
                    let firing = rule.for_us <= 0;
                    let mut a = Alert {
                        fingerprint: fp.clone(),
                        rule: rule.name.clone(),
                        pipeline: rule.pipeline.clone(),
                        severity: rule.severity.clone(),
                        state: if firing {
                            AlertState::Firing
                        } else {
                            AlertState::Pending
                        },
                        labels,
                        annotations: BTreeMap::new(),
                        values: Map::new(),
                        window_start: String::new(),
                        window_end: String::new(),
                        active_since: rfc3339(hit.window_end_us),
                        fired_at: firing.then(|| rfc3339(now_us)),
                        resolved_at: None,
                        notify: rule.notify.clone(),
                        silenced_by: None,
                        active_since_us: hit.window_end_us,
                        last_match_us: i64::MIN,
                        last_notified_us: None,
                        evidence: None,
                    };
                    update(&mut a, rule, hit);
                    ra.next_check = ra
                        .next_check
                        .min(a.last_match_us.saturating_add(rule.resolve_after_us));
                    changes.push(if firing {
                        Change::Firing(a.clone())
                    } else {
                        Change::Pending(a.clone())
                    });
                    ra.alerts.insert(fp, a);
                }
            }
        }
        if let Some(until) = eval.closed_until_us {
            ra.closed_until = ra.closed_until.max(until);
            if ra.closed_until >= ra.next_check {
                expire(ra, rule, now_us, &mut changes);
            }
        }
        changes
    }

    /// Every open alert.
    pub fn open(&self) -> impl Iterator<Item = &Alert> {
        self.rules.values().flat_map(|r| r.alerts.values())
    }

    pub fn open_mut(&mut self) -> impl Iterator<Item = &mut Alert> {
        self.rules.values_mut().flat_map(|r| r.alerts.values_mut())
    }

    /// One open alert.
    pub fn get_mut(&mut self, pipeline: &str, rule: &str, fingerprint: &str) -> Option<&mut Alert> {
        self.rules
            .get_mut(&(pipeline.to_string(), rule.to_string()))?
            .alerts
            .get_mut(fingerprint)
    }

    pub fn len(&self) -> usize {
        self.rules.values().map(|r| r.alerts.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The open alerts of one rule.
    pub fn alerts_of(&self, pipeline: &str, rule: &str) -> Vec<Alert> {
        self.rules
            .get(&(pipeline.to_string(), rule.to_string()))
            .map(|r| r.alerts.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Drops open alerts of one rule (`None`: all), without a change.
    pub fn remove(&mut self, pipeline: &str, rule: &str, fingerprints: Option<&[String]>) {
        let key = (pipeline.to_string(), rule.to_string());
        match fingerprints {
            None => {
                self.rules.remove(&key);
            }
            Some(fps) => {
                if let Some(r) = self.rules.get_mut(&key) {
                    for fp in fps {
                        r.alerts.remove(fp);
                    }
                }
            }
        }
    }

    /// Puts back alerts saved before a restart. They expire by the window
    /// time the rule reaches after the restart.
    pub fn restore(&mut self, alerts: Vec<Alert>) {
        for a in alerts {
            let ra = self
                .rules
                .entry((a.pipeline.clone(), a.rule.clone()))
                .or_default();
            ra.next_check = i64::MIN;
            ra.alerts.insert(a.fingerprint.clone(), a);
        }
    }
}

fn expire(ra: &mut RuleAlerts, rule: &AlertRule, now_us: i64, changes: &mut Vec<Change>) {
    let until = ra.closed_until;
    let gone: Vec<String> = ra
        .alerts
        .values()
        .filter(|a| until >= a.last_match_us.saturating_add(rule.resolve_after_us))
        .map(|a| a.fingerprint.clone())
        .collect();
    for fp in gone {
        if let Some(mut a) = ra.alerts.remove(&fp) {
            if a.state == AlertState::Firing {
                a.state = AlertState::Resolved;
                a.resolved_at = Some(rfc3339(now_us));
                changes.push(Change::Resolved(a));
            } else {
                changes.push(Change::Dropped(a));
            }
        }
    }
    ra.next_check = ra
        .alerts
        .values()
        .map(|a| a.last_match_us.saturating_add(rule.resolve_after_us))
        .min()
        .unwrap_or(i64::MAX);
}

pub(crate) fn labels_of(rule: &AlertRule, hit: &Hit) -> BTreeMap<String, String> {
    let mut labels = hit.group.clone();
    for (k, v) in &rule.labels {
        labels.insert(k.clone(), v.clone());
    }
    labels
}

fn update(a: &mut Alert, rule: &AlertRule, hit: &Hit) {
    a.values = hit.values.clone();
    a.evidence = hit.evidence.clone();
    a.window_start = rfc3339(hit.window_start_us);
    a.window_end = rfc3339(hit.window_end_us);
    a.last_match_us = a.last_match_us.max(hit.window_end_us);
    a.annotations = rule
        .annotations
        .iter()
        .map(|(k, t)| {
            let text = weir_dsl::template::render(t, |name| {
                a.labels
                    .get(name)
                    .cloned()
                    .or_else(|| a.values.get(name).map(value_text))
            });
            (k.clone(), text)
        })
        .collect();
}

/// A value as text: strings bare, numbers as JSON writes them, floats rounded.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("{f:.2}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// FNV-1a 64 of pipeline, rule and sorted labels, as 16 hex digits: stable
/// across restarts and versions.
pub fn fingerprint(pipeline: &str, rule: &str, labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut feed = |s: &str| {
        for b in s.bytes().chain(std::iter::once(0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    feed(pipeline);
    feed(rule);
    for (k, v) in labels {
        feed(k);
        feed(v);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const S: i64 = 1_000_000;

    fn rule(for_s: i64) -> Arc<AlertRule> {
        Arc::new(AlertRule {
            name: "burst".into(),
            pipeline: "p".into(),
            severity: "critical".into(),
            labels: vec![("team".into(), "shop".into())],
            annotations: vec![("summary".into(), "{{errors}} errors in {{service}}".into())],
            notify: vec!["oncall".into()],
            for_us: for_s * S,
            resolve_after_us: 30 * S,
        })
    }

    fn hit(service: &str, start_s: i64, errors: i64) -> Hit {
        let mut values = Map::new();
        values.insert("errors".into(), Value::from(errors));
        Hit {
            group: BTreeMap::from([("service".to_string(), service.to_string())]),
            values,
            window_start_us: start_s * S,
            window_end_us: (start_s + 30) * S,
            evidence: None,
        }
    }

    fn eval(r: &Arc<AlertRule>, hits: Vec<Hit>, until_s: i64) -> Evaluation {
        Evaluation {
            rule: r.clone(),
            hits,
            closed_until_us: Some(until_s * S),
        }
    }

    fn kinds(c: &[Change]) -> Vec<&'static str> {
        c.iter()
            .map(|c| match c {
                Change::Pending(_) => "pending",
                Change::Firing(_) => "firing",
                Change::Resolved(_) => "resolved",
                Change::Dropped(_) => "dropped",
            })
            .collect()
    }

    #[test]
    fn fires_once_then_resolves_after_a_quiet_window() {
        let r = rule(0);
        let mut t = Tracker::new();
        let c = t.apply(&eval(&r, vec![hit("checkout", 0, 60)], 30), 0);
        assert_eq!(kinds(&c), ["firing"]);
        let Change::Firing(a) = &c[0] else { panic!() };
        assert_eq!(a.annotations["summary"], "60 errors in checkout");
        assert_eq!(a.labels["team"], "shop");
        // Still matching: no new change (deduplicated).
        let c = t.apply(&eval(&r, vec![hit("checkout", 30, 70)], 60), 0);
        assert!(c.is_empty(), "{c:?}");
        // A window closes without a match: resolved.
        let c = t.apply(&eval(&r, vec![], 90), 0);
        assert_eq!(kinds(&c), ["resolved"]);
        assert!(t.is_empty());
    }

    #[test]
    fn for_keeps_it_pending_and_a_gap_drops_it() {
        let r = rule(60);
        let mut t = Tracker::new();
        assert_eq!(
            kinds(&t.apply(&eval(&r, vec![hit("a", 0, 60)], 30), 0)),
            ["pending"]
        );
        // The next window does not match: the run of matches is broken.
        assert_eq!(kinds(&t.apply(&eval(&r, vec![], 60), 0)), ["dropped"]);
        // Matches covering 60 s of evaluations (ends 90, 120, 150) fire it.
        assert_eq!(
            kinds(&t.apply(&eval(&r, vec![hit("a", 60, 60)], 90), 0)),
            ["pending"]
        );
        assert!(t
            .apply(&eval(&r, vec![hit("a", 90, 60)], 120), 0)
            .is_empty());
        assert_eq!(
            kinds(&t.apply(&eval(&r, vec![hit("a", 120, 60)], 150), 0)),
            ["firing"]
        );
    }

    #[test]
    fn keys_are_separate_alerts_with_stable_fingerprints() {
        let r = rule(0);
        let mut t = Tracker::new();
        let c = t.apply(&eval(&r, vec![hit("a", 0, 1), hit("b", 0, 1)], 30), 0);
        assert_eq!(kinds(&c), ["firing", "firing"]);
        let fps: Vec<String> = t.open().map(|a| a.fingerprint.clone()).collect();
        assert_eq!(fps.len(), 2);
        assert_ne!(fps[0], fps[1]);
        let labels = BTreeMap::from([
            ("service".to_string(), "a".to_string()),
            ("team".to_string(), "shop".to_string()),
        ]);
        assert!(fps.contains(&fingerprint("p", "burst", &labels)));
    }
}
