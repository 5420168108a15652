/*
 * fiber.h first, then system headers, with _POSIX_C_SOURCE asked for: strerror_r keeps its POSIX (int) meaning. The
 * old header defined _GNU_SOURCE and so switched it to the GNU (char *) one behind the user's back.
 */
#define _POSIX_C_SOURCE 200809L
#include <fiber.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
	char buf[64];
	int r = strerror_r(1, buf, sizeof(buf)); /* an int: -Werror=int-conversion fails on the GNU version */

	printf("fiber_first.c: %s\n", r == 0 ? "ok" : "strerror_r failed");
	return r == 0 ? 0 : 1;
}
