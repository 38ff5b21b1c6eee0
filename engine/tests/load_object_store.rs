//! Loads from and into object stores, on object_store's in-memory and local-file-system
//! backends (put behind URLs through the store registry): manifests and prefixes as inputs,
//! the publish protocol of an object-store warehouse, reads through its commit record, and
//! read errors in the middle of an object ending as dead letters.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use fhirhouse::store::{self, Address};
use object_store::ObjectStore;
use url::Url;

/// The store behind a `memory://` URL (one per name, shared by the whole test process).
fn memory(name: &str) -> Arc<dyn ObjectStore> {
    store::resolve(&Url::parse(&format!("memory://{name}/")).unwrap()).unwrap().0
}

/// What the sample gives in a local warehouse, the reference for every other load.
fn local_counts() -> Vec<(String, i64)> {
    let dir = tempfile::tempdir().unwrap();
    load_with(&[sample()], &dir.path().join("wh"), |_| {});
    table_counts(dir.path().join("wh"))
}

fn load_urls(input: &str, out: &str) -> fhirhouse::load::LoadOutcome {
    let mut options = fhirhouse::load::LoadOptions::new([input], out);
    options.threads = 2;
    options.chunk_bytes = 256 * 1024;
    fhirhouse::load::load(&options).expect("the load runs to the end")
}

#[test]
fn manifest_in_memory_loads_into_a_memory_warehouse_and_reads_back() {
    let store = memory("e2e");
    upload_sample(&store, "export");
    let first = load_urls("memory://e2e/export/manifest.json", "memory://e2e/wh");
    assert!(first.committed(), "{:?}", first.report.failure);
    first.report.check().unwrap();
    assert_eq!(first.report.totals.lines, 4142);
    assert_eq!(first.report_path, format!("memory://e2e/wh/_fhirhouse/loads/{}.json", first.report.load_id));
    assert!(first.report.files[0].path.starts_with("memory://e2e/export/"), "{}", first.report.files[0].path);
    let expected = local_counts();
    assert_eq!(table_counts("memory://e2e/wh"), expected);

    let current: serde_json::Value = serde_json::from_slice(&get(&store, "wh/_fhirhouse/current.json")).unwrap();
    assert_eq!(current["load_id"], first.report.load_id.as_str());
    let parts: Vec<String> = keys(&store, "wh").into_iter().filter(|k| k.ends_with(".parquet")).collect();
    assert!(parts.iter().all(|k| k.contains(&format!("/part-{}-", first.report.load_id))), "{parts:?}");
    let listed: usize = current["tables"].as_object().unwrap().values().map(|v| v.as_array().unwrap().len()).sum();
    assert_eq!(listed, parts.len(), "current.json lists every data file");
    assert!(!get(&store, &format!("wh/_fhirhouse/loads/{}.json", first.report.load_id)).is_empty());

    // An orphan of a crashed load: removed by the next load. A foreign file: left alone.
    put(&store, "wh/patient/part-20000101T000000Z-dead-0-00001.parquet", b"not parquet".to_vec());
    put(&store, "wh/patient/README", b"ours to keep".to_vec());
    let second = load_urls("memory://e2e/export/", "memory://e2e/wh");
    assert!(second.committed());
    let after = keys(&store, "wh");
    // The first load is kept for the sessions still reading it (replaced just now).
    assert!(after.iter().any(|k| k.contains(&format!("/part-{}-", first.report.load_id))), "{after:?}");
    let current: serde_json::Value = serde_json::from_slice(&get(&store, "wh/_fhirhouse/current.json")).unwrap();
    assert_eq!(current["replaced"][0]["load_id"], first.report.load_id.as_str());
    assert!(!after.iter().any(|k| k.contains("part-20000101T000000Z-dead")), "orphan removed: {after:?}");
    assert!(after.contains(&"wh/patient/README".to_owned()));
    assert_eq!(table_counts("memory://e2e/wh"), expected);

    // Files under a table prefix that the commit record does not list are never read.
    put(&store, "wh/patient/part-20990101T000000Z-late-0-00001.parquet", b"not parquet".to_vec());
    assert_eq!(table_counts("memory://e2e/wh"), expected);
}

#[test]
fn partition_filters_work_through_the_commit_record() {
    let store = memory("pruning");
    upload_sample(&store, "export");
    assert!(load_urls("memory://pruning/export/manifest.json", "memory://pruning/wh").committed());
    let ctx = datafusion::prelude::SessionContext::new();
    fhirhouse::sql::register_warehouse(&ctx, "memory://pruning/wh").unwrap();
    let count = |sql: &str| {
        let batches = fhirhouse::sql::query_blocking(&ctx, sql).unwrap();
        arrow::util::display::array_value_to_string(batches[0].column(0), 0).unwrap()
    };
    let by_key = count("SELECT count(*) FROM observation WHERE effective_datetime_year = 2019");
    let by_value = count("SELECT count(*) FROM observation WHERE date_part('year', effective_datetime) = 2019");
    assert_eq!(by_key, by_value);
    assert_ne!(by_key, "0");
}

#[test]
fn local_file_system_store_behind_an_s3_url_as_input_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    store::register_store(&Url::parse("s3://fhirhouse-localfs-test").unwrap(), backend);
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    for name in ["Patient.000.ndjson", "Observation.000.ndjson"] {
        let data = std::fs::read(sample().join(name)).unwrap();
        std::fs::write(export.join(format!("{name}.gz")), common::gzip(&data)).unwrap();
    }
    std::fs::write(export.join("Encounter.000.ndjson"), std::fs::read(sample().join("Encounter.000.ndjson")).unwrap())
        .unwrap();

    // Remote input, local warehouse.
    let out = dir.path().join("local-wh");
    let outcome = load_with(&[], &out, |o| o.inputs = vec![Address::from("s3://fhirhouse-localfs-test/export/")]);
    assert!(outcome.committed(), "{:?}", outcome.report.failure);
    assert_eq!(outcome.report.files.len(), 3);
    let counts: BTreeMap<String, i64> = table_counts(&out).into_iter().collect();
    assert_eq!((counts["patient"], counts["observation"]), (10, 1369));
    assert!(counts["encounter"] > 0);

    // Remote input, remote warehouse: the files land on disk under the store's root.
    let outcome = load_urls("s3://fhirhouse-localfs-test/export/", "s3://fhirhouse-localfs-test/wh");
    assert!(outcome.committed());
    assert!(dir.path().join("wh/_fhirhouse/current.json").is_file());
    let remote: BTreeMap<String, i64> = table_counts("s3://fhirhouse-localfs-test/wh").into_iter().collect();
    assert_eq!(remote, counts);
}

#[test]
fn a_read_error_in_the_middle_of_an_object_is_a_dead_letter() {
    let inner = Arc::new(object_store::memory::InMemory::new());
    let flaky: Arc<dyn ObjectStore> = Arc::new(flaky::FailAfter { inner: inner.clone(), bytes: 3000 });
    store::register_store(&Url::parse("memory://flaky").unwrap(), Arc::clone(&flaky));
    let inner: Arc<dyn ObjectStore> = inner;
    put(&inner, "export/Patient.000.ndjson", std::fs::read(sample().join("Patient.000.ndjson")).unwrap());
    let outcome = load_urls("memory://flaky/export/", "memory://flaky-out/wh");
    assert!(outcome.committed(), "read errors are dead letters, not failures");
    outcome.report.check().unwrap();
    assert_eq!(outcome.report.totals.dead_by_reason.get("read_error"), Some(&1), "{:?}", outcome.report.totals);
    let dead_keys = keys(&memory("flaky-out"), &format!("wh/_dead_letter/{}", outcome.report.load_id));
    assert_eq!(dead_keys.len(), 1, "dead letters are uploaded");
    let record = String::from_utf8(get(&memory("flaky-out"), &dead_keys[0])).unwrap();
    assert!(record.contains("read_error") && record.contains("connection reset"), "{record}");
}

mod flaky {
    //! A store whose object bodies break off after a number of bytes, as a dropped
    //! connection would.

    use std::sync::Arc;

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use futures::StreamExt;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::*;

    #[derive(Debug)]
    pub struct FailAfter {
        pub inner: Arc<InMemory>,
        pub bytes: usize,
    }

    impl std::fmt::Display for FailAfter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "FailAfter({})", self.bytes)
        }
    }

    #[async_trait]
    impl ObjectStore for FailAfter {
        async fn put_opts(&self, p: &Path, payload: PutPayload, o: PutOptions) -> Result<PutResult> {
            self.inner.put_opts(p, payload, o).await
        }
        async fn put_multipart_opts(&self, p: &Path, o: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(p, o).await
        }
        async fn get_opts(&self, p: &Path, o: GetOptions) -> Result<GetResult> {
            let whole = o.range.is_none();
            let mut result = self.inner.get_opts(p, o).await?;
            if whole {
                let data = result.bytes().await?;
                let cut = data.slice(..self.bytes.min(data.len()));
                let broken = futures::stream::iter([
                    Ok(cut),
                    Err(Error::Generic { store: "flaky", source: "connection reset".into() }),
                ]);
                let meta = self.inner.head(p).await?;
                result = GetResult {
                    payload: GetResultPayload::Stream(broken.boxed()),
                    range: 0..meta.size,
                    meta,
                    attributes: Default::default(),
                };
            }
            Ok(result)
        }
        fn delete_stream(&self, l: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
            self.inner.delete_stream(l)
        }
        fn list(&self, p: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.inner.list(p)
        }
        async fn list_with_delimiter(&self, p: Option<&Path>) -> Result<ListResult> {
            self.inner.list_with_delimiter(p).await
        }
        async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
            self.inner.copy_opts(from, to, o).await
        }
    }
}

/// Serves the sample folder over plain HTTP (HEAD and GET, one request per connection) and
/// returns its base URL: what a Bulk Data server's file URLs look like to the loader.
fn serve_sample_over_http() -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            let mut head = String::new();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            while reader.read_line(&mut head).unwrap() > 2 && !head.ends_with("\r\n\r\n") {}
            let mut words = head.split_whitespace();
            let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
            let reply = match std::fs::read(sample().join(path.trim_start_matches('/'))) {
                Ok(body) => {
                    let mut reply =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                            .into_bytes();
                    if method == "GET" {
                        reply.extend(body);
                    }
                    reply
                }
                Err(_) => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = conn.write_all(&reply);
        }
    });
    base
}

#[test]
fn manifest_entries_may_be_absolute_http_urls() {
    let base = serve_sample_over_http();
    let dir = tempfile::tempdir().unwrap();
    let output: Vec<serde_json::Value> = ["Patient", "Observation"]
        .iter()
        .map(|t| serde_json::json!({"type": t, "url": format!("{base}/{t}.000.ndjson")}))
        .collect();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, serde_json::json!({"output": output}).to_string()).unwrap();
    let outcome = load_with(&[manifest], &dir.path().join("wh"), |_| {});
    assert!(outcome.committed(), "{:?}", outcome.report.failure);
    assert!(outcome.report.files[0].path.starts_with("http://127.0.0.1:"), "{}", outcome.report.files[0].path);
    let counts: BTreeMap<String, i64> = table_counts(dir.path().join("wh")).into_iter().collect();
    assert_eq!((counts["patient"], counts["observation"]), (10, 1369));
}
