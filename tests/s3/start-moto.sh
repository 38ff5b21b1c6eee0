#!/usr/bin/env bash
# Starts a local S3-compatible server (moto's server, from PyPI) for engine/tests/load_s3.rs.
#
#   endpoint=$(tests/s3/start-moto.sh /tmp/moto.pid) && export FHIRHOUSE_S3_ENDPOINT=$endpoint
#   ...; kill "$(cat /tmp/moto.pid)"
#
# Installs moto[server] into a virtual environment under $HOME/.cache/fhirhouse/moto the
# first time (needs python3 with venv and access to PyPI), starts it on a free port of
# 127.0.0.1, waits until it answers, and prints its endpoint URL on standard output. The
# server's process id goes to the file named by the first argument, if given. Progress and
# errors go to standard error; the exit status is non-zero when the server cannot start.
set -euo pipefail

venv="${FHIRHOUSE_MOTO_VENV:-$HOME/.cache/fhirhouse/moto}"
pid_file="${1:-}"
log="${TMPDIR:-/tmp}/fhirhouse-moto-$$.log"

if [[ ! -x "$venv/bin/moto_server" ]]; then
    command -v python3 >/dev/null || { echo "start-moto: python3 not found" >&2; exit 1; }
    echo "start-moto: installing moto[server] into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5,<6' >&2
fi

source "$(dirname "$0")/../lib/servers.sh"
port=$(free_port "$venv/bin/python")
# setsid and a log file: the server must outlive this script and must not hold its stdout
# (a caller reading the endpoint with $(...) would otherwise wait for the server to exit).
setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 </dev/null &
pid=$!
[[ -n "$pid_file" ]] && echo "$pid" >"$pid_file"

endpoint="http://127.0.0.1:$port"
wait_until_answers "start-moto: moto_server" "$pid" "$log" "$endpoint/moto-api/" "$venv/bin/python" 100
echo "start-moto: moto_server (pid $pid) listening on $endpoint, log $log" >&2
echo "$endpoint"
