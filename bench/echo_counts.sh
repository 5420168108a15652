#!/usr/bin/env bash
#
# bench/echo_counts.sh - counts per echo request that do not depend on timing noise as much as a wall-clock run:
# system calls (strace -c -f) and user-space instructions (callgrind) of one echo server, and, for libfiber's
# echo_server, the runtime's own counters (fiber_dump: switches, io_uring_enter calls, submissions).
#
#	bench/echo_counts.sh SERVER WORKERS TOOL [M1 M2]
#
# SERVER: fiber (bench_echo_server), uring (baseline_echo_uring) or epoll (baseline_echo_epoll); TOOL: strace,
# perf (perf stat: CPU time, context switches and system calls by tracepoint), callgrind or stats (no tool: libfiber's counters only). The server runs twice, serving C=64 connections of
# examples/echo_client (M1, then M2 messages of 64 bytes each); every figure is (run 2 - run 1) / (64 * (M2 - M1)),
# so start-up, connection set-up and shutdown cancel out. Under callgrind the instruction counts per function are
# kept in $OUT/cg.<server>-<workers>-<run> for callgrind_annotate.
# Environment: BIN (default build-rel: bench/ and examples/ under it), OUT (default /tmp/echo-counts).

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/build-rel}
OUT=${OUT:-/tmp/echo-counts}
SERVER=$1 WORKERS=$2 TOOL=$3
M1=${4:-200} M2=${5:-600}
C=64
mkdir -p "$OUT"
PERF_EVENTS=task-clock,context-switches,cpu-migrations,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_write,\
syscalls:sys_enter_read,syscalls:sys_enter_futex,syscalls:sys_enter_pread64,syscalls:sys_enter_epoll_wait,\
syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sched_yield,syscalls:sys_enter_clock_nanosleep

case $SERVER in
fiber) prog=("$BIN/bench/bench_echo_server" --workers "$WORKERS"); export FIBER_DUMP_SIGNAL=SIGUSR1 ;;
uring) prog=("$BIN/bench/baseline_echo_uring" --threads "$WORKERS") ;;
epoll) prog=("$BIN/bench/baseline_echo_epoll" --threads "$WORKERS") ;;
*) echo "unknown server $SERVER" >&2; exit 2 ;;
esac

# run M: serve C connections x M messages; leaves the figures of this run in $OUT/<tag>.*
run() {
	local m=$1 tag=$SERVER-$WORKERS-$1 port=$((20000 + RANDOM % 10000)) pid spid
	local -a wrap=()
	case $TOOL in
	strace) wrap=(strace -f -c -o "$OUT/$tag.strace") ;;
	perf) wrap=(perf stat -x, -o "$OUT/$tag.perf" -e "$PERF_EVENTS") ;;
	callgrind)
		export FIBER_IO=uring FIBER_MONITOR=0 FIBER_TICK_HZ=0
		wrap=(valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$tag")
		;;
	esac
	"${wrap[@]}" "${prog[@]}" --port "$port" >"$OUT/$tag.log" 2>&1 &
	spid=$!
	for _ in $(seq 200); do
		(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
		sleep 0.1
	done
	"$BIN/examples/echo_client" --port "$port" --connections $C --messages "$m" --workers 1 --quiet ||
		echo "client failed" >&2
	# The server itself: strace's child, else the process we started (valgrind runs in the program's process).
	pid=$spid
	[ "$TOOL" = strace ] || [ "$TOOL" = perf ] && pid=$(pgrep -P "$spid" | head -1)
	if [ "$SERVER" = fiber ]; then
		kill -USR1 "$pid"
		sleep 1
		[ "$TOOL" = callgrind ] && sleep 4
	fi
	kill -TERM "$pid"
	wait "$spid"
	unset FIBER_IO FIBER_MONITOR FIBER_TICK_HZ
}

run "$M1"
run "$M2"
t1=$SERVER-$WORKERS-$M1 t2=$SERVER-$WORKERS-$M2
reqs=$((C * (M2 - M1)))
echo "== $SERVER, $WORKERS worker(s), $TOOL: per request (difference of $C x $M2 and $C x $M1 messages)"
case $TOOL in
strace)
	# strace -c: "% time seconds usecs/call calls errors syscall"
	join -j1 <(awk '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ { print $NF, $4 }' "$OUT/$t1.strace" | sort) \
		<(awk '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ { print $NF, $4 }' "$OUT/$t2.strace" | sort) |
		awk -v n="$reqs" '{ d = $3 - $2; if (d > 0) { printf "  %-20s %8.3f\n", $1, d / n; tot += d } }
			END { printf "  %-20s %8.3f\n", "total", tot / n }'
	;;
perf)
	# perf stat -x,: "value,unit,event,..."
	join -t, -j1 <(awk -F, '$1 ~ /^[0-9.]+$/ { print $3 "," $1 }' "$OUT/$t1.perf" | sort) \
		<(awk -F, '$1 ~ /^[0-9.]+$/ { print $3 "," $1 }' "$OUT/$t2.perf" | sort) |
		awk -F, -v n="$reqs" '{ u = $1 == "task-clock" ? 1e3 : 1; printf "  %-40s %8.3f%s\n", $1, ($3 - $2) * u / n,
			$1 == "task-clock" ? " us CPU (msec in perf)" : "" }'
	;;
callgrind)
	a=$(awk '/^(summary|totals):/ { print $2; exit }' "$OUT/cg.$t1")
	b=$(awk '/^(summary|totals):/ { print $2; exit }' "$OUT/cg.$t2")
	awk -v a="$a" -v b="$b" -v n="$reqs" 'BEGIN { printf "  instructions/request (all user space) %.0f\n", (b - a) / n }'
	;;
esac
if [ "$SERVER" = fiber ]; then
	for t in "$t1" "$t2"; do
		awk '/^totals:/ { sw = $5 } /io_uring: setup/ { s += $10; e += $14 } END { print sw, s, e }' \
			FS='[ ,]+' "$OUT/$t.log"
	done | awk -v n="$reqs" 'NR == 1 { a = $1; b = $2; c = $3 } NR == 2 {
		printf "  switches %.2f, SQEs submitted %.2f, io_uring_enter %.3f (requests per enter %.1f)\n",
			($1 - a) / n, ($2 - b) / n, ($3 - c) / n, ($3 - c) ? n / ($3 - c) : 0 }'
fi
