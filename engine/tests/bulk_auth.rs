//! SMART Backend Services against the in-process test server, with the test-only key pairs
//! of `tests/data/keys`: the server verifies each RS384 / ES384 client assertion with the
//! public key (iss, sub, aud, exp ≤ 5 min, jti once), tokens are renewed before expiry and
//! once after a 401, v1-only servers get v1 scopes, refusals show the server's error, and
//! no token or assertion reaches the logs.

mod bulk_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bulk_support::{fast, keys_dir, test_client, BulkServer};
use fhirhouse::bulk::{BackendServices, BulkError, ExportOutcome, ExportRequest, ExportSettings, Exporter, SigningKey};
use url::Url;

const CLIENT: &str = "fhirhouse-test";

/// A test server that requires SMART Backend Services of the test client.
fn auth_server() -> BulkServer {
    let server = BulkServer::start();
    server.require_auth(test_client(CLIENT));
    server
}

fn key(file: &str, kid: Option<&str>) -> Result<SigningKey, BulkError> {
    SigningKey::load(&keys_dir().join(file), kid)
}

fn auth(file: &str, kid: Option<&str>) -> BackendServices {
    BackendServices {
        client_id: CLIENT.into(),
        key: key(file, kid).unwrap(),
        scope: None,
        token_url: None,
        refresh_before: Duration::from_secs(10),
    }
}

fn export(
    server: &BulkServer,
    out: &Path,
    auth: BackendServices,
    tweak: impl FnOnce(&mut ExportRequest, &mut ExportSettings),
) -> Result<ExportOutcome, BulkError> {
    let mut request = ExportRequest::new(Url::parse(&server.base).unwrap());
    let mut settings = ExportSettings { auth: Some(auth), ..fast() };
    tweak(&mut request, &mut settings);
    let exporter = Exporter::new(request, settings, &out.to_path_buf().into()).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(exporter.run())
}

#[test]
fn test_keys_load_from_pem_and_jwks_in_every_form() {
    for (file, kid, algorithm) in [
        ("rsa-private.pem", Some("rsa-test"), "RS384"),
        ("rsa-private-pkcs1.pem", Some("rsa-test"), "RS384"),
        ("ec-private.pem", Some("ec-test"), "ES384"),
        ("ec-private-sec1.pem", Some("ec-test"), "ES384"),
        ("private.jwks.json", Some("rsa-test"), "RS384"),
        ("private.jwks.json", Some("ec-test"), "ES384"),
    ] {
        let key = key(file, kid).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(format!("{:?}", key.algorithm), algorithm, "{file}");
        assert_eq!(Some(key.kid.as_str()), kid);
        assert!(!format!("{key:?}").contains("key:"), "Debug shows no key material: {key:?}");
    }
    let err = key("private.jwks.json", None).unwrap_err().to_string();
    assert!(
        err.ends_with("private.jwks.json: several private keys; choose one with --kid: rsa-test, ec-test"),
        "{err}"
    );
    let err = key("private.jwks.json", Some("nope")).unwrap_err().to_string();
    assert!(
        err.contains("no private RS384/ES384 key with kid \"nope\" (private keys here: rsa-test, ec-test)"),
        "{err}"
    );
    let err = key("public.jwks.json", None).unwrap_err().to_string();
    assert!(err.contains("no private RSA or EC P-384 key"), "{err}");
    let err = key("rsa-private.pem", None).unwrap_err().to_string();
    assert!(err.contains("a PEM key has no key id: give the kid of its public key"), "{err}");
    let err = key("README.md", Some("x")).unwrap_err().to_string();
    assert!(err.contains("not a PEM private key"), "{err}");
}

#[test]
fn exports_authenticate_with_rs384_and_es384_assertions_the_server_verifies() {
    let server = auth_server();
    let dir = tempfile::tempdir().unwrap();
    let narrow = "system/Patient.rs system/Condition.rs";
    for (file, kid, algorithm, scope) in
        [("rsa-private.pem", "rsa-test", "RS384", None), ("private.jwks.json", "ec-test", "ES384", Some(narrow))]
    {
        let out = dir.path().join(kid);
        let auth = BackendServices { scope: scope.map(str::to_owned), ..auth(file, Some(kid)) };
        let outcome = export(&server, &out, auth, |r, _| r.types = vec!["Patient".into(), "Condition".into()]).unwrap();
        assert_eq!(outcome.files.len(), 2);
        assert_eq!(outcome.tokens, 1, "one token for the whole export");
        let state = server.state.lock().unwrap();
        let (used_kid, used_algorithm, asked) = state.assertions.last().unwrap().clone();
        assert_eq!((used_kid.as_str(), used_algorithm.as_str()), (kid, algorithm));
        assert_eq!(asked, scope.unwrap_or("system/*.rs"), "the default, or --scope");
    }
    // Every FHIR request carried the token; the token endpoint was found by discovery.
    let requests = server.requests("");
    assert!(requests
        .iter()
        .filter(|r| r.path.starts_with("/fhir/") && !r.path.contains(".well-known"))
        .all(|r| r.authorization.as_deref().is_some_and(|a| a.starts_with("Bearer token-"))));
    assert!(
        requests.iter().filter(|r| r.path.starts_with("/files/")).all(|r| r.authorization.is_some()),
        "requiresAccessToken"
    );
    assert_eq!(server.requests("/.well-known/smart-configuration").len(), 2, "once per export");
    assert!(requests.iter().all(|r| r.status != 401));
}

#[test]
fn without_a_token_the_server_refuses_and_says_why() {
    let server = auth_server();
    let dir = tempfile::tempdir().unwrap();
    let exporter =
        Exporter::new(ExportRequest::new(Url::parse(&server.base).unwrap()), fast(), &dir.path().to_path_buf().into())
            .unwrap();
    let err = tokio::runtime::Runtime::new().unwrap().block_on(exporter.run()).unwrap_err().to_string();
    assert!(err.contains("HTTP 401 Unauthorized: error (login): a valid bearer token is required"), "{err}");

    let mut wrong = auth("rsa-private.pem", Some("rsa-test"));
    wrong.client_id = "someone-else".into();
    let err = export(&server, dir.path(), wrong, |_, _| {}).unwrap_err().to_string();
    assert!(err.starts_with("authorisation: the token endpoint http://127.0.0.1:"), "{err}");
    assert!(err.contains("refused client \"someone-else\" (scope \"system/*.rs\"): HTTP 400 Bad Request, invalid_client: assertion rejected"), "{err}");
}

#[test]
fn a_token_rejected_with_401_is_renewed_once_and_only_once() {
    let server = auth_server();
    server.faults(|f| f.expire_tokens = 1);
    let dir = tempfile::tempdir().unwrap();
    let outcome = export(&server, &dir.path().join("a"), auth("ec-private.pem", Some("ec-test")), |_, _| {}).unwrap();
    assert_eq!(outcome.tokens, 2);
    assert_eq!(server.requests("").iter().filter(|r| r.status == 401).count(), 1);

    // A server that rejects the new token too: the 401 stops the export.
    server.faults(|f| f.expire_tokens = 2);
    let err = export(&server, &dir.path().join("b"), auth("ec-private.pem", Some("ec-test")), |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("HTTP 401 Unauthorized: error (expired): access token expired"), "{err}");
}

#[test]
fn a_token_is_renewed_before_it_expires() {
    let server = auth_server();
    server.faults(|f| {
        f.token_lifetime_secs = 1;
        f.polls_before_done = 4;
    });
    let dir = tempfile::tempdir().unwrap();
    let mut early = auth("rsa-private.pem", Some("rsa-test"));
    early.refresh_before = Duration::from_millis(900);
    let outcome = export(&server, dir.path(), early, |_, s| {
        s.poll.initial = Duration::from_millis(60);
        s.poll.max = Duration::from_millis(60);
    })
    .unwrap();
    assert!(outcome.tokens >= 3, "renewed ahead of expiry: {} tokens", outcome.tokens);
    assert!(server.requests("").iter().all(|r| r.status != 401), "never used an expired token");
}

#[test]
fn servers_offering_only_smart_v1_get_v1_scopes() {
    let server = BulkServer::start();
    server.require_auth(bulk_support::AuthConfig { v1_only: true, ..test_client(CLIENT) });
    let dir = tempfile::tempdir().unwrap();
    export(&server, &dir.path().join("a"), auth("rsa-private.pem", Some("rsa-test")), |_, _| {}).unwrap();
    assert_eq!(server.state.lock().unwrap().assertions.last().unwrap().2, "system/*.read");

    // Asked for v2 scopes by name, the client falls back to their v1 form once refused.
    let mut v2 = auth("rsa-private.pem", Some("rsa-test"));
    v2.scope = Some("system/*.rs".into());
    let before = server.requests("/auth/token").len();
    export(&server, &dir.path().join("b"), v2, |_, _| {}).unwrap();
    let tokens = server.requests("/auth/token");
    assert_eq!((tokens.len() - before, tokens.last().unwrap().status), (2, 200));
    assert_eq!(server.state.lock().unwrap().assertions.last().unwrap().2, "system/*.read");
}

#[test]
fn tokens_and_assertions_never_reach_the_logs() {
    let server = auth_server();
    server.faults(|f| f.expire_tokens = 1);
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .env("RUST_LOG", "trace")
        .args(["export", &server.base, "--out", dir.path().to_str().unwrap(), "--type", "Patient"])
        .args([
            "--client-id",
            CLIENT,
            "--key",
            keys_dir().join("rsa-private.pem").to_str().unwrap(),
            "--kid",
            "rsa-test",
        ])
        .args(["--poll-initial", "5ms", "--retry-initial", "5ms"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("401 with a token: getting a new one"), "the run did renew a token: {stderr}");
    for secret in ["token-1-", "token-2-", "eyJ", "client_assertion="] {
        assert!(!stderr.contains(secret), "{secret} in the log");
    }
}
