//! The Bulk Data client against a real third-party server: SEKMET (PyPI `sekmet-fhir`, a
//! FastAPI FHIR R4 test server with `$export` and a SMART Backend Services token endpoint),
//! started by `tests/bulk/start-sekmet.sh`. `.ci/run` starts it and sets
//! `FHIRHOUSE_SEKMET_URL`; without that variable the test says so and passes without running.
//!
//! What it covers, through the `fhirhouse` binary: SMART Backend Services against SEKMET's
//! token endpoint with both algorithms (ES384 from a JWKS, RS384 from a PEM; SEKMET verifies the
//! assertion's signature, iss, sub, aud, exp and jti and enforces the granted scopes); a full
//! export (`fhirhouse export`, verified against the manifest's counts); and `fhirhouse sync`
//! twice: a full first sync, then an increment exported with `_since` = the first export's
//! transactionTime, merged into the warehouse. SEKMET does not report deletions (no
//! `deleted[]`), does not gzip and answers polls at once, so those paths are covered by the
//! in-process server of `bulk_export.rs` / `sync.rs` only.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

/// The static bearer token start-sekmet.sh configures for loading test data.
const LOADER_TOKEN: &str = "fhirhouse-test-loader";
const TYPES: [&str; 3] = ["Patient", "Condition", "AllergyIntolerance"];

fn sekmet() -> Option<String> {
    match std::env::var("FHIRHOUSE_SEKMET_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            println!("skipped: FHIRHOUSE_SEKMET_URL not set (tests/bulk/start-sekmet.sh starts a SEKMET server)");
            None
        }
    }
}

/// PUTs resources into the server with the loader token.
fn put_all(base: &str, resources: &[Value]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    runtime.block_on(async {
        for resource in resources {
            let url =
                format!("{base}/{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
            let response = client
                .put(&url)
                .bearer_auth(LOADER_TOKEN)
                .header("content-type", "application/fhir+json")
                .body(resource.to_string())
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "PUT {url}: {}", response.status());
        }
    });
}

fn sample(resource_type: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(common::sample().join(format!("{resource_type}.000.ndjson"))).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn fhirhouse(args: &[&str]) -> Output {
    let keys = common::root().join("tests/data/keys");
    let output = Command::new(env!("CARGO_BIN_EXE_fhirhouse")).args(args).current_dir(keys).output().unwrap();
    assert!(output.status.success(), "fhirhouse {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

#[test]
fn sekmet_full_export_and_since_increment_with_backend_services() {
    let Some(base) = sekmet() else { return };
    for resource_type in TYPES {
        put_all(&base, &sample(resource_type));
    }
    let dir = tempfile::tempdir().unwrap();
    let types = TYPES.join(",");
    let fast = ["--poll-initial", "200ms", "--retry-initial", "100ms"];

    // A full export, ES384 with the key chosen from a JWKS.
    let export = dir.path().join("export");
    let es384 = ["--client-id", "fhirhouse-test-ec", "--key", "private.jwks.json", "--kid", "ec-test"];
    let output = fhirhouse(
        &[&["export", &base, "--out", export.to_str().unwrap(), "--type", "Patient"][..], &es384, &fast].concat(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("export complete: 1 file, 10 resources"), "{stderr}");
    let manifest: Value = serde_json::from_slice(&std::fs::read(export.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["output"][0]["url"], "Patient.000.ndjson");

    // sync: full, then an increment with one updated patient; RS384 from a PEM.
    let wh = dir.path().join("wh");
    let rs384 = ["--client-id", "fhirhouse-test-rsa", "--key", "rsa-private.pem", "--kid", "rsa-test"];
    let sync =
        [&["sync", &base, "--warehouse", wh.to_str().unwrap(), "--type", &types, "--threads", "2"][..], &rs384, &fast]
            .concat();
    fhirhouse(&sync);
    let tables = ["patient", "condition", "allergy_intolerance"];
    assert_eq!(tables.map(|table| common::table_rows(wh.as_path(), table)), [10, 65, 5]);

    let mut patient = sample("Patient").remove(3);
    let gender = if std::process::id().is_multiple_of(2) { "other" } else { "unknown" };
    patient["gender"] = gender.into();
    put_all(&base, &[patient.clone()]);
    let output = fhirhouse(&sync);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("increment since "), "{stderr}");
    assert!(stderr.contains(": 0 inserted, 1 updated, 0 unchanged, 0 deleted"), "{stderr}");
    assert_eq!(common::table_rows(wh.as_path(), "patient"), 10);
    let ctx = datafusion::prelude::SessionContext::new();
    fhirhouse::sql::register_warehouse(&ctx, wh.as_path()).unwrap();
    let sql = format!("SELECT gender FROM patient WHERE id = '{}'", patient["id"].as_str().unwrap());
    let batches = fhirhouse::sql::query_blocking(&ctx, &sql).unwrap();
    assert_eq!(arrow::util::display::array_value_to_string(batches[0].column(0), 0).unwrap(), gender);
}
