//! `fhirhouse export`: a Bulk Data `$export` from a FHIR server into a folder.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use url::Url;

use crate::bulk::{
    check_server_url, export_until_interrupted, BackendServices, ExportRequest, ExportSettings, Exporter, Level,
    PollPolicy, RetryPolicy, SigningKey,
};
use crate::store::Address;

pub(super) const LONG_ABOUT: &str = "\
Export data from a FHIR server with the Bulk Data $export operation (FHIR Bulk Data Access \
IG 2.0) into a folder (or an object-store prefix) that `fhirhouse load` reads as it is.

The export is asynchronous: fhirhouse kicks it off (Prefer: respond-async), polls the status \
URL the server gives (honouring Retry-After, showing X-Progress), then downloads the \
manifest's files in parallel, each verified: the body complete, every line whole, as many \
resources as the manifest's count. Files come gzip-compressed when the server offers it and \
are kept that way (Type.000.ndjson.gz). The server's error[] files (OperationOutcomes) are \
saved under error/ and summarised; deleted[] files (with --since) under deleted/. When all \
files are saved, manifest.json is written (relative URLs) and the job is deleted on the server.

Examples:

    fhirhouse export https://fhir.example.org/r4 --out export/
    fhirhouse load export/manifest.json --out warehouse

    fhirhouse export https://fhir.example.org/r4 --out export/ --type Patient,Observation \\
        --since 2025-01-01T00:00:00Z --type-filter 'Observation?category=laboratory'
    fhirhouse export https://fhir.example.org/r4 --group diabetes-cohort --out export/
    fhirhouse export https://fhir.example.org/r4 --patient --out s3://bucket/export/

SMART Backend Services (a server that needs authorisation): register the client's public key \
(a JWKS) with the server, then give the client id and the private key (PEM, or a JWKS file \
with the private members). The token endpoint is found in .well-known/smart-configuration; \
the assertion is signed RS384 (RSA key) or ES384 (P-384 key). Scopes default to SMART v2 \
system/*.rs (v1 system/*.read where the server only offers v1); --scope narrows them:

    fhirhouse export https://fhir.example.org/r4 --out export/ \\
        --client-id my-client --key private.pem --kid key-2025

Tokens are renewed before they expire and once after a 401; they never appear in logs.

Failures: network errors, timeouts, 429 and 5xx are retried (Retry-After honoured, else a \
capped exponential backoff with jitter); other errors stop the export at once and show the \
server's OperationOutcome, or why the request could not be sent (a URL that is not http or \
https, a redirect loop). Requests to one server share one budget (--requests-per-second), and a \
Retry-After pauses all of them. --deadline bounds the whole export.

Resuming: the folder keeps a small state file (.fhirhouse-export.json). Running the same \
command again after a crash, an outage or a failed file polls the same job or downloads only \
the files not yet saved. A file the server no longer has (404 or 410: servers keep an \
export's files for a limited time) only comes back with a new export, so the folder's files are \
discarded and a new export started: at once when the expired job was an earlier run's (once \
per run), else by the next run. Ctrl-C deletes the job on the server; the next run starts a \
new one. --restart discards what the folder holds.

Exit status: 0 when the export is complete, 2 when it is not (the message says why).";

/// Arguments of `fhirhouse export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The FHIR server's base URL, e.g. https://fhir.example.org/r4.
    #[arg(value_name = "FHIR_BASE_URL", value_parser = parse_server)]
    pub server: Url,

    /// Where to save the export: a folder (created if missing) or an object-store URL.
    #[arg(short, long, value_name = "DIR|URL")]
    pub out: Address,

    /// Only resources changed after this instant (_since), e.g. 2025-01-01T00:00:00Z.
    #[arg(long, value_name = "INSTANT")]
    pub since: Option<String>,

    /// What to export.
    #[command(flatten)]
    pub what: RequestArgs,

    /// How to talk to the server.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What to export, besides `_since` (shared with `fhirhouse sync`).
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Only these resource types (_type); repeat or separate with commas (spaces around them are ignored).
    #[arg(short = 't', long = "type", value_name = "TYPE", value_delimiter = ',')]
    pub types: Vec<String>,

    /// A FHIR search restricting one type (_typeFilter), e.g. 'Observation?status=final'; repeatable.
    #[arg(long = "type-filter", value_name = "QUERY")]
    pub type_filters: Vec<String>,

    /// Export the members of this Group (group level: [base]/Group/<id>/$export).
    #[arg(long, value_name = "ID", conflicts_with = "patient")]
    pub group: Option<String>,

    /// Export every patient's data (patient level: [base]/Patient/$export).
    #[arg(long)]
    pub patient: bool,

    /// Only these elements (_elements); repeat or separate with commas (spaces around them are ignored).
    #[arg(long, value_name = "ELEMENT", value_delimiter = ',')]
    pub elements: Vec<String>,
}

impl RequestArgs {
    /// The request to `server`, without `_since`.
    ///
    /// # Errors
    ///
    /// A `--type` or `--elements` item with whitespace inside, or one of them given with
    /// nothing in it.
    pub(super) fn request(&self, server: &Url) -> anyhow::Result<ExportRequest> {
        let level = match (&self.group, self.patient) {
            (Some(id), _) => Level::Group(id.clone()),
            (None, true) => Level::Patient,
            (None, false) => Level::System,
        };
        Ok(ExportRequest {
            server: server.clone(),
            level,
            types: comma_list("--type", "resource type", &self.types)?,
            since: None,
            type_filters: self.type_filters.clone(),
            elements: comma_list("--elements", "element", &self.elements)?,
        })
    }
}

/// The items of a comma-separated option as clap split them, trimmed, without the empty
/// ones a stray comma leaves (`--type "Patient, Observation,"`). The server would take a
/// space as part of a name, so whitespace inside an item is refused; so is an option given
/// with no item at all, which would otherwise silently mean "everything".
fn comma_list(option: &str, what: &str, items: &[String]) -> anyhow::Result<Vec<String>> {
    let mut kept = Vec::new();
    for item in items.iter().map(|item| item.trim()).filter(|item| !item.is_empty()) {
        if item.contains(char::is_whitespace) {
            anyhow::bail!("{option} {item:?}: a {what} cannot contain whitespace; separate several with commas");
        }
        kept.push(item.to_owned());
    }
    if kept.is_empty() && !items.is_empty() {
        anyhow::bail!("{option} was given without any {what}");
    }
    Ok(kept)
}

/// Parses a FHIR server's base URL, refusing at once a scheme no request could be sent with.
/// (clap shows the value itself, so the message does not repeat it.)
pub(crate) fn parse_server(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| e.to_string())?;
    check_server_url(&url).map_err(|_| format!("must start with http:// or https://, not {}:", url.scheme()))?;
    Ok(url)
}

/// How the client talks to the server (shared with `fhirhouse sync`).
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Files downloaded at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,

    /// Give up (and delete the job) if the export has not finished within this, e.g. 6h.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub deadline: Duration,

    /// Requests per second to the server, all requests together (0: no limit; a
    /// Retry-After is honoured either way).
    #[arg(long, value_name = "N", default_value_t = 10.0)]
    pub requests_per_second: f64,

    /// Do not ask for gzip-compressed files.
    #[arg(long)]
    pub no_gzip: bool,

    /// Discard an unfinished (or finished) export in the output folder and start anew.
    #[arg(long)]
    pub restart: bool,

    /// SMART Backend Services: the client id registered with the server.
    #[arg(long, value_name = "ID", requires = "key")]
    pub client_id: Option<String>,

    /// SMART Backend Services: the client's private key, PEM or JWKS (RS384 or ES384).
    #[arg(long, value_name = "PATH", requires = "client_id")]
    pub key: Option<PathBuf>,

    /// The key id: required with a PEM key; chooses the key of a JWKS with several.
    #[arg(long, value_name = "KID", requires = "key")]
    pub kid: Option<String>,

    /// The scopes to ask for, e.g. 'system/Patient.rs system/Observation.rs' [default: system/*.rs].
    #[arg(long, value_name = "SCOPES", requires = "key")]
    pub scope: Option<String>,

    /// The token endpoint [default: from <base>/.well-known/smart-configuration].
    #[arg(long, value_name = "URL", requires = "key")]
    pub token_url: Option<Url>,

    /// Renew the access token this long before it expires.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration, hide_short_help = true)]
    pub token_refresh: Duration,

    /// Tries per request before giving up on transient errors.
    #[arg(long, value_name = "N", default_value_t = 8, hide_short_help = true)]
    pub retries: u32,

    /// The first retry backoff (doubling up to --retry-max).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration, hide_short_help = true)]
    pub retry_initial: Duration,

    /// The longest retry backoff.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration, hide_short_help = true)]
    pub retry_max: Duration,

    /// The longest Retry-After honoured.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration, hide_short_help = true)]
    pub max_retry_after: Duration,

    /// The first wait between status polls without Retry-After (doubling up to --poll-max).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, hide_short_help = true)]
    pub poll_initial: Duration,

    /// The longest wait between status polls.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration, hide_short_help = true)]
    pub poll_max: Duration,

    /// The shortest wait between status polls, whatever Retry-After says.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration, hide_short_help = true)]
    pub poll_min: Duration,

    /// Time to connect to the server.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, hide_short_help = true)]
    pub connect_timeout: Duration,

    /// Longest silence while reading a response.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration, hide_short_help = true)]
    pub read_timeout: Duration,
}

impl ClientArgs {
    /// The export settings; reads the private key.
    pub(super) fn settings(&self, quiet: bool) -> anyhow::Result<ExportSettings> {
        let auth = match (&self.client_id, &self.key) {
            (Some(client_id), Some(key)) => Some(BackendServices {
                client_id: client_id.clone(),
                key: SigningKey::load(key, self.kid.as_deref())?,
                scope: self.scope.clone(),
                token_url: self.token_url.clone(),
                refresh_before: self.token_refresh,
            }),
            _ => None,
        };
        Ok(ExportSettings {
            concurrency: self.concurrency.max(1),
            deadline: self.deadline,
            retry: RetryPolicy {
                attempts: self.retries.max(1),
                initial_delay: self.retry_initial,
                max_delay: self.retry_max,
                max_retry_after: self.max_retry_after,
            },
            poll: PollPolicy { initial: self.poll_initial, max: self.poll_max, min: self.poll_min },
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
            requests_per_second: (self.requests_per_second > 0.0).then_some(self.requests_per_second),
            gzip: !self.no_gzip,
            auth,
            restart: self.restart,
            progress: !quiet,
        })
    }
}

/// Runs `fhirhouse export`.
pub(super) fn run(args: &ExportArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let mut request = args.what.request(&args.server)?;
    request.since.clone_from(&args.since);
    if let Some(since) = &request.since {
        chrono::DateTime::parse_from_rfc3339(since)
            .with_context(|| format!("--since {since:?} is not a FHIR instant like 2025-01-01T00:00:00Z"))?;
    }
    let exporter = Exporter::new(request, args.client.settings(quiet)?, &args.out)?;
    let outcome = export_until_interrupted(&exporter)?;
    if !quiet {
        say!("{}", outcome.summary());
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses a duration: a number with a unit (ms, s, m, h), e.g. 500ms, 30s, 5m, 24h.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 500ms, 30s, 5m or 24h"))?;
    let millis = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "" => return Err(format!("{text:?} needs a unit: ms, s, m or h")),
        other => return Err(format!("unknown duration unit {other:?} (use ms, s, m or h)")),
    };
    number.checked_mul(millis).map(Duration::from_millis).ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("10").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("1.5s").is_err());
    }

    #[derive(clap::Parser)]
    struct Parsed {
        #[command(flatten)]
        what: RequestArgs,
    }

    fn request(args: &[&str]) -> anyhow::Result<ExportRequest> {
        use clap::Parser as _;
        let parsed = Parsed::try_parse_from([&["fhirhouse"], args].concat())?;
        parsed.what.request(&Url::parse("https://fhir.example/r4").unwrap())
    }

    #[test]
    fn comma_lists_are_trimmed_and_refuse_whitespace_inside_an_item() {
        let parsed = request(&["--type", "Patient, Observation", "--type", " Condition ,", "--elements", " id , code"]);
        let parsed = parsed.unwrap();
        assert_eq!(parsed.types, ["Patient", "Observation", "Condition"]);
        assert_eq!(parsed.elements, ["id", "code"]);
        assert!(request(&[]).unwrap().types.is_empty());
        let err = request(&["--type", "Patient Observation"]).unwrap_err().to_string();
        assert_eq!(
            err,
            "--type \"Patient Observation\": a resource type cannot contain whitespace; separate several with commas"
        );
        let err = request(&["--elements", " , "]).unwrap_err().to_string();
        assert_eq!(err, "--elements was given without any element");
    }

    #[test]
    fn server_urls_must_be_http_or_https() {
        assert_eq!(parse_server("https://fhir.example/r4").unwrap().as_str(), "https://fhir.example/r4");
        assert_eq!(parse_server("ftp://x/fhir").unwrap_err(), "must start with http:// or https://, not ftp:");
        assert!(parse_server("fhir.example").is_err());
    }
}
