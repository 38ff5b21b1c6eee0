//! A warehouse folder and its atomic publish step.
//!
//! Layout of a warehouse `W`:
//!
//! ```text
//! W/observation -> _fhirhouse/current/observation     one link per table
//! W/_fhirhouse/current -> snapshots/<load id>          the commit point
//! W/_fhirhouse/snapshots/<load id>/<table>/...         the tables of one load
//! W/_fhirhouse/snapshots/<load id>/_tables/<table>.json  per-table metadata
//! W/_fhirhouse/snapshots/<load id>/_replaced.json     by which load and when it was replaced
//! W/_fhirhouse/staging/<load id>/                      a load in progress
//! W/_fhirhouse/removing/<load id>/                     a replaced snapshot being removed
//! W/_fhirhouse/loads/<load id>.json                    run reports
//! W/_dead_letter/<load id>/*.ndjson                    lines that could not be loaded
//! ```
//!
//! A load writes only into its staging folder, which no reader looks at. [`Warehouse::publish`]
//! renames it into `snapshots/` and then replaces the `current` link with one `rename`, which
//! POSIX makes atomic: readers resolve `W/observation` either through the old snapshot or
//! through the new one, never a mix and never a partial file. A crash before that rename
//! leaves the previous state as it was (the next load removes the orphaned staging folder);
//! a crash after it leaves the new state.
//!
//! A reader (`sql::register_warehouse`) resolves `current` once and reads that snapshot's
//! folder from then on, so a session keeps reading the load it opened while later loads
//! publish. For its sake a replaced snapshot is kept until the next load after the one that
//! replaced it, and for at least [`KEEP_REPLACED_FOR`] after it was replaced (the time each
//! publish records in the snapshot it replaces, [`REPLACED_FILE`]); the first publish past
//! both removes it. A snapshot is removed by renaming it into `removing/` first, so a reader
//! listing it sees all of its files or none (and is told it is gone), never part of them.
//!
//! Only a new or empty folder, or a warehouse, is opened ([`check_warehouse_folder`]): a
//! load adds folders and links beside what is there, and must not do it in a home folder.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Duration;

use super::SinkError;

const META_DIR: &str = "_fhirhouse";
const DEAD_LETTER_DIR: &str = "_dead_letter";

/// How long after it was replaced a load's files are kept at least, in a warehouse folder
/// and in an object store (always also until the next load after the one that replaced it):
/// a session reads the load that was published when it opened, and a report or a query that
/// runs while two loads publish should not lose its files.
pub const KEEP_REPLACED_FOR: Duration = Duration::from_secs(60 * 60);

/// The file a publish writes into the snapshot it replaces: `{"replaced_by": <load id>,
/// "replaced_at": <RFC 3339>}`.
pub const REPLACED_FILE: &str = "_replaced.json";

/// A warehouse folder, locked for one load at a time.
#[derive(Debug)]
pub struct Warehouse {
    root: PathBuf,
    /// Held open for its lock; released when the warehouse is dropped.
    _lock: File,
}

impl Warehouse {
    /// Opens (creating if needed) the warehouse at `root`, takes its load lock, and removes
    /// what crashed loads left in the staging area.
    ///
    /// # Errors
    ///
    /// [`SinkError::File`] when the folder cannot be created, another load holds the lock,
    /// `root` is empty, exists and is not a folder, or is a folder with something in it that
    /// is not a warehouse.
    pub fn open(root: &Path) -> Result<Warehouse, SinkError> {
        let file_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SinkError::File { path, source }
        };
        check_warehouse_folder(root)?;
        let meta = root.join(META_DIR);
        for dir in ["staging", "snapshots", "loads"] {
            fs::create_dir_all(meta.join(dir)).map_err(file_error(&meta.join(dir)))?;
        }
        let lock_path = meta.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(file_error(&lock_path))?;
        lock.try_lock().map_err(|e| SinkError::File {
            path: lock_path.clone(),
            source: io::Error::new(io::ErrorKind::WouldBlock, format!("another load is writing this warehouse ({e})")),
        })?;
        let current = meta.join("current");
        if fs::symlink_metadata(&current).is_ok_and(|m| !m.file_type().is_symlink()) {
            // Copied without its links (`cp -L`, a zip): publishing could not replace it.
            return Err(SinkError::File {
                path: current,
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "is not a symbolic link: this warehouse was copied with its links followed \
                     (cp -L, rsync -L, a zip); load into a new folder, or copy it with its links (cp -a)",
                ),
            });
        }
        let staging = meta.join("staging");
        for entry in fs::read_dir(&staging).map_err(file_error(&staging))? {
            let entry = entry.map_err(file_error(&staging))?;
            let path = entry.path();
            tracing::info!(path = %path.display(), "removing the staging folder of an interrupted load");
            // Whatever else landed there (a `.DS_Store`) goes too: staging is ours alone.
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(file_error(&path))?;
        }
        Ok(Warehouse { root: root.to_path_buf(), _lock: lock })
    }

    /// The warehouse folder.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates and returns the staging folder of a new load.
    ///
    /// # Errors
    ///
    /// [`SinkError::File`] when it cannot be created.
    pub fn begin(&self, load_id: &str) -> Result<PathBuf, SinkError> {
        let dir = self.meta().join("staging").join(load_id);
        fs::create_dir_all(&dir).map_err(|source| SinkError::File { path: dir.clone(), source })?;
        Ok(dir)
    }

    /// Where the dead letters of a load go (created by the caller when there are any).
    #[must_use]
    pub fn dead_letter_dir(&self, load_id: &str) -> PathBuf {
        self.root.join(DEAD_LETTER_DIR).join(load_id)
    }

    /// Where the run report of a load goes.
    #[must_use]
    pub fn report_path(&self, load_id: &str) -> PathBuf {
        self.meta().join("loads").join(format!("{load_id}.json"))
    }

    /// The load id of the published snapshot, if any.
    #[must_use]
    pub fn current(&self) -> Option<String> {
        let target = fs::read_link(self.meta().join("current")).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// Drops a load that was not published (a failed load): its staging folder, or, when
    /// [`publish`](Self::publish) failed after moving it into `snapshots/` (a table name
    /// taken by a foreign folder), that snapshot. The snapshot `current` points to is never
    /// removed: a failure after the commit point leaves the load published.
    pub fn abandon(&self, load_id: &str) {
        let meta = self.meta();
        let staging = meta.join("staging").join(load_id);
        let snapshot = meta.join("snapshots").join(load_id);
        let dir = if staging.exists() || self.current().as_deref() == Some(load_id) { staging } else { snapshot };
        if let Err(e) = fs::remove_dir_all(&dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %dir.display(), error = %e, "could not remove the folder of a failed load");
            }
        }
        let _ = fs::remove_file(meta.join(format!("current.{load_id}.tmp")));
    }

    /// Publishes the staged load `load_id`, whose folder holds one folder per table in
    /// `tables`, as the warehouse's current state; see the module docs for the protocol.
    ///
    /// # Errors
    ///
    /// [`SinkError::File`] for any file-system failure. Before the commit point the previous
    /// state is untouched; after it, only cleanup can fail, which is logged, not returned.
    pub fn publish(&self, load_id: &str, tables: &[String]) -> Result<(), SinkError> {
        let meta = self.meta();
        let staged = meta.join("staging").join(load_id);
        let snapshot = meta.join("snapshots").join(load_id);
        // All names first: a refusal half-way through the links would leave links to tables
        // that never get published.
        self.check_tables(tables)?;
        sync_tree(&staged)?;
        rename(&staged, &snapshot)?;
        sync_path(&meta.join("snapshots")).map_err(|source| SinkError::File { path: snapshot.clone(), source })?;

        // Table links resolve through `current`, so they can be made before the switch: a
        // link for a table new in this load dangles (the table is absent) until then.
        for table in tables {
            self.ensure_table_link(table)?;
        }
        let previous = self.current();
        let link_tmp = meta.join(format!("current.{load_id}.tmp"));
        let _ = fs::remove_file(&link_tmp);
        symlink(Path::new("snapshots").join(load_id), &link_tmp)?;
        // The commit point.
        rename(&link_tmp, &meta.join("current"))?;
        sync_path(&meta).map_err(|source| SinkError::File { path: meta.clone(), source })?;

        self.remove_stale_links(tables);
        if let Some(previous) = previous.as_deref().filter(|p| *p != load_id) {
            self.mark_replaced(previous, load_id);
        }
        self.remove_old_snapshots(load_id, previous.as_deref());
        Ok(())
    }

    /// Records in the snapshot `previous` that `by` replaced it now, which starts its grace
    /// period. A snapshot without the record is removed by the next publish after `by`.
    fn mark_replaced(&self, previous: &str, by: &str) {
        let path = self.meta().join("snapshots").join(previous).join(REPLACED_FILE);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let record = serde_json::json!({ "replaced_by": by, "replaced_at": now });
        if let Err(e) = write_file_atomically(&path, record.to_string().as_bytes()) {
            tracing::warn!(path = %path.display(), error = %e, "cannot record when the previous load was replaced");
        }
    }

    fn meta(&self) -> PathBuf {
        self.root.join(META_DIR)
    }

    /// Checks that the warehouse folder has room for a link per table of `tables`, as
    /// [`publish`](Self::publish) does first; a load can call it before it starts, so as not
    /// to be refused at the end.
    ///
    /// # Errors
    ///
    /// [`SinkError::File`] naming a table's path taken by something other than a link.
    pub fn check_tables(&self, tables: &[String]) -> Result<(), SinkError> {
        tables.iter().try_for_each(|table| self.check_table_link(table))
    }

    /// Fails when the name of `table` in the warehouse folder is taken by something other
    /// than a symbolic link (which [`ensure_table_link`](Self::ensure_table_link) replaces).
    fn check_table_link(&self, table: &str) -> Result<(), SinkError> {
        let link = self.root.join(table);
        match fs::symlink_metadata(&link) {
            Ok(m) if !m.file_type().is_symlink() => Err(SinkError::File {
                path: link,
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a table link of this warehouse; refusing to replace it",
                ),
            }),
            _ => Ok(()),
        }
    }

    fn ensure_table_link(&self, table: &str) -> Result<(), SinkError> {
        self.check_table_link(table)?;
        let link = self.root.join(table);
        let target = Path::new(META_DIR).join("current").join(table);
        if fs::symlink_metadata(&link).is_ok() {
            if fs::read_link(&link).is_ok_and(|t| t == target) {
                return Ok(());
            }
            fs::remove_file(&link).map_err(|source| SinkError::File { path: link.clone(), source })?;
        }
        symlink(target, &link)
    }

    /// Removes links of tables the current snapshot no longer has (a changed `--views`).
    fn remove_stale_links(&self, tables: &[String]) {
        let Ok(entries) = fs::read_dir(&self.root) else { return };
        let ours = Path::new(META_DIR).join("current");
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_our_link = fs::read_link(entry.path()).is_ok_and(|t| t.starts_with(&ours));
            if is_our_link && !tables.contains(&name) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Keeps the new snapshot, the one before it, and those replaced less than
    /// [`KEEP_REPLACED_FOR`] ago; removes the rest, each renamed into `removing/` first.
    fn remove_old_snapshots(&self, current: &str, previous: Option<&str>) {
        let removing = self.meta().join("removing");
        // What an interrupted removal left.
        if let Ok(entries) = fs::read_dir(&removing) {
            entries.flatten().for_each(|entry| remove_tree(&entry.path()));
        }
        let Ok(entries) = fs::read_dir(self.meta().join("snapshots")) else { return };
        let now = chrono::Utc::now();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == current || Some(name.as_str()) == previous {
                continue;
            }
            let replaced = replaced_at(&entry.path());
            if replaced.is_some_and(|at| now.signed_duration_since(at).to_std().unwrap_or_default() < KEEP_REPLACED_FOR)
            {
                continue;
            }
            let away = removing.join(&name);
            let moved = fs::create_dir_all(&removing).and_then(|()| fs::rename(entry.path(), &away));
            match moved {
                Ok(()) => remove_tree(&away),
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "could not remove an old snapshot")
                }
            }
        }
    }
}

/// When the snapshot folder `dir` was replaced, by its [`REPLACED_FILE`].
fn replaced_at(dir: &Path) -> Option<chrono::DateTime<chrono::Utc>> {
    let record: serde_json::Value = serde_json::from_slice(&fs::read(dir.join(REPLACED_FILE)).ok()?).ok()?;
    let at = chrono::DateTime::parse_from_rfc3339(record["replaced_at"].as_str()?).ok()?;
    Some(at.with_timezone(&chrono::Utc))
}

fn remove_tree(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove an old snapshot");
    }
}

/// Refuses a warehouse path a load must not write into: an empty one (which would mean the
/// working directory), one that is not a folder, and a folder that holds anything but is
/// not a warehouse (has no `_fhirhouse/`). A load adds its `_fhirhouse/` and `_dead_letter/`
/// folders and a link per table beside what is there; `--out ~` or `--out .` in an export
/// folder is a slip, not a wish to turn that folder into a warehouse. [`Warehouse::open`]
/// checks it; so must anything that writes into `_fhirhouse/` before opening (a sync).
///
/// # Errors
///
/// [`SinkError::File`] naming `root` and why it is refused.
pub fn check_warehouse_folder(root: &Path) -> Result<(), SinkError> {
    let refuse = |why: &str| {
        Err(SinkError::File { path: root.to_path_buf(), source: io::Error::new(io::ErrorKind::InvalidInput, why) })
    };
    if root.as_os_str().is_empty() {
        return Err(SinkError::File {
            path: PathBuf::from("\"\""),
            source: io::Error::new(io::ErrorKind::InvalidInput, "the warehouse path is empty"),
        });
    }
    let mut entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) if !root.is_dir() && root.exists() => return refuse("exists and is not a folder"),
        Err(source) => return Err(SinkError::File { path: root.to_path_buf(), source }),
    };
    if entries.next().is_none() || fs::symlink_metadata(root.join(META_DIR)).is_ok() {
        return Ok(());
    }
    refuse(
        "is a folder with files in it but not a fhirhouse warehouse (no _fhirhouse/); refusing to \
         write a warehouse into it: give a new or empty folder",
    )
}

fn rename(from: &Path, to: &Path) -> Result<(), SinkError> {
    fs::rename(from, to).map_err(|source| SinkError::File {
        path: to.to_path_buf(),
        source: io::Error::new(source.kind(), format!("cannot rename {} here: {source}", from.display())),
    })
}

#[cfg(unix)]
fn symlink(target: impl AsRef<Path>, link: &Path) -> Result<(), SinkError> {
    std::os::unix::fs::symlink(target, link).map_err(|source| SinkError::File { path: link.to_path_buf(), source })
}

#[cfg(not(unix))]
fn symlink(_target: impl AsRef<Path>, link: &Path) -> Result<(), SinkError> {
    Err(SinkError::File {
        path: link.to_path_buf(),
        source: io::Error::new(io::ErrorKind::Unsupported, "warehouses need symbolic links (Unix)"),
    })
}

/// Writes `bytes` to `path` so that a crash or a full disk never leaves half of them there:
/// into `path.tmp` first, made durable, then renamed over `path` (and the rename made
/// durable). On failure the temporary file is removed and `path` is as it was.
///
/// # Errors
///
/// The first failing step's error.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let temporary = path.with_file_name(name);
    let written = (|| {
        let mut file = File::create(&temporary)?;
        io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_path(parent),
        None => Ok(()),
    }
}

/// Makes a file's contents, or a folder's entries, durable. A new descriptor is enough:
/// since Linux 4.16 a writeback error not yet reported to anyone is reported to the next
/// fsync of the file, whichever descriptor.
fn sync_path(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Makes `dir` and every folder under it durable.
fn sync_tree(dir: &Path) -> Result<(), SinkError> {
    let mut dirs = vec![dir.to_path_buf()];
    let mut next = 0;
    while let Some(parent) = dirs.get(next).cloned() {
        let io_error = |source| SinkError::File { path: parent.clone(), source };
        for entry in fs::read_dir(&parent).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            if entry.file_type().map_err(io_error)?.is_dir() {
                dirs.push(entry.path());
            }
        }
        next += 1;
    }
    sync_paths(&dirs)
}

/// Makes `paths` (files or folders) durable, [`SYNC_THREADS`] at a time: a load writes
/// hundreds of part files and partition folders, and each fsync waits on the disk rather
/// than using a core.
///
/// # Errors
///
/// [`SinkError::File`] naming the first path that could not be opened or synced.
pub(crate) fn sync_paths(paths: &[PathBuf]) -> Result<(), SinkError> {
    if paths.is_empty() {
        return Ok(());
    }
    syncing_while(|sync_later| paths.iter().for_each(|path| sync_later(path.clone())))
}

/// Files and folders fsynced at once by [`sync_paths`] and [`syncing_while`].
const SYNC_THREADS: usize = 8;

/// Hands a path to fsync in the background: see [`syncing_while`].
pub(crate) type SyncLater<'a> = dyn Fn(PathBuf) + Sync + 'a;

/// Runs `work` while [`SYNC_THREADS`] threads make durable every path it hands to the
/// [`SyncLater`] it is given, each as soon as it is handed over, and returns once both are
/// done. A load's last part files are written on every core at the end; syncing each one
/// when it is closed overlaps the disk waits with writing the others, where syncing them
/// all afterwards left the cores idle for the length of the slowest fsyncs.
///
/// # Errors
///
/// [`SinkError::File`] naming a path that could not be opened or synced (the first one
/// that failed); `work`'s own result is then dropped.
pub(crate) fn syncing_while<R>(work: impl FnOnce(&SyncLater<'_>) -> R) -> Result<R, SinkError> {
    let failure = Mutex::new(None);
    let (paths, to_sync) = mpsc::channel::<PathBuf>();
    let to_sync = Mutex::new(to_sync);
    let result = std::thread::scope(|scope| {
        for i in 0..SYNC_THREADS {
            let (to_sync, failure) = (&to_sync, &failure);
            // Plain threads blocked on a channel, not a rayon pool: rayon's idle threads
            // spin (sched_yield) between jobs, and eight of them took cycles from the
            // threads encoding the last part files.
            let syncer = move || loop {
                let next = to_sync.lock().unwrap_or_else(PoisonError::into_inner).recv();
                let Ok(path) = next else { return };
                if let Err(source) = sync_path(&path) {
                    failure
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(SinkError::File { path, source });
                }
            };
            std::thread::Builder::new().name(format!("fhirhouse-sync-{i}")).spawn_scoped(scope, syncer)?;
        }
        let sync_later = move |path: PathBuf| {
            // The receivers live until every sender is gone: the send cannot fail.
            let _ = paths.send(path);
        };
        // `sync_later` is dropped on return, and with it the channel's only sender: the
        // threads sync the paths left and end, and the scope waits for them.
        Ok::<_, io::Error>(work(&sync_later))
    });
    let result = result.map_err(SinkError::Io)?;
    match failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some(error) => Err(error),
        None => Ok(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(w: &Warehouse, id: &str, table: &str, content: &str) {
        let dir = w.begin(id).unwrap().join(table);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("part.txt"), content).unwrap();
    }

    fn snapshots(root: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(root.join("_fhirhouse/snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Makes the snapshot `id` look replaced two hours ago.
    fn back_date(root: &Path, id: &str) {
        let path = root.join("_fhirhouse/snapshots").join(id).join(REPLACED_FILE);
        let mut record: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        record["replaced_at"] = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339().into();
        fs::write(path, record.to_string()).unwrap();
    }

    #[test]
    fn publish_switches_tables_and_keeps_replaced_snapshots_for_a_while() {
        let root = tempfile::tempdir().unwrap();
        let w = Warehouse::open(root.path()).unwrap();
        for (id, content) in [("L1", "one"), ("L2", "two"), ("L3", "three")] {
            stage(&w, id, "patient", content);
            w.publish(id, &["patient".into()]).unwrap();
            assert_eq!(fs::read_to_string(root.path().join("patient/part.txt")).unwrap(), content);
            assert_eq!(w.current().as_deref(), Some(id));
        }
        assert_eq!(snapshots(root.path()), ["L1", "L2", "L3"], "replaced within the grace period");
        let record: serde_json::Value =
            serde_json::from_slice(&fs::read(root.path().join("_fhirhouse/snapshots/L1").join(REPLACED_FILE)).unwrap())
                .unwrap();
        assert_eq!(record["replaced_by"], "L2");
        assert!(!root.path().join("_fhirhouse/snapshots/L3").join(REPLACED_FILE).exists());

        // Past it, the next publish removes them, but for the one it replaces; so does it a
        // snapshot that does not say when it was replaced (an older fhirhouse's).
        back_date(root.path(), "L1");
        back_date(root.path(), "L2");
        stage(&w, "L0", "patient", "zero");
        fs::rename(w.begin("L0").unwrap(), root.path().join("_fhirhouse/snapshots/L0")).unwrap();
        stage(&w, "L4", "patient", "four");
        w.publish("L4", &["patient".into()]).unwrap();
        assert_eq!(snapshots(root.path()), ["L3", "L4"]);
        assert!(fs::read_dir(root.path().join("_fhirhouse/removing")).unwrap().next().is_none());
    }

    #[test]
    fn staging_of_an_interrupted_load_is_removed_and_state_kept() {
        let root = tempfile::tempdir().unwrap();
        {
            let w = Warehouse::open(root.path()).unwrap();
            stage(&w, "L1", "patient", "one");
            w.publish("L1", &["patient".into()]).unwrap();
            stage(&w, "L2", "patient", "partial");
        }
        let _w = Warehouse::open(root.path()).unwrap();
        assert!(!root.path().join("_fhirhouse/staging/L2").exists());
        assert_eq!(fs::read_to_string(root.path().join("patient/part.txt")).unwrap(), "one");
    }

    #[test]
    fn stray_files_in_staging_are_removed_and_a_dereferenced_copy_is_refused() {
        let root = tempfile::tempdir().unwrap();
        drop(Warehouse::open(root.path()).unwrap());
        fs::write(root.path().join("_fhirhouse/staging/.DS_Store"), "").unwrap();
        drop(Warehouse::open(root.path()).unwrap());
        assert!(fs::read_dir(root.path().join("_fhirhouse/staging")).unwrap().next().is_none());

        fs::create_dir(root.path().join("_fhirhouse/current")).unwrap();
        let err = Warehouse::open(root.path()).unwrap_err().to_string();
        assert!(err.contains("current: is not a symbolic link"), "{err}");
    }

    #[test]
    fn a_file_written_atomically_is_whole_or_as_it_was() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("report.json");
        fs::write(&path, "old").unwrap();
        write_file_atomically(&path, b"new, whole").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new, whole");
        // A rename that cannot happen (a folder in the way) leaves no temporary file behind.
        let blocked = root.path().join("blocked.json");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), "").unwrap();
        assert!(write_file_atomically(&blocked, b"x").is_err());
        let names: Vec<_> = fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn syncing_files_and_folders_names_the_path_that_failed() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("part.parquet");
        fs::write(&file, "x").unwrap();
        sync_paths(&[root.path().to_path_buf(), file.clone()]).unwrap();
        let missing = root.path().join("gone.parquet");
        let err = sync_paths(&[file, missing.clone()]).unwrap_err();
        assert!(matches!(&err, SinkError::File { path, .. } if *path == missing), "{err}");
    }

    #[test]
    fn syncing_while_working_returns_the_work_or_the_path_that_failed() {
        let root = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..20).map(|i| root.path().join(format!("part-{i}.parquet"))).collect();
        let written = syncing_while(|sync_later| {
            for file in &files {
                fs::write(file, "x").unwrap();
                sync_later(file.clone());
            }
            files.len()
        })
        .unwrap();
        assert_eq!(written, 20);
        let missing = root.path().join("gone.parquet");
        let err = syncing_while(|sync_later| {
            sync_later(files[0].clone());
            sync_later(missing.clone());
        })
        .unwrap_err();
        assert!(matches!(&err, SinkError::File { path, .. } if *path == missing), "{err}");
    }

    #[test]
    fn second_writer_is_refused_and_foreign_folders_are_not_replaced() {
        let root = tempfile::tempdir().unwrap();
        let w = Warehouse::open(root.path()).unwrap();
        let err = Warehouse::open(root.path()).unwrap_err().to_string();
        assert!(err.contains("another load"), "{err}");

        fs::create_dir(root.path().join("patient")).unwrap();
        stage(&w, "L1", "patient", "x");
        let err = w.publish("L1", &["patient".into()]).unwrap_err().to_string();
        assert!(err.contains("refusing"), "{err}");
    }

    #[test]
    fn a_failed_publish_leaves_no_snapshot_and_the_published_state_as_it_was() {
        let root = tempfile::tempdir().unwrap();
        let w = Warehouse::open(root.path()).unwrap();
        stage(&w, "L1", "patient", "one");
        w.publish("L1", &["patient".into()]).unwrap();
        fs::create_dir(root.path().join("encounter")).unwrap();
        stage(&w, "L2", "patient", "two");
        stage(&w, "L2", "encounter", "two");
        assert!(w.publish("L2", &["patient".into(), "encounter".into()]).is_err());
        w.abandon("L2");
        let snapshots: Vec<_> = fs::read_dir(root.path().join("_fhirhouse/snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(snapshots, ["L1"]);
        assert_eq!(w.current().as_deref(), Some("L1"));
        assert_eq!(fs::read_to_string(root.path().join("patient/part.txt")).unwrap(), "one");

        // Abandoning the published load (a failure after the commit point) keeps it.
        w.abandon("L1");
        assert_eq!(fs::read_to_string(root.path().join("patient/part.txt")).unwrap(), "one");
    }

    #[test]
    fn a_publish_refused_for_a_taken_table_name_makes_no_links() {
        let root = tempfile::tempdir().unwrap();
        let w = Warehouse::open(root.path()).unwrap();
        stage(&w, "L1", "a", "one");
        w.publish("L1", &["a".into()]).unwrap();
        fs::create_dir(root.path().join("c")).unwrap();
        for table in ["a", "b", "c"] {
            stage(&w, "L2", table, "two");
        }
        let err = w.publish("L2", &["a".into(), "b".into(), "c".into()]).unwrap_err().to_string();
        assert!(err.contains("refusing"), "{err}");
        w.abandon("L2");
        // `b` is not published: a link to it would dangle.
        assert!(fs::symlink_metadata(root.path().join("b")).is_err());
        assert_eq!(fs::read_to_string(root.path().join("a/part.txt")).unwrap(), "one");
        assert!(fs::read_dir(root.path().join("_fhirhouse/staging")).unwrap().next().is_none());
    }

    #[test]
    fn a_folder_that_is_not_a_warehouse_is_refused_and_left_as_it_was() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        fs::create_dir(&home).unwrap();
        fs::write(home.join("notes.txt"), "mine").unwrap();
        let err = Warehouse::open(&home).unwrap_err().to_string();
        assert!(err.contains("not a fhirhouse warehouse") && err.contains("home"), "{err}");
        let left: Vec<_> = fs::read_dir(&home).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["notes.txt"]);

        let file = root.path().join("file");
        fs::write(&file, "mine").unwrap();
        let err = Warehouse::open(&file).unwrap_err().to_string();
        assert!(err.contains("is not a folder"), "{err}");
        assert!(Warehouse::open(Path::new("")).unwrap_err().to_string().contains("empty"));

        // A new folder, an empty one and a warehouse are fine.
        drop(Warehouse::open(&root.path().join("new")).unwrap());
        let empty = root.path().join("empty");
        fs::create_dir(&empty).unwrap();
        drop(Warehouse::open(&empty).unwrap());
        drop(Warehouse::open(&empty).unwrap());
    }

    #[test]
    fn tables_dropped_from_the_views_lose_their_links() {
        let root = tempfile::tempdir().unwrap();
        let w = Warehouse::open(root.path()).unwrap();
        stage(&w, "L1", "a", "x");
        stage(&w, "L1", "b", "x");
        w.publish("L1", &["a".into(), "b".into()]).unwrap();
        stage(&w, "L2", "a", "y");
        w.publish("L2", &["a".into()]).unwrap();
        assert!(root.path().join("a").exists());
        assert!(fs::symlink_metadata(root.path().join("b")).is_err());
    }
}
