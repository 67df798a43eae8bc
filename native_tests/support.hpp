// Shared fixtures for the native suite: awaken's manager_with_store / manager_with_store_and_inbox
// on a manual clock, and helpers that drive the executor. No wall-clock sleeps anywhere.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>

#include "bgtasks/bgtasks.hpp"

namespace bgtasks::testing {

struct Harness {
  ManualClock clock{1'000'000};
  Executor exec{clock};
  std::shared_ptr<StateStore> store = std::make_shared<StateStore>();
  std::optional<InboxReceiver> inbox;              // owner inbox receiver, when the fixture has one
  std::shared_ptr<BackgroundTaskManager> manager;  // declared last: destroyed first

  Harness() = default;
  Harness(const Harness&) = delete;
  ~Harness() { manager.reset(); }

  // awaken's "tokio::time::sleep(ms)" in a test: run everything ready, then let `ms` of manual
  // time pass, stopping at every timer deadline on the way and running what it woke.
  void run_for(std::uint64_t ms) {
    const std::uint64_t target = clock.now_ms() + ms;
    exec.run_until_idle();
    while (auto d = exec.next_deadline()) {
      if (*d > target) break;
      exec.set_time(*d);
      exec.run_until_idle();
    }
    exec.set_time(target);
    exec.run_until_idle();
  }
  void run_until_idle() { exec.run_until_idle(); }
  std::vector<json> drain() { return inbox ? inbox->drain() : std::vector<json>{}; }
};

// Manager with a store whose keys the plugin registered (awaken's manager_with_store).
inline std::unique_ptr<Harness> manager_with_store() {
  auto h = std::make_unique<Harness>();
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  auto plugin = std::make_shared<BackgroundTaskPlugin>(h->manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  EXPECT_TRUE(env.ok());
  EXPECT_TRUE(h->store->register_keys(env->key_registrations).ok());
  return h;
}

// The same, with an owner inbox whose receiver the harness holds.
inline std::unique_ptr<Harness> manager_with_store_and_inbox() {
  auto h = std::make_unique<Harness>();
  auto [tx, rx] = inbox_channel();
  h->inbox.emplace(std::move(rx));
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  h->manager->set_owner_inbox(std::move(tx));
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  auto plugin = std::make_shared<BackgroundTaskPlugin>(h->manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  EXPECT_TRUE(env.ok());
  EXPECT_TRUE(h->store->register_keys(env->key_registrations).ok());
  return h;
}

inline PersistedTaskMeta make_meta(std::string id, std::string owner, TaskStatus status,
                                   std::string task_type = "shell", std::string description = "desc") {
  PersistedTaskMeta m;
  m.task_id = std::move(id);
  m.owner_thread_id = std::move(owner);
  m.task_type = std::move(task_type);
  m.description = std::move(description);
  m.status = status;
  m.created_at_ms = 100;
  if (is_terminal(status)) m.completed_at_ms = 200;
  return m;
}

// A body that waits for cancellation (awaken's `ctx.cancel_token.cancelled().await; Cancelled`).
inline Co<TaskResult> wait_cancelled(TaskContext ctx) {
  co_await ctx.cancelled();
  co_return TaskResult::cancelled();
}

inline Co<TaskResult> finish_at_once(TaskContext) { co_return TaskResult::success(nullptr); }

inline TaskParentContext child_of(const TaskId& parent) {
  TaskParentContext p;
  p.task_id = parent;
  return p;
}

inline TaskParentContext of_run(std::string_view run) {
  TaskParentContext p;
  p.run_id = run;
  return p;
}

// A task on `owner` whose body waits for cancellation.
inline TaskId spawn_waiting(Harness& h, std::optional<std::string_view> name, TaskParentContext parent,
                            std::string_view owner = "thread-1") {
  auto id = h.manager->spawn(owner, "worker", name, "waits for cancel", std::move(parent), wait_cancelled);
  EXPECT_TRUE(id.ok());
  return id.ok() ? *id : TaskId();
}

}  // namespace bgtasks::testing
