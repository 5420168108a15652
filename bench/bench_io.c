/*
 * bench_io.c - what one I/O call costs through the worker's io_uring, and what its timeout adds.
 *
 *	io_ready_pair	one fiber: fiber_send of 1 byte and fiber_recv of it on a socketpair (data is there, the
 *			ops complete at submission); ns per send+recv pair
 *	io_pingpong	two fibers on one worker bounce 1 byte over a socketpair (each recv parks until the other
 *			sends); ns per round trip
 *
 * Implementations: "none" (no fiber_io_timeout), "timer" (fiber_io_timeout(1 s) as a per-worker fiber timer that
 * cancels the op on expiry, the default) and "linked" (the same timeout carried by an IORING_OP_LINK_TIMEOUT behind
 * each op; FIBER_IO_TIMEOUT=linked). The timeout never fires: this is the cost of carrying one.
 * Baseline "syscall": the same pair as plain send(2)+recv(2) from one thread, and the round trip between two
 * threads blocking in recv(2).
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fiber.h>

struct io_arg {
	const char *timeout_mode; /* NULL: no timeout */
	uint64_t iters, ns;
	int sv[2];
	int err;
};

static void set_mode(const struct io_arg *a)
{
	setenv("FIBER_IO_TIMEOUT", a->timeout_mode ? a->timeout_mode : "linked", 1);
}

/*
 * The timed loop of both rows: send a byte on sv[0], receive one on @recv_fd (sv[1]: the same fiber's byte, data
 * already there; sv[0]: the pong fiber's echo, a park until it comes). a->ns is the whole loop.
 */
static void send_recv_loop(struct io_arg *a, int recv_fd)
{
	char b = 'x';
	uint64_t t0;

	if (a->timeout_mode)
		fiber_io_timeout(1000000000ull);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < a->iters; i++) {
		if (fiber_send(a->sv[0], &b, 1, 0) != 1 || fiber_recv(recv_fd, &b, 1, 0) != 1) {
			a->err = 1;
			break;
		}
	}
	a->ns = bench_now_ns() - t0;
}

static void *ready_fiber(void *p)
{
	struct io_arg *a = p;

	send_recv_loop(a, a->sv[1]);
	return NULL;
}

static void ready_main(void *p)
{
	fiber_t *f;

	if (fiber_spawn(&f, NULL, ready_fiber, p) == 0)
		fiber_join(f, NULL);
}

static void *pong_fiber(void *p)
{
	struct io_arg *a = p;
	char b;

	if (a->timeout_mode)
		fiber_io_timeout(1000000000ull);
	for (uint64_t i = 0; i < a->iters; i++)
		if (fiber_recv(a->sv[1], &b, 1, 0) != 1 || fiber_send(a->sv[1], &b, 1, 0) != 1)
			break;
	return NULL;
}

static void *ping_fiber(void *p)
{
	struct io_arg *a = p;

	send_recv_loop(a, a->sv[0]);
	return NULL;
}

static void pingpong_main(void *p)
{
	fiber_t *f, *g;

	if (fiber_spawn(&g, NULL, pong_fiber, p) || fiber_spawn(&f, NULL, ping_fiber, p))
		return;
	fiber_join(f, NULL);
	fiber_join(g, NULL);
}

static uint64_t run_fibers(struct io_arg *a, uint64_t iters, void (*fn)(void *))
{
	struct fiber_config c;
	int r;

	fiber_config_init(&c);
	c.workers = 1;
	a->iters = iters;
	a->ns = 0;
	set_mode(a);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a->sv))
		bench_die("socketpair", errno);
	r = fiber_run(&c, fn, a);
	close(a->sv[0]);
	close(a->sv[1]);
	if (r || a->err)
		bench_die("fiber_run", r ? -r : EIO);
	return a->ns;
}

static uint64_t bench_ready(void *p, uint64_t iters)
{
	return run_fibers(p, iters, ready_main);
}

static uint64_t bench_pingpong(void *p, uint64_t iters)
{
	return run_fibers(p, iters, pingpong_main);
}

/* ---- the syscall baselines ---- */

static uint64_t bench_ready_syscall(void *p, uint64_t iters)
{
	(void)p;
	int sv[2];
	char b = 'x';
	uint64_t t0, t;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		bench_die("socketpair", errno);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < iters; i++)
		if (send(sv[0], &b, 1, 0) != 1 || recv(sv[1], &b, 1, 0) != 1)
			bench_die("send/recv", errno);
	t = bench_now_ns() - t0;
	close(sv[0]);
	close(sv[1]);
	return t;
}

struct thr_arg {
	int fd;
	uint64_t iters;
};

static void *pong_thread(void *p)
{
	struct thr_arg *a = p;
	char b;

	for (uint64_t i = 0; i < a->iters; i++)
		if (recv(a->fd, &b, 1, 0) != 1 || send(a->fd, &b, 1, 0) != 1)
			break;
	return NULL;
}

static uint64_t bench_pingpong_syscall(void *p, uint64_t iters)
{
	struct thr_arg a;

	(void)p;
	pthread_t t;
	int sv[2];
	char b = 'x';
	uint64_t t0, ns;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		bench_die("socketpair", errno);
	a.fd = sv[1];
	a.iters = iters;
	pthread_create(&t, NULL, pong_thread, &a);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < iters; i++)
		if (send(sv[0], &b, 1, 0) != 1 || recv(sv[0], &b, 1, 0) != 1)
			bench_die("send/recv", errno);
	ns = bench_now_ns() - t0;
	pthread_join(t, NULL);
	close(sv[0]);
	close(sv[1]);
	return ns;
}

int main(int argc, char **argv)
{
	static struct io_arg none = { .timeout_mode = NULL }, linked = { .timeout_mode = "linked" },
			     timer = { .timeout_mode = "timer" };
	static struct io_arg none2 = { .timeout_mode = NULL }, linked2 = { .timeout_mode = "linked" },
			     timer2 = { .timeout_mode = "timer" };
	struct bench_item items[] = {
		BENCH_ITEM("io_ready_pair", "syscall", "ns", bench_ready_syscall, NULL, 1),
		BENCH_ITEM("io_ready_pair", "none", "ns", bench_ready, &none, 1),
		BENCH_ITEM("io_ready_pair", "linked", "ns", bench_ready, &linked, 1),
		BENCH_ITEM("io_ready_pair", "timer", "ns", bench_ready, &timer, 1),
		BENCH_ITEM("io_pingpong", "syscall", "ns", bench_pingpong_syscall, NULL, 1),
		BENCH_ITEM("io_pingpong", "none", "ns", bench_pingpong, &none2, 1),
		BENCH_ITEM("io_pingpong", "linked", "ns", bench_pingpong, &linked2, 1),
		BENCH_ITEM("io_pingpong", "timer", "ns", bench_pingpong, &timer2, 1),
	};

	bench_init(argc, argv);
	bench_run_many(items, (int)(sizeof(items) / sizeof(items[0])));
	return 0;
}
