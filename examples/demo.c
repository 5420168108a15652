/*
 * demo: fibers across workers. Spawns fibers that sleep, yield and compute, joins them, and prints what each did
 * and where it ran: the worker it started on, the worker it ended on, and how many times it moved.
 */
#include <fiber.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define NR_FIBERS 8

struct job {
	int n;
	int start_worker, end_worker;
	int moves;
	uint64_t sum;
};

static void *job_fn(void *arg)
{
	struct job *j = arg;
	int last;

	j->start_worker = last = fiber_worker_id();
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 10000; i++)
			j->sum += (uint64_t)i * (uint64_t)(j->n + 1);
		if (round % 2)
			fiber_sleep(1000000 + (uint64_t)j->n * 100000); /* 1 ms + a bit */
		else
			fiber_yield();
		if (fiber_worker_id() != last) {
			j->moves++;
			last = fiber_worker_id();
		}
	}
	j->end_worker = fiber_worker_id();
	return (void *)(uintptr_t)j->n;
}

static void main_fiber(void *arg)
{
	struct job jobs[NR_FIBERS] = { 0 };
	fiber_t *f[NR_FIBERS];
	char name[16];

	(void)arg;
	printf("libfiber %s: %u workers, main fiber %" PRIu64 " on worker %d\n", fiber_version(), fiber_worker_count(),
	       fiber_id(fiber_self()), fiber_worker_id());
	for (int i = 0; i < NR_FIBERS; i++) {
		struct fiber_attr attr;
		int ret;

		fiber_attr_init(&attr);
		snprintf(name, sizeof(name), "job%d", i);
		attr.name = name;
		jobs[i].n = i;
		ret = fiber_spawn(&f[i], &attr, job_fn, &jobs[i]);
		if (ret) {
			fprintf(stderr, "fiber_spawn: %d\n", ret);
			exit(1);
		}
	}
	for (int i = 0; i < NR_FIBERS; i++) {
		void *ret;

		fiber_join(f[i], &ret);
		printf(
		    "fiber job%d (returned %d): started on worker %d, ended on worker %d, moved %d times, sum %" PRIu64
		    "\n",
		    i, (int)(uintptr_t)ret, jobs[i].start_worker, jobs[i].end_worker, jobs[i].moves, jobs[i].sum);
	}
}

int main(void)
{
	int ret = fiber_run(NULL, main_fiber, NULL);

	if (ret) {
		fprintf(stderr, "fiber_run: %d\n", ret);
		return 1;
	}
	printf("all fibers exited; runtime stopped\n");
	return 0;
}
