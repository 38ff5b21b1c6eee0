//! `fhirhouse gen`: synthetic Bulk Data exports of any size, templated from the bundled
//! Synthea sample, for benchmarks and reliability runs.
//!
//! This module owns everything about generating: the compiled template
//! ([`template`]: the sample split per patient into literal bytes and substitution slots),
//! the per-patient rewriting of ids, references, dates and quantities ([`rewrite`]), the
//! injected defects ([`defects`]) and the files on disk ([`writer`]). It reads nothing but
//! the sample embedded in the binary, and no other module depends on it.
//!
//! Generated patient `k` is template patient `k mod 10`, with every id of theirs replaced by
//! a UUID drawn from the seed, `k` and the original id's number (the same replacement
//! wherever the id occurs: `id`, `Type/id` and `urn:uuid:id` references, identifiers),
//! every date shifted back by the same per-patient number of days (partial dates of date
//! elements too, at their precision), and every `valueQuantity.value` jittered by up to 3 %
//! with its decimals kept. Organizations and Practitioners are a shared pool written once;
//! one Group lists up to 10,000 generated patients.
//!
//! Patients are generated in blocks, in parallel; blocks are written in order by one writer
//! thread, so the output is the same bytes for a seed whatever the number of threads.

pub mod defects;
pub mod rewrite;
pub mod template;
pub mod writer;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;
use rayon::prelude::*;

use defects::{Defect, DefectCounts};
use rewrite::{hash, splitmix64, unit, PatientRewrite};
use template::{Template, GROUP_TYPE};
use writer::{DefectsReport, ExportWriter};

/// Patients per block: the unit of parallel work (about 4 MiB of NDJSON).
const BLOCK_PATIENTS: u64 = 8;

/// Members per generated Group resource.
const GROUP_MEMBERS: u64 = 10_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Number of patients.
    pub patients: u64,
    /// The export folder (created; earlier NDJSON files there are replaced).
    pub out: PathBuf,
    /// The seed: the same seed gives the same bytes.
    pub seed: u64,
    /// Write `.ndjson.gz` files instead of `.ndjson`.
    pub gzip: bool,
    /// Fraction of patient resource lines (0 to 1) replaced by a defect.
    pub defects: f64,
    /// Worker threads; 0 for one per core.
    pub threads: usize,
    /// A Bulk Data export to use as the template instead of the bundled sample (see
    /// [`Template::from_dir`]).
    pub template: Option<PathBuf>,
}

impl GenOptions {
    /// Options for `patients` patients into `out`, seed 0, plain NDJSON, no defects.
    #[must_use]
    pub fn new(patients: u64, out: PathBuf) -> GenOptions {
        GenOptions { patients, out, seed: 0, gzip: false, defects: 0.0, threads: 0, template: None }
    }
}

/// What a run generated.
#[derive(Debug, Clone, Default)]
pub struct GenSummary {
    /// Patients generated.
    pub patients: u64,
    /// Resource lines written (defective ones included).
    pub resources: u64,
    /// Bytes of NDJSON generated (before compression).
    pub bytes: u64,
    /// Bytes written to the data files (compressed with `--gzip`).
    pub file_bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Defects injected.
    pub defects: DefectCounts,
}

impl GenSummary {
    /// Generated NDJSON megabytes (10^6 bytes) per second.
    #[must_use]
    pub fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

/// One block of generated patients: per type, its bytes (compressed when asked) and lines.
struct Block {
    data: Vec<Vec<u8>>,
    lines: Vec<u64>,
    bytes: u64,
    defects: DefectCounts,
}

/// Domain tag of defect decisions.
const TAG_DEFECT: u64 = 4;

/// Appends generated patient `k`'s resources to `out` (one buffer per template type), each
/// line followed by a newline; injects defects at `rate`. Returns the lines added per type.
pub fn emit_patient(
    template: &Template,
    seed: u64,
    k: u64,
    rate: f64,
    out: &mut [Vec<u8>],
    lines: &mut [u64],
    defects: &mut DefectCounts,
) {
    let patient = &template.patients[(k % template.patients.len() as u64) as usize];
    let mut rewrite = PatientRewrite::new(seed, k, patient);
    for (i, line) in patient.lines.iter().enumerate() {
        let buf = &mut out[line.type_index];
        let start = buf.len();
        rewrite.emit(line, buf);
        if rate > 0.0 {
            let h = rewrite.hash(&[TAG_DEFECT, i as u64]);
            if unit(h) < rate {
                let defect = Defect::pick(splitmix64(h));
                defect.apply(buf, start);
                defects.add(defect, &template.types[line.type_index]);
            }
        }
        buf.push(b'\n');
        lines[line.type_index] += 1;
    }
}

fn generate_block(template: &Template, options: &GenOptions, first: u64) -> Block {
    let types = template.types.len();
    let mut data = vec![Vec::new(); types];
    let mut lines = vec![0; types];
    let mut defects = DefectCounts::default();
    for k in first..(first + BLOCK_PATIENTS).min(options.patients) {
        emit_patient(template, options.seed, k, options.defects, &mut data, &mut lines, &mut defects);
    }
    let bytes = data.iter().map(|d| d.len() as u64).sum();
    if options.gzip {
        data = data.iter().map(|d| if d.is_empty() { Vec::new() } else { writer::gzip(d) }).collect();
    }
    Block { data, lines, bytes, defects }
}

/// The Group lines listing every generated patient, `GROUP_MEMBERS` per Group.
fn groups(template: &Template, seed: u64, patients: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut first = 0;
    while first < patients {
        let last = (first + GROUP_MEMBERS).min(patients);
        let mut id = Vec::new();
        rewrite::push_uuid(&mut id, hash(&[seed, u64::MAX, first]));
        let id = String::from_utf8_lossy(&id).into_owned();
        out.extend_from_slice(
            format!(
                r#"{{"resourceType":"Group","id":"{id}","identifier":[{{"system":"urn:ietf:rfc:3986","value":"urn:uuid:{id}"}}],"active":true,"type":"person","actual":true,"name":"Synthea Patients","quantity":{},"member":["#,
                last - first
            )
            .as_bytes(),
        );
        for k in first..last {
            let patient = &template.patients[(k % template.patients.len() as u64) as usize];
            if k > first {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"entity":{"reference":"Patient/"#);
            out.extend_from_slice(PatientRewrite::id_alone(seed, k, patient.patient_id).as_bytes());
            out.extend_from_slice(br#""}}"#);
        }
        out.extend_from_slice(b"]}\n");
        first = last;
    }
    out
}

/// Generates an export. See the module docs.
///
/// # Errors
///
/// Options out of range (`out` the template folder), the template is refused, or a file
/// cannot be written.
pub fn generate(options: &GenOptions) -> anyhow::Result<GenSummary> {
    anyhow::ensure!((0.0..=1.0).contains(&options.defects), "--defects must be between 0 and 1");
    if let Some(dir) = &options.template {
        // The writer first removes the NDJSON files of its folder: the template's, here.
        let same = matches!((dir.canonicalize(), options.out.canonicalize()), (Ok(a), Ok(b)) if a == b);
        anyhow::ensure!(
            !same,
            "--out {} is the --template folder: the export would replace the template's NDJSON files",
            options.out.display()
        );
    }
    let started = Instant::now();
    let template = match &options.template {
        Some(dir) => Template::from_dir(dir)?,
        None => Template::bundled(),
    };
    let mut writer = ExportWriter::create(&options.out, &template.types, options.gzip)?;
    let mut summary = GenSummary { patients: options.patients, ..GenSummary::default() };

    // The shared pool first: a small, fixed set of lines per type.
    let mut shared = vec![(Vec::new(), 0u64); template.types.len()];
    for (type_index, line) in &template.shared {
        shared[*type_index].0.extend_from_slice(line);
        shared[*type_index].0.push(b'\n');
        shared[*type_index].1 += 1;
    }
    if let Some(group) = template.type_index(GROUP_TYPE) {
        shared[group] = (groups(&template, options.seed, options.patients), options.patients.div_ceil(GROUP_MEMBERS));
    }
    for (type_index, (data, lines)) in shared.iter().enumerate() {
        summary.bytes += data.len() as u64;
        summary.resources += lines;
        let data = if options.gzip && !data.is_empty() { writer::gzip(data) } else { data.clone() };
        writer.write(type_index, &data, *lines).context("writing the export")?;
    }

    let threads = crate::worker_threads(options.threads);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().context("starting the worker threads")?;
    let blocks = options.patients.div_ceil(BLOCK_PATIENTS);
    let batch = (2 * threads) as u64;
    let (send, receive) = mpsc::sync_channel::<Vec<Block>>(1);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let writing = scope.spawn(move || -> anyhow::Result<ExportWriter> {
            for batch in receive {
                for block in batch {
                    for (type_index, data) in block.data.iter().enumerate() {
                        writer.write(type_index, data, block.lines[type_index]).context("writing the export")?;
                    }
                }
            }
            Ok(writer)
        });
        let mut next = 0;
        while next < blocks {
            let end = (next + batch).min(blocks);
            let done: Vec<Block> = pool.install(|| {
                (next..end).into_par_iter().map(|b| generate_block(&template, options, b * BLOCK_PATIENTS)).collect()
            });
            for block in &done {
                summary.bytes += block.bytes;
                summary.resources += block.lines.iter().sum::<u64>();
                summary.defects.merge(&block.defects);
            }
            if send.send(done).is_err() {
                break; // The writer failed: its error is reported below.
            }
            next = end;
        }
        drop(send);
        let writer = writing.join().map_err(|_| anyhow::anyhow!("the writer thread panicked"))??;
        summary.file_bytes = writer.bytes();
        let report = (options.defects > 0.0).then(|| DefectsReport {
            rate: options.defects,
            seed: options.seed,
            counts: summary.defects.clone(),
        });
        writer.finish(report.as_ref())
    })?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

#[cfg(test)]
#[path = "gen_tests.rs"]
mod tests;
