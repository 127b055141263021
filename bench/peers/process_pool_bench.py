"""The Python peer of bench/pool_bench: concurrent.futures.ProcessPoolExecutor.

The same workloads as pool_bench's process pool, one JSON object per line:

  tiny_submit   10^5 executor.submit(add_one, x), one by one, then a wait for
                all of them: items_per_second (and submit_per_second).
  tiny_map      the same 10^5 through executor.map(add_one, xs,
                chunksize=1000): batches of 1000 cross the pipe at once.
  latency       one submit(...).result() on an idle pool, back to back.
  latency_after_idle  the same after 2 ms with nothing to do.
  fib           100 x cores tasks of fib(27), submitted one by one, then a
                wait; serial rate (this process) and ideal (one process per
                CPU pinned with os.sched_setaffinity, all at once: the sum
                of their rates) measured just before and just after each
                run: speedup, speedup_over_ideal, busy_fraction (time inside
                tasks, timed by the task, / (workers x wall)).

  python3 bench/peers/process_pool_bench.py [--reps 3] [--only tiny,latency,fib]
      [--tiny-n 100000]

The pool has one worker process per allowed CPU (the start method is the
platform's default: fork on Linux with Python 3.11), all started before the
timing.
"""

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

FIB_N = 27
FIB_TASKS_PER_CORE = 100
RATE_WINDOW_S = 0.5  # Python's fib(27) is tens of ms: several tasks per window


def add_one(x):
    return x + 1


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def timed_fib(n):
    t0 = time.perf_counter_ns()
    r = fib(n)
    return r, time.perf_counter_ns() - t0


def run_for(window_s):
    """fib tasks per second of this process, back to back for window_s."""
    t0 = time.perf_counter()
    done = 0
    while True:
        fib(FIB_N)
        done += 1
        now = time.perf_counter()
        if now - t0 >= window_s:
            return done / (now - t0)


def _pinned(cpu, start_at, out):
    os.sched_setaffinity(0, {cpu})
    while time.time() < start_at:
        pass
    out.put((cpu, run_for(RATE_WINDOW_S)))


def pinned_rates(cpus):
    """One process per CPU, pinned, all running fib for the same window."""
    out = mp.Queue()
    start_at = time.time() + 0.3
    procs = [mp.Process(target=_pinned, args=(c, start_at, out)) for c in cpus]
    for p in procs:
        p.start()
    rates = dict(out.get() for _ in procs)
    for p in procs:
        p.join()
    return [rates[c] for c in cpus]


def emit(cores, **fields):
    print(json.dumps({"peer": "process_pool_executor", "cores": cores, **fields}), flush=True)


def warm(ex, cores):
    list(ex.map(fib, [20] * (4 * cores)))


def tiny_submit(ex, cores, n, reps):
    rates, submits = [], []
    for rep in range(reps + 1):  # rep 0: warm-up, not reported
        t0 = time.perf_counter()
        fs = [ex.submit(add_one, i) for i in range(n)]
        t1 = time.perf_counter()
        cf.wait(fs)
        t2 = time.perf_counter()
        for i, f in enumerate(fs):
            if f.result() != i + 1:
                raise RuntimeError(f"tiny task {i} returned {f.result()}")
        if rep:
            rates.append(n / (t2 - t0))
            submits.append(n / (t1 - t0))
    emit(cores, bench="tiny_submit", items_per_second=statistics.median(rates),
         submit_per_second=statistics.median(submits), runs=rates)


def tiny_map(ex, cores, n, reps):
    rates = []
    for rep in range(reps + 1):
        t0 = time.perf_counter()
        rs = list(ex.map(add_one, range(n), chunksize=1000))
        t1 = time.perf_counter()
        if rs != list(range(1, n + 1)):
            raise RuntimeError("map returned wrong results")
        if rep:
            rates.append(n / (t1 - t0))
    emit(cores, bench="tiny_map", chunksize=1000, items_per_second=statistics.median(rates),
         runs=rates)


def latency(ex, cores, reps, after_idle):
    iterations = 500 if after_idle else 3000
    per_rep = []
    for _ in range(reps):
        total = 0.0
        for i in range(iterations):
            if after_idle:
                time.sleep(0.002)
            t0 = time.perf_counter()
            r = ex.submit(add_one, i).result()
            total += time.perf_counter() - t0
            if r != i + 1:
                raise RuntimeError(f"latency task returned {r}")
        per_rep.append(total / iterations)
    emit(cores, bench="latency_after_idle" if after_idle else "latency",
         seconds=statistics.median(per_rep), runs=per_rep)


def fib_bench(ex, cores, reps):
    cpus = sorted(os.sched_getaffinity(0))
    tasks = FIB_TASKS_PER_CORE * cores
    expect = fib(FIB_N)
    rows = []
    for _ in range(reps):
        # The serial and ideal rates just before and just after each run (the
        # VM's speed drifts within seconds).
        serial_before, ideal_before = run_for(RATE_WINDOW_S), sum(pinned_rates(cpus))
        t0 = time.perf_counter()
        fs = [ex.submit(timed_fib, FIB_N) for _ in range(tasks)]
        cf.wait(fs)
        wall = time.perf_counter() - t0
        busy = 0.0
        for f in fs:
            r, ns = f.result()
            if r != expect:
                raise RuntimeError(f"fib returned {r}")
            busy += ns / 1e9
        serial = (serial_before + run_for(RATE_WINDOW_S)) / 2
        ideal = (ideal_before + sum(pinned_rates(cpus))) / 2
        rate = tasks / wall
        rows.append({"rate": rate, "speedup": rate / serial, "speedup_over_ideal": rate / ideal,
                     "ideal_speedup": ideal / serial, "busy_fraction": busy / (cores * wall)})

    def pick(k):
        return statistics.median(r[k] for r in rows)

    emit(cores, bench="fib", items_per_second=pick("rate"), speedup=pick("speedup"),
         speedup_over_ideal=pick("speedup_over_ideal"), ideal_speedup=pick("ideal_speedup"),
         busy_fraction=pick("busy_fraction"), runs=rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="tiny,latency,fib")
    ap.add_argument("--tiny-n", type=int, default=100_000)
    a = ap.parse_args()
    only = set(a.only.split(","))
    cores = len(os.sched_getaffinity(0))
    with cf.ProcessPoolExecutor(max_workers=cores) as ex:
        warm(ex, cores)
        if "tiny" in only:
            tiny_submit(ex, cores, a.tiny_n, a.reps)
            tiny_map(ex, cores, a.tiny_n, a.reps)
        if "latency" in only:
            latency(ex, cores, a.reps, after_idle=False)
            latency(ex, cores, a.reps, after_idle=True)
        if "fib" in only:
            fib_bench(ex, cores, a.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
