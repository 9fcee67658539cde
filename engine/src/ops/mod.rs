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

    /// Event time moved to `ts` (a simulated clock in `weir test`): windows
    /// ending by then (less lateness) close.
    fn advance_to(&mut self, _ts: i64) -> Result<Vec<RecordBatch>> {
        Ok(Vec::new())
    }

    /// Event time up to which this operator has emitted everything (windows),
    /// so later steps can tell a quiet key from a late one.
    fn watermark(&self) -> Option<i64> {
        None
    }

    /// The watermark of an earlier step moved (after its batches were processed).
    fn on_watermark(&mut self, _watermark: i64) -> Result<Vec<RecordBatch>> {
        Ok(Vec::new())
    }

    /// The stream ended: emit everything still held.
    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        Ok(Vec::new())
    }
}
