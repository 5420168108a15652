/*
 * bench_yield.c - fiber_yield on one worker: the whole scheduler path (schedule -> __schedule -> pick_next_task
 * through the class table -> context_switch -> fiber__switch -> finish_task_switch) per yield.
 *
 *	yield_pingpong	2 fibers yield to each other (ns per yield, i.e. per switch)
 *	yield_ring16	16 fibers do the same
 *
 * The root fiber spawns them and blocks in fiber_join, so only the yielding fibers are runnable. Go's
 * runtime.Gosched and boost::this_fiber::yield are measured in the same shapes (baselines/). Each row also
 * reports the share of yields that switched (SWITCHES line, bench.h).
 */
#include "lf.h"

struct yield_arg {
	unsigned nfibers;
	int err;
};

struct yielder_arg {
	uint64_t n;
	int me;
};

static void *yielder(void *arg)
{
	const struct yielder_arg *a = arg;
	uint64_t i, n = a->n, sw = 0;

	bench_yield_begin(a->me);
	for (i = 0; i < n; i++) {
		fiber_yield();
		bench_yield_note(a->me, &sw);
	}
	bench_yield_add(n, sw);
	return NULL;
}

static uint64_t yield_n(void *arg, uint64_t iters)
{
	struct yield_arg *ya = arg;
	fiber_t *f[16];
	struct yielder_arg a[16];
	uint64_t t0;
	unsigned k, n = 0;
	int err = 0;

	t0 = bench_now_ns();
	for (k = 0; k < ya->nfibers && !err; k++) {
		a[k].n = iters;
		a[k].me = (int)k;
		err = fiber_spawn(&f[k], NULL, yielder, &a[k]);
		if (!err)
			n++;
	}
	for (k = 0; k < n; k++)
		fiber_join(f[k], NULL);
	if (err && !ya->err)
		ya->err = err;
	return bench_now_ns() - t0;
}

static void root(void *arg)
{
	struct yield_arg *ya = arg;

	if (bench_want("yield_pingpong")) {
		ya[0].nfibers = 2;
		bench_run_sw("yield_pingpong", "libfiber", "ns/yield", yield_n, &ya[0], 2);
	}
	if (bench_want("yield_ring16")) {
		ya[1].nfibers = 16;
		bench_run_sw("yield_ring16", "libfiber", "ns/yield", yield_n, &ya[1], 16);
	}
}

int main(int argc, char **argv)
{
	struct yield_arg ya[2] = { { 0, 0 }, { 0, 0 } };
	int err;

	bench_init(argc, argv);
	err = lf_run(1, root, ya);
	if (err) {
		lf_na_err("yield_pingpong", "fiber_run", err);
		lf_na_err("yield_ring16", "fiber_run", err);
		return 1;
	}
	/* A failed spawn makes the figures meaningless: say so after the RESULT lines (the runner keeps the NA). */
	if (ya[0].err)
		lf_na_err("yield_pingpong", "fiber_spawn", ya[0].err);
	if (ya[1].err)
		lf_na_err("yield_ring16", "fiber_spawn", ya[1].err);
	return ya[0].err || ya[1].err;
}
