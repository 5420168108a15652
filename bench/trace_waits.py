#!/usr/bin/env python3
"""bench/trace_waits.py - where a fiber's time goes between its runs, from a FIBER_TRACE file.

    FIBER_TRACE=/tmp/t.json build/examples/http_server --workers 1 &
    wrk -t1 -c500 -d2s http://127.0.0.1:8080/ ; kill -INT %1
    python3 bench/trace_waits.py /tmp/t.json

Reads the Chrome trace-event JSON that runtime/trace.c writes (a slice per run with the reason it ended, a flow
start per wake-up) and prints percentiles, in microseconds, of:
  run-queue wait   from a fiber's wake-up to the start of its next run
  blocked in R     from the end of a run that ended with wait reason R to the fiber's wake-up (R with >= 1000)
  after preemption from the end of a run that was preempted or yielded to the start of the next run
  run length       of runs that blocked and of runs that were preempted
The trace keeps its beginning when its buffers fill (the header says how many events were dropped), so a run
under load covers its first second or so.
"""
import collections
import json
import sys


def pct(values, name):
    v = sorted(values)
    n = len(v)
    if not n:
        print(f"{name:28s} n=0")
        return
    at = lambda q: v[min(n - 1, int(q * n))]
    print(f"{name:28s} n={n:7d} p50={at(.5):10.1f} p90={at(.9):10.1f} p99={at(.99):10.1f} "
          f"p99.9={at(.999):10.1f} max={v[-1]:10.1f}")


def main(path):
    doc = json.load(open(path))
    ev = []
    for e in doc["traceEvents"]:
        if e.get("ph") == "X":
            ev.append((e["ts"], 1, e["args"]["fiber"], e["dur"], e["args"]["ended"]))
        elif e.get("ph") == "s":
            ev.append((e["ts"], 0, e["args"]["wakee"], 0.0, ""))
    ev.sort(key=lambda x: (x[0], x[1]))
    woken, blocked, preempted = {}, {}, {}
    rq, after_preempt = [], []
    blocked_in = collections.defaultdict(list)
    run_blocked, run_preempted = [], []
    for ts, kind, f, dur, ended in ev:
        if kind == 0:
            woken[f] = ts
            if f in blocked:
                reason, t = blocked.pop(f)
                blocked_in[reason].append(ts - t)
            continue
        if f in woken:
            rq.append(ts - woken.pop(f))
        if f in preempted:
            after_preempt.append(ts - preempted.pop(f))
        if ended == "preempted or yielded":
            preempted[f] = ts + dur
            run_preempted.append(dur)
        else:
            blocked[f] = (ended, ts + dur)
            run_blocked.append(dur)
    other = doc.get("otherData", {})
    print(f"{path}: {other.get('events', '?')} events, {other.get('dropped', '?')} dropped; microseconds")
    pct(rq, "run-queue wait")
    for reason, v in sorted(blocked_in.items()):
        if len(v) >= 1000:
            pct(v, f"blocked in {reason}")
    pct(after_preempt, "after preemption")
    pct(run_blocked, "run length, blocked")
    pct(run_preempted, "run length, preempted")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bench/trace_waits.py TRACE.json")
    main(sys.argv[1])
