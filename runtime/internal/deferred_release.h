// Internal: DeferRelease — destroys large Buffers on a background thread.
//
// A Buffer in shared memory that was transferred to another process leaves
// its sender's mapping behind, to be unmapped. Unmapping touched memory is
// page-table work proportional to its size (64 MiB: ~1 ms on bare metal,
// 12 ms on the paravirtualised development VM), which would otherwise sit
// on the sending thread's path between PostMessage and its next message.
// Handing it to one process-wide thread keeps a transfer's cost independent
// of its size for the sender too.
//
// Thread-safety: any thread. Never blocks (a queue push). The thread starts
// on first use and lives until the process ends (Wharf worker processes
// end with _exit, which does not wait for it). A child of fork() without
// exec starts its own thread on first use (pthread_atfork).

#ifndef WHARF_RUNTIME_INTERNAL_DEFERRED_RELEASE_H_
#define WHARF_RUNTIME_INTERNAL_DEFERRED_RELEASE_H_

#include "wharf/runtime/buffer.h"

namespace wharf::runtime_internal {

// Buffers smaller than this are destroyed at once (a thread hop costs more).
inline constexpr size_t kDeferReleaseAbove = size_t{1} << 20;

// Destroys `buffer` now if it is small or on the heap, else on the
// background thread.
void DeferRelease(Buffer&& buffer);

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_DEFERRED_RELEASE_H_
