/*
 * echo_epoll.c - the epoll baseline of the echo benchmark: a minimal nonblocking TCP echo server.
 *
 *	baseline_echo_epoll [--port N] [--threads N] [--bufsize B]
 *
 * Each of the N threads (default 1) runs the same loop on its own listening socket, bound with SO_REUSEPORT to the
 * same port, so that the kernel spreads new connections over the threads and nothing is shared between them: the
 * way nginx and most hand-written epoll servers scale. Level-triggered epoll: one read per readiness event (the
 * loop stays fair between connections), the bytes are written back at once; whatever the socket does not take is
 * kept in the connection's buffer, and the connection stops reading (EPOLLOUT instead of EPOLLIN) until it has
 * drained, so a client that does not read cannot make the server buffer without bound.
 *
 * It does what the libfiber echo_server does per message (one receive, one send) and nothing more: it is the floor
 * bench_echo measures libfiber against. SIGINT and SIGTERM end it (default action); the kernel closes the sockets.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define MAX_THREADS 64

struct conn {
	int fd;
	size_t off, len; /* bytes of buf still to be sent: buf[off, off + len) */
	char buf[];	 /* bufsize bytes */
};

static int port = 7001;
static size_t bufsize = 16384;

static void die(const char *what, int err)
{
	fprintf(stderr, "echo_epoll: %s: %s\n", what, strerror(err));
	exit(1);
}

/* A nonblocking listening socket on port, SO_REUSEPORT so that every thread can bind its own. */
static int listen_on(int p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)p),
				  .sin_addr.s_addr = htonl(INADDR_ANY) };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

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

static void conn_close(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static void want(int ep, struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Send what is pending; 0 when it has all gone, 1 when the socket is full, -1 when the connection is dead. */
static int flush(struct conn *c)
{
	while (c->len) {
		ssize_t n = send(c->fd, c->buf + c->off, c->len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 1 : -1;
		}
		c->off += (size_t)n;
		c->len -= (size_t)n;
	}
	c->off = 0;
	return 0;
}

static void on_readable(int ep, struct conn *c)
{
	ssize_t n = recv(c->fd, c->buf, bufsize, 0);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		conn_close(ep, c);
		return;
	}
	if (n < 0)
		return;
	c->off = 0;
	c->len = (size_t)n;
	switch (flush(c)) {
	case 1: want(ep, c, EPOLLOUT); break; /* stop reading until the peer takes what it has */
	case -1: conn_close(ep, c); break;
	}
}

static void on_writable(int ep, struct conn *c)
{
	switch (flush(c)) {
	case 0: want(ep, c, EPOLLIN); break;
	case -1: conn_close(ep, c); break;
	}
}

static void on_accept(int ep, int lfd)
{
	for (;;) {
		int one = 1;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		struct conn *c;

		if (fd < 0) {
			if (errno == EAGAIN || errno == ECONNABORTED || errno == EINTR)
				return;
			/* EMFILE and friends: back off rather than spin; the connection waits in the backlog. */
			perror("echo_epoll: accept4");
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = malloc(sizeof(*c) + bufsize);
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->off = c->len = 0;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
		}
	}
}

static void *loop(void *arg)
{
	static char listener_tag; /* data.ptr of the listening socket: no connection has this address */
	struct epoll_event evs[MAX_EVENTS];
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listener_tag };
	int lfd = (int)(intptr_t)arg;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		die("epoll_create1", errno);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die("epoll_ctl", errno);
	for (;;) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);

		if (n < 0 && errno != EINTR)
			die("epoll_wait", errno);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (evs[i].data.ptr == &listener_tag)
				on_accept(ep, lfd);
			else if (evs[i].events & EPOLLOUT)
				on_writable(ep, c);
			else
				on_readable(ep, c); /* EPOLLIN, EPOLLHUP, EPOLLERR: recv says which */
		}
	}
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: baseline_echo_epoll [--port N] [--threads N] [--bufsize B]\n");
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
		else
			usage();
	}
	if (port <= 0 || port > 65535 || threads < 1 || threads > MAX_THREADS || bufsize < 1)
		usage();
	/* Every listener is bound before any loop runs: a client that connects as soon as the port answers
	 * then finds all of them (SO_REUSEPORT spreads connections over the sockets bound at connect time). */
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
