#include "bgtasks/plugin.hpp"

#include "bgtasks/manager.hpp"

namespace bgtasks {

Result<void> StateStore::install_plugin(const Plugin& plugin) {
  PluginRegistrar registrar(plugin.descriptor().name);
  if (auto r = plugin.register_with(registrar); !r) return r;
  return register_keys(registrar.keys);
}

Result<ExecutionEnv> ExecutionEnv::from_plugins(const std::vector<std::shared_ptr<Plugin>>& plugins) {
  ExecutionEnv env;
  for (const auto& plugin : plugins) {
    PluginRegistrar registrar(plugin->descriptor().name);
    if (auto r = plugin->register_with(registrar); !r) return r.error();
    for (auto& k : registrar.keys) env.key_registrations.push_back(std::move(k));
    for (auto& [id, tool] : registrar.tools) {
      if (env.tools.count(id)) return errors::invalid_argument("tool registered twice: " + id);
      env.tools.emplace(id, std::move(tool));
    }
    for (auto& [phase, hooks] : registrar.phase_hooks)
      for (auto& h : hooks) env.phase_hooks[phase].push_back(std::move(h));
  }
  return env;
}

Result<PhaseRuntime> PhaseRuntime::create(std::shared_ptr<StateStore> store) {
  if (!store->is_registered(PendingWorkKey::name))
    if (auto r = store->register_keys({KeyRegistration::of<PendingWorkKey>()}); !r) return r.error();
  return PhaseRuntime(std::move(store));
}

Result<void> PhaseRuntime::run_phase_with_context(const ExecutionEnv& env, const PhaseContext& ctx) const {
  if (ctx.phase == Phase::RunStart) store_->clear_run_scoped();
  auto it = env.phase_hooks.find(ctx.phase);
  if (it == env.phase_hooks.end()) return {};
  for (const auto& hook : it->second) {
    auto batch = hook(ctx);
    if (!batch) return batch.error();
    if (auto r = store_->commit(std::move(*batch)); !r) return r;
  }
  return {};
}

Result<BackgroundTaskPlugin> BackgroundTaskPlugin::with_store(std::shared_ptr<BackgroundTaskManager> manager,
                                                              std::shared_ptr<StateStore> store) {
  if (auto r = manager->set_store(std::move(store)); !r) return std::move(r).error();
  return BackgroundTaskPlugin(std::move(manager));
}

Result<void> BackgroundTaskPlugin::bind_runtime_context(std::shared_ptr<StateStore> store,
                                                        std::optional<InboxSender> owner_inbox) const {
  if (auto r = manager_->set_store(std::move(store)); !r) return r;
  if (owner_inbox) manager_->set_owner_inbox(std::move(*owner_inbox));
  return {};
}

Result<void> BackgroundTaskPlugin::register_with(PluginRegistrar& registrar) const {
  registrar.register_key<BackgroundTaskViewKey>();
  registrar.register_key<BackgroundTaskStateKey>();
  registrar.register_tool(std::make_shared<CancelTaskTool>(manager_));
  auto manager = manager_;
  registrar.register_phase_hook(Phase::RunStart, [manager](const PhaseContext& ctx) -> Result<MutationBatch> {
    const auto* persisted = ctx.snapshot.get<BackgroundTaskStateKey>();
    manager->restore_for_thread(ctx.run_identity.thread_id, persisted ? *persisted : BackgroundTaskStateSnapshot{});
    return MutationBatch{};
  });
  // The manager commits every change itself; nothing is left to persist at RunEnd.
  registrar.register_phase_hook(Phase::RunEnd,
                                [](const PhaseContext&) -> Result<MutationBatch> { return MutationBatch{}; });
  registrar.register_phase_hook(Phase::StepEnd, [manager](const PhaseContext& ctx) -> Result<MutationBatch> {
    MutationBatch batch;
    batch.update<PendingWorkKey>(manager->has_running(ctx.run_identity.thread_id));
    return batch;
  });
  return {};
}

}  // namespace bgtasks
