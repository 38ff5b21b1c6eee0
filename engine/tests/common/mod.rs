//! Helpers shared by the load tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use fhirhouse::load::{load, LoadOptions, LoadOutcome};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bundled sample export.
pub fn sample() -> PathBuf {
    root().join("tests/data/sample")
}

/// Loads `inputs` into `out` with the shipped views and small chunks (so that even the
/// sample's files are split), after letting `tweak` adjust the options.
pub fn load_with(inputs: &[PathBuf], out: &Path, tweak: impl FnOnce(&mut LoadOptions)) -> LoadOutcome {
    let mut options = LoadOptions::new(inputs.to_vec(), out.to_path_buf());
    options.threads = 2;
    options.chunk_bytes = 256 * 1024;
    tweak(&mut options);
    load(&options).expect("the load runs to the end")
}

/// The dead-letter records of a load, all files together, sorted by (file, line).
pub fn dead_letters(out: &Path, load_id: &str) -> Vec<serde_json::Value> {
    let dir = out.join("_dead_letter").join(load_id);
    let mut records = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else { return records };
    for entry in entries {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        records.extend(text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()));
    }
    records.sort_by_key(|r| (r["file"].as_str().unwrap().to_owned(), r["line"].as_u64().unwrap()));
    records
}

/// Row count of every registered table, via DataFusion; `out` is a folder or a URL.
pub fn table_counts(out: impl Into<fhirhouse::store::Address>) -> Vec<(String, i64)> {
    let ctx = datafusion::prelude::SessionContext::new();
    let names = fhirhouse::sql::register_warehouse(&ctx, out).unwrap();
    names
        .into_iter()
        .map(|name| {
            let batches = fhirhouse::sql::query_blocking(&ctx, &format!("SELECT count(*) FROM {name}")).unwrap();
            let count = batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0);
            (name, count)
        })
        .collect()
}

/// The rows of a query over the warehouse at `out`, each as `a|b|c`.
pub fn query_rows(out: impl Into<fhirhouse::store::Address>, sql: &str) -> Vec<String> {
    let ctx = datafusion::prelude::SessionContext::new();
    fhirhouse::sql::register_warehouse(&ctx, out).unwrap();
    let mut rows = Vec::new();
    for batch in fhirhouse::sql::query_blocking(&ctx, sql).unwrap() {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = (0..batch.num_columns())
                .map(|c| arrow::util::display::array_value_to_string(batch.column(c), row).unwrap())
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows
}

/// Row count of one table, as [`table_counts`] gives it; panics when there is no such table.
pub fn table_rows(out: impl Into<fhirhouse::store::Address>, table: &str) -> i64 {
    table_counts(out).into_iter().find(|(t, _)| t == table).unwrap_or_else(|| panic!("no table {table}")).1
}

/// Copies every file of the bundled sample (manifest included) into `store` under `prefix`.
pub fn upload_sample(store: &std::sync::Arc<dyn object_store::ObjectStore>, prefix: &str) {
    for entry in std::fs::read_dir(sample()).unwrap() {
        let path = entry.unwrap().path();
        let key = object_store::path::Path::from(format!("{prefix}/{}", path.file_name().unwrap().to_string_lossy()));
        put(store, key.as_ref(), std::fs::read(&path).unwrap());
    }
}

/// Writes one object.
pub fn put(store: &std::sync::Arc<dyn object_store::ObjectStore>, key: &str, data: Vec<u8>) {
    use object_store::ObjectStoreExt;
    let (store, key) = (std::sync::Arc::clone(store), object_store::path::Path::from(key));
    fhirhouse::store::run(async move { store.put(&key, data.into()).await.unwrap() });
}

/// Every key under `prefix`, sorted.
pub fn keys(store: &std::sync::Arc<dyn object_store::ObjectStore>, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let (store, prefix) = (std::sync::Arc::clone(store), object_store::path::Path::from(prefix));
    let mut keys: Vec<String> = fhirhouse::store::run(async move {
        store.list(Some(&prefix)).map_ok(|m| m.location.to_string()).try_collect::<Vec<_>>().await.unwrap()
    });
    keys.sort();
    keys
}

/// One object's content.
pub fn get(store: &std::sync::Arc<dyn object_store::ObjectStore>, key: &str) -> Vec<u8> {
    use object_store::ObjectStoreExt;
    let (store, key) = (std::sync::Arc::clone(store), object_store::path::Path::from(key));
    fhirhouse::store::run(async move { store.get(&key).await.unwrap().bytes().await.unwrap().to_vec() })
}

/// Points the AWS variables at the test server (same values for every test: set once).
pub fn s3_environment() -> Option<String> {
    let Ok(endpoint) = std::env::var("FHIRHOUSE_S3_ENDPOINT") else {
        println!("skipped: FHIRHOUSE_S3_ENDPOINT not set (tests/s3/start-moto.sh starts a server)");
        return None;
    };
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (key, value) in [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "fhirhouse-test"),
            ("AWS_SECRET_ACCESS_KEY", "fhirhouse-test"),
            ("AWS_REGION", "us-east-1"),
        ] {
            std::env::set_var(key, value);
        }
        std::env::remove_var("AWS_SESSION_TOKEN");
    });
    Some(endpoint)
}

/// Creates a bucket of a fresh name with a bare HTTP request (moto does not check signatures
/// on bucket creation; object_store has no bucket API).
pub fn new_bucket(endpoint: &str, purpose: &str) -> String {
    use std::io::{Read, Write};
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let bucket = format!("fhirhouse-{purpose}-{}-{nanos}", std::process::id());
    let url = url::Url::parse(endpoint).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port_or_known_default().unwrap());
    let mut conn = std::net::TcpStream::connect(&host).unwrap();
    write!(conn, "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "creating bucket {bucket}: {response}");
    bucket
}

/// Gzip-compresses `data` (fast: tests are debug builds).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Runs the `fhirhouse` binary with `args` (RUST_LOG unset), writing `stdin` to it from a
/// thread of its own, so that a child that writes much before it reads cannot block.
pub fn run_fhirhouse<S: AsRef<std::ffi::OsStr>>(args: &[S], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the fhirhouse binary runs");
    let mut pipe = child.stdin.take().expect("piped");
    let input = stdin.to_vec();
    // A child that exits without reading all of it closes the pipe: not an error here.
    std::thread::spawn(move || pipe.write_all(&input));
    child.wait_with_output().expect("the fhirhouse binary runs")
}
