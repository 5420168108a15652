# Sourced by the client scripts of this folder: a scratch directory removed on exit, and one example server started
# on a free loopback port.
#   srv_start NAME BIN ARGS...  starts BIN --port 0 ARGS... with its stdout in $dir/out and stderr in $dir/err,
#                               waits for its "port N," line and sets $pid and $port; exits 1 if it never comes.
dir=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

srv_start() {
	local name=$1 bin=$2
	shift 2
	"$bin" --port 0 "$@" >"$dir/out" 2>"$dir/err" &
	pid=$!
	for _ in $(seq 100); do
		grep -q ' port [0-9]*,' "$dir/out" 2>/dev/null && break
		sleep 0.1
	done
	port=$(sed -n 's/.* port \([0-9]*\),.*/\1/p' "$dir/out")
	[ -n "$port" ] || { echo "$name did not start"; cat "$dir/err"; exit 1; }
}
