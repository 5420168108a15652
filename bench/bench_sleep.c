/*
 * bench_sleep.c - timer precision and the monitor's own cost.
 *
 *	sleep_50us	one fiber on an otherwise idle runtime sleeps 50 us, again and again; each sample is the
 *			median of one batch of measured sleep lengths (ns from before fiber_sleep to after it
 *			returns). The row's min/max are over batches. Budget: median under 70 us. The program
 *			also prints the p99 of all sleeps and how many returned early (must be 0).
 *	sleep_50us_p99	the 99th percentile of the same sleeps, per batch
 *	monitor_cpu	the monitor thread's CPU time per second of wall time while one worker runs two CPU-bound
 *			fibers (the tick is needed, so the monitor scans every millisecond): ns of CPU per second
 *	monitor_cpu_idle	the same with every worker idle (the monitor sleeps until kicked)
 */
#include "lf.h"

#include <dirent.h>
#include <stdatomic.h>

#define BATCH 200
#define SLEEP_NS 50000ull

static int reps(void)
{
	return bench_opts.quick ? 3 : bench_opts.reps;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double med_samples[BENCH_MAX_REPS], p99_samples[BENCH_MAX_REPS];
static uint64_t all[BENCH_MAX_REPS * BATCH];
static int nall, early;

static void sleep_main(void *arg)
{
	uint64_t batch[BATCH];
	int n = reps(), per = bench_opts.quick ? 20 : BATCH;

	(void)arg;
	for (int r = 0; r < n; r++) {
		for (int i = 0; i < per; i++) {
			uint64_t t0 = bench_now_ns();

			fiber_sleep(SLEEP_NS);
			batch[i] = bench_now_ns() - t0;
			early += batch[i] < SLEEP_NS;
			all[nall++] = batch[i];
		}
		qsort(batch, (size_t)per, sizeof(batch[0]), cmp_u64);
		med_samples[r] = (double)batch[per / 2];
		p99_samples[r] = (double)batch[per * 99 / 100];
	}
}

/* CPU time of the thread named "fiber-monitor" (its /proc/self/task/<tid>/stat utime + stime), ns. */
static uint64_t monitor_cpu_ns(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	uint64_t ns = 0;
	long hz = sysconf(_SC_CLK_TCK);

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[300], buf[512];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(buf, sizeof(buf), f) || strncmp(buf, "fiber-monitor", 13)) {
			fclose(f);
			continue;
		}
		fclose(f);
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
		f = fopen(path, "r");
		if (f && fgets(buf, sizeof(buf), f)) {
			char *p = strrchr(buf, ')');
			unsigned long ut = 0, st = 0;

			/* fields after ")": state(3) ... utime(14) stime(15) */
			if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
				ns = (uint64_t)(ut + st) * (1000000000ull / (uint64_t)hz);
		}
		if (f)
			fclose(f);
	}
	closedir(d);
	return ns;
}

static atomic_int spin_stop;
static double mon_samples[BENCH_MAX_REPS], mon_idle_samples[BENCH_MAX_REPS];

static void *spinner(void *arg)
{
	(void)arg;
	while (!atomic_load(&spin_stop))
		fiber_cond_resched();
	return NULL;
}

/* One window per sample; /proc counts in clock ticks (10 ms), so the windows are long. */
static void monitor_main(void *arg)
{
	uint64_t win = bench_opts.quick ? 200000000ull : 1000000000ull;
	struct fiber_attr a;
	fiber_t *f[2];

	(void)arg;
	lf_attr_on(&a, 0);
	atomic_store(&spin_stop, 0);
	for (int i = 0; i < 2; i++)
		fiber_spawn(&f[i], &a, spinner, NULL);
	for (int r = 0; r < reps(); r++) {
		uint64_t c0 = monitor_cpu_ns(), t0 = bench_now_ns();

		fiber_sleep(win);
		mon_samples[r] = (double)(monitor_cpu_ns() - c0) * 1e9 / (double)(bench_now_ns() - t0);
	}
	atomic_store(&spin_stop, 1);
	for (int i = 0; i < 2; i++)
		fiber_join(f[i], NULL);
	for (int r = 0; r < reps(); r++) {
		uint64_t c0 = monitor_cpu_ns(), t0 = bench_now_ns();

		fiber_sleep(win);
		mon_idle_samples[r] = (double)(monitor_cpu_ns() - c0) * 1e9 / (double)(bench_now_ns() - t0);
	}
}

int main(int argc, char **argv)
{
	int err;

	bench_init(argc, argv);
	if (bench_want("sleep_50us") || bench_want("sleep_50us_p99")) {
		err = lf_run(2, sleep_main, NULL);
		if (err) {
			lf_na_err("sleep_50us", "fiber_run", err);
		} else {
			qsort(all, (size_t)nall, sizeof(all[0]), cmp_u64);
			fprintf(stderr, "sleep_50us: %d sleeps, median %.1f us, p99 %.1f us, max %.1f us, early %d\n",
				nall, all[nall / 2] / 1e3, all[nall * 99 / 100] / 1e3, all[nall - 1] / 1e3, early);
			bench_report("sleep_50us", "libfiber", med_samples, reps(), "ns");
			bench_report("sleep_50us_p99", "libfiber", p99_samples, reps(), "ns");
			if (early)
				bench_na("sleep_50us_early", "libfiber", "a sleep returned before 50 us");
		}
	}
	if (bench_want("monitor_cpu") || bench_want("monitor_cpu_idle")) {
		err = lf_run(2, monitor_main, NULL);
		if (err) {
			lf_na_err("monitor_cpu", "fiber_run", err);
		} else {
			bench_report("monitor_cpu", "libfiber", mon_samples, reps(), "ns/s");
			bench_report("monitor_cpu_idle", "libfiber", mon_idle_samples, reps(), "ns/s");
		}
	}
	return 0;
}
