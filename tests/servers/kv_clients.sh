#!/usr/bin/env bash
# examples/kv_server driven by Redis's own clients: redis-cli for every command kv_server implements, with its
# replies and errors as redis-cli shows them (--no-raw), then redis-benchmark (SET, GET, INCR, MSET, pipelined and
# not, 1,000 connections) with every request answered. Loopback only, a free port; skips (77) without redis-tools.
#   kv_clients.sh path/to/kv_server
set -euo pipefail
bin=$1
command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || {
	echo "redis-cli/redis-benchmark not installed (Debian: redis-tools): skipped"
	exit 77
}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
srv_start kv_server "$bin" --workers 2
fails=0
# expect "ARGS..." "WANTED OUTPUT" (lines joined by '|')
expect() {
	local got
	# shellcheck disable=SC2086
	got=$(timeout 20 redis-cli --no-raw -p "$port" $1 2>&1 | paste -sd'|') || true
	if [ "$got" != "$2" ]; then
		echo "FAIL: redis-cli $1"
		echo "  want: $2"
		echo "  got:  $got"
		fails=$((fails + 1))
	fi
}
# expect_ttl CMD N: TTL rounds to the nearest second, as redis does, so a reply of N - 1 only means that more than
# half a second passed since the key was set (a loaded host, an ASan build).
expect_ttl() {
	local got
	# shellcheck disable=SC2086
	got=$(timeout 20 redis-cli --no-raw -p "$port" $1 2>&1 | paste -sd'|') || true
	if [ "$got" != "(integer) $2" ] && [ "$got" != "(integer) $(($2 - 1))" ]; then
		echo "FAIL: redis-cli $1"
		echo "  want: (integer) $2 (or $(($2 - 1)))"
		echo "  got:  $got"
		fails=$((fails + 1))
	fi
}
expect "FLUSHALL" "OK"
expect "PING" "PONG"
expect "PING hello" '"hello"'
expect "ECHO abc" '"abc"'
expect "SET k v" "OK"
expect "GET k" '"v"'
expect "GET nope" "(nil)"
expect "SET k w XX GET" '"v"'
expect "SET k x NX" "(nil)"
expect "SET n 10 EX 100" "OK"
expect_ttl "TTL n" 100
expect "SET p 1 PX 100000" "OK"
expect_ttl "TTL p" 100
expect "INCR n" "(integer) 11"
expect "DECR n" "(integer) 10"
expect "INCRBY n 5" "(integer) 15"
expect "DECRBY n 20" "(integer) -5"
expect_ttl "TTL n" 100
expect "EXPIRE k 50" "(integer) 1"
expect_ttl "TTL k" 50
expect "PTTL nope" "(integer) -2"
expect "PERSIST k" "(integer) 1"
expect "TTL k" "(integer) -1"
expect "MSET a 1 b 2 c 3" "OK"
expect "MGET a nope c" '1) "1"|2) (nil)|3) "3"'
expect "EXISTS a b nope" "(integer) 2"
expect "DEL a b nope" "(integer) 2"
expect "DBSIZE" "(integer) 4"
expect "SELECT 0" "OK"
expect "CONFIG GET appendonly" '1) "appendonly"|2) "no"'
expect "COMMAND COUNT" "(integer) 25"
expect "FLUSHALL" "OK"
expect "DBSIZE" "(integer) 0"
# errors, in Redis's words
expect "GET" "(error) ERR wrong number of arguments for 'get' command"
expect "NOSUCH x" "(error) ERR unknown command 'NOSUCH', with args beginning with: 'x' "
expect "SET k v EX abc" "(error) ERR value is not an integer or out of range"
expect "SET k v EX 0" "(error) ERR invalid expire time in 'set' command"
expect "SET k v NX XX" "(error) ERR syntax error"
expect "SET s abc" "OK"
expect "INCR s" "(error) ERR value is not an integer or out of range"
expect "SET big 9223372036854775807" "OK"
expect "INCR big" "(error) ERR increment or decrement would overflow"
expect "SELECT 3" "(error) ERR DB index is out of range"
# a session: several commands on one connection (redis-cli ends it itself on QUIT)
got=$(printf 'SET s1 a\nAPPENDX s1 b\nGET s1\nQUIT\n' | timeout 20 redis-cli --no-raw -p "$port" 2>&1 | paste -sd'|')
want="OK|(error) ERR unknown command 'APPENDX', with args beginning with: 's1' 'b' |\"a\""
[ "$got" = "$want" ] || { echo "FAIL: session: got '$got' want '$want'"; fails=$((fails + 1)); }

n=${KV_BENCH_N:-20000}
[ "${CI:-}" = true ] && n=10000
for args in "-c 50 -P 1" "-c 50 -P 16" "-c 1000 -P 1"; do
	# shellcheck disable=SC2086
	if ! out=$(timeout 120 redis-benchmark -p "$port" -t set,get,incr,mset -n "$n" $args -q 2>&1); then
		echo "FAIL: redis-benchmark $args"
		echo "$out"
		fails=$((fails + 1))
		continue
	fi
	echo "redis-benchmark $args: $(echo "$out" | tr '\r' '\n' | grep 'requests per second' | paste -sd' ')"
	# From a here-string, not a pipe: grep -q stops reading at its match, and with pipefail the writer's SIGPIPE
	# (redis-benchmark -c 1000 prints a lot of progress) failed the check although the line was there.
	clean=$(echo "$out" | tr '\r' '\n')
	for t in SET GET INCR MSET; do
		grep -qE "^ *$t( \(10 keys\))?: [0-9.]+ requests per second" <<<"$clean" || {
			echo "FAIL: redis-benchmark $args: no result for $t; its output:"
			echo "$out" | tr '\r' '\n' | grep -v 'rps=' | grep -v '^ *$'
			fails=$((fails + 1))
		}
	done
done
# every INCR of redis-benchmark landed: its counter counts each request of the three runs
expect "GET counter:__rand_int__" "\"$((3 * n))\""

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
cat "$dir/err"
[ "$rc" = 0 ] || { echo "FAIL: kv_server exited with $rc after SIGTERM"; fails=$((fails + 1)); }
grep -q 'kv_server: stopped in .* connection(s) served' "$dir/err" || { echo "FAIL: no summary line"; fails=$((fails + 1)); }
[ "$fails" = 0 ] && echo "kv_clients: all passed" || { echo "kv_clients: $fails failure(s)"; exit 1; }
