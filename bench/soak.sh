#!/usr/bin/env bash
#
# bench/soak.sh - the example servers under load for a long time: http_server under wrk, then kv_server under
# redis-benchmark (SET, GET, INCR, MSET, pipelined and not, keys spread with -r), each for SOAK_SECONDS (default
# 600). Reports the server's RSS after a warm-up (5 s of wrk; kv_server: the first round of redis-benchmark runs,
# which fills the key space) and at the end, and the errors the clients saw; fails if there
# was an error or if RSS grew by more than SOAK_RSS_SLACK_KB (default 16384) after the warm-up.
#   bench/soak.sh                  SOAK_SECONDS=60 bench/soak.sh
# Needs wrk and redis-tools (installed from Debian when missing and root). Loopback, free ports.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-servers-bench}
secs=${SOAK_SECONDS:-600}
slack=${SOAK_RSS_SLACK_KB:-16384}
for p in wrk:wrk redis-benchmark:redis-tools; do
	command -v "${p%%:*}" >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq --no-install-recommends "${p##*:}" >/dev/null; }
done
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFIBER_BUILD_TESTS=OFF -DFIBER_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target http_server kv_server >/dev/null
out=$BUILD/soak-out
mkdir -p "$out"
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true' EXIT
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
start() { # start BIN ARGS...: sets pid and port
	"$@" --port 0 >"$out/server.out" 2>"$out/server.err" &
	pid=$!
	for _ in $(seq 100); do
		port=$(sed -n 's/.* port \([0-9]*\),.*/\1/p' "$out/server.out")
		[ -n "$port" ] && return
		sleep 0.1
	done
	echo "server did not start" >&2
	exit 1
}
fails=0
verdict() { # verdict NAME RSS0 RSS1 ERRORS
	local grow=$(($3 - $2))
	echo "$1: RSS after warm-up ${2} kB, at the end ${3} kB (${grow} kB), client errors $4"
	if [ "$4" != 0 ] || [ "$grow" -gt "$slack" ]; then
		echo "$1: FAIL"
		fails=$((fails + 1))
	fi
}

echo "== http_server under wrk -t1 -c200 for ${secs}s =="
start "$BUILD/examples/http_server" --workers 2
wrk -t1 -c200 -d5s "http://127.0.0.1:$port/" >/dev/null # warm-up
r0=$(rss_kb "$pid")
wrk -t1 -c200 -d"${secs}s" "http://127.0.0.1:$port/" >"$out/wrk.txt"
r1=$(rss_kb "$pid")
cat "$out/wrk.txt"
errs=$(awk '/Socket errors/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 } /Non-2xx/ { print $4 }' "$out/wrk.txt" | awk '{ s += $1 } END { print s + 0 }')
kill -TERM "$pid"
wait "$pid" || errs=$((errs + 1000000))
pid=
tail -1 "$out/server.err"
verdict http_server "$r0" "$r1" "$errs"

echo "== kv_server under redis-benchmark for ${secs}s =="
start "$BUILD/examples/kv_server" --workers 2
end=$((SECONDS + secs))
r0=
errs=0
rounds=0
while [ "$SECONDS" -lt "$end" ]; do
	for args in "-c 50 -P 1" "-c 50 -P 16" "-c 500 -P 1"; do
		# shellcheck disable=SC2086
		if ! o=$(redis-benchmark -p "$port" -t set,get,incr,mset -n 100000 -r 100000 $args -q 2>&1); then
			errs=$((errs + 1))
		fi
		echo "$o" | tr '\r' '\n' | grep -qiE 'error|refused|reset' && errs=$((errs + 1))
	done
	rounds=$((rounds + 1))
	# the first round is the warm-up: it fills the key space (3 x 100000 keys: SET/GET, INCR, MSET)
	[ -n "$r0" ] || r0=$(rss_kb "$pid")
done
r1=$(rss_kb "$pid")
echo "$rounds rounds of redis-benchmark"
kill -TERM "$pid"
wait "$pid" || errs=$((errs + 1000000))
pid=
tail -1 "$out/server.err"
verdict kv_server "$r0" "$r1" "$errs"
[ "$fails" = 0 ] && echo "soak: passed" || { echo "soak: $fails failure(s)"; exit 1; }
