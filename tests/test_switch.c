/*
 * test_switch: the assembly switch preserves every callee-saved register, MXCSR and the x87 control word, and a
 * new fiber starts on a correctly aligned stack.
 */
#include "test_util.h"

#include <xmmintrin.h>

uint64_t test_call_with_regs(void (*fn)(void), uint64_t out[6], uint64_t seed);
void *test_entry_rsp(void *arg); /* returns the call-site rsp */

#define NR 4
#define ROUNDS 200

static uint64_t regs_out[NR][6];
static uint64_t seeds[NR];
static unsigned fp_bad[NR];
static uintptr_t entry_rsp[NR];

static void yield_many(void)
{
	for (int i = 0; i < ROUNDS; i++)
		fiber_yield();
}

static void *regs_fiber(void *arg)
{
	int i = (int)(intptr_t)arg;

	test_call_with_regs(yield_many, regs_out[i], seeds[i]);
	return NULL;
}

static void regs_main(void *arg)
{
	fiber_t *f[NR];

	(void)arg;
	for (int i = 0; i < NR; i++) {
		seeds[i] = 0x1000000000000000ull * (uint64_t)(i + 1) + 0x1234;
		fiber_spawn(&f[i], NULL, regs_fiber, (void *)(intptr_t)i);
	}
	for (int i = 0; i < NR; i++)
		fiber_join(f[i], NULL);
}

static void test_switch_preserves_callee_saved(void **state)
{
	/* One worker so that the fibers interleave on it; then two, so they also move. */
	for (unsigned workers = 1; workers <= 2; workers++) {
		struct fiber_config c = test_cfg(workers);

		memset(regs_out, 0, sizeof(regs_out));
		assert_int_equal(fiber_run(&c, regs_main, NULL), 0);
		for (int i = 0; i < NR; i++) {
			uint64_t v = seeds[i];

			for (int r = 0; r < 6; r++) {
				assert_int_equal(regs_out[i][r], v);
				v += 0x0101010101010101ull;
			}
		}
	}
}

/* Each fiber sets its own rounding mode in MXCSR and the x87 control word and checks they survive switches. */
static void *fp_fiber(void *arg)
{
	int i = (int)(intptr_t)arg;
	unsigned mx = 0x1f80u | ((unsigned)(i & 3) << 13); /* RC field, bits 13-14 */
	unsigned short cw = (unsigned short)(0x037fu | ((unsigned)(i & 3) << 10)), cw_now;

	_mm_setcsr(mx);
	__asm__ __volatile__("fldcw %0" : : "m"(cw));
	for (int r = 0; r < ROUNDS; r++) {
		fiber_yield();
		__asm__ __volatile__("fnstcw %0" : "=m"(cw_now));
		if (_mm_getcsr() != mx || cw_now != cw)
			fp_bad[i]++;
	}
	return NULL;
}

static void fp_main(void *arg)
{
	fiber_t *f[NR];

	(void)arg;
	for (int i = 0; i < NR; i++)
		fiber_spawn(&f[i], NULL, fp_fiber, (void *)(intptr_t)i);
	for (int i = 0; i < NR; i++)
		fiber_join(f[i], NULL);
}

static void test_switch_preserves_mxcsr_x87cw(void **state)
{
	struct fiber_config c = test_cfg(1);

	memset(fp_bad, 0, sizeof(fp_bad));
	assert_int_equal(fiber_run(&c, fp_main, NULL), 0);
	for (int i = 0; i < NR; i++)
		assert_int_equal(fp_bad[i], 0);
}

static void align_main(void *arg)
{
	fiber_t *f[NR];
	struct fiber_attr attr;

	(void)arg;
	for (int i = 0; i < NR; i++) {
		void *ret = NULL;

		fiber_attr_init(&attr);
		/* Odd-sized stacks too: the frame must be aligned whatever the size. */
		attr.stack_size = i ? FIBER_STACK_MIN + (size_t)i * 4096 + 24 : 0;
		fiber_spawn(&f[i], &attr, test_entry_rsp, NULL);
		fiber_join(f[i], &ret);
		entry_rsp[i] = (uintptr_t)ret;
	}
}

static void test_switch_new_fiber_stack_aligned(void **state)
{
	struct fiber_config c = test_cfg(1);

	assert_int_equal(fiber_run(&c, align_main, NULL), 0);
	for (int i = 0; i < NR; i++) {
		assert_true(entry_rsp[i] != 0);
		/* The SysV ABI: rsp + 8 is a multiple of 16 at function entry. */
		assert_int_equal(entry_rsp[i] % 16, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_switch_preserves_callee_saved),
		cmocka_unit_test(test_switch_preserves_mxcsr_x87cw),
		cmocka_unit_test(test_switch_new_fiber_stack_aligned),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
