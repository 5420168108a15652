/*
 * swapcontext_bench.c - glibc's swapcontext(3): ping-pong and ring-16, the same shapes as the raw switch
 * benchmarks. swapcontext saves the whole register file and makes an rt_sigprocmask system call per switch,
 * which is why user-space runtimes do not use it.
 */
#include "bench.h" /* first: it defines _GNU_SOURCE */

#include <ucontext.h>

#define RING 16
#define STACK_SIZE (64 * 1024)

static ucontext_t pp_ctx[2];	  /* [0] = the benchmark's own stack */
static ucontext_t ring_ctx[RING]; /* [0] = the benchmark's own stack */

static void pp_entry(void)
{
	for (;;)
		swapcontext(&pp_ctx[1], &pp_ctx[0]);
}

static void ring_entry(int me)
{
	for (;;)
		swapcontext(&ring_ctx[me], &ring_ctx[(me + 1) % RING]);
}

static int make(ucontext_t *uc, void (*fn)(void), int argc, int arg)
{
	char *top = (char *)bench_stack(STACK_SIZE);

	if (!top)
		return -ENOMEM;
	if (getcontext(uc))
		return -errno;
	uc->uc_stack.ss_sp = top - (STACK_SIZE - 4096);
	uc->uc_stack.ss_size = STACK_SIZE - 4096;
	uc->uc_link = NULL;
	if (argc)
		makecontext(uc, fn, 1, arg);
	else
		makecontext(uc, fn, 0);
	return 0;
}

static uint64_t pingpong(void *arg, uint64_t iters)
{
	uint64_t i, t0 = bench_now_ns();

	(void)arg;
	for (i = 0; i < iters; i++)
		swapcontext(&pp_ctx[0], &pp_ctx[1]);
	return bench_now_ns() - t0;
}

static uint64_t ring(void *arg, uint64_t iters)
{
	uint64_t i, t0 = bench_now_ns();

	(void)arg;
	for (i = 0; i < iters; i++)
		swapcontext(&ring_ctx[0], &ring_ctx[1]);
	return bench_now_ns() - t0;
}

int main(int argc, char **argv)
{
	int i, err;

	bench_init(argc, argv);
	err = make(&pp_ctx[1], pp_entry, 0, 0);
	for (i = 1; i < RING && !err; i++)
		err = make(&ring_ctx[i], (void (*)(void))ring_entry, 1, i);
	if (err)
		bench_die("contexts", err);
	bench_run("switch_pingpong", "swapcontext", "ns/switch", pingpong, NULL, 2);
	bench_run("switch_ring16", "swapcontext", "ns/switch", ring, NULL, RING);
	return 0;
}
