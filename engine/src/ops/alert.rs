//! `| alert "NAME" when COND ...`: raises one alert for each window row whose
//! condition holds, and passes the rows on unchanged.

use super::Operator;
use crate::alert::{Alert, AlertSink};
use crate::error::Result;
use crate::expr::PhysicalExpr;
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use prometheus::IntCounter;
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_dsl::types::{WINDOW_END, WINDOW_START};

pub struct AlertOp {
    pub pipeline: String,
    pub rule: String,
    pub severity: String,
    pub labels: Vec<(String, String)>,
    pub notify: Vec<String>,
    pub condition: PhysicalExpr,
    /// Fields that identify the group (become labels); the rest become values.
    pub group_fields: Vec<String>,
    pub sink: Arc<dyn AlertSink>,
    pub fired: IntCounter,
}

impl Operator for AlertOp {
    fn name(&self) -> &'static str {
        "alert"
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let mask = self.condition.eval_predicate(&batch)?;
        if mask.true_count() == 0 {
            return Ok(vec![batch]);
        }
        let hits = filter_record_batch(&batch, &mask)?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for row in crate::output::rows_as_json(&hits)? {
            let mut labels = BTreeMap::new();
            let mut values = serde_json::Map::new();
            let mut start = String::new();
            let mut end = String::new();
            for (k, v) in row {
                if k == WINDOW_START {
                    start = json_text(&v);
                } else if k == WINDOW_END {
                    end = json_text(&v);
                } else if self.group_fields.contains(&k) {
                    labels.insert(k, json_text(&v));
                } else {
                    values.insert(k, v);
                }
            }
            for (k, v) in &self.labels {
                labels.insert(k.clone(), v.clone());
            }
            self.fired.inc();
            self.sink.emit(Alert {
                id: 0,
                rule: self.rule.clone(),
                pipeline: self.pipeline.clone(),
                severity: self.severity.clone(),
                labels,
                values,
                window_start: start,
                window_end: end,
                fired_at: now.clone(),
                notify: self.notify.clone(),
            });
        }
        Ok(vec![batch])
    }
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
