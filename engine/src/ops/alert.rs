//! `| alert "NAME" when COND ...`: evaluates the condition on each closed
//! window row and hands the matches, plus how far window time has got, to the
//! alert manager (which runs the lifecycle). Each match carries its
//! evidence: the window's sample events (its `_evidence` field, which is not
//! a value of the alert) and the query reproducing the window. Rows pass on
//! unchanged.

use super::Operator;
use crate::alerting::{AlertRule, AlertSink, Evaluation, Evidence, Hit};
use crate::error::{EngineError, Result};
use crate::expr::PhysicalExpr;
use arrow::array::{Array, AsArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;
use prometheus::IntCounter;
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_dsl::plan::EvidencePlan;
use weir_dsl::types::{EVIDENCE, WINDOW_END, WINDOW_START};

pub struct AlertOp {
    pub rule: Arc<AlertRule>,
    pub condition: PhysicalExpr,
    /// Fields that identify the group (become labels); the rest become values.
    pub group_fields: Vec<String>,
    pub sink: Arc<dyn AlertSink>,
    pub matched: IntCounter,
    /// Window time up to which evaluations were reported.
    pub closed_until: i64,
    pub evidence: EvidencePlan,
}

impl AlertOp {
    /// `| alert "NAME" when COND ...`, reading the window the checker found
    /// before it.
    pub fn from_stage(
        a: &weir_dsl::ast::AlertSpec,
        s: &mut super::StageContext,
    ) -> Result<AlertOp> {
        let weir_dsl::plan::StagePlan::Alert(p) = s.plan else {
            return Err(s.wrong_plan("alert"));
        };
        let pairs = |kv: &[(weir_dsl::ast::Ident, String)]| {
            kv.iter()
                .map(|(k, v)| (k.name.clone(), v.clone()))
                .collect()
        };
        let rule = AlertRule {
            name: a.name.clone(),
            pipeline: s.pipeline.to_string(),
            severity: p.severity.clone(),
            labels: pairs(&a.labels),
            annotations: pairs(&a.annotations),
            notify: a.notify.iter().map(|n| n.name.clone()).collect(),
            for_us: p.for_us,
            resolve_after_us: p.resolve_after_us,
        };
        Ok(AlertOp {
            rule: Arc::new(rule),
            condition: s.compile(&a.condition)?,
            group_fields: p.group_fields.clone(),
            sink: s.alerts.clone(),
            matched: s
                .metrics
                .alerts
                .with_label_values(&[s.pipeline, &a.name, &p.severity]),
            closed_until: i64::MIN,
            evidence: p.evidence.clone(),
        })
    }

    fn hits(&self, hits: &RecordBatch) -> Result<Vec<Hit>> {
        let times = |name: &str| {
            hits.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
                .cloned()
                .ok_or_else(|| EngineError::Internal(format!("alert: the window has no `{name}`")))
        };
        let starts = times(WINDOW_START)?;
        let ends = times(WINDOW_END)?;
        // The samples are JSON already: read as text, not written and read
        // again as a JSON string of the row.
        let samples = hits
            .schema()
            .index_of(EVIDENCE)
            .ok()
            .map(|i| (i, hits.column(i).as_string_opt::<i32>().cloned()));
        let rows = match &samples {
            Some((i, _)) => {
                let mut rest = hits.clone();
                rest.remove_column(*i);
                crate::output::rows_as_json(&rest)?
            }
            None => crate::output::rows_as_json(hits)?,
        };
        let samples = samples.and_then(|(_, s)| s);
        let at = |a: &arrow::array::TimestampMicrosecondArray, i: usize| {
            if a.is_null(i) {
                0
            } else {
                a.value(i)
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            let mut group = BTreeMap::new();
            let mut values = serde_json::Map::new();
            let (start, end) = (at(&starts, i), at(&ends, i));
            let sampled = samples
                .as_ref()
                .filter(|s| s.is_valid(i))
                .map(|s| s.value(i));
            let evidence = Evidence::of_window(&self.evidence, start, end, &row, sampled);
            for (k, v) in row {
                if k == WINDOW_START || k == WINDOW_END {
                    continue;
                }
                if self.group_fields.contains(&k) {
                    group.insert(k, crate::alerting::tracker::value_text(&v));
                } else {
                    values.insert(k, v);
                }
            }
            out.push(Hit {
                group,
                values,
                window_start_us: start,
                window_end_us: end,
                evidence: Some(std::sync::Arc::new(evidence)),
            });
        }
        Ok(out)
    }
}

impl Operator for AlertOp {
    fn name(&self) -> &'static str {
        "alert"
    }

    fn save_job(&self) -> Option<crate::alerting::rule::SaveJob> {
        self.sink.save_job()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let mask = self.condition.eval_predicate(&batch)?;
        if mask.true_count() == 0 {
            return Ok(vec![batch]);
        }
        let hits = self.hits(&filter_record_batch(&batch, &mask)?)?;
        self.matched.inc_by(hits.len() as u64);
        self.sink.evaluate(Evaluation {
            rule: self.rule.clone(),
            hits,
            closed_until_us: None,
        });
        Ok(vec![batch])
    }

    fn on_watermark(&mut self, watermark: i64) -> Result<Vec<RecordBatch>> {
        if watermark > self.closed_until {
            self.closed_until = watermark;
            self.sink.evaluate(Evaluation {
                rule: self.rule.clone(),
                hits: Vec::new(),
                closed_until_us: Some(watermark),
            });
        }
        Ok(Vec::new())
    }
}
