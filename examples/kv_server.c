/*
 * kv_server: a Redis-protocol (RESP2) key-value server on libfiber, one fiber per connection.
 *
 *   kv_server [--port N] [--workers N] [--bind ADDR] [--max-conns N] [--idle-timeout SEC] [--shards N]
 *             [--max-bulk BYTES]
 *
 * Default port 6380 on 127.0.0.1. Commands: PING ECHO SET (EX PX EXAT PXAT KEEPTTL NX XX GET) GET DEL EXISTS INCR
 * DECR INCRBY DECRBY MGET MSET EXPIRE PEXPIRE TTL PTTL PERSIST DBSIZE FLUSHALL FLUSHDB SELECT 0 CONFIG GET INFO
 * QUIT COMMAND; redis-cli and redis-benchmark work against it. Pipelined requests are answered in order, in as few
 * writes as the replies fit in (up to 64 KiB per write). A protocol error gets "-ERR Protocol error: ..." and the
 * connection is closed, as Redis does; a bulk length over --max-bulk (default 64 MiB) is one.
 *
 * The store (kv_store.c) is a sharded hash table with one fiber mutex per shard; see kv_store.h. SIGINT/SIGTERM
 * shut down cleanly (server.h) and print a summary line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fiber.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "kv_store.h"
#include "resp.h"
#include "sbuf.h"
#include "server.h"

#define OUT_FLUSH (64u << 10) /* write replies out once this much is queued */
#define IN_CHUNK (16u << 10)  /* least room offered to each read */
#define BUF_KEEP (256u << 10) /* an idle connection gives back buffers larger than this */

struct kv_server {
	struct kv_store *kv;
	struct resp_limits lim;
	uint64_t idle_ns; /* 0 = connections may stay idle for ever (Redis's "timeout 0") */
	fiber_t *expirer;
	_Atomic uint64_t protocol_errors;
};

static void *kv_conn(void *arg)
{
	struct srv_conn *c = arg;
	struct kv_server *ks = c->srv->priv;
	struct sbuf in = { 0 }, out = { 0 };
	struct resp_cmd cmd = { 0 };
	bool quit = false;

	if (ks->idle_ns)
		fiber_io_timeout(ks->idle_ns);
	for (;;) {
		size_t need = 0;
		ssize_t n;

		/* answer every complete request in the buffer, in order */
		while (!quit) {
			const char *err = NULL;
			long used = resp_parse(sbuf_head(&in), sbuf_avail(&in), &ks->lim, &cmd, &err, &need);

			if (used == 0)
				break;
			if (used < 0) {
				atomic_fetch_add(&ks->protocol_errors, 1);
				resp_errorf(&out, "ERR Protocol error: %s", err);
				quit = true;
				break;
			}
			if (cmd.argc) {
				int r = kv_exec(ks->kv, &cmd, &out);

				if (r < 0) {
					resp_error(&out, "ERR out of memory");
					quit = true;
				} else if (r == KV_EXEC_QUIT) {
					quit = true;
				}
			}
			sbuf_consume(&in, (size_t)used);
			if (out.len >= OUT_FLUSH) {
				if (srv_send_all(c->fd, out.data, out.len))
					goto done;
				sbuf_reset(&out);
			}
		}
		if (out.len) {
			if (srv_send_all(c->fd, out.data, out.len))
				goto done;
			sbuf_reset(&out);
		}
		if (quit)
			break;
		if (sbuf_avail(&in) == 0) {
			if (in.cap > BUF_KEEP)
				sbuf_free(&in);
			if (out.cap > BUF_KEEP)
				sbuf_free(&out);
		}
		need = need > sbuf_avail(&in) ? need - sbuf_avail(&in) : 0;
		if (sbuf_reserve(&in, need > IN_CHUNK ? need : IN_CHUNK))
			break;
		n = fiber_recv(c->fd, in.data + in.len, in.cap - in.len, 0);
		if (n <= 0)
			break; /* end of file (or the shutdown sweep), idle timeout, reset, cancelled */
		in.len += (size_t)n;
	}
done:
	sbuf_free(&in);
	sbuf_free(&out);
	resp_cmd_free(&cmd);
	srv_conn_done(c);
	return NULL;
}

static void kv_refuse(int fd)
{
	static const char msg[] = "-ERR max number of clients reached\r\n";

	if (send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* best effort: the client sees the connection close either way */
	}
}

/* Background expiry: a slice of the table every 100 ms, so keys nobody reads again do not stay in memory. */
static void *expirer(void *arg)
{
	struct kv_server *ks = arg;

	while (fiber_sleep(100000000) == 0)
		kv_store_expire_cycle(ks->kv);
	return NULL;
}

static int kv_start(struct srv *s)
{
	struct kv_server *ks = s->priv;
	struct fiber_attr attr;
	int ret;

	fiber_attr_init(&attr);
	attr.name = "expirer";
	ret = fiber_spawn(&ks->expirer, &attr, expirer, ks);
	if (ret)
		srv_log(s, "fiber_spawn: %s", strerror(-ret));
	return ret;
}

static void kv_stop(struct srv *s)
{
	struct kv_server *ks = s->priv;

	fiber_cancel(ks->expirer);
	fiber_join(ks->expirer, NULL);
}

static void kv_summary(struct srv *s, char *buf, size_t n)
{
	struct kv_server *ks = s->priv;

	snprintf(buf, n, ", %llu command(s), %llu protocol error(s), %llu key(s) at exit",
		 (unsigned long long)kv_store_commands(ks->kv), (unsigned long long)atomic_load(&ks->protocol_errors),
		 (unsigned long long)kv_store_size(ks->kv));
}

static void usage(FILE *f)
{
	fprintf(f, "usage: kv_server [--port N] [--workers N] [--bind ADDR] [--max-conns N] [--idle-timeout SEC]\n"
		   "                 [--shards N] [--max-bulk BYTES]\n"
		   "A Redis-protocol (RESP2) key-value server on libfiber. Default: 127.0.0.1 port 6380.\n");
}

int main(int argc, char **argv)
{
	struct kv_server ks = { 0 };
	unsigned shards = KV_SHARDS_DEFAULT;
	struct srv s;
	int ret;

	srv_init(&s, "kv_server");
	ks.lim.max_bulk = RESP_DEFAULT_MAX_BULK;
	ks.lim.max_args = RESP_DEFAULT_MAX_ARGS;
	ks.lim.max_inline = RESP_DEFAULT_MAX_INLINE;
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int r = srv_parse_opt(&s, argc, argv, &i);
		char *end;

		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		}
		if (v && !strcmp(argv[i], "--idle-timeout")) {
			ks.idle_ns = (uint64_t)(strtod(v, &end) * 1e9);
		} else if (v && !strcmp(argv[i], "--shards")) {
			shards = (unsigned)strtoul(v, &end, 10);
		} else if (v && !strcmp(argv[i], "--max-bulk")) {
			ks.lim.max_bulk = strtoull(v, &end, 10);
		} else {
			usage(stderr);
			return 2;
		}
		if (*end || end == v) {
			fprintf(stderr, "%s: bad value '%s'\n", argv[i], v);
			return 2;
		}
		i++;
	}
	if (s.port < 0)
		s.port = 6380;
	ret = kv_store_create(&ks.kv, shards);
	if (ret) {
		fprintf(stderr, "kv_server: --shards %u: %s (a power of two, 1..65536)\n", shards, strerror(-ret));
		return 2;
	}
	s.priv = &ks;
	s.conn_fn = kv_conn;
	s.refuse = kv_refuse;
	s.on_start = kv_start;
	s.on_stop = kv_stop;
	s.summary = kv_summary;
	ret = srv_run(&s);
	kv_store_destroy(ks.kv);
	return ret;
}
