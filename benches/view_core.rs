//! View-core throughput: the default Patient and Observation views over a Synthea export,
//! next to parse-only throughput of the same lines, measured in the same run.
//!
//! ```text
//! cargo bench -p fhirhouse --bench view_core
//! ```
//!
//! Reads `../shared/data/synthea-100p` when present (the 100-patient reference export),
//! otherwise the bundled 10-patient sample in `tests/data/sample`. Three measurements per
//! resource type, all in resources per second:
//! - `parse`: simd-json parse of every line into a borrowed DOM, nothing else (the ceiling);
//! - `parse+view`: the same parse followed by the view, appending into Arrow builders and
//!   cutting a record batch every 8,192 rows — what a load does per line;
//! - `view`: the view alone over documents parsed beforehand.
//!
//! The target is `parse+view` ≥ 50% of `parse`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fhirhouse::view::{CompiledView, Json, ViewBatchBuilder};

#[path = "common.rs"]
mod common;
use common::{export_dir, lines, parse, repo_root};

const BATCH_ROWS: usize = 8192;

fn bench_type(c: &mut Criterion, resource_type: &str, view_file: &str) {
    let lines = lines(&export_dir("view_core").join(format!("{resource_type}.000.ndjson")));
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let view = Arc::new(
        CompiledView::from_json_str(&std::fs::read_to_string(repo_root().join("schemas").join(view_file)).unwrap())
            .unwrap(),
    );
    eprintln!(
        "view_core: {resource_type}: {} resources, {:.1} MB, view '{}' with {} columns",
        lines.len(),
        bytes as f64 / 1e6,
        view.name(),
        view.columns().len()
    );

    let mut group = c.benchmark_group(resource_type);
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.sample_size(20);

    let mut scratch = Vec::new();
    let mut parser = fhirhouse::view::ResourceParser::default();
    group.bench_function("parse", |b| {
        b.iter(|| {
            let mut parsed = 0usize;
            for line in &lines {
                let doc = parse(&mut scratch, &mut parser, line);
                parsed += std::hint::black_box(doc.doc()).as_object().is_some() as usize;
            }
            parsed
        })
    });

    let mut builder = ViewBatchBuilder::new(view.clone());
    group.bench_function("parse+view", |b| {
        b.iter(|| {
            let mut rows = 0usize;
            for line in &lines {
                let parsed = parse(&mut scratch, &mut parser, line);
                rows += builder.append(parsed.doc()).expect("view evaluates");
                if builder.len() >= BATCH_ROWS {
                    std::hint::black_box(builder.finish());
                }
            }
            std::hint::black_box(builder.finish());
            rows
        })
    });

    let mut owned: Vec<Vec<u8>> = lines.clone();
    let tapes: Vec<simd_json::Tape<'_>> =
        owned.iter_mut().map(|l| simd_json::to_tape(l).expect("valid JSON")).collect();
    group.bench_function("view", |b| {
        b.iter(|| {
            let mut rows = 0usize;
            for tape in &tapes {
                rows += builder.append(Json::root(tape)).expect("view evaluates");
                if builder.len() >= BATCH_ROWS {
                    std::hint::black_box(builder.finish());
                }
            }
            std::hint::black_box(builder.finish());
            rows
        })
    });
    group.finish();
}

fn view_core(c: &mut Criterion) {
    bench_type(c, "Patient", "patient.json");
    bench_type(c, "Observation", "observation.json");
}

criterion_group!(benches, view_core);
criterion_main!(benches);
