//! A program's pipelines as the live engine compiles them, on a clock the
//! caller moves, with outputs discarded and notifications kept in the alert
//! manager (no channels): what `weir test` and backtests run.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use weir_dsl::CheckedProgram;
use weir_engine::alerting::{AlertSettings, ManualClock};
use weir_engine::functions::TableCache;
use weir_engine::pipeline::{compile_pipelines, CompiledPipeline};
use weir_engine::{AlertManager, EngineError, Metrics, Sink};

/// Outputs are not written.
struct Discard;

#[async_trait::async_trait]
impl Sink for Discard {
    async fn write(&self, _: &arrow::record_batch::RecordBatch) -> weir_engine::Result<()> {
        Ok(())
    }
    async fn flush(&self) -> weir_engine::Result<()> {
        Ok(())
    }
}

/// Every output `program` names (and the built-in ones), writing nowhere:
/// for runs that must have no effect (rule tests, backtests, shadows).
pub fn discarded_outputs(program: &CheckedProgram) -> HashMap<String, Arc<dyn Sink>> {
    program
        .outputs
        .iter()
        .map(|o| o.name.name.as_str())
        .chain(weir_dsl::connectors::BUILTIN_OUTPUTS.iter().copied())
        .map(|name| (name.to_string(), Arc::new(Discard) as Arc<dyn Sink>))
        .collect()
}

pub struct Simulated {
    pub clock: Arc<ManualClock>,
    pub manager: Arc<AlertManager>,
    /// Each keeps its output rows for [`Simulated::take_rows`].
    pub pipelines: Vec<CompiledPipeline>,
}

impl Simulated {
    /// Compiles `program` (lookup tables relative to `base_dir`) with the
    /// clock at `start_us`. Unrouted notifications are not logged.
    pub fn new(
        program: &CheckedProgram,
        base_dir: PathBuf,
        start_us: i64,
        settings: AlertSettings,
    ) -> weir_engine::Result<Simulated> {
        let clock = Arc::new(ManualClock::new(start_us));
        // Simulated alerts notify no one: nothing to remember.
        let settings = AlertSettings {
            log_unrouted: false,
            sent_log: None,
            ..settings
        };
        let manager =
            AlertManager::new(clock.clone(), settings, None).map_err(EngineError::Internal)?;
        let metrics = Metrics::new(&prometheus::Registry::new())
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let outputs = discarded_outputs(program);
        let mut tables = TableCache::new(base_dir);
        let mut pipelines =
            compile_pipelines(program, &mut tables, &outputs, manager.clone(), &metrics)?;
        for p in &mut pipelines {
            p.keep_output();
        }
        Ok(Simulated {
            clock,
            manager,
            pipelines,
        })
    }

    /// The rows every pipeline emitted since the last call, with its name.
    pub fn take_rows(&mut self) -> anyhow::Result<Vec<(String, Map<String, Value>)>> {
        let mut out = Vec::new();
        for p in &mut self.pipelines {
            for b in p.take_output() {
                for row in weir_engine::output::rows_as_json(&b)? {
                    out.push((p.name.clone(), row));
                }
            }
        }
        Ok(out)
    }
}
