/*
 * echo_server.c - a TCP echo server on libfiber: one fiber per connection, written the way blocking code is.
 *
 *	echo_server [--port N] [--workers N] [--backlog N]
 *
 * --port N	TCP port on every IPv4 address (default 7000; 0 = a free port chosen by the kernel)
 * --workers N	libfiber workers (default: the CPUs the process may use, as fiber_config's 0 means)
 * --backlog N	listen(2) backlog (default SOMAXCONN, which the kernel caps at net.core.somaxconn)
 *
 * Once it listens it prints "echo_server: listening on port P, W worker(s)" on stdout (P is the real port, also
 * with --port 0) and flushes it, so a script can wait for that line.
 *
 * Structure. An acceptor fiber loops in fiber_accept() and spawns one detached fiber per connection; that fiber
 * loops fiber_recv() -> fiber_send() until the peer closes, and closes the socket. Each call parks only its own
 * fiber while the worker's io_uring does the work, so 10,000 connections are 10,000 small fibers, not 10,000
 * threads. Connections register themselves in a list (a fiber mutex) so that shutdown can reach them.
 *
 * Shutdown. SIGINT and SIGTERM are blocked in every thread (the mask is set before the runtime starts its workers)
 * and taken by a plain thread in sigwait(), which wakes the main fiber through a wait queue (fiber_wake_up works
 * from any thread). The main fiber then does what a user of a server expects on ^C or `kill`:
 *	1. stops accepting: cancels the acceptor (its fiber_accept returns -ECANCELED), which closes the listener,
 *	   so new connections are refused;
 *	2. closes every open connection: cancels each connection fiber (its pending fiber_recv or fiber_send returns
 *	   -ECANCELED), which closes its socket, so the peer reads EOF;
 *	3. waits until every connection fiber has gone, prints how many connections it closed, and exits 0.
 * A second signal while that runs exits at once with status 1 (the kernel closes the sockets).
 *
 * Errors a server must ride out do not stop it: EMFILE/ENFILE/ENOBUFS/ENOMEM from accept back off (5 ms, doubling
 * to 1 s, as Go's net/http does) and retry; ECONNABORTED is ignored; a connection whose peer resets it just ends.
 * RLIMIT_NOFILE is raised to its hard limit at start (as Go does), since every connection is a descriptor.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fiber.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ECHO_BUF 8192 /* per connection, on its fiber's stack */

struct conn {
	struct conn *next, *prev; /* in the server's list; server.lock */
	fiber_t *fiber;		  /* set by the connection's own fiber; server.lock */
	int fd;
};

static struct server {
	int lfd; /* the listening socket; closed by the acceptor when it stops */
	fiber_t *acceptor;
	fiber_mutex_t lock;	   /* the connection list and stopping */
	struct conn head;	   /* list of open connections; lock */
	bool stopping;		   /* no connection may register any more; lock */
	unsigned long nr_open;	   /* lock */
	fiber_wg_t live;	   /* connection fibers not yet gone (added by the acceptor before spawning) */
	struct fiber_waitq sig_wq; /* the main fiber waits here for sig */
	atomic_int sig;		   /* the first signal taken by the signal thread; 0 = none yet */
} srv = {
	.lock = FIBER_MUTEX_INITIALIZER,
	.head = { &srv.head, &srv.head, NULL, -1 },
	.sig_wq = FIBER_WAITQ_INIT(srv.sig_wq),
};

/* Send all of buf; 0 or -errno. */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = fiber_send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0)
			return (int)n;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	char buf[ECHO_BUF];
	bool run;

	/* Register, unless shutdown has already walked the list: then this connection is closed at once. */
	fiber_mutex_lock(&srv.lock);
	run = !srv.stopping;
	if (run) {
		c->fiber = fiber_self();
		c->next = &srv.head;
		c->prev = srv.head.prev;
		srv.head.prev->next = c;
		srv.head.prev = c;
		srv.nr_open++;
	}
	fiber_mutex_unlock(&srv.lock);

	while (run) {
		ssize_t n = fiber_recv(c->fd, buf, sizeof(buf), 0);

		/* 0: the peer closed; < 0: reset, cancelled by shutdown, or another error: the connection ends.
		 * fiber_close is not a cancellation point: a cancelled fiber still closes its socket below. */
		if (n <= 0 || send_all(c->fd, buf, (size_t)n) < 0)
			break;
	}

	if (run) {
		fiber_mutex_lock(&srv.lock);
		c->prev->next = c->next;
		c->next->prev = c->prev;
		srv.nr_open--;
		fiber_mutex_unlock(&srv.lock);
	}
	fiber_close(c->fd);
	free(c);
	fiber_wg_done(&srv.live);
	return NULL;
}

/* The acceptor: until cancelled, accept and spawn one detached fiber per connection. Closes the listener. */
static void *acceptor_main(void *arg)
{
	uint64_t backoff_ns = 0;

	(void)arg;
	for (;;) {
		int one = 1, err;
		struct conn *c;
		int fd = fiber_accept(srv.lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd == -ECANCELED)
			break;
		if (fd == -ECONNABORTED || fd == -EINTR)
			continue;
		if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
			/* Out of descriptors or memory: the connection waits in the backlog until some close. */
			backoff_ns = backoff_ns ? backoff_ns * 2 : 5000000;
			if (backoff_ns > 1000000000)
				backoff_ns = 1000000000;
			fprintf(stderr, "echo_server: accept: %s; retrying in %llu ms\n", strerror(-fd),
				(unsigned long long)(backoff_ns / 1000000));
			if (fiber_sleep(backoff_ns) == -ECANCELED)
				break;
			continue;
		}
		if (fd < 0) {
			fprintf(stderr, "echo_server: accept: %s; no longer accepting\n", strerror(-fd));
			break;
		}
		backoff_ns = 0;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			fiber_close(fd);
			continue;
		}
		c->fd = fd;
		fiber_wg_add(&srv.live, 1);
		err = fiber_spawn(NULL, NULL, conn_main, c);
		if (err) {
			/* Out of memory for a fiber: this connection is refused, the others go on. */
			fprintf(stderr, "echo_server: fiber_spawn: %s\n", strerror(-err));
			fiber_wg_done(&srv.live);
			fiber_close(fd);
			free(c);
		}
	}
	fiber_close(srv.lfd);
	return NULL;
}

/* The signal thread: a plain pthread in sigwait(); libfiber installs no signal handler of its own. */
static void *signal_thread(void *arg)
{
	sigset_t *set = arg;

	for (;;) {
		int sig;

		if (sigwait(set, &sig) != 0)
			continue;
		if (atomic_exchange(&srv.sig, sig) == 0) {
			fiber_wake_up(&srv.sig_wq);
			continue;
		}
		fprintf(stderr, "echo_server: %s again: exiting now\n", strsignal(sig));
		_exit(1);
	}
	return NULL;
}

/* The main fiber: starts the acceptor, waits for a signal, then shuts down (see the top of this file). */
static void *serve_fiber(void *arg)
{
	unsigned long closed;
	struct conn *c;
	int err;

	(void)arg;
	err = fiber_spawn(&srv.acceptor, NULL, acceptor_main, NULL);
	if (err) {
		fprintf(stderr, "echo_server: fiber_spawn: %s\n", strerror(-err));
		close(srv.lfd);
		return NULL;
	}

	fiber_wait_event(&srv.sig_wq, atomic_load(&srv.sig) != 0);

	/* 1. No new connections. */
	fiber_cancel(srv.acceptor);
	fiber_join(srv.acceptor, NULL);
	/* 2. Close the open ones: from here on a connection fiber that starts does not register, it just closes. */
	fiber_mutex_lock(&srv.lock);
	srv.stopping = true;
	closed = srv.nr_open;
	fprintf(stderr, "echo_server: %s: closing the listener and %lu connection(s)\n",
		strsignal(atomic_load(&srv.sig)), closed);
	for (c = srv.head.next; c != &srv.head; c = c->next)
		fiber_cancel(c->fiber);
	fiber_mutex_unlock(&srv.lock);
	/* 3. Every connection fiber gone (those not yet started included). */
	fiber_wg_wait(&srv.live);
	fprintf(stderr, "echo_server: closed %lu connection(s), exiting\n", closed);
	return NULL;
}

/* The listening socket, or -1 (said on stderr); *port becomes the port it is bound to. */
static int listen_on(int *port, int backlog)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)*port),
				  .sin_addr.s_addr = htonl(INADDR_ANY) };
	socklen_t len = sizeof(sa);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		perror("echo_server: socket");
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, backlog) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		fprintf(stderr, "echo_server: port %d: %s\n", *port, strerror(errno));
		close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static void usage(void)
{
	fprintf(stderr, "usage: echo_server [--port N] [--workers N] [--backlog N]\n");
	exit(2);
}

static long parse(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	struct fiber_config cfg;
	struct rlimit rl;
	sigset_t set;
	pthread_t st;
	int port = 7000, backlog = SOMAXCONN, err;

	fiber_config_init(&cfg);
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && !strcmp(argv[i], "--port"))
			port = (int)parse(argv[++i], 0, 65535);
		else if (i + 1 < argc && !strcmp(argv[i], "--workers"))
			cfg.workers = (unsigned)parse(argv[++i], 1, 1024);
		else if (i + 1 < argc && !strcmp(argv[i], "--backlog"))
			backlog = (int)parse(argv[++i], 1, 1 << 20);
		else
			usage();
	}

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* Blocked before any other thread exists, so that every thread (the runtime's too) inherits the mask and
	 * only the signal thread takes them. A peer that resets a connection must not kill the server either. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	srv.lfd = listen_on(&port, backlog);
	if (srv.lfd < 0)
		return 1;
	fiber_wg_init(&srv.live);
	err = pthread_create(&st, NULL, signal_thread, &set);
	if (err) {
		fprintf(stderr, "echo_server: pthread_create: %s\n", strerror(err));
		return 1;
	}
	pthread_detach(st);

	err = fiber_runtime_start(&cfg);
	if (err) {
		fprintf(stderr, "echo_server: fiber_runtime_start: %s\n", strerror(-err));
		return 1;
	}
	printf("echo_server: listening on port %d, %u worker(s)\n", port, fiber_worker_count());
	fflush(stdout);
	err = fiber_spawn(NULL, NULL, serve_fiber, NULL);
	if (err) {
		fprintf(stderr, "echo_server: fiber_spawn: %s\n", strerror(-err));
		return 1;
	}
	/* Returns when every fiber has exited: after shutdown. */
	err = fiber_runtime_stop();
	if (err) {
		fprintf(stderr, "echo_server: fiber_runtime_stop: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
