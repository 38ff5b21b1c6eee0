#!/usr/bin/env bash
# Starts a real third-party FHIR Bulk Data server for engine/tests/bulk_sekmet.rs: SEKMET
# (PyPI package sekmet-fhir, Apache-2.0), a FastAPI micro hospital system that serves
# $export (system, patient and group level, _type, _since, _typeFilter) and a SMART Backend
# Services token endpoint (RS384/ES384 client assertions, SMART v1 and v2 scopes).
#
#   url=$(tests/bulk/start-sekmet.sh /tmp/sekmet.pid) && export FHIRHOUSE_SEKMET_URL=$url
#   ...; kill "$(cat /tmp/sekmet.pid)"
#
# Installs sekmet-fhir (pinned) into a virtual environment under $HOME/.cache/fhirhouse/sekmet
# the first time (needs python3 >= 3.11 with venv and access to PyPI), writes its settings into
# a fresh data folder: inbound auth by SMART Backend Services for the clients `fhirhouse-test-rsa`
# and `fhirhouse-test-ec` (the test-only public keys of tests/data/keys/public.jwks.json, one
# each) and by the static bearer
# token `fhirhouse-test-loader` (what the test loads its data with), validation off. Starts it
# on a free port of 127.0.0.1, waits until it answers, and prints its FHIR base URL on standard
# output. The server's process id goes to the file named by the first argument, if given.
# Progress and errors go to standard error; the exit status is non-zero when it cannot start.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${FHIRHOUSE_SEKMET_VENV:-$HOME/.cache/fhirhouse/sekmet}"
pid_file="${1:-}"
data="$(mktemp -d "${TMPDIR:-/tmp}/fhirhouse-sekmet-XXXXXX")"
log="$data/server.log"

if [[ ! -x "$venv/bin/sekmet" ]]; then
    command -v python3 >/dev/null || { echo "start-sekmet: python3 not found" >&2; exit 1; }
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "start-sekmet: sekmet-fhir needs Python 3.11 or later, found $(python3 --version)" >&2
        exit 1
    }
    echo "start-sekmet: installing sekmet-fhir into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'sekmet-fhir==0.1.1' >&2
fi

source "$root/tests/lib/servers.sh"
port=$(free_port "$venv/bin/python")
base="http://127.0.0.1:$port/fhir"
"$venv/bin/python" - "$data/settings.yaml" "$base" "$port" "$data" "$root/tests/data/keys/public.jwks.json" <<'PY'
import json, sys
path, base, port, data, jwks = sys.argv[1:]
settings = {
    "base_url": base, "host": "127.0.0.1", "port": int(port), "data_dir": data,
    "server_auth": {
        "types": ["smart", "bearer"],
        "tokens": ["fhirhouse-test-loader"],
        # One client per key: SEKMET 0.1.1 tries every registered key of a client, not the
        # one the assertion's kid names, and answers 500 when an RSA key meets an ES384 token.
        "smart_clients": [
            {"client_id": f"fhirhouse-test-{key['kty'].lower()}", "jwks": {"keys": [key]},
             "scopes": "system/*.rs system/*.read"}
            for key in json.load(open(jwks))["keys"]
        ],
        "token_lifetime": 300,
        "enforce_scopes": True,
    },
    "validation": {"inbound": "off"},
    "simulator": {"enabled": False, "delay_seconds": 0.2},
    "log_inbound": False,
}
# JSON is YAML: no PyYAML needed here.
open(path, "w").write(json.dumps(settings, indent=1))
PY

# setsid and a log file: the server must outlive this script and must not hold its stdout.
(cd "$data" && exec setsid "$venv/bin/sekmet" serve --config "$data/settings.yaml" >"$log" 2>&1 </dev/null) &
pid=$!
[[ -n "$pid_file" ]] && echo "$pid" >"$pid_file"

wait_until_answers "start-sekmet: sekmet" "$pid" "$log" "$base/.well-known/smart-configuration" "$venv/bin/python" 150
echo "start-sekmet: sekmet (pid $pid) serving $base, data and log in $data" >&2
echo "$base"
