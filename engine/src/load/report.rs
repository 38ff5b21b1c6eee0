//! The run report: what was read, written and dead-lettered, per file and per table.
//!
//! Saved as `_fhirhouse/loads/<load id>.json` and summarised on standard error. The counts
//! reconcile by construction and [`LoadReport::check`] verifies it:
//!
//! - per file: `lines = blank_lines + loaded + without_view + unread + dead_letters`;
//! - across the load: rows counted while reading = rows written to the tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::counted;

/// Counts for one input file.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FileReport {
    /// The file as named in the export.
    pub path: String,
    /// The resource type the export declares for it: by the manifest, or else by the file's
    /// name (see [`type_from_name`](crate::source::type_from_name)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_type: Option<String>,
    /// Whether the file's name declared its type (no manifest entry gave one).
    #[serde(skip)]
    pub type_from_name: bool,
    /// Bytes read (decompressed).
    pub bytes: u64,
    /// Lines, blank ones included.
    pub lines: u64,
    /// Blank lines (counted, not dead-lettered).
    pub blank_lines: u64,
    /// Resources that went through their views.
    pub loaded: u64,
    /// Valid resources of a type no view reads (kept nowhere unless `--keep-raw`).
    pub without_view: u64,
    /// Non-blank lines of a file whose declared type no view reads: counted, not parsed
    /// (see [`LoadOptions::parse_all`](super::LoadOptions::parse_all)).
    pub unread: u64,
    /// Lines written to the dead-letter output.
    pub dead_letters: u64,
    /// Dead letters by reason code.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dead_by_reason: BTreeMap<String, u64>,
    /// Rows the file's resources produced, all tables together.
    pub rows: u64,
    /// Resources whose `resourceType` differs from the file's declared type.
    pub type_mismatches: u64,
    /// Worker time spent on the file, summed over threads.
    pub seconds: f64,
}

impl FileReport {
    /// Adds the counts of a later chunk of the same file.
    pub fn add(&mut self, other: &FileReport) {
        self.bytes += other.bytes;
        self.lines += other.lines;
        self.blank_lines += other.blank_lines;
        self.loaded += other.loaded;
        self.without_view += other.without_view;
        self.unread += other.unread;
        self.dead_letters += other.dead_letters;
        for (reason, n) in &other.dead_by_reason {
            *self.dead_by_reason.entry(reason.clone()).or_default() += n;
        }
        self.rows += other.rows;
        self.type_mismatches += other.type_mismatches;
        self.seconds += other.seconds;
    }
}

/// Counts for one output table.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TableReport {
    /// Table name.
    pub table: String,
    /// The ViewDefinition file.
    pub view: String,
    /// The resource type the view reads.
    pub resource_type: String,
    /// The Hive partition key, if partitioned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// Rows written.
    pub rows: u64,
    /// Part files written.
    pub files: u64,
    /// Bytes of the part files.
    pub bytes: u64,
}

/// A manifest `error[]` file: the server's OperationOutcomes for the export.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ServerErrors {
    /// The file.
    pub path: String,
    /// OperationOutcome resources in it.
    pub outcomes: u64,
    /// Non-blank lines that are no OperationOutcome (invalid JSON, other resources): the
    /// file is not what the manifest says, and its count of outcomes says less.
    #[serde(skip_serializing_if = "is_zero")]
    pub other_lines: u64,
    /// Why the file could not be read (missing, unreadable part-way), when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// The first few diagnostics, for a quick look.
    pub examples: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The report of one load.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// The load id (also the snapshot and dead-letter folder names).
    pub load_id: String,
    /// `committed`, or `failed` (nothing published).
    pub status: String,
    /// Why the load failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Start time (UTC, RFC 3339).
    pub started: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Worker threads.
    pub threads: usize,
    /// The export's manifest, when it was named by one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// The manifest's `transactionTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_time: Option<String>,
    /// Sums over all files.
    pub totals: FileReport,
    /// Per input file.
    pub files: Vec<FileReport>,
    /// Per table.
    pub tables: Vec<TableReport>,
    /// Resources without a view, by type.
    pub without_view_by_type: BTreeMap<String, u64>,
    /// The manifest's error files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_errors: Vec<ServerErrors>,
    /// Resources that occurred more than once, when some did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<super::DuplicateReport>,
    /// Where the dead letters are, when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_dir: Option<String>,
    /// What the crosswalks left unmapped (table `_dq_unmapped_codes`), when they ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmapped_codes: Option<UnmappedReport>,
    /// What merging an increment into the previous load did (incremental loads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge: Option<super::MergeReport>,
    /// The load merges an increment into the previous one: set from the start, so that a
    /// merge that failed (and has no [`merge`](LoadReport::merge) counts) is still one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
}

/// The size of `_dq_unmapped_codes`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct UnmappedReport {
    /// Rows whose code no crosswalk maps.
    pub rows: u64,
    /// Distinct (table, column, system, code) among them.
    pub codes: u64,
}

impl UnmappedReport {
    /// The size of `table`, a batch of `_dq_unmapped_codes`.
    #[must_use]
    pub fn of(table: &arrow::record_batch::RecordBatch) -> UnmappedReport {
        use arrow::array::{Array, Int64Array};
        let counts = table.column_by_name("count").and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned());
        let rows = counts.map_or(0, |c| c.iter().flatten().map(|n| n.max(0) as u64).sum());
        UnmappedReport { rows, codes: table.num_rows() as u64 }
    }
}

impl LoadReport {
    /// Recomputes the totals from the files.
    pub fn total_up(&mut self) {
        let mut totals = FileReport { path: "(all files)".into(), ..FileReport::default() };
        for file in &self.files {
            totals.add(file);
        }
        self.totals = totals;
    }

    /// Checks that the counts reconcile; the message says which do not.
    ///
    /// # Errors
    ///
    /// A description of the first count that does not add up.
    pub fn check(&self) -> Result<(), String> {
        for f in self.files.iter().chain(std::iter::once(&self.totals)) {
            let accounted = f.blank_lines + f.loaded + f.without_view + f.unread + f.dead_letters;
            if f.lines != accounted {
                return Err(format!(
                    "{}: {} lines but {} blank + {} loaded + {} without a view + {} unread + {} dead letters = {accounted}",
                    f.path, f.lines, f.blank_lines, f.loaded, f.without_view, f.unread, f.dead_letters
                ));
            }
            let by_reason: u64 = f.dead_by_reason.values().sum();
            if by_reason != f.dead_letters {
                return Err(format!("{}: dead letters by reason sum to {by_reason}, not {}", f.path, f.dead_letters));
            }
        }
        let table_rows: u64 = self.tables.iter().map(|t| t.rows).sum();
        let (carried, dropped) =
            self.merge.as_ref().map_or((0, 0), |m| (m.base_rows - m.base_rows_removed, m.increment_rows_dropped));
        if self.status == "committed" && table_rows + dropped != self.totals.rows + carried {
            return Err(match &self.merge {
                None => format!("tables hold {table_rows} rows but the views produced {}", self.totals.rows),
                Some(_) => format!(
                    "tables hold {table_rows} rows but the views produced {} (of which {dropped} not applied) and {carried} were kept from the previous load",
                    self.totals.rows
                ),
            });
        }
        Ok(())
    }

    /// Input lines and entries the load could not apply: dead letters, and the unreadable
    /// lines and skipped entries of an increment's `deleted` files. Anything here makes the
    /// load partly failed (exit status 1), as dead letters alone did before merges.
    #[must_use]
    pub fn input_not_applied(&self) -> u64 {
        let deleted = self.merge.as_ref().map_or(0, |m| m.deleted_unreadable + m.deleted_entries_skipped);
        self.totals.dead_letters + deleted
    }

    /// The human summary printed on standard error.
    #[must_use]
    pub fn summary(&self) -> String {
        let t = &self.totals;
        let mut s = String::new();
        let mb = t.bytes as f64 / 1e6;
        let _ = writeln!(
            s,
            "load {} {}: {}, {:.1} MB in {:.1} s ({:.1} MB/s, {})",
            self.load_id,
            self.status,
            counted(self.files.len() as u64, "file", "files"),
            mb,
            self.seconds,
            mb / self.seconds.max(1e-9),
            counted(self.threads as u64, "thread", "threads")
        );
        let _ = writeln!(
            s,
            "  {}: {} loaded, {} without a view, {}, {} blank",
            counted(t.lines, "line", "lines"),
            t.loaded,
            t.without_view,
            counted(t.dead_letters, "dead letter", "dead letters"),
            t.blank_lines
        );
        if t.unread > 0 {
            let unread: Vec<&FileReport> = self.files.iter().filter(|f| f.unread > 0).collect();
            let types: std::collections::BTreeSet<&str> =
                unread.iter().filter_map(|f| f.declared_type.as_deref()).collect();
            let types = types.into_iter().collect::<Vec<_>>().join(", ");
            let by_name = unread.iter().filter(|f| f.type_from_name).count();
            let declared_by = match (by_name, unread.len() - by_name) {
                (_, 0) => "their file names declare",
                (0, _) => "the manifest declares",
                _ => "the manifest and their file names declare",
            };
            let _ = writeln!(
                s,
                "  {} not parsed: no view reads {types}, as {declared_by} them (--parse-all checks them)",
                counted(t.unread, "line", "lines")
            );
        }
        if let Some(why) = &self.failure {
            let _ = writeln!(s, "  failed: {why}");
        }
        if !t.dead_by_reason.is_empty() {
            let reasons: Vec<String> = t.dead_by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
            let dir = self.dead_letter_dir.as_deref().unwrap_or("-");
            let _ = writeln!(s, "  dead letters by reason: {} (in {dir})", reasons.join(", "));
        }
        if !self.without_view_by_type.is_empty() {
            let types: Vec<String> = self.without_view_by_type.iter().map(|(r, n)| format!("{r} {n}")).collect();
            let _ = writeln!(s, "  no view for: {}", types.join(", "));
        }
        let mismatches: u64 = self.files.iter().map(|f| f.type_mismatches).sum();
        if mismatches > 0 {
            let _ = writeln!(
                s,
                "  {} (see the report)",
                counted(
                    mismatches,
                    "resource differs from its file's declared type",
                    "resources differ from their file's declared type"
                )
            );
        }
        if let Some(d) = &self.duplicates {
            // Types whose views cannot find a resource's rows keep every copy: "the newest
            // loaded" would not be true of them.
            let kept = if d.kept_in_types.is_empty() {
                String::new()
            } else {
                format!(
                    ", but every copy kept in {} (a view of the type has no getResourceKey() column)",
                    d.kept_in_types.join(", ")
                )
            };
            let _ = writeln!(
                s,
                "  {} more than once: {} dead-lettered, the newest loaded{kept}",
                counted(d.keys, "resource occurred", "resources occurred"),
                counted(d.superseded, "older copy", "older copies")
            );
        }
        if let Some(u) = self.unmapped_codes.as_ref().filter(|u| u.rows > 0) {
            let _ = writeln!(
                s,
                "  {} not crosswalked ({}): see table _dq_unmapped_codes",
                counted(u.rows, "coded row", "coded rows"),
                counted(u.codes, "distinct code", "distinct codes")
            );
        }
        if let Some(m) = &self.merge {
            let _ = writeln!(
                s,
                "  merged into load {}: {} inserted, {} updated, {} unchanged, {} deleted ({} not held)",
                m.base_load,
                m.inserted,
                m.updated,
                m.unchanged,
                m.deleted,
                counted(m.deleted_absent, "listed as deleted was", "listed as deleted were")
            );
            if m.replaced_unchecked > 0 {
                let _ =
                    writeln!(s, "  {} replaced without a version check (not in the key index)", m.replaced_unchecked);
            }
            let _ = writeln!(
                s,
                "  {} kept, {} removed; {} carried over, {} rewritten",
                counted(m.base_rows - m.base_rows_removed, "previous row", "previous rows"),
                m.base_rows_removed,
                counted(m.files_linked, "part file", "part files"),
                m.files_rewritten
            );
            if m.deleted_unreadable + m.deleted_entries_skipped > 0 {
                let _ = writeln!(
                    s,
                    "  deleted files: {}, {}; not applied: {}",
                    counted(m.deleted_unreadable, "unreadable line", "unreadable lines"),
                    counted(m.deleted_entries_skipped, "entry that is no DELETE", "entries that are no DELETE"),
                    m.deleted_examples.join("; ")
                );
            }
        }
        for e in &self.server_errors {
            match &e.unreadable {
                Some(why) if e.outcomes == 0 && e.other_lines == 0 => {
                    let _ = writeln!(s, "  server error file {} could not be read: {why}", e.path);
                }
                _ => {
                    let outcomes = counted(e.outcomes, "OperationOutcome", "OperationOutcomes");
                    let _ = write!(s, "  server reported {outcomes} in {}", e.path);
                    if e.other_lines > 0 {
                        let other = counted(e.other_lines, "other line is", "other lines are");
                        let _ = write!(s, " ({other} no OperationOutcome)");
                    }
                    if let Some(why) = &e.unreadable {
                        let _ = write!(s, " (read stopped: {why})");
                    }
                    let _ = writeln!(s);
                }
            }
        }
        if self.status == "committed" {
            let width = self.tables.iter().map(|t| t.table.len()).max().unwrap_or(5).max(5);
            let _ = writeln!(s, "  {:<width$} {:>10} {:>6} {:>10}", "table", "rows", "files", "MB");
            for table in &self.tables {
                let _ = writeln!(
                    s,
                    "  {:<width$} {:>10} {:>6} {:>10.2}",
                    table.table,
                    table.rows,
                    table.files,
                    table.bytes as f64 / 1e6
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(lines: u64, loaded: u64, dead: u64) -> FileReport {
        let mut f =
            FileReport { path: "f".into(), lines, loaded, dead_letters: dead, rows: loaded, ..Default::default() };
        if dead > 0 {
            f.dead_by_reason.insert("invalid_json".into(), dead);
        }
        f
    }

    #[test]
    fn check_accepts_reconciled_counts_and_names_what_does_not_add_up() {
        let mut report = LoadReport { status: "committed".into(), files: vec![file(5, 4, 1)], ..Default::default() };
        report.tables.push(TableReport { table: "t".into(), rows: 4, ..Default::default() });
        report.total_up();
        report.check().unwrap();

        report.files[0].lines = 6;
        report.total_up();
        assert!(report.check().unwrap_err().contains("6 lines"));

        report.files[0].lines = 5;
        report.total_up();
        report.tables[0].rows = 3;
        assert!(report.check().unwrap_err().contains("3 rows"));
    }

    #[test]
    fn summary_counts_of_one_are_singular() {
        let mut f = file(1, 0, 1);
        f.type_mismatches = 1;
        let mut report =
            LoadReport { load_id: "l".into(), status: "committed".into(), threads: 1, ..Default::default() };
        report.files.push(f);
        report.total_up();
        report.duplicates = Some(super::super::DuplicateReport { keys: 1, superseded: 1, ..Default::default() });
        report.server_errors.push(ServerErrors { path: "e".into(), outcomes: 1, other_lines: 1, ..Default::default() });
        let summary = report.summary();
        for line in [
            "load l committed: 1 file, 0.0 MB in 0.0 s (0.0 MB/s, 1 thread)",
            "  1 line: 0 loaded, 0 without a view, 1 dead letter, 0 blank",
            "  1 resource differs from its file's declared type (see the report)",
            "  1 resource occurred more than once: 1 older copy dead-lettered, the newest loaded",
            "  server reported 1 OperationOutcome in e (1 other line is no OperationOutcome)",
        ] {
            assert!(summary.lines().any(|l| l == line), "no line {line:?} in\n{summary}");
        }
    }

    #[test]
    fn summary_says_which_types_kept_their_duplicates() {
        // Before: "2 resources occurred more than once: 0 older copies dead-lettered, the
        // newest loaded", then a line of its own, when every copy had been kept.
        let mut report = LoadReport { load_id: "l".into(), status: "committed".into(), ..Default::default() };
        let kept = vec!["Basic".to_owned()];
        report.duplicates =
            Some(super::super::DuplicateReport { keys: 2, superseded: 0, kept_in_types: kept, ..Default::default() });
        let line = "  2 resources occurred more than once: 0 older copies dead-lettered, the newest loaded, \
                    but every copy kept in Basic (a view of the type has no getResourceKey() column)";
        let summary = report.summary();
        assert!(summary.lines().any(|l| l == line), "no line {line:?} in\n{summary}");
    }

    #[test]
    fn bad_deleted_lines_and_entries_count_as_input_not_applied() {
        let mut report = LoadReport { files: vec![file(5, 4, 1)], ..Default::default() };
        report.total_up();
        assert_eq!(report.input_not_applied(), 1);
        let merge =
            super::super::MergeReport { deleted_unreadable: 2, deleted_entries_skipped: 3, ..Default::default() };
        report.merge = Some(merge);
        assert_eq!(report.input_not_applied(), 6);
    }
}
