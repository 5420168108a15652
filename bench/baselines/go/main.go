// Command benchgo is the Go 1.19 baseline for the libfiber benchmarks. It prints the same lines as the C
// programs:
//
//	RESULT <operation> go <median> <min> <max> <unit>
//	SWITCHES <operation> go <median> <min> <max> switches/yield	(yield rows: see bench/common/bench.h)
//
// Operations (GOMAXPROCS is set per measurement; "1w" = 1, "2w" = 2, "allw" = runtime.NumCPU()):
//
//	yield_pingpong       2 goroutines calling runtime.Gosched, GOMAXPROCS=1 (ns per Gosched)
//	yield_ring16         16 goroutines doing the same
//	spawn_join_1w        go f(); wg.Wait(), one goroutine at a time, GOMAXPROCS=1 (ns/op)
//	spawn_join_allw      the same with GOMAXPROCS=NumCPU
//	spawn_batch_1w       1000 goroutines started, then one wg.Wait (ns per goroutine), GOMAXPROCS=1
//	spawn_batch_allw     the same with GOMAXPROCS=NumCPU
//	skynet_1w            skynet, 1,000,000 leaves, unbuffered channels, GOMAXPROCS=1 (ms/run)
//	skynet_2w            the same with GOMAXPROCS=2
//	chan_pingpong_1w     two goroutines bounce a value over two unbuffered channels, GOMAXPROCS=1 (ns one-way)
//	chan_pingpong_2w     the same with GOMAXPROCS=2
//	park_1m              start 1,000,000 goroutines that block on a channel receive, until all have started
//	                     (ms/run), GOMAXPROCS=NumCPU; the first (cold) run, up to 2 more on stderr
//	park_1m_rss          resident memory each blocked goroutine adds (KiB per goroutine, /proc/self/statm)
//
// Flags: -quick, -reps N, -iters N, -only OP, -target-ms M, as in bench/common/bench.h.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	quick    = flag.Bool("quick", false, "smoke run: tiny repetitions, numbers mean nothing")
	reps     = flag.Int("reps", 5, "repetitions per measurement")
	iters    = flag.Uint64("iters", 0, "exactly this many iterations, one repetition (0 = calibrate)")
	only     = flag.String("only", "", "run only this operation")
	targetMs = flag.Float64("target-ms", 100, "wanted length of one repetition")
)

// A measurement runs its operation n times and returns how long that took.
type benchFn func(n uint64) time.Duration

func want(op string) bool { return *only == "" || *only == op }

func median(samples []float64) float64 {
	sort.Float64s(samples)
	n := len(samples)
	med := samples[n/2]
	if n%2 == 0 {
		med = (samples[n/2-1] + samples[n/2]) / 2
	}
	return med
}

func report(op, unit string, samples []float64) {
	med := median(samples)
	fmt.Printf("RESULT %s go %.2f %.2f %.2f %s\n", op, med, samples[0], samples[len(samples)-1], unit)
}

// Switch accounting of the yield rows, as bench_yield_note in bench/common/bench.h: after each Gosched a
// goroutine counts the yield as switched when the last goroutine to note was another one (GOMAXPROCS=1: one
// runs at a time), and adds its counts when it is done.
var swLast, swYields, swSwitched int64

func swReset() {
	atomic.StoreInt64(&swLast, -1)
	atomic.StoreInt64(&swYields, 0)
	atomic.StoreInt64(&swSwitched, 0)
}

func calibrate(fn benchFn, target float64) uint64 {
	if *iters != 0 {
		return *iters
	}
	n := uint64(8)
	var t float64
	for {
		start := time.Now()
		fn(n)
		t = float64(time.Since(start).Nanoseconds())
		if t >= target/8 || n >= 1<<40 {
			break
		}
		if t < target/128 {
			n *= 16
		} else {
			n *= 2
		}
	}
	if t < 1 {
		t = 1
	}
	n = uint64(float64(n) * target / t)
	if n == 0 {
		n = 1
	}
	return n
}

// run measures op with GOMAXPROCS=procs; ops is the number of operations per iteration.
func run(op, unit string, procs int, ops float64, fn benchFn) {
	runSw(op, unit, procs, ops, fn, false)
}

// runSw is run; with sw, fn is a yield measurement that also reports switches per yield.
func runSw(op, unit string, procs int, ops float64, fn benchFn, sw bool) {
	if !want(op) {
		return
	}
	old := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(old)
	target := *targetMs * 1e6
	n := calibrate(fn, target)
	samples := make([]float64, 0, *reps)
	swSamples := make([]float64, 0, *reps)
	for r := 0; r < *reps; r++ {
		swReset()
		d := fn(n)
		samples = append(samples, float64(d.Nanoseconds())/(float64(n)*ops))
		if y := atomic.LoadInt64(&swYields); sw && y > 0 {
			swSamples = append(swSamples, float64(atomic.LoadInt64(&swSwitched))/float64(y))
		}
	}
	report(op, unit, samples)
	if len(swSamples) > 0 {
		med := median(swSamples)
		fmt.Printf("SWITCHES %s go %.4f %.4f %.4f switches/yield\n", op, med, swSamples[0],
			swSamples[len(swSamples)-1])
	}
}

// runOnce measures op whose iteration count is fixed (skynet): each repetition is one run, reported in ms.
func runOnce(op string, procs int, fn func() time.Duration) {
	if !want(op) {
		return
	}
	old := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(old)
	fn() // warm-up
	samples := make([]float64, 0, *reps)
	for r := 0; r < *reps; r++ {
		samples = append(samples, float64(fn().Nanoseconds())/1e6)
	}
	report(op, "ms/run", samples)
}

func yieldN(g int) benchFn {
	return func(n uint64) time.Duration {
		var wg sync.WaitGroup
		wg.Add(g)
		start := time.Now()
		for k := 0; k < g; k++ {
			go func(me int64) {
				var sw int64
				atomic.StoreInt64(&swLast, me)
				for i := uint64(0); i < n; i++ {
					runtime.Gosched()
					if atomic.LoadInt64(&swLast) != me {
						sw++
					}
					atomic.StoreInt64(&swLast, me)
				}
				atomic.AddInt64(&swYields, int64(n))
				atomic.AddInt64(&swSwitched, sw)
				wg.Done()
			}(int64(k))
		}
		wg.Wait()
		return time.Since(start)
	}
}

func spawnJoin(n uint64) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	for i := uint64(0); i < n; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
		wg.Wait()
	}
	return time.Since(start)
}

func spawnBatch(n uint64) time.Duration {
	const batch = 1000
	var wg sync.WaitGroup
	start := time.Now()
	for done := uint64(0); done < n; {
		b := n - done
		if b > batch {
			b = batch
		}
		wg.Add(int(b))
		for k := uint64(0); k < b; k++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
		done += b
	}
	return time.Since(start)
}

// skynet is the classic benchmark (github.com/atemerev/skynet): every node starts div children and sums what
// they send back over an unbuffered channel; a leaf sends its own number.
func skynet(c chan int, num, size, div int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	for i := 0; i < div; i++ {
		go skynet(rc, num+i*(size/div), size/div, div)
	}
	sum := 0
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func skynetRun(leaves int) func() time.Duration {
	return func() time.Duration {
		c := make(chan int)
		start := time.Now()
		go skynet(c, 0, leaves, 10)
		sum := <-c
		d := time.Since(start)
		if want := leaves * (leaves - 1) / 2; sum != want {
			fmt.Fprintf(os.Stderr, "skynet: sum %d, want %d\n", sum, want)
			os.Exit(1)
		}
		return d
	}
}

func chanPingPong(n uint64) time.Duration {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for i := uint64(0); i < n; i++ {
			pong <- <-ping
		}
	}()
	start := time.Now()
	for i := uint64(0); i < n; i++ {
		ping <- 1
		<-pong
	}
	return time.Since(start)
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, rss int64
	if _, err := fmt.Sscan(string(b), &size, &rss); err != nil {
		return 0
	}
	return rss * int64(os.Getpagesize())
}

// pteKiB is the process's page tables (VmPTE, KiB), which the RSS figure leaves out; 0 if unknown.
func pteKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kib int64
		if _, err := fmt.Sscanf(line, "VmPTE: %d kB", &kib); err == nil {
			return kib
		}
	}
	return 0
}

// park starts n goroutines that block on a channel receive and reports the time until all have started
// (each counts itself just before it blocks) and the resident memory they added, per goroutine.
func park(n int) {
	if !want("park_1m") && !want("park_1m_rss") {
		return
	}
	old := runtime.GOMAXPROCS(runtime.NumCPU())
	defer runtime.GOMAXPROCS(old)
	runs := *reps
	if runs > 3 {
		runs = 3
	}
	ms := make([]float64, 0, runs)
	kib := make([]float64, 0, runs)
	pte := make([]float64, 0, runs)
	for r := 0; r < runs; r++ {
		runtime.GC()
		gate := make(chan struct{})
		var started, done sync.WaitGroup
		started.Add(n)
		done.Add(n)
		rss0 := rssBytes()
		pte0 := pteKiB()
		start := time.Now()
		for i := 0; i < n; i++ {
			go func() {
				started.Done()
				<-gate
				done.Done()
			}()
		}
		started.Wait()
		d := time.Since(start)
		added := rssBytes() - rss0
		pte = append(pte, float64(pteKiB()-pte0)/float64(n))
		close(gate)
		done.Wait()
		ms = append(ms, float64(d.Nanoseconds())/1e6)
		kib = append(kib, float64(added)/1024/float64(n))
	}
	// The cold first run only, as bench_park.c: later runs reuse the dead goroutines' stacks.
	for r := 1; r < len(ms); r++ {
		fmt.Fprintf(os.Stderr, "park_1m: warm run %d: %.1f ms, %.2f KiB per goroutine (not reported)\n", r+1,
			ms[r], kib[r])
	}
	fmt.Fprintf(os.Stderr, "park_1m: page tables %.2f KiB per goroutine (not in the RSS figure)\n", pte[0])
	report("park_1m", "ms/run", ms[:1])
	report("park_1m_rss", "KiB/fiber", kib[:1])
}

func main() {
	flag.Parse()
	if *quick {
		*targetMs = 2
	}
	if *reps < 1 {
		*reps = 1
	}
	if *iters != 0 {
		*reps = 1
	}
	all := runtime.NumCPU()
	leaves := 1000000
	if *quick {
		leaves = 10000
	}

	runSw("yield_pingpong", "ns/yield", 1, 2, yieldN(2), true)
	runSw("yield_ring16", "ns/yield", 1, 16, yieldN(16), true)
	run("spawn_join_1w", "ns/op", 1, 1, spawnJoin)
	run("spawn_join_allw", "ns/op", all, 1, spawnJoin)
	run("spawn_batch_1w", "ns/op", 1, 1, spawnBatch)
	run("spawn_batch_allw", "ns/op", all, 1, spawnBatch)
	run("chan_pingpong_1w", "ns/msg", 1, 2, chanPingPong)
	run("chan_pingpong_2w", "ns/msg", 2, 2, chanPingPong)
	runOnce("skynet_1w", 1, skynetRun(leaves))
	runOnce("skynet_2w", 2, skynetRun(leaves))
	parked := 1000000
	if *quick {
		parked = 10000
	}
	park(parked)
}
