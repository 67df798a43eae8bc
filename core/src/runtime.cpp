#include "bgtasks/runtime.hpp"

#include <utility>

namespace bgtasks {

namespace {
Runtime assemble(Executor& executor, std::shared_ptr<StateStore> store, RuntimeOptions& options) {
  ManagerOptions m;
  m.retain_finished = options.retain_finished;
  m.agent_inbox = options.agent_inbox;
  m.concurrency = std::move(options.concurrency);
  m.cancel_grace_ms = options.cancel_grace_ms;
  auto manager = std::make_shared<BackgroundTaskManager>(executor, std::move(m));
  auto [tx, rx] = inbox_channel(options.owner_inbox);
  manager->set_owner_inbox(std::move(tx));
  (void)manager->set_store(store);  // a new manager: its first store, never refused
  auto plugin = std::make_shared<BackgroundTaskPlugin>(manager);
  auto tool = std::make_shared<CancelTaskTool>(manager);
  return Runtime{std::move(store), std::move(manager), std::move(rx), std::move(plugin), std::move(tool)};
}
}  // namespace

Runtime make_runtime(Executor& executor, RuntimeOptions options) {
  auto store = std::make_shared<StateStore>();
  Runtime rt = assemble(executor, std::move(store), options);
  (void)rt.store->install_plugin(*rt.plugin);  // a fresh store has none of the keys
  return rt;
}

Result<Runtime> make_runtime(Executor& executor, std::shared_ptr<StateStore> store, RuntimeOptions options) {
  if (!store) return errors::invalid_argument("make_runtime: the store is null");
  const bool has_state = store->is_registered(BackgroundTaskStateKey::name);
  const bool has_view = store->is_registered(BackgroundTaskViewKey::name);
  if (has_state != has_view)
    return errors::invalid_argument("make_runtime: the store holds only one of the background task plugin's keys");
  Runtime rt = assemble(executor, std::move(store), options);
  if (!has_state)
    if (auto r = rt.store->install_plugin(*rt.plugin); !r) return std::move(r).error();
  return rt;
}

}  // namespace bgtasks
