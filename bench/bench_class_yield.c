/*
 * bench_class_yield.c - fiber_yield per scheduling class, with 2, 16 and 1,000 runnable fibers on one worker: the
 * pick must stay cheap as the queues grow (fair: an O(log n) tree; rt: a bitmap and lists; dl: an EDF tree).
 *
 *	yield_<class>_<n>	n fibers of the class loop on fiber_yield (ns of worker time per yield)
 *
 * fair = SCHED_NORMAL (EEVDF: the yield pushes the virtual deadline), rt = SCHED_FIFO 10 (tail of the level),
 * dl = SCHED_DEADLINE (runtime 2 us, period = deadline = 4 ms: a yield gives up the rest of the budget, so each
 * fiber yields once per period and the worker idles in between). The figure is the worker's busy time per yield -
 * wall time minus the idle time the worker reports (fiber_worker_stats) - so the deadline rows, which mostly wait,
 * compare with the others. Each row also reports the share of yields that switched (SWITCHES line, bench.h): a
 * deadline fiber's yield waits for its next period, and the fiber picked then may be the yielder itself.
 */
#include "lf.h"

enum { C_FAIR, C_RT, C_DL, NCLASS };
static const char *const cname[NCLASS] = { "fair", "rt", "dl" };
static const unsigned counts[] = { 2, 16, 1000 };

struct cy {
	int cls;
	unsigned n;
	uint64_t per_fiber;
	int err;
};

struct yielder_arg {
	struct cy *c;
	int me;
};

static void *yielder(void *arg)
{
	const struct yielder_arg *ya = arg;
	struct cy *c = ya->c;
	uint64_t sw = 0;

	if (c->cls == C_DL) {
		struct fiber_sched_attr a = {
			.policy = FIBER_SCHED_DEADLINE, .runtime_ns = 2000, .deadline_ns = 4000000, .period_ns = 4000000
		};
		int err = fiber_setattr(NULL, &a);

		if (err) {
			__atomic_store_n(&c->err, err, __ATOMIC_RELAXED);
			return NULL;
		}
		fiber_yield(); /* start in step with the others: the first period begins now */
	}
	bench_yield_begin(ya->me);
	for (uint64_t i = 0; i < c->per_fiber; i++) {
		fiber_yield();
		bench_yield_note(ya->me, &sw);
	}
	bench_yield_add(c->per_fiber, sw);
	return NULL;
}

static uint64_t worker_idle_ns(void)
{
	struct fiber_worker_stats ws;

	return fiber_worker_stats(0, &ws) ? 0 : ws.idle_ns;
}

static uint64_t run_class(void *arg, uint64_t iters)
{
	struct cy *c = arg;
	struct fiber_attr a;
	fiber_t **f = calloc(c->n, sizeof(*f));
	struct yielder_arg *ya = calloc(c->n, sizeof(*ya));
	uint64_t t0, idle0, busy, total;
	unsigned k, started = 0;

	if (!f || !ya) {
		free(f);
		free(ya);
		return 1;
	}
	c->per_fiber = iters / c->n ? iters / c->n : 1;
	total = c->per_fiber * c->n;
	/* The root (FIFO 99) queues them all before any runs, then blocks in join. */
	for (k = 0; k < c->n; k++) {
		lf_attr_on(&a, 0);
		if (c->cls == C_RT) {
			a.sched.policy = FIBER_SCHED_FIFO;
			a.sched.priority = 10;
		}
		ya[k].c = c;
		ya[k].me = (int)k;
		if (fiber_spawn(&f[k], &a, yielder, &ya[k]) == 0)
			started++;
		else
			break;
	}
	t0 = bench_now_ns();
	idle0 = worker_idle_ns();
	for (k = 0; k < started; k++)
		fiber_join(f[k], NULL);
	busy = (bench_now_ns() - t0) - (worker_idle_ns() - idle0);
	free(f);
	free(ya);
	if (started < c->n && !c->err)
		c->err = -EAGAIN;
	/* Scale to the @iters the harness asked for. */
	return (uint64_t)((double)busy * (double)iters / (double)total);
}

static void root(void *arg)
{
	struct cy *cys = arg;
	struct fiber_sched_attr top = { .policy = FIBER_SCHED_FIFO, .priority = 99 };
	char op[64];

	fiber_setattr(NULL, &top);
	for (int cl = 0; cl < NCLASS; cl++) {
		for (unsigned i = 0; i < (sizeof(counts) / sizeof(counts[0])); i++) {
			struct cy *c = &cys[cl * 3 + i];

			c->cls = cl;
			c->n = counts[i];
			snprintf(op, sizeof(op), "yield_%s_%u", cname[cl], counts[i]);
			if (!bench_want(op))
				continue;
			bench_run_sw(op, "libfiber", "ns/yield", run_class, c, 1);
			if (c->err)
				lf_na_err(op, c->err == -EBUSY ? "DEADLINE admission" : "fiber_setattr/spawn", c->err);
		}
	}
}

int main(int argc, char **argv)
{
	struct cy cys[NCLASS * 3];
	int err;

	memset(cys, 0, sizeof(cys));
	bench_init(argc, argv);
	err = lf_run(1, root, cys);
	if (err) {
		lf_na_err("yield_fair_2", "fiber_run", err);
		return 1;
	}
	return 0;
}
