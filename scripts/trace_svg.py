#!/usr/bin/env python3
"""Render a libfiber timeline trace (FIBER_TRACE=FILE, Chrome trace-event JSON) as an SVG picture.

    scripts/trace_svg.py TRACE.json OUT.svg [--from-us T0] [--to-us T1] [--width PX]

One row per worker, a box per run of a fiber (labelled "name #id" where it fits, one colour per fiber), an arrow
per wake-up from the waker's row to where the woken fiber next runs, a tick per migration. Only the standard
library is used; the same file opens in https://ui.perfetto.dev or chrome://tracing for interactive viewing.
"""
import argparse
import colorsys
import html
import json
import sys


def colour(key):
    h = (hash(key) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hls_to_rgb(h, 0.62, 0.55)
    return "#%02x%02x%02x" % (int(r * 255), int(g * 255), int(b * 255))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("out")
    ap.add_argument("--from-us", type=float, default=None)
    ap.add_argument("--to-us", type=float, default=None)
    ap.add_argument("--width", type=int, default=1100)
    a = ap.parse_args()

    with open(a.trace) as f:
        ev = json.load(f)["traceEvents"]
    names = {}
    for e in ev:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[e["tid"]] = e["args"]["name"]
    slices = [e for e in ev if e.get("ph") == "X"]
    if not slices:
        sys.exit("no slices in %s" % a.trace)
    t0 = a.from_us if a.from_us is not None else min(e["ts"] for e in slices)
    t1 = a.to_us if a.to_us is not None else max(e["ts"] + e["dur"] for e in slices)
    if t1 <= t0:
        sys.exit("empty time window")
    tids = sorted({e["tid"] for e in slices} | {t for t in names if names[t].startswith("worker")})
    row = {t: i for i, t in enumerate(tids)}
    left, top, rh, gap = 90, 34, 34, 14
    width = a.width
    plot = width - left - 20
    height = top + len(tids) * (rh + gap) + 40

    def x(ts):
        return left + (ts - t0) / (t1 - t0) * plot

    def y(tid):
        return top + row[tid] * (rh + gap)

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="11">' % (width, height),
           '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#333"/></marker></defs>',
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="18" font-size="13">libfiber timeline: %.0f..%.0f us, %d runs shown (boxes: a fiber '
           'running; arrows: wake-ups; gaps: idle)</text>' % (left, t0, t1, 0)]
    shown = 0
    for t in tids:
        out.append('<text x="8" y="%d">%s</text>' % (y(t) + rh / 2 + 4, html.escape(names.get(t, "tid %d" % t))))
        out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#ddd"/>' % (left, left + plot, y(t) + rh,
                                                                              y(t) + rh))
    for e in slices:
        s, d = e["ts"], e["dur"]
        if s + d < t0 or s > t1 or e["tid"] not in row:
            continue
        xs, xe = x(max(s, t0)), x(min(s + d, t1))
        w = max(xe - xs, 0.6)
        fid = e["args"].get("fiber", e["name"])
        title = "%s: %.1f us, ended: %s" % (e["name"], d, e["args"].get("ended", "?"))
        out.append('<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" stroke="#555" stroke-width="0.3">'
                   '<title>%s</title></rect>' % (xs, y(e["tid"]), w, rh, colour(fid), html.escape(title)))
        label = e["name"]
        if w > 7 * len(label):
            out.append('<text x="%.2f" y="%d">%s</text>' % (xs + 3, y(e["tid"]) + rh / 2 + 4, html.escape(label)))
        shown += 1
    starts = {}
    for e in ev:
        if e.get("ph") == "s":
            starts[e["id"]] = e
    for e in ev:
        if e.get("ph") != "f" or e["id"] not in starts:
            continue
        s = starts[e["id"]]
        if not (t0 <= s["ts"] <= t1 and t0 <= e["ts"] <= t1) or s["tid"] not in row or e["tid"] not in row:
            continue
        x1, y1 = x(s["ts"]), y(s["tid"]) + rh / 2
        x2, y2 = x(e["ts"]), y(e["tid"]) + (rh / 2 if s["tid"] == e["tid"] else (2 if y(e["tid"]) > y1 else rh - 2))
        out.append('<path d="M %.2f %.2f C %.2f %.2f %.2f %.2f %.2f %.2f" fill="none" stroke="#333" '
                   'stroke-width="0.8" marker-end="url(#arr)"/>' % (x1, y1, x1, (y1 + y2) / 2, x2, (y1 + y2) / 2,
                                                                    x2, y2))
    for e in ev:
        if e.get("ph") == "i" and e.get("cat") == "migrate" and t0 <= e["ts"] <= t1 and e["tid"] in row:
            xm = x(e["ts"])
            out.append('<path d="M %.2f %d l -4 -7 l 8 0 z" fill="#c00"><title>%s</title></path>'
                       % (xm, y(e["tid"]), html.escape(e["name"])))
    # time axis
    ya = top + len(tids) * (rh + gap) + 6
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>' % (left, left + plot, ya, ya))
    for i in range(6):
        ts = t0 + (t1 - t0) * i / 5
        out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#333"/>' % (x(ts), x(ts), ya, ya + 4))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%.0f us</text>' % (x(ts), ya + 16, ts))
    out.append("</svg>")
    out[3] = out[3].replace(", 0 runs shown", ", %d runs shown" % shown)
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
