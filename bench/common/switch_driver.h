/*
 * switch_driver.h - ping-pong and ring benchmarks over one raw switch primitive.
 *
 * The same C code drives every raw switch (libfiber's fiber__switch, the bare floor, the bare floor with the FPU
 * control state), so the figures differ only by the switch itself. Include this file once per primitive, after
 * defining:
 *
 *	SWD(name)			a prefix for every name generated here, e.g. bare_##name
 *	SWD_SWITCH(prev, next)		switch from context @prev (struct bench_ctx *) to @next
 *	SWD_FRAME_INIT(top, entry)	build a first frame below stack top @top so that switching to it enters
 *					entry() as if called; returns the sp to store in the context
 *
 * and get SWD(setup)() (returns 0 or -ENOMEM), SWD(pingpong)() and SWD(ring)(), two bench_fn:
 *	pingpong: the benchmark's own stack and one context switch back and forth; 2 switches per iteration.
 *	ring:     SWD_RING contexts (the benchmark's own stack is one of them) pass control round a ring;
 *	          SWD_RING switches per iteration.
 *
 * A context is any struct whose first member is the saved stack pointer: struct bench_ctx.
 */
#ifndef SWITCH_DRIVER_COMMON
#define SWITCH_DRIVER_COMMON

#include "bench.h"

#define SWD_RING 16
#define SWD_STACK_SIZE (64 * 1024)

struct bench_ctx {
	void *sp; /* offset 0: where a switch saves and loads rsp */
};

/* baselines/bare_switch.S */
#ifdef __cplusplus
extern "C" {
#endif
void *bench__bare_switch(struct bench_ctx *prev, struct bench_ctx *next);
void *bench__bare_fpu_switch(struct bench_ctx *prev, struct bench_ctx *next);
void *bench__bare_jmp_switch(struct bench_ctx *prev, struct bench_ctx *next);
#ifdef __cplusplus
}
#endif

/*
 * bare_frame_init - first frame for bench__bare_switch: six zeroed registers, then entry as the return address,
 * then a zero "return address" for entry itself. After the pops and the ret, rsp = top - 8, so entry starts with
 * rsp % 16 == 8 as if it had been called.
 */
static inline void *bare_frame_init(void *stack_top, void (*entry)(void))
{
	uint64_t *sp = (uint64_t *)((uintptr_t)stack_top & ~(uintptr_t)15);

	*--sp = 0;			    /* entry's return address: none, stops unwinders */
	*--sp = (uint64_t)(uintptr_t)entry; /* ret */
	sp -= 6;			    /* rbp rbx r12 r13 r14 r15 */
	memset(sp, 0, 6 * sizeof(*sp));
	return sp;
}

/* bare_fpu_frame_init - the same for bench__bare_fpu_switch, with the default MXCSR and x87 control word. */
static inline void *bare_fpu_frame_init(void *stack_top, void (*entry)(void))
{
	uint64_t *sp = (uint64_t *)((uintptr_t)stack_top & ~(uintptr_t)15);
	uint32_t mxcsr = 0x1f80; /* all exceptions masked, round to nearest */
	uint16_t fpucw = 0x037f; /* the same for x87, extended precision */

	*--sp = 0; /* entry's return address */
	*--sp = (uint64_t)(uintptr_t)entry;
	sp -= 6;
	memset(sp, 0, 6 * sizeof(*sp));
	--sp; /* the control-state slot; entry again starts at top - 8 */
	memcpy(sp, &mxcsr, 4);
	memcpy((char *)sp + 4, &fpucw, 2);
	return sp;
}

#endif /* SWITCH_DRIVER_COMMON */

/* contexts: [0] stands for the benchmark's own stack, which the driver never builds a frame for */
static struct bench_ctx SWD(pp_ctx)[2];
static struct bench_ctx SWD(ring_ctx)[SWD_RING];
static volatile unsigned SWD(ring_start);

static void SWD(pp_entry)(void)
{
	for (;;)
		SWD_SWITCH(&SWD(pp_ctx)[1], &SWD(pp_ctx)[0]);
}

static void SWD(ring_entry)(void)
{
	unsigned me = SWD(ring_start);
	struct bench_ctx *self = &SWD(ring_ctx)[me];
	struct bench_ctx *next = &SWD(ring_ctx)[(me + 1) % SWD_RING];

	/* Started: go back to the set-up loop, then pass control on for ever. */
	SWD_SWITCH(self, &SWD(ring_ctx)[0]);
	for (;;)
		SWD_SWITCH(self, next);
}

static int SWD(setup)(void)
{
	unsigned i;
	void *top;

	top = bench_stack(SWD_STACK_SIZE);
	if (!top)
		return -ENOMEM;
	SWD(pp_ctx)[1].sp = SWD_FRAME_INIT(top, SWD(pp_entry));
	for (i = 1; i < SWD_RING; i++) {
		top = bench_stack(SWD_STACK_SIZE);
		if (!top)
			return -ENOMEM;
		SWD(ring_ctx)[i].sp = SWD_FRAME_INIT(top, SWD(ring_entry));
		SWD(ring_start) = i;
		SWD_SWITCH(&SWD(ring_ctx)[0], &SWD(ring_ctx)[i]);
	}
	return 0;
}

static uint64_t SWD(pingpong)(void *arg, uint64_t iters)
{
	uint64_t i, t0 = bench_now_ns();

	(void)arg;
	for (i = 0; i < iters; i++)
		SWD_SWITCH(&SWD(pp_ctx)[0], &SWD(pp_ctx)[1]);
	return bench_now_ns() - t0;
}

static uint64_t SWD(ring)(void *arg, uint64_t iters)
{
	uint64_t i, t0 = bench_now_ns();

	(void)arg;
	for (i = 0; i < iters; i++)
		SWD_SWITCH(&SWD(ring_ctx)[0], &SWD(ring_ctx)[1]);
	return bench_now_ns() - t0;
}

#undef SWD
#undef SWD_SWITCH
#undef SWD_FRAME_INIT
