// A native host of bgtasks: one thread drives the poll loop on the system clock; coroutine tasks
// stream output and progress; a host-driven task is completed by a worker std::thread through
// Executor::post (the one thread-safe call); one task is cancelled; a snapshot ends the run.
//
// The loop: poll, print what the owner inbox holds, then either stop (nothing ready, no timer
// armed, nothing running) or sleep until the next timer deadline — woken early by the executor's
// wake callback when there is work (the worker's post, here).
#include <bgtasks/bgtasks.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

using namespace bgtasks;

namespace {

// The polling thread sleeps here; the executor's wake callback (any thread) wakes it.
class Wakeup {
 public:
  void notify() {
    {
      std::lock_guard lock(mutex_);
      pending_ = true;
    }
    cv_.notify_one();
  }
  // Sleeps until `deadline_ms` (on `exec`'s clock; forever without one) or until notify().
  void wait(const Executor& exec, std::optional<std::uint64_t> deadline_ms) {
    std::unique_lock lock(mutex_);
    if (deadline_ms) {
      const std::uint64_t now = exec.now_ms();
      if (*deadline_ms > now)
        cv_.wait_for(lock, std::chrono::milliseconds(*deadline_ms - now), [&] { return pending_; });
    } else {
      cv_.wait(lock, [&] { return pending_; });
    }
    pending_ = false;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool pending_ = false;
};

}  // namespace

int main() {
  SystemClock clock;
  Executor exec{clock};
  // The store, the manager, its plugin and the owner inbox every task's events go to (rt.events).
  Runtime rt = make_runtime(exec);
  const std::shared_ptr<BackgroundTaskManager>& mgr = rt.manager;
  const std::string thread = "t1";
  const std::uint64_t start = exec.now_ms();
  // Work for the loop — a post from the worker thread, a cancel or spawn from host code, a sooner
  // timer — wakes it; nothing that happens inside a poll does (the loop looks again after it).
  Wakeup wakeup;
  exec.set_wake_callback([&wakeup] { wakeup.notify(); });

  // 1. A shell-like job streaming its output lines.
  const TaskId build =
      mgr->spawn({.thread = thread, .type = "shell", .name = "build", .description = "cc -o app"},
                 [](TaskContext ctx) -> Co<TaskResult> {
                   for (const char* line : {"cc -c main.c", "cc -c util.c", "ld -o app main.o util.o"}) {
                     const bool slept = co_await ctx.sleep(100);  // never `if (!co_await ...)`: g++ 12 miscompiles it
                     if (!slept) co_return TaskResult::cancelled();
                     ctx.emit("line", {{"text", line}});
                   }
                   co_return TaskResult::success({{"exit_code", 0}});
                 })
          .value();  // value(): throws bad_result_access naming the error, were the spawn refused

  // 2. A download reporting progress.
  const TaskId download =
      mgr->spawn({.thread = thread, .type = "download", .name = "model", .description = "fetch weights.bin"},
                 [](TaskContext ctx) -> Co<TaskResult> {
                   for (int pct = 25; pct <= 100; pct += 25) {
                     const bool slept = co_await ctx.sleep(60);
                     if (!slept) co_return TaskResult::cancelled();
                     ctx.emit("progress", {{"pct", pct}});
                   }
                   co_return TaskResult::success({{"bytes", 4096}});
                 })
          .value();

  // 3. A watcher that would run for a minute: cancelled once the build is done.
  const TaskId watch =
      mgr->spawn({.thread = thread, .type = "watch", .name = "watch", .description = "watch src/ for changes"},
                 [](TaskContext ctx) -> Co<TaskResult> {
                   const bool slept = co_await ctx.sleep(60'000);  // false: cancelled early
                   if (!slept) co_return TaskResult::cancelled();
                   co_return TaskResult::success(nullptr);
                 })
          .value();

  // 4. A coroutine that waits for another task to end (a child of the build, by lineage).
  TaskParentContext after_build;
  after_build.task_id = build;
  const TaskId package =
      mgr->spawn({.thread = thread,
                  .type = "shell",
                  .name = "package",
                  .description = "tar the build",
                  .parent_context = after_build},
                 [m = mgr.get(), build](TaskContext ctx) -> Co<TaskResult> {
                   std::optional<TaskSummary> done = co_await m->wait(build);
                   ctx.emit("line", {{"text", std::string("build ended ") + as_str(done->status) + ", packaging"}});
                   co_return TaskResult::success({{"archive", "app.tar"}});
                 })
          .value();

  // 5. A host-driven task: its work runs on a worker thread, which hands the outcome back to the
  //    polling thread with Executor::post — the manager itself is only touched there.
  const TaskId checksum =
      mgr->spawn_host(
             {.thread = thread, .type = "host", .name = "checksum", .description = "sha256 on a worker thread"})
          .value();
  std::thread worker([&exec, m = mgr, checksum] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));  // the "work"
    const std::string digest = "9f86d081884c7d65";
    exec.post([m, checksum, digest] {
      m->emit(checksum, "progress", {{"pct", 100}});
      if (auto r = m->complete(checksum, {{"sha256", digest}}); !r)
        std::cerr << "complete: " << r.error().message << '\n';
    });  // wakes the loop through the wake callback
  });

  std::cout << "spawned build=" << build << " download=" << download << " watch=" << watch << " package=" << package
            << " checksum=" << checksum << '\n';

  bool watch_cancelled = false;
  for (;;) {
    exec.poll();
    for (const json& ev : rt.events.drain()) {
      std::cout << "[+" << (exec.now_ms() - start) << "ms] event " << ev.dump() << '\n';
      if (!watch_cancelled && ev["kind"] == "completed" && ev["task_id"] == build) {
        watch_cancelled = true;
        std::cout << "cancel(" << watch << ") -> " << std::boolalpha << mgr->cancel(watch) << '\n';
      }
    }
    if (exec.has_ready()) continue;
    if (exec.idle() && !mgr->has_running(thread)) break;  // no timer, nothing left that could post
    if (exec.now_ms() - start > 10'000) {
      std::cerr << "gave up after 10 s\n";
      worker.join();
      return 1;
    }
    wakeup.wait(exec, exec.next_deadline());  // a real sleep until the next timer, or a wake-up
  }
  worker.join();
  exec.set_wake_callback(nullptr);

  std::cout << "final tasks:\n";
  for (const TaskSummary& s : mgr->list(thread))
    std::cout << "  " << s.task_id << ' ' << s.task_type << ' ' << as_str(s.status) << '\n';
  std::cout << "stats " << mgr->stats().to_json().dump() << '\n';
  std::cout << "snapshot " << mgr->snapshot_json(thread) << '\n';
  std::cout << "elapsed " << (exec.now_ms() - start) << " ms\n";
  return 0;
}
