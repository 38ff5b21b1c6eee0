//! The export job on the server: kick-off, status polling, deletion.
//!
//! Kick-off is a GET of `[base]/$export`, `[base]/Patient/$export` or
//! `[base]/Group/<id>/$export` with `Accept: application/fhir+json` and `Prefer:
//! respond-async`; the server answers 202 with the status URL in `Content-Location`. The
//! status URL answers 202 while the export runs (`X-Progress` says how far, `Retry-After`
//! when to ask again), 200 with the manifest when it is done, and an error status with an
//! OperationOutcome when it failed. Between polls the client waits the server's
//! `Retry-After` (within the policy's bounds) or, without one, a capped exponential backoff
//! with jitter.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_LOCATION};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use url::Url;

use super::http::{redact, retry_after, status_reason, Http};
use super::BulkError;

/// How often the status is asked for.
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    /// The first wait, when the server gives no `Retry-After`; doubled after each poll.
    pub initial: Duration,
    /// The longest wait between polls, `Retry-After` included.
    pub max: Duration,
    /// The shortest wait between polls, whatever `Retry-After` says.
    pub min: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy { initial: Duration::from_secs(2), max: Duration::from_secs(120), min: Duration::from_millis(500) }
    }
}

/// One file entry of a Bulk Data manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The resource type of the file.
    #[serde(rename = "type", default)]
    pub resource_type: String,
    /// Where the file is (absolute on the server; relative in a saved export).
    pub url: String,
    /// The number of resources in the file, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// A Bulk Data manifest: what the status URL answers when the export is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The server's time of the export's snapshot: the `_since` of the next increment.
    pub transaction_time: String,
    /// The kick-off request.
    #[serde(default)]
    pub request: String,
    /// Whether file downloads need the access token.
    #[serde(default)]
    pub requires_access_token: bool,
    /// The resource files.
    #[serde(default)]
    pub output: Vec<ManifestEntry>,
    /// OperationOutcome files.
    #[serde(default)]
    pub error: Vec<ManifestEntry>,
    /// Bundles listing resources deleted since `_since`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<ManifestEntry>,
}

/// Sends the kick-off request; returns the status URL.
pub(crate) async fn kick_off(http: &Http, request: &Url) -> Result<Url, BulkError> {
    let what = "export kick-off";
    let response = http
        .send(what, request, true, |c| {
            c.get(request.clone()).header(ACCEPT, "application/fhir+json").header("Prefer", "respond-async")
        })
        .await?;
    let status = response.status();
    if status != StatusCode::ACCEPTED {
        let body = response.bytes().await.unwrap_or_default();
        let reason = if status.is_success() {
            format!("HTTP {status} instead of 202 Accepted: the server did not start an asynchronous export")
        } else {
            status_reason(status, &body)
        };
        return Err(BulkError::Refused { what: format!("{what} ({})", redact(request)), reason });
    }
    let location = response
        .headers()
        .get(CONTENT_LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| BulkError::Invalid("the kick-off answered 202 without a Content-Location".into()))?;
    request.join(location).map_err(|e| BulkError::Invalid(format!("Content-Location {location:?} is not a URL: {e}")))
}

/// What one poll found.
pub(crate) enum Poll {
    /// Still running, with the server's `X-Progress`, and how long to wait.
    Running { progress: Option<String>, wait: Duration },
    /// Done.
    Done(Box<Manifest>),
    /// The server does not know the job (any more).
    Gone,
}

/// Asks for the status once; `backoff` is the wait to use without a `Retry-After`.
pub(crate) async fn poll(
    http: &Http,
    status_url: &Url,
    policy: &PollPolicy,
    backoff: Duration,
) -> Result<Poll, BulkError> {
    let what = "export status";
    let response =
        http.send(what, status_url, true, |c| c.get(status_url.clone()).header(ACCEPT, "application/json")).await?;
    let status = response.status();
    match status {
        StatusCode::ACCEPTED => {
            let progress = response.headers().get("X-Progress").and_then(|v| v.to_str().ok()).map(str::to_owned);
            // Not `clamp`: a minimum above the maximum (two options set apart) gives the maximum.
            let wait =
                retry_after(response.headers()).unwrap_or(backoff).min(policy.max).max(policy.min.min(policy.max));
            Ok(Poll::Running { progress, wait })
        }
        StatusCode::OK => {
            let body = response.bytes().await.map_err(|e| BulkError::Invalid(format!("{what}: {e}")))?;
            let manifest: Manifest = serde_json::from_slice(&body)
                .map_err(|e| BulkError::Invalid(format!("the export's manifest is not valid: {e}")))?;
            Ok(Poll::Done(Box::new(manifest)))
        }
        StatusCode::NOT_FOUND | StatusCode::GONE => Ok(Poll::Gone),
        _ => {
            let body = response.bytes().await.unwrap_or_default();
            Err(BulkError::Refused {
                what: format!("{what} ({})", redact(status_url)),
                reason: status_reason(status, &body),
            })
        }
    }
}

/// Deletes the job on the server (after the download, or when the export is abandoned).
/// Failure is logged, not returned: the server expires jobs on its own.
pub(crate) async fn delete(http: &Http, status_url: &Url) -> bool {
    match http.send("export deletion", status_url, true, |c| c.delete(status_url.clone())).await {
        Ok(response) if response.status().is_success() || response.status() == StatusCode::NOT_FOUND => true,
        Ok(response) => {
            tracing::warn!(status = %response.status(), url = redact(status_url), "the server did not delete the export job");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, url = redact(status_url), "could not delete the export job");
            false
        }
    }
}
