//! The tables of an object-store warehouse, registered from its commit record.
//!
//! A table's prefix may hold more than the published load: the previous load's files for a
//! moment after a commit, orphans of a load that died. DataFusion lists a table's prefix to
//! find its files (and parses the Hive partition values from their keys), so the store it
//! is given is a [`SnapshotStore`]: the warehouse's store seen through its prefix, whose
//! listings show only the files the commit record lists. Each registration gets its own
//! `fhirhouse://` URL, so two warehouses (or two snapshots of one) in one session do not mix.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use anyhow::anyhow;
use async_trait::async_trait;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::prelude::SessionContext;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use url::Url;

use crate::sink::remote::{snapshot_key, CommitRecord};
use crate::store;

/// Registers the published tables of the warehouse at `url`; returns their names, sorted.
pub(super) fn register(ctx: &SessionContext, url: &Url) -> anyhow::Result<Vec<String>> {
    let (inner, root) = store::resolve(url)?;
    let record = CommitRecord::read(&inner, &root, url.as_str())?
        .ok_or_else(|| anyhow!("{url}: not a warehouse with a published load"))?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    url.as_str().hash(&mut hasher);
    let base = Url::parse(&format!("fhirhouse://{}-{:016x}", record.load_id.to_ascii_lowercase(), hasher.finish()))?;
    let published = record.tables.values().flatten().map(|k| ObjectPath::from(k.as_str())).collect();
    let view = SnapshotStore { inner: PrefixStore::new(Arc::clone(&inner), root.clone()), published };
    ctx.runtime_env().register_object_store(&base, Arc::new(view));
    let mut names = Vec::with_capacity(record.tables.len());
    for table in record.tables.keys() {
        let relative = snapshot_key(&record.load_id, &format!("_tables/{table}.json"));
        let (reader, key) = (Arc::clone(&inner), store::child(&root, &relative));
        let bytes = store::run(async move { reader.get(&key).await?.bytes().await })
            .map_err(|e| anyhow!("{}/{relative}: {e}", url.as_str().trim_end_matches('/')))?;
        let meta: serde_json::Value = serde_json::from_slice(&bytes)?;
        names.push(super::register_table(ctx, &meta, |name| {
            Ok(ListingTableUrl::parse(base.join(&format!("{name}/"))?)?)
        })?);
    }
    Ok(names)
}

/// A warehouse's store, seen through its prefix, listing only the published files; read-only.
#[derive(Debug)]
struct SnapshotStore {
    inner: PrefixStore<Arc<dyn ObjectStore>>,
    published: HashSet<ObjectPath>,
}

impl std::fmt::Display for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "published files of {}", self.inner)
    }
}

fn read_only() -> object_store::Error {
    object_store::Error::NotSupported { source: "a published warehouse snapshot is read-only".into() }
}

#[async_trait]
impl ObjectStore for SnapshotStore {
    async fn put_opts(&self, _: &ObjectPath, _: PutPayload, _: PutOptions) -> Result<PutResult> {
        Err(read_only())
    }

    async fn put_multipart_opts(&self, _: &ObjectPath, _: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        Err(read_only())
    }

    async fn get_opts(&self, location: &ObjectPath, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &ObjectPath, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<ObjectPath>>,
    ) -> BoxStream<'static, Result<ObjectPath>> {
        locations.map(|_| Err(read_only())).boxed()
    }

    fn list(&self, prefix: Option<&ObjectPath>) -> BoxStream<'static, Result<ObjectMeta>> {
        let published = self.published.clone();
        self.inner
            .list(prefix)
            .filter(move |meta| std::future::ready(meta.as_ref().map_or(true, |m| published.contains(&m.location))))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&ObjectPath>) -> Result<ListResult> {
        let mut listing = self.inner.list_with_delimiter(prefix).await?;
        listing.objects.retain(|m| self.published.contains(&m.location));
        Ok(listing)
    }

    async fn copy_opts(&self, _: &ObjectPath, _: &ObjectPath, _: CopyOptions) -> Result<()> {
        Err(read_only())
    }
}
