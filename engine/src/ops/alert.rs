//! `| alert "NAME" when COND ...`: evaluates the condition on each closed
//! window row and hands the matches, plus how far window time has got, to the
//! alert manager (which runs the lifecycle). Each match carries its
//! evidence: the window's sample events (its `_evidence` field, which is not
//! a value of the alert) and the query reproducing the window. Rows pass on
//! unchanged.
//!
//! After a window that keeps state per source partition (its rows carry
//! `_partition`, see `ops::window`), the rule's open alerts are state of
//! those partitions too: the operator remembers each alert's partition,
//! saves a partition's alerts with its windows, forgets them when the
//! partition is taken away and takes them in with the partition — so the
//! process that gets a key's windows also gets its pending and firing
//! alerts, and neither notifies a transition twice.

use super::Operator;
use crate::alerting::{AlertRule, AlertSink, Evaluation, Evidence, Hit};
use crate::error::{EngineError, Result};
use crate::expr::PhysicalExpr;
use crate::rows::filter_batch;
use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;
use prometheus::IntCounter;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use weir_dsl::plan::EvidencePlan;
use weir_dsl::types::{EVIDENCE, PARTITION, WINDOW_END, WINDOW_START};

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
    /// After a per-partition window: each open alert's partition, by
    /// fingerprint (`None`: alerts are the process's).
    pub partitions: Option<HashMap<String, i64>>,
    /// What the alert state means, for checkpoints (per-partition only).
    pub definition: String,
}

/// One partition's open alerts of a rule, in a checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct PartitionAlerts {
    partition: i64,
    alerts: Vec<crate::alerting::Alert>,
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
        let per_partition = s.input.index_of(PARTITION).is_some();
        if per_partition {
            // Open alerts of the rule come with their partitions (a
            // process's saved alert state may hold keys another process
            // has by now).
            s.alerts.forget(s.pipeline, &a.name, None);
        }
        Ok(AlertOp {
            definition: format!("alert {:?} of pipeline {:?}", a.name, s.pipeline),
            partitions: per_partition.then(HashMap::new),
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

    fn hits(&mut self, hits: &RecordBatch) -> Result<Vec<Hit>> {
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
            let mut partition = None;
            for (k, v) in row {
                if k == WINDOW_START || k == WINDOW_END {
                    continue;
                }
                if k == PARTITION && self.partitions.is_some() {
                    partition = v.as_i64();
                    continue;
                }
                if self.group_fields.contains(&k) {
                    group.insert(k, crate::alerting::tracker::value_text(&v));
                } else {
                    values.insert(k, v);
                }
            }
            let hit = Hit {
                group,
                values,
                window_start_us: start,
                window_end_us: end,
                evidence: Some(std::sync::Arc::new(evidence)),
            };
            if let (Some(parts), Some(p)) = (self.partitions.as_mut(), partition) {
                let labels = crate::alerting::tracker::labels_of(&self.rule, &hit);
                let fp = crate::alerting::tracker::fingerprint(
                    &self.rule.pipeline,
                    &self.rule.name,
                    &labels,
                );
                parts.insert(fp, p);
            }
            out.push(hit);
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

    fn state_definition(&self) -> Option<&str> {
        self.partitions.as_ref().map(|_| self.definition.as_str())
    }

    fn per_partition(&self) -> bool {
        self.partitions.is_some()
    }

    fn snapshot_partitions(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        let Some(parts) = &self.partitions else {
            return Ok(Vec::new());
        };
        let mut by_part: BTreeMap<i64, Vec<crate::alerting::Alert>> = BTreeMap::new();
        for a in self.sink.export(&self.rule.pipeline, &self.rule.name) {
            if let Some(&p) = parts.get(&a.fingerprint) {
                by_part.entry(p).or_default().push(a);
            }
        }
        by_part
            .into_iter()
            .map(|(partition, alerts)| {
                let bytes = serde_json::to_vec(&PartitionAlerts { partition, alerts })?;
                Ok((partition, bytes))
            })
            .collect()
    }

    fn restore_partition(&mut self, state: &[u8]) -> Result<()> {
        let Some(parts) = self.partitions.as_mut() else {
            return Ok(());
        };
        let saved: PartitionAlerts = serde_json::from_slice(state)
            .map_err(|e| EngineError::Internal(format!("alert state unreadable: {e}")))?;
        for a in &saved.alerts {
            parts.insert(a.fingerprint.clone(), saved.partition);
        }
        self.sink.import(saved.alerts);
        Ok(())
    }

    fn revoke_partitions(&mut self, ids: &[i64]) {
        let Some(parts) = self.partitions.as_mut() else {
            return;
        };
        let gone: Vec<String> = parts
            .iter()
            .filter(|(_, p)| ids.contains(p))
            .map(|(fp, _)| fp.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        for fp in &gone {
            parts.remove(fp);
        }
        self.sink
            .forget(&self.rule.pipeline, &self.rule.name, Some(&gone));
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let mask = self.condition.eval_predicate(&batch)?;
        if mask.true_count() == 0 {
            return Ok(vec![batch]);
        }
        let hits = self.hits(&filter_batch(&batch, &mask)?)?;
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
