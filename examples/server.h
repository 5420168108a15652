/*
 * server: what http_server and kv_server share. A listening socket on loopback or a given address, one acceptor
 * fiber, one detached fiber per connection, a bound on the number of connections (with a log line when it is
 * reached), and a clean shutdown on SIGINT/SIGTERM:
 *
 *   1. the listener stops accepting (shutdown(SHUT_RD) wakes the pending accept, which then fails) and is closed;
 *   2. every connection's read side is shut down: a connection waiting for its next request reads end-of-file and
 *      closes; one that has requests in hand answers them first, so no request that was read loses its reply;
 *   3. after the drain timeout the connections still open are cancelled (fiber_cancel);
 *   4. a one-line summary goes to stderr and fiber_run returns, so main exits 0.
 *
 * Signals: main blocks SIGINT and SIGTERM before the runtime starts (the workers inherit the mask) and a plain
 * pthread waits for them with sigwait, then posts a fiber_sem_t (a release-side call, allowed from any thread).
 */
#ifndef EXAMPLES_SERVER_H
#define EXAMPLES_SERVER_H

#include <fiber.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct srv;

struct srv_conn {
	struct srv_conn *prev, *next; /* srv->lock */
	struct srv *srv;
	fiber_t *fiber; /* set under srv->lock before the fiber can unregister */
	int fd;
};

struct srv {
	/* set before srv_run */
	const char *name;		/* program name for log lines */
	const char *bind_addr;		/* IPv4 or IPv6 literal; default 127.0.0.1 */
	int port;			/* 0 = any free port (printed) */
	unsigned workers;		/* 0 = the runtime's default */
	unsigned max_conns;		/* connections served at once; more are refused (see refuse) */
	uint64_t drain_ns;		/* shutdown: how long connections get to finish before they are cancelled */
	size_t stack_size;		/* connection fibers' stacks; 0 = runtime default */
	void *(*conn_fn)(void *arg);	/* a connection fiber: arg is its struct srv_conn; ends with srv_conn_done */
	void (*refuse)(int fd);		/* optional: a best-effort reply to a connection over the limit */
	int (*on_start)(struct srv *s); /* optional: in the main fiber, after the listener is up */
	void (*on_stop)(struct srv *s); /* optional: in the main fiber, after every connection has closed */
	void (*summary)(struct srv *s, char *buf, size_t n); /* optional: extra words for the summary line */
	void *priv;

	/* runtime state */
	int listen_fd;
	_Atomic bool stopping;
	_Atomic unsigned nr_conns;
	_Atomic uint64_t total_conns, refused_conns, accept_errors;
	fiber_mutex_t lock;
	struct srv_conn *conns; /* lock */
	fiber_wg_t wg;		/* one count per live connection fiber */
	fiber_sem_t stop_sem;	/* posted by the signal thread */
};

/* Fill the defaults (name, 127.0.0.1, max_conns 10000, drain 5 s). */
void srv_init(struct srv *s, const char *name);

/*
 * Parse one common option at argv[*i] (--port N, --workers N, --bind ADDR, --max-conns N); advances *i past its
 * value. 1 if it was one, 0 if not, -1 if its value is bad (a message is printed).
 */
int srv_parse_opt(struct srv *s, int argc, char **argv, int *i);

/* Run the server until SIGINT/SIGTERM: the whole life of the process after option parsing. Returns the exit
 * status for main (0 after a clean shutdown). */
int srv_run(struct srv *s);

/* A connection fiber's last call: unregisters, closes the socket, frees @c. */
void srv_conn_done(struct srv_conn *c);

/* Send all of buf[0..len) (MSG_NOSIGNAL). 0 or -errno (-ETIMEDOUT after the fiber's I/O timeout). Context: fiber. */
int srv_send_all(int fd, const void *buf, size_t len);

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t srv_now_ns(void);

/* stderr log line "name: ...", whole lines, at most @per_sec per second when per_sec > 0 (the rest are counted
 * and the count reported with the next line that gets out). */
void srv_log(struct srv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
