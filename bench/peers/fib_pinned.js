// One core's fib rate for piscina_bench.js's ideal:
//   node fib_pinned.js CPU N START_MS WINDOW_MS
// pins its main thread to CPU (taskset -p on its own thread id, after start-
// up: V8's helper threads, already running, stay free to run anywhere, as a
// Piscina worker's do), warms up, waits until START_MS (epoch ms), runs
// fib(N) for WINDOW_MS, and prints {"rate": tasks per second}.
'use strict';
const { execFileSync } = require('node:child_process');
const { fib } = require('./piscina_worker.js');

const [cpu, n, startMs, windowMs] = process.argv.slice(2).map(Number);
execFileSync('taskset', ['-pc', String(cpu), String(process.pid)], { stdio: 'ignore' });
// Warm up first (a fresh isolate runs fib interpreted until it is hot), then
// spin to the common start.
const warmUntil = Math.min(Date.now() + 150, startMs - 20);
do { fib(n); } while (Date.now() < warmUntil);
while (Date.now() < startMs) { /* spin */ }
const t0 = process.hrtime.bigint();
const until = t0 + BigInt(windowMs) * 1000000n;
let done = 0;
let now;
do {
  fib(n);
  ++done;
  now = process.hrtime.bigint();
} while (now < until);
process.stdout.write(JSON.stringify({ rate: done / (Number(now - t0) / 1e9) }) + '\n');
