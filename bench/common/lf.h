/*
 * lf.h - small helpers shared by the libfiber benchmark programs (bench_*.c): run a benchmark body as the root
 * fiber of a runtime with a given number of workers, and report failures as NA lines.
 */
#ifndef BENCH_LF_H
#define BENCH_LF_H

#include "bench.h"
#include "fiber.h"

#include <pthread.h>
#include <signal.h>

/*
 * lf_run - start a runtime with @workers workers (0 = one per CPU), run @fn(@arg) as a fiber, wait until every
 * fiber has exited and stop. Returns 0 or the -errno of fiber_run. lf_run_flags: the same with fiber_config.flags.
 *
 * With BENCH_BLOCK_RT_SIGNALS=1 in the environment (callgrind.sh sets it) the real-time signals are blocked
 * while the runtime runs; the workers inherit the mask, so the scheduler tick (a POSIX timer signal) is never
 * delivered. Callgrind aborts on a signal that arrives while a fiber runs on its own stack, and a run without
 * ticks also counts the instructions of the switch path alone.
 */
static inline int lf_run_flags(unsigned workers, unsigned flags, void (*fn)(void *), void *arg)
{
	struct fiber_config cfg;
	const char *env = getenv("BENCH_BLOCK_RT_SIGNALS");
	sigset_t set, old;
	int i, err, block = env && !strcmp(env, "1");

	fiber_config_init(&cfg);
	cfg.workers = workers;
	cfg.flags |= flags;
	if (block) {
		sigemptyset(&set);
		for (i = SIGRTMIN; i <= SIGRTMAX; i++)
			sigaddset(&set, i);
		pthread_sigmask(SIG_BLOCK, &set, &old);
	}
	err = fiber_run(&cfg, fn, arg);
	if (block)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

static inline int lf_run(unsigned workers, void (*fn)(void *), void *arg)
{
	return lf_run_flags(workers, 0, fn, arg);
}

/*
 * The flags of a runtime whose workers must each be a CPU, as the pthread baselines pin their threads to two CPUs:
 * FIBER_CFG_PIN, unless FIBER_PIN=0 in the environment asks for the default, unpinned workers.
 */
static inline unsigned lf_pin_flags(void)
{
	const char *env = getenv("FIBER_PIN");

	return env && !strcmp(env, "0") ? 0 : FIBER_CFG_PIN;
}

/* lf_attr_on - default attributes, restricted to worker @w (-1: any worker). */
static inline void lf_attr_on(struct fiber_attr *attr, int w)
{
	fiber_attr_init(attr);
	if (w >= 0)
		CPU_SET(w, &attr->affinity);
}

/* lf_na_err - an NA line whose reason is "<what>: <strerror(-err)>". */
static inline void lf_na_err(const char *op, const char *what, int err)
{
	char reason[256];

	snprintf(reason, sizeof(reason), "%s failed: %s", what, strerror(err < 0 ? -err : err));
	bench_na(op, "libfiber", reason);
}

#endif /* BENCH_LF_H */
