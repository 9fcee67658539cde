//! Parquet footers read through the query runtime's metadata cache: the
//! footer an index lookup or a replay plan reads first is the one the scan
//! then finds in the cache, instead of reading and decoding it twice.

use datafusion::common::Result;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::{ObjectMeta, ObjectStore};
use parquet::file::metadata::ParquetMetaData;
use std::sync::Arc;

/// `file`'s footer (with its page index, as the scan reads it), from the
/// runtime's cache or the store.
pub async fn footer(
    runtime: &RuntimeEnv,
    store: &dyn ObjectStore,
    file: &ObjectMeta,
) -> Result<Arc<ParquetMetaData>> {
    DFParquetMetadata::new(store, file)
        .with_file_metadata_cache(Some(runtime.cache_manager.get_file_metadata_cache()))
        .fetch_metadata()
        .await
}
