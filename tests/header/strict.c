/*
 * Strict ISO C11 (-std=c11 -Wpedantic), no feature-test macro, system headers first: fiber.h compiles, and it
 * defines no feature-test macro of its own, so the declarations of the headers after it keep their meaning.
 */
#include <stdio.h>
#include <stdlib.h>

#include <fiber.h>

#include <string.h>

/* Under -std=c11 (strict), glibc's <features.h> defines none of these itself (with -std=gnu11 it defines some). */
#if defined(_GNU_SOURCE) || defined(_DEFAULT_SOURCE) || defined(_POSIX_C_SOURCE) || defined(_XOPEN_SOURCE)
#error "fiber.h defined a feature-test macro"
#endif

_Static_assert(sizeof(((struct fiber_attr *)0)->affinity) == sizeof(cpu_set_t), "cpu_set_t is there");

static void run(void *arg)
{
	*(int *)arg = (int)fiber_id(fiber_self()) > 0;
}

int main(void)
{
	struct fiber_config c;
	int ok = 0;

	fiber_config_init(&c);
	c.host_policy = SCHED_OTHER; /* the host policy constants need no feature-test macro either */
	if (fiber_run(&c, run, &ok) || !ok)
		return 1;
	printf("strict.c: ok\n");
	return 0;
}
