/*
 * tests/gdb/gdb_target.c - the program tests/gdb/test_gdb.sh debugs: a few named fibers parked in known functions.
 *
 * "sleeper" sleeps in gdb_park_sleeper(), "joiner" joins it in gdb_park_joiner(), "spinner" yields in a loop;
 * main calls gdb_stop_here() (the breakpoint) once the first two are parked, then cancels the sleeper so that the
 * program ends by itself when gdb lets it continue. Linked against libfiber.so, like a user's program.
 *
 * GDB_TARGET_ABORT=1: abort() at the stop point instead (a core file the kernel writes).
 * GDB_TARGET_MPROTECT_GUARDS=1: make madvise(MADV_GUARD_INSTALL) fail (seccomp), so that the runtime falls back to
 * mprotect'ed guard pages. gdb's gcore reads each mapping whole and drops one that contains a MADV_GUARD_INSTALL
 * guard (the read faults), losing the fiber stacks; a PROT_NONE mapping of its own is simply skipped.
 */
#define _GNU_SOURCE
#include <fiber.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <errno.h>

static atomic_int stop_spinning;

__attribute__((noinline)) void gdb_stop_here(void)
{
	__asm__ __volatile__("" ::: "memory");
}

__attribute__((noinline)) static int gdb_park_sleeper(uint64_t ns)
{
	int r = fiber_sleep(ns);

	__asm__ __volatile__("" ::: "memory"); /* keeps the call from being a tail call: this frame stays */
	return r;
}

static void *sleeper(void *arg)
{
	return (void *)(intptr_t)gdb_park_sleeper(60ull * 1000000000ull);
}

__attribute__((noinline)) static int gdb_park_joiner(fiber_t *f)
{
	int r = fiber_join(f, NULL);

	__asm__ __volatile__("" ::: "memory");
	return r;
}

static void *joiner(void *arg)
{
	return (void *)(intptr_t)gdb_park_joiner(arg);
}

static void *spinner(void *arg)
{
	while (!atomic_load(&stop_spinning))
		fiber_yield();
	return NULL;
}

static int parked(fiber_t *f)
{
	struct fiber_stats st;

	return fiber_stats(f, &st) == 0 && st.state == 1;
}

static void main_fiber(void *arg)
{
	struct fiber_attr a;
	fiber_t *s, *j, *y;

	fiber_attr_init(&a);
	a.name = "sleeper";
	if (fiber_spawn(&s, &a, sleeper, NULL))
		return;
	a.name = "joiner";
	a.flags = FIBER_ATTR_DETACHED;
	if (fiber_spawn(&j, &a, joiner, s))
		return;
	a.name = "spinner";
	a.flags = 0;
	if (fiber_spawn(&y, &a, spinner, NULL))
		return;
	/* The joiner's handle is detached: poll the sleeper, then give the joiner time to block on it. */
	while (!parked(s))
		fiber_sleep(1000000);
	fiber_sleep(20000000);
	if (getenv("GDB_TARGET_ABORT"))
		abort();
	gdb_stop_here();
	fiber_cancel(s);
	atomic_store(&stop_spinning, 1);
	fiber_join(y, NULL);
	*(int *)arg = 1;
}

/*
 * madvise(addr, len, 102 = MADV_GUARD_INSTALL) and process_madvise(pidfd, iov, n, 102, flags), the runtime's batched
 * form, fail with EINVAL; every other system call is allowed.
 */
static void no_guard_install(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 0, 2),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 102, 3, 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_madvise, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 102, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		perror("gdb_target: seccomp");
}

int main(void)
{
	int done = 0;
	struct fiber_config c;

	if (getenv("GDB_TARGET_MPROTECT_GUARDS"))
		no_guard_install();
	fiber_config_init(&c);
	c.workers = 2;
	if (fiber_run(&c, main_fiber, &done) || !done) {
		fprintf(stderr, "gdb_target: failed\n");
		return 1;
	}
	puts("gdb_target: done");
	return 0;
}
