/*
 * boost_fiber_bench.cpp - Boost.Fiber on one thread with its default round-robin scheduler and default stacks:
 *
 *	yield_pingpong	2 fibers calling boost::this_fiber::yield() (ns per yield)
 *	yield_ring16	16 fibers doing the same
 *	spawn_join_1w	construct a fiber, join it, one at a time (ns/op)
 *	spawn_batch_1w	construct 1000 fibers, then join them all (ns per fiber)
 *	chan_pingpong_buf_1w	2 fibers bounce a value over two buffered_channel<int>(2) (ns one-way; Boost.Fiber's
 *			channels need a capacity of at least 2, so libfiber's row uses capacity 2 too)
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

static uint64_t chan_pingpong(void *, uint64_t iters)
{
	boost::fibers::buffered_channel<int> ping(2), pong(2);
	uint64_t t0 = bench_now_ns();
	boost::fibers::fiber a([&] {
		int v = 0;
		for (uint64_t i = 0; i < iters; i++) {
			ping.push(v);
			pong.pop(v);
		}
	});
	boost::fibers::fiber b([&] {
		int v;
		for (uint64_t i = 0; i < iters; i++) {
			ping.pop(v);
			pong.push(v + 1);
		}
	});
	a.join();
	b.join();
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
	bench_run("chan_pingpong_buf_1w", "boost_fiber", "ns/msg", chan_pingpong, nullptr, 2);
	return 0;
}
