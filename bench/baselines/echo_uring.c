/*
 * echo_uring.c - the raw io_uring baseline of the echo benchmark: a minimal liburing TCP echo server.
 *
 *	baseline_echo_uring [--port N] [--threads N] [--bufsize B] [--entries N]
 *
 * Each of the N threads (default 1) owns one ring and one listening socket bound with SO_REUSEPORT to the same
 * port (the kernel spreads the connections; nothing is shared between threads). The loop is the textbook
 * completion loop: one io_uring_submit_and_wait(ring, 1) per iteration submits every SQE prepared since the last
 * one and waits for at least one completion; then every CQE that is there is handled, which prepares the next SQEs:
 *
 *	accept (multishot)	-> a connection, a recv into its buffer
 *	recv of n > 0 bytes	-> a send of those n bytes
 *	send of m bytes		-> a send of the rest if it was short, else the next recv
 *	recv of 0 or an error	-> close
 *
 * so there is one system call per batch of completions, not one per operation, and at most one operation in flight
 * per connection. The ring is set up like libfiber's per-worker rings (SINGLE_ISSUER | DEFER_TASKRUN, falling back
 * to COOP_TASKRUN | TASKRUN_FLAG, then to no flags), so the comparison is of the runtime, not of ring flags.
 * A full submission queue is submitted and the SQE taken again, never dropped.
 *
 * SIGINT and SIGTERM end it (default action); the kernel closes the sockets and the ring.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_THREADS 64

/* The operation a CQE completes, in the low bits of its user_data (a struct conn is at least 8-byte aligned). */
enum { OP_ACCEPT = 0, OP_RECV = 1, OP_SEND = 2, OP_MASK = 3 };

struct conn {
	int fd;
	size_t off, len; /* the send in flight covers buf[off, off + len) */
	char buf[];	 /* bufsize bytes */
};

static int port = 7002;
static size_t bufsize = 16384;
static unsigned entries = 1024;

static void die(const char *what, int err)
{
	fprintf(stderr, "echo_uring: %s: %s\n", what, strerror(err));
	exit(1);
}

static int listen_on(int p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)p),
				  .sin_addr.s_addr = htonl(INADDR_ANY) };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket", errno);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		die("SO_REUSEPORT", errno);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind", errno);
	if (listen(fd, SOMAXCONN) < 0)
		die("listen", errno);
	return fd;
}

/* The ring with the best flags this kernel takes, tried in libfiber's order. */
static void ring_init(struct io_uring *ring)
{
	static const unsigned flags[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		0,
	};
	int err = -EINVAL;

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		struct io_uring_params p = { .flags = flags[i] };

		err = io_uring_queue_init_params(entries, ring, &p);
		if (err == 0)
			return;
		if (err != -EINVAL)
			break;
	}
	die("io_uring_queue_init_params", -err);
}

/* An SQE, submitting what is queued first when the submission queue is full. */
static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(ring))) {
		int err = io_uring_submit(ring);

		if (err < 0 && err != -EAGAIN && err != -EBUSY && err != -EINTR)
			die("io_uring_submit", -err);
	}
	return sqe;
}

static void arm_accept(struct io_uring *ring, int lfd)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, OP_ACCEPT);
}

static void arm_recv(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	io_uring_prep_recv(sqe, c->fd, c->buf, bufsize, 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_RECV);
}

static void arm_send(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_SEND);
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c);
}

static void on_accept(struct io_uring *ring, int lfd, const struct io_uring_cqe *cqe)
{
	struct conn *c;
	int one = 1;

	/* A multishot accept that ends (an error, or the kernel dropped it) is armed again. */
	if (!(cqe->flags & IORING_CQE_F_MORE))
		arm_accept(ring, lfd);
	if (cqe->res < 0) {
		if (cqe->res != -ECONNABORTED && cqe->res != -EINTR)
			fprintf(stderr, "echo_uring: accept: %s\n", strerror(-cqe->res));
		return;
	}
	setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = malloc(sizeof(*c) + bufsize);
	if (!c) {
		close(cqe->res);
		return;
	}
	c->fd = cqe->res;
	c->off = c->len = 0;
	arm_recv(ring, c);
}

static void on_recv(struct io_uring *ring, struct conn *c, int res)
{
	if (res <= 0) {
		conn_close(c); /* EOF or an error (ECONNRESET and the like) */
		return;
	}
	c->off = 0;
	c->len = (size_t)res;
	arm_send(ring, c);
}

static void on_send(struct io_uring *ring, struct conn *c, int res)
{
	if (res < 0) {
		conn_close(c);
		return;
	}
	c->off += (size_t)res;
	c->len -= (size_t)res;
	if (c->len)
		arm_send(ring, c); /* a short send: the rest */
	else
		arm_recv(ring, c);
}

static void *loop(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	struct io_uring ring;

	ring_init(&ring);
	arm_accept(&ring, lfd);
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int err = io_uring_submit_and_wait(&ring, 1);

		if (err < 0 && err != -EINTR && err != -EAGAIN && err != -EBUSY)
			die("io_uring_submit_and_wait", -err);
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			uint64_t ud = io_uring_cqe_get_data64(cqe);
			struct conn *c = (struct conn *)(uintptr_t)(ud & ~(uint64_t)OP_MASK);

			switch (ud & OP_MASK) {
			case OP_ACCEPT: on_accept(&ring, lfd, cqe); break;
			case OP_RECV: on_recv(&ring, c, cqe->res); break;
			case OP_SEND: on_send(&ring, c, cqe->res); break;
			}
			seen++;
		}
		io_uring_cq_advance(&ring, seen);
	}
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: baseline_echo_uring [--port N] [--threads N] [--bufsize B] [--entries N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	pthread_t t[MAX_THREADS];
	int lfd[MAX_THREADS];
	int threads = 1;

	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && !strcmp(argv[i], "--port"))
			port = atoi(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--threads"))
			threads = atoi(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--bufsize"))
			bufsize = (size_t)atol(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--entries"))
			entries = (unsigned)atoi(argv[++i]);
		else
			usage();
	}
	if (port <= 0 || port > 65535 || threads < 1 || threads > MAX_THREADS || bufsize < 1 || bufsize > INT32_MAX ||
	    entries < 1)
		usage();
	/* Every listener is bound before any loop runs: a client that connects as soon as the port answers finds
	 * all of them (SO_REUSEPORT spreads connections over the sockets bound at connect time). Until a loop has
	 * armed its accept, connections wait in that socket's backlog. */
	for (int i = 0; i < threads; i++)
		lfd[i] = listen_on(port);
	for (int i = 1; i < threads; i++) {
		int err = pthread_create(&t[i], NULL, loop, (void *)(intptr_t)lfd[i]);

		if (err)
			die("pthread_create", err);
	}
	loop((void *)(intptr_t)lfd[0]);
	return 0;
}
