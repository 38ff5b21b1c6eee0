//! A warehouse in an object store (`s3://`, `gs://`, `az://`, ...) and its publish protocol.
//!
//! Layout of a warehouse at URL `W`:
//!
//! ```text
//! W/<table>/[<key>=<year>/]part-<load id>-<writer>-<n>.parquet   data files, named per load
//! W/_fhirhouse/current.json                                     the commit record
//! W/_fhirhouse/snapshots/<load id>/_tables/<table>.json         per-table metadata
//! W/_fhirhouse/snapshots/<load id>/_commit.json                 a replaced load's commit record
//! W/_fhirhouse/loads/<load id>.json                             run reports
//! W/_dead_letter/<load id>/*.ndjson                             lines that could not be loaded
//! ```
//!
//! Object stores cannot rename a folder atomically, but a single PUT is atomic. A load writes
//! its tables into a local staging folder, then [`RemoteWarehouse::publish`]:
//!
//! 1. uploads every part file under its final key (multipart for large files). The keys
//!    carry the load id, so they never overwrite a file of the published load, and no
//!    partial object is ever visible;
//! 2. uploads the snapshot metadata (`_fhirhouse/snapshots/<load id>/...`);
//!    It also saves the commit record of the load it replaces as that load's
//!    `_commit.json`, so that later loads know its files while it is kept;
//! 3. writes `_fhirhouse/current.json` — `{"load_id": ..., "tables": {table: [keys]},
//!    "replaced": [{"load_id": ..., "replaced_at": ...}]}`, keys relative to `W` — with one
//!    conditional PUT: **the commit point**. The PUT succeeds only if `current.json` is still
//!    the version [`RemoteWarehouse::open`] read (by e-tag, or "does not exist yet"), so of
//!    loads that overlap, only the first to commit publishes; the others fail here, naming
//!    it, and delete what they uploaded. `replaced` lists the loads still kept for readers:
//!    the one this load replaced, and earlier ones replaced less than
//!    [`KEEP_REPLACED_FOR`] ago;
//! 4. deletes the files of the loads that dropped out of `replaced`, and any `part-*.parquet`
//!    under a table prefix or other snapshots' metadata that no kept load lists **and** that
//!    is older than the new `current.json` (orphans of a load that died, or lost, before its
//!    commit). A load that began after the commit uploads only newer files, so this step
//!    never takes the files of a load still running; that load removes them itself if it
//!    loses. When the record of a kept load cannot be read, no data file is deleted.
//!
//! Readers that go through `current.json` (fhirhouse's own `sql::register_warehouse`) see
//! either the old load or the new one, complete, and a session goes on reading the load it
//! opened until that load drops out of `replaced` (the next load after the one that replaced
//! it, once it has been replaced for [`KEEP_REPLACED_FOR`]). Readers that list the prefixes
//! themselves (a glob in DuckDB or Spark) see every kept load's files, and orphans of a
//! crashed load until the next load's step 4. A failure before step 3 leaves the previous
//! state published. A store without conditional PUTs (`NotImplemented`: the local file
//! system behind a registered store) gets an unconditional one and a warning: there, one
//! load at a time per warehouse is the caller's job.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion, WriteMultipart};
use serde::{Deserialize, Serialize};
use url::Url;

use super::commit::KEEP_REPLACED_FOR;
use super::SinkError;
use crate::store::{self, StoreError};

/// The commit record's key, relative to the warehouse.
pub const CURRENT_KEY: &str = "_fhirhouse/current.json";

/// Files up to this size are uploaded with one PUT, larger ones in parts.
const MULTIPART_THRESHOLD: u64 = 16 << 20;
/// Part size of multipart uploads (S3 wants at least 5 MiB).
const PART_BYTES: usize = 8 << 20;
/// Files uploaded at once.
const CONCURRENT_UPLOADS: usize = 8;
/// A replaced load's commit record, in its snapshot folder.
const RECORD_FILE: &str = "_commit.json";

/// The content of `_fhirhouse/current.json`: the published load and its data files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The published load.
    pub load_id: String,
    /// Every table's data files, as keys relative to the warehouse URL.
    pub tables: BTreeMap<String, Vec<String>>,
    /// The loads this one replaced whose files are still kept for readers, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<Replaced>,
}

/// A replaced load whose files are kept, and when it was replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaced {
    /// The load.
    pub load_id: String,
    /// When the load after it was published (RFC 3339, by the clock of the machine that
    /// published it).
    pub replaced_at: String,
}

impl CommitRecord {
    /// Reads the commit record of the warehouse at `root` in `store`; `None` before the first
    /// load. `url` labels errors.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the record cannot be read or is not valid.
    pub fn read(
        store: &Arc<dyn ObjectStore>,
        root: &ObjectPath,
        url: &str,
    ) -> Result<Option<CommitRecord>, StoreError> {
        Ok(CommitRecord::read_versioned(store, root, url)?.map(|(record, _)| record))
    }

    /// [`CommitRecord::read`], with the version of `current.json` that held the record: what
    /// a conditional PUT replacing exactly that version needs.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the record cannot be read or is not valid.
    pub fn read_versioned(
        store: &Arc<dyn ObjectStore>,
        root: &ObjectPath,
        url: &str,
    ) -> Result<Option<(CommitRecord, UpdateVersion)>, StoreError> {
        let (store, key) = (Arc::clone(store), store::child(root, CURRENT_KEY));
        let name = format!("{}/{CURRENT_KEY}", url.trim_end_matches('/'));
        let read = store::run(async move {
            let got = store.get(&key).await?;
            let version = UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
            Ok::<_, object_store::Error>((got.bytes().await?, version))
        });
        let (bytes, version) = match read {
            Ok(read) => read,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(StoreError::new(name, e)),
        };
        let record =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::new(name, format!("not a commit record: {e}")))?;
        Ok(Some((record, version)))
    }
}

/// The published state a load replaces: the commit record, and the version of
/// `current.json` that holds it (`None` before the first load).
#[derive(Debug, Clone, Default)]
struct Base {
    record: Option<CommitRecord>,
    version: Option<UpdateVersion>,
}

/// The key of a snapshot's metadata file, relative to the warehouse.
#[must_use]
pub fn snapshot_key(load_id: &str, relative: &str) -> String {
    format!("_fhirhouse/snapshots/{load_id}/{relative}")
}

/// A warehouse under an object-store URL; see the module docs for the protocol.
#[derive(Debug)]
pub struct RemoteWarehouse {
    url: Url,
    store: Arc<dyn ObjectStore>,
    root: ObjectPath,
    staging: PathBuf,
    /// What was published when the warehouse was opened (or last published through it): a
    /// load publishes only over this state, not over one another load published meanwhile.
    /// Boxed, so that it does not make the warehouse (and `Destination`) large.
    base: Mutex<Box<Base>>,
    /// Removes the default staging folder when the warehouse is dropped.
    _temp: Option<tempfile::TempDir>,
}

impl RemoteWarehouse {
    /// Opens the warehouse at `url`, staging loads locally in `staging` (a new temporary
    /// folder when `None`). Reads the commit record, so that a store that cannot be reached
    /// or a warehouse that is not one fails before any work.
    ///
    /// # Errors
    ///
    /// [`SinkError::Store`] for an unusable URL or store, [`SinkError::File`] when the
    /// staging folder cannot be created.
    pub fn open(url: &Url, staging: Option<&Path>) -> Result<RemoteWarehouse, SinkError> {
        let (store, root) = store::resolve(url)?;
        let (staging, temp) = match staging {
            Some(dir) => {
                fs::create_dir_all(dir).map_err(|source| SinkError::File { path: dir.to_path_buf(), source })?;
                (dir.to_path_buf(), None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("fhirhouse-staging-")
                    .tempdir()
                    .map_err(|source| SinkError::File { path: std::env::temp_dir(), source })?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let base = match CommitRecord::read_versioned(&store, &root, url.as_str())? {
            Some((record, version)) => Base { record: Some(record), version: Some(version) },
            None => Base::default(),
        };
        let base = Mutex::new(Box::new(base));
        Ok(RemoteWarehouse { url: url.clone(), store, root, staging, base, _temp: temp })
    }

    /// The published commit record, if any.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when it cannot be read.
    pub fn current(&self) -> Result<Option<CommitRecord>, StoreError> {
        CommitRecord::read(&self.store, &self.root, self.url.as_str())
    }

    /// Creates and returns the local staging folder of a new load's tables.
    ///
    /// # Errors
    ///
    /// [`SinkError::File`] when it cannot be created.
    pub fn begin(&self, load_id: &str) -> Result<PathBuf, SinkError> {
        let dir = self.staging.join(load_id).join("tables");
        fs::create_dir_all(&dir).map_err(|source| SinkError::File { path: dir.clone(), source })?;
        Ok(dir)
    }

    /// The local folder the load writes its dead letters into; uploaded by
    /// [`RemoteWarehouse::save_report`].
    #[must_use]
    pub fn dead_letter_dir(&self, load_id: &str) -> PathBuf {
        self.staging.join(load_id).join("dead_letter")
    }

    /// The URL of `relative` in the warehouse.
    #[must_use]
    pub fn url_of(&self, relative: &str) -> String {
        format!("{}/{relative}", self.url.as_str().trim_end_matches('/'))
    }

    /// Drops a load that will not be published: its staged tables.
    pub fn abandon(&self, load_id: &str) {
        let _ = fs::remove_dir_all(self.staging.join(load_id).join("tables"));
    }

    /// Publishes the load staged by `load_id` with tables `tables` (a table without files
    /// is published empty); see the module docs for the steps.
    ///
    /// # Errors
    ///
    /// A failure before the commit point, after which what was uploaded is removed again
    /// (best effort) and the previous state is still the published one. That includes
    /// another load having published since this warehouse was opened: the error names it.
    /// Cleanup after the commit point is logged, not returned.
    pub fn publish(&self, load_id: &str, tables: &[String]) -> Result<(), SinkError> {
        let base = Base::clone(&self.base.lock().expect("no panic holds the base"));
        let staged = self.staging.join(load_id).join("tables");
        let (replaced, expired) = retention(base.record.as_ref(), load_id, chrono::Utc::now());
        let mut record = CommitRecord { load_id: load_id.to_owned(), tables: BTreeMap::new(), replaced };
        record.tables.extend(tables.iter().map(|t| (t.clone(), Vec::new())));
        let mut uploads = Vec::new();
        for (relative, local) in
            files_under(&staged).map_err(|source| SinkError::File { path: staged.clone(), source })?
        {
            let (top, _) = relative.split_once('/').unwrap_or((relative.as_str(), ""));
            // `_`-prefixed folders are the snapshot's metadata, unless named as tables
            // (`_dq_unmapped_codes`); the others are tables.
            let key = if top.starts_with('_') && !tables.iter().any(|t| t == top) {
                snapshot_key(load_id, &relative)
            } else {
                record.tables.entry(top.to_owned()).or_default().push(relative.clone());
                relative
            };
            uploads.push((local, key));
        }
        record.tables.values_mut().for_each(|keys| keys.sort());
        let keys: Vec<String> = uploads.iter().map(|(_, key)| key.clone()).collect();
        let json = serde_json::to_vec_pretty(&record).expect("records serialise");
        let committed = self
            .upload(uploads)
            .and_then(|()| self.save_replaced_record(base.record.as_ref()))
            .map_err(SinkError::from)
            .and_then(|()| self.commit(json, &base));
        let version = match committed {
            Ok(version) => version,
            Err(e) => {
                self.delete(keys.iter().map(|k| self.key(k)).collect());
                return Err(e);
            }
        };
        tracing::info!(load_id, warehouse = %self.url, "published");
        self.sweep(&record, base.record.as_ref(), &expired, self.committed_at(&version));
        **self.base.lock().expect("no panic holds the base") = Base { record: Some(record), version: Some(version) };
        Ok(())
    }

    /// Step 3: writes the commit record `json` if `current.json` is still `base`'s version;
    /// returns the version written.
    fn commit(&self, json: Vec<u8>, base: &Base) -> Result<UpdateVersion, SinkError> {
        let mode = match &base.version {
            None => Some(PutMode::Create),
            Some(v) if v.e_tag.is_some() || v.version.is_some() => Some(PutMode::Update(v.clone())),
            // Nothing to make the PUT conditional on.
            Some(_) => None,
        };
        let (store, key, payload) = (Arc::clone(&self.store), self.key(CURRENT_KEY), PutPayload::from(json));
        let url = self.url.clone();
        let written = store::run(async move {
            let why = match mode {
                Some(mode) => match store.put_opts(&key, payload.clone(), mode.into()).await {
                    Err(object_store::Error::NotImplemented { operation, .. }) => operation,
                    written => return written,
                },
                None => "the commit record has no e-tag or version".to_owned(),
            };
            tracing::warn!(warehouse = %url, why, "no conditional PUT: the commit record is overwritten, \
                and a load that published meanwhile would be replaced");
            store.put(&key, payload).await
        });
        match written {
            Ok(written) => Ok(UpdateVersion { e_tag: written.e_tag, version: written.version }),
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                Err(StoreError::new(self.url_of(CURRENT_KEY), self.lost_to()).into())
            }
            Err(e) => Err(StoreError::new(self.url_of(CURRENT_KEY), e).into()),
        }
    }

    /// Why a commit was refused: another load published (named) since this one began.
    fn lost_to(&self) -> String {
        let what = match self.current() {
            Ok(Some(winner)) => format!("load {} was published", winner.load_id),
            Ok(None) => "the commit record was removed".to_owned(),
            Err(e) => format!("the commit record changed ({e})"),
        };
        format!("{what} while this load ran, so this load was not published (run one load at a time per warehouse)")
    }

    /// When `current.json` was written at `version`, by the store's clock, to the second; `None`
    /// when that cannot be told (it has been replaced again, or cannot be read).
    fn committed_at(&self, version: &UpdateVersion) -> Option<chrono::DateTime<chrono::Utc>> {
        let (store, key) = (Arc::clone(&self.store), self.key(CURRENT_KEY));
        let meta = store::run(async move { store.head(&key).await });
        match meta {
            // Only the time of this load's own record: a later one's would be too late a cutoff.
            Ok(meta) if version.e_tag.is_some() && meta.e_tag == version.e_tag => Some(whole_second(&meta)),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(warehouse = %self.url, error = %e, "cannot read the commit record's time");
                None
            }
        }
    }

    /// Uploads the dead letters and the run report of a load (published or not), removes
    /// its staging folder, and returns the report's URL.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] of an upload.
    pub fn save_report(&self, load_id: &str, report: Vec<u8>) -> Result<String, SinkError> {
        let dead = self.dead_letter_dir(load_id);
        let mut uploads = Vec::new();
        if dead.is_dir() {
            let files = files_under(&dead).map_err(|source| SinkError::File { path: dead.clone(), source })?;
            uploads.extend(files.into_iter().map(|(name, local)| (local, format!("_dead_letter/{load_id}/{name}"))));
        }
        self.upload(uploads)?;
        let key = format!("_fhirhouse/loads/{load_id}.json");
        self.put(&key, report)?;
        let _ = fs::remove_dir_all(self.staging.join(load_id));
        Ok(self.url_of(&key))
    }

    fn key(&self, relative: &str) -> ObjectPath {
        store::child(&self.root, relative)
    }

    fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let (store, key) = (Arc::clone(&self.store), self.key(relative));
        store::run(async move { store.put(&key, bytes.into()).await })
            .map_err(|e| StoreError::new(self.url_of(relative), e))?;
        Ok(())
    }

    /// Uploads (local file, relative key) pairs, several at once.
    fn upload(&self, files: Vec<(PathBuf, String)>) -> Result<(), StoreError> {
        let store = Arc::clone(&self.store);
        let jobs: Vec<(PathBuf, ObjectPath, String)> =
            files.into_iter().map(|(local, key)| (local, self.key(&key), self.url_of(&key))).collect();
        let uploads = jobs.into_iter().map(move |(local, key, url)| {
            let store = Arc::clone(&store);
            async move { upload_file(store, local, key).await.map_err(|e| StoreError::new(url, e)) }
        });
        store::run(store::run_bounded(uploads, CONCURRENT_UPLOADS)).into_iter().collect()
    }

    /// Deletes keys, logging (not returning) failures: cleanup only.
    fn delete(&self, keys: Vec<ObjectPath>) {
        if keys.is_empty() {
            return;
        }
        let store = Arc::clone(&self.store);
        let failures: Vec<String> = store::run(async move {
            let locations = futures::stream::iter(keys.into_iter().map(Ok)).boxed();
            store
                .delete_stream(locations)
                .filter_map(|r| async move {
                    match r {
                        Ok(_) | Err(object_store::Error::NotFound { .. }) => None,
                        Err(e) => Some(e.to_string()),
                    }
                })
                .collect()
                .await
        });
        for failure in failures {
            tracing::warn!(warehouse = %self.url, error = %failure, "could not delete an old object");
        }
    }

    /// Saves the commit record of `previous`, the load being replaced, in its snapshot
    /// folder: the loads after this one learn its files there while it is kept.
    fn save_replaced_record(&self, previous: Option<&CommitRecord>) -> Result<(), StoreError> {
        let Some(previous) = previous else { return Ok(()) };
        let record = CommitRecord { replaced: Vec::new(), ..previous.clone() };
        let json = serde_json::to_vec_pretty(&record).expect("records serialise");
        self.put(&snapshot_key(&previous.load_id, RECORD_FILE), json)
    }

    /// The commit record a replaced load saved in its snapshot folder.
    fn replaced_record(&self, load_id: &str) -> Result<CommitRecord, StoreError> {
        let relative = snapshot_key(load_id, RECORD_FILE);
        let (store, key) = (Arc::clone(&self.store), self.key(&relative));
        let bytes = store::run(async move { store.get(&key).await?.bytes().await })
            .map_err(|e| StoreError::new(self.url_of(&relative), e))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::new(self.url_of(&relative), e))
    }

    /// Step 4 of the protocol: removes what no kept load references: the files of the loads
    /// in `expired` (dropped from `record.replaced`), and the part and snapshot files older
    /// than `committed` (by whole seconds, since stores report times at different
    /// precisions). `previous` is the load `record` replaced. Without `committed`, orphans are
    /// left to the next load; without the records of every kept load, all data files are.
    fn sweep(
        &self,
        record: &CommitRecord,
        previous: Option<&CommitRecord>,
        expired: &[String],
        committed: Option<chrono::DateTime<chrono::Utc>>,
    ) {
        let mut kept = vec![record.clone()];
        let mut complete = true;
        for replaced in &record.replaced {
            match previous.filter(|p| p.load_id == replaced.load_id) {
                Some(previous) => kept.push(previous.clone()),
                None => match self.replaced_record(&replaced.load_id) {
                    Ok(found) => kept.push(found),
                    Err(e) => {
                        tracing::warn!(warehouse = %self.url, error = %e, "no data files removed: a kept load's files are not known");
                        complete = false;
                    }
                },
            }
        }
        let gone: Vec<CommitRecord> = expired.iter().filter_map(|id| self.replaced_record(id).ok()).collect();
        let keep: HashSet<ObjectPath> =
            kept.iter().flat_map(|r| r.tables.values().flatten()).map(|k| self.key(k)).collect();
        let mut doomed: BTreeSet<ObjectPath> = BTreeSet::new();
        if complete {
            doomed.extend(gone.iter().flat_map(|r| r.tables.values().flatten()).map(|k| self.key(k)));
            doomed.retain(|k| !keep.contains(k));
        }
        let tables: BTreeSet<&String> = kept.iter().chain(&gone).flat_map(|r| r.tables.keys()).collect();
        let snapshots: Vec<ObjectPath> = std::iter::once(&record.load_id)
            .chain(record.replaced.iter().map(|r| &r.load_id))
            .map(|id| self.key(&snapshot_key(id, "")))
            .collect();
        let expired: Vec<ObjectPath> = expired.iter().map(|id| self.key(&snapshot_key(id, ""))).collect();
        let older = |meta: &ObjectMeta| committed.is_some_and(|c| whole_second(meta) < c);
        let listed = tables
            .into_iter()
            .filter(|_| complete)
            .map(|t| (self.key(t), true))
            .chain([(self.key("_fhirhouse/snapshots"), false)]);
        for (prefix, parts_only) in listed {
            match self.list(&prefix) {
                Ok(found) => doomed.extend(
                    found
                        .into_iter()
                        .filter(|meta| {
                            let (k, name) = (&meta.location, store::file_name(&meta.location));
                            if parts_only {
                                name.starts_with("part-")
                                    && name.ends_with(".parquet")
                                    && !keep.contains(k)
                                    && older(meta)
                            } else {
                                !snapshots.iter().any(|s| k.prefix_matches(s))
                                    && (older(meta) || expired.iter().any(|e| k.prefix_matches(e)))
                            }
                        })
                        .map(|meta| meta.location),
                ),
                Err(e) => tracing::warn!(warehouse = %self.url, error = %e, "could not list old objects"),
            }
        }
        self.delete(doomed.into_iter().collect());
    }

    fn list(&self, prefix: &ObjectPath) -> object_store::Result<Vec<ObjectMeta>> {
        let (store, prefix) = (Arc::clone(&self.store), prefix.clone());
        store::run(async move { store.list(Some(&prefix)).try_collect().await })
    }
}

/// The loads a publish of `load_id` over `previous` keeps for readers (`previous` itself,
/// replaced `now`, and the loads it kept that were replaced less than [`KEEP_REPLACED_FOR`]
/// ago), and the ones it drops.
fn retention(
    previous: Option<&CommitRecord>,
    load_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> (Vec<Replaced>, Vec<String>) {
    let Some(previous) = previous.filter(|p| p.load_id != load_id) else { return (Vec::new(), Vec::new()) };
    let replaced_at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut kept = vec![Replaced { load_id: previous.load_id.clone(), replaced_at }];
    let mut dropped = Vec::new();
    for replaced in &previous.replaced {
        if replaced.load_id == previous.load_id || replaced.load_id == load_id {
            continue;
        }
        let age = chrono::DateTime::parse_from_rfc3339(&replaced.replaced_at)
            .map(|at| now.signed_duration_since(at).to_std().unwrap_or_default());
        if age.is_ok_and(|age| age < KEEP_REPLACED_FOR) {
            kept.push(replaced.clone());
        } else {
            dropped.push(replaced.load_id.clone());
        }
    }
    (kept, dropped)
}

/// An object's last-modified time, truncated to the second.
fn whole_second(meta: &ObjectMeta) -> chrono::DateTime<chrono::Utc> {
    use chrono::Timelike;
    meta.last_modified.with_nanosecond(0).unwrap_or(meta.last_modified)
}

/// Every file under `dir`, as (path relative to `dir` with `/`, local path), sorted.
fn files_under(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type()?.is_dir() {
                walk(&entry.path(), &format!("{name}/"), out)?;
            } else {
                out.push((name, entry.path()));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

/// Uploads one local file: one PUT when small, a multipart upload (aborted on failure) when
/// large. Either way the object appears whole or not at all.
async fn upload_file(store: Arc<dyn ObjectStore>, local: PathBuf, key: ObjectPath) -> Result<(), String> {
    let read_error = |e: std::io::Error| format!("cannot read {}: {e}", local.display());
    let size = fs::metadata(&local).map_err(read_error)?.len();
    if size <= MULTIPART_THRESHOLD {
        let path = local.clone();
        let data = tokio::task::spawn_blocking(move || fs::read(path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(read_error)?;
        store.put(&key, data.into()).await.map_err(|e| e.to_string())?;
        return Ok(());
    }
    let upload = store.put_multipart(&key).await.map_err(|e| e.to_string())?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let mut file = Some(fs::File::open(&local).map_err(read_error)?);
    loop {
        let mut taken = file.take().expect("the file is put back after each read");
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(PART_BYTES);
            (&mut taken).take(PART_BYTES as u64).read_to_end(&mut buf).map(|_| (taken, buf))
        })
        .await
        .map_err(|e| e.to_string())?;
        let (back, buf) = match read {
            Ok(read) => read,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(read_error(e));
            }
        };
        if buf.is_empty() {
            break;
        }
        file = Some(back);
        if let Err(e) = writer.wait_for_capacity(4).await {
            let _ = writer.abort().await;
            return Err(e.to_string());
        }
        writer.write(&buf);
    }
    writer.finish().await.map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod tests;
