#!/usr/bin/env bash
#
# bench/callgrind.sh - instructions per switch and per yield, counted by valgrind --tool=callgrind.
#
# Each measurement runs twice, with N1 and N2 iterations (--iters, one repetition, no calibration); the
# difference of the two instruction totals divided by the difference of the operation counts is the cost of one
# operation, with start-up and tear-down cancelled out. Prints a small table, writes
# bench/results/callgrind.csv and appends (replaces) a section in bench/results/table.md.
#
# The libfiber programs run with FIBER_MONITOR=0 and FIBER_TICK_HZ=0 (no monitor thread, no tick: the counts do
# not depend on how fast valgrind runs) and BENCH_BLOCK_RT_SIGNALS=1 (bench/common/lf.h; from the time the tick
# was a signal, which callgrind could not take while a fiber ran on its own stack; the runtime sends none now).
# Under valgrind the runtime also skips its steal sampling (runtime/clock.c).
#
# Environment (set by bench/run.sh; defaults for running it alone after run.sh has built everything):
#   BENCH_BIN    directory of the benchmark programs (default build-bench/bench)
#   BENCH_OUT    directory for callgrind's output files (default build-bench/bench-out)
#   BENCH_QUICK  1: small iteration counts (a smoke run)
#   BENCH_RES    results directory (default bench/results; run.sh --quick passes build-bench/results-quick)

set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BENCH_BIN:-$ROOT/build-bench/bench}
OUT=${BENCH_OUT:-$ROOT/build-bench/bench-out}/callgrind
RES=${BENCH_RES:-$ROOT/bench/results}
TABLE=$RES/table.md
CSV=$RES/callgrind.csv

if [ "${BENCH_QUICK:-0}" = 1 ]; then
	N1=2000 N2=4000
else
	N1=100000 N2=200000
fi

mkdir -p "$OUT" "$RES"
rm -f "$OUT"/cg.* "$OUT"/*.log

ROWS=()	# "operation|impl|value" where value is a number or "not available (reason)"

# total_ir PROG ARGS... : run under callgrind, print the instruction total ("summary:" line), or nothing.
total_ir() {
	local tag=$1; shift
	local file=$OUT/cg.$tag
	FIBER_MONITOR=0 FIBER_TICK_HZ=0 BENCH_BLOCK_RT_SIGNALS=1 timeout -k 10 600 valgrind --tool=callgrind --callgrind-out-file="$file" "$@" > "$OUT/$tag.log" 2>&1 ||
		return 1
	awk '/^(summary|totals):/ { print $2; exit }' "$file"
}

# measure OPERATION IMPL OPS_PER_ITER PROG ARGS...
measure() {
	local op=$1 impl=$2 ops=$3 prog=$4; shift 4
	local a b
	if ! command -v valgrind >/dev/null 2>&1; then
		ROWS+=("$op|$impl|not available (valgrind not installed)")
		return
	fi
	if [ ! -x "$BIN/$prog" ]; then
		ROWS+=("$op|$impl|not available ($prog not built)")
		return
	fi
	a=$(total_ir "$impl-$op-1" "$BIN/$prog" --only "$op" --iters "$N1" "$@")
	b=$(total_ir "$impl-$op-2" "$BIN/$prog" --only "$op" --iters "$N2" "$@")
	if [ -z "$a" ] || [ -z "$b" ]; then
		ROWS+=("$op|$impl|not available (valgrind run failed, see $OUT/$impl-$op-*.log)")
		return
	fi
	local v sw
	v=$(awk -v a="$a" -v b="$b" -v n1="$N1" -v n2="$N2" -v k="$ops" 'BEGIN { printf "%.1f", (b - a) / ((n2 - n1) * k) }')
	# A yield row says how many of its yields switched in the longer run (the SWITCHES line, bench.h).
	sw=$(awk '/^SWITCHES/ { print $4; exit }' "$OUT/$impl-$op-2.log")
	[ -n "$sw" ] && v="$v|switches/yield $sw"
	ROWS+=("$op|$impl|$v")
}

echo "==> callgrind: instructions per operation (N1=$N1, N2=$N2)" >&2
measure switch_pingpong bare 2 baseline_bare_switch --impl bare
measure switch_pingpong bare_fpu 2 baseline_bare_switch --impl bare_fpu
measure switch_pingpong libfiber 2 bench_switch --impl libfiber
measure switch_pingpong boost_context 2 baseline_boost_context
measure switch_ring16 bare 16 baseline_bare_switch --impl bare
measure switch_ring16 libfiber 16 bench_switch --impl libfiber
measure switch_ring16 boost_context 16 baseline_boost_context
measure yield_pingpong libfiber 2 bench_yield
measure yield_pingpong boost_fiber 2 baseline_boost_fiber
measure yield_ring16 libfiber 16 bench_yield
measure yield_ring16 boost_fiber 16 baseline_boost_fiber
measure yield_fair_2 libfiber 1 bench_class_yield
measure yield_fair_16 libfiber 1 bench_class_yield
measure yield_fair_1000 libfiber 1 bench_class_yield
measure yield_rt_1000 libfiber 1 bench_class_yield
measure spawn_join_1w libfiber 1 bench_spawn
measure spawn_join_1w boost_fiber 1 baseline_boost_fiber
measure spawn_batch_1w libfiber 1 bench_spawn

# ---- print, csv, markdown ----

{
	echo "operation,impl,instructions_per_op,note"
	for r in "${ROWS[@]}"; do
		IFS='|' read -r op impl v note <<< "$r"
		case $v in
		not*) echo "$op,$impl,,\"$v\"" ;;
		*) echo "$op,$impl,$v,$note" ;;
		esac
	done
} > "$CSV"

echo
printf '%-18s %-15s %-15s %s\n' operation impl "instructions/op" note
printf '%-18s %-15s %-15s %s\n' ------------------ --------------- --------------- ----
for r in "${ROWS[@]}"; do
	IFS='|' read -r op impl v note <<< "$r"
	printf '%-18s %-15s %-15s %s\n' "$op" "$impl" "$v" "$note"
done

SECTION="## Instructions per operation (callgrind)"
if [ -f "$TABLE" ]; then
	# Drop a section left by an earlier run, then append this one.
	awk -v s="$SECTION" '$0 == s { skip = 1; next } skip && /^## / { skip = 0 } !skip' "$TABLE" > "$TABLE.tmp" &&
		mv "$TABLE.tmp" "$TABLE"
fi
{
	echo "$SECTION"
	echo
	echo "valgrind --tool=callgrind, (Ir(N2) - Ir(N1)) / ((N2 - N1) * operations per iteration), N1=$N1, N2=$N2."
	echo
	echo "| operation | impl | instructions/op | note |"
	echo "|---|---|---|---|"
	for r in "${ROWS[@]}"; do
		IFS='|' read -r op impl v note <<< "$r"
		echo "| $op | $impl | $v | $note |"
	done
	echo
} >> "$TABLE"
