/*
 * C11 consumer that includes system headers before fiber.h and uses CPU_SET on fiber_attr.affinity: _GNU_SOURCE is
 * defined before the first #include, as the README says.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include <fiber.h>

static void *hello(void *arg)
{
	return arg;
}

static void run(void *arg)
{
	struct fiber_attr a;
	fiber_t *f;
	void *r = NULL;

	fiber_attr_init(&a);
	CPU_ZERO(&a.affinity);
	CPU_SET(0, &a.affinity);
	if (fiber_spawn(&f, &a, hello, arg) == 0 && fiber_join(f, &r) == 0 && r == arg)
		*(int *)arg = 42;
}

int main(void)
{
	int ok = 0;

	if (fiber_run(NULL, run, &ok) || ok != 42)
		return 1;
	printf("sys_first.c: ok\n");
	return 0;
}
