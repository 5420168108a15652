/*
 * bare_switch_bench.c - the floor: ping-pong and ring-16 over a bare six-register switch (bare_switch.S), and
 * the same with MXCSR and the x87 control word saved (impl "bare_fpu"), and the bare switch leaving through an
 * indirect jmp instead of ret (impl "bare_jmp", see bare_switch.S), all driven by the same C code as libfiber's
 * raw switch in ../bench_switch.c.
 */
#include "bench.h"

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

int main(int argc, char **argv)
{
	struct bench_item items[] = {
		BENCH_ITEM("switch_pingpong", "bare", "ns/switch", bare_pingpong, NULL, 2),
		BENCH_ITEM("switch_pingpong", "bare_fpu", "ns/switch", fpu_pingpong, NULL, 2),
		BENCH_ITEM("switch_pingpong", "bare_jmp", "ns/switch", jmp_pingpong, NULL, 2),
		BENCH_ITEM("switch_ring16", "bare", "ns/switch", bare_ring, NULL, SWD_RING),
		BENCH_ITEM("switch_ring16", "bare_fpu", "ns/switch", fpu_ring, NULL, SWD_RING),
		BENCH_ITEM("switch_ring16", "bare_jmp", "ns/switch", jmp_ring, NULL, SWD_RING),
	};
	int err;

	bench_init(argc, argv);
	err = bare_setup();
	if (!err)
		err = fpu_setup();
	if (!err)
		err = jmp_setup();
	if (err)
		bench_die("stacks", err);
	bench_run_many(items, 3);
	bench_run_many(items + 3, 3);
	return 0;
}
