#!/usr/bin/env bash
#
# bench/kv_counts.sh - counts per request of examples/kv_server under redis-benchmark that do not depend on timing
# noise as much as a wall-clock run (bench/echo_counts.sh does the same for the echo server): the server's CPU time,
# context switches, migrations and system calls by tracepoint (perf stat), the client's CPU time, and libfiber's
# own counters (fiber_dump: switches, balance moves, io_uring_enter calls, submissions).
#
#	bench/kv_counts.sh WORKERS [TEST] [P] [N1 N2]
#
# TEST: a redis-benchmark test (default get), P: its pipeline depth (default 1). The server runs twice, serving
# redis-benchmark -c 50 -n N1, then -n N2 (default 50000 and 150000); every figure is (run 2 - run 1) / (N2 - N1),
# so start-up, connection set-up and shutdown cancel out. Run it on a quiet machine (CPU time and switch counts
# depend on what else runs). Environment: BIN (default build-rel), OUT (default /tmp/kv-counts).

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/build-rel}
OUT=${OUT:-/tmp/kv-counts}
WORKERS=$1 TEST=${2:-get} P=${3:-1} N1=${4:-50000} N2=${5:-150000}
mkdir -p "$OUT"
EVENTS=task-clock,context-switches,cpu-migrations,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_write,\
syscalls:sys_enter_read,syscalls:sys_enter_futex,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,\
syscalls:sys_enter_sched_yield,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_poll,syscalls:sys_enter_ppoll,\
syscalls:sys_enter_clock_nanosleep,syscalls:sys_enter_accept4

# run N: leaves this run's figures in $OUT/<tag>.{perf,client,log}
run() {
	local n=$1 tag=kv-$WORKERS-$TEST-P$P-$1 port=$((20000 + RANDOM % 10000)) pid spid
	FIBER_DUMP_SIGNAL=SIGUSR1 perf stat -x, -o "$OUT/$tag.perf" -e "$EVENTS" \
		"$BIN/examples/kv_server" --port "$port" --workers "$WORKERS" >"$OUT/$tag.log" 2>&1 &
	spid=$!
	for _ in $(seq 200); do
		(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
		sleep 0.1
	done
	perf stat -x, -o "$OUT/$tag.client" -e task-clock \
		redis-benchmark -p "$port" -t "$TEST" -n "$n" -c 50 -P "$P" -q >"$OUT/$tag.rb" 2>&1 || echo "client failed" >&2
	pid=$(pgrep -P "$spid" | head -1)
	kill -USR1 "$pid"
	sleep 0.5
	kill -TERM "$pid"
	wait "$spid"
}

run "$N1"
run "$N2"
t1=kv-$WORKERS-$TEST-P$P-$N1 t2=kv-$WORKERS-$TEST-P$P-$N2
reqs=$((N2 - N1))
echo "== kv_server, $WORKERS worker(s), redis-benchmark -t $TEST -c 50 -P $P: per request (run -n $N2 - run -n $N1)"
echo "  client: $(tr '\r' '\n' <"$OUT/$t2.rb" | grep 'requests per second' | tail -1)"
# perf stat -x,: "value,unit,event,..."
for f in perf client; do
	join -t, -j1 <(awk -F, '$1 ~ /^[0-9.]+$/ { print $3 "," $1 }' "$OUT/$t1.$f" | sort) \
		<(awk -F, '$1 ~ /^[0-9.]+$/ { print $3 "," $1 }' "$OUT/$t2.$f" | sort) |
		awk -F, -v n="$reqs" -v who="$f" '{ u = $1 == "task-clock" ? 1e3 : 1; v = ($3 - $2) * u / n
			if (v != 0 || $1 == "task-clock") printf "  %-6s %-40s %8.3f%s\n", who == "perf" ? "server" : "client",
			$1, v, $1 == "task-clock" ? " us CPU" : "" }'
done
for t in "$t1" "$t2"; do
	awk '/^totals:/ { sw = $5; pl = $11 } /io_uring: setup/ { s += $10; e += $14 } END { print sw, s, e, pl }' \
		FS='[ ,]+' "$OUT/$t.log"
done | awk -v n="$reqs" 'NR == 1 { a = $1; b = $2; c = $3; d = $4 } NR == 2 {
	printf "  fiber  switches %.3f, SQEs %.3f, io_uring_enter %.3f, balance moves %.4f\n",
		($1 - a) / n, ($2 - b) / n, ($3 - c) / n, ($4 - d) / n }'
# how the work was shared: SQEs submitted by each worker in the longer run
awk '/^worker [0-9]+:/ { w = $2 } /io_uring: setup/ { printf "%s%s %d", n++ ? ", " : "  SQEs by worker: ", w, $10 } END { print "" }' \
	FS='[ ,]+' "$OUT/$t2.log"
