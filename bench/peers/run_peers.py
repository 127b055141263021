#!/usr/bin/env python3
"""Runs bench/pool_bench and its Node and Python peers, then prints the ratios.

  python3 bench/peers/run_peers.py            # build, run all, print the table
  python3 bench/peers/run_peers.py --no-build --reps 3

One after the other in one sitting: pool_bench (Wharf's thread and process
pools beside asio, oneTBB and a std::thread pool, in one binary), then
piscina_bench.js (Piscina, installed from npm into bench/peers/node_modules
if missing), then process_pool_bench.py (ProcessPoolExecutor). Figures are
medians of --reps runs; the table names the core count. The VM these run on
changes speed from minute to minute: ratios between binaries run a minute
apart are rougher than the ratios inside pool_bench, whose peers run in one
process within seconds of each other.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BINARY = os.path.join(ROOT, "bazel-out", "k8-opt", "bin", "bench", "pool_bench")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, cwd=ROOT, capture=False):
    log("+", " ".join(cmd))
    if capture:
        return subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.PIPE, text=True).stdout
    subprocess.run(cmd, cwd=cwd, check=True)
    return ""


def ensure_piscina():
    if os.path.isdir(os.path.join(HERE, "node_modules", "piscina")):
        return
    lock = os.path.exists(os.path.join(HERE, "package-lock.json"))
    run(["npm", "ci" if lock else "install", "--no-audit", "--no-fund"], cwd=HERE)


def base_name(run_name):
    """BM_Fib/asio/iterations:3/real_time -> BM_Fib/asio."""
    parts = [p for p in run_name.split("/")
             if not (p in ("real_time", "manual_time") or p.startswith("iterations:"))]
    return "/".join(parts)


def pool_bench(reps, extra, out):
    run([BINARY, f"--benchmark_repetitions={reps}", "--benchmark_report_aggregates_only=true",
         f"--benchmark_out={out}", "--benchmark_out_format=json"] + extra)
    with open(out) as f:
        data = json.load(f)
    results = {}
    for b in data["benchmarks"]:
        name = base_name(b.get("run_name", b["name"]))
        if b.get("error_occurred"):
            results[name] = {"error": b.get("error_message", "error")}
        elif b.get("aggregate_name", "median") == "median" or reps == 1:
            results[name] = b
    return data.get("context", {}), results


def json_lines(text):
    return {o["bench"]: o for o in (json.loads(l) for l in text.splitlines() if l.strip())}


def fmt_rate(v):
    return "—" if v is None else (f"{v / 1e6:.2f} M/s" if v >= 1e6 else f"{v / 1e3:.1f} k/s")


def fmt_us(v):
    return "—" if v is None else f"{v * 1e6:.1f} µs"


def fmt_x(v):
    return "—" if v is None else f"{v:.3f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-build", action="store_true", help="use the pool_bench already built")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tiny-n-python", type=int, default=100_000,
                    help="tasks per ProcessPoolExecutor tiny run (10^5 takes ~15 s per run here)")
    ap.add_argument("--only", default="tiny,latency,fib", help="workloads, comma-separated")
    ap.add_argument("--benchmark_filter", default=None, help="passed to pool_bench")
    ap.add_argument("--out", default=None,
                    help="directory for the raw results (pool_bench.json, piscina.jsonl, "
                         "process_pool.jsonl, table.md); default: a new one under /tmp")
    a = ap.parse_args()
    out_dir = a.out or tempfile.mkdtemp(prefix="wharf_pool_peers_")
    os.makedirs(out_dir, exist_ok=True)

    if not a.no_build:
        run(["./bazelw", "build", "--config=bench", "//bench:pool_bench"])
    ensure_piscina()

    only = set(a.only.split(","))
    extra = []
    if a.benchmark_filter:
        extra.append(f"--benchmark_filter={a.benchmark_filter}")
    else:
        pats = {"tiny": "BM_TinyTasks|BM_SubmitBlocked", "latency": "BM_TaskLatency", "fib": "BM_Fib"}
        extra.append("--benchmark_filter=" + "|".join(pats[w] for w in sorted(only)))
    context, w = pool_bench(a.reps, extra, os.path.join(out_dir, "pool_bench.json"))

    def peer(name, cmd):
        text = run(cmd, capture=True)
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(text)
        return json_lines(text)

    node = peer("piscina.jsonl", ["node", os.path.join(HERE, "piscina_bench.js"),
                                  f"--reps={a.reps}", f"--only={a.only}"])
    py = peer("process_pool.jsonl", [sys.executable, os.path.join(HERE, "process_pool_bench.py"),
                                     "--reps", str(a.reps), "--only", a.only,
                                     "--tiny-n", str(a.tiny_n_python)])

    cores = context.get("cores") or os.cpu_count()
    rows = []  # (workload, wharf side, its figure, peer, peer figure, ratio, note)

    def wharf(name, key):
        r = w.get(name)
        if r is None:
            return None, "not run"
        if "error" in r:
            return None, ("pending kProcess" if "unimplemented" in r["error"].lower()
                          else r["error"])
        return r.get(key), ""

    def add(workload, wname, key, peer, pval, fmt, higher_better, note=""):
        wval, why = wharf(wname, key)
        ratio = None
        if wval is not None and pval:
            ratio = wval / pval if higher_better else pval / wval
        rows.append((workload, wname.split("/")[1], fmt(wval) if wval is not None else why,
                     peer, fmt(pval), f"{ratio:.2f}×" if ratio else "—", note))

    def cxx(name, key):
        r = w.get(name)
        return None if r is None or "error" in r else r.get(key)

    if "tiny" in only:
        for peer in ["asio", "tbb", "std_pool", "asio_futures"]:
            note = "target ≥ 1.0× best of asio, tbb" if peer in ("asio", "tbb") else ""
            add("tiny tasks/s", "BM_TinyTasks/wharf_thread", "items_per_second", peer,
                cxx(f"BM_TinyTasks/{peer}", "items_per_second"), fmt_rate, True, note)
        add("tiny tasks/s", "BM_TinyTasks/wharf_thread", "items_per_second", "piscina",
            node.get("tiny", {}).get("items_per_second"), fmt_rate, True)
        for bench, peer in [("tiny_submit", "ProcessPoolExecutor.submit"),
                            ("tiny_map", "ProcessPoolExecutor.map(chunksize=1000)")]:
            add("tiny tasks/s", "BM_TinyTasks/wharf_process", "items_per_second", peer,
                py.get(bench, {}).get("items_per_second"), fmt_rate, True,
                "target ≥ 1 M/s" if bench == "tiny_submit" else "")
        for peer in ["asio", "std_pool"]:
            add("submit/s, workers busy", "BM_SubmitBlocked/wharf_thread", "items_per_second",
                peer, cxx(f"BM_SubmitBlocked/{peer}", "items_per_second"), fmt_rate, True,
                "the submit path alone: no wake-ups")
    if "latency" in only:
        for suffix, label in [("", "round trip"), ("AfterIdle", "round trip after 2 ms idle")]:
            pb = "latency" if not suffix else "latency_after_idle"
            for peer in ["asio", "tbb", "std_pool"]:
                add(label, f"BM_TaskLatency{suffix}/wharf_thread", "real_time", peer,
                    cxx(f"BM_TaskLatency{suffix}/{peer}", "real_time"),
                    lambda v: f"{v:.1f} µs", False, "ratio: peer time ÷ Wharf time")
            # pool_bench reports µs; the peers seconds.
            for peer, src in [("piscina", node), ("ProcessPoolExecutor", py)]:
                v = src.get(pb, {}).get("seconds")
                wname = f"BM_TaskLatency{suffix}/" + ("wharf_thread" if peer == "piscina"
                                                      else "wharf_process")
                add(label, wname, "real_time", peer, None if v is None else v * 1e6,
                    lambda v: f"{v:.1f} µs", False)
    if "fib" in only:
        for metric, note in [("speedup_over_ideal", ""), ("busy_fraction", "target ≥ 0.98"),
                             ("speedup", "target ≥ asio's and tbb's")]:
            label = f"fib(27) {metric}"
            for peer in ["asio", "tbb", "std_pool"]:
                add(label, "BM_Fib/wharf_thread", metric, peer, cxx(f"BM_Fib/{peer}", metric),
                    fmt_x, True, note)
            # A speed-up over a JS or Python serial loop is not comparable to one
            # over C++'s; speed-up over the ideal and busy fraction are.
            if metric != "speedup":
                add(label, "BM_Fib/wharf_thread", metric, "piscina",
                    node.get("fib", {}).get(metric), fmt_x, True,
                    "JS ideal unreliable: V8 runs the same fib up to 1.5× slower in the "
                    "rate loops than in a worker" if metric == "speedup_over_ideal" else "")
            process_peers = [("asio", cxx("BM_Fib/asio", metric)), ("tbb", cxx("BM_Fib/tbb", metric))]
            if metric != "speedup":
                process_peers.append(("ProcessPoolExecutor", py.get("fib", {}).get(metric)))
            if wharf("BM_Fib/wharf_process", metric)[0] is None:  # one row says why
                peer, v = process_peers[-1] if metric != "speedup" else ("—", None)
                add(label, "BM_Fib/wharf_process", metric, peer, v, fmt_x, True, note)
            else:
                for peer, v in process_peers:
                    add(label, "BM_Fib/wharf_process", metric, peer, v, fmt_x, True, note)
        ideal = w.get("BM_Fib/serial_per_core_ideal", {})
        if "ideal_speedup" in ideal:
            log(f"ideal speed-up (sum of pinned per-core rates / serial rate): "
                f"{ideal['ideal_speedup']:.3f}")

    head = ("workload", "wharf", "wharf figure", "peer", "peer figure", "ratio", "note")
    lines = [f"{cores} cores (nproc={os.cpu_count()}); medians of {a.reps} runs; "
             "ratio > 1: Wharf better", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
    log(f"raw results: {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
