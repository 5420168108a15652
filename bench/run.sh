#!/usr/bin/env bash
#
# bench/run.sh - build and run every libfiber benchmark and every baseline, print one table.
#
# usage: bench/run.sh [--quick] [--reps N] [--rounds R]
#
#   --quick     smoke run: tiny repetitions (the numbers mean nothing), callgrind with small counts; the table goes
#               to build-bench/results-quick/, never over the committed bench/results/
#   --reps N    repetitions per measurement and program run (default 5)
#   --rounds R  run the whole list of programs R times in turn (default 1), each time with --reps N, and report
#               per row the median of the R runs' medians (min and max over all of them): on a host whose speed
#               drifts (a shared VM), a slow spell is then spread over every row instead of falling on whichever
#               programs ran in it. --rounds 5 --reps 1 took 5.6 minutes here (the default about 4); bench_echo
#               then does reps x rounds repetitions of its own.
#
# Environment:
#   BENCH_NO_CALLGRIND=1   skip bench/callgrind.sh
#   BENCH_NO_ECHO=1        skip bench_echo (the echo servers)
#   BENCH_NO_INSTALL=1     never apt-get install missing baseline packages
#   BENCH_BUILD_DIR=dir    build directory (default: build-bench at the repository root)
#
# Steps: install missing baseline packages (root only, Debian's apt-get), configure and build the project in
# build-bench/ (Release, tests and examples off), build the Go baseline, run every program with a time limit,
# then bench/report.py prints the table and writes bench/results/{results.csv,results.json,table.md} and
# switch_cost.png, bench/bench_echo runs the echo servers (bench/results/echo.md, echo.csv), and bench/callgrind.sh
# appends instruction counts to table.md.
# Raw program output is kept in build-bench/bench-out/.

set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
OUT=$BUILD/bench-out
RES=$BENCH/results
ARGS=()
QUICK=0
ROUNDS=1

while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1; ARGS+=(--quick) ;;
	--reps) ARGS+=(--reps "$2"); shift ;;
	--rounds)
		ROUNDS=$2; shift
		case $ROUNDS in ''|*[!0-9]*|0) echo "run.sh: --rounds wants a positive number" >&2; exit 2 ;; esac ;;
	-h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
# A smoke run's numbers mean nothing: keep them away from the committed results.
[ $QUICK = 1 ] && RES=$BUILD/results-quick

mkdir -p "$OUT" "$RES"
rm -f "$OUT"/*.out "$OUT"/*.err "$OUT/status.tsv"

log() { printf '==> %s\n' "$*" >&2; }

# status PROGRAM STATE DETAIL: one line of status.tsv (report.py turns it into "not available (DETAIL)").
status() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$OUT/status.tsv"; }

# ---- 1. baseline packages ----

install_missing() {
	local want=() pkg
	[ "${BENCH_NO_INSTALL:-0}" = 1 ] && return
	command -v apt-get >/dev/null 2>&1 || return
	for pkg in libboost-context-dev libboost-fiber-dev golang-go gnuplot-nox valgrind; do
		dpkg -s "$pkg" >/dev/null 2>&1 && continue
		[ "$pkg" = gnuplot-nox ] && command -v gnuplot >/dev/null 2>&1 && continue
		want+=("$pkg")
	done
	[ ${#want[@]} -eq 0 ] && return
	if [ "$(id -u)" != 0 ]; then
		log "not root: not installing ${want[*]} (those baselines will show as not available)"
		return
	fi
	log "installing ${want[*]}"
	if ! DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y --no-install-recommends "${want[@]}" \
		> "$OUT/apt.log" 2>&1; then
		timeout 300 apt-get update >> "$OUT/apt.log" 2>&1
		DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y --no-install-recommends "${want[@]}" \
			>> "$OUT/apt.log" 2>&1 || log "apt-get install failed, see $OUT/apt.log; going on without"
	fi
}
install_missing

# ---- 2. configure and build ----

LIBFIBER_REASON=""
BIN=$BUILD/bench
CONFIG_LOG=$OUT/configure.log
BUILD_LOG=$OUT/build.log

configure_root() {
	[ -f "$ROOT/CMakeLists.txt" ] || { LIBFIBER_REASON="no root CMakeLists.txt (runtime not there yet)"; return 1; }
	timeout 600 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFIBER_BUILD_BENCH=ON \
		-DFIBER_BUILD_TESTS=OFF -DFIBER_BUILD_EXAMPLES=OFF > "$CONFIG_LOG" 2>&1 && return 0
	LIBFIBER_REASON="libfiber does not configure, see build-bench/bench-out/configure.log"
	return 1
}

log "configuring in $BUILD"
if configure_root; then
	CMAKE_DIR=$BUILD
else
	# Baselines only: bench/ configures on its own.
	log "$LIBFIBER_REASON; building the baselines alone"
	CMAKE_DIR=$BUILD/baselines-only
	BIN=$CMAKE_DIR
	timeout 600 cmake -S "$BENCH" -B "$CMAKE_DIR" -DCMAKE_BUILD_TYPE=Release >> "$CONFIG_LOG" 2>&1 ||
		log "even the baselines do not configure, see $CONFIG_LOG"
fi
log "building (log: $BUILD_LOG)"
# Programs left by an earlier build would be run as if current when this build fails: remove them first, so that
# whatever is in the program directory afterwards was linked now (relinking is cheap).
rm -f "$BIN"/baseline_* "$BIN"/bench_*
# -k: one program that does not compile must not take the others with it.
timeout 1800 cmake --build "$CMAKE_DIR" --target bench_all -j "$(nproc)" -- -k > "$BUILD_LOG" 2>&1 ||
	log "some targets failed to build, see $BUILD_LOG"
mkdir -p "$BIN"

# Why a program that CMake should have built is not there.
not_built_reason() {
	local prog=$1
	case $prog in
	baseline_boost_context)
		grep -q "Boost.Context not found" "$CONFIG_LOG" 2>/dev/null &&
			{ echo "Boost.Context not found (libboost-context-dev)"; return; } ;;
	baseline_boost_fiber)
		grep -q "Boost.Fiber not found" "$CONFIG_LOG" 2>/dev/null &&
			{ echo "Boost.Fiber not found (libboost-fiber-dev)"; return; } ;;
	bench_*)
		[ -n "$LIBFIBER_REASON" ] && { echo "$LIBFIBER_REASON"; return; }
		[ -f "$BENCH/$prog.c" ] || { echo "$prog.c not written yet"; return; }
		local first
		first=$(grep -m1 -E '^/.*/(runtime|asm)/[^:]+:[0-9]+:[0-9]+: error:' "$BUILD_LOG" 2>/dev/null |
			sed "s|$ROOT/||" | cut -c1-100)
		[ -n "$first" ] && { echo "libfiber does not build: $first"; return; } ;;
	esac
	echo "not built, see build-bench/bench-out/build.log"
}

# ---- 3. Go baseline ----

build_go() {
	if ! command -v go >/dev/null 2>&1; then
		status baseline_go missing "go not installed (golang-go)"
		return
	fi
	mkdir -p "$BUILD/go/cache" "$BUILD/go/path"
	if (cd "$BENCH/baselines/go" &&
	    GOCACHE=$BUILD/go/cache GOPATH=$BUILD/go/path GOTOOLCHAIN=local GOPROXY=off GOFLAGS= GO111MODULE=on \
	    timeout 600 go build -o "$BIN/baseline_go" .) > "$OUT/go-build.log" 2>&1; then
		return
	fi
	status baseline_go notbuilt "go build failed, see build-bench/bench-out/go-build.log"
}
log "building the Go baseline"
build_go

# ---- 4. run ----

# run_prog PROGRAM TIMEOUT_S: run with the common arguments, keep stdout/stderr, record how it ended. A later round
# appends to the first one's output (report.py merges a row's RESULT lines); a program that did not end well in an
# earlier round (or could not be built) is not run again.
run_prog() {
	local prog=$1 limit=$2 rc
	if grep -v "	ok	" "$OUT/status.tsv" 2>/dev/null | grep -q "^$prog	"; then
		return
	fi
	if [ ! -x "$BIN/$prog" ]; then
		status "$prog" notbuilt "$(not_built_reason "$prog")"
		return
	fi
	log "running $prog${ROUNDS_NOTE:-}"
	timeout -k 10 "$limit" "$BIN/$prog" "${ARGS[@]}" > "$OUT/$prog.round" 2>> "$OUT/$prog.err"
	rc=$?
	cat "$OUT/$prog.round"
	cat "$OUT/$prog.round" >> "$OUT/$prog.out"
	rm -f "$OUT/$prog.round"
	if [ $rc -eq 0 ]; then
		grep -q "^$prog	ok	" "$OUT/status.tsv" 2>/dev/null || status "$prog" ok ""
	elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		status "$prog" timeout "killed after ${limit} s"
	else
		status "$prog" failed "exit status $rc: $(tail -n 1 "$OUT/$prog.err" | tr '\t' ' ' | cut -c1-120)"
	fi
}

# Baselines first: bench_switch's interleaved bare lines then supersede baseline_bare_switch's.
for ((round = 1; round <= ROUNDS; round++)); do
	[ "$ROUNDS" -gt 1 ] && ROUNDS_NOTE=" (round $round of $ROUNDS)"
	run_prog baseline_bare_switch 120
	run_prog baseline_swapcontext 120
	run_prog baseline_boost_context 120
	run_prog baseline_boost_fiber 300
	run_prog baseline_pthread 300
	run_prog baseline_go 600
	run_prog bench_switch 120
	run_prog bench_yield 300
	run_prog bench_spawn 300
	run_prog bench_skynet 900
	run_prog bench_wake 300
	run_prog bench_sleep 300
	run_prog bench_class_yield 300
	run_prog bench_sync 300
	run_prog bench_park 300
done

# ---- 5. table, plot ----

log "writing $RES"
README_ARGS=()
[ "$QUICK" = 0 ] && README_ARGS=(--readme "$ROOT/README.md") # a smoke run's numbers never reach the README
python3 "$BENCH/report.py" "${README_ARGS[@]}" "$OUT" "$RES"
if command -v gnuplot >/dev/null 2>&1; then
	(cd "$RES" && timeout 60 gnuplot switch_cost.gp) > "$OUT/gnuplot.log" 2>&1 ||
		log "gnuplot failed, see $OUT/gnuplot.log"
else
	log "gnuplot not installed: $RES/switch_cost.png not regenerated"
fi

# ---- 6. echo: libfiber's echo_server against the epoll and raw io_uring loops (issue 11) ----

# bench_echo prints its own table (servers as rows, ratios per server CPU-second) and writes $RES/echo.md and
# echo.csv. Default: 3 repetitions of 1 s per server configuration, about 30 s in all; --reps N passes through.
if [ "${BENCH_NO_ECHO:-0}" = 1 ]; then
	:
elif [ -x "$BIN/bench_echo" ]; then
	log "running bench_echo"
	ECHO_ARGS=(--out "$RES")
	[ $QUICK = 1 ] && ECHO_ARGS+=(--quick)
	# Its repetitions interleave its servers already; with --rounds it does reps x rounds of them.
	for ((i = 0; i < ${#ARGS[@]}; i++)); do
		[ "${ARGS[i]}" = --reps ] && ECHO_ARGS+=(--reps "$((ARGS[i + 1] * ROUNDS))")
	done
	timeout -k 10 600 "$BIN/bench_echo" "${ECHO_ARGS[@]}" > "$OUT/bench_echo.out" 2> "$OUT/bench_echo.err" ||
		log "bench_echo failed (exit status $?), see $OUT/bench_echo.err"
	cat "$OUT/bench_echo.out"
else
	log "bench_echo not built: $(not_built_reason bench_echo)"
fi

# ---- 7. instruction counts ----

if [ "${BENCH_NO_CALLGRIND:-0}" != 1 ]; then
	if BENCH_BIN=$BIN BENCH_OUT=$OUT BENCH_QUICK=$QUICK BENCH_RES=$RES "$BENCH/callgrind.sh"; then
		# The README block of step 5 took the counts of the run before: rebuild it with this run's.
		[ ${#README_ARGS[@]} -gt 0 ] && python3 "$BENCH/report.py" "${README_ARGS[@]}" --json "$RES/results.json"
	else
		log "callgrind.sh failed"
	fi
fi
exit 0
