/*
 * bench.h - the timing harness every C and C++ benchmark program in bench/ shares.
 *
 * A measurement is a function that runs an operation @iters times and returns how many nanoseconds that took
 * (it times itself, so set-up and tear-down stay out). The harness picks @iters so that one repetition lasts about
 * 100 ms, runs at least five repetitions and prints one machine-readable line:
 *
 *	RESULT <operation> <impl> <median> <min> <max> <unit>
 *
 * where median/min/max are taken over the repetitions of (returned ns) / (iters * ops per iteration). A
 * measurement that cannot be taken prints
 *
 *	NA <operation> <impl> <reason...>
 *
 * and bench/report.py shows it as "not available (<reason>)". Several measurements given to bench_run_many() have
 * their repetitions interleaved, so that slow drift of a shared machine hits them all alike.
 *
 * A yield measurement also says how many of its yields switched (a yield that returns without another context
 * having run costs less and would flatter the figure):
 *
 *	SWITCHES <operation> <impl> <median> <min> <max> switches/yield
 *
 * over the same repetitions. The yielders count it themselves, the same way in every implementation: each yielder
 * calls bench_yield_note() after every yield, which counts the yield as switched when the last context to note
 * was another one (the contexts of one measurement run one at a time, on one CPU), and adds its counts with
 * bench_yield_add() when it is done. bench_run_sw() runs such a measurement.
 *
 * Options every program accepts:
 *	--quick		a smoke run (tiny repetitions); the numbers mean nothing
 *	--reps N	repetitions per measurement (default 5, at least 1)
 *	--iters N	exactly N iterations per repetition, one repetition, no calibration (for callgrind.sh)
 *	--only OP	run only the measurements of operation OP
 *	--impl IMPL	run only the measurements of implementation IMPL (where a program has several)
 *	--target-ms M	wanted length of one repetition (default 100)
 *
 * Header only: each benchmark is a single translation unit (plus assembly). C and C++.
 */
#ifndef BENCH_H
#define BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BENCH_MAX_REPS 101

struct bench_opts {
	int quick;
	int reps;
	uint64_t iters;	  /* 0 = calibrate */
	const char *only; /* NULL = every operation */
	const char *impl; /* NULL = every implementation */
	double target_ns; /* wanted length of one repetition */
};

static struct bench_opts bench_opts = { 0, 5, 0, NULL, NULL, 100e6 };

/*
 * One measurement. @fn returns the nanoseconds that @iters iterations took; @ops is how many operations one
 * iteration performs (a ping-pong iteration is two switches).
 */
typedef uint64_t (*bench_fn)(void *arg, uint64_t iters);

struct bench_item {
	const char *op;
	const char *impl;
	const char *unit;
	bench_fn fn;
	void *arg;
	double ops;
	double scale; /* result = ns / (iters * ops) / scale; 0 means 1 (use 1e6 for ms) */
	int switches; /* a yield measurement: also report switches per yield (bench_yield_note) */
	/* filled in by the harness */
	uint64_t iters;
	int n;
	double samples[BENCH_MAX_REPS];
	int nsw;
	double sw_samples[BENCH_MAX_REPS];
};

/* ---- switch accounting of yield measurements ---- */

static int bench_last_runner = -1;
static uint64_t bench_sw_yields, bench_sw_switched; /* this repetition's totals (bench_yield_add) */

/* bench_yield_begin - yielder @me is running (call once before its first yield). */
static inline void bench_yield_begin(int me)
{
	__atomic_store_n(&bench_last_runner, me, __ATOMIC_RELAXED);
}

/* bench_yield_note - after a yield of yielder @me: count it in *@switched if another yielder ran meanwhile. */
static inline void bench_yield_note(int me, uint64_t *switched)
{
	if (__atomic_load_n(&bench_last_runner, __ATOMIC_RELAXED) != me)
		(*switched)++;
	__atomic_store_n(&bench_last_runner, me, __ATOMIC_RELAXED);
}

/* bench_yield_add - a yielder's totals, when it is done. */
static inline void bench_yield_add(uint64_t yields, uint64_t switched)
{
	__atomic_fetch_add(&bench_sw_yields, yields, __ATOMIC_RELAXED);
	__atomic_fetch_add(&bench_sw_switched, switched, __ATOMIC_RELAXED);
}

static inline void bench_yield_reset(void)
{
	__atomic_store_n(&bench_sw_yields, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&bench_sw_switched, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&bench_last_runner, -1, __ATOMIC_RELAXED);
}

/* An initializer for struct bench_item (C only; C++ code fills the fields or calls bench_run). */
#define BENCH_ITEM(op_, impl_, unit_, fn_, arg_, ops_)                                                                 \
	{                                                                                                              \
		.op = (op_), .impl = (impl_), .unit = (unit_), .fn = (fn_), .arg = (arg_), .ops = (ops_)               \
	}

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void bench_usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--quick] [--reps N] [--iters N] [--only OP] [--impl IMPL] [--target-ms M]\n", prog);
	exit(2);
}

static inline void bench_init(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--quick")) {
			bench_opts.quick = 1;
			bench_opts.target_ns = 2e6;
		} else if (!strcmp(a, "--reps") && i + 1 < argc) {
			bench_opts.reps = atoi(argv[++i]);
		} else if (!strcmp(a, "--iters") && i + 1 < argc) {
			bench_opts.iters = strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(a, "--only") && i + 1 < argc) {
			bench_opts.only = argv[++i];
		} else if (!strcmp(a, "--impl") && i + 1 < argc) {
			bench_opts.impl = argv[++i];
		} else if (!strcmp(a, "--target-ms") && i + 1 < argc) {
			bench_opts.target_ns = atof(argv[++i]) * 1e6;
		} else {
			bench_usage(argv[0]);
		}
	}
	if (bench_opts.reps < 1)
		bench_opts.reps = 1;
	if (bench_opts.reps > BENCH_MAX_REPS)
		bench_opts.reps = BENCH_MAX_REPS;
	if (bench_opts.iters)
		bench_opts.reps = 1;
	if (bench_opts.target_ns < 1e5)
		bench_opts.target_ns = 1e5;
}

/* bench_want - whether operation @op is selected by --only. */
static inline int bench_want(const char *op)
{
	return !bench_opts.only || !strcmp(bench_opts.only, op);
}

/* bench_want_item - whether @it is selected by --only and --impl. */
static inline int bench_want_item(const struct bench_item *it)
{
	return bench_want(it->op) && (!bench_opts.impl || !strcmp(bench_opts.impl, it->impl));
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * Latency rows: each repetition times every event on its own and reports one quantile of them (the median row and
 * the _p99 row of the same measurement), so that one event that waited for a tick cannot speak for thousands, as
 * it does in a mean, and the tail is shown rather than hidden.
 */
struct bench_lat {
	double *ns;
	uint64_t n, cap;
};

static inline void bench_lat_init(struct bench_lat *l, uint64_t cap)
{
	l->n = 0;
	l->cap = cap;
	l->ns = (double *)malloc(sizeof(*l->ns) * (cap ? cap : 1));
	if (!l->ns)
		l->cap = 0;
}

static inline void bench_lat_add(struct bench_lat *l, uint64_t ns)
{
	if (l->n < l->cap)
		l->ns[l->n++] = (double)ns;
}

/* bench_lat_result - the @q quantile (0.5, 0.99) of @l's events, times @iters (bench_fn's contract); frees @l. */
static inline uint64_t bench_lat_result(struct bench_lat *l, double q, uint64_t iters)
{
	double v = 0;

	if (l->n) {
		uint64_t k = (uint64_t)(q * (double)(l->n - 1) + 0.5);

		qsort(l->ns, (size_t)l->n, sizeof(*l->ns), bench_cmp_double);
		v = l->ns[k];
	}
	free(l->ns);
	l->ns = NULL;
	return (uint64_t)(v * (double)iters);
}

/* bench_report - print the RESULT line of @n samples (sorted in place). */
static inline void bench_report(const char *op, const char *impl, double *samples, int n, const char *unit)
{
	double med;

	if (n < 1)
		return;
	qsort(samples, (size_t)n, sizeof(*samples), bench_cmp_double);
	med = n & 1 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
	printf("RESULT %s %s %.2f %.2f %.2f %s\n", op, impl, med, samples[0], samples[n - 1], unit);
	fflush(stdout);
}

/* bench_report_switches - print the SWITCHES line of @n samples (sorted in place). */
static inline void bench_report_switches(const char *op, const char *impl, double *samples, int n)
{
	double med;

	if (n < 1)
		return;
	qsort(samples, (size_t)n, sizeof(*samples), bench_cmp_double);
	med = n & 1 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
	printf("SWITCHES %s %s %.4f %.4f %.4f switches/yield\n", op, impl, med, samples[0], samples[n - 1]);
	fflush(stdout);
}

/* bench_na - say that @op of @impl cannot be measured, and why. */
static inline void bench_na(const char *op, const char *impl, const char *reason)
{
	printf("NA %s %s %s\n", op, impl, reason);
	fflush(stdout);
}

/*
 * bench_calibrate - find an iteration count for which @it takes about target_ns of wall-clock time. The wall
 * clock is measured here, not taken from the function's result, so latency measurements that return only part of
 * the time they spend are sized correctly too. The calibration runs double as warm-up.
 */
static inline uint64_t bench_calibrate(struct bench_item *it)
{
	uint64_t iters = 8, t0, t;
	double want = bench_opts.target_ns;

	if (bench_opts.iters)
		return bench_opts.iters;
	for (;;) {
		t0 = bench_now_ns();
		it->fn(it->arg, iters);
		t = bench_now_ns() - t0;
		if (t >= want / 8 || iters >= (UINT64_C(1) << 40))
			break;
		iters *= t < want / 128 ? 16 : 2;
	}
	if (!t)
		t = 1;
	iters = (uint64_t)((double)iters * want / (double)t);
	return iters ? iters : 1;
}

/* bench_run_many - calibrate each item, run their repetitions interleaved, print one RESULT line each. */
static inline void bench_run_many(struct bench_item *items, int nitems)
{
	int i, r, any = 0;

	for (i = 0; i < nitems; i++) {
		items[i].n = 0;
		items[i].nsw = 0;
		if (!bench_want_item(&items[i]))
			continue;
		any = 1;
		items[i].iters = bench_calibrate(&items[i]);
	}
	if (!any)
		return;
	for (r = 0; r < bench_opts.reps; r++) {
		for (i = 0; i < nitems; i++) {
			struct bench_item *it = &items[i];
			double scale = it->scale > 0 ? it->scale : 1;
			uint64_t ns;

			if (!bench_want_item(it))
				continue;
			if (it->switches)
				bench_yield_reset();
			ns = it->fn(it->arg, it->iters);
			it->samples[it->n++] = (double)ns / ((double)it->iters * it->ops) / scale;
			if (it->switches && bench_sw_yields)
				it->sw_samples[it->nsw++] = (double)bench_sw_switched / (double)bench_sw_yields;
		}
	}
	for (i = 0; i < nitems; i++) {
		if (items[i].n)
			bench_report(items[i].op, items[i].impl, items[i].samples, items[i].n, items[i].unit);
		if (items[i].nsw)
			bench_report_switches(items[i].op, items[i].impl, items[i].sw_samples, items[i].nsw);
	}
}

/* bench_run - one measurement on its own. */
static inline void bench_run(const char *op, const char *impl, const char *unit, bench_fn fn, void *arg, double ops)
{
	struct bench_item it;

	memset(&it, 0, sizeof(it));
	it.op = op;
	it.impl = impl;
	it.unit = unit;
	it.fn = fn;
	it.arg = arg;
	it.ops = ops;
	bench_run_many(&it, 1);
}

/* bench_run_sw - a yield measurement on its own: RESULT and SWITCHES lines. */
static inline void bench_run_sw(const char *op, const char *impl, const char *unit, bench_fn fn, void *arg, double ops)
{
	struct bench_item it;

	memset(&it, 0, sizeof(it));
	it.op = op;
	it.impl = impl;
	it.unit = unit;
	it.fn = fn;
	it.arg = arg;
	it.ops = ops;
	it.switches = 1;
	bench_run_many(&it, 1);
}

/*
 * bench_stack - an mmap'ed stack of @size bytes; returns its 64-byte-aligned top, or NULL. Benchmarks keep their
 * stacks for the life of the process.
 */
static inline void *bench_stack(size_t size)
{
	char *p = (char *)mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	return (void *)(((uintptr_t)p + size) & ~(uintptr_t)63);
}

/* bench_die - report a failed set-up step and exit; the runner shows the message as the reason. */
static inline void bench_die(const char *what, int err)
{
	fprintf(stderr, "%s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* Keep the compiler from deleting or hoisting work whose result nobody reads. */
#define bench_barrier() __asm__ __volatile__("" ::: "memory")

static inline void bench_cpu_relax(void)
{
	__asm__ __volatile__("pause" ::: "memory");
}

#endif /* BENCH_H */
