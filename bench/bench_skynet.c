/*
 * bench_skynet.c - skynet (github.com/atemerev/skynet): a 10-ary tree of fibers down to 1,000,000 leaves. Each
 * leaf returns its number as its return value; each parent spawns its 10 children, joins them and returns the sum
 * of theirs. The root's result must be 499999500000. 1,111,111 fibers per run, many of them alive at once.
 *
 *	skynet_2w	two workers (ms per run)
 *	skynet_1w	one worker
 *
 * Fibers get the smallest stack fiber_spawn accepts (FIBER_STACK_MIN); a node needs a few hundred bytes. Each
 * configuration does one warm-up run (it fills the stack and descriptor caches) and then --reps measured runs.
 * --quick uses 10,000 leaves; BENCH_SKYNET_LEAVES=N (a power of 10) overrides the count, BENCH_SKYNET_STACK=B
 * the stack size (0: the runtime's default). A configuration stops
 * taking repetitions once it has used SKYNET_BUDGET_S seconds (at least one measured run), so that a slow runtime
 * cannot hold the whole suite up (when the warm-up run alone is over budget, it is reported as the only run);
 * stderr says so when that happens.
 *
 * The classic skynet passes the sums over channels: that variant is bench_sync.c's skynet_chan_1w/2w.
 */
#include "lf.h"

#define DIV 10
#define SKYNET_BUDGET_S 30

struct node {
	uint64_t num, size;
};

static struct fiber_attr node_attr;
static int sk_err; /* first failure of fiber_spawn or fiber_join, atomic */

static void sk_fail(int err)
{
	int zero = 0;

	__atomic_compare_exchange_n(&sk_err, &zero, err, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

static void *skynet(void *arg)
{
	const struct node *me = arg;
	struct node kids[DIV];
	fiber_t *f[DIV];
	uint64_t sum = 0, size = me->size / DIV;
	void *ret;
	int i, err, spawned[DIV];

	if (me->size == 1)
		return (void *)(uintptr_t)me->num;
	for (i = 0; i < DIV; i++) {
		kids[i].num = me->num + (uint64_t)i * size;
		kids[i].size = size;
		err = fiber_spawn(&f[i], &node_attr, skynet, &kids[i]);
		spawned[i] = !err;
		if (err)
			sk_fail(err);
	}
	for (i = 0; i < DIV; i++) {
		if (!spawned[i])
			continue;
		err = fiber_join(f[i], &ret);
		if (err)
			sk_fail(err);
		else
			sum += (uintptr_t)ret;
	}
	return (void *)(uintptr_t)sum;
}

struct sk_run {
	const char *op;
	uint64_t leaves;
	uint64_t sum;
	int err;
};

/* one_run - one skynet tree; returns its duration in ns, or 0 (with r->err set) if it failed. */
static uint64_t one_run(struct sk_run *r)
{
	struct node top = { 0, r->leaves };
	uint64_t t0 = bench_now_ns(), t;
	fiber_t *f;
	void *ret;
	int err;

	__atomic_store_n(&sk_err, 0, __ATOMIC_RELAXED);
	err = fiber_spawn(&f, &node_attr, skynet, &top);
	if (!err)
		err = fiber_join(f, &ret);
	t = bench_now_ns() - t0;
	if (!err)
		err = __atomic_load_n(&sk_err, __ATOMIC_RELAXED);
	if (err) {
		r->err = err;
		return 0;
	}
	r->sum = (uintptr_t)ret;
	return t;
}

static void root(void *arg)
{
	struct sk_run *r = arg;
	double samples[BENCH_MAX_REPS];
	char reason[128];
	uint64_t want = r->leaves * (r->leaves - 1) / 2, t, start = bench_now_ns();
	int i;

	t = one_run(r); /* warm-up */
	if (!t)
		return;
	if (t > SKYNET_BUDGET_S * 1000000000ull && r->sum == want) {
		/* So slow that warming up no longer matters: the warm-up run is the only sample. */
		fprintf(stderr, "%s: the warm-up run alone took %.1f s, reporting it as the only run\n", r->op,
			(double)t / 1e9);
		samples[0] = (double)t / 1e6;
		bench_report(r->op, "libfiber", samples, 1, "ms/run");
		return;
	}
	for (i = 0; i < bench_opts.reps; i++) {
		if (i > 0 && bench_now_ns() - start > SKYNET_BUDGET_S * 1000000000ull) {
			fprintf(stderr, "%s: over the %d s budget, stopped after %d runs\n", r->op, SKYNET_BUDGET_S, i);
			break;
		}
		t = one_run(r);
		if (!t)
			return;
		if (r->sum != want) {
			snprintf(reason, sizeof(reason), "wrong sum %" PRIu64 ", want %" PRIu64, r->sum, want);
			bench_na(r->op, "libfiber", reason);
			r->err = -1;
			return;
		}
		samples[i] = (double)t / 1e6;
	}
	bench_report(r->op, "libfiber", samples, i, "ms/run");
}

static int one_config(unsigned workers, const char *op)
{
	struct sk_run r = { op, bench_opts.quick ? 10000 : 1000000, 0, 0 };
	const char *env = getenv("BENCH_SKYNET_LEAVES");
	int err;

	if (env && strtoull(env, NULL, 0) > 0)
		r.leaves = strtoull(env, NULL, 0);

	if (!bench_want(op))
		return 0;
	err = lf_run(workers, root, &r);
	if (err) {
		lf_na_err(op, "fiber_run", err);
		return 1;
	}
	if (r.err > 0 || r.err < -1)
		lf_na_err(op, "fiber_spawn/fiber_join", r.err);
	return r.err != 0;
}

int main(int argc, char **argv)
{
	int bad = 0;

	bench_init(argc, argv);
	fiber_attr_init(&node_attr);
	node_attr.stack_size = FIBER_STACK_MIN;
	if (getenv("BENCH_SKYNET_STACK"))
		node_attr.stack_size = strtoull(getenv("BENCH_SKYNET_STACK"), NULL, 0);
	bad |= one_config(2, "skynet_2w");
	bad |= one_config(1, "skynet_1w");
	return bad;
}
