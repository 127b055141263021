// ErrorRecord: an uncaught exception, as a worker reports it to its owner —
// the exception's type name and message — and WorkerError, the exception
// that carries one.
//
//   w->OnError([](const wharf::ErrorRecord& e) {
//     std::fprintf(stderr, "%s\n", e.ToString().c_str());  // "std::runtime_error: boom"
//   });
//
// A record is plain data (two strings), so a process worker can carry it
// across the process boundary unchanged. It is made from whatever was thrown:
// a std::exception gives its dynamic type's name and what() (a null what()
// gives an empty message); a thrown std::string or C string is the message
// of type "std::string" / "const char*"; any other type gives its name and
// an empty message; a WorkerError gives the record it carries (a nested
// worker's error climbs unchanged).
//
// WorkerError is what an owner's loop throws when a worker it started ends
// with an uncaught exception and no OnError handler is set — as in Node, the
// child's unhandled error becomes the owner's own uncaught exception, and so
// climbs to the top owner (whose EventLoop::Run() throws it when it has no
// OnUncaughtException handler). what() is the record's ToString().
//
// Thread-safety: plain values.

#ifndef WHARF_RUNTIME_ERROR_RECORD_H_
#define WHARF_RUNTIME_ERROR_RECORD_H_

#include <exception>
#include <string>

namespace wharf {

struct ErrorRecord {
  std::string type;     // e.g. "std::runtime_error" (demangled)
  std::string message;  // what(), or "" when there is none

  // "type: message", or just the type when the message is empty.
  std::string ToString() const;

  // The record of `e` (see above). Never throws.
  static ErrorRecord Of(std::exception_ptr e) noexcept;

  friend bool operator==(const ErrorRecord&, const ErrorRecord&) = default;
};

class WorkerError : public std::exception {
 public:
  explicit WorkerError(ErrorRecord record)
      : record_(std::move(record)), what_(record_.ToString()) {}
  const ErrorRecord& record() const noexcept { return record_; }
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  ErrorRecord record_;
  std::string what_;
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_ERROR_RECORD_H_
