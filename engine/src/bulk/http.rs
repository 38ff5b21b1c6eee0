//! Requests to a Bulk Data server: retries of transient failures, the shared request budget,
//! bearer tokens.
//!
//! `Http::send` retries what the IG calls transient: network errors, timeouts, 429 and
//! 5xx (a request that cannot be sent at all, such as a URL of another scheme or a redirect
//! loop, is not: it would fail the same way every time), waiting the server's `Retry-After` when it gives one (through the shared
//! [`RateLimiter`], so every concurrent request waits with it) and otherwise a capped
//! exponential backoff with jitter. A 401 on an authorised request gets one new token and
//! one more try. Every other answer goes back to the caller, which knows what it means.
//!
//! Nothing here writes a token, a client assertion or a URL's query string (presigned file
//! URLs carry credentials there) into an error or a log: URLs are shown by [`redact`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use url::Url;

use super::auth::TokenSource;
use super::limiter::RateLimiter;
use super::outcome;
use super::BulkError;

/// How transient failures are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries per request (the first one included) before giving up.
    pub attempts: u32,
    /// The first backoff; each further one doubles, up to `max_delay`.
    pub initial_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a server asking for more is waited this long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The backoff before try `attempt + 1` (`attempt` ≥ 1): capped exponential, with "equal
    /// jitter" (half fixed, half random) so that clients that failed together do not retry
    /// together.
    #[must_use]
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let cap = self.initial_delay.saturating_mul(1 << exponent).min(self.max_delay);
        let half = cap / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// Request counts of an export, for its report and for tests.
#[derive(Debug, Default)]
pub struct RequestStats {
    /// Requests sent, retries included.
    pub requests: AtomicU64,
    /// Requests retried after a transient failure.
    pub retries: AtomicU64,
    /// Responses 429 (or 503) that paused the origin.
    pub throttled: AtomicU64,
    /// Access tokens obtained.
    pub tokens: AtomicU64,
}

/// The HTTP side of an export: one client, one budget, one token source.
#[derive(Clone)]
pub(crate) struct Http {
    pub client: reqwest::Client,
    pub limiter: Arc<RateLimiter>,
    pub retry: RetryPolicy,
    pub auth: Option<Arc<TokenSource>>,
    pub stats: Arc<RequestStats>,
}

/// Why a try failed, when it may be tried again.
pub(crate) struct Transient {
    pub reason: String,
    pub retry_after: Option<Duration>,
}

impl Http {
    /// Sends the request `build` makes (again for each try) and returns the first answer that
    /// is not transient; `authorised` adds the bearer token. `what` names the request in
    /// errors ("status of the export", "file Patient.000.ndjson").
    ///
    /// # Errors
    ///
    /// [`BulkError::GaveUp`] after the policy's tries, with the last reason (and the
    /// server's OperationOutcome when it sent one); [`BulkError::Unsendable`] at once for a
    /// request that no retry can help; the token source's errors.
    pub async fn send(
        &self,
        what: &str,
        url: &Url,
        authorised: bool,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, BulkError> {
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            attempt += 1;
            self.limiter.acquire(url).await;
            let mut request = build(&self.client);
            let token = match (&self.auth, authorised) {
                // Boxed: getting a token sends requests through here (unauthorised ones).
                (Some(auth), true) => Some(Box::pin(auth.bearer(self)).await?),
                _ => None,
            };
            if let Some(token) = &token {
                request = request.bearer_auth(token.expose());
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let failure = match request.send().await {
                Err(e) if is_permanent(&e) => {
                    // The URL is what is wrong, so it is shown; some requests' `what` has it.
                    let shown = redact(url);
                    let what = if what.contains(&shown) { what.to_owned() } else { format!("{what} ({shown})") };
                    return Err(BulkError::Unsendable { what, reason: describe_reqwest(&e) });
                }
                Err(e) => Transient { reason: describe_reqwest(&e), retry_after: None },
                Ok(response) => match self.classify(url, response).await {
                    Ok(response) if response.status() == StatusCode::UNAUTHORIZED && token.is_some() && !renewed => {
                        // An expired or revoked token: one new token, one more try.
                        renewed = true;
                        attempt -= 1;
                        let (auth, token) = (self.auth.as_ref().expect("token came from it"), token.expect("some"));
                        auth.invalidate(&token).await;
                        tracing::info!(what, "401 with a token: getting a new one");
                        continue;
                    }
                    Ok(response) => return Ok(response),
                    Err(transient) => transient,
                },
            };
            if attempt >= self.retry.attempts {
                return Err(BulkError::GaveUp { what: what.to_owned(), attempts: attempt, last: failure.reason });
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            let wait = failure.retry_after.unwrap_or_else(|| self.retry.backoff(attempt));
            tracing::info!(what, attempt, reason = failure.reason, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Splits answers into the caller's and transient failures (429, 5xx); a `Retry-After`
    /// on those pauses the origin for every request.
    async fn classify(&self, url: &Url, response: Response) -> Result<Response, Transient> {
        let status = response.status();
        if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers()).map(|d| d.min(self.retry.max_retry_after));
        if let Some(pause) = retry_after {
            self.limiter.pause(url, pause);
        }
        if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(Transient { reason: status_reason(status, &body), retry_after })
    }
}

/// "HTTP 503 Service Unavailable", with the OperationOutcome's issues when the body is one.
pub(crate) fn status_reason(status: StatusCode, body: &[u8]) -> String {
    let mut reason = format!("HTTP {status}");
    if let Some(issues) = outcome::describe_body(body) {
        reason.push_str(": ");
        reason.push_str(&issues);
    }
    reason
}

/// A `Retry-After` header: delay-seconds, or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let ms = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// A URL for messages: without its query string and fragment, which may hold credentials.
#[must_use]
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    let mut text = shown.to_string();
    if url.query().is_some() {
        text.push_str("?…");
    }
    text
}

/// Whether a failed send would fail the same way however often it is tried: the request
/// could not be built (a URL of a scheme other than http and https, an invalid header) or its
/// redirects went wrong (a loop, too many). Everything else reqwest reports on a send is about
/// the connection or the response, which may go better next time.
pub(crate) fn is_permanent(error: &reqwest::Error) -> bool {
    error.is_builder() || error.is_redirect()
}

/// A reqwest error without its URL (which may carry a presigned query) and with its cause.
pub(crate) fn describe_reqwest(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "the response broke off"
    } else if error.is_builder() {
        "cannot send the request"
    } else if error.is_redirect() {
        "the redirects went wrong"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy {
            attempts: 10,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for (attempt, cap) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (9, 1000)] {
            for _ in 0..50 {
                let d = policy.backoff(attempt).as_millis() as u64;
                assert!((cap / 2..=cap).contains(&d), "attempt {attempt}: {d} ms outside [{}, {cap}]", cap / 2);
            }
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        headers.insert(RETRY_AFTER, later.parse().unwrap());
        let d = retry_after(&headers).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn redacted_urls_keep_no_query_or_password() {
        let url = Url::parse("https://user:pw@bucket.example/f.ndjson?X-Amz-Signature=abc#x").unwrap();
        assert_eq!(redact(&url), "https://user@bucket.example/f.ndjson?…");
    }
}
