// C++17 consumer of fiber.h (g++ and clang++, -Wall -Wextra -Wpedantic -Werror): the header's extern "C" block,
// its noreturn spelling and its structs must all be plain C++.
#include <fiber.h>

#include <cstdio>
#include <type_traits>

static_assert(std::is_standard_layout<fiber_config>::value, "fiber_config is a C struct");

static void *hello(void *arg)
{
	return arg;
}

static void run(void *arg)
{
	fiber_attr a;
	fiber_t *f = nullptr;
	void *r = nullptr;

	fiber_attr_init(&a);
	CPU_ZERO(&a.affinity); // g++ and clang++ define _GNU_SOURCE themselves
	a.name = "cxx";
	if (fiber_spawn(&f, &a, hello, arg) == 0 && fiber_join(f, &r) == 0 && r == arg)
		*static_cast<int *>(arg) = 42;
}

[[noreturn]] static void never(void)
{
	fiber_exit(nullptr); // declared noreturn: no warning for a noreturn function that returns
}

int main(int argc, char **)
{
	fiber_config c;
	int ok = 0;

	fiber_config_init(&c);
	c.workers = 1;
	if (argc > 5)
		never();
	if (fiber_run(&c, run, &ok) || ok != 42)
		return 1;
	std::printf("consumer.cpp: ok\n");
	return 0;
}
