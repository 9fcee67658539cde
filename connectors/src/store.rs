//! Opens the object store an archive URL names: a local folder (`file://` or a
//! plain path, the default) or S3-compatible storage (`s3://bucket/prefix`),
//! through `object_store`, so the archive writer, retention, compaction and
//! the SQL engine share one code path.
//!
//! S3 settings come from the standard `AWS_*` environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`...) and from the `[storage]` table of the
//! config file, whose keys are object_store's configuration keys (e.g.
//! `aws_endpoint`, `aws_region`, `aws_allow_http`,
//! `aws_virtual_hosted_style_request`). Secrets belong in the environment.

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, RetryConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::{EngineError, Result};

/// The `[storage]` table: object-store options for `s3://` archives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// object_store configuration keys and values, e.g.
    /// `aws_endpoint = "http://127.0.0.1:9000"`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// An opened archive location: the store and the prefix inside it.
#[derive(Clone)]
pub struct ArchiveLocation {
    pub store: Arc<dyn ObjectStore>,
    /// Folder inside the store ("" for its root), without a trailing slash.
    pub prefix: String,
    /// The URL, for messages (`s3://bucket/prefix`, or the folder).
    pub url: String,
}

impl std::fmt::Debug for ArchiveLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveLocation")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Retries of S3 requests: long enough to ride out a short outage (about a
/// minute of backoff in all), bounded so a dead endpoint is reported.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 20,
        retry_timeout: Duration::from_secs(120),
    }
}

/// `p`, or `base/p` when `p` is relative.
pub fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Opens `url` (or `default_folder` when there is none). Relative folders are
/// resolved against `base`.
pub fn open(
    url: Option<&str>,
    default_folder: &Path,
    base: &Path,
    storage: &StorageConfig,
) -> Result<ArchiveLocation> {
    let resolve = |p: &str| resolve(base, p);
    let folder = match url {
        None => default_folder.to_path_buf(),
        Some(u) => match u.split_once("://") {
            Some(("file", rest)) => resolve(rest),
            Some(("s3", rest)) => return open_s3(u, rest, storage),
            Some((scheme, _)) => {
                return Err(EngineError::connector(
                    "archive",
                    format!("`{scheme}://` archives are not supported; use s3://bucket/prefix, file:// or a folder"),
                ))
            }
            None => resolve(u),
        },
    };
    std::fs::create_dir_all(&folder)
        .map_err(|e| EngineError::io(format!("creating {}", folder.display()), e))?;
    let store = LocalFileSystem::new_with_prefix(&folder)
        .map_err(|e| EngineError::connector("archive", e.to_string()))?;
    Ok(ArchiveLocation {
        store: Arc::new(store),
        prefix: String::new(),
        url: folder.display().to_string(),
    })
}

fn open_s3(url: &str, rest: &str, storage: &StorageConfig) -> Result<ArchiveLocation> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(EngineError::connector(
            "archive",
            format!("`{url}` names no bucket; write s3://BUCKET[/prefix]"),
        ));
    }
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry_config());
    for (k, v) in &storage.options {
        let key = AmazonS3ConfigKey::from_str(k).map_err(|_| {
            EngineError::connector(
                "archive",
                format!("[storage] option `{k}` is not an S3 setting (e.g. aws_endpoint, aws_region, aws_allow_http)"),
            )
        })?;
        b = b.with_config(key, v);
    }
    let store = b
        .build()
        .map_err(|e| EngineError::connector("archive", format!("{url}: {e}")))?;
    Ok(ArchiveLocation {
        store: Arc::new(store),
        prefix: prefix.trim_end_matches('/').to_string(),
        url: url.to_string(),
    })
}
