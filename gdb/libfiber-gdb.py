# libfiber-gdb.py - gdb support for libfiber: list fibers and backtrace parked ones, live or in a core file.
#
#   info fibers                    every fiber: id, name, state, wait reason, worker, class/policy, what it waits
#                                  on, time since it last ran ('*' marks the fiber the selected thread runs)
#   fiber bt ID|NAME|0xADDR        backtrace of one fiber: a parked fiber from its saved stack pointer, a running
#                                  one from the worker thread that runs it
#   fiber apply all bt             the same for every fiber
#   fiber apply ID... bt           the same for the fibers named
#
# Loading: libfiber.so carries this script in its .debug_gdb_scripts section, so gdb loads it with the library
# wherever it is installed once auto-loading is allowed for it (e.g. `set auto-load safe-path /` or
# `add-auto-load-safe-path /your/prefix/lib` in ~/.gdbinit). `cmake --install` also puts it under
# share/gdb/auto-load/<libdir>/ (found by a gdb whose data directory is that prefix's) and share/libfiber/gdb/.
# From a build tree: (gdb) source gdb/libfiber-gdb.py
#
# How `fiber bt` works without writing registers (a core file has no process to write them to): a Python frame
# unwinder claims the selected thread's innermost frame while a backtrace is taken and says that its caller's
# registers are those fiber__switch saved on the fiber's stack (asm/switch_x86_64_sysv_elf.S, switch_offsets.h):
#   sp+8 r15, sp+16 r14, sp+24 r13, sp+32 r12, sp+40 rbx, sp+48 rbp, sp+56 return address; rsp = sp+64.
# gdb's own DWARF unwinder then walks the parked stack from there, and the extension prints the frames above the
# claimed one. It needs the runtime's debug info (the default RelWithDebInfo build has it).

import gdb

try:
    from gdb.unwinder import Unwinder, register_unwinder
except ImportError:  # gdb without Python unwinders (< 7.10)
    Unwinder = object
    register_unwinder = None

# Must match runtime/switch_offsets.h.
FRAME_R15, FRAME_R14, FRAME_R13, FRAME_R12, FRAME_RBX, FRAME_RBP, FRAME_RET, FRAME_SIZE = 8, 16, 24, 32, 40, 48, 56, 64

# Must match runtime/internal.h.
TASK_INTERRUPTIBLE, TASK_UNINTERRUPTIBLE, TASK_DEAD, TASK_WAKING, TASK_NEW = 0x1, 0x2, 0x80, 0x200, 0x800
PF_KTHREAD = 0x1
POLICIES = {0: "NORMAL", 1: "FIFO", 2: "RR", 3: "BATCH", 5: "IDLE", 6: "DEADLINE"}


def _u64(v):
    return int(v) & 0xFFFFFFFFFFFFFFFF


def _runtime():
    try:
        sym = gdb.lookup_global_symbol("fiber__rt")
        rt = sym.value() if sym is not None else gdb.parse_and_eval("fiber__rt")
    except gdb.error:
        raise gdb.GdbError("libfiber: no symbol fiber__rt (is libfiber loaded, with debug info?)")
    return rt


def _str(v):
    try:
        if int(v) == 0:
            return None
        return v.string(errors="replace")
    except (gdb.error, gdb.MemoryError):
        return "?"


def _name(p):
    try:
        n = p["name"].string(errors="replace")
    except (gdb.error, gdb.MemoryError):
        n = ""
    return n or "-"


def _workers(rt):
    n = int(rt["nr_workers"])
    ws = rt["workers"]
    if int(ws) == 0:
        return []
    return [ws[i] for i in range(n)]


def _list_fibers(rt):
    """Every fiber on the workers' all_fibers lists (the list fiber_dump walks), in list order."""
    ftype = gdb.lookup_type("struct fiber")
    off = None
    for f in ftype.fields():
        if f.name == "all":
            off = f.bitpos // 8
    out = []
    for w in _workers(rt):
        head = w["all_fibers"].address
        pos = w["all_fibers"]["next"]
        guard = 0
        while int(pos) != int(head) and guard < 1000000:
            p = gdb.Value(int(pos) - off).cast(ftype.pointer()).dereference()
            out.append(p)
            pos = pos["next"]
            guard += 1
    return out


def _now(rt):
    """The latest scheduler clock of any worker: the 'now' that 'last ran' is measured against (sched_clock ns)."""
    now = 0
    for w in _workers(rt):
        now = max(now, _u64(w["rq"]["clock"]))
    return now


def _state(p):
    st = int(p["state"])
    on_cpu = int(p["on_cpu"])
    if st & TASK_DEAD:
        return "dead"
    if on_cpu and st == 0:
        return "running"
    if st & TASK_NEW:
        return "new"
    if st & TASK_WAKING:
        return "waking"
    if st & TASK_UNINTERRUPTIBLE:
        return "blocked(D)"
    if st & TASK_INTERRUPTIBLE:
        return "sleeping(S)"
    if int(p["on_rq"]):
        return "runnable"
    return "running" if on_cpu else "runnable"


def _policy(p):
    cls = _str(p["sched_class"]["name"]) if int(p["sched_class"]) else "?"
    if int(p["flags"]) & PF_KTHREAD:
        return "%s/stopper" % cls
    pol = int(p["policy"])
    name = POLICIES.get(pol, str(pol))
    if pol in (1, 2):
        return "%s/%s %d" % (cls, name, int(p["rt_priority"]))
    if pol == 6:
        dl = p["dl"]
        return "%s/%s %d/%dus" % (cls, name, _u64(dl["dl_runtime"]) // 1000, _u64(dl["dl_period"]) // 1000)
    return "%s/%s %d" % (cls, name, int(p["static_prio"]) - 120)


def _symbol_at(addr):
    try:
        s = gdb.execute("info symbol %#x" % addr, to_string=True).strip()
    except gdb.error:
        return None
    if s.startswith("No symbol"):
        return None
    return s.split(" in section")[0]


def _fiber_by_addr(rt, addr):
    for q in _list_fibers(rt):
        if int(q.address) == addr:
            return q
    return None


def _waits_on(rt, p, reason, now):
    on = _u64(p["wait_on"]) if _has_field(p, "wait_on") else 0
    if not on:
        return ""
    if reason == "join":
        q = _fiber_by_addr(rt, on)
        if q is not None:
            return "fiber %d (%s)" % (int(q["id"]), _name(q))
    if reason == "sleep":
        try:
            t = gdb.Value(on).cast(gdb.lookup_type("struct fiber_timer").pointer()).dereference()
            exp = _u64(t["expires"])
            if now and exp >= now:
                return "timer, due in %.1f ms" % ((exp - now) / 1e6)
            return "timer, due"
        except (gdb.error, gdb.MemoryError):
            pass
    sym = _symbol_at(on)
    return "%#x%s" % (on, " <%s>" % sym if sym else "")


def _has_field(v, name):
    return any(f.name == name for f in v.type.strip_typedefs().fields())


def _reason(p):
    if _has_field(p, "wait_reason"):
        r = _str(p["wait_reason"])
        if r:
            return r
    st = int(p["state"])
    if (int(p["flags"]) & PF_KTHREAD) and st & (TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE):
        return "no work"
    return ""


def _current_fiber_addr(rt):
    """The fiber the selected thread runs (its worker's current), or 0."""
    th = gdb.selected_thread()
    if th is None:
        return 0
    lwp = th.ptid[1]
    for w in _workers(rt):
        if int(w["tid"]) == lwp:
            return _u64(w["current"])
    return 0


def _find(rt, arg):
    arg = arg.strip()
    fibers = _list_fibers(rt)
    if not arg:
        raise gdb.GdbError("which fiber? give an id, a name or a struct fiber address")
    if arg.startswith("0x"):
        a = int(arg, 16)
        for p in fibers:
            if int(p.address) == a:
                return p
    if arg.isdigit():
        for p in fibers:
            if int(p["id"]) == int(arg):
                return p
    for p in fibers:
        if _name(p) == arg:
            return p
    raise gdb.GdbError("libfiber: no fiber %s" % arg)


class FiberUnwinder(Unwinder):
    """Claims the selected thread's innermost real frame while `fiber bt` runs; its caller is the parked fiber."""

    def __init__(self):
        super(FiberUnwinder, self).__init__("libfiber")
        self.sp = None  # the parked fiber's saved sp while a backtrace is taken
        self.level = None

    def __call__(self, pending_frame):
        if self.sp is None:
            return None
        level = pending_frame.level() if hasattr(pending_frame, "level") else 0
        if self.level is None:
            self.level = level
        if level != self.level:
            return None
        sp = self.sp
        ptr = gdb.lookup_type("unsigned long").pointer()
        u64 = gdb.lookup_type("unsigned long")

        def slot(off):
            return gdb.Value(sp + off).cast(ptr).dereference()

        class FrameId(object):
            def __init__(self, fsp, pc):
                self.sp = fsp
                self.pc = pc

        # The claimed frame's id uses the fiber's sp so that the parked frames above it are "outer" to it, as gdb
        # requires of a caller, wherever the fiber's stack lies relative to the thread's.
        fid = FrameId(gdb.Value(sp).cast(u64), pending_frame.read_register("rip"))
        ui = pending_frame.create_unwind_info(fid)
        ui.add_saved_register("rip", slot(FRAME_RET))
        ui.add_saved_register("rsp", gdb.Value(sp + FRAME_SIZE).cast(u64))
        for reg, off in (("rbp", FRAME_RBP), ("rbx", FRAME_RBX), ("r12", FRAME_R12), ("r13", FRAME_R13),
                         ("r14", FRAME_R14), ("r15", FRAME_R15)):
            ui.add_saved_register(reg, slot(off))
        return ui


_unwinder = FiberUnwinder()
if register_unwinder is not None:
    register_unwinder(None, _unwinder, replace=True)


def _frame_line(n, fr):
    pc = fr.pc()
    name = fr.name() or "??"
    args = []
    fn = fr.function()
    try:
        blk = fr.block()
        while blk is not None and blk.function is None:
            blk = blk.superblock
        if blk is not None:
            for s in blk:
                if s.is_argument:
                    try:
                        v = str(s.value(fr))
                    except (gdb.error, gdb.MemoryError, RuntimeError):
                        v = "<unavailable>"
                    if len(v) > 40:
                        v = v[:37] + "..."
                    args.append("%s=%s" % (s.print_name, v))
    except (RuntimeError, gdb.error):
        pass
    sal = fr.find_sal()
    where = ""
    if sal is not None and sal.symtab is not None:
        where = " at %s:%d" % (sal.symtab.filename, sal.line)
    elif fn is None:
        so = gdb.solib_name(pc)
        if so:
            where = " from %s" % so
    inl = fr.type() == gdb.INLINE_FRAME
    addr = "" if inl else "%#018x in " % pc
    return "#%-2d %s%s (%s)%s%s" % (n, addr, name, ", ".join(args), where, " [inlined]" if inl else "")


def _parked_bt(p, limit=64):
    if register_unwinder is None:
        raise gdb.GdbError("libfiber: this gdb has no Python frame unwinders")
    if gdb.selected_thread() is None:
        raise gdb.GdbError("libfiber: no thread to unwind from")
    sp = _u64(p["sp"])
    lines = []
    old = gdb.selected_frame() if gdb.selected_thread() is not None else None
    _unwinder.sp = sp
    _unwinder.level = None
    gdb.invalidate_cached_frames()
    try:
        fr = gdb.newest_frame()
        # Skip the claimed frame and the inline frames in it: the parked stack starts above it.
        while fr is not None and (_unwinder.level is None or fr.level() <= _unwinder.level):
            fr = fr.older()
        n = 0
        while fr is not None and n < limit:
            lines.append(_frame_line(n, fr))
            n += 1
            fr = fr.older()
    finally:
        _unwinder.sp = None
        _unwinder.level = None
        gdb.invalidate_cached_frames()
        try:
            if old is not None:
                gdb.newest_frame().select()
        except gdb.error:
            pass
    return lines


def _running_bt(rt, p):
    cpu = int(p["cpu"])
    ws = _workers(rt)
    tid = int(ws[cpu]["tid"]) if 0 <= cpu < len(ws) else -1
    for th in gdb.selected_inferior().threads():
        if th.ptid[1] == tid:
            cur = gdb.selected_thread()
            th.switch()
            try:
                out = gdb.execute("bt", to_string=True)
            finally:
                cur.switch()
            return ["(running on worker %d, thread %d)" % (cpu, th.num)] + out.rstrip("\n").split("\n")
    return ["(running on worker %d; its thread was not found)" % cpu]


def _bt(rt, p):
    st = int(p["state"])
    if st & TASK_DEAD:
        return ["(dead: its stack is gone)"]
    if int(p["on_cpu"]):
        return _running_bt(rt, p)
    return _parked_bt(p)


def _header(p):
    return "fiber %d \"%s\" (%s%s):" % (int(p["id"]), _name(p), _state(p),
                                        ", %s" % _reason(p) if _reason(p) else "")


class InfoFibers(gdb.Command):
    """List libfiber's fibers: id, name, state, wait reason, worker, class/policy, what it waits on, last ran.

'*' marks the fiber that the selected thread runs. 'last ran' is measured against the latest scheduler clock
of any worker (the rq clock, sched_clock nanoseconds)."""

    def __init__(self):
        super(InfoFibers, self).__init__("info fibers", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        rt = _runtime()
        if not int(rt["running"]):
            print("libfiber: no runtime running")
            return
        now = _now(rt)
        cur = _current_fiber_addr(rt)
        rows = []
        for p in _list_fibers(rt):
            reason = _reason(p)
            state = _state(p)
            if state == "running":
                last = "now"
            else:
                es = _u64(p["exec_start"])
                last = "%.1f ms ago" % ((now - es) / 1e6) if es and now >= es else "never"
            rows.append(("*" if int(p.address) == cur else " ", str(int(p["id"])), _name(p), state, reason or "-",
                         str(int(p["cpu"])), _policy(p), _waits_on(rt, p, reason, now) or "-", last))
        hdr = (" ", "Id", "Name", "State", "Reason", "Worker", "Class/policy", "Waits on", "Last ran")
        widths = [max(len(r[i]) for r in rows + [hdr]) for i in range(len(hdr))]
        fmt = "  ".join("%%-%ds" % w for w in widths)
        print(fmt % hdr)
        for r in rows:
            print(fmt % r)
        print("%d fibers on %d workers" % (len(rows), int(rt["nr_workers"])))


class FiberPrefix(gdb.Command):
    """libfiber commands: fiber bt ID, fiber apply all bt, fiber apply ID... bt."""

    def __init__(self):
        super(FiberPrefix, self).__init__("fiber", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)


class FiberBt(gdb.Command):
    """Backtrace of one fiber: fiber bt ID|NAME|0xADDR (a parked fiber from its saved stack pointer)."""

    def __init__(self):
        super(FiberBt, self).__init__("fiber bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        rt = _runtime()
        p = _find(rt, arg)
        print(_header(p))
        for line in _bt(rt, p):
            print(line)


class FiberApply(gdb.Command):
    """Backtraces of several fibers: fiber apply all bt, fiber apply ID... bt (bt is the only command)."""

    def __init__(self):
        super(FiberApply, self).__init__("fiber apply", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        words = arg.split()
        if len(words) < 2 or words[-1] not in ("bt", "backtrace"):
            raise gdb.GdbError("usage: fiber apply all bt | fiber apply ID... bt")
        rt = _runtime()
        if words[0] == "all":
            fibers = _list_fibers(rt)
        else:
            fibers = [_find(rt, w) for w in words[:-1]]
        for p in fibers:
            print("")
            print(_header(p))
            for line in _bt(rt, p):
                print(line)


InfoFibers()
FiberPrefix()
FiberBt()
FiberApply()
