// InitProcess: the first line of a program whose Workers may be processes.
//
//   int main(int argc, char** argv) {
//     wharf::InitProcess(argc, argv);  // a process worker never returns from here
//     ...                              // the program itself
//   }
//
// A process Worker (WorkerOptions::isolation = kProcess) is this program
// (or WorkerOptions::executable) started again with a command line that
// names the entry to run. InitProcess recognises that command line: in a
// worker it attaches to the channel its owner made, runs the registered
// entry (WHARF_WORKER_ENTRY / WorkerRegistry — registered at static
// initialisation, so before main) exactly as a thread worker runs, and ends
// the process with the worker's exit code; it never returns there. In any
// other process it returns at once and does nothing. Call it before
// anything else in main: before threads are started, arguments parsed or
// output written (the worker's stdout and stderr are the owner's).
//
// What a worker process does besides running the entry: it dies with its
// owner (PR_SET_PDEATHSIG, SIGKILL, re-checked after it is set), applies
// WorkerOptions::resource_limits to itself before the entry runs, watches
// for Terminate() (a thread waiting on the link's terminate word), and
// writes its exit record (code, uncaught exception) where the owner reads it
// after reaping it.
//
// Errors: a malformed worker command line, an entry that is not registered
// in this executable, or a link that cannot be attached (another Wharf
// version) end the process with exit code 70 and a message on stderr — the
// owner's OnError/OnExit report it.
//
// WHARF_MAIN() { ... } defines main with InitProcess already called (argc
// and argv are in scope).

#ifndef WHARF_RUNTIME_INIT_PROCESS_H_
#define WHARF_RUNTIME_INIT_PROCESS_H_

namespace wharf {

void InitProcess(int argc, char** argv);

// True in a process started as a process worker (after InitProcess).
bool IsProcessWorker();

}  // namespace wharf

#define WHARF_MAIN()                                     \
  static int wharf_main_body(int argc, char** argv);     \
  int main(int argc, char** argv) {                      \
    ::wharf::InitProcess(argc, argv);                    \
    return wharf_main_body(argc, argv);                  \
  }                                                      \
  static int wharf_main_body([[maybe_unused]] int argc, [[maybe_unused]] char** argv)

#endif  // WHARF_RUNTIME_INIT_PROCESS_H_
