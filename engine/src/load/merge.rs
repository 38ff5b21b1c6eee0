//! Incremental loads: an export applied to the warehouse's current load instead of replacing
//! it (`fhirhouse sync`, `fhirhouse load --merge`).
//!
//! The increment goes through the same pipeline as a full load into a staging folder (its
//! own duplicates resolved the same way). Then, before the same atomic publish:
//!
//! 1. the increment's keys are read (a pass over its files, [`keys`]) and compared with the
//!    warehouse's key index: a resource the warehouse holds in the same or a newer version
//!    (numeric `meta.versionId`, then `meta.lastUpdated`) is *unchanged* and its increment rows
//!    are dropped, so re-applying an increment changes nothing; a newer one *updates*; an
//!    unknown id is *inserted*;
//! 2. the export's `deleted[]` Bundles (`DELETE Type/id` entries) name resources to remove,
//!    unless the increment also exports them (it then holds their state after the deletion);
//! 3. every table of the previous load is carried into the new snapshot by **hard links**
//!    (no data copied), and only the part files that hold rows of updated or deleted
//!    resources are rewritten without them; the increment's own part files are added. A
//!    rewrite makes a new file in place of the link, never writes through it, so the previous
//!    snapshot stays as it was for the sessions still reading it (`sink::commit` keeps it);
//! 4. the key index is carried the same way (links, files with changed ids rewritten) and
//!    gets one new file with the increment's winners; `_dq_unmapped_codes` adds the
//!    increment's counts to the previous ones.
//!
//! The cost of a merge is therefore: one parse of the increment (the load) plus one more (its
//! keys), the `id` column of the key index and of the part files of the types the increment
//! touches (read to find the changed rows; other columns only of the files that hold some),
//! and a rewrite of those files. Untouched tables and files cost a link each. Each sync adds
//! part files (the increment's); a full sync (`--full`) writes every table afresh.
//!
//! Increments apply in order: each snapshot of an incremental load records the newest
//! `transactionTime` its data holds ([`TRANSACTION_FILE`]), and a merge of an export older
//! than that is refused. Versions alone cannot guard it: a deletion carries no version, so an
//! old increment would delete resources created again since, and bring back ones deleted
//! since (their later deletion is no version the warehouse could compare with).
//!
//! A table's rows are found by its view's `getResourceKey()` column; a merge refuses views
//! without one, and views whose columns changed since the previous load (their old and new
//! files could not be read as one table).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use arrow::record_batch::RecordBatch;
use serde::Serialize;

use super::catalog::Catalog;
use super::dedup::Version;
use super::keys::{self, KEYS_DIR};
use super::metadata::TABLES_DIR;
use super::supersede::{drop_rows, resource_key_column};
use super::unmapped::{self, RemovedCodes};
use super::{LoadOptions, PipelineOutput};
use crate::sink::destination::Destination;
use crate::sink::parts::TableOutput;
use crate::source::{Export, LineReader, Location};

/// The sync record of a snapshot: where its data came from, up to when.
pub const SYNC_FILE: &str = "_sync.json";
/// The newest `transactionTime` of the exports a snapshot holds, written by incremental loads.
pub const TRANSACTION_FILE: &str = "_transaction_time.json";
/// How many unreadable `deleted` lines the report quotes.
const EXAMPLES: usize = 5;

/// What a merge did, for the run report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MergeReport {
    /// The load merged into.
    pub base_load: String,
    /// Resources new to the warehouse.
    pub inserted: u64,
    /// Resources replaced by a newer version.
    pub updated: u64,
    /// Resources the warehouse already held in this version or a newer one (left as they were).
    pub unchanged: u64,
    /// Resources replaced without a version check: the warehouse's key index does not list
    /// them (it was begun by a merge into a plain load).
    pub replaced_unchecked: u64,
    /// Resources removed because the export lists them as deleted.
    pub deleted: u64,
    /// Deleted resources the warehouse did not hold.
    pub deleted_absent: u64,
    /// Resources listed as deleted that the increment also exports (kept: it holds them now).
    pub deleted_but_exported: u64,
    /// Lines of the `deleted` files that are not Bundles of DELETE entries (none of their
    /// entries applied).
    pub deleted_unreadable: u64,
    /// Entries of the `deleted` Bundles that are not a DELETE (a `PUT`, an entry without a
    /// request): not applied, as the export says nothing of what they should do. The other
    /// entries of their Bundles apply.
    pub deleted_entries_skipped: u64,
    /// A few of those lines and entries, as `file:line: reason`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted_examples: Vec<String>,
    /// Rows the previous load's tables held.
    pub base_rows: u64,
    /// Of those, rows removed (updated or deleted resources).
    pub base_rows_removed: u64,
    /// Rows of the increment not applied (unchanged resources).
    pub increment_rows_dropped: u64,
    /// Part files carried over as they were (hard links).
    pub files_linked: u64,
    /// Part files rewritten without the rows of changed resources.
    pub files_rewritten: u64,
}

/// The incremental side of a load: a merge, or a full load that writes a key index.
pub(crate) struct Incremental {
    merge: bool,
    base: Option<Base>,
    sync_server: Option<String>,
    /// The newest `transactionTime` the new snapshot holds, for [`TRANSACTION_FILE`].
    transaction_time: Option<String>,
    /// The unmapped codes of the rows the merge took out, set by [`Incremental::apply`].
    removed_codes: RemovedCodes,
}

/// The warehouse's current load.
struct Base {
    dir: PathBuf,
    load_id: String,
}

impl Incremental {
    /// What `options` ask for; `None` for a plain load.
    ///
    /// # Errors
    ///
    /// An object-store warehouse, `--keep-raw` with a merge, and a merge of an export older
    /// than the warehouse (see [`check_order`]).
    pub fn prepare(
        options: &LoadOptions,
        warehouse: &Destination,
        export: &Export,
    ) -> anyhow::Result<Option<Incremental>> {
        if !options.merge && !options.key_index && options.sync_server.is_none() {
            return Ok(None);
        }
        let Destination::Local(warehouse) = warehouse else {
            bail!("incremental loads (fhirhouse sync, load --merge) need a local warehouse folder, not an object store")
        };
        if options.merge && options.keep_raw {
            bail!("--keep-raw cannot be combined with --merge: the kept lines of the previous load would be stale");
        }
        let base = warehouse
            .current()
            .map(|load_id| Base { dir: warehouse.root().join("_fhirhouse/snapshots").join(&load_id), load_id });
        let merge = options.merge && base.is_some();
        let mut transaction_time = export.transaction_time.clone();
        if let (Some(base), true) = (&base, merge) {
            let held = base_transaction_time(warehouse.root(), base);
            check_order(export, held.as_deref(), &base.load_id)?;
            transaction_time = later(held, transaction_time);
        }
        Ok(Some(Incremental {
            merge,
            base,
            sync_server: options.sync_server.clone(),
            transaction_time,
            removed_codes: RemovedCodes::default(),
        }))
    }

    /// Whether the load part files need names unique across loads (merged snapshots hold
    /// files of several loads side by side).
    pub fn merges(&self) -> bool {
        self.merge
    }

    /// Merges the staged increment into the previous load, or writes the key index of a
    /// full load. Runs after duplicate resolution and before the table reports.
    pub fn apply(
        &mut self,
        catalog: &Catalog,
        export: &Export,
        staging: &Path,
        pipeline: &mut PipelineOutput,
        load_id: &str,
    ) -> anyhow::Result<Option<MergeReport>> {
        let types: HashSet<String> = catalog.views.iter().map(|v| v.resource_type().to_owned()).collect();
        let keys_dir = staging.join(KEYS_DIR);
        match (&self.base, self.merge) {
            (Some(base), true) => {
                let removed = &mut self.removed_codes;
                merge(base, catalog, export, &types, staging, pipeline, load_id, removed).map(Some)
            }
            _ => keys::write_all(export, &types, &keys_dir).context("writing the key index").map(|()| None),
        }
    }

    /// `_dq_unmapped_codes` of a merge: the previous counts plus the increment's, less those
    /// of the rows taken out.
    pub fn unmapped(&self, increment: RecordBatch) -> anyhow::Result<RecordBatch> {
        match (&self.base, self.merge) {
            (Some(base), true) => {
                let previous = base.dir.join(crate::terminology::unmapped::TABLE);
                unmapped::combine(&previous, increment, &self.removed_codes)
            }
            _ => Ok(increment),
        }
    }

    /// After the table metadata: the source files of merged tables, and the sync record.
    pub fn finish(&self, staging: &Path, transaction_time: Option<&str>, load_id: &str) -> anyhow::Result<()> {
        if let (Some(base), true) = (&self.base, self.merge) {
            carry_source_files(&base.dir, staging)?;
        }
        let record = match (&self.sync_server, &self.base) {
            (Some(server), _) => Some(serde_json::json!({
                "server": server,
                "transaction_time": transaction_time,
                "load_id": load_id,
            })),
            // A merge outside sync keeps the previous record: its time is still a safe `_since`.
            (None, Some(base)) if self.merge => {
                std::fs::read(base.dir.join(SYNC_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok())
            }
            _ => None,
        };
        if let Some(record) = record {
            let path = staging.join(SYNC_FILE);
            std::fs::write(&path, serde_json::to_vec_pretty(&record)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if let Some(time) = &self.transaction_time {
            let path = staging.join(TRANSACTION_FILE);
            let record = serde_json::json!({ "transaction_time": time });
            std::fs::write(&path, serde_json::to_vec_pretty(&record)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

/// The newest `transactionTime` the base snapshot holds: its [`TRANSACTION_FILE`], else (a
/// snapshot written before there was one, or by a plain load) its sync record's time or its
/// load report's manifest time.
fn base_transaction_time(root: &Path, base: &Base) -> Option<String> {
    let read = |path: PathBuf| -> Option<serde_json::Value> {
        std::fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
    };
    let report = root.join("_fhirhouse/loads").join(format!("{}.json", base.load_id));
    [base.dir.join(TRANSACTION_FILE), base.dir.join(SYNC_FILE), report]
        .into_iter()
        .find_map(|path| read(path)?["transaction_time"].as_str().map(str::to_owned))
}

/// Refuses to merge an export older than the warehouse (`held`, the newest `transactionTime`
/// it holds, of load `base_load`): applying it would undo what the later increments did. The
/// same time again is allowed (re-applying an increment changes nothing). An export without a
/// `transactionTime` (a folder without manifest) cannot be placed: its updates are still
/// guarded by their versions, but its deletions carry none, so deletions without a time are
/// refused when the warehouse has one.
fn check_order(export: &Export, held: Option<&str>, base_load: &str) -> anyhow::Result<()> {
    let Some(held) = held else { return Ok(()) };
    let source = export.manifest.as_deref().unwrap_or("the increment");
    let Some(time) = export.transaction_time.as_deref() else {
        if !export.deleted_files.is_empty() {
            bail!(
                "{source} lists deleted resources but has no transactionTime: it cannot be told from an export older than the warehouse (transactionTime {held}, load {base_load}), whose deletions would undo later changes; nothing was merged"
            );
        }
        return Ok(());
    };
    match (instant(time), instant(held)) {
        (Some(new), Some(old)) if new < old => bail!(
            "{source} has transactionTime {time}, older than the warehouse's {held} (load {base_load}): applying it would undo the changes of the later increments (bring back resources deleted since, delete ones created again since); nothing was merged. Apply increments in order, or load in full"
        ),
        (Some(_), Some(_)) => Ok(()),
        // Not an instant: the order cannot be checked; the version check still guards updates.
        _ => {
            tracing::warn!(increment = time, warehouse = held, "a transactionTime is not an instant: cannot check that the increment is not older than the warehouse");
            Ok(())
        }
    }
}

/// A `transactionTime` as an instant, if it is one.
fn instant(time: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(time).ok()
}

/// The later of two `transactionTime`s (`new` when they cannot be compared).
fn later(held: Option<String>, new: Option<String>) -> Option<String> {
    match (held, new) {
        (Some(held), Some(new)) => match (instant(&held), instant(&new)) {
            (Some(a), Some(b)) if a > b => Some(held),
            _ => Some(new),
        },
        (held, new) => new.or(held),
    }
}

/// The sync record of the warehouse's current load, if it has one.
pub fn sync_record(warehouse: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(warehouse.join("_fhirhouse/current").join(SYNC_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether `new` should replace `old`: a newer version, or neither has any version (an
/// unversioned server: the later export wins).
fn replaces(new: Version, old: Version) -> bool {
    new > old || (new == Version::UNKNOWN && old == Version::UNKNOWN)
}

#[allow(clippy::too_many_arguments)]
fn merge(
    base: &Base,
    catalog: &Catalog,
    export: &Export,
    types: &HashSet<String>,
    staging: &Path,
    pipeline: &mut PipelineOutput,
    load_id: &str,
    removed_codes: &mut RemovedCodes,
) -> anyhow::Result<MergeReport> {
    let mut report = MergeReport { base_load: base.load_id.clone(), ..MergeReport::default() };
    check_tables(base, catalog)?;
    let increment = keys::collect(export, types).context("reading the increment's keys")?;
    let deleted = read_deleted(&export.deleted_files, &mut report)?;
    let base_keys = base.dir.join(KEYS_DIR);
    let complete = keys::is_complete(&base_keys);

    // Per type: base rows to remove, increment rows to drop, key entries to add.
    let mut remove: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut stale: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut winners: HashMap<&str, Vec<(&String, &Version)>> = HashMap::new();
    let empty = HashMap::new();
    for resource_type in types {
        let exported = increment.get(resource_type).unwrap_or(&empty);
        let gone = deleted.get(resource_type);
        if exported.is_empty() && gone.is_none() {
            continue;
        }
        let mut asked: HashMap<String, Version> = exported.clone();
        asked.extend(gone.into_iter().flatten().map(|id| (id.clone(), Version::UNKNOWN)));
        let held = keys::versions_of(&base_keys, resource_type, &asked)?;
        let t = resource_type.as_str();
        for (id, version) in exported {
            match held.get(id) {
                Some(old) if !replaces(*version, *old) => {
                    report.unchanged += 1;
                    stale.entry(t).or_default().insert(id.clone());
                    continue;
                }
                Some(_) => report.updated += 1,
                None if complete => report.inserted += 1,
                None => report.replaced_unchecked += 1,
            }
            if held.contains_key(id) || !complete {
                remove.entry(t).or_default().insert(id.clone());
            }
            winners.entry(t).or_default().push((id, version));
        }
        for id in gone.into_iter().flatten() {
            if exported.contains_key(id) {
                report.deleted_but_exported += 1;
            } else if held.contains_key(id) || !complete {
                report.deleted += 1;
                remove.entry(t).or_default().insert(id.clone());
            } else {
                report.deleted_absent += 1;
            }
        }
    }

    for (i, layout) in catalog.layouts.iter().enumerate() {
        let resource_type = catalog.views[i].resource_type();
        let key_column = resource_key_column(&catalog.views[i]).expect("checked by check_tables");
        let table_dir = staging.join(&layout.name);
        let bindings = catalog.terminology().map_or(&[][..], |t| t.bindings.as_slice());
        if let Some(ids) = stale.get(resource_type) {
            let mut removed = |rows: &RecordBatch| removed_codes.count(bindings, &layout.name, rows, false);
            let dropped = drop_rows(&table_dir, &mut pipeline.outputs[i], key_column, ids, &mut removed)?;
            report.increment_rows_dropped += dropped.rows;
        }
        let mut carried = link_table(&base.dir, &layout.name, &table_dir, load_id)?;
        report.base_rows += carried.rows;
        let linked = carried.files.len() as u64;
        if let Some(ids) = remove.get(resource_type) {
            let mut removed = |rows: &RecordBatch| removed_codes.count(bindings, &layout.name, rows, true);
            let dropped = drop_rows(&table_dir, &mut carried, key_column, ids, &mut removed)?;
            report.base_rows_removed += dropped.rows;
            report.files_rewritten += dropped.files_rewritten;
            report.files_linked += linked - dropped.files_rewritten;
        } else {
            report.files_linked += linked;
        }
        let output = &mut pipeline.outputs[i];
        output.rows += carried.rows;
        output.bytes += carried.bytes;
        output.files.extend(carried.files);
    }

    let keys_dir = staging.join(KEYS_DIR);
    for resource_type in types {
        let from = base_keys.join(resource_type);
        let to = keys_dir.join(resource_type);
        let mut carried = TableOutput::default();
        for path in keys::parquet_files(&from)? {
            let relative = path.strip_prefix(&from).expect("under it").to_string_lossy().into_owned();
            carried.files.push(link_file(&path, &to, &relative, load_id)?);
            // Counted like a table's files, for drop_rows' accounting.
            carried.rows += keys::rows_in(&path)?;
            carried.bytes += std::fs::metadata(&path)?.len();
        }
        if let Some(ids) = remove.get(resource_type.as_str()) {
            drop_rows(&to, &mut carried, 0, ids, &mut |_| Ok(()))?;
        }
        if let Some(entries) = winners.get(resource_type.as_str()) {
            keys::write_part(&keys_dir, resource_type, &format!("part-{load_id}.parquet"), entries)?;
        }
    }
    if complete {
        keys::mark_complete(&keys_dir)?;
    }
    tracing::info!(?report, "increment merged");
    Ok(report)
}

/// Refuses a merge whose tables cannot be merged: a view without a `getResourceKey()`
/// column, or a table whose columns differ from the previous load's.
fn check_tables(base: &Base, catalog: &Catalog) -> anyhow::Result<()> {
    for (i, layout) in catalog.layouts.iter().enumerate() {
        if resource_key_column(&catalog.views[i]).is_none() {
            bail!(
                "table {} ({}) has no getResourceKey() column: an incremental load cannot find its rows; add one, or load in full",
                layout.name,
                catalog.files[i].display()
            );
        }
        let Some(meta) = table_meta(&base.dir, &layout.name)? else { continue };
        let columns: Vec<(String, String)> =
            layout.schema.fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect();
        let before: Vec<(String, String)> = meta["columns"]
            .as_array()
            .map(|c| {
                c.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or_default().to_owned(),
                            c["type"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if columns != before {
            bail!(
                "table {} has other columns than in load {} (its view or the crosswalks changed): load in full (fhirhouse sync --full)",
                layout.name,
                base.load_id
            );
        }
        if let Some(changed) = changed_row_member(&meta["view"], catalog.views[i].definition()) {
            bail!(
                "table {}'s view computes its rows otherwise than in load {} (its '{changed}' changed): the held rows would keep the old values; load in full (fhirhouse sync --full)",
                layout.name,
                base.load_id
            );
        }
    }
    Ok(())
}

/// The ViewDefinition members that decide a table's rows and values, as opposed to its
/// name, status and descriptions: a merge keeps the held rows as they were computed, so
/// rows under another definition of these would mix two meanings in one column.
const ROW_MEMBERS: [&str; 4] = ["resource", "constant", "select", "where"];

/// The first of [`ROW_MEMBERS`] that differs between the view a table was loaded with and
/// the view now, descriptions inside `select` aside; `None` when they agree, or when the
/// held metadata has no view (a table loaded from a view built in code).
fn changed_row_member(held: &serde_json::Value, now: &serde_json::Value) -> Option<&'static str> {
    if held.is_null() {
        return None;
    }
    ROW_MEMBERS.into_iter().find(|member| without_descriptions(&held[*member]) != without_descriptions(&now[*member]))
}

/// `value` with every object's `description` removed: a column's description says what it
/// holds, it does not decide it.
fn without_descriptions(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(members) => members
            .iter()
            .filter(|(name, _)| name.as_str() != "description")
            .map(|(name, value)| (name.clone(), without_descriptions(value)))
            .collect(),
        serde_json::Value::Array(items) => items.iter().map(without_descriptions).collect(),
        other => other.clone(),
    }
}

fn table_meta(snapshot: &Path, table: &str) -> anyhow::Result<Option<serde_json::Value>> {
    let path = snapshot.join(TABLES_DIR).join(format!("{table}.json"));
    match std::fs::read(&path) {
        Ok(bytes) => {
            Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid", path.display()))?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Links the previous load's part files of `table` into `to`; returns them (names relative
/// to `to`) with the previous load's row and byte counts.
fn link_table(snapshot: &Path, table: &str, to: &Path, load_id: &str) -> anyhow::Result<TableOutput> {
    let Some(meta) = table_meta(snapshot, table)? else { return Ok(TableOutput::default()) };
    let from = snapshot.join(table);
    let mut output = TableOutput {
        rows: meta["rows"].as_u64().unwrap_or(0),
        bytes: meta["bytes"].as_u64().unwrap_or(0),
        files: Vec::new(),
    };
    for relative in meta["files"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let relative = relative.as_str().ok_or_else(|| anyhow!("{table}: a file name that is not text"))?;
        output.files.push(link_file(&from.join(relative), to, relative, load_id)?);
    }
    Ok(output)
}

/// Hard-links `source` as `to/relative` (renamed if the increment has a file of that name);
/// returns the name used.
fn link_file(source: &Path, to: &Path, relative: &str, load_id: &str) -> anyhow::Result<String> {
    let mut name = relative.to_owned();
    if to.join(&name).exists() {
        name = format!("{}-{load_id}.parquet", relative.trim_end_matches(".parquet"));
    }
    let target = to.join(&name);
    std::fs::create_dir_all(target.parent().expect("a file in a folder"))?;
    std::fs::hard_link(source, &target)
        .with_context(|| format!("cannot link {} as {}", source.display(), target.display()))?;
    Ok(name)
}

/// The resources the `deleted` files list, by type.
fn read_deleted(files: &[Location], report: &mut MergeReport) -> anyhow::Result<HashMap<String, HashSet<String>>> {
    let mut deleted: HashMap<String, HashSet<String>> = HashMap::new();
    for location in files {
        let reader = location.open(0).with_context(|| format!("cannot read {location}"))?;
        let mut lines = LineReader::from_reader(location.to_string(), reader)?;
        while let Some((number, line)) = lines.next_line()? {
            // Reported once, in the run report and its summary (not logged as well), and
            // counted into the load's exit status (`LoadReport::input_not_applied`).
            let mut example = |reason: &str| {
                if report.deleted_examples.len() < EXAMPLES {
                    report.deleted_examples.push(format!("{location}:{number}: {reason}"));
                }
            };
            match deleted_keys(line) {
                Ok((keys, skipped)) => {
                    for reason in &skipped {
                        example(reason);
                    }
                    report.deleted_entries_skipped += skipped.len() as u64;
                    for (t, id) in keys {
                        deleted.entry(t).or_default().insert(id);
                    }
                }
                Err(reason) => {
                    example(&reason);
                    report.deleted_unreadable += 1;
                }
            }
        }
    }
    Ok(deleted)
}

/// The `(type, id)` of every DELETE entry of one Bundle line, and why each other entry was
/// skipped. A line that is no such Bundle, or a DELETE entry without a `Type/id` URL, is an
/// error: nothing of the line applies.
type DeletedKeys = (Vec<(String, String)>, Vec<String>);

fn deleted_keys(line: &[u8]) -> Result<DeletedKeys, String> {
    let bundle: serde_json::Value = serde_json::from_slice(line).map_err(|e| format!("not valid JSON: {e}"))?;
    if bundle["resourceType"] != "Bundle" {
        return Err(format!("a {} where a Bundle was expected", bundle["resourceType"].as_str().unwrap_or("line")));
    }
    let entries = bundle["entry"].as_array().ok_or("a Bundle without entries")?;
    let (mut keys, mut skipped) = (Vec::new(), Vec::new());
    for (i, entry) in entries.iter().enumerate() {
        let request = &entry["request"];
        match request["method"].as_str() {
            Some(m) if m.eq_ignore_ascii_case("DELETE") => {}
            Some(m) => {
                skipped.push(format!("entry[{i}] is a {m}, not a DELETE: not applied"));
                continue;
            }
            None => {
                skipped.push(format!("entry[{i}] has no request.method: not applied"));
                continue;
            }
        }
        let url = request["url"].as_str().ok_or_else(|| format!("entry[{i}].request has no url"))?;
        keys.push(reference_key(url).ok_or_else(|| format!("entry[{i}].request.url {url:?} is not Type/id"))?);
    }
    Ok((keys, skipped))
}

/// `Patient/123` from `Patient/123`, `https://server/fhir/Patient/123` or
/// `Patient/123/_history/4`.
fn reference_key(url: &str) -> Option<(String, String)> {
    let path = url.split(['?', '#']).next()?;
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(history) = segments.iter().position(|s| *s == "_history") {
        segments.truncate(history);
    }
    let [.., resource_type, id] = segments.as_slice() else { return None };
    let is_type = resource_type.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && resource_type.chars().all(|c| c.is_ascii_alphanumeric());
    (is_type && !id.is_empty()).then(|| ((*resource_type).to_owned(), (*id).to_owned()))
}

/// Adds the previous load's `source_files` to each merged table's metadata.
fn carry_source_files(base: &Path, staging: &Path) -> anyhow::Result<()> {
    let dir = staging.join(TABLES_DIR);
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let Some(table) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else { continue };
        let Some(before) = table_meta(base, &table)? else { continue };
        let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        let mut sources: Vec<serde_json::Value> = before["source_files"].as_array().cloned().unwrap_or_default();
        for source in meta["source_files"].as_array().cloned().unwrap_or_default() {
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
        meta["source_files"] = serde_json::Value::Array(sources);
        std::fs::write(&path, serde_json::to_vec_pretty(&meta)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_bundles_give_their_keys_and_bad_lines_their_reason() {
        let line = br#"{"resourceType":"Bundle","type":"transaction","entry":[
            {"request":{"method":"DELETE","url":"Patient/123"}},
            {"request":{"method":"DELETE","url":"https://s/fhir/Observation/o-1/_history/3"}},
            {"request":{"method":"PUT","url":"Patient/9"}}]}"#;
        let (keys, skipped) = deleted_keys(line).unwrap();
        assert_eq!(keys, [("Patient".to_owned(), "123".to_owned()), ("Observation".to_owned(), "o-1".to_owned())]);
        assert_eq!(skipped, ["entry[2] is a PUT, not a DELETE: not applied"], "counted, not dropped unseen");
        assert!(deleted_keys(b"{\"resourceType\":\"Patient\"}").unwrap_err().contains("a Patient"));
        let bad = br#"{"resourceType":"Bundle","entry":[{"request":{"method":"DELETE","url":"123"}}]}"#;
        assert!(deleted_keys(bad).unwrap_err().contains("is not Type/id"));
    }

    #[test]
    fn an_older_increment_is_refused_the_same_or_a_newer_one_merged() {
        let export = |time: Option<&str>, deletes: bool| Export {
            transaction_time: time.map(str::to_owned),
            manifest: Some("inc/manifest.json".to_owned()),
            deleted_files: if deletes { vec![Location::Local("d.ndjson".into())] } else { Vec::new() },
            ..Export::default()
        };
        let held = Some("2024-03-01T00:00:00Z");
        let err = check_order(&export(Some("2024-02-01T00:00:00Z"), true), held, "L").unwrap_err().to_string();
        assert!(err.starts_with("inc/manifest.json has transactionTime 2024-02-01T00:00:00Z, older than the warehouse's 2024-03-01T00:00:00Z (load L)"), "{err}");
        check_order(&export(Some("2024-03-01T00:00:00Z"), true), held, "L").expect("the same one again");
        check_order(&export(Some("2024-03-01T02:00:00+02:00"), true), held, "L").expect("the same instant, offset");
        check_order(&export(Some("2024-04-01T00:00:00Z"), true), held, "L").unwrap();
        check_order(&export(Some("2020-01-01T00:00:00Z"), true), None, "L").expect("nothing to compare with");
        check_order(&export(None, false), held, "L").expect("updates are guarded by versions");
        let err = check_order(&export(None, true), held, "L").unwrap_err().to_string();
        assert!(err.contains("lists deleted resources but has no transactionTime"), "{err}");

        let t = |s: &str| Some(s.to_owned());
        assert_eq!(later(t("2024-03-01T00:00:00Z"), t("2024-02-01T00:00:00Z")), t("2024-03-01T00:00:00Z"));
        assert_eq!(later(t("2024-03-01T00:00:00Z"), t("2024-04-01T00:00:00Z")), t("2024-04-01T00:00:00Z"));
        assert_eq!(later(t("2024-03-01T00:00:00Z"), None), t("2024-03-01T00:00:00Z"));
    }

    #[test]
    fn newer_versions_replace_and_unversioned_copies_replace_each_other() {
        let v = |version, updated| Version { version, updated };
        assert!(replaces(v(3, 0), v(2, 5)));
        assert!(replaces(v(2, 6), v(2, 5)));
        assert!(!replaces(v(2, 5), v(2, 5)), "the same version again changes nothing");
        assert!(!replaces(v(1, 9), v(2, 0)), "an older copy never wins");
        assert!(replaces(Version::UNKNOWN, Version::UNKNOWN));
    }
}
