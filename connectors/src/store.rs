//! Opens the object store an archive URL names: a local folder (`file://` or a
//! plain path, the default), S3-compatible storage (`s3://bucket/prefix`),
//! Google Cloud Storage (`gs://bucket/prefix`) or Azure Blob Storage
//! (`az://container/prefix`), through `object_store`, so the archive writer,
//! retention, compaction and the SQL engine share one code path.
//!
//! Google and Azure settings come from their `GOOGLE_*` / `AZURE_*`
//! environment variables and from `[storage]` (object_store's keys, e.g.
//! `google_service_account`, `azure_storage_account_name`).
//!
//! S3 settings come from the standard `AWS_*` environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`...) and from the `[storage]` table of the
//! config file, whose keys are object_store's configuration keys (e.g.
//! `aws_endpoint`, `aws_region`, `aws_allow_http`,
//! `aws_virtual_hosted_style_request`). Secrets belong in the environment.

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
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
    /// The store with `/` at the root of the bucket (the file system's
    /// root for a folder) and the archive's own URL in it, as Delta Lake
    /// addresses tables (see [`crate::delta`]).
    pub root: Arc<dyn ObjectStore>,
    pub root_url: url::Url,
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
            Some(("s3", rest)) => return open_cloud(u, rest, |b| s3(b, storage)),
            Some(("gs", rest)) => return open_cloud(u, rest, |b| gcs(b, storage)),
            Some(("az" | "azure", rest)) => return open_cloud(u, rest, |b| azure(b, storage)),
            Some((scheme, _)) => {
                return Err(EngineError::connector(
                    "archive",
                    format!("`{scheme}://` archives are not supported; use s3://, gs://, az:// (BUCKET/prefix), file:// or a folder"),
                ))
            }
            None => resolve(u),
        },
    };
    std::fs::create_dir_all(&folder)
        .map_err(|e| EngineError::io(format!("creating {}", folder.display()), e))?;
    let store = LocalFileSystem::new_with_prefix(&folder)
        .map_err(|e| EngineError::connector("archive", e.to_string()))?;
    let absolute = std::fs::canonicalize(&folder)
        .map_err(|e| EngineError::io(format!("resolving {}", folder.display()), e))?;
    let root_url = url::Url::from_directory_path(&absolute).map_err(|()| {
        EngineError::connector(
            "archive",
            format!("{} is not a folder path", absolute.display()),
        )
    })?;
    Ok(ArchiveLocation {
        store: Arc::new(store),
        prefix: String::new(),
        url: folder.display().to_string(),
        root: Arc::new(LocalFileSystem::new()),
        root_url,
    })
}

/// A bucket (container) store: `SCHEME://BUCKET[/prefix]`.
fn open_cloud(
    url: &str,
    rest: &str,
    build: impl FnOnce(&str) -> std::result::Result<Arc<dyn ObjectStore>, String>,
) -> Result<ArchiveLocation> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        let scheme = url.split_once("://").map_or("s3", |(s, _)| s);
        return Err(EngineError::connector(
            "archive",
            format!("`{url}` names no bucket; write {scheme}://BUCKET[/prefix]"),
        ));
    }
    let store =
        build(bucket).map_err(|e| EngineError::connector("archive", format!("{url}: {e}")))?;
    let prefix = prefix.trim_end_matches('/').to_string();
    let scheme = url.split_once("://").map_or("s3", |(s, _)| s);
    let root_url = url::Url::parse(&format!(
        "{scheme}://{bucket}/{prefix}{}",
        if prefix.is_empty() { "" } else { "/" }
    ))
    .map_err(|e| EngineError::connector("archive", format!("{url}: {e}")))?;
    Ok(ArchiveLocation {
        root: store.clone(),
        store,
        prefix,
        url: url.to_string(),
        root_url,
    })
}

/// Applies the `[storage]` options to a builder as `K` keys.
fn configure<B, K: FromStr>(
    mut builder: B,
    storage: &StorageConfig,
    set: impl Fn(B, K, &str) -> B,
    provider: &str,
    examples: &str,
) -> std::result::Result<B, String> {
    for (k, v) in &storage.options {
        let key = K::from_str(k).map_err(|_| {
            format!("[storage] option `{k}` is not a {provider} setting (e.g. {examples})")
        })?;
        builder = set(builder, key, v);
    }
    Ok(builder)
}

fn s3(bucket: &str, storage: &StorageConfig) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    let b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry_config());
    let b = configure(
        b,
        storage,
        |b, k: AmazonS3ConfigKey, v| b.with_config(k, v),
        "S3",
        "aws_endpoint, aws_region, aws_allow_http",
    )?;
    Ok(Arc::new(b.build().map_err(|e| e.to_string())?))
}

fn gcs(bucket: &str, storage: &StorageConfig) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    let b = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry_config());
    let b = configure(
        b,
        storage,
        |b, k: GoogleConfigKey, v| b.with_config(k, v),
        "Google Cloud Storage",
        "google_service_account, google_application_credentials",
    )?;
    Ok(Arc::new(b.build().map_err(|e| e.to_string())?))
}

fn azure(
    container: &str,
    storage: &StorageConfig,
) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    let b = MicrosoftAzureBuilder::from_env()
        .with_container_name(container)
        .with_retry(retry_config());
    let b = configure(
        b,
        storage,
        |b, k: AzureConfigKey, v| b.with_config(k, v),
        "Azure",
        "azure_storage_account_name, azure_storage_access_key",
    )?;
    Ok(Arc::new(b.build().map_err(|e| e.to_string())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(kv: &[(&str, &str)]) -> StorageConfig {
        StorageConfig {
            options: kv
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn open_url(url: &str, storage: &StorageConfig) -> Result<ArchiveLocation> {
        let dir = std::env::temp_dir();
        open(Some(url), &dir, &dir, storage)
    }

    #[test]
    fn cloud_urls_name_a_bucket_and_take_their_own_settings() {
        let e = open_url("gs://", &StorageConfig::default()).unwrap_err();
        assert!(e.to_string().contains("write gs://BUCKET"), "{e}");
        let e = open_url("gs://logs", &options(&[("aws_region", "x")])).unwrap_err();
        assert!(
            e.to_string().contains("not a Google Cloud Storage setting"),
            "{e}"
        );
        let az = options(&[
            ("azure_storage_account_name", "devstoreaccount1"),
            ("azure_storage_use_emulator", "true"),
        ]);
        let loc = open_url("az://logs/weir/", &az).unwrap();
        assert_eq!(
            (loc.prefix.as_str(), loc.url.as_str()),
            ("weir", "az://logs/weir/")
        );
        let e = open_url("ftp://x", &StorageConfig::default()).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }
}
