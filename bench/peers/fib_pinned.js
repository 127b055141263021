// One core's fib rate for piscina_bench.js's ideal: started pinned (taskset
// -c CPU), warms up, waits until START_MS (epoch ms), runs fib(N) for
// WINDOW_MS, and prints {"rate": tasks per second}.
'use strict';
const { fib } = require('./piscina_worker.js');

const [n, startMs, windowMs] = process.argv.slice(2).map(Number);
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
