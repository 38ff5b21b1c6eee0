//! Object stores: where exports and warehouses may live besides the local file system.
//!
//! Users name a place as an [`Address`]: a local path, or a URL (`s3://bucket/prefix`,
//! `gs://`, `az://`, `http(s)://`; `file://` URLs are local paths). [`resolve`] turns a URL
//! into an [`ObjectStore`] and the path inside it. Stores are built once per
//! `scheme://authority` and kept in a process-wide registry, so that one export's many files
//! share one client, and so that tests (or embedders) can put their own store in place with
//! [`register_store`]. The `memory://NAME/...` scheme maps to an in-memory store per `NAME`,
//! created on first use: for tests and experiments, never persistent.
//!
//! Credentials and endpoints come from the environment, the way each cloud's tools read them
//! (the builders' `from_env`): `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` (or
//! `AWS_ENDPOINT`, for S3-compatible servers) and `AWS_ALLOW_HTTP=true` for a plain-HTTP
//! endpoint; `GOOGLE_SERVICE_ACCOUNT` (or `GOOGLE_SERVICE_ACCOUNT_PATH`, `GOOGLE_APPLICATION_CREDENTIALS`);
//! `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY` (or `AZURE_STORAGE_SAS_KEY`, a
//! client secret, ...). `http(s)://` URLs are read with object_store's HTTP store, without
//! credentials: a server that wants a token is exported with `fhirhouse export`
//! ([`crate::bulk`]), which downloads with one, and the export folder is loaded.
//!
//! Object-store calls are async; the engine is not. [`run`] executes a future on one shared
//! runtime and waits for it from any thread (a rayon worker, the CLI, even a thread inside
//! another tokio runtime), and [`ObjectReader`] streams an object as a [`std::io::BufRead`].

mod reader;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::client::SpawnedReqwestConnector;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore};
use url::Url;

pub use reader::ObjectReader;

/// A place a user names: a local path or an object-store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A local file or folder (also what a `file://` URL names).
    Local(PathBuf),
    /// An object-store URL.
    Url(Url),
}

impl Address {
    /// Reads a command-line argument: a URL when it starts with `scheme://`, else a path.
    /// `file://` URLs become local paths. Never fails: something that is not a valid URL is
    /// taken as a path, and the error comes when it is opened.
    #[must_use]
    pub fn parse(text: &OsStr) -> Address {
        let Some(text_str) = text.to_str().filter(|t| looks_like_url(t)) else {
            return Address::Local(PathBuf::from(text));
        };
        match Url::parse(text_str) {
            Ok(url) if url.scheme() == "file" => url.to_file_path().map_or(Address::Url(url), Address::Local),
            Ok(url) => Address::Url(url),
            Err(_) => Address::Local(PathBuf::from(text)),
        }
    }

    /// The local path, when this is one.
    #[must_use]
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Address::Local(path) => Some(path),
            Address::Url(_) => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Local(path) => write!(f, "{}", path.display()),
            Address::Url(url) => f.write_str(url.as_str()),
        }
    }
}

impl From<&OsStr> for Address {
    fn from(text: &OsStr) -> Self {
        Address::parse(text)
    }
}

impl From<OsString> for Address {
    fn from(text: OsString) -> Self {
        Address::parse(&text)
    }
}

impl From<&str> for Address {
    fn from(text: &str) -> Self {
        Address::parse(OsStr::new(text))
    }
}

impl From<String> for Address {
    fn from(text: String) -> Self {
        Address::parse(OsStr::new(&text))
    }
}

impl From<&Path> for Address {
    fn from(path: &Path) -> Self {
        Address::parse(path.as_os_str())
    }
}

impl From<PathBuf> for Address {
    fn from(path: PathBuf) -> Self {
        Address::parse(path.as_os_str())
    }
}

impl From<&PathBuf> for Address {
    fn from(path: &PathBuf) -> Self {
        Address::parse(path.as_os_str())
    }
}

impl From<Url> for Address {
    fn from(url: Url) -> Self {
        Address::parse(OsStr::new(url.as_str()))
    }
}

impl From<&Address> for Address {
    fn from(address: &Address) -> Self {
        address.clone()
    }
}

/// `scheme://...` with a scheme of at least two characters (so `C:\` never qualifies).
fn looks_like_url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        scheme.len() >= 2
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// An object-store operation that failed, naming the URL it concerned.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct StoreError {
    /// The URL (or key) the operation was about.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

impl StoreError {
    /// An error about `url`.
    pub fn new(url: impl fmt::Display, reason: impl fmt::Display) -> StoreError {
        StoreError { url: url.to_string(), reason: reason.to_string() }
    }
}

/// Stores by `scheme://authority`.
static STORES: LazyLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = LazyLock::new(Mutex::default);

/// The registry key of a URL: its scheme and authority (`s3://bucket`, `https://host:8443`).
#[must_use]
pub fn store_key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.authority())
}

/// Makes every URL under `base` (its scheme and authority; the path is ignored) resolve to
/// `store`, replacing whatever was resolved there before. Tests use it to put an
/// [`InMemory`] or `LocalFileSystem` store behind an `s3://` URL; an embedder can pass a store
/// built with its own credentials.
pub fn register_store(base: &Url, store: Arc<dyn ObjectStore>) {
    STORES.lock().expect("no panic holds the registry").insert(store_key(base), store);
}

/// The store that holds `url` and the object path inside it, building (and registering) the
/// store on first use.
///
/// # Errors
///
/// A [`StoreError`] naming the URL: an unsupported scheme, a URL with a query string, or a
/// store that cannot be configured (missing credentials show up later, on first use).
pub fn resolve(url: &Url) -> Result<(Arc<dyn ObjectStore>, ObjectPath), StoreError> {
    if url.query().is_some() {
        // The HTTP store addresses objects by path only; a signed URL would lose its signature.
        return Err(StoreError::new(url, "URLs with a query string are not supported"));
    }
    let path = ObjectPath::from_url_path(url.path()).map_err(|e| StoreError::new(url, e))?;
    let key = store_key(url);
    let mut stores = STORES.lock().expect("no panic holds the registry");
    if let Some(store) = stores.get(&key) {
        return Ok((Arc::clone(store), path));
    }
    let store = build_store(url).map_err(|reason| StoreError::new(url, reason))?;
    stores.insert(key, Arc::clone(&store));
    Ok((store, path))
}

fn build_store(url: &Url) -> Result<Arc<dyn ObjectStore>, String> {
    let base = store_key(url);
    // The store's network I/O always runs on the shared runtime, so that a store can also be
    // used from a caller's own runtime (DataFusion queries) without tying connections to it.
    let connector = || SpawnedReqwestConnector::new(runtime().handle().clone());
    let built: object_store::Result<Arc<dyn ObjectStore>> = match url.scheme() {
        "memory" => Ok(Arc::new(InMemory::new())),
        "s3" | "s3a" => AmazonS3Builder::from_env()
            .with_url(base)
            .with_http_connector(connector())
            .build()
            .map(|s| Arc::new(s) as _),
        "gs" => GoogleCloudStorageBuilder::from_env()
            .with_url(base)
            .with_http_connector(connector())
            .build()
            .map(|s| Arc::new(s) as _),
        "az" | "adl" | "azure" | "abfs" | "abfss" => MicrosoftAzureBuilder::from_env()
            .with_url(base)
            .with_http_connector(connector())
            .build()
            .map(|s| Arc::new(s) as _),
        "http" | "https" => HttpBuilder::new()
            .with_url(base)
            .with_client_options(http_client_options(url))
            .with_http_connector(connector())
            .build()
            .map(|s| Arc::new(s) as _),
        other => {
            return Err(format!(
                "unsupported URL scheme {other}:// (use a path, file://, s3://, gs://, az://, http:// or https://)"
            ))
        }
    };
    built.map_err(|e| e.to_string())
}

/// Client options for `http(s)://` exports (a Bulk Data server's file URLs).
///
/// Unauthenticated: files that need a bearer token are downloaded by the Bulk Data client
/// ([`crate::bulk`]) instead; a default `Authorization` header here would be the seam for
/// reading them in place.
#[must_use]
pub fn http_client_options(url: &Url) -> ClientOptions {
    ClientOptions::new().with_allow_http(url.scheme() == "http")
}

/// The runtime that drives every object-store future of the engine.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fhirhouse-io")
            .enable_all()
            .build()
            .expect("the object-store runtime starts")
    })
}

/// Runs `future` on the shared object-store runtime and waits for its output.
///
/// Callable from any thread, including one inside another tokio runtime (it blocks that
/// thread, not the shared runtime).
///
/// # Panics
///
/// When the future itself panics.
pub fn run<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().expect("an object-store task panicked")
}

/// Runs `futures` as tasks of the current runtime, at most `limit` at once (requests to a
/// store: enough to hide latency, few enough not to be throttled); outputs in input order.
///
/// # Panics
///
/// When one of the futures panics.
pub async fn run_bounded<F>(futures: impl IntoIterator<Item = F>, limit: usize) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut outputs = Vec::new();
    let unwrap =
        |done: Result<_, tokio::task::JoinError>| done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    for (i, future) in futures.into_iter().enumerate() {
        while tasks.len() >= limit.max(1) {
            outputs.push(unwrap(tasks.join_next().await.expect("a task is running")));
        }
        tasks.spawn(async move { (i, future.await) });
    }
    while let Some(done) = tasks.join_next().await {
        outputs.push(unwrap(done));
    }
    outputs.sort_by_key(|(i, _)| *i);
    outputs.into_iter().map(|(_, output)| output).collect()
}

/// Checks that the store holding `url` answers a listing of the prefix the URL names (one
/// request, for the first page). A missing bucket or container reads like a missing object
/// (404) to a GET, so a warehouse yet to be created cannot tell it apart from one that cannot
/// be; a listing can, before a load spends its time on an export it could never publish.
///
/// # Errors
///
/// A [`StoreError`] naming `url`: the store cannot be resolved, or refused the listing (no
/// such bucket, refused credentials, an unreachable endpoint).
pub fn check_listable(url: &Url) -> Result<(), StoreError> {
    let (store, prefix) = resolve(url)?;
    // The first page only: a prefix with many objects costs no more than an empty one.
    run(async move { futures::StreamExt::next(&mut store.list(Some(&prefix))).await.transpose().map(drop) })
        .map_err(|e| StoreError::new(url, format!("cannot list it: {e}")))
}

/// The object's last path segment (its file name).
#[must_use]
pub fn file_name(path: &ObjectPath) -> String {
    path.filename().unwrap_or_default().to_owned()
}

/// `prefix/relative` as an object path (`relative` alone for an empty prefix).
#[must_use]
pub fn child(prefix: &ObjectPath, relative: &str) -> ObjectPath {
    relative.split('/').filter(|p| !p.is_empty()).fold(prefix.clone(), |path, part| path.join(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_urls_or_paths() {
        assert_eq!(Address::from("out/wh"), Address::Local("out/wh".into()));
        assert_eq!(Address::from("C:\\x"), Address::Local("C:\\x".into()));
        assert_eq!(Address::from("file:///tmp/wh"), Address::Local("/tmp/wh".into()));
        let s3 = Address::from("s3://bucket/export/");
        assert_eq!(s3.to_string(), "s3://bucket/export/");
        assert!(s3.as_local().is_none());
    }

    #[test]
    fn memory_urls_share_one_store_per_name_and_unknown_schemes_are_errors() {
        let a = Url::parse("memory://store-tests/a/b.ndjson").unwrap();
        let (store_a, path) = resolve(&a).unwrap();
        assert_eq!(path.as_ref(), "a/b.ndjson");
        let (store_b, _) = resolve(&Url::parse("memory://store-tests/other").unwrap()).unwrap();
        assert!(Arc::ptr_eq(&store_a, &store_b));
        let err = resolve(&Url::parse("ftp://host/x").unwrap()).err().unwrap().to_string();
        assert!(err.starts_with("ftp://host/x: unsupported URL scheme"), "{err}");
        let err = resolve(&Url::parse("https://host/x?sig=1").unwrap()).err().unwrap().to_string();
        assert!(err.contains("query string"), "{err}");
    }

    #[test]
    fn run_works_from_inside_another_runtime() {
        let outer = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let n = outer.block_on(async { run(async { 41 + 1 }) });
        assert_eq!(n, 42);
    }

    #[test]
    fn a_prefix_that_holds_nothing_yet_is_listable() {
        check_listable(&Url::parse("memory://store-tests-listable/no/such/prefix/").unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let missing = Url::from_directory_path(dir.path().join("missing")).unwrap();
        let local = Url::parse(&format!("memory://store-tests-local{}", missing.path())).unwrap();
        register_store(&local, Arc::new(object_store::local::LocalFileSystem::new()));
        check_listable(&local).unwrap();
    }

    #[test]
    fn child_paths_skip_empty_segments() {
        assert_eq!(child(&ObjectPath::from("wh"), "t/y=1/part.parquet").as_ref(), "wh/t/y=1/part.parquet");
        assert_eq!(child(&ObjectPath::default(), "t/x").as_ref(), "t/x");
    }
}
