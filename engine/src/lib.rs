//! fhirhouse turns FHIR Bulk Data exports into analytics tables.
//!
//! A Bulk Data export is a folder of NDJSON files, one FHIR R4 resource per line. Each
//! output table is defined by an HL7 SQL on FHIR v2 ViewDefinition. Data flows one way
//! through the stages, one module each:
//!
//! - [`bulk`]: the FHIR Bulk Data client, `$export` from a server into an export folder
//!   (SMART Backend Services auth, retries, resumable verified downloads);
//! - [`source`]: finds input files and yields raw lines with file and line number;
//! - [`view`]: compiles ViewDefinitions and evaluates them over parsed resources into
//!   Arrow record batches;
//! - [`terminology`]: code crosswalks (SNOMED CT, ICD-10-CM, RxNorm, LOINC), value sets and
//!   reference tables, declared as data under `mappings/`, applied to the views' batches;
//! - [`sink`]: writes record batches out (NDJSON, CSV, Parquet), and warehouses: Hive
//!   partitioned Parquet published atomically;
//! - [`load`]: a whole export through every view into a warehouse, in parallel, with dead
//!   letters and a run report;
//! - [`sql`]: the warehouse's tables registered in Apache DataFusion;
//! - [`store`]: object-store URLs (`s3://`, `gs://`, `az://`, `http(s)://`) for exports and
//!   warehouses, shared by the stages;
//! - [`cli`]: the `fhirhouse` command line over the stages.
//!
//! A tool module stands beside the stages:
//!
//! - [`gen`]: synthetic exports of any size templated from the bundled sample
//!   (`fhirhouse gen`), for benchmarks and reliability runs.
//!
//! ```
//! use std::sync::Arc;
//! use fhirhouse::view::{CompiledView, Json, ViewBatchBuilder};
//!
//! let view = CompiledView::from_json_str(r#"{
//!   "resource": "Observation",
//!   "select": [{"column": [
//!     {"name": "id", "path": "getResourceKey()"},
//!     {"name": "patient_id", "path": "subject.getReferenceKey(Patient)"},
//!     {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"}]}]
//! }"#).unwrap();
//! let mut rows = ViewBatchBuilder::new(Arc::new(view));
//! let mut line = br#"{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},
//!                     "valueQuantity":{"value":7.25,"unit":"%"}}"#.to_vec();
//! rows.append(Json::root(&simd_json::to_tape(&mut line).unwrap())).unwrap();
//! let batch = rows.finish();
//! assert_eq!(batch.num_rows(), 1);
//! assert_eq!(batch.schema().field(2).data_type(), &arrow::datatypes::DataType::Decimal128(38, 9));
//! ```
#![warn(missing_docs)]

pub mod bulk;
pub mod cli;
pub mod gen;
pub mod load;
pub mod sink;
pub mod source;
pub mod sql;
pub mod store;
pub mod terminology;
pub mod view;

/// An error and its causes on one line, joined by `: ` as anyhow's `{:#}` joins them, but
/// leaving out a cause whose text is already written.
///
/// Many errors, ours (a file error that names its OS error) and the libraries' (object_store,
/// DataFusion), both write their cause into their message and return it as their
/// [`source`](std::error::Error::source); `{:#}` then prints the cause twice. The causes
/// stay reachable as sources (a closed pipe is found by walking them), so it is the printing
/// that leaves the repeat out.
///
/// ```
/// use std::io;
///
/// let cause = io::Error::new(io::ErrorKind::NotFound, "No such file or directory");
/// let err = anyhow::Error::new(cause).context("data.ndjson: cannot open: No such file or directory");
/// assert_eq!(format!("{err:#}"), "data.ndjson: cannot open: No such file or directory: No such file or directory");
/// assert_eq!(fhirhouse::error_text(err.as_ref()), "data.ndjson: cannot open: No such file or directory");
///
/// let err = anyhow::anyhow!("permission denied").context("cannot open the warehouse");
/// assert_eq!(fhirhouse::error_text(err.as_ref()), "cannot open the warehouse: permission denied");
/// ```
#[must_use]
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(error) = cause {
        let part = error.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = error.source();
    }
    text
}

/// `n` followed by `one` when `n` is 1, else by `many`: what a summary prints a count with,
/// so that none reads "1 lines". `one` and `many` may carry a verb that agrees with them.
///
/// ```
/// assert_eq!(fhirhouse::counted(1, "line", "lines"), "1 line");
/// assert_eq!(fhirhouse::counted(0, "older copy", "older copies"), "0 older copies");
/// assert_eq!(fhirhouse::counted(2, "resource differs", "resources differ"), "2 resources differ");
/// ```
#[must_use]
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// How many worker threads a command runs: `requested`, or one per core when it is 0, and
/// never more than [`MAX_THREADS_PER_CORE`] per core (at least 64).
///
/// The work is parsing and encoding, bound by the cores; threads beyond them only wait. Far
/// beyond them they cost more than they wait: idle rayon workers spin before they sleep, so
/// `--threads 10000` on two cores took twenty minutes for a load of two seconds. A larger
/// request is lowered, with a warning.
///
/// ```
/// let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
/// assert_eq!(fhirhouse::worker_threads(0), cores);
/// assert_eq!(fhirhouse::worker_threads(3), 3);
/// assert_eq!(fhirhouse::worker_threads(1_000_000), (cores * fhirhouse::MAX_THREADS_PER_CORE).max(64));
/// ```
#[must_use]
pub fn worker_threads(requested: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let limit = (cores * MAX_THREADS_PER_CORE).max(64);
    match requested {
        0 => cores,
        n if n > limit => {
            tracing::warn!("--threads {n} is far more than the {cores} cores can use: running {limit} threads");
            limit
        }
        n => n,
    }
}

/// The most worker threads [`worker_threads`] gives per core.
pub const MAX_THREADS_PER_CORE: usize = 8;
