#!/usr/bin/env bash
# examples/http_server driven by clients nobody here wrote: curl (GET, HEAD, POST with and without
# "Expect: 100-continue", chunked uploads, If-Modified-Since, connection reuse, error statuses), ab (keep-alive,
# 1,000 concurrent connections, every response checked for length) and wrk when installed. Loopback only, a free
# port; skips (77) without curl and ab.
#   http_clients.sh path/to/http_server
set -euo pipefail
bin=$1
command -v curl >/dev/null && command -v ab >/dev/null || {
	echo "curl/ab not installed (Debian: curl apache2-utils): skipped"
	exit 77
}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mkdir -p "$dir/www/sub"
printf 'hello file\n' >"$dir/www/hello.txt"
printf '<p>sub</p>\n' >"$dir/www/sub/index.html"
head -c 300000 /dev/urandom >"$dir/www/blob.bin"
touch -d '2020-01-02 03:04:05 UTC' "$dir/www/hello.txt"
srv_start http_server "$bin" --workers 2 --root "$dir/www"
url=http://127.0.0.1:$port
fails=0
check() { # check NAME GOT WANT
	if [ "$2" != "$3" ]; then
		echo "FAIL: $1"
		echo "  want: $3"
		echo "  got:  $2"
		fails=$((fails + 1))
	fi
}
c() { timeout 30 curl -s "$@" || true; }

check "GET /" "$(c "$url/")" "Hello, World!"
check "GET / headers" "$(c -D - -o /dev/null "$url/" | tr -d '\r' | grep -iE '^(content-type|content-length):' | paste -sd'|')" \
	"Content-Type: text/plain|Content-Length: 13"
check "HEAD /" "$(c -I "$url/" | tr -d '\r' | grep -i '^content-length:')" "Content-Length: 13"
check "GET file" "$(c "$url/hello.txt")" "hello file"
check "GET file type" "$(c -o /dev/null -w '%{content_type}' "$url/hello.txt")" "text/plain; charset=utf-8"
check "Last-Modified" "$(c -I "$url/hello.txt" | tr -d '\r' | grep -i '^last-modified:')" \
	"Last-Modified: Thu, 02 Jan 2020 03:04:05 GMT"
check "If-Modified-Since (not modified)" "$(c -o /dev/null -w '%{http_code}' -z 'Thu, 02 Jan 2020 03:04:05 GMT' "$url/hello.txt")" 304
check "If-Modified-Since (modified)" "$(c -o /dev/null -w '%{http_code}' -z 'Wed, 01 Jan 2020 00:00:00 GMT' "$url/hello.txt")" 200
check "directory index" "$(c "$url/sub/")" "<p>sub</p>"
check "large file" "$(c "$url/blob.bin" | cmp - "$dir/www/blob.bin" && echo same)" same
check "404" "$(c -o /dev/null -w '%{http_code}' "$url/missing")" 404
check "405" "$(c -o /dev/null -w '%{http_code}' -X DELETE "$url/")" 405
check "path escape" "$(c -o /dev/null -w '%{http_code}' --path-as-is "$url/../../etc/passwd")" 400
check "POST /echo" "$(c --data-binary 'some body' "$url/echo")" "some body"
# curl sends "Expect: 100-continue" for a body over 1 MiB by default, over 1 KiB with -H; both ways here
check "POST /echo 100-continue" "$(c -H 'Expect: 100-continue' --data-binary @"$dir/www/blob.bin" "$url/echo" | cmp - "$dir/www/blob.bin" && echo same)" same
check "POST /echo chunked" "$(c -H 'Transfer-Encoding: chunked' --data-binary @"$dir/www/blob.bin" "$url/echo" | cmp - "$dir/www/blob.bin" && echo same)" same
head -c 2000000 /dev/zero >"$dir/big"
check "413" "$(c -o /dev/null -w '%{http_code}' --data-binary @"$dir/big" "$url/echo")" 413
check "connection reuse" "$(c -v "$url/" "$url/hello.txt" "$url/missing" 2>&1 | grep -c 'Re-using existing connection')" 2

n=${HTTP_BENCH_N:-20000}
[ "${CI:-}" = true ] && n=5000
for conc in 50 1000; do
	out=$(timeout 120 ab -q -k -n "$n" -c "$conc" "$url/" 2>&1) || { echo "FAIL: ab -c $conc"; echo "$out"; fails=$((fails + 1)); continue; }
	echo "ab -k -c $conc: $(echo "$out" | grep -E 'Requests per second' | sed 's/  */ /g')"
	check "ab -c $conc complete" "$(echo "$out" | sed -n 's/^Complete requests: *//p')" "$n"
	check "ab -c $conc failed" "$(echo "$out" | sed -n 's/^Failed requests: *//p')" 0
	check "ab -c $conc keep-alive" "$(echo "$out" | sed -n 's/^Keep-Alive requests: *//p')" "$n"
	check "ab -c $conc non-2xx" "$(echo "$out" | grep -c 'Non-2xx')" 0
done
if command -v wrk >/dev/null; then
	out=$(timeout 60 wrk -t1 -c50 -d2s "$url/" 2>&1) || true
	echo "wrk -t1 -c50 -d2s: $(echo "$out" | grep 'Requests/sec')"
	check "wrk errors" "$(echo "$out" | grep -cE 'Socket errors|Non-2xx')" 0
fi

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
cat "$dir/err"
check "exit status after SIGTERM" "$rc" 0
grep -q 'http_server: stopped in .* connection(s) served' "$dir/err" || { echo "FAIL: no summary line"; fails=$((fails + 1)); }
[ "$fails" = 0 ] && echo "http_clients: all passed" || { echo "http_clients: $fails failure(s)"; exit 1; }
