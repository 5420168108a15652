#!/usr/bin/env bash
#
# bench/servers.sh - the example servers against the servers their users already run, in one run, side by side:
#   (a) examples/http_server vs nginx: the same 13-byte "Hello, World!" text/plain body, keep-alive,
#       wrk -t1 -c50 and -c500, 1 and 2 workers / worker_processes 1 and 2;
#   (b) examples/kv_server vs redis-server: redis-benchmark -t set,get -c 50, -P 1 and -P 16; kv_server with 1 and
#       2 workers against the single-threaded redis-server.
# For each row: requests per second, requests per server CPU-second (user + system time of the server's
# processes, from /proc, over the measured run) and p99 latency, with libfiber / baseline ratios.
#
# usage: bench/servers.sh [--full]
#   default   short runs (wrk -d 5s, redis-benchmark -n 200000): a loaded 2-CPU machine, minutes in all
#   --full    the issue's sizes (wrk -d 15s, redis-benchmark -n 1000000)
# Environment: BENCH_NO_INSTALL=1 never apt-get installs; BENCH_BUILD_DIR (default build-servers-bench);
# SERVERS_BENCH_DUR (wrk seconds) and SERVERS_BENCH_N (redis-benchmark requests) override the sizes.
# Writes bench/results/servers.md (the table and the machine) and keeps raw output in $BENCH_BUILD_DIR/servers-out/.
#
# Client and server share the machine: the clients' CPU time is not counted, but it is taken from the same CPUs,
# so absolute figures are low; the ratios are the point. Everything listens on 127.0.0.1, on free ports.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-servers-bench}
OUT=$BUILD/servers-out
RES=$ROOT/bench/results/servers.md
DUR=${SERVERS_BENCH_DUR:-5}
N=${SERVERS_BENCH_N:-200000}
if [ "${1:-}" = "--full" ]; then
	DUR=15
	N=1000000
fi

need=()
for p in wrk:wrk redis-benchmark:redis-tools redis-server:redis-server nginx:nginx-light; do
	command -v "${p%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${p%%:*}" ] || need+=("${p##*:}")
done
dpkg -s libhttp-parser-dev >/dev/null 2>&1 || need+=(libhttp-parser-dev)
if [ ${#need[@]} -gt 0 ]; then
	if [ "${BENCH_NO_INSTALL:-}" = 1 ] || [ "$(id -u)" != 0 ]; then
		echo "missing: ${need[*]} (install them, or run as root)" >&2
		exit 1
	fi
	echo "installing: ${need[*]}"
	apt-get update -qq
	# policy-rc.d: the packages' services are not started (we start our own instances on free ports)
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.servers-bench
	chmod +x /usr/sbin/policy-rc.d.servers-bench
	[ -e /usr/sbin/policy-rc.d ] || ln -s policy-rc.d.servers-bench /usr/sbin/policy-rc.d
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	[ "$(readlink /usr/sbin/policy-rc.d 2>/dev/null)" = policy-rc.d.servers-bench ] && rm -f /usr/sbin/policy-rc.d
	rm -f /usr/sbin/policy-rc.d.servers-bench
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "== building the example servers (Release) in $BUILD =="
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFIBER_BUILD_TESTS=OFF -DFIBER_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target http_server kv_server >/dev/null
rm -rf "$OUT"
mkdir -p "$OUT"

PIDS=()
# On any exit: every server this script started, and its children (nginx's workers would outlive a killed master).
cleanup() {
	local p c
	for p in "${PIDS[@]}"; do
		for c in $(pgrep -P "$p" 2>/dev/null || true); do kill -KILL "$c" 2>/dev/null || true; done
		kill -KILL "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT

# A port below the kernel's ephemeral range (outgoing connections cannot be holding it) that nothing listens on.
free_port() {
	local p lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
	while :; do
		p=$((10000 + RANDOM % (lo - 10000)))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

wait_port() { # wait_port PORT
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "nothing listens on port $1" >&2
	return 1
}

# CPU ticks (user + system) of a process and all its children that are alive now.
cpu_ticks() {
	local total=0 pid
	for pid in "$1" $(pgrep -P "$1" || true); do
		[ -r "/proc/$pid/stat" ] || continue
		# fields 14 and 15 after the ")" that ends the command name
		total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')))
	done
	echo "$total"
}
HZ=$(getconf CLK_TCK)

# measure NAME PID CMD...: run the client; print "req/s req/CPU-s p99_ms" from its output and the server's CPU
# time over the run. Client output parsers: wrk --latency, and redis-benchmark --csv (test $BENCH_TEST, $N requests).
measure() {
	local name=$1 pid=$2 c0 c1 out rps p99 total
	shift 2
	c0=$(cpu_ticks "$pid")
	"$@" >"$OUT/$name.txt" 2>&1 || { echo "client failed: $*" >&2; cat "$OUT/$name.txt" >&2; }
	c1=$(cpu_ticks "$pid")
	out=$OUT/$name.txt
	if [ "$1" = wrk ]; then
		rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
		total=$(awk '/ requests in / { print $1 }' "$out")
		p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) sub(/ms/, "", v);
			else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } print v }' "$out")
		if grep -qE 'Socket errors|Non-2xx' "$out"; then echo "$name: $(grep -E 'Socket errors|Non-2xx' "$out")" >&2; fi
	else
		# "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
		rps=$(awk -F'"' -v t="$BENCH_TEST" '$2 == t { print $4 }' "$out")
		p99=$(awk -F'"' -v t="$BENCH_TEST" '$2 == t { print $14 }' "$out")
		total=$N
	fi
	awk -v r="${rps:-0}" -v n="${total:-0}" -v t=$((c1 - c0)) -v hz="$HZ" -v p="${p99:-0}" \
		'BEGIN { printf "%s %.0f %s\n", r, (t > 0 ? n * hz / t : 0), p }'
}

ROWS=()
# row CASE LIBFIBER BASELINE: each "req/s req/CPU-s p99_ms"
row() {
	ROWS+=("$(awk -v c="$1" -v a="$2" -v b="$3" 'BEGIN {
		split(a, x, " "); split(b, y, " ");
		printf "| %s | %.0f | %.0f | %.2fx | %.0f | %.0f | %.2fx | %.2f | %.2f |", c, x[1], y[1], (y[1] > 0 ? x[1] / y[1] : 0),
			x[2], y[2], (y[2] > 0 ? x[2] / y[2] : 0), x[3], y[3] }')")
	echo "${ROWS[-1]}"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== (a) http_server vs nginx: wrk -t1 -d${DUR}s, keep-alive, 13-byte body =="
for w in 1 2; do
	hp=$(free_port)
	"$BUILD/examples/http_server" --port "$hp" --workers "$w" --max-conns 20000 >"$OUT/http_server.$w.log" 2>&1 &
	hpid=$!
	PIDS+=("$hpid")
	np=$(free_port)
	mkdir -p "$OUT/nginx.$w"
	cat >"$OUT/nginx.$w/nginx.conf" <<EOF
worker_processes $w;
daemon off;
pid $OUT/nginx.$w/nginx.pid;
error_log $OUT/nginx.$w/error.log warn;
events { worker_connections 20000; }
http {
	access_log off;
	keepalive_requests 100000000;
	client_body_temp_path $OUT/nginx.$w;
	proxy_temp_path $OUT/nginx.$w;
	fastcgi_temp_path $OUT/nginx.$w;
	uwsgi_temp_path $OUT/nginx.$w;
	scgi_temp_path $OUT/nginx.$w;
	server {
		listen 127.0.0.1:$np;
		location / { default_type text/plain; return 200 "Hello, World!"; }
	}
}
EOF
	"$NGINX" -p "$OUT/nginx.$w" -c "$OUT/nginx.$w/nginx.conf" -e "$OUT/nginx.$w/error.log" >"$OUT/nginx.$w.log" 2>&1 &
	npid=$!
	PIDS+=("$npid")
	wait_port "$hp"
	wait_port "$np"
	curl -s "http://127.0.0.1:$hp/" | grep -q '^Hello, World!$'
	curl -s "http://127.0.0.1:$np/" | grep -q '^Hello, World!$'
	for c in 50 500; do
		a=$(measure "wrk.http_server.w$w.c$c" "$hpid" wrk -t1 -c"$c" -d"${DUR}s" --latency "http://127.0.0.1:$hp/")
		b=$(measure "wrk.nginx.w$w.c$c" "$npid" wrk -t1 -c"$c" -d"${DUR}s" --latency "http://127.0.0.1:$np/")
		row "HTTP wrk -c$c, $w worker(s)" "$a" "$b"
	done
	# what the per-call I/O timeouts cost: the same server with --idle-timeout 0 --header-timeout 0
	hp2=$(free_port)
	"$BUILD/examples/http_server" --port "$hp2" --workers "$w" --max-conns 20000 --idle-timeout 0 \
		--header-timeout 0 >"$OUT/http_server.$w.nt.log" 2>&1 &
	hpid2=$!
	PIDS+=("$hpid2")
	wait_port "$hp2"
	a=$(measure "wrk.http_server.w$w.c500.nt" "$hpid2" wrk -t1 -c500 -d"${DUR}s" --latency "http://127.0.0.1:$hp2/")
	row "HTTP wrk -c500, $w worker(s), http_server without I/O timeouts" "$a" "$b"
	kill -TERM "$hpid2"
	wait "$hpid2" 2>/dev/null || true
	kill -TERM "$hpid" "$npid"
	wait "$hpid" "$npid" 2>/dev/null || true
done

echo "== (b) kv_server vs redis-server: redis-benchmark -n $N -c 50 =="
rp=$(free_port)
redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no --protected-mode no --daemonize no \
	--logfile "$OUT/redis.log" >/dev/null 2>&1 &
rpid=$!
PIDS+=("$rpid")
wait_port "$rp"
for w in 1 2; do
	kp=$(free_port)
	"$BUILD/examples/kv_server" --port "$kp" --workers "$w" >"$OUT/kv_server.$w.log" 2>&1 &
	kpid=$!
	PIDS+=("$kpid")
	wait_port "$kp"
	for P in 1 16; do
		for t in set get; do
			BENCH_TEST=${t^^}
			a=$(measure "rb.kv_server.w$w.P$P.$t" "$kpid" redis-benchmark -p "$kp" -t "$t" -n "$N" -c 50 -P "$P" --csv)
			b=$(measure "rb.redis.w$w.P$P.$t" "$rpid" redis-benchmark -p "$rp" -t "$t" -n "$N" -c 50 -P "$P" --csv)
			row "RESP ${t^^} -P$P, kv_server $w worker(s) vs redis" "$a" "$b"
		done
	done
	kill -TERM "$kpid"
	wait "$kpid" 2>/dev/null || true
done
kill -TERM "$rpid"
wait "$rpid" 2>/dev/null || true

{
	echo "# Example servers against nginx and redis-server"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), nproc $(nproc), kernel $(uname -r);"
	echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), wrk $(wrk -v 2>&1 | head -1 | awk '{ print $2 }');"
	echo "bench/servers.sh ${1:-} (wrk -d ${DUR}s, redis-benchmark -n $N). Clients and servers share the machine's CPUs;"
	echo "load average before the run $LOAD0, after it $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine counts)."
	echo
	echo "| case | libfiber req/s | baseline req/s | ratio | libfiber req/CPU-s | baseline req/CPU-s | ratio | libfiber p99 ms | baseline p99 ms |"
	echo "|---|---|---|---|---|---|---|---|---|"
	printf '%s\n' "${ROWS[@]}"
	echo
	echo "ratio = libfiber / baseline (above 1.00x: libfiber does more). req/CPU-s = requests / (user + system CPU"
	echo "seconds of the server's processes during the run). HTTP: http_server --workers N vs nginx worker_processes N."
	echo "RESP: kv_server --workers N vs one redis-server (single-threaded). \"without I/O timeouts\": http_server with"
	echo "--idle-timeout 0 --header-timeout 0 (no fiber_io_timeout on its reads and writes), against the nginx run above it."
} >"$RES"
echo
cat "$RES"
