//! Opens where checkpointed state is kept (`state` in weir.toml): a folder
//! (the default, `DATA/state`) or an object store — `s3://bucket/prefix`,
//! `gs://…`, `az://…`, with the archive's `[storage]` options — so the
//! processes of a consumer group on several machines hand window state on
//! with their partitions and share the log of delivered notifications.
//!
//! The engine reads and writes state through the blocking
//! [`StateFiles`] calls; [`ObjectFiles`] runs each request on a small
//! runtime of its own and waits for it, so a call is safe from any thread,
//! inside or outside an async runtime. Each write is one PUT: an object
//! appears whole or not at all, as a renamed file does.

use crate::store::{self, ArchiveLocation, StorageConfig};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
use weir_engine::state_files::{Folder, StateFiles};
use weir_engine::{EngineError, Result};

/// The state files `url` names (`None`: `default_folder`). A folder may be
/// given as a path or `file://PATH`.
pub fn open(
    url: Option<&str>,
    default_folder: &Path,
    storage: &StorageConfig,
) -> Result<Arc<dyn StateFiles>> {
    let Some(url) = url else {
        return Ok(Arc::new(Folder::new(default_folder)));
    };
    match url.split_once("://") {
        None => Ok(Arc::new(Folder::new(url))),
        Some(("file", path)) => Ok(Arc::new(Folder::new(path))),
        Some(("s3" | "gs" | "az" | "azure", _)) => {
            let location = store::open(Some(url), default_folder, Path::new("."), storage)?;
            Ok(Arc::new(ObjectFiles::new(location)?))
        }
        Some((scheme, _)) => Err(EngineError::connector(
            "state",
            format!("`{scheme}://` is not a place for state; use a folder, s3://, gs:// or az:// (BUCKET/prefix)"),
        )),
    }
}

/// State files in an object store, under a prefix.
pub struct ObjectFiles {
    location: ArchiveLocation,
    /// Runs the requests (see the module docs).
    runtime: Bridge,
}

impl std::fmt::Debug for ObjectFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectFiles")
            .field("url", &self.location.url)
            .finish()
    }
}

impl ObjectFiles {
    pub fn new(location: ArchiveLocation) -> Result<ObjectFiles> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weir-state")
            .enable_all()
            .build()
            .map_err(|e| EngineError::io("starting the state store's runtime", e))?;
        Ok(ObjectFiles {
            location,
            runtime: Bridge(Some(runtime)),
        })
    }

    fn path(&self, name: &str) -> StorePath {
        match self.location.prefix.as_str() {
            "" => StorePath::from(name),
            prefix => StorePath::from(format!("{prefix}/{name}")),
        }
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        self.location.store.clone()
    }
}

impl StateFiles for ObjectFiles {
    fn read(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        let (store, path) = (self.store(), self.path(name));
        self.runtime.run(async move {
            match store.get(&path).await {
                Ok(got) => Ok(Some(got.bytes().await.map_err(other)?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(other(e)),
            }
        })?
    }

    fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let (store, path) = (self.store(), self.path(name));
        let payload = PutPayload::from(bytes.to_vec());
        self.runtime.run(async move {
            store.put(&path, payload).await.map_err(other)?;
            Ok(())
        })?
    }

    fn remove(&self, name: &str) -> std::io::Result<bool> {
        let (store, path) = (self.store(), self.path(name));
        self.runtime.run(async move {
            // A DELETE of an absent object succeeds on S3: ask first.
            match store.head(&path).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(other(e)),
            }
            store.delete(&path).await.map_err(other)?;
            Ok(true)
        })?
    }

    fn list(&self, folder: &str) -> std::io::Result<Vec<(String, SystemTime)>> {
        let (store, dir) = (self.store(), self.path(folder));
        self.runtime.run(async move {
            let found: Vec<object_store::ObjectMeta> =
                store.list(Some(&dir)).try_collect().await.map_err(other)?;
            Ok(found
                .into_iter()
                .filter_map(|meta| {
                    let mut rest = meta.location.prefix_match(&dir)?;
                    let name = rest.next()?.as_ref().to_string();
                    // Directly in the folder only.
                    rest.next()
                        .is_none()
                        .then(|| (name, SystemTime::from(meta.last_modified)))
                })
                .collect())
        })?
    }

    fn location(&self) -> String {
        self.location.url.clone()
    }
}

fn other(e: object_store::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A runtime of its own, shut down without waiting when dropped (which may
/// happen inside another runtime, where waiting is not allowed).
struct Bridge(Option<tokio::runtime::Runtime>);

impl Bridge {
    /// Runs `fut` on this runtime and waits for its output.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> std::io::Result<T> {
        let Some(rt) = &self.0 else {
            return Err(std::io::Error::other("the state store is closed"));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| std::io::Error::other("the state store's request was cut off"))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn in_memory(prefix: &str) -> ObjectFiles {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        ObjectFiles::new(ArchiveLocation {
            root: store.clone(),
            store,
            prefix: prefix.into(),
            url: format!("memory://{prefix}"),
            root_url: url::Url::parse("memory:///").unwrap(),
        })
        .unwrap()
    }

    fn exercise(files: &dyn StateFiles) {
        assert_eq!(files.read("p/1.state").unwrap(), None);
        assert!(files.list("p").unwrap().is_empty());
        files.write("p/1.state", b"one").unwrap();
        files.write("p/1.state", b"two").unwrap();
        files.write("p/2.owner", b"me").unwrap();
        files.write("p/sub/3.state", b"deeper").unwrap();
        files.write("p.state", b"whole").unwrap();
        assert_eq!(
            files.read("p/1.state").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        let mut names: Vec<String> = files
            .list("p")
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        assert_eq!(names, vec!["1.state".to_string(), "2.owner".to_string()]);
        assert!(files.remove("p/1.state").unwrap());
        assert!(!files.remove("p/1.state").unwrap());
        assert_eq!(files.read("p/1.state").unwrap(), None);
    }

    #[test]
    fn an_object_store_keeps_named_files_as_a_folder_does() {
        let dir = tempfile::tempdir().unwrap();
        exercise(&Folder::new(dir.path().join("state")));
        // No temporary file is left in the folder.
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join("state/p"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["2.owner", "sub"]);
        exercise(&in_memory("state"));
        exercise(&in_memory(""));
    }

    /// The engine calls the state files from async tasks (a partition's
    /// claim on assignment) on single-threaded runtimes too.
    #[tokio::test(flavor = "current_thread")]
    async fn its_blocking_calls_work_inside_a_single_threaded_runtime() {
        let files = in_memory("state");
        files.write("a", b"x").unwrap();
        assert_eq!(files.read("a").unwrap().as_deref(), Some(&b"x"[..]));
        // Dropped inside the runtime: no panic.
        drop(files);
    }

    #[test]
    fn an_unknown_scheme_is_a_clear_error() {
        let e = open(
            Some("ftp://host/state"),
            Path::new("x"),
            &StorageConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`ftp://` is not a place for state"), "{e}");
    }
}
