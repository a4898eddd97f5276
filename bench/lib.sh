# Shared helpers for bench/compare, bench/sessions_memory, bench/logins and
# bench/login_storm (sourced, not run). Everything listens on 127.0.0.1 and every process
# started here is stopped on exit.
# shellcheck shell=bash
# Variables set here are read by the scripts that source this file.
# shellcheck disable=SC2034

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
# Cargo's target directory (CARGO_TARGET_DIR, as cargo reads it).
BIN=${CARGO_TARGET_DIR:-target}/release/vigile
EX=${CARGO_TARGET_DIR:-target}/release/examples
THREADS=$(nproc)
HZ=$(getconf CLK_TCK)
STAMP=$(date -u +%Y-%m-%d)
# Where the Markdown results go (BENCH_RESULTS=/tmp/x for a trial run).
RESULTS=${BENCH_RESULTS:-bench/results}

# bench_need CMD:PACKAGE...: installs what is missing when run as root (Debian), otherwise
# prints the apt-get command and stops, like scripts/test.
bench_need() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    ((${#missing[@]})) || return 0
    local install=(apt-get install -y --no-install-recommends "${missing[@]}")
    if [[ $(id -u) -eq 0 ]]; then
        echo "bench: installing ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null
    else
        echo "bench: missing ${missing[*]}; as root run:" >&2
        echo "  apt-get update && ${install[*]}" >&2
        exit 1
    fi
}

# One release build for every binary the benchmarks start; BENCH_SKIP_BUILD=1 (set by
# bench/all after its own build) reuses it, so all scripts measure the same code.
bench_build() {
    [[ ${BENCH_SKIP_BUILD:-} == 1 ]] && return 0
    cargo build --release --quiet --bin vigile --example bench_upstream --example bare_proxy \
        --example seed_sessions --example bench_storm
}

WORK=$(mktemp -d)
PIDS=()
bench_cleanup() {
    local p
    # SIGINT first: Pingora's and nginx's fast shutdown (on SIGTERM, Pingora waits out its
    # grace period). Background jobs of a script ignore SIGINT unless they handle it, so
    # SIGTERM then stops the others (the upstream).
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap bench_cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# wait_http URL: up to 20 s (WAIT_TRIES tenths of a second; more under Valgrind).
wait_http() {
    local _
    for _ in $(seq "${WAIT_TRIES:-200}"); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
    echo "no answer from $1" >&2
    exit 1
}

# A process and its children (nginx: master + workers).
with_children() { local p; for p in "$@"; do echo "$p"; pgrep -P "$p" || true; done; }
# CPU time (user+system, clock ticks) used so far by the given processes together.
cpu_ticks() { local p t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
# Resident memory (KiB) of the given processes together.
rss_kib() { local p t=0; for p in "$@"; do t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done; echo "$t"; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }

# wrk --latency output -> "rps p99_ms requests non2xx socket_errors".
wrk_parse() {
    awk '
        /Requests\/sec/ {rps=$2}
        /requests in/ {n=$1}
        /Non-2xx/ {bad=$NF}
        /Socket errors/ {gsub(/[^0-9 ]/, ""); split($0, e, " "); err=e[1]+e[2]+e[3]+e[4]}
        $1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; p99=v}
        END {printf "%s %s %s %d %d\n", rps, p99, n, bad, err}'
}

# run_wrk URL [COOKIE] -> "rps p99_ms cpu_us_per_request", the CPU being that of the
# processes in CPU_PIDS (a space-separated list; empty: 0). Extra wrk options in WRK_OPTS.
# Any non-2xx answer or socket error aborts the benchmark: it would not measure the path.
run_wrk() {
    local args
    read -ra args <<<"${WRK_OPTS:--t2 -c64}"
    args+=(-d"$DURATION" --latency)
    [[ -n ${2:-} ]] && args+=(-H "Cookie: $2")
    local pids; read -ra pids <<<"${CPU_PIDS:-}"
    local t0=0 t1=0
    ((${#pids[@]})) && t0=$(cpu_ticks "${pids[@]}")
    local out; out=$(wrk "${args[@]}" "$1")
    ((${#pids[@]})) && t1=$(cpu_ticks "${pids[@]}")
    local rps p99 n bad err
    read -r rps p99 n bad err < <(wrk_parse <<<"$out")
    if ((bad > 0 || err > 0)); then
        echo "wrk at $1: $bad non-2xx answers, $err socket errors" >&2
        echo "$out" >&2
        exit 1
    fi
    awk -v r="$rps" -v p="$p99" -v d=$((t1 - t0)) -v n="$n" -v hz="$HZ" \
        'BEGIN{printf "%s %s %.1f\n", r, p, d*1e6/hz/n}'
}

# paired A B FIELD: A and B name arrays of "rps p99_ms cpu_us" lines from the same rounds;
# the ratio A[i]/B[i] of FIELD (1 rps, 2 p99, 3 CPU) in each round -> "median min max".
# On a shared machine throughput drifts between runs; a ratio of two runs next to each
# other cancels most of the drift that a ratio of separate medians keeps.
paired() {
    local -n pa=$1 pb=$2
    local f=$3 i
    for i in "${!pa[@]}"; do
        awk -v x="$(cut -d' ' -f"$f" <<<"${pa[i]}")" -v y="$(cut -d' ' -f"$f" <<<"${pb[i]}")" \
            'BEGIN{printf "%.4f\n", x/y}'
    done | sort -g | awk '{v[NR]=$1} END {printf "%s %s %s\n", v[int((NR+1)/2)], v[1], v[NR]}'
}
# "median min max" ratios -> "94% (88-97%)" / "1.05x (1.01-1.10x)".
pct_range() { awk -v m="$1" -v a="$2" -v b="$3" 'BEGIN{printf "%.0f%% (%.0f-%.0f%%)", 100*m, 100*a, 100*b}'; }
x_range() { awk -v m="$1" -v a="$2" -v b="$3" 'BEGIN{printf "%.2f× (%.2f-%.2f×)", m, a, b}'; }

# "rps ..." lines -> the one with the median rps.
median() { printf '%s\n' "$@" | sort -n -k1,1 | awk '{l[NR]=$0} END {print l[int((NR+1)/2)]}'; }
# Median of a list of numbers.
median_num() { printf '%s\n' "$@" | sort -g | awk '{l[NR]=$0} END {print l[int((NR+1)/2)]}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f%%", 100*a/b}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

start_upstream() { # -> UP
    UP=$(free_port)
    "$EX/bench_upstream" "$UP" & PIDS+=($!)
    UP_PID=$!
    wait_http "http://127.0.0.1:$UP/"
}

start_redis() { # -> REDIS_PORT, REDIS_PID
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" & PIDS+=($!)
    REDIS_PID=$!
    local _
    for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "redis-server did not start" >&2
    exit 1
}

# use_store BACKEND -> STORE (a store URL; starts a fresh redis-server for "redis", else a
# new SQLite file).
use_store() {
    if [[ $1 == redis ]]; then
        start_redis
        STORE="redis://127.0.0.1:$REDIS_PORT/0"
    else
        STORE="sqlite://$WORK/$1-$RANDOM.db"
    fi
}

# start_gateway NAME STORE_URL [EXTRA_TOML] -> GW (port), MET (metrics port), GW_PID, GW_CONF
start_gateway() {
    GW=$(free_port)
    MET=$(free_port)
    GW_CONF="$WORK/$1.toml"
    cat >"$GW_CONF" <<TOML
[server]
listen = "127.0.0.1:$GW"
public_url = "http://127.0.0.1:$GW"
threads = $THREADS
[upstream]
url = "http://127.0.0.1:$UP"
[store]
url = "$2"
[metrics]
listen = "127.0.0.1:$MET"
${3:-}
TOML
    VIGILE_LOG=warn $BIN serve --config "$GW_CONF" 2>"$WORK/$1.log" & PIDS+=($!)
    GW_PID=$!
    wait_http "http://127.0.0.1:$MET/readyz"
}

stop_pid() { # PID: stop a process started here (SIGINT, then SIGTERM, as above)
    kill -INT "$1" 2>/dev/null || true
    local _
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

add_user() { # EMAIL (password "Bench-mark 1 password!")
    echo 'Bench-mark 1 password!' | $BIN user add "$1" --config "$GW_CONF" >/dev/null
}

# login_form JAR -> CSRF (the login form's token), and the jar holds the device cookie.
login_form() {
    curl -fs -c "$1" "http://127.0.0.1:$GW/_vigile/login" |
        sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1
}
cookie_of() { awk -v n="$2" '$6==n {print $7}' "$1"; }

# login EMAIL JAR -> signs in through the form; TOKEN (session) and DEVICE, CSRF set.
login() {
    CSRF=$(login_form "$2")
    curl -fs -o /dev/null -b "$2" -c "$2" --data-urlencode "email=$1" \
        --data-urlencode "password=Bench-mark 1 password!" --data-urlencode "csrf=$CSRF" \
        "http://127.0.0.1:$GW/_vigile/login"
    TOKEN=$(cookie_of "$2" vigile_session)
    DEVICE=$(cookie_of "$2" vigile_device)
    [[ -n $TOKEN && -n $DEVICE ]] || { echo "login failed for $1" >&2; exit 1; }
}

# metric NAME_WITH_LABELS -> its value on the gateway's /metrics (0 if absent).
metric() {
    curl -fs "http://127.0.0.1:$MET/metrics" | awk -v m="$1" '$1==m {v=$2} END {print v+0}'
}

start_bare() { # -> BARE (port), BARE_PID
    BARE=$(free_port)
    "$EX/bare_proxy" "127.0.0.1:$BARE" "127.0.0.1:$UP" "$THREADS" 2>"$WORK/bare.log" & PIDS+=($!)
    BARE_PID=$!
    wait_http "http://127.0.0.1:$BARE/"
}

# nginx in the foreground as our child, with its own prefix, pid file and temp dirs.
start_nginx() { # -> NGX (port), NGX_PID
    NGX=$(free_port)
    local d="$WORK/nginx"
    mkdir -p "$d/tmp"
    cat >"$d/nginx.conf" <<CONF
worker_processes $THREADS;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    # Like Pingora: keep client connections for as many requests as they send.
    keepalive_requests 1000000;
    upstream app {
        server 127.0.0.1:$UP;
        keepalive 128;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$NGX;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
    nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;' & PIDS+=($!)
    NGX_PID=$!
    wait_http "http://127.0.0.1:$NGX/"
}

machine_line() {
    local model mem
    model=$(lscpu | awk -F: '{gsub(/^ +/, "", $2)} $1=="Model name" {m=$2} $1=="CPU family" {f=$2} $1=="Model" {n=$2} $1=="Hypervisor vendor" {h=", " $2 " guest"} END {printf "%s, family %s model %s%s", m, f, n, h}')
    mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
    echo "Machine: $(nproc) cores ($model), $mem, Linux $(uname -r); $(date -u '+%Y-%m-%d %H:%M UTC'); release build of $(date -u -r "$BIN" '+%H:%M UTC'), HEAD now $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' (with uncommitted changes in src/)')"
}
