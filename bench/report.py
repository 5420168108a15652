#!/usr/bin/env python3
"""bench/report.py - turn the raw output of bench/run.sh into one table.

usage: report.py [--readme README.md] OUT_DIR RESULTS_DIR
       report.py --readme README.md --json RESULTS_DIR/results.json

OUT_DIR holds, for every program run.sh knows, <program>.out (its stdout: RESULT and NA lines) and status.tsv
(program, state, detail). Writes RESULTS_DIR/results.csv, results.json, table.md and switch_cost.dat /
switch_cost.gp (for gnuplot; run.sh renders switch_cost.png from them), and prints the table on stdout.

Rules:
  - A cell is the RESULT of the last program (in PROGRAMS order) that printed one for (operation, impl), unless
    that same program also printed an NA line for it (a measurement it took but declared meaningless).
  - An expected cell with no RESULT is "not available (<reason>)": the program's NA reason, or why the program
    did not run (not built, failed, timed out). Nothing expected is dropped silently.
  - Ratios are libfiber / baseline of the same row, both medians. Every cell shows its median and, in brackets,
    the min-max of the repetitions.
  - A yield row also shows switches per yield (the SWITCHES lines, bench/common/bench.h) beside each figure; a
    figure whose yields did not all switch (below 0.995) says so, since a yield that does not switch is cheaper.
  - Targets are the performance budget of shared/design/DESIGN.md, with the goals of issue 15 where it sets
    them: yield <= 4x the bare switch (not libfiber's own) and <= 0.6x Go, 16 yielding fibers <= Boost.Fiber,
    a fair yield with 16 or 1000 fibers <= 1.5x the 2-fiber one, spawn+join on one worker <= 0.6x Go, batched
    spawns <= Go, skynet <= 0.5x Go, a million parked fibers in <= 1.5x Go's time and < 4.3 KiB each.
  - --readme FILE replaces the block between "<!-- bench-table begin -->" and "<!-- bench-table end -->" in FILE
    with a compact table of every row (each baseline with its ratio, the budget) and the callgrind counts of
    RESULTS_DIR/callgrind.csv. With --json it rebuilds that block from a stored results.json alone.
"""
import csv
import datetime
import json
import os
import platform
import re
import subprocess
import sys

# Operations: (name, description, unit). The order is the order of the table.
ROWS = [
    ("switch_pingpong", "raw switch, ping-pong between 2 contexts", "ns/switch"),
    ("switch_ring16", "raw switch, ring of 16 contexts", "ns/switch"),
    ("yield_pingpong", "yield, 2 fibers on 1 worker", "ns/yield"),
    ("yield_ring16", "yield, 16 fibers on 1 worker", "ns/yield"),
    ("spawn_join_1w", "spawn+run+exit+join, one at a time, 1 worker", "ns/op"),
    ("spawn_join_allw", "spawn+run+exit+join, one at a time, all workers", "ns/op"),
    ("spawn_batch_1w", "spawn 1000 then join them, 1 worker", "ns/op"),
    ("spawn_batch_allw", "spawn 1000 then join them, all workers", "ns/op"),
    ("skynet_2w", "skynet, 1M leaves, 2 workers", "ms/run"),
    ("skynet_1w", "skynet, 1M leaves, 1 worker", "ms/run"),
    ("wake_pingpong_same", "wake ping-pong, 1 worker (one-way)", "ns/wake"),
    ("wake_pingpong_cross", "wake ping-pong across 2 idle workers/CPUs (one-way)", "ns/wake"),
    ("wake_pingpong_cross_condvar", "condvar hand-off across 2 CPUs (one-way)", "ns/wake"),
    ("wake_latency_cross", "wake latency, wakee's worker/CPU asleep", "ns/wake"),
    ("wake_latency_busy", "wake latency, wakee's worker busy", "ns/wake"),
    ("wake_latency_cross_p99", "wake latency, wakee's worker/CPU asleep, 99th percentile", "ns/wake"),
    ("wake_latency_busy_p99", "wake latency, wakee's worker busy, 99th percentile", "ns/wake"),
    ("chan_pingpong_1w", "unbuffered channel ping-pong, 1 worker (one-way)", "ns/msg"),
    ("chan_pingpong_2w", "unbuffered channel ping-pong, 2 workers (one-way)", "ns/msg"),
    ("chan_pingpong_buf_1w", "channel ping-pong, capacity 2, 1 worker (one-way)", "ns/msg"),
    ("mutex_uncontended", "mutex lock+unlock, uncontended", "ns/op"),
    ("mutex_handoff_2w", "mutex lock+unlock, contended by 2 workers/threads", "ns/op"),
    ("skynet_chan_2w", "skynet over channels, 1M leaves, 2 workers (Go: skynet_2w)", "ms/run"),
    ("skynet_chan_1w", "skynet over channels, 1M leaves, 1 worker (Go: skynet_1w)", "ms/run"),
    ("yield_fair_2", "yield per class: fair (EEVDF), 2 fibers", "ns/yield"),
    ("yield_fair_16", "yield per class: fair, 16 fibers", "ns/yield"),
    ("yield_fair_1000", "yield per class: fair, 1000 fibers", "ns/yield"),
    ("yield_rt_2", "yield per class: rt (FIFO), 2 fibers", "ns/yield"),
    ("yield_rt_16", "yield per class: rt, 16 fibers", "ns/yield"),
    ("yield_rt_1000", "yield per class: rt, 1000 fibers", "ns/yield"),
    ("yield_dl_2", "yield per class: dl (gives up the budget), 2 fibers, busy ns", "ns/yield"),
    ("yield_dl_16", "yield per class: dl, 16 fibers, busy ns", "ns/yield"),
    ("yield_dl_1000", "yield per class: dl, 1000 fibers, busy ns", "ns/yield"),
    ("park_1m", "spawn 1,000,000 fibers that park, until all have parked, all workers", "ms/run"),
    ("park_1m_rss", "resident memory per parked fiber (of the 1,000,000)", "KiB/fiber"),
]

# Columns, libfiber first.
IMPLS = ["libfiber", "bare", "bare_fpu", "bare_jmp", "boost_context", "swapcontext", "boost_fiber", "go", "pthread"]

# Bar colours in switch_cost.png, one per implementation.
IMPL_COLORS = {
    "libfiber": "#d62728",
    "bare": "#7f7f7f",
    "bare_fpu": "#b0b0b0",
    "bare_jmp": "#dcdcdc",
    "boost_context": "#1f77b4",
    "swapcontext": "#aec7e8",
    "boost_fiber": "#9467bd",
    "go": "#2ca02c",
    "pthread": "#ff7f0e",
}

IMPL_TITLES = {
    "libfiber": "libfiber",
    "bare": "bare switch",
    "bare_fpu": "bare+FPU ctl",
    "bare_jmp": "bare, jmp exit",
    "boost_context": "Boost.Context",
    "swapcontext": "swapcontext",
    "boost_fiber": "Boost.Fiber",
    "go": "Go",
    "pthread": "pthreads",
}

# Programs in run order: what each is expected to report.
PROGRAMS = [
    ("baseline_bare_switch", {
        "bare": ["switch_pingpong", "switch_ring16"],
        "bare_fpu": ["switch_pingpong", "switch_ring16"],
        "bare_jmp": ["switch_pingpong", "switch_ring16"],
    }),
    ("baseline_swapcontext", {"swapcontext": ["switch_pingpong", "switch_ring16"]}),
    ("baseline_boost_context", {"boost_context": ["switch_pingpong", "switch_ring16"]}),
    ("baseline_boost_fiber", {"boost_fiber": ["yield_pingpong", "yield_ring16", "spawn_join_1w",
                          "spawn_batch_1w", "chan_pingpong_buf_1w"]}),
    ("baseline_pthread", {"pthread": ["spawn_join_allw", "yield_pingpong", "wake_pingpong_cross",
                      "wake_pingpong_cross_condvar", "wake_latency_cross",
                      "wake_latency_cross_p99"]}),
    ("baseline_go", {"go": ["yield_pingpong", "yield_ring16", "spawn_join_1w", "spawn_join_allw",
                "spawn_batch_1w", "spawn_batch_allw", "chan_pingpong_1w", "chan_pingpong_2w",
                "skynet_1w", "skynet_2w", "park_1m", "park_1m_rss"]}),
    # bench_switch also prints bare/bare_fpu/bare_jmp, interleaved with libfiber: those supersede the above.
    ("bench_switch", {"libfiber": ["switch_pingpong", "switch_ring16"]}),
    ("bench_yield", {"libfiber": ["yield_pingpong", "yield_ring16"]}),
    ("bench_spawn", {"libfiber": ["spawn_join_1w", "spawn_join_allw", "spawn_batch_1w", "spawn_batch_allw"]}),
    ("bench_skynet", {"libfiber": ["skynet_2w", "skynet_1w"]}),
    ("bench_wake", {"libfiber": ["wake_pingpong_same", "wake_pingpong_cross", "wake_latency_cross",
                     "wake_latency_busy", "wake_latency_cross_p99", "wake_latency_busy_p99"]}),
    ("bench_sleep", {"libfiber": ["sleep_50us", "sleep_50us_p99", "monitor_cpu", "monitor_cpu_idle"]}),
    ("bench_sync", {"libfiber": ["mutex_uncontended", "chan_pingpong_1w", "chan_pingpong_buf_1w",
                     "mutex_handoff_2w", "chan_pingpong_2w", "skynet_chan_1w", "skynet_chan_2w"],
                    "pthread": ["mutex_uncontended", "mutex_handoff_2w"]}),
    ("bench_class_yield", {"libfiber": ["yield_fair_2", "yield_fair_16", "yield_fair_1000", "yield_rt_2",
                            "yield_rt_16", "yield_rt_1000", "yield_dl_2", "yield_dl_16", "yield_dl_1000"]}),
    ("bench_park", {"libfiber": ["park_1m", "park_1m_rss"]}),
]

# The budget (DESIGN.md "Performance budget"): (row, reference, bound). reference is an impl of the same row,
# "row:impl" for another row, or "abs" for an absolute bound in the row's unit. libfiber <= bound * reference.
TARGETS = [
    ("switch_pingpong", "bare", 1.10),
    ("switch_ring16", "bare", 1.10),
    ("yield_pingpong", "switch_pingpong:bare", 4.0),
    ("yield_pingpong", "go", 0.6),
    ("yield_ring16", "boost_fiber", 1.0),
    ("yield_fair_16", "yield_fair_2:libfiber", 1.5),
    ("yield_fair_1000", "yield_fair_2:libfiber", 1.5),
    ("spawn_join_1w", "go", 0.6),
    ("spawn_join_allw", "go", 0.3),
    ("spawn_batch_1w", "go", 1.0),
    ("spawn_batch_allw", "go", 1.0),
    ("skynet_2w", "go", 0.5),
    ("park_1m", "go", 1.5),
    ("park_1m_rss", "abs", 4.3),
    ("wake_pingpong_cross", "pthread", 1.1),
    ("wake_latency_cross", "pthread", 1.1),
    ("wake_latency_busy", "abs", 1000.0),
    ("sleep_50us", "abs", 70000.0),
    ("chan_pingpong_1w", "go", 0.3),
]

LINE = re.compile(r"^(RESULT|NA|SWITCHES)\s+(\S+)\s+(\S+)\s*(.*)$")

# A yield figure whose median switches per yield is below this says that not every yield switched.
SWITCH_ALL = 0.995


def read_status(out_dir):
    status = {}
    path = os.path.join(out_dir, "status.tsv")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 2:
                    status[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return status


def merge_runs(runs):
    """One figure from a row's RESULT (or SWITCHES) lines, one per run of the program (run.sh --rounds): the median
    of their medians, the least minimum and the largest maximum. A single run is itself."""
    meds = sorted(r[0] for r in runs)
    n = len(meds)
    med = meds[n // 2] if n % 2 else (meds[n // 2 - 1] + meds[n // 2]) / 2
    return (med, min(r[1] for r in runs), max(r[2] for r in runs)) + tuple(runs[-1][3:])


def parse_output(path):
    """RESULT, SWITCHES and NA lines of one program: res {(op, impl): (med, min, max, unit)}, na {(op, impl): reason},
    sw {(op, impl): (med, min, max)}. A row printed by several runs of the program is merged (merge_runs)."""
    res, na, sw = {}, {}, {}
    if not os.path.exists(path):
        return res, na, sw
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue
            kind, op, impl, rest = m.groups()
            if kind == "SWITCHES":
                v = rest.split()
                try:
                    sw.setdefault((op, impl), []).append((float(v[0]), float(v[1]), float(v[2])))
                except (ValueError, IndexError):
                    pass
            elif kind == "RESULT":
                v = rest.split()
                try:
                    res.setdefault((op, impl), []).append(
                        (float(v[0]), float(v[1]), float(v[2]), v[3] if len(v) > 3 else ""))
                except (ValueError, IndexError):
                    na[(op, impl)] = "unparsable RESULT line"
            else:
                reason = re.sub(r"^not available[:\s]*", "", rest.strip()) or "no reason given"
                na[(op, impl)] = reason
    return ({k: merge_runs(v) for k, v in res.items()}, na, {k: merge_runs(v) for k, v in sw.items()})


def program_reason(prog, status):
    state, detail = status.get(prog, ("missing", "not run"))
    if state == "ok":
        return "no result printed"
    if detail:
        return detail
    return state


def collect(out_dir):
    status = read_status(out_dir)
    cells = {}   # (op, impl) -> dict
    for prog, expected in PROGRAMS:
        res, na, sw = parse_output(os.path.join(out_dir, prog + ".out"))
        for key, (med, lo, hi, unit) in res.items():
            if key in na:
                continue
            cells[key] = {"status": "ok", "median": med, "min": lo, "max": hi, "unit": unit, "program": prog}
            if key in sw:
                cells[key]["switches"] = {"median": sw[key][0], "min": sw[key][1], "max": sw[key][2]}
        for key, reason in na.items():
            if key not in cells or cells[key]["program"] == prog:
                cells[key] = {"status": "na", "reason": reason, "program": prog}
        for impl, ops in expected.items():
            for op in ops:
                key = (op, impl)
                if key not in cells:
                    cells[key] = {"status": "na", "reason": program_reason(prog, status), "program": prog}
    return cells, status


def machine():
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    model = ""
    for line in run(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": model or platform.processor(),
        "nproc": run(["nproc"]) or str(os.cpu_count()),
        "kernel": platform.release(),
        "os": run(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "cc": run(["sh", "-c", "cc --version | head -1"]),
        "go": run(["sh", "-c", "command -v go >/dev/null && go version"]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def fmt(v):
    if v >= 1000:
        return "%.0f" % v
    if v >= 100:
        return "%.1f" % v
    return "%.2f" % v


def ratio(cells, op, impl):
    a, b = cells.get((op, "libfiber")), cells.get((op, impl))
    if a and b and a["status"] == "ok" and b["status"] == "ok" and b["median"] > 0:
        return a["median"] / b["median"]
    return None


def target_text(cells, op):
    out = []
    for row, ref, bound in TARGETS:
        if row != op:
            continue
        lf = cells.get((op, "libfiber"))
        if ref == "abs":
            name = "< %s %s" % (fmt(bound), next(u for r, _, u in ROWS if r == op))
            if lf and lf["status"] == "ok":
                r = lf["median"] / bound
                out.append({"text": "%s: %s %s" % (name, fmt(lf["median"]), "ok" if r <= 1 else "MISS"),
                        "ratio": r, "bound": 1.0, "met": r <= 1})
            else:
                out.append({"text": "%s: pending" % name, "ratio": None, "bound": 1.0, "met": None})
            continue
        if ":" in ref:
            rop, rimpl = ref.split(":")
            name = "<= %gx %s %s" % (bound, rimpl, rop)
        else:
            rop, rimpl = op, ref
            name = "<= %gx %s" % (bound, IMPL_TITLES.get(ref, ref))
        b = cells.get((rop, rimpl))
        if lf and lf["status"] == "ok" and b and b["status"] == "ok" and b["median"] > 0:
            r = lf["median"] / b["median"]
            out.append({"text": "%s: %.2fx %s" % (name, r, "ok" if r <= bound else "MISS"),
                    "ratio": r, "bound": bound, "met": r <= bound})
        else:
            out.append({"text": "%s: pending" % name, "ratio": None, "bound": bound, "met": None})
    return out


def is_yield_row(op):
    return op.startswith("yield_")


def switches_text(c):
    """Switches per yield of a yield cell: "1.00 sw/yield", or a warning when not every yield switched."""
    sw = c.get("switches")
    if not sw:
        return "switches/yield not counted"
    if sw["median"] < SWITCH_ALL:
        return "%.3f sw/yield [%.3f-%.3f]: NOT every yield switched" % (sw["median"], sw["min"], sw["max"])
    return "%.3f sw/yield" % sw["median"]


def value_text(c):
    """median [min-max]"""
    return "%s [%s-%s]" % (fmt(c["median"]), fmt(c["min"]), fmt(c["max"]))


def cell_text(cells, op, impl):
    c = cells.get((op, impl))
    if not c:
        return "-"
    if c["status"] != "ok":
        return "not available (%s)" % c["reason"]
    s = value_text(c)
    if impl != "libfiber":
        r = ratio(cells, op, impl)
        if r is not None:
            s += " (%.2fx)" % r
    if is_yield_row(op):
        s += "; " + switches_text(c)
    return s


def build_table(cells):
    used = [i for i in IMPLS if any((op, i) in cells for op, _, _ in ROWS)]
    header = ["operation", "unit"] + [IMPL_TITLES.get(i, i) for i in used] + ["target (libfiber)"]
    rows = []
    for op, desc, unit in ROWS:
        if not any((op, i) in cells for i in used):
            continue
        tg = target_text(cells, op)
        rows.append([op, unit] + [cell_text(cells, op, i) for i in used]
                + ["; ".join(t["text"] for t in tg) or "-"])
    return header, rows, used


def print_text(header, rows):
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = "  ".join("%-*s" % (widths[i], header[i]) for i in range(len(header)))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join("%-*s" % (widths[i], r[i]) for i in range(len(r))))


def program_messages(out_dir, limit=6):
    """The first lines each program wrote on stderr (budget notes, runtime warnings)."""
    msgs = []
    for prog, _ in PROGRAMS:
        path = os.path.join(out_dir, prog + ".err")
        if not os.path.exists(path):
            continue
        with open(path, errors="replace") as f:
            lines = [l.rstrip() for l in f if l.strip()]
        if lines:
            more = len(lines) - limit
            msgs.append((prog, lines[:limit] + (["... (%d more lines)" % more] if more > 0 else [])))
    return msgs


def markdown(header, rows, mach, cells, status, msgs):
    out = ["# libfiber benchmarks", ""]
    out.append("Generated by `bench/run.sh` on %s." % mach["date"])
    out.append("")
    out.append("Machine: %s, %s CPUs (nproc), Linux %s, %s; %s; %s." % (
        mach["cpu"], mach["nproc"], mach["kernel"], mach["os"] or "unknown OS", mach["cc"] or "cc ?",
        mach["go"] or "no Go"))
    out.append("")
    out.append("Medians over the repetitions (at least 5), the min-max of the repetitions in brackets. Each baseline"
           " cell shows the baseline's median and, in parentheses, libfiber's median divided by it (below 1.00x:"
           " libfiber is faster). Yield rows give the share of yields that switched beside each figure. The last"
           " column checks the performance budget of `DESIGN.md` and the goals of issue 15.")
    out.append("")
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        out.append("| " + " | ".join(c.replace("|", "/") for c in r) + " |")
    out.append("")
    out.append("Operations:")
    out.append("")
    for op, desc, unit in ROWS:
        out.append("- `%s`: %s (%s)" % (op, desc, unit))
    out.append("")
    if msgs:
        out.append("Messages from the programs (stderr, first lines):")
        out.append("")
        out.append("```")
        for prog, lines in msgs:
            for l in lines:
                out.append("%s: %s" % (prog, l))
        out.append("```")
        out.append("")
    bad = sorted((p, s) for p, s in status.items() if s[0] != "ok")
    if bad:
        out.append("Programs that did not run cleanly:")
        out.append("")
        for p, (state, detail) in bad:
            out.append("- `%s`: %s%s" % (p, state, (" (%s)" % detail) if detail else ""))
        out.append("")
    return "\n".join(out) + "\n"


def write_plot(res_dir, cells):
    """switch_cost.dat / .gp: per-operation cost of each implementation (log scale), for gnuplot run in res_dir."""
    ops = ["switch_pingpong", "switch_ring16", "yield_pingpong", "yield_ring16", "spawn_join_1w",
           "wake_pingpong_same", "chan_pingpong_1w"]
    impls = [i for i in IMPLS if any((op, i) in cells and cells[(op, i)]["status"] == "ok" for op in ops)]
    ops = [op for op in ops if any((op, i) in cells and cells[(op, i)]["status"] == "ok" for i in impls)]
    dat = os.path.join(res_dir, "switch_cost.dat")
    with open(dat, "w") as f:
        f.write("op " + " ".join('"%s"' % IMPL_TITLES.get(i, i) for i in impls) + "\n")
        for op in ops:
            vals = []
            for i in impls:
                c = cells.get((op, i))
                vals.append("%.3f" % c["median"] if c and c["status"] == "ok" else "NaN")
            f.write(op + " " + " ".join(vals) + "\n")
    gp = os.path.join(res_dir, "switch_cost.gp")
    with open(gp, "w") as f:
        f.write("""set terminal pngcairo size 1400,700 noenhanced font ",10"
set output "%s"
set title "Cost per operation (median ns, log scale; lower is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [1:*]
set ylabel "ns per operation"
set grid ytics
set key outside right top
set datafile missing "NaN"
set xtics nomirror
colors = "%s"
plot for [c=2:%d] "%s" using c:xtic(1) title columnheader(c) lc rgb word(colors, c - 1)
""" % ("switch_cost.png", " ".join(IMPL_COLORS.get(i, "#000000") for i in impls), len(impls) + 1,
       "switch_cost.dat"))
    return gp


README_BEGIN = "<!-- bench-table begin -->"
README_END = "<!-- bench-table end -->"


def read_callgrind(res_dir):
    rows = []
    path = os.path.join(res_dir, "callgrind.csv")
    if os.path.exists(path):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                rows.append(r)
    return rows


def readme_block(cells, mach, callgrind):
    """The README's table: every row that has a libfiber or baseline figure, each baseline with its ratio."""
    out = [README_BEGIN,
           "<!-- generated by bench/report.py --readme from the run below; edit report.py, not this table -->",
           "",
           "Run of %s on %s, %s CPUs, Linux %s. Median [min-max] of the repetitions; in parentheses libfiber's"
           " median divided by the baseline's (below 1.00x libfiber is faster, above it slower). Yield rows say"
           " how many yields switched." % (mach.get("date", "?"), mach.get("cpu", "?"), mach.get("nproc", "?"),
                                         mach.get("kernel", "?")),
           "",
           "| operation | libfiber | baselines | budget |",
           "|---|---|---|---|"]
    for op, desc, unit in ROWS:
        impls = [i for i in IMPLS if (op, i) in cells]
        if not impls:
            continue
        lf = cell_text(cells, op, "libfiber") if (op, "libfiber") in cells else "-"
        base = []
        for i in impls:
            if i == "libfiber":
                continue
            base.append("%s %s" % (IMPL_TITLES.get(i, i), cell_text(cells, op, i)))
        tg = "; ".join(t["text"] for t in target_text(cells, op)) or "-"
        out.append("| `%s`: %s (%s) | %s | %s | %s |" % (op, desc, unit, lf, "<br>".join(base) or "-", tg))
    if callgrind:
        out += ["", "Instructions per operation (callgrind, `bench/callgrind.sh`):", "",
                "| operation | impl | instructions/op | note |", "|---|---|---|---|"]
        for r in callgrind:
            v = r.get("instructions_per_op") or "-"
            out.append("| %s | %s | %s | %s |" % (r.get("operation", "?"),
                                                IMPL_TITLES.get(r.get("impl"), r.get("impl")), v, r.get("note") or ""))
    out.append(README_END)
    return "\n".join(out)


def update_readme(path, block):
    with open(path) as f:
        text = f.read()
    b, e = text.find(README_BEGIN), text.find(README_END)
    if b < 0 or e < b:
        sys.stderr.write("report.py: %s has no %s ... %s block; README not updated\n" % (path, README_BEGIN,
                                                                                        README_END))
        return False
    text = text[:b] + block + text[e + len(README_END):]
    with open(path, "w") as f:
        f.write(text)
    return True


def cells_from_json(path):
    with open(path) as f:
        js = json.load(f)
    cells = {}
    for row in js.get("rows", []):
        for impl, c in row.get("results", {}).items():
            cells[(row["operation"], impl)] = c
    return cells, js.get("machine", {})


def main():
    args = sys.argv[1:]
    readme = json_path = None
    while args and args[0].startswith("--"):
        if args[0] == "--readme" and len(args) > 1:
            readme = args[1]
        elif args[0] == "--json" and len(args) > 1:
            json_path = args[1]
        else:
            sys.exit(__doc__)
        args = args[2:]
    if json_path:
        if not readme or args:
            sys.exit(__doc__)
        cells, mach = cells_from_json(json_path)
        update_readme(readme, readme_block(cells, mach, read_callgrind(os.path.dirname(json_path) or ".")))
        return
    if len(args) != 2:
        sys.exit(__doc__)
    out_dir, res_dir = args
    os.makedirs(res_dir, exist_ok=True)
    cells, status = collect(out_dir)
    mach = machine()
    header, rows, used = build_table(cells)

    with open(os.path.join(res_dir, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["operation", "impl", "status", "median", "min", "max", "unit", "ratio_libfiber_to_impl",
                "program", "reason", "switches_per_yield", "switches_min", "switches_max"])
        for op, _, unit in ROWS:
            for impl in IMPLS:
                c = cells.get((op, impl))
                if not c:
                    continue
                r = ratio(cells, op, impl) if impl != "libfiber" else None
                if c["status"] == "ok":
                    sw = c.get("switches")
                    w.writerow([op, impl, "ok", c["median"], c["min"], c["max"], c["unit"],
                            "%.4f" % r if r is not None else "", c["program"], ""]
                            + ([sw["median"], sw["min"], sw["max"]] if sw else ["", "", ""]))
                else:
                    w.writerow([op, impl, "not available", "", "", "", unit, "", c["program"],
                            c["reason"]])

    js = {"machine": mach, "programs": {p: {"state": s[0], "detail": s[1]} for p, s in status.items()},
          "rows": []}
    for op, desc, unit in ROWS:
        row = {"operation": op, "description": desc, "unit": unit, "results": {}, "ratios": {},
               "targets": target_text(cells, op)}
        for impl in IMPLS:
            c = cells.get((op, impl))
            if c:
                row["results"][impl] = c
                r = ratio(cells, op, impl) if impl != "libfiber" else None
                if r is not None:
                    row["ratios"][impl] = r
        if row["results"]:
            js["rows"].append(row)
    with open(os.path.join(res_dir, "results.json"), "w") as f:
        json.dump(js, f, indent=1, sort_keys=False)
        f.write("\n")

    with open(os.path.join(res_dir, "table.md"), "w") as f:
        f.write(markdown(header, rows, mach, cells, status, program_messages(out_dir)))
    write_plot(res_dir, cells)

    if readme:
        update_readme(readme, readme_block(cells, mach, read_callgrind(res_dir)))

    print("Machine: %s, %s CPUs, Linux %s" % (mach["cpu"], mach["nproc"], mach["kernel"]))
    print("Cells: median (libfiber / baseline). Budget check in the last column.")
    print()
    print_text(header, rows)


if __name__ == "__main__":
    main()
