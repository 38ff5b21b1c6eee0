//! An in-process FHIR Bulk Data server for the client tests, serving the bundled sample.
//!
//! It implements what the client uses of the IG: system, patient and group kick-off with
//! `_type`, `_since`, `_typeFilter` (only `?id=` and `?gender=`, enough to see it applied)
//! and `_elements` recorded; 202 polling with `X-Progress`; the manifest with `output`,
//! `error` and `deleted`; file downloads (gzip when asked); DELETE of jobs; SMART Backend
//! Services (discovery, a token endpoint verifying RS384/ES384 client assertions against
//! the test keys' public JWKs, bearer checks). Resources get `meta.versionId` and
//! `meta.lastUpdated`; tests update and delete them to make increments.
//!
//! [`Faults`] injects what real servers do: 429 with `Retry-After`, 500s, connections
//! dropped mid-file, truncated bodies, slow progress, tokens that expire early, a missing
//! file, expired jobs, a refused kick-off, unusable URLs and redirect loops. Every request is logged for the tests to inspect.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};

mod auth;

// Each test file includes this module and uses only part of it.
#[allow(unused_imports)]
pub use auth::{keys_dir, test_client, AuthConfig};
use auth::{smart_configuration, token};

/// The time of the sample's resources, before any change.
pub const INITIAL_UPDATE: &str = "2024-01-01T00:00:00Z";

/// Faults to inject; counters are "the next N requests of that kind".
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Kick-offs answered 429 with `Retry-After: <retry_after_secs>`.
    pub kickoff_429: u32,
    /// The `Retry-After` of injected 429s, in seconds (`None`: no header).
    pub retry_after_secs: Option<u64>,
    /// Status polls answered 500 (a plain-text body, as a proxy would send).
    pub status_500: u32,
    /// Polls answered 202 before the manifest (slow progress).
    pub polls_before_done: u32,
    /// `Retry-After` on 202 polls, in seconds.
    pub poll_retry_after_secs: Option<u64>,
    /// File requests answered 500.
    pub file_500: u32,
    /// File requests answered 429 with `Retry-After`.
    pub file_429: u32,
    /// File responses whose connection drops after half the body.
    pub drop_mid_file: u32,
    /// File responses that end cleanly after half the body (a truncated file).
    pub truncate_file: u32,
    /// A file name (e.g. `Condition.ndjson`) that answers 404, in every job.
    pub missing_file: Option<String>,
    /// Jobs (e.g. `job1`) whose files all answer 410 Gone: the server expired them.
    pub gone_jobs: Vec<String>,
    /// A Content-Location for kick-offs to answer with instead of the job's status URL.
    pub status_location: Option<String>,
    /// Kick-offs redirect to themselves, for ever.
    pub kickoff_redirect_loop: bool,
    /// Serve gzip when the client accepts it.
    pub gzip: bool,
    /// Access tokens' `expires_in`.
    pub token_lifetime_secs: u64,
    /// The next N authorised requests answer 401 (the server expired the token early).
    pub expire_tokens: u32,
    /// Kick-offs answered 403 with an OperationOutcome (a scope rejection).
    pub kickoff_forbidden: bool,
    /// Add an `error[]` file with two OperationOutcomes.
    pub error_file: bool,
    /// Leave `count` out of the manifest.
    pub omit_counts: bool,
    /// Resources per output file (several files per type); 0: one file per type.
    pub resources_per_file: usize,
    /// Delay per streamed piece of a file (makes downloads overlap).
    pub piece_delay: Option<Duration>,
}

/// One logged request.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub accept: Option<String>,
    pub prefer: Option<String>,
    pub accept_encoding: Option<String>,
    pub at: Instant,
    pub status: u16,
}

struct Job {
    request: String,
    transaction_time: String,
    polls: u32,
    files: BTreeMap<String, Vec<u8>>,
    manifest: Value,
}

/// What the server holds and has seen.
pub struct ServerState {
    base: String,
    pub resources: BTreeMap<(String, String), Value>,
    /// Deleted resources and when.
    pub deletions: Vec<(String, String, String)>,
    /// The server clock: the next change's `lastUpdated`.
    clock: chrono::DateTime<chrono::Utc>,
    pub faults: Faults,
    pub log: Vec<Logged>,
    jobs: HashMap<String, Job>,
    next_job: u32,
    pub deleted_jobs: Vec<String>,
    pub auth: Option<AuthConfig>,
    tokens: HashMap<String, Instant>,
    pub tokens_issued: u32,
    /// Verified client assertions: (kid, algorithm, scope asked).
    pub assertions: Vec<(String, String, String)>,
    seen_jti: HashSet<String>,
    active_downloads: u32,
    pub max_active_downloads: u32,
}

/// The running server; stopped when dropped.
pub struct BulkServer {
    /// The FHIR base URL, `http://127.0.0.1:<port>/fhir`.
    pub base: String,
    pub state: Arc<Mutex<ServerState>>,
    _runtime: tokio::runtime::Runtime,
}

impl BulkServer {
    /// Starts a server over the bundled sample.
    pub fn start() -> BulkServer {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let address = listener.local_addr().unwrap();
        let base = format!("http://{address}/fhir");
        let state = Arc::new(Mutex::new(ServerState {
            base: base.clone(),
            resources: sample_resources(),
            deletions: Vec::new(),
            clock: chrono::DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc),
            faults: Faults { token_lifetime_secs: 300, ..Faults::default() },
            log: Vec::new(),
            jobs: HashMap::new(),
            next_job: 0,
            deleted_jobs: Vec::new(),
            auth: None,
            tokens: HashMap::new(),
            tokens_issued: 0,
            assertions: Vec::new(),
            seen_jti: HashSet::new(),
            active_downloads: 0,
            max_active_downloads: 0,
        }));
        let router = Router::new()
            .route("/fhir/.well-known/smart-configuration", get(smart_configuration))
            .route("/auth/token", post(token))
            .route("/fhir/$export", get(kick_off))
            .route("/fhir/Patient/$export", get(kick_off))
            .route("/fhir/Group/{id}/$export", get(kick_off))
            .route("/fhir/status/{job}", get(status).delete(status))
            .route("/files/{job}/{*name}", get(file))
            .with_state(Arc::clone(&state));
        runtime.spawn(async move { axum::serve(listener, router).await.unwrap() });
        BulkServer { base, state, _runtime: runtime }
    }

    /// Changes the faults.
    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.state.lock().unwrap().faults);
    }

    /// Requires SMART Backend Services for everything.
    pub fn require_auth(&self, config: AuthConfig) {
        self.state.lock().unwrap().auth = Some(config);
    }

    /// Replaces a resource by a new version (`change` edits it); returns its `lastUpdated`.
    pub fn update(&self, resource_type: &str, id: &str, change: impl FnOnce(&mut Value)) -> String {
        let mut state = self.state.lock().unwrap();
        let now = state.tick();
        let resource = state.resources.get_mut(&(resource_type.to_owned(), id.to_owned())).expect("a known resource");
        change(resource);
        let version: u64 = resource["meta"]["versionId"].as_str().unwrap().parse().unwrap();
        resource["meta"] = json!({"versionId": (version + 1).to_string(), "lastUpdated": now});
        now
    }

    /// Adds a new resource (version 1).
    pub fn create(&self, mut resource: Value) {
        let mut state = self.state.lock().unwrap();
        let now = state.tick();
        resource["meta"] = json!({"versionId": "1", "lastUpdated": now});
        let key = (resource["resourceType"].as_str().unwrap().to_owned(), resource["id"].as_str().unwrap().to_owned());
        state.resources.insert(key, resource);
    }

    /// Deletes a resource.
    pub fn delete(&self, resource_type: &str, id: &str) {
        let mut state = self.state.lock().unwrap();
        let now = state.tick();
        state.resources.remove(&(resource_type.to_owned(), id.to_owned())).expect("a known resource");
        state.deletions.push((resource_type.to_owned(), id.to_owned(), now));
    }

    /// The requests logged so far whose path ends with `suffix`.
    pub fn requests(&self, suffix: &str) -> Vec<Logged> {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|l| l.path.ends_with(suffix) || suffix.is_empty())
            .cloned()
            .collect()
    }

    /// The id of the first resource of a type for which `test` holds.
    pub fn find(&self, resource_type: &str, test: impl Fn(&Value) -> bool) -> String {
        let state = self.state.lock().unwrap();
        let found = state.resources.iter().find(|((t, _), r)| t == resource_type && test(r));
        found.map(|((_, id), _)| id.clone()).expect("a matching resource")
    }

    /// Ids of the current resources of a type.
    pub fn ids(&self, resource_type: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.resources.keys().filter(|(t, _)| t == resource_type).map(|(_, id)| id.clone()).collect()
    }
}

impl ServerState {
    fn tick(&mut self) -> String {
        self.clock += chrono::Duration::seconds(1);
        self.clock.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    fn log(&mut self, method: &Method, uri: &Uri, headers: &HeaderMap, status: StatusCode) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        self.log.push(Logged {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            authorization: header("authorization"),
            accept: header("accept"),
            prefer: header("prefer"),
            accept_encoding: header("accept-encoding"),
            at: Instant::now(),
            status: status.as_u16(),
        });
    }

    /// `None` when the request may go on, else the 401 to answer.
    fn check_bearer(&mut self, headers: &HeaderMap) -> Option<Response> {
        self.auth.as_ref()?;
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let valid = token.as_ref().and_then(|t| self.tokens.get(t)).is_some_and(|expires| *expires > Instant::now());
        if valid && self.faults.expire_tokens > 0 {
            self.faults.expire_tokens -= 1;
            self.tokens.remove(token.as_ref().unwrap());
            return Some(outcome(StatusCode::UNAUTHORIZED, "expired", "access token expired"));
        }
        (!valid).then(|| outcome(StatusCode::UNAUTHORIZED, "login", "a valid bearer token is required"))
    }
}

type Shared = Arc<Mutex<ServerState>>;

/// Runs a handler's `body` on the locked state and logs the request with its answer.
fn answer(
    state: &Shared,
    (method, uri, headers): (&Method, &Uri, &HeaderMap),
    body: impl FnOnce(&mut ServerState) -> Response,
) -> Response {
    let mut state = state.lock().unwrap();
    let response = body(&mut state);
    state.log(method, uri, headers, response.status());
    response
}

fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    let body = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]});
    (status, [("content-type", "application/fhir+json")], body.to_string()).into_response()
}

fn with_retry_after(mut response: Response, seconds: Option<u64>) -> Response {
    if let Some(seconds) = seconds {
        response.headers_mut().insert("retry-after", seconds.to_string().parse().unwrap());
    }
    response
}

async fn kick_off(
    State(state): State<Shared>,
    group: Option<UrlPath<String>>,
    Query(params): Query<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer(&state, (&method, &uri, &headers), |state| start_job(state, group.map(|g| g.0), &params, &uri, &headers))
}

fn start_job(
    state: &mut ServerState,
    group: Option<String>,
    params: &[(String, String)],
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    if let Some(denied) = state.check_bearer(headers) {
        return denied;
    }
    if state.faults.kickoff_429 > 0 {
        state.faults.kickoff_429 -= 1;
        let response = outcome(StatusCode::TOO_MANY_REQUESTS, "throttled", "too many exports");
        return with_retry_after(response, state.faults.retry_after_secs);
    }
    if state.faults.kickoff_redirect_loop {
        return (StatusCode::FOUND, [("location", uri.to_string())]).into_response();
    }
    if state.faults.kickoff_forbidden {
        return outcome(StatusCode::FORBIDDEN, "forbidden", "the token's scopes do not allow a system export");
    }
    if headers.get("prefer").and_then(|v| v.to_str().ok()) != Some("respond-async") {
        return outcome(StatusCode::BAD_REQUEST, "invalid", "Prefer: respond-async is required");
    }
    if headers.get("accept").and_then(|v| v.to_str().ok()) != Some("application/fhir+json") {
        return outcome(StatusCode::BAD_REQUEST, "invalid", "Accept: application/fhir+json is required");
    }
    let param = |name: &str| params.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let types: Vec<String> = param("_type").iter().flat_map(|t| t.split(',').map(str::to_owned)).collect();
    let since = param("_since").pop();
    let filters = param("_typeFilter");
    let patients: Option<HashSet<String>> = match &group {
        Some(id) => {
            let Some(group) = state.resources.get(&("Group".to_owned(), id.clone())) else {
                return outcome(StatusCode::NOT_FOUND, "not-found", &format!("Group/{id} is not known"));
            };
            let members = group["member"].as_array().cloned().unwrap_or_default();
            Some(
                members
                    .iter()
                    .filter_map(|m| m["entity"]["reference"].as_str()?.strip_prefix("Patient/").map(str::to_owned))
                    .collect(),
            )
        }
        None => None,
    };
    let patient_level = uri.path().ends_with("/Patient/$export");
    let transaction_time = state.tick();
    let in_scope = |resource: &Value| -> bool {
        let rtype = resource["resourceType"].as_str().unwrap_or_default();
        if !types.is_empty() && !types.iter().any(|t| t == rtype) {
            return false;
        }
        if let Some(since) = &since {
            if resource["meta"]["lastUpdated"].as_str().unwrap_or_default() <= since.as_str() {
                return false;
            }
        }
        for filter in &filters {
            let Some((ftype, query)) = filter.split_once('?') else { continue };
            if ftype != rtype {
                continue;
            }
            for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
                if resource[key.as_ref()].as_str() != Some(value.as_ref()) {
                    return false;
                }
            }
        }
        if patient_level && rtype == "Group" {
            return false;
        }
        match &patients {
            None => true,
            Some(ids) => {
                let text = resource.to_string();
                (rtype == "Patient" && ids.contains(resource["id"].as_str().unwrap_or_default()))
                    || (rtype != "Patient" && ids.iter().any(|id| text.contains(&format!("Patient/{id}\""))))
            }
        }
    };
    let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for resource in state.resources.values().filter(|r| in_scope(r)) {
        by_type.entry(resource["resourceType"].as_str().unwrap().to_owned()).or_default().push(resource.to_string());
    }
    state.next_job += 1;
    let job_id = format!("job{}", state.next_job);
    let files_base = format!("{}/files/{job_id}", state.base.trim_end_matches("/fhir"));
    let mut files = BTreeMap::new();
    let mut output = Vec::new();
    let per_file = if state.faults.resources_per_file == 0 { usize::MAX } else { state.faults.resources_per_file };
    for (rtype, lines) in &by_type {
        for (n, piece) in lines.chunks(per_file.min(lines.len().max(1))).enumerate() {
            let name = format!("{rtype}.{n}.ndjson");
            let mut content = piece.join("\n").into_bytes();
            content.push(b'\n');
            let mut entry = json!({"type": rtype, "url": format!("{files_base}/{name}")});
            if !state.faults.omit_counts {
                entry["count"] = json!(piece.len());
            }
            output.push(entry);
            files.insert(name, content);
        }
    }
    let mut deleted = Vec::new();
    if let Some(since) = &since {
        let lines: Vec<String> = state
            .deletions
            .iter()
            .filter(|(t, _, at)| at.as_str() > since.as_str() && (types.is_empty() || types.contains(t)))
            .map(|(t, id, at)| {
                json!({"resourceType": "Bundle", "type": "transaction", "meta": {"lastUpdated": at},
                       "entry": [{"request": {"method": "DELETE", "url": format!("{t}/{id}")}}]})
                .to_string()
            })
            .collect();
        if !lines.is_empty() {
            files.insert("deleted.ndjson".to_owned(), format!("{}\n", lines.join("\n")).into_bytes());
            deleted
                .push(json!({"type": "Bundle", "url": format!("{files_base}/deleted.ndjson"), "count": lines.len()}));
        }
    }
    let mut error = Vec::new();
    if state.faults.error_file {
        let outcome = |text: &str| {
            json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing", "diagnostics": text}]}).to_string()
        };
        let content =
            format!("{}\n{}\n", outcome("Patient/x could not be exported"), outcome("Observation/y is too large"));
        files.insert("errors.ndjson".to_owned(), content.into_bytes());
        error.push(json!({"type": "OperationOutcome", "url": format!("{files_base}/errors.ndjson"), "count": 2}));
    }
    let request = format!("{}{}", state.base.trim_end_matches("/fhir"), uri);
    let manifest = json!({
        "transactionTime": transaction_time,
        "request": request,
        "requiresAccessToken": state.auth.is_some(),
        "output": output, "error": error, "deleted": deleted,
    });
    state.jobs.insert(job_id.clone(), Job { request, transaction_time, polls: 0, files, manifest });
    let location = state.faults.status_location.clone().unwrap_or_else(|| format!("{}/status/{job_id}", state.base));
    (StatusCode::ACCEPTED, [("content-location", location)]).into_response()
}

async fn status(
    State(state): State<Shared>,
    UrlPath(job): UrlPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let delete = method == Method::DELETE;
    answer(&state, (&method, &uri, &headers), |state| {
        if delete {
            delete_job(state, &job, &headers)
        } else {
            job_status(state, &job, &headers)
        }
    })
}

fn job_status(state: &mut ServerState, job: &str, headers: &HeaderMap) -> Response {
    if let Some(denied) = state.check_bearer(headers) {
        return denied;
    }
    if state.faults.status_500 > 0 {
        state.faults.status_500 -= 1;
        return (StatusCode::INTERNAL_SERVER_ERROR, "upstream hiccup").into_response();
    }
    let (polls_before_done, retry_after) = (state.faults.polls_before_done, state.faults.poll_retry_after_secs);
    let Some(job) = state.jobs.get_mut(job) else {
        return outcome(StatusCode::NOT_FOUND, "not-found", "no such export");
    };
    if job.polls < polls_before_done {
        job.polls += 1;
        let progress = format!("{}% done", job.polls * 100 / (polls_before_done + 1));
        let response = (StatusCode::ACCEPTED, [("x-progress", progress)]).into_response();
        return with_retry_after(response, retry_after);
    }
    ([("content-type", "application/json")], job.manifest.to_string()).into_response()
}

fn delete_job(state: &mut ServerState, job: &str, headers: &HeaderMap) -> Response {
    if let Some(denied) = state.check_bearer(headers) {
        denied
    } else if state.jobs.remove(job).is_some() {
        state.deleted_jobs.push(job.to_owned());
        StatusCode::ACCEPTED.into_response()
    } else {
        outcome(StatusCode::NOT_FOUND, "not-found", "no such export")
    }
}

/// Decrements the active-download count when the body is done (or dropped).
struct Active(Shared);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.lock().unwrap().active_downloads -= 1;
    }
}

async fn file(
    State(shared): State<Shared>,
    UrlPath((job, name)): UrlPath<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut state = shared.lock().unwrap();
    let (response, content) = serve_file(&mut state, &job, &name, &headers);
    state.log(&method, &uri, &headers, response.status());
    let Some((content, cut, drop_connection)) = content else { return response };
    state.active_downloads += 1;
    state.max_active_downloads = state.max_active_downloads.max(state.active_downloads);
    let delay = state.faults.piece_delay;
    drop(state);
    let active = Active(Arc::clone(&shared));
    let (mut parts, _) = response.into_parts();
    let sent = cut.unwrap_or(content.len());
    let pieces: Vec<Bytes> = content[..sent].chunks(4096).map(Bytes::copy_from_slice).collect();
    let stream =
        futures::stream::unfold((pieces.into_iter(), active, false), move |(mut pieces, active, done)| async move {
            if done {
                return None;
            }
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            match pieces.next() {
                Some(piece) => Some((Ok::<Bytes, std::io::Error>(piece), (pieces, active, false))),
                None if drop_connection => {
                    Some((Err(std::io::Error::other("connection dropped")), (pieces, active, true)))
                }
                None => None,
            }
        });
    if cut.is_some() && !drop_connection {
        parts.headers.insert("content-length", sent.to_string().parse().unwrap());
    } else {
        parts.headers.insert("content-length", content.len().to_string().parse().unwrap());
    }
    Response::from_parts(parts, Body::from_stream(stream))
}

/// The response head, and the body to stream: bytes, where to cut them, whether to drop.
type FileBody = Option<(Vec<u8>, Option<usize>, bool)>;

fn serve_file(state: &mut ServerState, job: &str, name: &str, headers: &HeaderMap) -> (Response, FileBody) {
    let requires_token = state.jobs.get(job).is_some_and(|j| j.manifest["requiresAccessToken"] == true);
    if requires_token {
        if let Some(denied) = state.check_bearer(headers) {
            return (denied, None);
        }
    }
    if state.faults.missing_file.as_deref() == Some(name) {
        return (outcome(StatusCode::NOT_FOUND, "not-found", "file expired"), None);
    }
    if state.faults.gone_jobs.iter().any(|j| j == job) {
        return (outcome(StatusCode::GONE, "expired", "the export's files have expired"), None);
    }
    if state.faults.file_500 > 0 {
        state.faults.file_500 -= 1;
        return (outcome(StatusCode::INTERNAL_SERVER_ERROR, "transient", "try again"), None);
    }
    if state.faults.file_429 > 0 {
        state.faults.file_429 -= 1;
        let response = outcome(StatusCode::TOO_MANY_REQUESTS, "throttled", "slow down");
        return (with_retry_after(response, state.faults.retry_after_secs), None);
    }
    let Some(content) = state.jobs.get(job).and_then(|j| j.files.get(name)).cloned() else {
        return (outcome(StatusCode::NOT_FOUND, "not-found", "no such file"), None);
    };
    let gzip = state.faults.gzip
        && headers.get("accept-encoding").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("gzip"));
    let content = if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&content).unwrap();
        encoder.finish().unwrap()
    } else {
        content
    };
    let half = Some(content.len() / 2);
    let (cut, drop_connection) = if state.faults.drop_mid_file > 0 {
        state.faults.drop_mid_file -= 1;
        (half, true)
    } else if state.faults.truncate_file > 0 {
        state.faults.truncate_file -= 1;
        (half, false)
    } else {
        (None, false)
    };
    let mut response = (StatusCode::OK, [("content-type", "application/fhir+ndjson")]).into_response();
    if gzip {
        response.headers_mut().insert("content-encoding", "gzip".parse().unwrap());
    }
    (response, Some((content, cut, drop_connection)))
}

/// The sample's resources with version 1 at [`INITIAL_UPDATE`], plus a two-member Group
/// `two` for group exports.
fn sample_resources() -> BTreeMap<(String, String), Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/sample");
    let mut resources = BTreeMap::new();
    let mut patients = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "ndjson") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines().filter(|l| !l.trim().is_empty()) {
            let mut resource: Value = serde_json::from_str(line).unwrap();
            resource["meta"] = json!({"versionId": "1", "lastUpdated": INITIAL_UPDATE});
            let key =
                (resource["resourceType"].as_str().unwrap().to_owned(), resource["id"].as_str().unwrap().to_owned());
            if key.0 == "Patient" {
                patients.push(key.1.clone());
            }
            resources.insert(key, resource);
        }
    }
    patients.sort();
    let members: Vec<Value> =
        patients.iter().take(2).map(|id| json!({"entity": {"reference": format!("Patient/{id}")}})).collect();
    let group = json!({"resourceType": "Group", "id": "two", "type": "person", "actual": true, "member": members,
                       "meta": {"versionId": "1", "lastUpdated": INITIAL_UPDATE}});
    resources.insert(("Group".to_owned(), "two".to_owned()), group);
    resources
}

/// Client settings for tests: millisecond backoffs and polls, no request budget.
pub fn fast() -> fhirhouse::bulk::ExportSettings {
    use fhirhouse::bulk::{ExportSettings, PollPolicy, RetryPolicy};
    ExportSettings {
        concurrency: 4,
        deadline: Duration::from_secs(60),
        retry: RetryPolicy {
            attempts: 6,
            initial_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        poll: PollPolicy {
            initial: Duration::from_millis(5),
            max: Duration::from_secs(2),
            min: Duration::from_millis(1),
        },
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(10),
        requests_per_second: None,
        gzip: false,
        auth: None,
        restart: false,
        progress: false,
    }
}

/// Lines of every `*.ndjson[.gz]` file of `section` in a downloaded export folder.
pub fn lines_of(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let text = if name.ends_with(".ndjson.gz") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&bytes[..]), &mut text).unwrap();
            text
        } else if name.ends_with(".ndjson") {
            String::from_utf8(bytes).unwrap()
        } else {
            continue;
        };
        lines.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned));
    }
    lines
}
