#include "wharf/runtime/internal/worker_runner.h"

#include <memory>
#include <utility>

#include "wharf/runtime/worker.h"

namespace wharf {
namespace {
thread_local WorkerContext* tls_context = nullptr;
}  // namespace

bool IsMainActor() { return tls_context == nullptr; }
uint64_t CurrentActorId() { return tls_context == nullptr ? 0 : tls_context->id(); }

namespace runtime_internal {

void WorkerControl::Decide(int code) {
  MutexLock lock(mu_);
  if (!decided_.has_value()) decided_ = code;
}

void WorkerControl::RequestTerminate() {
  {
    MutexLock lock(mu_);
    if (!decided_.has_value()) decided_ = 1;
    if (loop_ != nullptr) loop_->Stop();
  }
  interrupter_.Request();
}

void WorkerControl::RequestExit(int code) {
  MutexLock lock(mu_);
  if (!decided_.has_value()) decided_ = code;
  if (loop_ != nullptr) loop_->Stop();
}

bool WorkerControl::terminating() const {
  if (interrupter_.requested()) return true;
  MutexLock lock(mu_);
  return decided_.has_value();
}

bool WorkerControl::AttachLoop(EventLoop* loop) {
  MutexLock lock(mu_);
  if (interrupter_.requested()) return false;
  loop_ = loop;
  return true;
}

void WorkerControl::DetachLoop() {
  MutexLock lock(mu_);
  loop_ = nullptr;
}

void WorkerControl::RecordUncaught(std::exception_ptr e) noexcept {
  bool ours = false;
  try {
    std::rethrow_exception(e);
  } catch (const Interrupted&) {
    ours = interrupter_.requested();
  } catch (...) {
  }
  ErrorRecord record = ours ? ErrorRecord{} : ErrorRecord::Of(e);
  MutexLock lock(mu_);
  if (decided_.has_value()) return;
  decided_ = 1;
  if (!ours) error_ = std::move(record);
}

WorkerExitRecord WorkerControl::Finish() {
  MutexLock lock(mu_);
  WorkerExitRecord r;
  // A Terminate that reached this worker from another process while it was
  // ending on its own decides as if it had been seen first (a thread
  // worker's Terminate decides synchronously).
  if (!decided_.has_value() && terminated_elsewhere_ && terminated_elsewhere_()) decided_ = 1;
  r.code = decided_.value_or(0);
  r.error = error_;
  return r;
}

// A friend of WorkerContext (its constructor is private).
WorkerExitRecord RunWorkerEntry(WorkerFunction entry, MessagePort port, Value data, uint64_t id,
                                std::string name, WorkerControl& control,
                                absl::AnyInvocable<void()> on_online,
                                std::vector<std::string> argv) {
  {
    EventLoop loop;
    std::unique_ptr<WorkerContext> ctx(new WorkerContext(control, std::move(port), std::move(data),
                                                         loop, id, std::move(name)));
    ctx->argv_ = std::move(argv);
    tls_context = ctx.get();
    if (control.AttachLoop(&loop)) {
      // The entry and every loop callback: their Wharf waits are
      // interruption points of Terminate(). Teardown below is not.
      InterruptibleScope interruptible(control.interrupter());
      if (on_online) on_online();
      loop.OnUncaughtException([&control, &loop](std::exception_ptr e) {
        control.RecordUncaught(std::move(e));
        loop.Stop();
      });
      loop.Post([&entry, &ctx] {
        WorkerFunction fn = std::move(entry);
        fn(*ctx);
      });
      loop.Run();
    }
    control.DetachLoop();
    ctx->parent_port().Close();
    ctx.reset();  // the port (started on `loop`) goes before the loop
    tls_context = nullptr;
    entry = nullptr;
  }  // the worker loop: closures still queued are destroyed unrun
  return control.Finish();
}


}  // namespace runtime_internal

void WorkerContext::Exit(int code) {
  control_.RequestExit(code);
  port_.Close();
}

void WorkerContext::ExitNow(int code) {
  Exit(code);
  control_.interrupter().Request();  // every later wait of this worker throws too
  throw Interrupted();
}

bool WorkerContext::terminating() const { return control_.terminating(); }

}  // namespace wharf
