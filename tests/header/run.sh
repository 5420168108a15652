#!/usr/bin/env bash
# tests/header/run.sh INCLUDE_DIR LIB_DIR [--require-all]: compile (and run) the fiber.h consumers with every compiler
# present: C11 with gcc and clang (strict, system headers first, fiber.h first), C++17 with g++ and clang++.
# Exit 77 (skipped) when neither C++ compiler is there, unless --require-all (CI), which also fails on a missing one.
# HEADER_COMPILE_ONLY=1 (the ASan build: its libfiber.so needs the ASan runtime first): compile, do not link or run.
set -euo pipefail
inc=$1 lib=$2 require=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
warn=(-Wall -Wextra -Wpedantic -Werror -Wno-unused-parameter)
ran=0 missing=()
build_run() { # compiler std source
	local cc=$1 std=$2 src=$3 exe
	exe=$out/$(basename "$src")-$cc
	echo "$cc -std=$std ${src##*/}"
	if [ "${HEADER_COMPILE_ONLY:-0}" = 1 ]; then
		"$cc" -std="$std" "${warn[@]}" -I "$inc" -c "$here/$src" -o "$exe.o"
		return
	fi
	"$cc" -std="$std" "${warn[@]}" -I "$inc" "$here/$src" -o "$exe" -L "$lib" -lfiber -Wl,-rpath,"$lib"
	FIBER_WORKERS=2 "$exe"
}
for cc in gcc clang; do
	command -v $cc >/dev/null || { missing+=($cc); continue; }
	build_run $cc c11 strict.c
	build_run $cc c11 sys_first.c
	build_run $cc c11 fiber_first.c
	build_run $cc c17 sys_first.c
	# CPU_SET without _GNU_SOURCE must fail, and say why.
	echo "$cc -std=c11 needs_gnu.c (must fail)"
	if "$cc" -std=c11 -I "$inc" -fsyntax-only "$here/needs_gnu.c" >"$out/needs_gnu.log" 2>&1; then
		echo "needs_gnu.c compiled"; exit 1
	fi
	grep -q "CPU_SET needs _GNU_SOURCE defined before the first #include" "$out/needs_gnu.log" ||
		{ cat "$out/needs_gnu.log"; exit 1; }
done
for cxx in g++ clang++; do
	command -v $cxx >/dev/null || { missing+=($cxx); continue; }
	build_run $cxx c++17 consumer.cpp
	ran=$((ran + 1))
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "not installed: ${missing[*]}"
	[ "$require" = --require-all ] && exit 1
fi
[ $ran -gt 0 ] || exit 77
echo "header: ok"
