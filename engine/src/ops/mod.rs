//! Operators: the steps of a pipeline. Each takes record batches and returns
//! record batches; windows also emit when event time moves on or the stream ends.

pub mod aggregate;
pub mod alert;
pub mod filter;
pub mod geoip;
pub mod transform;
pub mod window;

use crate::error::Result;
use arrow::record_batch::RecordBatch;

/// One synchronous step of a pipeline.
pub trait Operator: Send + Sync {
    /// A short name for metrics (`where`, `set`, `window`...).
    fn name(&self) -> &'static str;

    /// Processes one batch, returning zero or more batches for the next step.
    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>>;

    /// Called when no data arrived for a while: `idle_us` of wall-clock time
    /// passed. Windows use it to move event time on for idle streams.
    fn on_idle(&mut self, _idle_us: i64) -> Result<Vec<RecordBatch>> {
        Ok(Vec::new())
    }

    /// The stream ended: emit everything still held.
    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        Ok(Vec::new())
    }
}
