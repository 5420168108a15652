/*
 * examples/trace_demo.c - a small program to look at in a timeline trace (scripts/trace_picture renders it):
 * a producer hands items to two consumers through join (each item is a fiber the consumer joins), a ticker sleeps
 * on the timer, and two CPU-bound fibers share a worker under the fair class.
 *
 *   FIBER_TRACE=trace.json ./build/examples/trace_demo   then open trace.json in https://ui.perfetto.dev
 */
#define _GNU_SOURCE
#include <fiber.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void busy(uint64_t ns)
{
	uint64_t end = now_ns() + ns;

	while (now_ns() < end)
		fiber_cond_resched();
}

static void *item(void *arg)
{
	busy(40000); /* 40 us of "work" */
	return arg;
}

static void *consumer(void *arg)
{
	struct fiber_attr a;

	fiber_attr_init(&a);
	a.name = "item";
	for (int i = 0; i < 12; i++) {
		fiber_t *f;

		if (fiber_spawn(&f, &a, item, NULL) == 0)
			fiber_join(f, NULL);
		fiber_sleep(30000);
	}
	return NULL;
}

static void *ticker(void *arg)
{
	for (int i = 0; i < 10; i++) {
		fiber_sleep(100000);
		busy(5000);
	}
	return NULL;
}

static void *cruncher(void *arg)
{
	busy(1500000);
	return NULL;
}

static void demo(void *arg)
{
	struct fiber_attr a;
	fiber_t *f[5];

	fiber_attr_init(&a);
	a.name = "consumer-a";
	fiber_spawn(&f[0], &a, consumer, NULL);
	a.name = "consumer-b";
	fiber_spawn(&f[1], &a, consumer, NULL);
	a.name = "ticker";
	fiber_spawn(&f[2], &a, ticker, NULL);
	CPU_SET(1, &a.affinity);
	a.name = "crunch-x";
	fiber_spawn(&f[3], &a, cruncher, NULL);
	a.name = "crunch-y";
	fiber_spawn(&f[4], &a, cruncher, NULL);
	for (int i = 0; i < 5; i++)
		fiber_join(f[i], NULL);
}

int main(void)
{
	struct fiber_config c;

	fiber_config_init(&c);
	c.workers = 2;
	if (fiber_run(&c, demo, NULL)) {
		fprintf(stderr, "trace_demo: failed\n");
		return 1;
	}
	return 0;
}
