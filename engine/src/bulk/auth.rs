//! SMART Backend Services: access tokens for a client that has no user.
//!
//! The token endpoint is discovered from `<base>/.well-known/smart-configuration` (unless
//! given). A token is asked for with the client-credentials grant, authenticated by a JWT
//! assertion signed with the client's private key ([`SigningKey`]): `iss` = `sub` = the client
//! id, `aud` = the token endpoint, a random `jti`, and an `exp` four minutes ahead (SMART
//! allows at most five). The token is kept and reused until shortly before it expires
//! (`refresh_before`), and replaced at once when the server answers 401 with it.
//!
//! Scopes: SMART v2 (`system/*.rs`, read and search) unless the server only advertises the
//! `permission-v1` capability, in which case v1 (`system/*.read`); `--scope` replaces them
//! (`system/Patient.rs system/Observation.rs` for a narrower token). A server that rejects a
//! v2 scope as `invalid_scope` is asked once more with the v1 form.
//!
//! Tokens and assertions are [`Secret`]s: never in logs, errors or `Debug` output.

use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::http::{redact, status_reason, Http};
use super::keys::SigningKey;
use super::BulkError;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far ahead a client assertion expires (SMART: at most five minutes).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(240);
/// The scopes asked for by default. Not narrowed to the exported types: servers commonly
/// authorise a system-level `$export` only with `*` (`--scope` narrows it where they do not).
const DEFAULT_SCOPE: &str = "system/*.rs";
/// A token without `expires_in` is taken to last this long.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// A credential: `Debug` shows `<redacted>`, and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The credential itself, for the one place that sends it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the client authenticates: SMART Backend Services.
#[derive(Debug, Clone)]
pub struct BackendServices {
    /// The client id registered with the server.
    pub client_id: String,
    /// The private key of the client's registered public key.
    pub key: SigningKey,
    /// The scopes to ask for; `None` for the default (see the module docs).
    pub scope: Option<String>,
    /// The token endpoint; `None` to discover it.
    pub token_url: Option<Url>,
    /// Renew a token this long before it expires.
    pub refresh_before: Duration,
}

/// The claims of a client assertion.
#[derive(Debug, Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    jti: String,
}

struct Token {
    access: Secret,
    expires: Instant,
}

/// Hands out access tokens; one per export, shared by its requests.
pub(crate) struct TokenSource {
    config: BackendServices,
    server: Url,
    endpoint: Mutex<Option<Endpoint>>,
    current: Mutex<Option<Token>>,
}

#[derive(Clone)]
struct Endpoint {
    url: Url,
    /// The server advertises only SMART v1 scopes.
    v1_only: bool,
}

impl TokenSource {
    /// A token source for the FHIR server at `server`.
    pub fn new(config: BackendServices, server: &Url) -> TokenSource {
        TokenSource { config, server: server.clone(), endpoint: Mutex::new(None), current: Mutex::new(None) }
    }

    /// A valid access token: the current one, or a new one when it is missing or about to
    /// expire.
    pub async fn bearer(&self, http: &Http) -> Result<Secret, BulkError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| t.expires > Instant::now() + self.config.refresh_before) {
            return Ok(token.access.clone());
        }
        let token = self.request_token(http).await?;
        let access = token.access.clone();
        *current = Some(token);
        Ok(access)
    }

    /// Forgets `used` after the server rejected it (a request holding a newer one keeps it).
    pub async fn invalidate(&self, used: &Secret) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|t| &t.access == used) {
            *current = None;
        }
    }

    async fn endpoint(&self, http: &Http) -> Result<Endpoint, BulkError> {
        let mut endpoint = self.endpoint.lock().await;
        if let Some(found) = endpoint.as_ref() {
            return Ok(found.clone());
        }
        let found = match &self.config.token_url {
            Some(url) => Endpoint { url: url.clone(), v1_only: false },
            None => self.discover(http).await?,
        };
        *endpoint = Some(found.clone());
        Ok(found)
    }

    async fn discover(&self, http: &Http) -> Result<Endpoint, BulkError> {
        let url = super::join(&self.server, ".well-known/smart-configuration")?;
        let what = "SMART configuration";
        let response = http.send(what, &url, false, |c| c.get(url.clone()).header(ACCEPT, "application/json")).await?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| BulkError::auth(format!("{what}: {e}")))?;
        if !status.is_success() {
            return Err(BulkError::auth(format!(
                "{} answered {}; give the token endpoint with --token-url",
                redact(&url),
                status_reason(status, &body)
            )));
        }
        let config: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| BulkError::auth(format!("{} is not JSON: {e}", redact(&url))))?;
        let token_url = config["token_endpoint"]
            .as_str()
            .ok_or_else(|| BulkError::auth(format!("{} has no token_endpoint", redact(&url))))?;
        let token_url = Url::parse(token_url)
            .or_else(|_| url.join(token_url))
            .map_err(|e| BulkError::auth(format!("token_endpoint {token_url:?} is not a URL: {e}")))?;
        let algorithm = format!("{:?}", self.config.key.algorithm);
        if let Some(algorithms) = config["token_endpoint_auth_signing_alg_values_supported"].as_array() {
            if !algorithms.iter().any(|a| a.as_str() == Some(algorithm.as_str())) {
                tracing::warn!(algorithm, "the server does not list this signing algorithm as supported");
            }
        }
        let capabilities: Vec<&str> = config["capabilities"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c.as_str()).collect())
            .unwrap_or_default();
        let v1_only = capabilities.contains(&"permission-v1") && !capabilities.contains(&"permission-v2");
        tracing::info!(token_url = %redact(&token_url), v1_only, "SMART configuration read");
        Ok(Endpoint { url: token_url, v1_only })
    }

    async fn request_token(&self, http: &Http) -> Result<Token, BulkError> {
        let endpoint = self.endpoint(http).await?;
        let scope = match &self.config.scope {
            Some(scope) => scope.clone(),
            None if endpoint.v1_only => to_v1(DEFAULT_SCOPE),
            None => DEFAULT_SCOPE.to_owned(),
        };
        match self.token_with_scope(http, &endpoint.url, &scope).await {
            Err(BulkError::Auth(reason)) if reason.contains("invalid_scope") && to_v1(&scope) != scope => {
                let v1 = to_v1(&scope);
                tracing::warn!(scope, v1, "the server rejected the SMART v2 scopes; asking with v1 scopes");
                self.token_with_scope(http, &endpoint.url, &v1).await
            }
            other => other,
        }
    }

    async fn token_with_scope(&self, http: &Http, token_url: &Url, scope: &str) -> Result<Token, BulkError> {
        let assertion = self.assertion(token_url)?;
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", scope)
            .append_pair("client_assertion_type", ASSERTION_TYPE)
            .append_pair("client_assertion", assertion.expose())
            .finish();
        let body = Secret(body);
        let response = http
            .send("token request", token_url, false, |c| {
                c.post(token_url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(ACCEPT, "application/json")
                    .body(body.expose().to_owned())
            })
            .await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| BulkError::auth(format!("token response: {e}")))?;
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if !status.is_success() {
            let error = answer["error"].as_str().unwrap_or("no OAuth error code");
            let description = answer["error_description"].as_str().map(|d| format!(": {d}")).unwrap_or_default();
            return Err(BulkError::auth(format!(
                "the token endpoint {} refused client {:?} (scope {scope:?}): HTTP {status}, {error}{description}",
                redact(token_url),
                self.config.client_id
            )));
        }
        let access = answer["access_token"].as_str().ok_or_else(|| {
            BulkError::auth(format!("the token response of {} has no access_token", redact(token_url)))
        })?;
        let lifetime = answer["expires_in"].as_u64().map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        if let Some(granted) = answer["scope"].as_str().filter(|g| *g != scope) {
            tracing::info!(asked = scope, granted, "the server granted other scopes than asked");
        }
        http.stats.tokens.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Token { access: Secret(access.to_owned()), expires: Instant::now() + lifetime })
    }

    /// A fresh client assertion for `token_url`.
    fn assertion(&self, token_url: &Url) -> Result<Secret, BulkError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Assertion {
            iss: &self.config.client_id,
            sub: &self.config.client_id,
            aud: token_url.as_str(),
            exp: now + ASSERTION_LIFETIME.as_secs() as i64,
            iat: now,
            jti: format!("{:032x}", rand::random::<u128>()),
        };
        let key = &self.config.key;
        let mut header = jsonwebtoken::Header::new(key.algorithm);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".to_owned());
        jsonwebtoken::encode(&header, &claims, &key.key)
            .map(Secret)
            .map_err(|e| BulkError::auth(format!("cannot sign the client assertion: {e}")))
    }
}

/// SMART v2 scopes in their v1 form: `.rs` (read, search) is `.read`, `.cruds` is `.*`.
fn to_v1(scope: &str) -> String {
    scope
        .split_whitespace()
        .map(|s| match s.rsplit_once('.') {
            Some((resource, "rs" | "r" | "s")) => format!("{resource}.read"),
            Some((resource, "cruds")) => format!("{resource}.*"),
            _ => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_scopes_have_v1_forms_and_secrets_do_not_print() {
        assert_eq!(to_v1("system/*.rs"), "system/*.read");
        assert_eq!(
            to_v1("system/Patient.rs system/Observation.cruds launch"),
            "system/Patient.read system/Observation.* launch"
        );
        assert_eq!(to_v1("system/*.read"), "system/*.read");
        assert_eq!(format!("{:?}", Secret("tok".into())), "<redacted>");
    }
}
