// The Node peer of bench/pool_bench: the same workloads on Piscina (worker
// threads), one JSON object per line on stdout:
//
//   tiny        10⁵ pool.run(x) of x + 1, submitted one by one, then
//               Promise.all: items_per_second (and submit_per_second).
//   latency     one pool.run on a pool with nothing else to do, awaited,
//               back to back: seconds per round trip.
//   latency_after_idle  the same after 2 ms with nothing to do.
//   fib         100 × cores tasks of fib(27), one by one, then Promise.all;
//               serial rate (this thread) and ideal (one process per CPU,
//               its main thread pinned with taskset, all at once: the sum of
//               their rates)
//               measured just before and just after each run: speedup,
//               speedup_over_ideal, busy_fraction (time inside tasks,
//               timed by the task, / (threads × wall)).
//
//   node bench/peers/piscina_bench.js [--reps=3] [--only=tiny,latency,fib]
//
// The pool has one thread per CPU (os.availableParallelism()), all started
// before the timing (minThreads = maxThreads), and an unbounded queue.
'use strict';

const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawn } = require('node:child_process');
const { Piscina } = require('piscina');
const { fib } = require('./piscina_worker.js');

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const [k, v] = a.replace(/^--/, '').split('=');
  return [k, v ?? '1'];
}));
const reps = Number(args.reps ?? 3);
const only = new Set((args.only ?? 'tiny,latency,fib').split(','));

const kTinyTasks = 100000;
const kFibN = 27;
const kFibTasksPerCore = 100;
const kRateWindowMs = 200;  // several tasks of JS fib(27) (2–5 ms here)
const cores = os.availableParallelism();

const now = () => process.hrtime.bigint();
const seconds = (t0, t1) => Number(t1 - t0) / 1e9;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const emit = (o) => process.stdout.write(JSON.stringify({ peer: 'piscina', cores, ...o }) + '\n');

function makePool() {
  return new Piscina({
    filename: path.join(__dirname, 'piscina_worker.js'),
    minThreads: cores,
    maxThreads: cores,
    maxQueue: Infinity,
    idleTimeout: 60000,
  });
}

// Every thread started: a round of `cores` slow-ish tasks in flight at once.
async function warm(pool) {
  await Promise.all(Array.from({ length: 4 * cores }, () => pool.run(20, { name: 'fib' })));
}

async function tiny(pool) {
  const rates = [];
  const submits = [];
  for (let rep = 0; rep <= reps; ++rep) {  // rep 0: warm-up, not reported
    const t0 = now();
    const ps = new Array(kTinyTasks);
    for (let i = 0; i < kTinyTasks; ++i) ps[i] = pool.run(i, { name: 'addOne' });
    const t1 = now();
    const rs = await Promise.all(ps);
    const t2 = now();
    for (let i = 0; i < kTinyTasks; ++i) {
      if (rs[i] !== i + 1) throw new Error(`tiny task ${i} returned ${rs[i]}`);
    }
    if (rep === 0) continue;
    rates.push(kTinyTasks / seconds(t0, t2));
    submits.push(kTinyTasks / seconds(t0, t1));
  }
  emit({ bench: 'tiny', items_per_second: median(rates), submit_per_second: median(submits),
         runs: rates });
}

async function latency(pool, afterIdle) {
  const iterations = afterIdle ? 500 : 5000;
  const perRep = [];
  for (let rep = 0; rep < reps; ++rep) {
    let total = 0;
    for (let i = 0; i < iterations; ++i) {
      if (afterIdle) await sleep(2);
      const t0 = now();
      const r = await pool.run(i, { name: 'addOne' });
      total += seconds(t0, now());
      if (r !== i + 1) throw new Error(`latency task returned ${r}`);
    }
    perRep.push(total / iterations);
  }
  emit({ bench: afterIdle ? 'latency_after_idle' : 'latency', seconds: median(perRep), runs: perRep });
}

function serialRate() {
  const t0 = now();
  const until = t0 + BigInt(kRateWindowMs) * 1000000n;
  let done = 0;
  let t;
  do {
    fib(kFibN);
    ++done;
    t = now();
  } while (t < until);
  return done / seconds(t0, t);
}

function allowedCpus() {
  // taskset -p prints the mask of this process: "... current affinity list: 0,1"
  try {
    const out = execFileSync('taskset', ['-cp', String(process.pid)], { encoding: 'utf8' });
    const list = out.split(':').pop().trim();
    const cpus = [];
    for (const part of list.split(',')) {
      const [a, b] = part.split('-').map(Number);
      for (let c = a; c <= (b ?? a); ++c) cpus.push(c);
    }
    return cpus;
  } catch {
    return Array.from({ length: cores }, (_, i) => i);
  }
}

// One process per allowed CPU, its main thread pinned, all running fib for
// the same window.
async function pinnedRates(cpus) {
  const startMs = Date.now() + 700;  // after every child has started and warmed up
  const runs = cpus.map((cpu) => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'fib_pinned.js'), String(cpu),
                                           String(kFibN), String(startMs), String(kRateWindowMs)]);
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out).rate)
                                            : reject(new Error(`fib_pinned exited ${code}`))));
  }));
  return Promise.all(runs);
}

async function fibBench(pool) {
  const cpus = allowedCpus();
  const tasks = kFibTasksPerCore * cores;
  const expect = fib(kFibN);
  serialRate();  // warm this thread's fib up (JIT) before measuring it
  const rows = [];
  // The serial and ideal rates just before and just after each run (the
  // VM's speed drifts within seconds).
  const rates = async () => ({
    serial: serialRate(),
    ideal: (await pinnedRates(cpus)).reduce((a, b) => a + b, 0),
  });
  for (let rep = 0; rep < reps; ++rep) {
    const before = await rates();
    const t0 = now();
    const ps = new Array(tasks);
    for (let i = 0; i < tasks; ++i) ps[i] = pool.run(kFibN, { name: 'timedFib' });
    const rs = await Promise.all(ps);
    const wall = seconds(t0, now());
    let busy = 0;
    for (const { r, ns } of rs) {
      if (r !== expect) throw new Error(`fib returned ${r}`);
      busy += ns / 1e9;
    }
    const after = await rates();
    const serial = (before.serial + after.serial) / 2;
    const ideal = (before.ideal + after.ideal) / 2;
    const rate = tasks / wall;
    rows.push({ rate, speedup: rate / serial, speedup_over_ideal: rate / ideal,
                ideal_speedup: ideal / serial, busy_fraction: busy / (cores * wall) });
  }
  const pick = (k) => median(rows.map((r) => r[k]));
  emit({ bench: 'fib', items_per_second: pick('rate'), speedup: pick('speedup'),
         speedup_over_ideal: pick('speedup_over_ideal'), ideal_speedup: pick('ideal_speedup'),
         busy_fraction: pick('busy_fraction'), runs: rows });
}

async function main() {
  const pool = makePool();
  await warm(pool);
  if (only.has('tiny')) await tiny(pool);
  if (only.has('latency')) {
    await latency(pool, false);
    await latency(pool, true);
  }
  if (only.has('fib')) await fibBench(pool);
  await pool.destroy();
}

main().catch((e) => {
  process.stderr.write(`piscina_bench: ${e.stack ?? e}\n`);
  process.exit(1);
});
