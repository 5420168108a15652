/*
 * runtime/clock.c - sched_clock(): a monotonic nanosecond clock cheap enough for every switch.
 *
 * Where the TSC is invariant (constant_tsc and nonstop_tsc in /proc/cpuinfo), the clock is the TSC scaled to
 * nanoseconds with a multiply and a shift, calibrated once per process against CLOCK_MONOTONIC (rdtsc costs about a
 * third of a vDSO clock_gettime here). Otherwise it is clock_gettime(CLOCK_MONOTONIC). Either way the values are on
 * CLOCK_MONOTONIC's time line, so they can be compared with it.
 */
#include "internal.h"

#include <time.h>
#include <x86intrin.h>

static struct {
	bool use_tsc;
	uint64_t tsc0, ns0;
	uint64_t mult; /* ns = ns0 + ((tsc - tsc0) * mult) >> 32 */
} clk;
static pthread_once_t clk_once = PTHREAD_ONCE_INIT;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool tsc_invariant(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[4096];
	bool constant = false, nonstop = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		constant = strstr(line, " constant_tsc") != NULL;
		nonstop = strstr(line, " nonstop_tsc") != NULL;
		break;
	}
	fclose(f);
	return constant && nonstop;
}

/* Sample the TSC and CLOCK_MONOTONIC as close together as possible (the pair with the shortest bracket wins). */
static void sample(uint64_t *tsc, uint64_t *ns)
{
	uint64_t best = UINT64_MAX;

	*tsc = *ns = 0;
	for (int i = 0; i < 5; i++) {
		uint64_t a = __rdtsc(), n = mono_ns(), b = __rdtsc();

		if (b - a < best) {
			best = b - a;
			*tsc = a + (b - a) / 2;
			*ns = n;
		}
	}
}

static void clock_calibrate(void)
{
	uint64_t t0, n0, t1, n1;
	struct timespec d = { 0, 5 * 1000 * 1000 };

	if (!tsc_invariant())
		return;
	sample(&t0, &n0);
	nanosleep(&d, NULL);
	sample(&t1, &n1);
	if (t1 <= t0 || n1 <= n0)
		return;
	clk.mult = (uint64_t)(((unsigned __int128)(n1 - n0) << 32) / (t1 - t0));
	clk.tsc0 = t1;
	clk.ns0 = n1;
	clk.use_tsc = clk.mult != 0;
}

void fiber__clock_init(void)
{
	pthread_once(&clk_once, clock_calibrate);
}

uint64_t fiber__sched_clock(void)
{
	if (likely(clk.use_tsc)) {
		uint64_t d = __rdtsc() - clk.tsc0;

		return clk.ns0 + (uint64_t)(((unsigned __int128)d * clk.mult) >> 32);
	}
	return mono_ns();
}
