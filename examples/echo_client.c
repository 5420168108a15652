/*
 * echo_client.c - a load generator for echo servers on libfiber: one fiber per connection, every byte checked.
 *
 *	echo_client [--host H] [--port N] [--connections N] [--messages M] [--size S] [--workers N]
 *		    [--connect-concurrency K] [--hold-ms T] [--quiet]
 *
 * --host H		server name or address (default 127.0.0.1; resolved once, before the runtime starts)
 * --port N		server port (default 7000)
 * --connections N	connections, each its own fiber (default 100)
 * --messages M		messages per connection (default 1000)
 * --size S		bytes per message (default 64)
 * --workers N		libfiber workers (default: the CPUs the process may use)
 * --connect-concurrency K	connects in progress at once (default 512), so that 10,000 connections do not
 *			overflow the server's SYN and accept backlogs; once connected they all stay open
 * --hold-ms T		keep every connection open T ms after its last message (default 0)
 * --quiet		print nothing but errors
 *
 * Phases: every connection connects (at most K at a time); when all N are open (a barrier, so that they are
 * concurrent, not one after the other) each sends M messages one after the other, each time waiting for the whole message
 * to come back and comparing every byte with what it sent; then each holds its connection for T ms and closes it.
 * A message's bytes are a function of (connection, message number, offset), so bytes delivered to the wrong
 * connection, out of order, duplicated or lost are all caught.
 *
 * Output (stdout): the connections and bytes verified, throughput (messages/s and MiB/s each way, over the time
 * from the barrier to the last message echoed), and the round-trip latency of a message (first byte sent to last
 * byte received) at p50, p99, p99.9 and max. Exit status 0 only if every connection connected and every byte of
 * every message came back right; 1 otherwise (each distinct failure is said once on stderr, with how often).
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fiber.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Latency histogram: 64 buckets per power of two of nanoseconds (about 1.5% resolution), shared by all fibers. */
#define HIST_SUB 64
#define HIST_BUCKETS (64 * HIST_SUB)

static struct {
	const char *host;
	int port;
	unsigned long connections, messages;
	size_t size;
	unsigned long connect_concurrency;
	uint64_t hold_ns;
	bool quiet;
} opt = { "127.0.0.1", 7000, 100, 1000, 64, 512, 0, false };

static struct sockaddr_storage server_addr;
static socklen_t server_addrlen;

static fiber_sem_t connect_slots; /* connects in progress */
static fiber_wg_t connecting;	  /* connection fibers not yet past their connect (connected or not) */
static fiber_wg_t conns_done;	  /* connection fibers not yet gone */

static _Atomic uint64_t hist[HIST_BUCKETS];
static atomic_ulong nr_connected, nr_messages;
static _Atomic uint64_t t_start, t_end; /* ns: the first fiber past the barrier; the last message echoed */

/* Failures, counted by kind; the first message of each kind is kept to be printed. */
enum { E_CONNECT, E_SEND, E_RECV, E_EOF, E_MISMATCH, E_SPAWN, E_NR };
static const char *const e_name[E_NR] = { "connect", "send", "recv", "early EOF", "mismatch", "spawn" };
static atomic_ulong e_count[E_NR];
static char e_first[E_NR][160];
static atomic_flag e_said[E_NR];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fail(int kind, unsigned long conn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(int kind, unsigned long conn, const char *fmt, ...)
{
	va_list ap;
	int n;

	atomic_fetch_add(&e_count[kind], 1);
	if (atomic_flag_test_and_set(&e_said[kind]))
		return;
	n = snprintf(e_first[kind], sizeof(e_first[kind]), "connection %lu: ", conn);
	va_start(ap, fmt);
	vsnprintf(e_first[kind] + n, sizeof(e_first[kind]) - (size_t)n, fmt, ap);
	va_end(ap);
}

static unsigned hist_index(uint64_t ns)
{
	unsigned msb, shift;

	if (ns < HIST_SUB)
		return (unsigned)ns;
	msb = 63u - (unsigned)__builtin_clzll(ns);
	shift = msb - 5;
	return (shift + 1) * HIST_SUB + (unsigned)((ns >> shift) - HIST_SUB);
}

static uint64_t hist_value(unsigned idx)
{
	unsigned shift;

	if (idx < HIST_SUB)
		return idx;
	shift = idx / HIST_SUB - 1;
	return ((uint64_t)(idx % HIST_SUB + HIST_SUB) << shift) + ((1ull << shift) >> 1);
}

static uint64_t hist_quantile(uint64_t total, double q)
{
	uint64_t want = (uint64_t)((double)total * q + 0.999999), seen = 0;

	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		uint64_t n = atomic_load_explicit(&hist[i], memory_order_relaxed);

		seen += n;
		if (n && seen >= want)
			return hist_value(i);
	}
	return 0;
}

/* The bytes of message @msg of connection @conn: splitmix64 of (conn, msg, offset / 8). */
static void fill(unsigned char *buf, size_t len, unsigned long conn, unsigned long msg)
{
	uint64_t x = ((uint64_t)conn << 32) ^ (uint64_t)msg * 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		memcpy(buf + i, &z, len - i < 8 ? len - i : 8);
	}
}

static void atomic_max(_Atomic uint64_t *p, uint64_t v)
{
	uint64_t old = atomic_load(p);

	while (old < v && !atomic_compare_exchange_weak(p, &old, v))
		;
}

/* Connect with fiber_connect, at most connect_concurrency at a time. The socket, or -1 (failure counted). */
static int do_connect(unsigned long id)
{
	int one = 1, fd, err;

	fiber_sem_wait(&connect_slots);
	fd = socket(server_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fail(E_CONNECT, id, "socket: %s", strerror(errno));
		fiber_sem_post(&connect_slots);
		return -1;
	}
	err = fiber_connect(fd, (struct sockaddr *)&server_addr, server_addrlen);
	fiber_sem_post(&connect_slots);
	if (err < 0) {
		fail(E_CONNECT, id, "%s", strerror(-err));
		fiber_close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* One message: send all of it, receive all of it back, compare. true if it came back right. */
static bool round_trip(int fd, unsigned long id, unsigned long msg, unsigned char *sbuf, unsigned char *rbuf)
{
	size_t sent = 0, got = 0;
	uint64_t t0;

	fill(sbuf, opt.size, id, msg);
	t0 = now_ns();
	while (sent < opt.size) {
		ssize_t n = fiber_send(fd, sbuf + sent, opt.size - sent, MSG_NOSIGNAL);

		if (n < 0) {
			fail(E_SEND, id, "message %lu: %s", msg, strerror((int)-n));
			return false;
		}
		sent += (size_t)n;
	}
	while (got < opt.size) {
		ssize_t n = fiber_recv(fd, rbuf + got, opt.size - got, 0);

		if (n == 0) {
			fail(E_EOF, id, "message %lu: EOF after %zu of %zu bytes", msg, got, opt.size);
			return false;
		}
		if (n < 0) {
			fail(E_RECV, id, "message %lu: %s", msg, strerror((int)-n));
			return false;
		}
		got += (size_t)n;
	}
	atomic_fetch_add_explicit(&hist[hist_index(now_ns() - t0)], 1, memory_order_relaxed);
	if (memcmp(sbuf, rbuf, opt.size)) {
		size_t i = 0;

		while (sbuf[i] == rbuf[i])
			i++;
		fail(E_MISMATCH, id, "message %lu: byte %zu is %#x, sent %#x", msg, i, rbuf[i], sbuf[i]);
		return false;
	}
	return true;
}

static void *conn_main(void *arg)
{
	unsigned long id = (unsigned long)(uintptr_t)arg, msg;
	unsigned char *sbuf = malloc(opt.size), *rbuf = malloc(opt.size);
	int fd = -1;

	if (!sbuf || !rbuf)
		fail(E_SPAWN, id, "out of memory for the buffers");
	else
		fd = do_connect(id);
	if (fd >= 0)
		atomic_fetch_add(&nr_connected, 1);
	/* A barrier: the messages start when every connection that can be is open. */
	fiber_wg_done(&connecting);
	fiber_wg_wait(&connecting);
	atomic_compare_exchange_strong(&t_start, &(uint64_t){ 0 }, now_ns());
	for (msg = 0; fd >= 0 && msg < opt.messages; msg++) {
		if (!round_trip(fd, id, msg, sbuf, rbuf))
			break;
		atomic_fetch_add_explicit(&nr_messages, 1, memory_order_relaxed);
	}
	atomic_max(&t_end, now_ns());
	if (fd >= 0) {
		if (opt.hold_ns)
			fiber_sleep(opt.hold_ns);
		fiber_close(fd);
	}
	free(sbuf);
	free(rbuf);
	fiber_wg_done(&conns_done);
	return NULL;
}

static void run(void *arg)
{
	struct fiber_attr attr;
	unsigned long spawned;

	(void)arg;
	/* The buffers are on the heap: the fibers' stacks stay small. */
	fiber_attr_init(&attr);
	attr.stack_size = 64 * 1024;
	attr.flags = FIBER_ATTR_DETACHED;
	fiber_wg_add(&connecting, (int)opt.connections);
	for (spawned = 0; spawned < opt.connections; spawned++) {
		int err;

		fiber_wg_add(&conns_done, 1);
		err = fiber_spawn(NULL, &attr, conn_main, (void *)(uintptr_t)spawned);
		if (err) {
			fiber_wg_done(&conns_done);
			fail(E_SPAWN, spawned, "fiber_spawn: %s", strerror(-err));
			break;
		}
	}
	/* The connections that could not be spawned never arrive. */
	if (spawned < opt.connections)
		fiber_wg_add(&connecting, -(int)(opt.connections - spawned));
	fiber_wg_wait(&conns_done);
}

static void usage(void)
{
	fprintf(stderr, "usage: echo_client [--host H] [--port N] [--connections N] [--messages M] [--size S] "
			"[--workers N] [--connect-concurrency K] [--hold-ms T] [--quiet]\n");
	exit(2);
}

static unsigned long parse(const char *s, unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		usage();
	return v;
}

static int resolve(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char port[16];
	int err;

	snprintf(port, sizeof(port), "%d", opt.port);
	err = getaddrinfo(opt.host, port, &hints, &res);
	if (err) {
		fprintf(stderr, "echo_client: %s: %s\n", opt.host, gai_strerror(err));
		return -1;
	}
	memcpy(&server_addr, res->ai_addr, res->ai_addrlen);
	server_addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int main(int argc, char **argv)
{
	struct fiber_config cfg;
	struct rlimit rl;
	unsigned long total_err = 0;
	uint64_t n, elapsed;
	int err;

	fiber_config_init(&cfg);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--quiet")) {
			opt.quiet = true;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (!strcmp(a, "--host"))
			opt.host = argv[++i];
		else if (!strcmp(a, "--port"))
			opt.port = (int)parse(argv[++i], 1, 65535);
		else if (!strcmp(a, "--connections"))
			opt.connections = parse(argv[++i], 1, 1000000);
		else if (!strcmp(a, "--messages"))
			opt.messages = parse(argv[++i], 0, ~0ul);
		else if (!strcmp(a, "--size"))
			opt.size = parse(argv[++i], 1, 64ul << 20);
		else if (!strcmp(a, "--workers"))
			cfg.workers = (unsigned)parse(argv[++i], 1, 1024);
		else if (!strcmp(a, "--connect-concurrency"))
			opt.connect_concurrency = parse(argv[++i], 1, 1000000);
		else if (!strcmp(a, "--hold-ms"))
			opt.hold_ns = parse(argv[++i], 0, 86400000) * 1000000ull;
		else
			usage();
	}
	if (resolve() < 0)
		return 1;
	/* One descriptor per connection, and some to spare. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < opt.connections + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < opt.connections + 64)
			fprintf(stderr, "echo_client: RLIMIT_NOFILE is %llu: not enough for %lu connections\n",
				(unsigned long long)rl.rlim_cur, opt.connections);
	}
	signal(SIGPIPE, SIG_IGN);
	if (fiber_sem_init(&connect_slots, (unsigned)opt.connect_concurrency) || fiber_wg_init(&connecting) ||
	    fiber_wg_init(&conns_done)) {
		fprintf(stderr, "echo_client: bad --connections or --connect-concurrency\n");
		return 2;
	}
	err = fiber_run(&cfg, run, NULL);
	if (err) {
		fprintf(stderr, "echo_client: fiber_run: %s\n", strerror(-err));
		return 1;
	}

	n = atomic_load(&nr_messages);
	elapsed = atomic_load(&t_end) > atomic_load(&t_start) ? atomic_load(&t_end) - atomic_load(&t_start) : 0;
	for (int k = 0; k < E_NR; k++)
		total_err += atomic_load(&e_count[k]);
	if (!opt.quiet) {
		double s = (double)elapsed / 1e9;

		printf("echo_client: %lu of %lu connections open at once; %llu of %llu messages of %zu bytes echoed "
		       "and verified in %.3f s\n",
		       atomic_load(&nr_connected), opt.connections, (unsigned long long)n,
		       (unsigned long long)opt.connections * opt.messages, opt.size, s);
		if (n && s > 0) {
			printf("throughput: %.0f messages/s, %.2f MiB/s each way\n", (double)n / s,
			       (double)n * (double)opt.size / s / (1024.0 * 1024.0));
			printf("latency: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
			       (double)hist_quantile(n, 0.50) / 1e3, (double)hist_quantile(n, 0.99) / 1e3,
			       (double)hist_quantile(n, 0.999) / 1e3, (double)hist_quantile(n, 1.0) / 1e3);
		}
	}
	for (int k = 0; k < E_NR; k++) {
		unsigned long c = atomic_load(&e_count[k]);

		if (c)
			fprintf(stderr, "echo_client: %lu %s failure(s), the first: %s\n", c, e_name[k], e_first[k]);
	}
	if (total_err) {
		fprintf(stderr, "echo_client: FAILED\n");
		return 1;
	}
	return 0;
}
