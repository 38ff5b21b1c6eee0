//! The load a session reads: pinned when its tables are registered, and read through a store
//! that says so when that load's files are gone, rather than listing fewer of them.
//!
//! A warehouse publishes a new load by switching one pointer: the `_fhirhouse/current` link
//! of a folder, the commit record `_fhirhouse/current.json` of an object store. Registration
//! reads that pointer **once** and takes every table's metadata and files from the load it
//! names, so a session never mixes two loads, and goes on reading that load whatever is
//! published after it (a session's statements see one state of the warehouse, as a report's
//! steps need).
//!
//! A replaced load's files are removed later (`sink::commit`, `sink::remote`: not before
//! the next load after it, nor within a grace period of being replaced). A session that
//! outlives them must fail, not answer from what is left: DataFusion lists a table's files
//! when it first reads it, and a listing of a removed folder is empty, not an error. So the
//! tables are read through a [`SnapshotStore`]: the warehouse's store seen through the
//! pinned load, which lists only the files the load has, checks that a listing was complete
//! (every file the commit record lists is there; a local load's folder, which is removed by
//! renaming it away first, still exists after the listing), and turns a file that is not
//! found into [`SnapshotGone`], which names the load that replaced the pinned one. Each
//! registration gets its own `fhirhouse://` URL, so two warehouses (or two loads of one) in
//! one context do not mix.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::prelude::SessionContext;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use url::Url;

use crate::sink::commit::KEEP_REPLACED_FOR;
use crate::sink::remote::{snapshot_key, CommitRecord, CURRENT_KEY};
use crate::store::{self, Address};

/// A session's load is gone: a newer load replaced it and its files were removed, or a file
/// of it is missing. Reaches the user as the statement's error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SnapshotGone(pub String);

/// The load a session reads, and how to tell whether it is still in the warehouse.
#[derive(Debug)]
pub(crate) struct Pin {
    /// The load.
    load_id: String,
    /// The warehouse, as the user named it.
    label: String,
    place: Place,
}

#[derive(Debug)]
enum Place {
    /// A warehouse folder: its `_fhirhouse` folder, and the load's snapshot folder.
    Local { meta: PathBuf, dir: PathBuf },
    /// An object-store warehouse: its store and root, and a metadata file of the load.
    Remote { store: Arc<dyn ObjectStore>, root: ObjectPath, probe: ObjectPath },
}

impl Pin {
    /// The pinned load.
    pub(crate) fn load_id(&self) -> &str {
        &self.load_id
    }

    /// Whether the load is known to be gone (a failed check is no proof: the reads will tell).
    pub(crate) async fn is_gone(&self) -> bool {
        match &self.place {
            Place::Local { dir, .. } => !dir.is_dir(),
            Place::Remote { store, probe, .. } => {
                matches!(store.head(probe).await, Err(object_store::Error::NotFound { .. }))
            }
        }
    }

    /// The load published now, if it can be read.
    async fn published_now(&self) -> Option<String> {
        match &self.place {
            Place::Local { meta, .. } => {
                Some(std::fs::read_link(meta.join("current")).ok()?.file_name()?.to_string_lossy().into_owned())
            }
            Place::Remote { store, root, .. } => {
                let bytes = store.get(&store::child(root, CURRENT_KEY)).await.ok()?.bytes().await.ok()?;
                Some(serde_json::from_slice::<CommitRecord>(&bytes).ok()?.load_id)
            }
        }
    }

    /// Why the session cannot read its load (`file`: the file found missing, if one was).
    pub(crate) async fn gone(&self, file: Option<&str>) -> SnapshotGone {
        let (id, label) = (&self.load_id, &self.label);
        let file = file.map(|f| format!(" ({f} is missing)")).unwrap_or_default();
        SnapshotGone(match self.published_now().await {
            Some(now) if now != *id => format!(
                "load {id}, which this session reads, has been removed from {label}{file}: load {now} replaced it \
                 since (a replaced load is kept until the next load after it, and for at least {} minutes); open \
                 the warehouse again (run the command again) to read load {now}",
                KEEP_REPLACED_FOR.as_secs() / 60
            ),
            _ => format!(
                "load {id}, which this session reads, is not whole in {label}{file}: something other than a \
                 fhirhouse load removed its files; load it again"
            ),
        })
    }

    async fn gone_error(&self, file: Option<&str>) -> object_store::Error {
        object_store::Error::Generic { store: "fhirhouse", source: Box::new(self.gone(file).await) }
    }
}

/// Registers the tables of the load published in the warehouse at `root`; returns their
/// names, sorted, and the load they read.
pub(super) fn register(ctx: &SessionContext, root: &Address) -> anyhow::Result<(Vec<String>, Arc<Pin>)> {
    let (pin, inner, published, mut metas) = match root {
        Address::Local(root) => open_local(root)?,
        Address::Url(url) => open_remote(url)?,
    };
    metas.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&pin.label, &pin.load_id).hash(&mut hasher);
    let host: String = pin.load_id.to_ascii_lowercase().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let base = Url::parse(&format!("fhirhouse://{host}-{:016x}", hasher.finish()))?;
    let pin = Arc::new(pin);
    let view = SnapshotStore { inner, published: published.map(Arc::new), pin: Arc::clone(&pin) };
    ctx.runtime_env().register_object_store(&base, Arc::new(view));
    let mut names = Vec::with_capacity(metas.len());
    for (what, bytes) in metas {
        let register = || {
            let meta: serde_json::Value = serde_json::from_slice(&bytes)?;
            super::register_table(ctx, &meta, |name| Ok(ListingTableUrl::parse(base.join(&format!("{name}/"))?)?))
        };
        names.push(register().with_context(|| format!("cannot register {what}"))?);
    }
    names.sort();
    Ok((names, pin))
}

/// A pinned load, the store its files are read from, the files it lists (an object store's),
/// and each table's metadata (named for errors).
type Opened = (Pin, Arc<dyn ObjectStore>, Option<HashSet<ObjectPath>>, Vec<(String, Vec<u8>)>);

fn open_local(root: &Path) -> anyhow::Result<Opened> {
    let meta = root.join("_fhirhouse");
    let not_published = || format!("{}: not a warehouse with a published load", root.display());
    // The one read of the commit point: everything below comes from the load it names.
    let target = std::fs::read_link(meta.join("current")).with_context(not_published)?;
    let load_id =
        target.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| anyhow!(not_published()))?;
    let dir = std::fs::canonicalize(meta.join(&target)).with_context(not_published)?;
    let tables_dir = dir.join("_tables");
    let mut metas = Vec::new();
    for entry in std::fs::read_dir(&tables_dir).with_context(not_published)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            metas.push((path.display().to_string(), bytes));
        }
    }
    let inner = Arc::new(LocalFileSystem::new_with_prefix(&dir)?);
    let pin = Pin { load_id, label: root.display().to_string(), place: Place::Local { meta, dir } };
    Ok((pin, inner, None, metas))
}

fn open_remote(url: &Url) -> anyhow::Result<Opened> {
    let (store, root) = store::resolve(url)?;
    let record = CommitRecord::read(&store, &root, url.as_str())?
        .ok_or_else(|| anyhow!("{url}: not a warehouse with a published load"))?;
    let mut metas = Vec::with_capacity(record.tables.len());
    for table in record.tables.keys() {
        let relative = snapshot_key(&record.load_id, &format!("_tables/{table}.json"));
        let (reader, key) = (Arc::clone(&store), store::child(&root, &relative));
        let bytes = store::run(async move { reader.get(&key).await?.bytes().await })
            .map_err(|e| anyhow!("{}/{relative}: {e}", url.as_str().trim_end_matches('/')))?;
        metas.push((relative, bytes.to_vec()));
    }
    let probe = store::child(&root, &metas.first().map_or_else(|| snapshot_key(&record.load_id, ""), |m| m.0.clone()));
    let published = record.tables.values().flatten().map(|k| ObjectPath::from(k.as_str())).collect();
    let inner: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(Arc::clone(&store), root.clone()));
    let label = url.as_str().trim_end_matches('/').to_owned();
    let pin = Pin { load_id: record.load_id, label, place: Place::Remote { store, root, probe } };
    Ok((pin, inner, Some(published), metas))
}

/// The store a session's tables are read through: the pinned load's files, read-only, and
/// an error instead of a listing or a read that misses some of them.
#[derive(Debug)]
struct SnapshotStore {
    /// The warehouse (an object store's, through its prefix) or the load's folder.
    inner: Arc<dyn ObjectStore>,
    /// An object-store load's files, as its commit record lists them; `None` for a folder,
    /// which holds exactly its load's files.
    published: Option<Arc<HashSet<ObjectPath>>>,
    pin: Arc<Pin>,
}

impl std::fmt::Display for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "load {} of {}", self.pin.load_id, self.pin.label)
    }
}

fn read_only() -> object_store::Error {
    object_store::Error::NotSupported { source: "a published warehouse snapshot is read-only".into() }
}

impl SnapshotStore {
    /// A listing of `prefix` without the load's files, or the error that says the load is gone:
    /// a listed file of the commit record is missing (`missing`), or the load's folder was
    /// removed while it was listed (a folder being removed lists as empty or part of it).
    async fn check_listing(&self, missing: Option<&ObjectPath>) -> Result<()> {
        if missing.is_some() || self.pin.is_gone().await {
            return Err(self.pin.gone_error(missing.map(AsRef::as_ref)).await);
        }
        Ok(())
    }

    /// The load's files under `prefix` (all of them without one).
    fn expected<'a>(&'a self, prefix: Option<&'a ObjectPath>) -> impl Iterator<Item = &'a ObjectPath> {
        self.published.iter().flat_map(|p| p.iter()).filter(move |k| prefix.is_none_or(|p| k.prefix_matches(p)))
    }

    async fn not_found(&self, location: &ObjectPath, e: object_store::Error) -> object_store::Error {
        match e {
            object_store::Error::NotFound { .. } => self.pin.gone_error(Some(location.as_ref())).await,
            e => e,
        }
    }
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
        match self.inner.get_opts(location, options).await {
            Ok(got) => Ok(got),
            Err(e) => Err(self.not_found(location, e).await),
        }
    }

    async fn get_ranges(&self, location: &ObjectPath, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        match self.inner.get_ranges(location, ranges).await {
            Ok(got) => Ok(got),
            Err(e) => Err(self.not_found(location, e).await),
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<ObjectPath>>,
    ) -> BoxStream<'static, Result<ObjectPath>> {
        locations.map(|_| Err(read_only())).boxed()
    }

    fn list(&self, prefix: Option<&ObjectPath>) -> BoxStream<'static, Result<ObjectMeta>> {
        let view = SnapshotStore {
            inner: Arc::clone(&self.inner),
            published: self.published.clone(),
            pin: Arc::clone(&self.pin),
        };
        let prefix = prefix.cloned();
        futures::stream::once(async move {
            let mut listed: Vec<ObjectMeta> = view.inner.list(prefix.as_ref()).try_collect().await?;
            if let Some(published) = &view.published {
                listed.retain(|m| published.contains(&m.location));
            }
            let seen: HashSet<&ObjectPath> = listed.iter().map(|m| &m.location).collect();
            let missing = view.expected(prefix.as_ref()).find(|k| !seen.contains(k)).cloned();
            view.check_listing(missing.as_ref()).await?;
            Ok::<_, object_store::Error>(futures::stream::iter(listed.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&ObjectPath>) -> Result<ListResult> {
        let mut listing = self.inner.list_with_delimiter(prefix).await?;
        if let Some(published) = &self.published {
            listing.objects.retain(|m| published.contains(&m.location));
        }
        // Each expected file is listed, or under a listed folder.
        let depth = prefix.map_or(0, |p| p.parts().count());
        let missing = self
            .expected(prefix)
            .find(|k| {
                let child: ObjectPath = k.parts().take(depth + 1).collect();
                !listing.objects.iter().any(|m| m.location == **k) && !listing.common_prefixes.contains(&child)
            })
            .cloned();
        self.check_listing(missing.as_ref()).await?;
        Ok(listing)
    }

    async fn copy_opts(&self, _: &ObjectPath, _: &ObjectPath, _: CopyOptions) -> Result<()> {
        Err(read_only())
    }
}
