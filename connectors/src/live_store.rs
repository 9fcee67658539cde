//! The archive as readers see it: an [`ObjectStore`] that lists only live
//! data files, hiding those superseded by a file covering their offsets
//! (see [`maintenance::split_superseded`](crate::maintenance::split_superseded)).
//! The SQL engine reads through it, so a query running while compaction
//! swaps files — or after a crash left both — never counts a row twice.
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
use std::sync::Arc;

/// Lists only the live files of an archive under `prefix`.
#[derive(Debug)]
pub struct LiveStore {
    inner: Arc<dyn ObjectStore>,
    /// The archive's prefix in the store, with a trailing slash ("" at the root).
    prefix: String,
}

impl LiveStore {
    pub fn new(inner: Arc<dyn ObjectStore>, prefix: String) -> LiveStore {
        LiveStore { inner, prefix }
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
        let archive_prefix = self.prefix.clone();
        futures::stream::once(async move {
            let metas: Vec<ObjectMeta> = listing.try_collect().await?;
            Ok::<_, object_store::Error>(futures::stream::iter(
                live(metas, &archive_prefix).into_iter().map(Ok),
            ))
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut r = self.inner.list_with_delimiter(prefix).await?;
        r.objects = live(std::mem::take(&mut r.objects), &self.prefix);
        Ok(r)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
