//! `fhirhouse load` end to end on the bundled sample: counts reconcile, the tables read back
//! (through DataFusion) hold exactly the rows `fhirhouse view` gives, inputs may be gzip or
//! a manifest, re-running replaces rather than duplicates, and partition filters prune.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use common::*;
use fhirhouse::load::Catalog;
use fhirhouse::view::ViewBatchBuilder;

/// Every row of `batches` (first `columns` columns) rendered as text, sorted.
fn rendered_rows(batches: &[RecordBatch], columns: usize) -> Vec<String> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> =
                (0..columns).map(|c| array_value_to_string(batch.column(c), row).unwrap()).collect();
            rows.push(cells.join("|"));
        }
    }
    rows.sort();
    rows
}

/// What each shipped view gives over the sample, evaluated directly (as `fhirhouse view`).
fn view_rows_of_sample() -> BTreeMap<String, (usize, Vec<String>)> {
    let catalog = Catalog::shipped().unwrap();
    let mut out = BTreeMap::new();
    for view in &catalog.views {
        let mut builder = ViewBatchBuilder::new(Arc::clone(view));
        for entry in std::fs::read_dir(sample()).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with(".ndjson") {
                continue;
            }
            for line in std::fs::read(&path).unwrap().split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let mut line = line.to_vec();
                let tape = simd_json::to_tape(&mut line).unwrap();
                let resource = fhirhouse::view::Json::root(&tape);
                if resource.get_str("resourceType") == Some(view.resource_type()) {
                    builder.append(resource).unwrap();
                }
            }
        }
        let batch = builder.finish();
        let columns = batch.num_columns();
        out.insert(view.name().to_owned(), (columns, rendered_rows(&[batch], columns)));
    }
    out
}

#[test]
fn sample_loads_reconciles_and_reads_back_as_the_views_give() {
    loads_reconciles_and_reads_back_as_the_views_give(|_| {});
}

/// With a memory budget of a few kilobytes, nearly every batch a worker hands over makes a
/// row group due, and with small chunks four workers encode row groups at the same time
/// while the others go on buffering: the tables still hold exactly the views' rows.
#[test]
fn workers_encoding_row_groups_side_by_side_lose_and_repeat_no_row() {
    loads_reconciles_and_reads_back_as_the_views_give(|o| {
        o.threads = 4;
        o.memory_limit = 64 << 10;
        o.chunk_bytes = 64 << 10;
    });
}

fn loads_reconciles_and_reads_back_as_the_views_give(configure: impl FnOnce(&mut fhirhouse::load::LoadOptions)) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    let outcome = load_with(&[sample().join("manifest.json")], &out, configure);
    let report = &outcome.report;
    assert!(outcome.committed(), "{:?}", report.failure);
    report.check().unwrap();
    assert_eq!(report.totals.dead_letters, 0);
    assert_eq!(report.totals.lines, 4142, "every line of the sample is accounted for");
    assert!(report.files.iter().all(|f| f.type_mismatches == 0));
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&outcome.report_path).unwrap()).unwrap();
    assert_eq!(saved["totals"]["lines"], 4142);

    let expected = view_rows_of_sample();
    let ctx = datafusion::prelude::SessionContext::new();
    let mut tables = fhirhouse::sql::register_warehouse(&ctx, &out).unwrap();
    // Besides the views' tables, the crosswalks' data-quality table.
    assert_eq!(tables.remove(0), "_dq_unmapped_codes");
    assert_eq!(tables, expected.keys().cloned().collect::<Vec<_>>());
    for (table, (columns, want)) in &expected {
        let batches = fhirhouse::sql::query_blocking(&ctx, &format!("SELECT * FROM {table}")).unwrap();
        let got = rendered_rows(&batches, *columns);
        assert_eq!(got.len(), want.len(), "{table}: row count");
        assert!(got == *want, "{table}: rows read back differ from the view's rows");
        let reported = report.tables.iter().find(|t| &t.table == table).unwrap();
        assert_eq!(reported.rows as usize, want.len(), "{table}: reported rows");
    }
}

#[test]
fn gzip_files_and_folders_load_like_the_plain_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    for name in ["Patient.000.ndjson", "Observation.000.ndjson"] {
        let data = std::fs::read(sample().join(name)).unwrap();
        std::fs::write(export.join(format!("{name}.gz")), common::gzip(&data)).unwrap();
    }
    let out = dir.path().join("wh");
    let outcome = load_with(&[export], &out, |_| {});
    outcome.report.check().unwrap();
    let counts: BTreeMap<String, i64> = table_counts(&out).into_iter().collect();
    assert_eq!(counts["patient"], 10);
    assert_eq!(counts["observation"], 1369);
}

#[test]
fn rerunning_a_load_replaces_the_tables_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    let first = load_with(&[sample()], &out, |_| {});
    let counts = table_counts(&out);
    let second = load_with(&[sample()], &out, |o| o.threads = 1);
    assert_ne!(first.report.load_id, second.report.load_id);
    assert_eq!(table_counts(&out), counts);
    let current = std::fs::read_link(out.join("_fhirhouse/current")).unwrap();
    assert!(current.ends_with(&second.report.load_id));
}

#[test]
fn filters_on_the_partition_key_skip_other_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    load_with(&[sample()], &out, |_| {});
    let years: Vec<String> = std::fs::read_dir(out.join("observation"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(years.len() > 2, "observations span several years: {years:?}");

    let ctx = datafusion::prelude::SessionContext::new();
    fhirhouse::sql::register_warehouse(&ctx, &out).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let plan_text = runtime.block_on(async {
        // Grouped so the plan must read the data (a bare count(*) is answered from statistics).
        let sql = "SELECT code, count(*) FROM observation WHERE effective_datetime_year = 2019 GROUP BY code";
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
        text
    });
    assert!(plan_text.contains("effective_datetime_year=2019"), "{plan_text}");
    let other_years = years.iter().filter(|y| !y.ends_with("=2019")).filter(|y| plan_text.contains(y.as_str()));
    assert_eq!(other_years.count(), 0, "only the 2019 partition is scanned:\n{plan_text}");

    let batches =
        fhirhouse::sql::query_blocking(&ctx, "SELECT count(*) FROM observation WHERE effective_datetime_year = 2019")
            .unwrap();
    let filtered = fhirhouse::sql::query_blocking(
        &ctx,
        "SELECT count(*) FROM observation WHERE date_part('year', effective_datetime) = 2019",
    )
    .unwrap();
    assert_eq!(
        array_value_to_string(batches[0].column(0), 0).unwrap(),
        array_value_to_string(filtered[0].column(0), 0).unwrap(),
        "the partition key is the year of the column"
    );
}

#[test]
fn keep_raw_keeps_every_resource_and_re_derives_the_same_tables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    let outcome = load_with(&[sample()], &out, |o| o.keep_raw = true);
    assert!(outcome.committed());
    let raw = out.join("_fhirhouse/current/_raw");
    let type_dirs: Vec<std::path::PathBuf> = std::fs::read_dir(&raw).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(type_dirs.len(), 18, "one folder per resource type of the sample");

    let again = dir.path().join("wh2");
    let rederived = load_with(&type_dirs, &again, |_| {});
    assert_eq!(rederived.report.totals.loaded, outcome.report.totals.loaded);
    assert_eq!(table_counts(&again), table_counts(&out));
}
