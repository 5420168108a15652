/*
 * boost_fiber_bench.cpp - Boost.Fiber on one thread with its default round-robin scheduler and default stacks:
 *
 *	yield_pingpong	2 fibers calling boost::this_fiber::yield() (ns per yield)
 *	yield_ring16	16 fibers doing the same
 *	spawn_join_1w	construct a fiber, join it, one at a time (ns/op)
 *	spawn_batch_1w	construct 1000 fibers, then join them all (ns per fiber)
 *
 * The main context joins the fibers, so it is blocked, not runnable, while they yield. The yield rows also report
 * the share of yields that switched (SWITCHES line, bench.h).
 */
#include "bench.h"

#include <boost/fiber/all.hpp>
#include <vector>

enum { BATCH = 1000 };

struct yield_arg {
	unsigned nfibers;
};

static uint64_t yield_n(void *arg, uint64_t iters)
{
	unsigned n = static_cast<yield_arg *>(arg)->nfibers;
	std::vector<boost::fibers::fiber> fibers;
	uint64_t t0 = bench_now_ns();

	fibers.reserve(n);
	for (unsigned k = 0; k < n; k++)
		fibers.emplace_back([iters, k] {
			uint64_t sw = 0;

			bench_yield_begin((int)k);
			for (uint64_t i = 0; i < iters; i++) {
				boost::this_fiber::yield();
				bench_yield_note((int)k, &sw);
			}
			bench_yield_add(iters, sw);
		});
	for (auto &f : fibers)
		f.join();
	return bench_now_ns() - t0;
}

static uint64_t spawn_join(void *, uint64_t iters)
{
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < iters; i++) {
		boost::fibers::fiber f([] {});
		f.join();
	}
	return bench_now_ns() - t0;
}

static uint64_t spawn_batch(void *, uint64_t iters)
{
	std::vector<boost::fibers::fiber> fibers;
	uint64_t t0 = bench_now_ns(), done = 0;

	fibers.reserve(BATCH);
	while (done < iters) {
		uint64_t n = iters - done < (uint64_t)BATCH ? iters - done : (uint64_t)BATCH;

		for (uint64_t k = 0; k < n; k++)
			fibers.emplace_back([] {});
		for (auto &f : fibers)
			f.join();
		fibers.clear();
		done += n;
	}
	return bench_now_ns() - t0;
}

int main(int argc, char **argv)
{
	yield_arg two = { 2 }, ring = { 16 };

	bench_init(argc, argv);
	bench_run_sw("yield_pingpong", "boost_fiber", "ns/yield", yield_n, &two, 2);
	bench_run_sw("yield_ring16", "boost_fiber", "ns/yield", yield_n, &ring, 16);
	bench_run("spawn_join_1w", "boost_fiber", "ns/op", spawn_join, nullptr, 1);
	bench_run("spawn_batch_1w", "boost_fiber", "ns/op", spawn_batch, nullptr, 1);
	return 0;
}
