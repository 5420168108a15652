/*
 * bench_switch.c - the raw context switch: libfiber's fiber__switch (asm/switch_x86_64_sysv_elf.S) alone, with
 * no scheduler around it, against the bare floor.
 *
 *	switch_pingpong	the benchmark's stack and one context switch back and forth (ns/switch)
 *	switch_ring16	16 contexts pass control round a ring (ns/switch)
 *
 * The same driver (common/switch_driver.h) runs fiber__switch and the three bare switches of
 * baselines/bare_switch.S in this process, their repetitions interleaved, so the ratio libfiber / bare is taken
 * under the same conditions. The "bare*" lines printed here supersede those of baseline_bare_switch in the table.
 *
 * A context is a struct whose first member is the saved sp, which is all fiber__switch touches (it stores rsp at
 * FIBER_SP_OFFSET == 0 of prev and loads it from next).
 */
#include "bench.h"

#if __has_include("internal.h")
#include "internal.h"
#else
/* Until runtime/internal.h exists: the two prototypes the brief of bench/ gives. */
struct fiber;
struct fiber *fiber__switch(struct fiber *prev, struct fiber *next);
void *fiber__frame_init(void *stack_top, void (*entry)(void));
#define FIBER_SP_OFFSET 0
#endif

#define SWD(name) lf_##name
#define SWD_SWITCH(prev, next) fiber__switch((struct fiber *)(prev), (struct fiber *)(next))
#define SWD_FRAME_INIT(top, entry) fiber__frame_init(top, entry)
#include "switch_driver.h"

#define SWD(name) bare_##name
#define SWD_SWITCH(prev, next) bench__bare_switch(prev, next)
#define SWD_FRAME_INIT(top, entry) bare_frame_init(top, entry)
#include "switch_driver.h"

#define SWD(name) fpu_##name
#define SWD_SWITCH(prev, next) bench__bare_fpu_switch(prev, next)
#define SWD_FRAME_INIT(top, entry) bare_fpu_frame_init(top, entry)
#include "switch_driver.h"

#define SWD(name) jmp_##name
#define SWD_SWITCH(prev, next) bench__bare_jmp_switch(prev, next)
#define SWD_FRAME_INIT(top, entry) bare_frame_init(top, entry)
#include "switch_driver.h"

_Static_assert(FIBER_SP_OFFSET == 0, "struct bench_ctx keeps the saved sp at offset 0");

int main(int argc, char **argv)
{
	struct bench_item items[] = {
		BENCH_ITEM("switch_pingpong", "libfiber", "ns/switch", lf_pingpong, NULL, 2),
		BENCH_ITEM("switch_pingpong", "bare", "ns/switch", bare_pingpong, NULL, 2),
		BENCH_ITEM("switch_pingpong", "bare_fpu", "ns/switch", fpu_pingpong, NULL, 2),
		BENCH_ITEM("switch_pingpong", "bare_jmp", "ns/switch", jmp_pingpong, NULL, 2),
		BENCH_ITEM("switch_ring16", "libfiber", "ns/switch", lf_ring, NULL, SWD_RING),
		BENCH_ITEM("switch_ring16", "bare", "ns/switch", bare_ring, NULL, SWD_RING),
		BENCH_ITEM("switch_ring16", "bare_fpu", "ns/switch", fpu_ring, NULL, SWD_RING),
		BENCH_ITEM("switch_ring16", "bare_jmp", "ns/switch", jmp_ring, NULL, SWD_RING),
	};
	int err;

	bench_init(argc, argv);
	err = lf_setup();
	if (!err)
		err = bare_setup();
	if (!err)
		err = fpu_setup();
	if (!err)
		err = jmp_setup();
	if (err)
		bench_die("stacks", err);
	bench_run_many(items, 4);
	bench_run_many(items + 4, 4);
	return 0;
}
