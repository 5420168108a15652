/* Must NOT compile: CPU_SET without _GNU_SOURCE. run.sh checks that the error says what to do. */
#include <stdio.h>

#include <fiber.h>

int main(void)
{
	struct fiber_attr a;

	fiber_attr_init(&a);
	CPU_SET(1, &a.affinity);
	return CPU_ISSET(1, &a.affinity) ? 0 : 1;
}
