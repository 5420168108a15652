/*
 * bench_spawn.c - the life cycle of a fiber: fiber_spawn (descriptor, stack from the per-worker cache, first
 * frame, wake_up_new_task), its first switch-in through the trampoline and schedule_tail, fiber_exit, and
 * fiber_join (wait, collect the return value, release).
 *
 *	spawn_join_1w	spawn one fiber, join it, repeat; one worker (ns per cycle)
 *	spawn_join_allw	the same with one worker per CPU (the child may start on another worker)
 *	spawn_batch_1w	spawn 1000 fibers, then join them all; one worker (ns per fiber)
 *	spawn_batch_allw	the same with one worker per CPU
 *
 * Default attributes (the default 256 KiB stack), as an application would spawn. The Go baseline does go f() +
 * sync.WaitGroup in the same shapes, Boost.Fiber fiber + join, pthreads create + join.
 */
#include "lf.h"

#define BATCH 1000

struct spawn_ctx {
	const char *suffix; /* "1w" or "allw" */
	int err;
};

static void *nop(void *arg)
{
	return arg;
}

static uint64_t spawn_join(void *arg, uint64_t iters)
{
	struct spawn_ctx *c = arg;
	uint64_t i, t0 = bench_now_ns();
	fiber_t *f;
	int err;

	for (i = 0; i < iters; i++) {
		err = fiber_spawn(&f, NULL, nop, NULL);
		if (err) {
			c->err = err;
			break;
		}
		fiber_join(f, NULL);
	}
	return bench_now_ns() - t0;
}

static uint64_t spawn_batch(void *arg, uint64_t iters)
{
	static fiber_t *f[BATCH];
	struct spawn_ctx *c = arg;
	uint64_t done = 0, t0 = bench_now_ns();
	unsigned k, n;
	int err = 0;

	while (done < iters && !err) {
		n = iters - done < BATCH ? (unsigned)(iters - done) : BATCH;
		for (k = 0; k < n; k++) {
			err = fiber_spawn(&f[k], NULL, nop, NULL);
			if (err) {
				c->err = err;
				n = k;
				break;
			}
		}
		for (k = 0; k < n; k++)
			fiber_join(f[k], NULL);
		done += n;
	}
	return bench_now_ns() - t0;
}

static void root(void *arg)
{
	struct spawn_ctx *c = arg;
	char op[64];

	snprintf(op, sizeof(op), "spawn_join_%s", c->suffix);
	if (bench_want(op))
		bench_run(op, "libfiber", "ns/op", spawn_join, c, 1);
	snprintf(op, sizeof(op), "spawn_batch_%s", c->suffix);
	if (bench_want(op))
		bench_run(op, "libfiber", "ns/op", spawn_batch, c, 1);
}

static int one_config(unsigned workers, const char *suffix)
{
	struct spawn_ctx c = { suffix, 0 };
	char op1[64], op2[64];
	int err;

	snprintf(op1, sizeof(op1), "spawn_join_%s", suffix);
	snprintf(op2, sizeof(op2), "spawn_batch_%s", suffix);
	if (!bench_want(op1) && !bench_want(op2))
		return 0;
	err = lf_run(workers, root, &c);
	if (err) {
		lf_na_err(op1, "fiber_run", err);
		lf_na_err(op2, "fiber_run", err);
		return 1;
	}
	if (c.err) {
		lf_na_err(op1, "fiber_spawn", c.err);
		lf_na_err(op2, "fiber_spawn", c.err);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int bad = 0;

	bench_init(argc, argv);
	bad |= one_config(1, "1w");
	bad |= one_config(0, "allw");
	return bad;
}
