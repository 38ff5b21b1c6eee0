# Shell functions shared by the scripts that start local test servers (tests/s3/start-moto.sh,
# tests/bulk/start-sekmet.sh). Source it; it defines functions only.

# free_port PYTHON: prints a free TCP port of 127.0.0.1.
free_port() {
    "$1" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until_answers NAME PID LOG URL PYTHON TRIES: polls URL every 0.2 s, TRIES times, until it
# answers (status 0). Fails, with the server's log on standard error, when the process PID has
# exited or never answered (then it is killed).
wait_until_answers() {
    local name=$1 pid=$2 log=$3 url=$4 python=$5 tries=$6
    for _ in $(seq 1 "$tries"); do
        if "$python" -c "import urllib.request; urllib.request.urlopen('$url', timeout=1)" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "$name did not answer on $url in time; its log:" >&2
    cat "$log" >&2
    kill "$pid" 2>/dev/null || true
    return 1
}
