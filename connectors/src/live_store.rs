//! The archive as readers see it: an [`ObjectStore`] that lists only live
//! data files. In a stream that is a Delta table, live means in the table
//! version the reader loaded ([`LiveStore::set_table`]): files uploaded but
//! not committed, or removed by compaction or retention, are not listed.
//! In a folder archive not yet migrated, files superseded by a file
//! covering their offsets are hidden (see
//! [`maintenance::split_superseded`](crate::maintenance::split_superseded)).
//! The SQL engine reads through it, so a query never counts a row twice.
//! Everything but listing goes straight to the wrapped store.

use crate::maintenance::{split_superseded, ArchiveFile};
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// Per table folder (with a trailing slash): the paths of its live files.
type Tables = HashMap<String, Arc<HashSet<String>>>;

/// Lists only the live files of an archive under `prefix`.
#[derive(Debug)]
pub struct LiveStore {
    inner: Arc<dyn ObjectStore>,
    /// The archive's prefix in the store, with a trailing slash ("" at the root).
    prefix: String,
    tables: RwLock<Tables>,
}

impl LiveStore {
    pub fn new(inner: Arc<dyn ObjectStore>, prefix: String) -> LiveStore {
        LiveStore {
            inner,
            prefix,
            tables: RwLock::new(HashMap::new()),
        }
    }

    /// The files of a table's version, by their paths in the store.
    pub fn set_table(&self, dir: &str, files: HashSet<String>) {
        self.tables
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{}/", dir.trim_end_matches('/')), Arc::new(files));
    }

    /// `metas` without the files not live (other objects are kept).
    fn live(&self, metas: Vec<ObjectMeta>) -> Vec<ObjectMeta> {
        let tables = self
            .tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut folder = Vec::new();
        let mut out = Vec::new();
        for m in metas {
            let path = m.location.as_ref();
            match tables
                .iter()
                .find(|(dir, _)| path.starts_with(dir.as_str()))
            {
                Some((_, files)) => {
                    if files.contains(path) || !path.ends_with(".parquet") {
                        out.push(m);
                    }
                }
                None => folder.push(m),
            }
        }
        out.extend(live(folder, &self.prefix));
        out
    }
}

impl std::fmt::Display for LiveStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LiveStore({})", self.inner)
    }
}

/// `metas` without the superseded data files (other objects are kept).
fn live(metas: Vec<ObjectMeta>, prefix: &str) -> Vec<ObjectMeta> {
    let mut files = Vec::new();
    let mut other = Vec::new();
    for m in metas {
        match ArchiveFile::parse(m.clone(), prefix) {
            Some(f) => files.push(f),
            None => other.push(m),
        }
    }
    let (live, _) = split_superseded(files);
    other.extend(live.into_iter().map(|f| f.meta));
    other
}

#[async_trait]
impl ObjectStore for LiveStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        // Covering files can be anywhere in a folder's listing: collect it.
        let listing = self.inner.list(prefix);
        let this = LiveStore {
            inner: self.inner.clone(),
            prefix: self.prefix.clone(),
            tables: RwLock::new(
                self.tables
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            ),
        };
        futures::stream::once(async move {
            let metas: Vec<ObjectMeta> = listing.try_collect().await?;
            Ok::<_, object_store::Error>(futures::stream::iter(
                this.live(metas).into_iter().map(Ok),
            ))
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut r = self.inner.list_with_delimiter(prefix).await?;
        r.objects = self.live(std::mem::take(&mut r.objects));
        Ok(r)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
