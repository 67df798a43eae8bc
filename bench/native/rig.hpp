// A manager set up as the native tests do (native_tests/support.hpp, without GoogleTest): a manual
// clock, an executor, a state store whose keys the BackgroundTaskPlugin registered, optionally an
// owner inbox whose receiver the rig holds. Shared by the benchmarks, the memory probe and the
// wasm/native driver (so it compiles with em++ too).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>

#include "bgtasks/bgtasks.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace bgbench {

using namespace bgtasks;

// glibc gives freed memory at the top of its heap back to the kernel, and the next allocations
// fault the pages in again. How much is given back depends on the order in which a torn-down
// manager (or io_context) frees its blocks, not on the work measured: with bgtasks' handle table in
// task order, spawn → complete of 1e4 tasks measured 11.5 ms per repetition with trimming and
// 5.6 ms without. The benchmark processes turn trimming off (and keep blocks up to 32 MiB in the
// heap instead of mmap), for every contender alike. Call first thing in main().
inline void keep_heap_mapped() {
#if defined(__GLIBC__)
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
#endif
}

struct Rig {
  ManualClock clock{1'000'000};
  Executor exec{clock};
  std::shared_ptr<StateStore> store = std::make_shared<StateStore>();
  std::optional<InboxReceiver> inbox;
  std::shared_ptr<BackgroundTaskManager> manager;  // declared last: destroyed first

  explicit Rig(bool with_inbox = false, ManagerOptions options = {}) {
    manager = std::make_shared<BackgroundTaskManager>(exec, std::move(options));
    if (with_inbox) {
      auto [tx, rx] = inbox_channel();
      inbox.emplace(std::move(rx));
      manager->set_owner_inbox(std::move(tx));
    }
    (void)manager->set_store(store);  // a new manager's first store: never refused
    auto plugin = std::make_shared<BackgroundTaskPlugin>(manager);
    auto env = ExecutionEnv::from_plugins({plugin});
    if (!env.ok() || !store->register_keys(env->key_registrations).ok()) {
      std::fprintf(stderr, "bench rig: plugin key registration failed\n");
      std::abort();
    }
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;
  ~Rig() { manager.reset(); }

  BackgroundTaskManager& m() { return *manager; }
};

// Options for the scheduling rows: a per-thread limit (most spawns wait in the queue), or none.
inline ManagerOptions limited_options(std::size_t per_thread) {
  ManagerOptions o;
  o.concurrency.per_thread = per_thread;
  return o;
}
// Every spawn of the deadline rows: a deadline far enough never to fire.
inline SpawnOptions deadline_spawn() { return SpawnOptions{"t", "job", std::nullopt, "d", {}, 60'000}; }

// The trivial task: a captureless body that co_returns at once (one frame, no holder).
inline const auto kTrivialBody = [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); };

// A live idle task: suspended until its cancellation is requested.
inline const auto kIdleBody = [](TaskContext ctx) -> Co<TaskResult> {
  co_await ctx.cancelled();
  co_return TaskResult::cancelled();
};

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "bench check failed: %s\n", what);
  std::abort();
}

}  // namespace bgbench
