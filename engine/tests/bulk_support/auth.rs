//! The test server's SMART Backend Services side: discovery, the token endpoint verifying
//! client assertions with the test keys' public JWKs, and the test client's registration.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{answer, ServerState, Shared};

/// SMART Backend Services configuration of the server.
#[derive(Clone)]
pub struct AuthConfig {
    pub client_id: String,
    /// Public keys by kid.
    pub keys: HashMap<String, (jsonwebtoken::Algorithm, jsonwebtoken::DecodingKey)>,
    /// Advertise and accept only SMART v1 scopes.
    pub v1_only: bool,
}

pub(super) async fn smart_configuration(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer(&state, (&method, &uri, &headers), |state| {
        let root = state.base.trim_end_matches("/fhir").to_owned();
        let v1_only = state.auth.as_ref().is_some_and(|a| a.v1_only);
        let capabilities = if v1_only {
            json!(["client-confidential-asymmetric", "permission-v1"])
        } else {
            json!(["client-confidential-asymmetric", "permission-v1", "permission-v2"])
        };
        let body = json!({
            "token_endpoint": format!("{root}/auth/token"),
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "grant_types_supported": ["client_credentials"],
            "capabilities": capabilities,
        });
        ([("content-type", "application/json")], body.to_string()).into_response()
    })
}

pub(super) async fn token(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    answer(&state, (&method, &uri, &headers), |state| issue_token(state, &body))
}

fn oauth_error(error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (StatusCode::BAD_REQUEST, [("content-type", "application/json")], body.to_string()).into_response()
}

fn issue_token(state: &mut ServerState, body: &str) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let Some(auth) = state.auth.clone() else { return oauth_error("invalid_client", "no clients") };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error("unsupported_grant_type", "client_credentials only");
    }
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return oauth_error("invalid_request", "client_assertion_type must be jwt-bearer");
    }
    let Some(assertion) = form.get("client_assertion") else { return oauth_error("invalid_request", "no assertion") };
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(header) => header,
        Err(e) => return oauth_error("invalid_client", &format!("assertion header: {e}")),
    };
    let Some((algorithm, key)) = header.kid.as_ref().and_then(|kid| auth.keys.get(kid)) else {
        return oauth_error("invalid_client", "unknown kid");
    };
    if header.alg != *algorithm {
        return oauth_error("invalid_client", "algorithm does not match the key");
    }
    let token_url = format!("{}/auth/token", state.base.trim_end_matches("/fhir"));
    let mut validation = jsonwebtoken::Validation::new(*algorithm);
    validation.set_audience(&[token_url]);
    validation.set_issuer(std::slice::from_ref(&auth.client_id));
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = match jsonwebtoken::decode::<Value>(assertion, key, &validation) {
        Ok(data) => data.claims,
        Err(e) => return oauth_error("invalid_client", &format!("assertion rejected: {e}")),
    };
    if claims["sub"] != auth.client_id.as_str() {
        return oauth_error("invalid_client", "sub must be the client id");
    }
    let exp = claims["exp"].as_i64().unwrap_or(0);
    if exp > chrono::Utc::now().timestamp() + 300 {
        return oauth_error("invalid_client", "exp more than five minutes ahead");
    }
    let Some(jti) = claims["jti"].as_str().filter(|j| !j.is_empty()) else {
        return oauth_error("invalid_client", "no jti");
    };
    if !state.seen_jti.insert(jti.to_owned()) {
        return oauth_error("invalid_client", "jti replayed");
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    if auth.v1_only && scope.split_whitespace().any(|s| !s.ends_with(".read")) {
        return oauth_error("invalid_scope", "only SMART v1 scopes (system/*.read) are supported");
    }
    state.assertions.push((header.kid.unwrap(), format!("{:?}", header.alg), scope.clone()));
    state.tokens_issued += 1;
    let access = format!("token-{}-{}", state.tokens_issued, rand_suffix());
    let lifetime = state.faults.token_lifetime_secs;
    state.tokens.insert(access.clone(), Instant::now() + Duration::from_secs(lifetime));
    let body = json!({"access_token": access, "token_type": "bearer", "expires_in": lifetime, "scope": scope});
    ([("content-type", "application/json")], body.to_string()).into_response()
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
}

/// The test keys (tests/data/keys, test-only).
pub fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/keys")
}

/// The server's view of the test client: its public keys from `tests/data/keys/public.jwks.json`.
pub fn test_client(client_id: &str) -> AuthConfig {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_slice(&std::fs::read(keys_dir().join("public.jwks.json")).unwrap()).unwrap();
    let keys = jwks
        .keys
        .iter()
        .map(|jwk| {
            let algorithm = match jwk.common.key_algorithm {
                Some(jsonwebtoken::jwk::KeyAlgorithm::RS384) => jsonwebtoken::Algorithm::RS384,
                Some(jsonwebtoken::jwk::KeyAlgorithm::ES384) => jsonwebtoken::Algorithm::ES384,
                other => panic!("unexpected test key algorithm {other:?}"),
            };
            (jwk.common.key_id.clone().unwrap(), (algorithm, jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap()))
        })
        .collect();
    AuthConfig { client_id: client_id.to_owned(), keys, v1_only: false }
}
