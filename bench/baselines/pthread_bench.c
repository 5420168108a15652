/*
 * pthread_bench.c - kernel threads as the baseline for the scheduler-level benchmarks.
 *
 *	spawn_join_allw			pthread_create + pthread_join, one thread at a time (ns/op)
 *	yield_pingpong			two threads pinned to one CPU hand a turn back and forth with sched_yield
 *					(ns per hand-off; SWITCHES: the share of sched_yield calls after which the
 *					other thread had run)
 *	wake_pingpong_cross		two threads pinned to two CPUs hand a turn back and forth through futexes:
 *					FUTEX_WAKE, then FUTEX_WAIT until the answer comes (ns one-way)
 *	wake_pingpong_cross_condvar	the same with a mutex and a condition variable (ns one-way)
 *	wake_latency_cross		a thread asleep in FUTEX_WAIT on an otherwise idle CPU is woken 50 us after
 *					its previous wake-up; ns from just before FUTEX_WAKE to the wakee running,
 *					the median of each repetition's wake-ups (wake_latency_cross_p99: the 99th
 *					percentile)
 *
 * The libfiber counterparts are in ../bench_spawn.c, ../bench_yield.c and ../bench_wake.c.
 */
#include "bench.h" /* first: it defines _GNU_SOURCE */

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LATENCY_GAP_NS 50000 /* how long the wakee sleeps before each measured wake-up */

static int cpu_a = -1, cpu_b = -1; /* the first two CPUs this process may run on */

static long futex(int *uaddr, int op, int val)
{
	return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

static void futex_wait(int *uaddr, int val)
{
	futex(uaddr, FUTEX_WAIT_PRIVATE, val);
}

static void futex_wake(int *uaddr)
{
	futex(uaddr, FUTEX_WAKE_PRIVATE, 1);
}

static int load(int *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store(int *p, int v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* spawn: start @fn on a new thread pinned to @cpu (-1: anywhere); exits the program if that fails. */
static pthread_t spawn(void *(*fn)(void *), void *arg, int cpu)
{
	pthread_attr_t attr;
	pthread_t t;
	cpu_set_t set;
	int err;

	pthread_attr_init(&attr);
	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	}
	err = pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (err)
		bench_die("pthread_create", err);
	return t;
}

/* ---- create + join ---- */

static void *empty_thread(void *arg)
{
	return arg;
}

static uint64_t create_join(void *arg, uint64_t iters)
{
	uint64_t i, t0 = bench_now_ns();
	pthread_t t;
	int err;

	(void)arg;
	for (i = 0; i < iters; i++) {
		err = pthread_create(&t, NULL, empty_thread, NULL);
		if (err)
			bench_die("pthread_create", err);
		pthread_join(t, NULL);
	}
	return bench_now_ns() - t0;
}

/* ---- hand-offs between two threads: shared state of one run ---- */

struct pair {
	uint64_t iters;
	int go;		/* both threads spin on this before starting */
	int ping, pong; /* futex words and sched_yield turn */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int turn;	      /* lock */
	uint64_t t_wake;      /* wake_latency: time just before FUTEX_WAKE, written before ping */
	struct bench_lat lat; /* wake_latency: every wake-up's, recorded by the wakee */
};

static void wait_go(struct pair *p)
{
	while (!load(&p->go))
		sched_yield();
}

/* run2: run @a and @b on CPUs @ca and @cb, return the ns from "go" until both have finished. */
static uint64_t run2(struct pair *p, void *(*a)(void *), int ca, void *(*b)(void *), int cb)
{
	pthread_t ta, tb;
	uint64_t t0;

	ta = spawn(a, p, ca);
	tb = spawn(b, p, cb);
	t0 = bench_now_ns();
	store(&p->go, 1);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	return bench_now_ns() - t0;
}

static void pair_init(struct pair *p, uint64_t iters)
{
	memset(p, 0, sizeof(*p));
	p->iters = iters;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
}

static void pair_destroy(struct pair *p)
{
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
}

/* ---- sched_yield ping-pong on one CPU ---- */

/* Thread @me waits for turn @me and passes it on; every sched_yield is noted (switches per yield, bench.h). */
static void yield_side(struct pair *p, int me)
{
	uint64_t i, yields = 0, sw = 0;

	wait_go(p);
	bench_yield_begin(me);
	for (i = 0; i < p->iters; i++) {
		while (load(&p->ping) != me) {
			sched_yield();
			yields++;
			bench_yield_note(me, &sw);
		}
		store(&p->ping, !me);
	}
	bench_yield_add(yields, sw);
}

static void *yield_a(void *arg)
{
	yield_side(arg, 0);
	return NULL;
}

static void *yield_b(void *arg)
{
	yield_side(arg, 1);
	return NULL;
}

static uint64_t yield_pingpong(void *arg, uint64_t iters)
{
	struct pair p;
	uint64_t ns;

	(void)arg;
	pair_init(&p, iters);
	ns = run2(&p, yield_a, cpu_a, yield_b, cpu_a);
	pair_destroy(&p);
	return ns;
}

/* ---- futex hand-off across two CPUs ---- */

static void *futex_a(void *arg)
{
	struct pair *p = arg;
	int i, v, n = (int)p->iters;

	wait_go(p);
	for (i = 1; i <= n; i++) {
		store(&p->ping, i);
		futex_wake(&p->ping);
		while ((v = load(&p->pong)) != i)
			futex_wait(&p->pong, v);
	}
	return NULL;
}

static void *futex_b(void *arg)
{
	struct pair *p = arg;
	int i, v, n = (int)p->iters;

	wait_go(p);
	for (i = 1; i <= n; i++) {
		while ((v = load(&p->ping)) != i)
			futex_wait(&p->ping, v);
		store(&p->pong, i);
		futex_wake(&p->pong);
	}
	return NULL;
}

static uint64_t futex_pingpong(void *arg, uint64_t iters)
{
	struct pair p;
	uint64_t ns;

	(void)arg;
	if (iters > 0x7fffffff)
		iters = 0x7fffffff;
	pair_init(&p, iters);
	ns = run2(&p, futex_a, cpu_a, futex_b, cpu_b);
	pair_destroy(&p);
	return ns;
}

/* ---- condition variable hand-off across two CPUs ---- */

static void *cond_a(void *arg)
{
	struct pair *p = arg;
	uint64_t i;

	wait_go(p);
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->iters; i++) {
		p->turn = 1;
		pthread_cond_signal(&p->cond);
		while (p->turn != 0)
			pthread_cond_wait(&p->cond, &p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void *cond_b(void *arg)
{
	struct pair *p = arg;
	uint64_t i;

	wait_go(p);
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->iters; i++) {
		while (p->turn != 1)
			pthread_cond_wait(&p->cond, &p->lock);
		p->turn = 0;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static uint64_t cond_pingpong(void *arg, uint64_t iters)
{
	struct pair p;
	uint64_t ns;

	(void)arg;
	pair_init(&p, iters);
	ns = run2(&p, cond_a, cpu_a, cond_b, cpu_b);
	pair_destroy(&p);
	return ns;
}

/* ---- wake latency of a thread asleep on another CPU ---- */

static void *lat_waker(void *arg)
{
	struct pair *p = arg;
	int i, n = (int)p->iters;
	uint64_t until;

	wait_go(p);
	for (i = 1; i <= n; i++) {
		/* Let the wakee go back to sleep and its CPU go idle. */
		until = bench_now_ns() + LATENCY_GAP_NS;
		while (bench_now_ns() < until)
			bench_cpu_relax();
		__atomic_store_n(&p->t_wake, bench_now_ns(), __ATOMIC_RELAXED);
		store(&p->ping, i);
		futex_wake(&p->ping);
		while (load(&p->pong) != i)
			bench_cpu_relax();
	}
	return NULL;
}

static void *lat_wakee(void *arg)
{
	struct pair *p = arg;
	int i, v, n = (int)p->iters;

	wait_go(p);
	for (i = 1; i <= n; i++) {
		while ((v = load(&p->ping)) != i)
			futex_wait(&p->ping, v);
		bench_lat_add(&p->lat, bench_now_ns() - __atomic_load_n(&p->t_wake, __ATOMIC_RELAXED));
		store(&p->pong, i);
	}
	return NULL;
}

/* wake_latency - one repetition; @arg points to the quantile the row reports (bench_lat in common/bench.h). */
static uint64_t wake_latency(void *arg, uint64_t iters)
{
	struct pair p;

	if (iters > 0x7fffffff)
		iters = 0x7fffffff;
	pair_init(&p, iters);
	bench_lat_init(&p.lat, iters);
	run2(&p, lat_waker, cpu_a, lat_wakee, cpu_b);
	pair_destroy(&p);
	return bench_lat_result(&p.lat, *(const double *)arg, iters);
}

static const double q_median = 0.5, q_p99 = 0.99;

int main(int argc, char **argv)
{
	cpu_set_t set;
	int i;

	bench_init(argc, argv);
	if (sched_getaffinity(0, sizeof(set), &set))
		bench_die("sched_getaffinity", errno);
	for (i = 0; i < CPU_SETSIZE; i++) {
		if (!CPU_ISSET(i, &set))
			continue;
		if (cpu_a < 0)
			cpu_a = i;
		else if (cpu_b < 0)
			cpu_b = i;
	}

	if (bench_want("spawn_join_allw"))
		bench_run("spawn_join_allw", "pthread", "ns/op", create_join, NULL, 1);
	if (bench_want("yield_pingpong"))
		bench_run_sw("yield_pingpong", "pthread", "ns/yield", yield_pingpong, NULL, 2);
	if (cpu_b < 0) {
		bench_na("wake_pingpong_cross", "pthread", "only one CPU");
		bench_na("wake_pingpong_cross_condvar", "pthread", "only one CPU");
		bench_na("wake_latency_cross", "pthread", "only one CPU");
		bench_na("wake_latency_cross_p99", "pthread", "only one CPU");
		return 0;
	}
	if (bench_want("wake_pingpong_cross"))
		bench_run("wake_pingpong_cross", "pthread", "ns/wake", futex_pingpong, NULL, 2);
	if (bench_want("wake_pingpong_cross_condvar"))
		bench_run("wake_pingpong_cross_condvar", "pthread", "ns/wake", cond_pingpong, NULL, 2);
	if (bench_want("wake_latency_cross"))
		bench_run("wake_latency_cross", "pthread", "ns/wake", wake_latency, (void *)&q_median, 1);
	if (bench_want("wake_latency_cross_p99"))
		bench_run("wake_latency_cross_p99", "pthread", "ns/wake", wake_latency, (void *)&q_p99, 1);
	return 0;
}
