#!/usr/bin/env bash
# Build the libFuzzer harnesses (fuzz_resp.c: RESP parser and commands; fuzz_http.c: http_server's request path)
# with clang (-fsanitize=fuzzer,address,undefined) and run each for FUZZ_RUNS
# executions (default 10^7), starting from the committed corpus, new inputs going to build-fuzz/corpus-<name>/ (the
# committed corpus is left as it is). A crash leaves its input in build-fuzz/ and fails the script.
#   tests/fuzz/run.sh            FUZZ_RUNS=100000 tests/fuzz/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${FUZZ_RUNS:-10000000}
out=build-fuzz
command -v clang >/dev/null || { echo "clang not installed (Debian: clang)"; exit 1; }
cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFIBER_BUILD_TESTS=OFF -DFIBER_BUILD_BENCH=OFF \
	-DFIBER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$out" -j"$(nproc)" --target fiber_static >/dev/null
libs="$out/libfiber.a $(pkg-config --libs liburing jemalloc) -lpthread"
# shellcheck disable=SC2086
clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Iexamples tests/fuzz/fuzz_resp.c examples/resp.c \
	examples/kv_store.c $libs -o "$out/fuzz_resp"
# shellcheck disable=SC2086
clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Iexamples tests/fuzz/fuzz_http.c examples/server.c \
	$libs -lhttp_parser -o "$out/fuzz_http"
for f in resp http; do
	mkdir -p "$out/corpus-$f"
	(cd "$out" && "./fuzz_$f" -runs="$runs" -max_len=4096 "corpus-$f" "../tests/fuzz/corpus/$f")
	echo "fuzz_$f: $runs runs, no crash"
done
