// A ready runtime in one call: a state store with the plugin's keys, a manager bound to it with an
// owner inbox, the inbox's receiving end, the plugin and the `cancel_task` tool.
//
//   bgtasks::ManualClock clock;             // or SystemClock
//   bgtasks::Executor exec(clock);
//   auto rt = bgtasks::make_runtime(exec, {.retain_finished = 100, .owner_inbox = {.capacity = 1024}});
//   rt.manager->spawn({.thread = "t1", .type = "shell", .description = "build"}, body);
//   exec.run_until_idle();
//   for (const json& event : rt.events.drain()) { … }
//
// The pieces stay available for awaken-style composition (StateStore, BackgroundTaskManager,
// set_store, set_owner_inbox, install_plugin, ExecutionEnv): docs/cpp-api.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "bgtasks/executor.hpp"
#include "bgtasks/inbox.hpp"
#include "bgtasks/manager.hpp"
#include "bgtasks/plugin.hpp"
#include "bgtasks/result.hpp"
#include "bgtasks/state_store.hpp"
#include "bgtasks/tool.hpp"

namespace bgtasks {

// ManagerOptions' fields, then the owner inbox's capacity and overflow policy.
struct RuntimeOptions {
  // (Every field has a default member initialiser, for designated initialisers under -Wextra.)
  std::optional<std::size_t> retain_finished = std::nullopt;
  InboxOptions agent_inbox = {};
  ConcurrencyLimits concurrency = {};
  std::optional<std::uint64_t> cancel_grace_ms = std::nullopt;
  // The owner inbox every task's events go to (Runtime::events). Unbounded by default: a host
  // that does not drain it should bound it.
  InboxOptions owner_inbox = {};
};

struct Runtime {
  std::shared_ptr<StateStore> store;               // the plugin's keys registered
  std::shared_ptr<BackgroundTaskManager> manager;  // store and owner inbox set
  InboxReceiver events;                            // the owner inbox: custom and terminal events of every task
  std::shared_ptr<BackgroundTaskPlugin> plugin;    // for ExecutionEnv::from_plugins (phase hooks)
  std::shared_ptr<CancelTaskTool> cancel_tool;     // awaken's `cancel_task` tool on this manager
};

// A fresh store; cannot fail. The runtime may outlive `executor` or go first (docs/lifetime.md).
Runtime make_runtime(Executor& executor, RuntimeOptions options = {});
// On a store of the caller's (shared with other managers, say): the plugin's keys are registered
// unless they are already (another runtime's plugin did). InvalidArgument for a null store, or for
// a store that holds only one of the two keys.
Result<Runtime> make_runtime(Executor& executor, std::shared_ptr<StateStore> store, RuntimeOptions options = {});

}  // namespace bgtasks
