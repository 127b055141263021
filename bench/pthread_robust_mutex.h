// PthreadRobustMutex: the peer Wharf's Mutex is meant to beat — a pthread
// mutex made robust and process-shared (what a C++ user reaches for today to
// lock across processes and survive an owner's death). Aborts on failure:
// benchmarks only.
#ifndef WHARF_BENCH_PTHREAD_ROBUST_MUTEX_H_
#define WHARF_BENCH_PTHREAD_ROBUST_MUTEX_H_

#include <pthread.h>

#include <cstdlib>

namespace wharf::bench {

struct PthreadRobustMutex {
  pthread_mutex_t mu;
  PthreadRobustMutex() {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (pthread_mutex_init(&mu, &attr) != 0) std::abort();
    pthread_mutexattr_destroy(&attr);
  }
  ~PthreadRobustMutex() { pthread_mutex_destroy(&mu); }
  PthreadRobustMutex(const PthreadRobustMutex&) = delete;
  PthreadRobustMutex& operator=(const PthreadRobustMutex&) = delete;
  void lock() {
    if (pthread_mutex_lock(&mu) != 0) std::abort();
  }
  void unlock() { pthread_mutex_unlock(&mu); }
};

}  // namespace wharf::bench

#endif  // WHARF_BENCH_PTHREAD_ROBUST_MUTEX_H_
