/*
 * examples/kv_server driven from raw sockets: RESP framing across writes, pipelining in order, protocol errors
 * and oversized bulk lengths (an error reply and a close, never a hang), large values, the connection limit,
 * 1,000 concurrent connections, and a shutdown under load that loses no reply. The server is a separate process
 * (KV_SERVER_BIN), on a free loopback port. redis-cli and redis-benchmark are in servers/kv_clients.sh.
 */
#include "server_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>

static struct server_proc srv;
static char line[1 << 16];

/* One RESP reply's first line (without CRLF) into @buf; for a bulk string, its contents replace the line ("$-1"
 * stays). The type byte, or -1. */
static int resp_read(int fd, char *buf, size_t cap)
{
	ssize_t n = recv_until(fd, buf, cap, "\r\n");
	long len;

	if (n < 2)
		return -1;
	buf[n - 2] = '\0';
	if (buf[0] != '$' || buf[1] == '-')
		return buf[0];
	len = strtol(buf + 1, NULL, 10);
	if (len < 0 || (size_t)len + 2 > cap || recv_exact(fd, buf, (size_t)len + 2))
		return -1;
	buf[len] = '\0';
	return '$';
}

static int kv_connect(void)
{
	return tcp_connect(srv.port);
}

static int group_setup(void **state)
{
	const char *args[] = { "--workers", "2", "--max-bulk", "2000000", NULL };

	srv_test_raise_nofile();
	return server_start(&srv, KV_SERVER_BIN, args);
}

static int group_teardown(void **state)
{
	if (srv.pid > 0)
		server_stop(&srv, SIGKILL, 5000);
	return 0;
}

static void test_kv_server_inline_and_array(void **state)
{
	int fd = kv_connect();

	assert_true(fd >= 0);
	assert_int_equal(send_str(fd, "PING\r\n"), 0);
	assert_int_equal(resp_read(fd, line, sizeof(line)), '+');
	assert_string_equal(line, "+PONG");
	assert_int_equal(
	    send_str(fd, "*3\r\n$3\r\nSET\r\n$4\r\nk:ia\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$4\r\nk:ia\r\n"), 0);
	assert_int_equal(resp_read(fd, line, sizeof(line)), '+');
	assert_int_equal(resp_read(fd, line, sizeof(line)), '$');
	assert_string_equal(line, "hello");
	close(fd);
}

static void test_kv_server_command_split_across_writes(void **state)
{
	const char *req = "*2\r\n$4\r\nECHO\r\n$11\r\nhello world\r\n";
	int fd = kv_connect();

	assert_true(fd >= 0);
	for (const char *p = req; *p; p++) { /* one byte per write */
		assert_int_equal(send_all(fd, p, 1), 0);
		usleep(1000);
	}
	assert_int_equal(resp_read(fd, line, sizeof(line)), '$');
	assert_string_equal(line, "hello world");
	close(fd);
}

static void test_kv_server_pipelined_in_order(void **state)
{
	static char batch[1 << 16];
	size_t len = 0;
	int fd = kv_connect(), in_order = 0;

	assert_true(fd >= 0);
	len += (size_t)sprintf(batch, "DEL k:pipe\r\n");
	for (int i = 0; i < 2000; i++)
		len += (size_t)sprintf(batch + len, "*2\r\n$4\r\nINCR\r\n$6\r\nk:pipe\r\n");
	assert_int_equal(send_all(fd, batch, len), 0); /* 2,000 requests in one write */
	assert_int_equal(resp_read(fd, line, sizeof(line)), ':');
	for (int i = 1; i <= 2000; i++) {
		char want[16];

		snprintf(want, sizeof(want), ":%d", i);
		if (resp_read(fd, line, sizeof(line)) == ':' && !strcmp(line, want))
			in_order++;
	}
	assert_int_equal(in_order, 2000);
	close(fd);
}

static void test_kv_server_protocol_error_closes(void **state)
{
	int fd = kv_connect();

	assert_true(fd >= 0);
	assert_int_equal(send_str(fd, "PING\r\n*1\r\n$x\r\n"), 0);
	assert_int_equal(resp_read(fd, line, sizeof(line)), '+'); /* the request before the bad one is answered */
	assert_int_equal(resp_read(fd, line, sizeof(line)), '-');
	assert_string_equal(line, "-ERR Protocol error: invalid bulk length");
	assert_true(peer_closes(fd, SRV_IO_TIMEOUT_MS));
	close(fd);
}

static void test_kv_server_oversized_bulk_refused(void **state)
{
	int fd = kv_connect();

	assert_true(fd >= 0);
	/* the length alone is refused (--max-bulk 2000000): the server never waits for the 3 GB */
	assert_int_equal(send_str(fd, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000000\r\n"), 0);
	assert_int_equal(resp_read(fd, line, sizeof(line)), '-');
	assert_string_equal(line, "-ERR Protocol error: invalid bulk length");
	assert_true(peer_closes(fd, SRV_IO_TIMEOUT_MS));
	close(fd);
	fd = kv_connect();
	assert_true(fd >= 0);
	assert_int_equal(send_str(fd, "*99999999\r\n"), 0);
	assert_int_equal(resp_read(fd, line, sizeof(line)), '-');
	assert_string_equal(line, "-ERR Protocol error: invalid multibulk length");
	close(fd);
}

static void test_kv_server_large_value(void **state)
{
	enum { N = 1500000 };
	static char req[N + 128], reply[N + 16];
	int fd = kv_connect(), n;

	assert_true(fd >= 0);
	n = sprintf(req, "*3\r\n$3\r\nSET\r\n$7\r\nk:large\r\n$%d\r\n", N);
	for (int i = 0; i < N; i++)
		req[n + i] = (char)('a' + i % 26);
	memcpy(req + n + N, "\r\n", 2);
	assert_int_equal(send_all(fd, req, (size_t)n + N + 2), 0);
	assert_int_equal(resp_read(fd, line, sizeof(line)), '+');
	assert_int_equal(send_str(fd, "GET k:large\r\n"), 0);
	assert_int_equal(resp_read(fd, reply, sizeof(reply)), '$');
	assert_int_equal(strlen(reply), N);
	assert_memory_equal(reply, req + n, N);
	close(fd);
}

static void test_kv_server_1000_connections(void **state)
{
	enum { N = 1000 };
	static int fds[N];
	int ok = 0;

	for (int i = 0; i < N; i++) {
		fds[i] = kv_connect();
		assert_true(fds[i] >= 0);
	}
	/* all open at once, each with a SET and a GET of its own key in flight, then every reply checked */
	for (int i = 0; i < N; i++) {
		char req[96];

		snprintf(req, sizeof(req), "SET k:conn:%d v%d\r\nGET k:conn:%d\r\n", i, i, i);
		assert_int_equal(send_str(fds[i], req), 0);
	}
	for (int i = 0; i < N; i++) {
		char want[16];

		snprintf(want, sizeof(want), "v%d", i);
		if (resp_read(fds[i], line, sizeof(line)) == '+' && resp_read(fds[i], line, sizeof(line)) == '$' &&
		    !strcmp(line, want))
			ok++;
		close(fds[i]);
	}
	assert_int_equal(ok, N);
}

static void test_kv_server_connection_limit(void **state)
{
	const char *args[] = { "--workers", "1", "--max-conns", "2", NULL };
	struct server_proc small;
	int a, b, c;
	char *log;

	assert_int_equal(server_start(&small, KV_SERVER_BIN, args), 0);
	a = tcp_connect(small.port);
	b = tcp_connect(small.port);
	assert_true(a >= 0 && b >= 0);
	assert_int_equal(send_str(a, "PING\r\n"), 0);
	assert_int_equal(send_str(b, "PING\r\n"), 0);
	assert_int_equal(resp_read(a, line, sizeof(line)), '+');
	assert_int_equal(resp_read(b, line, sizeof(line)), '+');
	c = tcp_connect(small.port);
	assert_true(c >= 0);
	assert_int_equal(resp_read(c, line, sizeof(line)), '-');
	assert_string_equal(line, "-ERR max number of clients reached");
	assert_true(peer_closes(c, SRV_IO_TIMEOUT_MS));
	close(c);
	close(a);
	close(b);
	assert_int_equal(server_stop(&small, SIGTERM, 20000), 0);
	log = server_log(&small, true);
	assert_non_null(strstr(log, "connection limit 2 reached"));
	free(log);
}

/* ---- shutdown under load ---------------------------------------------------------------------------------- */

/* Each client INCRs its own counter in pipelined batches of 8: every reply must be the next number. */
static void *load_client_fn(void *arg)
{
	struct srv_load_client *lc = arg;
	char key[32], batch[1024], buf[128];
	long next = 1;
	int fd = tcp_connect(lc->port);

	if (fd < 0)
		return NULL;
	snprintf(key, sizeof(key), "k:load:%d", lc->id);
	for (;;) {
		size_t len = 0;
		int r = 1;

		for (int k = 0; k < 8; k++)
			len += (size_t)sprintf(batch + len, "*2\r\n$4\r\nINCR\r\n$%zu\r\n%s\r\n", strlen(key), key);
		if (send_all(fd, batch, len))
			break;
		for (int k = 0; k < 8 && r; k++) {
			size_t n = 0;

			/* byte by byte: the end of the connection is fine between replies, not inside one */
			while (n < sizeof(buf) - 1) {
				if (recv(fd, buf + n, 1, 0) <= 0)
					break;
				buf[++n] = '\0';
				if (n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n')
					break;
			}
			if (n == 0) {
				r = 0;
				break;
			}
			buf[n] = '\0';
			if (n >= 2 && buf[n - 1] == '\n' && buf[0] == ':' && atol(buf + 1) == next) {
				lc->complete++;
				next++;
			} else {
				lc->bad++;
				r = 0;
			}
		}
		if (!r)
			break;
	}
	close(fd);
	return NULL;
}

static void test_kv_server_shutdown_under_load(void **state)
{
	const char *args[] = { "--workers", "2", NULL };
	struct srv_load_result r;

	/* 16 clients for 0.5 s, then SIGTERM; each runs until the server closes its connection */
	assert_int_equal(srv_load_run(KV_SERVER_BIN, args, 16, load_client_fn, 500000, 30000, &r), 0);
	assert_int_equal(r.status, 0);
	assert_true(r.complete > 0);
	assert_int_equal(r.bad, 0); /* every reply that arrived is whole and the next in its sequence */
	assert_non_null(strstr(r.log, "kv_server: stopped in "));
	free(r.log);
}

/* Last: the shared server stops on SIGTERM with exit status 0 and its summary line. */
static void test_kv_server_sigterm_exits_0(void **state)
{
	char *log;

	assert_int_equal(server_stop(&srv, SIGTERM, 30000), 0);
	log = server_log(&srv, true);
	assert_non_null(strstr(log, "connection(s) served"));
	assert_non_null(strstr(log, "protocol error(s)"));
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kv_server_inline_and_array),
		cmocka_unit_test(test_kv_server_command_split_across_writes),
		cmocka_unit_test(test_kv_server_pipelined_in_order),
		cmocka_unit_test(test_kv_server_protocol_error_closes),
		cmocka_unit_test(test_kv_server_oversized_bulk_refused),
		cmocka_unit_test(test_kv_server_large_value),
		cmocka_unit_test(test_kv_server_1000_connections),
		cmocka_unit_test(test_kv_server_connection_limit),
		cmocka_unit_test(test_kv_server_shutdown_under_load),
		cmocka_unit_test(test_kv_server_sigterm_exits_0),
	};

	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
