/* Helpers shared by the tests: nothing here asserts; tests assert on their own thread after the runtime stops. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#define _GNU_SOURCE
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fiber.h"

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* qsort comparator for uint64_t. */
static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Process CPU time (user + system), ns. */
static inline uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * CPU time of the calling thread: the worker's, whichever fiber reads it. The wall clock minus this clock is the
 * time the host kept the worker thread off the CPU, when the runtime could do nothing at all.
 */
static inline uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline size_t rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

static inline struct fiber_config test_cfg(unsigned workers)
{
	struct fiber_config c;

	fiber_config_init(&c);
	c.workers = workers;
	return c;
}

/*
 * run_in_fiber - run @fn in the main fiber of a runtime with @workers workers (fiber_run) and return its result,
 * or INT_MIN if the runtime did not run. For tests of one call's result: @fn only records, the test asserts on
 * what comes back, after the runtime has stopped.
 */
struct run_in_fiber_call {
	int (*fn)(void);
	int ret;
};

static inline void run_in_fiber_main(void *arg)
{
	struct run_in_fiber_call *call = arg;

	call->ret = call->fn();
}

static inline int run_in_fiber(unsigned workers, int (*fn)(void))
{
	struct fiber_config c = test_cfg(workers);
	struct run_in_fiber_call call = { fn, INT_MIN };

	if (fiber_run(&c, run_in_fiber_main, &call))
		return INT_MIN;
	return call.ret;
}

/*
 * OPAQUE: a function the compiler may neither inline nor look into (nor clone, as link-time optimisation does):
 * a test that must read or write errno after a switch, or see a function's own frame in a backtrace.
 */
#if defined(__clang__)
#define OPAQUE __attribute__((noinline, optnone))
#else
#define OPAQUE __attribute__((noinline, noipa))
#endif

/* ---- shared by the scheduling-class tests (test_sched_*.c) ---- */

#define US 1000ull
#define MS 1000000ull

/* The class tests' tolerances assume a 1 ms tick, whatever FIBER_TICK_HZ in the environment says. */
static inline struct fiber_config sched_cfg(unsigned workers)
{
	struct fiber_config c = test_cfg(workers);

	c.tick_hz = 1000;
	return c;
}

/*
 * Host steal: the share of a window that the host gave to other processes, for a window in which the test kept
 * one worker busy throughout (1 - process CPU time / wall time; the monitor's own CPU time makes it a little
 * smaller). The class tests' timing needs a CPU for that worker: on a loaded host the runtime's clock charges host
 * preemption to the fiber that was running (it is raw TSC time), which moves weights and budgets by whole
 * descheduled intervals. Such a test skips, saying so, rather than fail or pass on noise.
 */
struct steal_probe {
	uint64_t cpu, wall;
};

static inline void steal_start(struct steal_probe *s)
{
	s->cpu = cpu_ns();
	s->wall = now_ns();
}

static inline double steal_end(const struct steal_probe *s)
{
	double cpu = (double)(cpu_ns() - s->cpu), wall = (double)(now_ns() - s->wall);

	return wall > 0 && cpu < wall ? 1.0 - cpu / wall : 0.0;
}

#define STEAL_MAX 0.15
#define skip_if_stolen(frac)                                                                                           \
	do {                                                                                                           \
		if ((frac) > STEAL_MAX) {                                                                              \
			print_message("  the host took %.0f%% of the busy worker's time: skipped (needs a CPU)\n",     \
				      100.0 * (frac));                                                                 \
			skip();                                                                                        \
		}                                                                                                      \
	} while (0)

/* Busy for @ns of wall time, with a preemption point in every iteration. */
static inline void spin_ns(uint64_t ns)
{
	uint64_t end = now_ns() + ns;

	while (now_ns() < end)
		fiber_cond_resched();
}

/* CPU time a fiber has run so far (fiber_stats); 0 and *@err set when it cannot be read. */
static inline uint64_t fiber_exec_ns(fiber_t *f, int *err)
{
	struct fiber_stats st;

	if (fiber_stats(f, &st)) {
		*err |= 1;
		return 0;
	}
	return st.sum_exec_ns;
}

/* Read @fd until EOF (or @size - 1 bytes) into @buf, NUL-terminated; the length read. */
static inline size_t read_all(int fd, char *buf, size_t size)
{
	size_t len = 0;

	while (len < size - 1) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	return len;
}

#endif
