#!/usr/bin/env bash
# tests/gdb/test_gdb.sh PROGRAM SCRIPT - the gdb extension, in gdb batch mode: live (auto-loaded from libfiber.so's
# .debug_gdb_scripts section) and on a core file written by gcore (loaded with `source`). Exit 77 (skip) when gdb
# or its Python is missing or ptrace is not allowed.
set -uo pipefail
prog=$1
script=$2
command -v gdb >/dev/null 2>&1 || { echo "gdb not installed: skip"; exit 77; }
gdb -nx -batch -ex 'python print("py-ok")' 2>/dev/null | grep -q py-ok || { echo "gdb has no Python: skip"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
core=$tmp/core
fail=0
common=(-nx -batch -iex 'set debuginfod enabled off' -iex 'set pagination off')

check() { # check FILE WHAT PATTERN
	if grep -Eq -- "$3" "$1"; then
		echo "ok: $2"
	else
		echo "FAIL: $2 (no /$3/ in $1)"
		fail=1
	fi
}

# Live: the script comes from the library itself (auto-load), nothing is sourced. Guards by mprotect: see
# gdb_target.c (gcore cannot save a mapping that holds a MADV_GUARD_INSTALL guard).
GDB_TARGET_MPROTECT_GUARDS=1 gdb "${common[@]}" -iex 'set auto-load safe-path /' \
	-ex 'break gdb_stop_here' -ex run \
	-ex 'info fibers' -ex 'fiber bt sleeper' -ex 'fiber apply all bt' \
	-ex "gcore $core" -ex continue "$prog" >"$tmp/live" 2>&1
cat "$tmp/live"
if grep -q "ptrace: Operation not permitted" "$tmp/live"; then
	echo "ptrace not permitted: skip"
	exit 77
fi
check "$tmp/live" "auto-loaded: info fibers lists the sleeper" '^ +[0-9]+ +sleeper +sleeping\(S\) +sleep '
check "$tmp/live" "info fibers: joiner waits on the sleeper" 'joiner +sleeping\(S\) +join +[0-9]+ +fair/NORMAL 0 +fiber [0-9]+ \(sleeper\)'
check "$tmp/live" "info fibers: the running main fiber is marked" '^\* +[0-9]+ +main +running'
check "$tmp/live" "info fibers: the sleeper's timer" 'timer, due in [0-9.]+ ms'
check "$tmp/live" "fiber bt sleeper: parked frame" '^#[0-9]+ .*gdb_park_sleeper \(ns=60000000000\)'
check "$tmp/live" "fiber bt sleeper: fiber_sleep frame" '^#[0-9]+ .*fiber_sleep \('
# With the clang-built debug information gdb prints the assembler symbol as fiber.trampoline.
check "$tmp/live" "fiber bt: down to the trampoline" '^#[0-9]+ .*fiber(__|\.)trampoline \('
check "$tmp/live" "fiber apply all bt: joiner's frame" '^#[0-9]+ .*gdb_park_joiner \('
check "$tmp/live" "fiber apply all bt: the running fiber's thread" 'running on worker [0-9]+, thread [0-9]+'
check "$tmp/live" "the program continued to its end" 'gdb_target: done'

# Core file: auto-load off, the script is sourced from the source tree.
if [ ! -s "$core" ]; then
	echo "FAIL: gcore wrote no core"
	exit 1
fi
gdb "${common[@]}" -iex 'set auto-load python-scripts off' -ex "source $script" \
	-ex 'info fibers' -ex 'fiber bt sleeper' -ex 'fiber bt joiner' "$prog" "$core" >"$tmp/core.out" 2>&1
cat "$tmp/core.out"
check "$tmp/core.out" "core: info fibers lists the sleeper" '^ +[0-9]+ +sleeper +sleeping\(S\) +sleep '
check "$tmp/core.out" "core: info fibers lists the joiner" 'joiner +sleeping\(S\) +join '
check "$tmp/core.out" "core: fiber bt sleeper" '^#[0-9]+ .*gdb_park_sleeper \(ns=60000000000\)'
check "$tmp/core.out" "core: fiber bt joiner" '^#[0-9]+ .*gdb_park_joiner \('

# A core file the kernel writes (abort() at the stop point, default guards), when core_pattern names a plain file.
pattern=$(cat /proc/sys/kernel/core_pattern 2>/dev/null || echo '|')
if [ "${pattern:0:1}" != "|" ] && (ulimit -c unlimited) 2>/dev/null; then
	(cd "$tmp/kcore" 2>/dev/null || { mkdir -p "$tmp/kcore" && cd "$tmp/kcore"; }; ulimit -c unlimited;
	 GDB_TARGET_ABORT=1 "$prog" >/dev/null 2>&1)
	kcore=$(find "$tmp/kcore" -maxdepth 1 -type f -name 'core*' | head -n1)
	if [ -n "$kcore" ]; then
		gdb "${common[@]}" -iex 'set auto-load safe-path /' -ex 'info fibers' -ex 'fiber bt sleeper' \
			-ex 'fiber bt joiner' "$prog" "$kcore" >"$tmp/kcore.out" 2>&1
		cat "$tmp/kcore.out"
		check "$tmp/kcore.out" "kernel core: info fibers lists the joiner" 'joiner +sleeping\(S\) +join '
		check "$tmp/kcore.out" "kernel core: fiber bt sleeper" '^#[0-9]+ .*gdb_park_sleeper \(ns=60000000000\)'
		check "$tmp/kcore.out" "kernel core: fiber bt joiner" '^#[0-9]+ .*gdb_park_joiner \('
	else
		echo "no kernel core written (core_pattern '$pattern'): that part skipped"
	fi
else
	echo "core_pattern pipes to a program or core limit is fixed: kernel core part skipped"
fi
exit $fail
