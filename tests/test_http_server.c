/*
 * examples/http_server driven from raw sockets: every status code it promises, keep-alive, pipelining in order,
 * files, timeouts (idle, slowloris), the connection limit, 1,000 concurrent connections, and a shutdown under load
 * that loses no reply. The server is a separate process (HTTP_SERVER_BIN), on a free loopback port.
 */
#include "server_util.h"

#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/stat.h>
#include <utime.h>

#include <cmocka.h>

static struct server_proc srv;
static char root[64];
static char head[65536], body[1 << 21];

static int http_connect(void)
{
	return tcp_connect(srv.port);
}

/* One request on a new connection; the status, with the reply in head/body. */
static int one_request(const char *req, bool head_req)
{
	int fd = http_connect(), status;

	if (fd < 0)
		return -1;
	status = send_str(fd, req) ? -1 : http_read(fd, head, sizeof(head), body, sizeof(body), NULL, head_req);
	close(fd);
	return status;
}

static void write_file(const char *rel, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int group_setup(void **state)
{
	const char *args[] = { "--workers",	   "2", "--root",	  root, "--max-body", "65536",
			       "--header-timeout", "1", "--idle-timeout", "3",	NULL };
	char path[256];
	struct utimbuf t = { 1000000000, 1000000000 }; /* 2001-09-09 */

	srv_test_raise_nofile();
	strcpy(root, "/tmp/httptest.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	write_file("a.txt", "file a\n");
	snprintf(path, sizeof(path), "%s/dir", root);
	mkdir(path, 0755);
	write_file("dir/index.html", "<p>index</p>\n");
	write_file("style.css", "p{}\n");
	snprintf(path, sizeof(path), "%s/a.txt", root);
	utime(path, &t);
	return server_start(&srv, HTTP_SERVER_BIN, args);
}

static int group_teardown(void **state)
{
	char cmd[128];

	if (srv.pid > 0)
		server_stop(&srv, SIGKILL, 5000);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_http_server_hello(void **state)
{
	assert_int_equal(one_request("GET / HTTP/1.1\r\nHost: x\r\n\r\n", false), 200);
	assert_string_equal(body, "Hello, World!");
	assert_non_null(strcasestr(head, "\r\nContent-Type: text/plain\r\n"));
	assert_non_null(strcasestr(head, "\r\nContent-Length: 13\r\n"));
	assert_non_null(strcasestr(head, "\r\nDate: "));
}

static void test_http_server_head_has_no_body(void **state)
{
	int fd = http_connect();

	assert_true(fd >= 0);
	/* a HEAD and then a GET on the same connection: a body after the HEAD would be read as the GET's reply */
	assert_int_equal(send_str(fd, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, true), 200);
	assert_non_null(strcasestr(head, "\r\nContent-Length: 13\r\n"));
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 200);
	assert_string_equal(body, "Hello, World!");
	close(fd);
}

static void test_http_server_keepalive(void **state)
{
	int fd = http_connect();

	assert_true(fd >= 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(send_str(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
		assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 200);
		assert_null(strcasestr(head, "Connection: close"));
	}
	close(fd);
}

static void test_http_server_http10_keepalive(void **state)
{
	int fd = http_connect();

	assert_true(fd >= 0);
	/* what ab -k sends: HTTP/1.0 with Connection: Keep-Alive, answered with Connection: keep-alive */
	assert_int_equal(send_str(fd, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0);
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 200);
	assert_non_null(strcasestr(head, "\r\nConnection: keep-alive\r\n"));
	assert_int_equal(send_str(fd, "GET / HTTP/1.0\r\n\r\n"), 0);
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 200);
	assert_non_null(strcasestr(head, "\r\nConnection: close\r\n"));
	assert_true(peer_closes(fd, SRV_IO_TIMEOUT_MS));
	close(fd);
}

static void test_http_server_pipelined_in_order(void **state)
{
	static char batch[1 << 16];
	size_t len = 0;
	int fd = http_connect();

	assert_true(fd >= 0);
	for (int i = 0; i < 100; i++) {
		char b[32];
		int n = snprintf(b, sizeof(b), "request %d", i);

		switch (i % 4) {
		case 0: len += (size_t)sprintf(batch + len, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); break;
		case 1:
			len += (size_t)sprintf(batch + len,
					       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", n, b);
			break;
		case 2: len += (size_t)sprintf(batch + len, "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"); break;
		default: len += (size_t)sprintf(batch + len, "GET /missing-%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
		}
	}
	assert_int_equal(send_all(fd, batch, len), 0); /* all 100 in one write */
	for (int i = 0; i < 100; i++) {
		int status = http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false);
		char b[32];

		snprintf(b, sizeof(b), "request %d", i);
		switch (i % 4) {
		case 0:
			assert_int_equal(status, 200);
			assert_string_equal(body, "Hello, World!");
			break;
		case 1:
			assert_int_equal(status, 200);
			assert_string_equal(body, b);
			break;
		case 2:
			assert_int_equal(status, 200);
			assert_string_equal(body, "file a\n");
			break;
		default: assert_int_equal(status, 404);
		}
	}
	close(fd);
}

static void test_http_server_400_malformed_closes(void **state)
{
	int fd = http_connect();

	assert_true(fd >= 0);
	assert_int_equal(send_str(fd, "GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n"), 0);
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 400);
	assert_non_null(strcasestr(head, "\r\nConnection: close\r\n"));
	assert_true(peer_closes(fd, SRV_IO_TIMEOUT_MS));
	close(fd);
	assert_int_equal(one_request("\x01\x02 garbage\r\n\r\n", false), 400);
}

static void test_http_server_404_keeps_connection(void **state)
{
	int fd = http_connect();

	assert_true(fd >= 0);
	assert_int_equal(send_str(fd, "GET /no/such/file HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 404);
	assert_int_equal(send_str(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 200);
	close(fd);
}

static void test_http_server_405_with_allow(void **state)
{
	int fd = http_connect();

	assert_true(fd >= 0);
	assert_int_equal(send_str(fd, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"), 0);
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 405);
	assert_non_null(strcasestr(head, "\r\nAllow: GET, HEAD\r\n"));
	assert_int_equal(send_str(fd, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 405);
	assert_non_null(strcasestr(head, "\r\nAllow: POST\r\n"));
	assert_int_equal(send_str(fd, "DELETE /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 405);
	/* the connection is still in step */
	assert_int_equal(send_str(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 200);
	close(fd);
}

static void test_http_server_413_body_too_large(void **state)
{
	int fd = http_connect();

	assert_true(fd >= 0);
	assert_int_equal(send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"), 0);
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 413);
	assert_true(peer_closes(fd, SRV_IO_TIMEOUT_MS));
	close(fd);
}

static void test_http_server_413_chunked_too_large(void **state)
{
	int fd = http_connect();
	static char chunk[40000];

	assert_true(fd >= 0);
	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
	for (int i = 0; i < 2; i++) { /* 2 x 40,000 bytes > --max-body 65536 */
		assert_int_equal(send_str(fd, "9c40\r\n"), 0);
		assert_int_equal(send_all(fd, chunk, sizeof(chunk)), 0);
		assert_int_equal(send_str(fd, "\r\n"), 0);
	}
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 413);
	close(fd);
}

static void test_http_server_414_uri_too_long(void **state)
{
	static char req[10000];

	strcpy(req, "GET /");
	memset(req + 5, 'a', 9000);
	strcpy(req + 9005, " HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(one_request(req, false), 414);
}

static void test_http_server_431_headers_too_large(void **state)
{
	static char req[40000];
	size_t len = (size_t)sprintf(req, "GET / HTTP/1.1\r\nHost: x\r\n");

	for (int i = 0; i < 300; i++)
		len += (size_t)sprintf(req + len, "X-Filler-%03d: %s\r\n", i,
				       "0123456789012345678901234567890123456789"
				       "012345678901234567890123");
	strcpy(req + len, "\r\n");
	assert_int_equal(one_request(req, false), 431);
}

static void test_http_server_501_transfer_coding(void **state)
{
	assert_int_equal(one_request("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", false), 501);
	assert_int_equal(
	    one_request("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false),
	    501);
}

static void test_http_server_505_version(void **state)
{
	assert_int_equal(one_request("GET / HTTP/2.0\r\nHost: x\r\n\r\n", false), 505);
}

static void test_http_server_echo_chunked(void **state)
{
	assert_int_equal(one_request("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
				     "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
				     false),
			 200);
	assert_string_equal(body, "hello, world");
}

static void test_http_server_files(void **state)
{
	assert_int_equal(one_request("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n", false), 200);
	assert_string_equal(body, "file a\n");
	assert_non_null(strcasestr(head, "\r\nContent-Type: text/plain"));
	assert_non_null(strcasestr(head, "\r\nLast-Modified: Sun, 09 Sep 2001 01:46:40 GMT\r\n"));
	assert_int_equal(one_request("HEAD /style.css HTTP/1.1\r\nHost: x\r\n\r\n", true), 200);
	assert_non_null(strcasestr(head, "\r\nContent-Type: text/css\r\n"));
	assert_non_null(strcasestr(head, "\r\nContent-Length: 4\r\n"));
	assert_int_equal(one_request("GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n", false), 200);
	assert_string_equal(body, "<p>index</p>\n");
	assert_int_equal(one_request("GET /dir/../a.txt?query=1 HTTP/1.1\r\nHost: x\r\n\r\n", false), 200);
	assert_string_equal(body, "file a\n");
}

static void test_http_server_if_modified_since(void **state)
{
	assert_int_equal(
	    one_request("GET /a.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Sun, 09 Sep 2001 01:46:40 GMT"
			"\r\n\r\n",
			false),
	    304);
	assert_int_equal(
	    one_request("GET /a.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT"
			"\r\n\r\n",
			false),
	    200);
	assert_string_equal(body, "file a\n");
}

static void test_http_server_no_path_escape(void **state)
{
	assert_int_equal(one_request("GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", false), 400);
	assert_int_equal(one_request("GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", false), 400);
	assert_int_equal(one_request("GET /dir/..%2f..%2fetc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", false), 400);
	assert_int_equal(one_request("GET /a.txt%00.html HTTP/1.1\r\nHost: x\r\n\r\n", false), 400);
}

static void test_http_server_slowloris_408(void **state)
{
	uint64_t t0 = srv_test_now_ms();
	int fd = http_connect(), status = -1;

	assert_true(fd >= 0);
	/* a header byte every 100 ms: never idle for long, but the header section takes longer than --header-timeout
	 * (1 s) */
	assert_int_equal(send_str(fd, "GET / HTTP/1.1\r\n"), 0);
	for (int i = 0; i < 100 && srv_test_now_ms() - t0 < 15000; i++) {
		struct pollfd p = { fd, POLLIN, 0 };

		if (poll(&p, 1, 0) > 0)
			break;
		if (send_str(fd, "X") < 0)
			break;
		usleep(100000);
	}
	status = http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false);
	assert_int_equal(status, 408);
	assert_true(peer_closes(fd, SRV_IO_TIMEOUT_MS));
	close(fd);
}

static void test_http_server_idle_timeout_closes(void **state)
{
	int fd = http_connect();

	assert_true(fd >= 0);
	assert_int_equal(send_str(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 200);
	/* --idle-timeout 3: closed without a reply a little after 3 s */
	assert_true(peer_closes(fd, SRV_IO_TIMEOUT_MS));
	close(fd);
}

static void test_http_server_1000_connections(void **state)
{
	enum { N = 1000 };
	static int fds[N];
	int ok = 0;

	for (int i = 0; i < N; i++) {
		fds[i] = http_connect();
		assert_true(fds[i] >= 0);
	}
	/* every connection open at once, each with a request in flight, then every reply read and checked */
	for (int i = 0; i < N; i++) {
		char req[96];

		snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nc%07d", i);
		assert_int_equal(send_str(fds[i], req), 0);
	}
	for (int i = 0; i < N; i++) {
		char want[16];

		snprintf(want, sizeof(want), "c%07d", i);
		if (http_read(fds[i], head, sizeof(head), body, sizeof(body), NULL, false) == 200 &&
		    !strcmp(body, want))
			ok++;
		close(fds[i]);
	}
	assert_int_equal(ok, N);
}

static void test_http_server_connection_limit(void **state)
{
	const char *args[] = { "--workers", "1", "--max-conns", "2", NULL };
	struct server_proc small;
	int a, b, c;
	char *log;

	assert_int_equal(server_start(&small, HTTP_SERVER_BIN, args), 0);
	a = tcp_connect(small.port);
	b = tcp_connect(small.port);
	assert_true(a >= 0 && b >= 0);
	/* a reply on each: both are accepted and counted before the third arrives */
	for (int i = 0; i < 2; i++) {
		int fd = i ? b : a;

		assert_int_equal(send_str(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
		assert_int_equal(http_read(fd, head, sizeof(head), body, sizeof(body), NULL, false), 200);
	}
	c = tcp_connect(small.port);
	assert_true(c >= 0);
	assert_int_equal(http_read(c, head, sizeof(head), body, sizeof(body), NULL, false), 503);
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

/* Read one reply: 1 complete and right, 0 end of connection at a reply boundary, -1 cut short or wrong. */
static int load_read(int fd, int i)
{
	char h[1024], b[64], want[32];
	size_t len = 0, n;
	const char *cl;

	while (len < sizeof(h) - 1) {
		ssize_t r = recv(fd, h + len, 1, 0);

		if (r <= 0)
			return len == 0 ? 0 : -1;
		h[++len] = '\0';
		if (len >= 4 && !memcmp(h + len - 4, "\r\n\r\n", 4))
			break;
	}
	cl = strcasestr(h, "content-length:");
	if (strncmp(h, "HTTP/1.1 200 ", 13) || !cl)
		return -1;
	n = strtoul(cl + 15, NULL, 10);
	if (n >= sizeof(b) || recv_exact(fd, b, n))
		return -1;
	b[n] = '\0';
	snprintf(want, sizeof(want), "r%d", i);
	return strcmp(b, want) ? -1 : 1;
}

static void *load_client_fn(void *arg)
{
	struct srv_load_client *lc = arg;
	int i = 0;

	while (!atomic_load(lc->stop_sending)) {
		int fd = tcp_connect(lc->port);

		if (fd < 0)
			break; /* the listener is gone */
		for (;;) {
			char batch[1024];
			size_t len = 0;
			int first = i, r = 1;

			/* a pipelined batch of 4, then its 4 replies */
			for (int k = 0; k < 4; k++, i++) {
				char b[16];
				int n = snprintf(b, sizeof(b), "r%d", i);

				len += (size_t)sprintf(batch + len,
						       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s",
						       n, b);
			}
			if (send_all(fd, batch, len))
				r = 0;
			for (int k = 0; k < 4 && r == 1; k++) {
				r = load_read(fd, first + k);
				if (r == 1)
					lc->complete++;
				if (r < 0)
					lc->bad++;
			}
			if (r != 1)
				break;
		}
		close(fd);
	}
	return NULL;
}

static void test_http_server_shutdown_under_load(void **state)
{
	const char *args[] = { "--workers", "2", NULL };
	struct srv_load_result r;

	/* 8 clients for 0.5 s, then SIGTERM */
	assert_int_equal(srv_load_run(HTTP_SERVER_BIN, args, 8, load_client_fn, 500000, 30000, &r), 0);
	assert_int_equal(r.status, 0);
	assert_true(r.complete > 0);
	assert_int_equal(r.bad, 0); /* every reply the clients got is whole and right */
	assert_non_null(strstr(r.log, "http_server: stopped in "));
	free(r.log);
}

/*
 * ---- a backlog of connections is accepted in one turn ----
 * The acceptor used to take one connection per turn on its worker: an io_uring accept, a park, a wake-up and a
 * wait for its next turn each. A burst of connects on a busy server (wrk -c500's start) then waited for as many
 * turns among the busy connection fibers: in some runs the last ones were accepted 3 s later, which made the long
 * tail of wrk's p99. Now it takes everything waiting with plain nonblocking accept4 calls and parks (fiber_poll)
 * only when none is left. The server is stopped (SIGSTOP) while BACKLOG_CONNS connect, so that all of them wait in
 * the backlog when it goes on; the ring's SQE count (fiber_dump, FIBER_DUMP_SIGNAL) tells how they were taken:
 * each connection's fiber submits its first recv, and before the fix each accept was an SQE too (2 per
 * connection, against 1 now). Then every connection gets its reply.
 */
#define BACKLOG_CONNS 200

/* The ring's submitted count from a fresh dump of @sp (its log), or -1. */
static long dump_submitted(struct server_proc *sp)
{
	long n = -1;

	for (int tries = 0; tries < 50 && n < 0; tries++) {
		char *log, *p, *last = NULL;

		kill(sp->pid, SIGUSR1);
		usleep(100000);
		log = server_log(sp, false);
		if (!log)
			continue;
		for (p = strstr(log, "totals:"); p; p = strstr(p + 1, "totals:"))
			last = p; /* the newest dump */
		if (last && (p = strstr(last, " submitted ")))
			n = strtol(p + strlen(" submitted "), NULL, 10);
		free(log);
	}
	return n;
}

static void test_http_server_backlog_accepted_in_one_turn(void **state)
{
	const char *args[] = { "--workers", "1", NULL };
	const char *mode = getenv("FIBER_IO");
	static int fds[BACKLOG_CONNS];
	struct server_proc s;
	long before, after;
	int ok = 0;

	(void)state;
	if (mode && !strcmp(mode, "poll"))
		skip(); /* no ring to count on */
	setenv("FIBER_DUMP_SIGNAL", "SIGUSR1", 1);
	assert_int_equal(server_start(&s, HTTP_SERVER_BIN, args), 0);
	unsetenv("FIBER_DUMP_SIGNAL");
	before = dump_submitted(&s);
	kill(s.pid, SIGSTOP);
	for (int i = 0; i < BACKLOG_CONNS; i++)
		fds[i] = tcp_connect(s.port); /* the kernel completes the handshakes into the backlog */
	kill(s.pid, SIGCONT);
	usleep(300000);
	after = dump_submitted(&s);
	for (int i = 0; i < BACKLOG_CONNS; i++) {
		if (fds[i] < 0)
			continue;
		if (!send_str(fds[i], "GET / HTTP/1.1\r\nHost: x\r\n\r\n") &&
		    http_read(fds[i], head, sizeof(head), body, sizeof(body), NULL, false) == 200 &&
		    !strcmp(body, "Hello, World!"))
			ok++;
		close(fds[i]);
	}
	server_stop(&s, SIGTERM, 30000);
	free(server_log(&s, true));
	print_message("  %d connections waiting in the backlog: %ld SQEs submitted while they were taken\n",
		      BACKLOG_CONNS, after - before);
	assert_int_equal(ok, BACKLOG_CONNS);
	assert_true(before >= 0 && after >= before);
	assert_true(after - before >= BACKLOG_CONNS / 2);    /* the recvs (a few may still wait in the SQ) */
	assert_true(after - before < BACKLOG_CONNS * 3 / 2); /* before: one accept each too */
}

/* Last: the shared server stops on SIGTERM with exit status 0 and its summary line. */
static void test_http_server_sigterm_exits_0(void **state)
{
	char *log;

	assert_int_equal(server_stop(&srv, SIGTERM, 30000), 0);
	log = server_log(&srv, true);
	assert_non_null(strstr(log, "connection(s) served"));
	assert_non_null(strstr(log, " 4xx, "));
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_server_hello),
		cmocka_unit_test(test_http_server_head_has_no_body),
		cmocka_unit_test(test_http_server_keepalive),
		cmocka_unit_test(test_http_server_http10_keepalive),
		cmocka_unit_test(test_http_server_pipelined_in_order),
		cmocka_unit_test(test_http_server_400_malformed_closes),
		cmocka_unit_test(test_http_server_404_keeps_connection),
		cmocka_unit_test(test_http_server_405_with_allow),
		cmocka_unit_test(test_http_server_413_body_too_large),
		cmocka_unit_test(test_http_server_413_chunked_too_large),
		cmocka_unit_test(test_http_server_414_uri_too_long),
		cmocka_unit_test(test_http_server_431_headers_too_large),
		cmocka_unit_test(test_http_server_501_transfer_coding),
		cmocka_unit_test(test_http_server_505_version),
		cmocka_unit_test(test_http_server_echo_chunked),
		cmocka_unit_test(test_http_server_files),
		cmocka_unit_test(test_http_server_if_modified_since),
		cmocka_unit_test(test_http_server_no_path_escape),
		cmocka_unit_test(test_http_server_slowloris_408),
		cmocka_unit_test(test_http_server_idle_timeout_closes),
		cmocka_unit_test(test_http_server_1000_connections),
		cmocka_unit_test(test_http_server_connection_limit),
		cmocka_unit_test(test_http_server_shutdown_under_load),
		cmocka_unit_test(test_http_server_backlog_accepted_in_one_turn),
		cmocka_unit_test(test_http_server_sigterm_exits_0),
	};

	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
