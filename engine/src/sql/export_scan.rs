//! The reading side of an export table: a projected view and the threads that feed it.
//!
//! A [`Projection`] is what one scan computes: a copy of the view reduced to the columns the
//! query reads, and how its batches map to the scan's output (a view column, or the
//! partition key derived from the tagged date column). A [`ScanPartition`] is one stream of
//! a scan: a thread reads its chunks line by line, evaluates the projected view, and sends
//! batches through a channel of [`CHANNEL_BATCHES`] slots, so a slow consumer stops the
//! reader and memory stays at a few batches per partition. Dropping the stream (a `LIMIT`
//! met, an error elsewhere) ends the thread at its next batch.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use serde_json::Value;
use simd_json::prelude::*;
use tokio::sync::mpsc;

use super::export::{ExportIssues, BATCH_ROWS};
use crate::load::dead_letter::{resource_type_of, Reason};
use crate::load::first_resource_is_declared;
use crate::sink::partition::PartitionSpec;
use crate::source::{ChunkLine, ChunkLines, ExportFile};
use crate::terminology::TableStage;
use crate::view::{CompiledView, ResourceParser, ViewBatchBuilder};

/// Batches in flight between a partition's reader thread and the query.
const CHANNEL_BATCHES: usize = 2;

/// How often (in lines) a reader checks whether its stream is still read.
const CLOSED_CHECK_LINES: u64 = 4096;

/// Lines longer than this are reported and skipped, as a load does by default.
const MAX_LINE_BYTES: usize = 64 << 20;

/// One chunk of one file, read by one table.
#[derive(Debug, Clone)]
pub(super) struct Piece {
    pub file: Arc<ExportFile>,
    pub range: Range<u64>,
    /// What the file's declared type says about the table's.
    pub declared: Declared,
}

/// What a file's declared type (its manifest entry's, or its name's) says about the type of
/// the table reading it.
#[derive(Debug, Clone)]
pub(super) enum Declared {
    /// The table's own type: every line is parsed.
    Same,
    /// No type: a line without the table's type name in quotes is skipped unparsed, unless
    /// it has no `"resourceType"` either (it is no resource, and is reported).
    Unknown,
    /// Another type. The file is skipped when its first resource has that type, else read
    /// as if it declared none, so that a misnamed file is not skipped unseen (as a load
    /// does: [`first_resource_is_declared`]). The answer is worked out once, by the first
    /// scan that needs it, and shared by every table that reads the file.
    Other(Arc<OnceLock<bool>>),
}

/// Where one output column of a scan comes from.
#[derive(Debug, Clone, Copy)]
enum Output {
    /// A column of the projected view's batches, by index.
    Column(usize),
    /// The partition key, derived from the tagged date column.
    Key,
}

/// The view as one scan evaluates it, and the mapping to the scan's columns.
#[derive(Debug)]
pub(super) struct Projection {
    view: Arc<CompiledView>,
    /// The crosswalk of the projected view, when the scan reads a column it adds.
    stage: Option<TableStage>,
    partition: Option<PartitionSpec>,
    outputs: Vec<Output>,
    schema: SchemaRef,
}

impl Projection {
    /// The projection of `view` to the table columns `indices`. The table has
    /// `table_schema`: the view's columns, the columns `stage` adds (if the table is
    /// crosswalked), then the partition key if any.
    pub fn new(
        view: &Arc<CompiledView>,
        stage: Option<&TableStage>,
        table_schema: &SchemaRef,
        indices: &[usize],
    ) -> Result<Projection, String> {
        let view_schema = view.schema();
        let full_partition = PartitionSpec::of_view(view)?;
        let key = full_partition.as_ref().map(PartitionSpec::key_name);
        let mut needed: HashSet<&str> = HashSet::new();
        let mut crosswalked = false;
        for &i in indices {
            let name = table_schema.field(i).name();
            if view_schema.index_of(name).is_ok() {
                needed.insert(name);
            } else if Some(name) == key.as_ref() {
                needed.insert(full_partition.as_ref().expect("a key comes from a partition").column());
            } else {
                crosswalked = true;
            }
        }
        // An added column needs every input of the table's bindings: the stage is rebuilt
        // against the projected view, which must therefore still have them all.
        let stage = stage.filter(|_| crosswalked);
        if let Some(stage) = stage {
            for binding in stage.bindings() {
                needed.extend([binding.code.as_str(), binding.system.as_str()]);
                needed.extend(binding.display.as_deref());
                needed.extend(binding.id.as_deref());
            }
        }
        let projected = match view.definition() {
            Value::Null => Arc::clone(view),
            definition => Arc::new(
                CompiledView::from_json_value(&prune(definition, &needed))
                    .map_err(|e| format!("projected view does not compile: {e}"))?,
            ),
        };
        let partition = PartitionSpec::of_view(&projected)?;
        let projected_stage = match stage {
            Some(stage) => TableStage::for_table(stage.terminology(), projected.name(), &projected.schema())?,
            None => None,
        };
        let evaluated = projected_stage.as_ref().map_or_else(|| projected.schema(), |s| Arc::clone(s.schema()));
        let outputs = indices
            .iter()
            .map(|&i| {
                let name = table_schema.field(i).name();
                if Some(name) == key.as_ref() {
                    Ok(Output::Key)
                } else {
                    evaluated.index_of(name).map(Output::Column).map_err(|e| e.to_string())
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        let schema = Arc::new(table_schema.project(indices).map_err(|e| e.to_string())?);
        Ok(Projection { view: projected, stage: projected_stage, partition, outputs, schema })
    }

    /// The scan's output schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// A batch of the projected view as the scan's output.
    fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let crosswalked = match &self.stage {
            Some(stage) => Some(stage.apply(batch, None)?),
            None => None,
        };
        let evaluated = crosswalked.as_ref().unwrap_or(batch);
        let columns: Vec<ArrayRef> = self
            .outputs
            .iter()
            .map(|output| match output {
                Output::Column(i) => Arc::clone(evaluated.column(*i)),
                Output::Key => {
                    self.partition.as_ref().expect("a key is only projected from a partitioned view").key_array(batch)
                }
            })
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(self.schema(), columns, &options)?)
    }
}

/// The view definition with only the `needed` columns: in each `select` element that has
/// columns, the needed ones, or its first one if none is needed, so that every element (and
/// every `unionAll` branch alike) keeps producing the same rows.
fn prune(node: &Value, needed: &HashSet<&str>) -> Value {
    let Value::Object(map) = node else { return node.clone() };
    let mut out = map.clone();
    if let Some(Value::Array(columns)) = map.get("column") {
        let kept: Vec<Value> = columns
            .iter()
            .filter(|c| c.get("name").and_then(Value::as_str).is_some_and(|n| needed.contains(n)))
            .cloned()
            .collect();
        let kept = if kept.is_empty() { columns.iter().take(1).cloned().collect() } else { kept };
        out.insert("column".to_owned(), Value::Array(kept));
    }
    for key in ["select", "unionAll"] {
        if let Some(Value::Array(items)) = map.get(key) {
            out.insert(key.to_owned(), Value::Array(items.iter().map(|i| prune(i, needed)).collect()));
        }
    }
    Value::Object(out)
}

/// One partition of a scan: its chunks, read by a thread of its own when executed.
#[derive(Debug)]
pub(super) struct ScanPartition {
    projection: Arc<Projection>,
    pieces: Arc<Vec<Piece>>,
    issues: Arc<ExportIssues>,
    schema: SchemaRef,
}

impl ScanPartition {
    pub fn new(projection: Arc<Projection>, pieces: Vec<Piece>, issues: Arc<ExportIssues>) -> Self {
        let schema = projection.schema();
        ScanPartition { projection, pieces: Arc::new(pieces), issues, schema }
    }
}

impl PartitionStream for ScanPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        let reader = Reader {
            projection: Arc::clone(&self.projection),
            issues: Arc::clone(&self.issues),
            type_name: format!("\"{}\"", self.projection.view.resource_type()).into_bytes(),
            tx,
        };
        let pieces = Arc::clone(&self.pieces);
        let spawned = std::thread::Builder::new().name("fhirhouse-export-scan".into()).spawn(move || {
            let tx = reader.tx.clone();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.run(&pieces))).is_err() {
                let _ = tx.blocking_send(Err(DataFusionError::Internal("export scan thread panicked".into())));
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        let stream: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream));
        match spawned {
            Ok(_) => stream,
            Err(e) => {
                let failed = futures::stream::once(async move {
                    Err(DataFusionError::External(format!("cannot start an export reader thread: {e}").into()))
                });
                Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), failed))
            }
        }
    }
}

/// What a partition's thread needs.
struct Reader {
    projection: Arc<Projection>,
    issues: Arc<ExportIssues>,
    /// The resource type in quotes: a line without it cannot be of that type.
    type_name: Vec<u8>,
    tx: mpsc::Sender<Result<RecordBatch>>,
}

impl Reader {
    /// Reads every piece; returns early once the receiver is gone.
    fn run(&self, pieces: &[Piece]) {
        let mut builder = ViewBatchBuilder::new(Arc::clone(&self.projection.view));
        let mut parser = ResourceParser::default();
        let finder = memchr::memmem::Finder::new(&self.type_name);
        let resource_type_key = memchr::memmem::Finder::new(b"\"resourceType\"");
        for piece in pieces {
            if let Declared::Other(first_is_declared) = &piece.declared {
                if *first_is_declared
                    .get_or_init(|| first_resource_is_declared(&mut parser, &piece.file, MAX_LINE_BYTES))
                {
                    continue;
                }
            }
            let reader = match piece.file.open_at(piece.range.start.saturating_sub(1)) {
                Ok(reader) => reader,
                Err(e) => {
                    let place = piece.file.location.to_string();
                    self.issues.report(&place, format!("{place}: cannot open: {e}"));
                    continue;
                }
            };
            let mut lines = ChunkLines::new(reader, piece.range.clone(), MAX_LINE_BYTES);
            loop {
                // A query that stopped (LIMIT met, cancelled) while this piece gives no rows
                // would otherwise be read to its end.
                if lines.lines_read() % CLOSED_CHECK_LINES == 0 && self.tx.is_closed() {
                    return;
                }
                let problem = match lines.next_line() {
                    Ok(None) => break,
                    Ok(Some(ChunkLine::Line { index, offset, bytes })) => {
                        // A line without the type's name is another type's, unless it has no
                        // `"resourceType"` at all: no resource, which a load dead-letters
                        // whatever its views, so whichever table meets it reports it.
                        if !matches!(piece.declared, Declared::Same)
                            && finder.find(bytes).is_none()
                            && resource_type_key.find(bytes).is_some()
                        {
                            continue;
                        }
                        self.append(&mut builder, bytes, &mut parser)
                            .err()
                            .map(|reason| (index, offset, problem(&reason.detail(), reason.code())))
                    }
                    Ok(Some(ChunkLine::Oversized { index, offset, len, .. })) => {
                        let detail = format!("line of {len} bytes is longer than {MAX_LINE_BYTES}");
                        Some((index, offset, problem(&detail, Reason::Oversized { len, limit: MAX_LINE_BYTES }.code())))
                    }
                    Err(e) => {
                        let at = lines.position();
                        let place = format!("{}: byte {at}", piece.file.location);
                        self.issues.report(&place, format!("{}: read error at byte {at}: {e}", piece.file.location));
                        break;
                    }
                };
                if let Some((index, offset, reason)) = problem {
                    let at = if piece.range.start == 0 { format!("{}", index + 1) } else { format!("byte {offset}") };
                    // Keyed by the line, not the reason: scans of other columns may fail on
                    // the same line for another reason.
                    let place = format!("{}:{at}", piece.file.location);
                    self.issues.report(&place, format!("{place}: {reason}"));
                }
                if builder.len() >= BATCH_ROWS && !self.send(builder.finish()) {
                    return;
                }
            }
        }
        if !builder.is_empty() {
            self.send(builder.finish());
        }
    }

    /// Parses one line and appends its rows if it is of the view's type. `Err` says why a
    /// load would dead-letter the line: a resource of another type is none of this view's
    /// business (a load gives it to its own type's views), but a line that is no resource
    /// is, whichever table meets it.
    fn append(
        &self,
        builder: &mut ViewBatchBuilder,
        bytes: &mut [u8],
        parser: &mut ResourceParser,
    ) -> Result<(), Reason> {
        let error = match parser.parse(bytes) {
            Ok(parsed) => {
                let resource = parsed.doc();
                let table_type = self.projection.view.resource_type();
                if !resource_type_of(resource, |t| t == table_type)?.read {
                    return Ok(());
                }
                return builder.append(resource).map(drop).map_err(|e| Reason::View(e.to_string()));
            }
            Err(error) => error,
        };
        Err(Reason::unparsable(&error, bytes))
    }

    /// Sends one batch; false when nobody reads any more.
    fn send(&self, batch: RecordBatch) -> bool {
        self.tx.blocking_send(self.projection.apply(&batch)).is_ok()
    }
}

/// How a line's problem is reported: the reason, and its code as a load's dead letters and
/// summary name it.
fn problem(detail: &str, code: &str) -> String {
    format!("{detail} ({code})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> Arc<CompiledView> {
        Arc::new(
            CompiledView::from_json_value(&serde_json::json!({
                "resource": "Observation", "name": "obs",
                "select": [
                    {"column": [
                        {"name": "id", "path": "id", "type": "id"},
                        {"name": "when", "path": "effective.ofType(dateTime)", "type": "dateTime",
                         "tag": [{"name": "fhirhouse/partition", "value": "year"}]},
                        {"name": "status", "path": "status", "type": "code"}]},
                    {"forEach": "component", "column": [
                        {"name": "code", "path": "code.text", "type": "string"},
                        {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"}]}
                ]
            }))
            .unwrap(),
        )
    }

    fn table_schema(view: &CompiledView) -> SchemaRef {
        Arc::new(PartitionSpec::of_view(view).unwrap().unwrap().reader_schema(&view.schema()))
    }

    fn names(schema: &arrow::datatypes::Schema) -> Vec<&str> {
        schema.fields().iter().map(|f| f.name().as_str()).collect()
    }

    #[test]
    fn projection_compiles_only_the_needed_columns_and_keeps_each_select() {
        let view = view();
        let schema = table_schema(&view);
        // status (2) and the key (5): `when` is evaluated for the key; the forEach keeps `code`.
        let p = Projection::new(&view, None, &schema, &[2, 5]).unwrap();
        assert_eq!(names(&p.view.schema()), ["when", "status", "code"]);
        assert_eq!(names(&p.schema), ["status", "when_year"]);

        let mut builder = ViewBatchBuilder::new(Arc::clone(&p.view));
        let mut line = br#"{"resourceType":"Observation","id":"o","status":"final","effectiveDateTime":"2019-03-01",
            "component":[{"code":{"text":"a"}},{"code":{"text":"b"}}]}"#
            .to_vec();
        builder.append(crate::view::Json::root(&simd_json::to_tape(&mut line).unwrap())).unwrap();
        let out = p.apply(&builder.finish()).unwrap();
        assert_eq!(out.num_rows(), 2, "the forEach still gives one row per component");
        let keys = out.column(1).as_any().downcast_ref::<arrow::array::Int32Array>().unwrap();
        assert_eq!(keys.values(), &[2019, 2019]);
    }

    #[test]
    fn no_columns_still_counts_rows() {
        let view = view();
        let p = Projection::new(&view, None, &table_schema(&view), &[]).unwrap();
        assert_eq!(names(&p.view.schema()), ["id", "code"]);
        assert_eq!(p.schema.fields().len(), 0);
    }
}
