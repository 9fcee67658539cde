//! Shadow versions of a live pipeline: a new version of pipeline NAME runs
//! beside it on the same source (attached to the live source's fan-out,
//! never slowing it: see `weir_engine::runtime::Attach::shadow`), its
//! outputs discarded and its alerts kept in an alert manager of its own
//! that notifies nobody. A report compares its alerts with the live
//! pipeline's since the shadow started; promotion puts the shadow's
//! pipeline into the live rules text and redeploys it; discarding stops
//! it.

use crate::engine_host::{DeployError, EngineHost};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use weir_engine::alerting::{rfc3339, AlertSettings, SystemClock};
use weir_engine::functions::TableCache;
use weir_engine::pipeline::compile_pipelines;
use weir_engine::runtime::Shadow;
use weir_engine::{AlertManager, HistoryEntry};

/// Transitions a shadow's alert manager keeps.
const SHADOW_HISTORY: usize = 10_000;

/// A running shadow of one live pipeline.
pub struct ShadowRun {
    /// The rules text it was deployed from (its pipeline is what a
    /// promotion puts into the live text).
    pub file: String,
    pub text: String,
    pub started_us: i64,
    pub alerts: Arc<AlertManager>,
    pub run: Shadow,
    ticker: tokio::task::JoinHandle<()>,
}

impl ShadowRun {
    fn stop(&self) {
        self.run.cancel.cancel();
        self.ticker.abort();
    }
}

/// Why a shadow cannot be started, found, promoted.
pub enum ShadowError {
    Deploy(DeployError),
    NotFound(String),
    Invalid(String),
}

impl From<DeployError> for ShadowError {
    fn from(e: DeployError) -> Self {
        ShadowError::Deploy(e)
    }
}

impl EngineHost {
    /// Starts `text` (holding one pipeline, named `name`) as a shadow of
    /// the live pipeline `name`, replacing an earlier shadow of it.
    pub async fn deploy_shadow(
        &self,
        name: &str,
        file: &str,
        text: &str,
        base_dir: PathBuf,
        sandbox: Option<&crate::auth::sandbox::Sandbox>,
    ) -> Result<(), ShadowError> {
        let program = crate::rules::compile_sandboxed(file, text, sandbox)
            .map_err(|e| ShadowError::Deploy(DeployError::Rules(e)))?;
        let [cp] = program.pipelines.as_slice() else {
            return Err(ShadowError::Invalid(format!(
                "a shadow is one pipeline, the new version of `{name}`; the text has {}",
                program.pipelines.len()
            )));
        };
        if cp.pipeline.name.name != name {
            return Err(ShadowError::Invalid(format!(
                "the text's pipeline is `{}`, not `{name}`: a shadow keeps the name of the pipeline it shadows",
                cp.pipeline.name.name
            )));
        }
        let source = cp.pipeline.from.name.clone();
        let (attach, live_schema) = self
            .live_source(name, &source)
            .await
            .map_err(ShadowError::NotFound)?;
        let shadow_schema = program.source(&source).map(|s| s.schema.clone());
        if shadow_schema.as_ref() != Some(&live_schema) {
            return Err(ShadowError::Invalid(format!(
                "the shadow's source `{source}` must declare the same fields as the live one (the shadow reads the live source's events)"
            )));
        }
        let settings = AlertSettings {
            repeat_interval: std::time::Duration::from_secs(3600),
            history: SHADOW_HISTORY,
            state_file: None,
            log_unrouted: false,
            console_url: None,
            sent_log: None,
        };
        let alerts = AlertManager::new(Arc::new(SystemClock), settings, None)
            .map_err(|e| ShadowError::Invalid(e.to_string()))?;
        // Its own metrics names (`NAME@shadow`), outputs that discard.
        let mut program = program.clone();
        if let Some(p) = program.pipelines.first_mut() {
            p.pipeline.name.name = format!("{name}@shadow");
        }
        let outputs = crate::simulated::discarded_outputs(&program);
        let mut tables = TableCache::new(base_dir);
        let compiled = compile_pipelines(
            &program,
            &mut tables,
            &outputs,
            alerts.clone(),
            &self.metrics,
        )
        .map_err(|error| DeployError::Plan {
            file: file.to_string(),
            text: text.to_string(),
            error,
        })?;
        let Some(p) = compiled.into_iter().next() else {
            return Err(ShadowError::Invalid("nothing to run".into()));
        };
        let run = attach.shadow(p, &self.metrics).map_err(|e| {
            ShadowError::NotFound(format!("the live source `{source}` has ended: {e}"))
        })?;
        let ticker = alerts.start();
        let shadow = ShadowRun {
            file: file.to_string(),
            text: text.to_string(),
            started_us: alerts.now_us(),
            alerts,
            run,
            ticker,
        };
        if let Some(old) = self.shadows.lock().await.insert(name.to_string(), shadow) {
            old.stop();
        }
        Ok(())
    }

    /// What the shadow of `name` did differently: alerts that fired only
    /// live, only in the shadow, or in both, since the shadow started.
    pub async fn shadow_report(&self, name: &str) -> Option<Value> {
        let shadows = self.shadows.lock().await;
        let s = shadows.get(name)?;
        let shadow = s.alerts.history(usize::MAX);
        let alerts = self.compare(name, s, &shadow);
        let history: Vec<Value> = shadow
            .iter()
            .rev()
            .take(100)
            .map(|h| {
                let mut v = serde_json::to_value(h).unwrap_or(Value::Null);
                v["shadow"] = json!(true);
                v
            })
            .collect();
        Some(json!({
            "pipeline": name,
            "since": rfc3339(s.started_us),
            "file": s.file,
            "running": !s.run.task.is_finished(),
            "skipped_events": s.run.skipped.load(std::sync::atomic::Ordering::Relaxed),
            "alerts": alerts,
            "open": s.alerts.open(),
            "history": history,
        }))
    }

    /// The shadow of `name` in a few numbers, for the pipelines list:
    /// since, running, skipped events, and how many alerts fired only in
    /// it, only live, in both.
    pub async fn shadow_summary(&self, name: &str) -> Option<Value> {
        let shadows = self.shadows.lock().await;
        let s = shadows.get(name)?;
        let alerts = self.compare(name, s, &s.alerts.history(usize::MAX));
        let n = |k: &str| alerts[k].as_array().map_or(0, Vec::len);
        Some(json!({
            "since": rfc3339(s.started_us),
            "running": !s.run.task.is_finished(),
            "skipped_events": s.run.skipped.load(std::sync::atomic::Ordering::Relaxed),
            "only_shadow": n("only_shadow"),
            "only_live": n("only_live"),
            "both": n("both"),
        }))
    }

    /// The alerts that fired since the shadow `s` of `name` started: only
    /// live, only in the shadow (`shadow`: its history), in both — each by
    /// rule and labels, with its first firing time and count.
    fn compare(&self, name: &str, s: &ShadowRun, shadow: &[HistoryEntry]) -> Value {
        let live: Vec<HistoryEntry> = self
            .alerts
            .history(usize::MAX)
            .into_iter()
            .filter(|h| h.alert.pipeline == name && h.time_us >= s.started_us)
            .collect();
        let first_firing = |entries: &[HistoryEntry]| {
            let mut m: BTreeMap<(String, String), (String, usize)> = BTreeMap::new();
            for h in entries
                .iter()
                .filter(|h| h.event == "firing" && h.channel.is_none())
            {
                let key = (h.alert.rule.clone(), labels(&h.alert.labels));
                let e = m.entry(key).or_insert((h.time.clone(), 0));
                e.0 = e.0.clone().min(h.time.clone());
                e.1 += 1;
            }
            m
        };
        let (l, sh) = (first_firing(&live), first_firing(shadow));
        let entry = |k: &(String, String)| json!({ "rule": k.0, "labels": k.1 });
        let mut only_live = Vec::new();
        let mut only_shadow = Vec::new();
        let mut both = Vec::new();
        for (k, (t, n)) in &l {
            match sh.get(k) {
                Some((st, sn)) => {
                    let mut e = entry(k);
                    e["live_first_firing"] = json!(t);
                    e["shadow_first_firing"] = json!(st);
                    e["live_firings"] = json!(n);
                    e["shadow_firings"] = json!(sn);
                    both.push(e);
                }
                None => {
                    let mut e = entry(k);
                    e["first_firing"] = json!(t);
                    e["firings"] = json!(n);
                    only_live.push(e);
                }
            }
        }
        for (k, (t, n)) in sh.iter().filter(|(k, _)| !l.contains_key(*k)) {
            let mut e = entry(k);
            e["first_firing"] = json!(t);
            e["firings"] = json!(n);
            only_shadow.push(e);
        }
        json!({ "only_live": only_live, "only_shadow": only_shadow, "both": both })
    }

    /// Stops the shadow of `name`; false if it has none.
    pub async fn discard_shadow(&self, name: &str) -> bool {
        match self.shadows.lock().await.remove(name) {
            Some(s) => {
                s.stop();
                true
            }
            None => false,
        }
    }

    /// Replaces the live pipeline `name` with its shadow: the live rules
    /// text with the shadow's pipeline in place of `name`'s is deployed
    /// instead of it (its sources restart; windows over a replayable source
    /// go on from the live pipeline's saved state when their definition is
    /// unchanged). If the new text does not deploy, the old one is deployed
    /// again and the error returned. Returns the pipelines now running.
    pub async fn promote_shadow(
        &self,
        name: &str,
        base_dir: PathBuf,
        sandbox: Option<&crate::auth::sandbox::Sandbox>,
    ) -> Result<Vec<String>, ShadowError> {
        let Some(shadow) = self.shadows.lock().await.remove(name) else {
            return Err(ShadowError::NotFound(format!("`{name}` has no shadow")));
        };
        shadow.stop();
        let (file, live_text) = self
            .live_text(name)
            .await
            .ok_or_else(|| ShadowError::NotFound(format!("no running pipeline named `{name}`")))?;
        let text = splice(&live_text, &shadow.text, name).map_err(ShadowError::Invalid)?;
        self.stop_deployment_of(name).await;
        match self
            .deploy(&file, &text, base_dir.clone(), true, sandbox)
            .await
        {
            Ok(names) => Ok(names),
            Err(e) => {
                if let Err(again) = self
                    .deploy(&file, &live_text, base_dir, true, sandbox)
                    .await
                {
                    tracing::error!(pipeline = %name, error = %again.render(), "the live rules could not be deployed again after a failed promotion");
                }
                Err(ShadowError::Deploy(e))
            }
        }
    }
}

/// Labels as one text (`k=v, …`), for keys and reports.
fn labels(l: &BTreeMap<String, String>) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `live` with its pipeline `name` replaced by the pipeline `name` of
/// `shadow`.
fn splice(live: &str, shadow: &str, name: &str) -> Result<String, String> {
    let block = |text: &str, which: &str| -> Result<(usize, usize), String> {
        let ast = weir_dsl::parse(text).map_err(|_| format!("the {which} rules do not parse"))?;
        ast.pipelines
            .iter()
            .find(|p| p.name.name == name)
            .map(|p| (p.span.start, p.span.end))
            .ok_or_else(|| format!("the {which} rules have no pipeline `{name}`"))
    };
    let (ls, le) = block(live, "live")?;
    let (ss, se) = block(shadow, "shadow")?;
    let (Some(head), Some(body), Some(tail)) = (live.get(..ls), shadow.get(ss..se), live.get(le..))
    else {
        return Err("the pipeline's place in the text is not where it was parsed".into());
    };
    Ok(format!("{head}{body}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_puts_the_shadow_pipeline_in_place_of_the_live_one() {
        let live = "source app = stdin() format json\npipeline a {\n  from app\n  | where severity >= error\n}\npipeline b {\n  from app\n}\n";
        let shadow = "source app = stdin() format json\npipeline a {\n  from app\n  | where severity >= warn\n}\n";
        let out = splice(live, shadow, "a").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out,
            "source app = stdin() format json\npipeline a {\n  from app\n  | where severity >= warn\n}\npipeline b {\n  from app\n}\n"
        );
        assert!(splice(live, shadow, "c").is_err());
    }
}
