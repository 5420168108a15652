/*
 * bench_sync.c - the synchronisation primitives (public API, linked like an application).
 *
 *	mutex_uncontended	fiber_mutex_lock + unlock in one fiber (ns per pair); pthread: pthread_mutex_t on a
 *				plain thread
 *	mutex_handoff_2w	two fibers on two workers (pinned) take turns on one mutex: lock, increment,
 *				unlock, as fast as they can (ns per lock+unlock of either); pthread: two threads
 *	chan_pingpong_1w	two fibers bounce a value over two unbuffered channels, 1 worker (ns one-way);
 *				Go's baseline is the same program (baselines/go)
 *	chan_pingpong_2w	the same with 2 workers (not pinned, as Go's GOMAXPROCS=2 run; the pinned
 *				cross-worker wake-up is bench_wake's wake_pingpong_cross)
 *	chan_pingpong_buf_1w	the same over channels of capacity 2, 1 worker (Boost.Fiber's buffered_channel
 *				needs a capacity of at least 2; baselines/boost_fiber_bench.cpp)
 *	skynet_chan_1w/2w	skynet over channels, as Go's skynet: every node spawns 10 detached children that
 *				send their sums to the node's channel (ms per run, 1M leaves; compare Go's skynet_*).
 *				Unlike Go's, the node's channel has capacity 10 and the node yields after each spawn,
 *				which keeps the tree depth-first (see skynet())
 */
#include "lf.h"

#include <inttypes.h>
#include <pthread.h>

/* ---- mutex, uncontended ---- */

static uint64_t mutex_unc_lf(void *arg, uint64_t iters)
{
	fiber_mutex_t *m = arg;
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < iters; i++) {
		fiber_mutex_lock(m);
		fiber_mutex_unlock(m);
	}
	return bench_now_ns() - t0;
}

static uint64_t mutex_unc_pthread(void *arg, uint64_t iters)
{
	pthread_mutex_t *m = arg;
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < iters; i++) {
		pthread_mutex_lock(m);
		pthread_mutex_unlock(m);
	}
	return bench_now_ns() - t0;
}

/* ---- mutex, contended across two workers ---- */

struct handoff {
	fiber_mutex_t m;
	uint64_t iters;
	volatile uint64_t counter;
};

static void *handoff_fiber(void *arg)
{
	struct handoff *h = arg;

	for (uint64_t i = 0; i < h->iters; i++) {
		fiber_mutex_lock(&h->m);
		h->counter++;
		fiber_mutex_unlock(&h->m);
	}
	return NULL;
}

static int bench_err;

static uint64_t mutex_handoff_lf(void *arg, uint64_t iters)
{
	struct handoff h = { FIBER_MUTEX_INITIALIZER, iters, 0 };
	struct fiber_attr a0, a1;
	fiber_t *f0, *f1;
	uint64_t t0 = bench_now_ns();

	(void)arg;
	lf_attr_on(&a0, 0);
	lf_attr_on(&a1, 1);
	if (fiber_spawn(&f0, &a0, handoff_fiber, &h) || fiber_spawn(&f1, &a1, handoff_fiber, &h)) {
		bench_err = 1;
		return 1;
	}
	fiber_join(f0, NULL);
	fiber_join(f1, NULL);
	if (h.counter != 2 * iters)
		bench_err = 1;
	return bench_now_ns() - t0;
}

struct phandoff {
	pthread_mutex_t m;
	uint64_t iters;
	volatile uint64_t counter;
};

static void *handoff_thread(void *arg)
{
	struct phandoff *h = arg;

	for (uint64_t i = 0; i < h->iters; i++) {
		pthread_mutex_lock(&h->m);
		h->counter++;
		pthread_mutex_unlock(&h->m);
	}
	return NULL;
}

static uint64_t mutex_handoff_pthread(void *arg, uint64_t iters)
{
	struct phandoff h = { PTHREAD_MUTEX_INITIALIZER, iters, 0 };
	pthread_t t[2];
	uint64_t t0 = bench_now_ns();

	(void)arg;
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, handoff_thread, &h);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	return bench_now_ns() - t0;
}

/* ---- channel ping-pong ---- */

struct pp {
	fiber_chan_t *ping, *pong;
	uint64_t iters;
	size_t cap;
	int workers;
};

static void *pong_fiber(void *arg)
{
	struct pp *p = arg;
	int v;

	for (uint64_t i = 0; i < p->iters; i++) {
		fiber_chan_recv(p->ping, &v);
		v++;
		fiber_chan_send(p->pong, &v);
	}
	return NULL;
}

static void *ping_fiber(void *arg)
{
	struct pp *p = arg;
	int v = 0;

	for (uint64_t i = 0; i < p->iters; i++) {
		fiber_chan_send(p->ping, &v);
		fiber_chan_recv(p->pong, &v);
	}
	if (v != (int)p->iters)
		bench_err = 1;
	return NULL;
}

static uint64_t chan_pp(void *arg, uint64_t iters)
{
	struct pp *cfg = arg, p = *cfg;
	struct fiber_attr a0, a1;
	fiber_t *f0, *f1;
	uint64_t t0;

	p.iters = iters;
	if (fiber_chan_create(&p.ping, sizeof(int), p.cap) || fiber_chan_create(&p.pong, sizeof(int), p.cap)) {
		bench_err = 1;
		return 1;
	}
	/* Not pinned, also with 2 workers: Go's GOMAXPROCS=2 ping-pong lets its scheduler place them too. */
	lf_attr_on(&a0, -1);
	lf_attr_on(&a1, -1);
	t0 = bench_now_ns();
	if (fiber_spawn(&f0, &a0, ping_fiber, &p) || fiber_spawn(&f1, &a1, pong_fiber, &p)) {
		bench_err = 1;
		return 1;
	}
	fiber_join(f0, NULL);
	fiber_join(f1, NULL);
	t0 = bench_now_ns() - t0;
	fiber_chan_destroy(p.ping);
	fiber_chan_destroy(p.pong);
	return t0;
}

/* ---- skynet over channels ---- */

struct sk {
	fiber_chan_t *out;
	uint64_t num, size;
};

static void *skynet(void *arg)
{
	struct sk *s = arg, kids[10];
	fiber_chan_t *rc;
	uint64_t sum = 0, v;

	if (s->size == 1) {
		fiber_chan_send(s->out, &s->num);
		return NULL;
	}
	if (fiber_chan_create(&rc, sizeof(uint64_t), 10)) { /* children do not wait for the parent's receive */
		bench_err = 1;
		return NULL;
	}
	for (int i = 0; i < 10; i++) {
		kids[i].out = rc;
		kids[i].size = s->size / 10;
		kids[i].num = s->num + (uint64_t)i * kids[i].size;
		if (fiber_spawn(NULL, NULL, skynet, &kids[i]))
			bench_err = 1;
		/*
		 * Let the child run first (depth-first), so that a few thousand fibers are alive at a time instead of
		 * the whole tree: spawned breadth-first, 1.1M fibers with their stacks all exist at once (3.5 GB of
		 * touched stack on this machine). Go's tiny goroutine stacks make breadth-first cheap there.
		 */
		fiber_yield();
	}
	for (int i = 0; i < 10; i++) {
		fiber_chan_recv(rc, &v);
		sum += v;
	}
	fiber_chan_destroy(rc);
	fiber_chan_send(s->out, &sum);
	return NULL;
}

struct sk_cfg {
	const char *op;
	uint64_t leaves;
};

static void sk_root(void *arg)
{
	struct sk_cfg *c = arg;
	double samples[BENCH_MAX_REPS];
	int reps = bench_opts.quick ? 1 : bench_opts.reps;
	uint64_t start = bench_now_ns();
	int n = 0;

	for (int i = 0; i <= reps; i++) { /* the first run warms up */
		if (i > 1 && bench_now_ns() - start > 60000000000ull) {
			fprintf(stderr, "%s: over the 60 s budget, stopped after %d runs\n", c->op, n);
			break;
		}
		fiber_chan_t *out;
		struct sk s;
		uint64_t sum = 0, t0 = bench_now_ns();

		fiber_chan_create(&out, sizeof(uint64_t), 0);
		s.out = out;
		s.num = 0;
		s.size = c->leaves;
		fiber_spawn(NULL, NULL, skynet, &s);
		fiber_chan_recv(out, &sum);
		t0 = bench_now_ns() - t0;
		fiber_chan_destroy(out);
		if (sum != c->leaves * (c->leaves - 1) / 2) {
			bench_na(c->op, "libfiber", "wrong sum");
			return;
		}
		if (i > 0)
			samples[n++] = (double)t0 / 1e6;
	}
	bench_report(c->op, "libfiber", samples, n, "ms/run");
}

/* ---- drivers ---- */

static void root1(void *arg)
{
	static fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
	static pthread_mutex_t pm = PTHREAD_MUTEX_INITIALIZER;
	struct pp p1 = { NULL, NULL, 0, 0, 1 }, pb = { NULL, NULL, 0, 2, 1 };

	(void)arg;
	if (bench_want("mutex_uncontended")) {
		struct bench_item it[2] = {
			BENCH_ITEM("mutex_uncontended", "libfiber", "ns/op", mutex_unc_lf, &m, 1),
			BENCH_ITEM("mutex_uncontended", "pthread", "ns/op", mutex_unc_pthread, &pm, 1),
		};
		bench_run_many(it, 2);
	}
	if (bench_want("chan_pingpong_1w"))
		bench_run("chan_pingpong_1w", "libfiber", "ns/msg", chan_pp, &p1, 2);
	if (bench_want("chan_pingpong_buf_1w"))
		bench_run("chan_pingpong_buf_1w", "libfiber", "ns/msg", chan_pp, &pb, 2);
}

static void root2(void *arg)
{
	struct pp p2 = { NULL, NULL, 0, 0, 2 };

	(void)arg;
	if (bench_want("mutex_handoff_2w")) {
		struct bench_item it[2] = {
			BENCH_ITEM("mutex_handoff_2w", "libfiber", "ns/op", mutex_handoff_lf, NULL, 2),
			BENCH_ITEM("mutex_handoff_2w", "pthread", "ns/op", mutex_handoff_pthread, NULL, 2),
		};
		bench_run_many(it, 2);
	}
	if (bench_want("chan_pingpong_2w"))
		bench_run("chan_pingpong_2w", "libfiber", "ns/msg", chan_pp, &p2, 2);
}

int main(int argc, char **argv)
{
	struct sk_cfg s1 = { "skynet_chan_1w", 1000000 }, s2 = { "skynet_chan_2w", 1000000 };
	int err;

	bench_init(argc, argv);
	if (bench_opts.quick)
		s1.leaves = s2.leaves = 10000;
	err = lf_run(1, root1, NULL);
	if (!err)
		err = lf_run(2, root2, NULL);
	if (!err && bench_want("skynet_chan_1w"))
		err = lf_run(1, sk_root, &s1);
	if (!err && bench_want("skynet_chan_2w"))
		err = lf_run(2, sk_root, &s2);
	if (err) {
		lf_na_err("mutex_uncontended", "fiber_run", err);
		return 1;
	}
	if (bench_err) {
		bench_na("mutex_handoff_2w", "libfiber", "a spawn failed or a total was wrong; the figures are void");
		return 1;
	}
	return 0;
}
