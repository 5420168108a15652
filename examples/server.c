/*
 * server.c: listener, acceptor, connection registry and shutdown shared by http_server and kv_server (see
 * server.h). What it owns: the listening socket, the list of open connections and the process's SIGINT/SIGTERM.
 * What it promises: every accepted connection is either served by its own fiber or refused and closed at once,
 * and srv_run returns only after every connection fiber has finished.
 *
 * Locking: srv->lock (a fiber mutex) protects srv->conns and each srv_conn's list links and fiber handle; it is
 * held only for list changes and for the shutdown sweep, never across I/O.
 */
#define _GNU_SOURCE
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t srv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void srv_log(struct srv *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "%s: ", s->name);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	/* one write per line: lines from several workers do not interleave */
	if (write(2, line, strlen(line)) < 0) {
	}
}

void srv_init(struct srv *s, const char *name)
{
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->bind_addr = "127.0.0.1";
	s->port = -1;
	s->max_conns = 10000;
	s->drain_ns = 5000000000ull;
	s->listen_fd = -1;
	fiber_mutex_init(&s->lock);
	fiber_wg_init(&s->wg);
	fiber_sem_init(&s->stop_sem, 0);
}

static int parse_uint(const char *opt, const char *v, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long x;

	if (!v) {
		fprintf(stderr, "%s needs a value\n", opt);
		return -1;
	}
	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || end == v || *end || x > max || v[0] == '-') {
		fprintf(stderr, "%s: bad value '%s' (0..%lu)\n", opt, v, max);
		return -1;
	}
	*out = x;
	return 0;
}

int srv_parse_opt(struct srv *s, int argc, char **argv, int *i)
{
	const char *opt = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
	unsigned long x;

	if (!strcmp(opt, "--port")) {
		if (parse_uint(opt, v, 65535, &x))
			return -1;
		s->port = (int)x;
	} else if (!strcmp(opt, "--workers")) {
		if (parse_uint(opt, v, FIBER_MAX_WORKERS, &x))
			return -1;
		s->workers = (unsigned)x;
	} else if (!strcmp(opt, "--max-conns")) {
		if (parse_uint(opt, v, 1000000, &x) || x == 0) {
			if (x == 0)
				fprintf(stderr, "--max-conns must be at least 1\n");
			return -1;
		}
		s->max_conns = (unsigned)x;
	} else if (!strcmp(opt, "--bind")) {
		if (!v) {
			fprintf(stderr, "--bind needs an address\n");
			return -1;
		}
		s->bind_addr = v;
	} else {
		return 0;
	}
	(*i)++;
	return 1;
}

static int listen_on(struct srv *s)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, one = 1, family;
	char addr[INET6_ADDRSTRLEN];

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, s->bind_addr, &in4->sin_addr) == 1) {
		family = AF_INET;
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)s->port);
		len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, s->bind_addr, &in6->sin6_addr) == 1) {
		family = AF_INET6;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)s->port);
		len = sizeof(*in6);
	} else {
		srv_log(s, "--bind %s: not an IPv4 or IPv6 address", s->bind_addr);
		return -EINVAL;
	}
	/* Nonblocking: the acceptor drains the backlog with plain accept4 calls (acceptor()). */
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 4096)) {
		int err = errno;

		srv_log(s, "cannot listen on %s port %d: %s", s->bind_addr, s->port, strerror(err));
		close(fd);
		return -err;
	}
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	s->port = ntohs(family == AF_INET ? in4->sin_port : in6->sin6_port);
	inet_ntop(family, family == AF_INET ? (void *)&in4->sin_addr : (void *)&in6->sin6_addr, addr, sizeof(addr));
	s->listen_fd = fd;
	/* the tests read this line to learn the port */
	printf("%s: listening on %s port %d, %u workers, at most %u connections\n", s->name, addr, s->port,
	       fiber_worker_count(), s->max_conns);
	fflush(stdout);
	return 0;
}

void srv_conn_done(struct srv_conn *c)
{
	struct srv *s = c->srv;

	fiber_mutex_lock(&s->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	fiber_mutex_unlock(&s->lock);
	fiber_close(c->fd);
	free(c);
	atomic_fetch_sub(&s->nr_conns, 1);
	fiber_wg_done(&s->wg);
}

int srv_send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = fiber_send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Log that the limit is reached at most once a second, with how many were refused meanwhile. */
static void log_refused(struct srv *s)
{
	static _Atomic uint64_t last_sec, last_count;
	uint64_t sec = srv_now_ns() / 1000000000u, prev = atomic_load(&last_sec);
	uint64_t total = atomic_load(&s->refused_conns);

	if (sec != prev && atomic_compare_exchange_strong(&last_sec, &prev, sec)) {
		uint64_t before = atomic_exchange(&last_count, total);

		srv_log(s, "connection limit %u reached: refused %llu connection(s) (%llu in all)", s->max_conns,
			(unsigned long long)(total - before), (unsigned long long)total);
	}
}

/*
 * One fiber accepts for the whole server. Each turn it gets on its worker, it takes every connection waiting in the
 * backlog (nginx's multi_accept): the listening socket is nonblocking, and a plain accept4 that finds none returns
 * EAGAIN at once; only then does fiber_poll park the fiber until the next one. Taking one connection per turn
 * made a burst of connects wait for the acceptor's turns among the busy connection fibers: with 500 connections
 * opened at once, the last of them were accepted up to 3 s later (the long tail of wrk -c500 in some runs).
 */
static int accept_next(struct srv *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC), r;

		if (fd >= 0)
			return fd;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = fiber_poll(s->listen_fd, POLLIN, -1); /* none waiting: sleep until one is */
		if (r < 0)
			return r;
	}
}

static void *acceptor(void *arg)
{
	struct srv *s = arg;

	for (;;) {
		struct srv_conn *c;
		struct fiber_attr attr;
		int fd, one = 1, ret;

		fd = accept_next(s);
		if (atomic_load(&s->stopping)) {
			if (fd >= 0)
				close(fd);
			break;
		}
		if (fd < 0) {
			if (fd == -ECANCELED)
				break;
			atomic_fetch_add(&s->accept_errors, 1);
			if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
				srv_log(s, "accept: %s; retrying in 10 ms", strerror(-fd));
				fiber_sleep(10000000);
			}
			continue;
		}
		if (atomic_load(&s->nr_conns) >= s->max_conns) {
			atomic_fetch_add(&s->refused_conns, 1);
			log_refused(s);
			if (s->refuse)
				s->refuse(fd);
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->srv = s;
		c->fd = fd;
		fiber_attr_init(&attr);
		attr.name = "conn";
		attr.stack_size = s->stack_size;
		atomic_fetch_add(&s->nr_conns, 1);
		atomic_fetch_add(&s->total_conns, 1);
		fiber_wg_add(&s->wg, 1);
		/* registered and spawned under the lock: the fiber cannot unregister before c->fiber is set */
		fiber_mutex_lock(&s->lock);
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		ret = fiber_spawn(&c->fiber, &attr, s->conn_fn, c);
		if (ret == 0) {
			fiber_detach(c->fiber);
		} else {
			s->conns = c->next;
			if (c->next)
				c->next->prev = NULL;
		}
		fiber_mutex_unlock(&s->lock);
		if (ret) {
			srv_log(s, "fiber_spawn: %s", strerror(-ret));
			close(fd);
			free(c);
			atomic_fetch_sub(&s->nr_conns, 1);
			fiber_wg_done(&s->wg);
		}
	}
	return NULL;
}

/* Shut the read side of every open connection (step 2 in server.h), or cancel them all (step 3). */
static void sweep_conns(struct srv *s, bool cancel)
{
	fiber_mutex_lock(&s->lock);
	for (struct srv_conn *c = s->conns; c; c = c->next) {
		if (cancel)
			fiber_cancel(c->fiber);
		else
			shutdown(c->fd, SHUT_RD);
	}
	fiber_mutex_unlock(&s->lock);
}

static void srv_main(void *arg)
{
	struct srv *s = arg;
	fiber_t *acc;
	uint64_t t0, deadline;
	char extra[256] = "";
	int ret;

	if (listen_on(s))
		goto out;
	if (s->on_start && s->on_start(s)) {
		close(s->listen_fd);
		goto out;
	}
	ret = fiber_spawn(&acc, NULL, acceptor, s);
	if (ret) {
		srv_log(s, "fiber_spawn: %s", strerror(-ret));
		close(s->listen_fd);
		goto out;
	}
	while (fiber_sem_wait(&s->stop_sem) == -ECANCELED)
		;
	t0 = srv_now_ns();
	atomic_store(&s->stopping, true);
	srv_log(s, "shutting down: %u connection(s) open", atomic_load(&s->nr_conns));
	/* step 1: wake the pending accept; fiber_cancel covers a readiness path that shutdown does not wake */
	shutdown(s->listen_fd, SHUT_RD);
	fiber_cancel(acc);
	fiber_join(acc, NULL);
	close(s->listen_fd);
	s->listen_fd = -1;
	/* steps 2 and 3 */
	sweep_conns(s, false);
	deadline = t0 + s->drain_ns;
	while (atomic_load(&s->nr_conns) && srv_now_ns() < deadline)
		fiber_sleep(5000000);
	if (atomic_load(&s->nr_conns)) {
		srv_log(s, "drain timeout: cancelling %u connection(s)", atomic_load(&s->nr_conns));
		sweep_conns(s, true);
	}
	fiber_wg_wait(&s->wg);
	if (s->on_stop)
		s->on_stop(s);
	if (s->summary)
		s->summary(s, extra, sizeof(extra));
	srv_log(s, "stopped in %.1f ms: %llu connection(s) served, %llu refused%s", (srv_now_ns() - t0) / 1e6,
		(unsigned long long)atomic_load(&s->total_conns), (unsigned long long)atomic_load(&s->refused_conns),
		extra);
	s->stopping = true;
	return;
out:
	atomic_store(&s->stopping, false);
	s->listen_fd = -2; /* tells srv_run that start-up failed */
}

static void *signal_thread(void *arg)
{
	struct srv *s = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	for (;;) {
		if (sigwait(&set, &sig) == 0) {
			fiber_sem_post(&s->stop_sem);
			return NULL;
		}
	}
}

int srv_run(struct srv *s)
{
	struct fiber_config cfg;
	struct rlimit rl;
	pthread_t th;
	sigset_t set;
	int ret;

	if (s->port < 0)
		s->port = 0;
	/* one descriptor per connection: take what the hard limit allows */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&th, NULL, signal_thread, s)) {
		fprintf(stderr, "%s: cannot start the signal thread\n", s->name);
		return 1;
	}
	pthread_detach(th);
	fiber_config_init(&cfg);
	cfg.workers = s->workers;
	ret = fiber_run(&cfg, srv_main, s);
	if (ret) {
		fprintf(stderr, "%s: fiber_run: %s\n", s->name, strerror(-ret));
		return 1;
	}
	return s->listen_fd == -2 ? 1 : 0;
}
