// The tasks of piscina_bench.js, run on Piscina's worker threads.
'use strict';

function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

module.exports = {
  fib,
  // The tiny task: x + 1.
  addOne(x) { return x + 1; },
  // fib(n) and the nanoseconds it took inside the worker (the busy time).
  timedFib(n) {
    const t0 = process.hrtime.bigint();
    const r = fib(n);
    return { r, ns: Number(process.hrtime.bigint() - t0) };
  },
};
