// awaken's plugin surface, as much as BackgroundTaskPlugin needs: a registrar for keys, tools and
// phase hooks; ExecutionEnv built from plugins; PhaseRuntime running a phase's hooks and
// committing what they return.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bgtasks/inbox.hpp"
#include "bgtasks/result.hpp"
#include "bgtasks/state_store.hpp"
#include "bgtasks/tool.hpp"

namespace bgtasks {

class BackgroundTaskManager;

enum class Phase : std::uint8_t {
  RunStart,
  StepStart,
  BeforeInference,
  AfterInference,
  BeforeToolExecute,
  AfterToolExecute,
  StepEnd,
  RunEnd
};

struct PhaseContext {
  Phase phase;
  StoreSnapshot snapshot;
  RunIdentity run_identity;
  PhaseContext(Phase p, StoreSnapshot s) : phase(p), snapshot(std::move(s)) {}
  PhaseContext&& with_run_identity(RunIdentity id) && {
    run_identity = std::move(id);
    return std::move(*this);
  }
};

// A hook returns the mutations to commit (an empty batch for none).
using PhaseHook = std::function<Result<MutationBatch>(const PhaseContext&)>;

struct PluginDescriptor {
  std::string name;
};

struct AgentSpec {
  std::string id;
};

class PluginRegistrar {
 public:
  explicit PluginRegistrar(std::string plugin_name) : plugin_(std::move(plugin_name)) {}
  template <class K>
  void register_key() {
    keys.push_back(KeyRegistration::of<K>(plugin_));
  }
  void register_tool(std::shared_ptr<Tool> tool) { tools[tool->descriptor().id] = std::move(tool); }
  void register_phase_hook(Phase phase, PhaseHook hook) { phase_hooks[phase].push_back(std::move(hook)); }

  std::vector<KeyRegistration> keys;
  std::map<std::string, std::shared_ptr<Tool>, std::less<>> tools;
  std::map<Phase, std::vector<PhaseHook>> phase_hooks;

 private:
  std::string plugin_;
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual PluginDescriptor descriptor() const = 0;
  virtual Result<void> register_with(PluginRegistrar& registrar) const = 0;
  virtual Result<void> on_activate(const AgentSpec&, MutationBatch&) const { return {}; }
};

struct ExecutionEnv {
  std::vector<KeyRegistration> key_registrations;
  std::map<std::string, std::shared_ptr<Tool>, std::less<>> tools;
  std::map<Phase, std::vector<PhaseHook>> phase_hooks;
  static Result<ExecutionEnv> from_plugins(const std::vector<std::shared_ptr<Plugin>>& plugins);
};

class PhaseRuntime {
 public:
  // Registers the runtime's own keys (PendingWorkKey) in the store.
  static Result<PhaseRuntime> create(std::shared_ptr<StateStore> store);
  // RunStart clears Run-scoped values first; then each hook of the phase runs and its batch is
  // committed.
  Result<void> run_phase_with_context(const ExecutionEnv& env, const PhaseContext& ctx) const;
  const std::shared_ptr<StateStore>& store() const noexcept { return store_; }

 private:
  explicit PhaseRuntime(std::shared_ptr<StateStore> store) : store_(std::move(store)) {}
  std::shared_ptr<StateStore> store_;
};

class BackgroundTaskPlugin final : public Plugin {
 public:
  static constexpr std::string_view kName = "background_tasks";
  explicit BackgroundTaskPlugin(std::shared_ptr<BackgroundTaskManager> manager) : manager_(std::move(manager)) {}
  // awaken's with_store: binds the store to the manager. A manager keeps its first store: another
  // one is InvalidArgument (set_store's answer).
  static Result<BackgroundTaskPlugin> with_store(std::shared_ptr<BackgroundTaskManager> manager,
                                                 std::shared_ptr<StateStore> store);
  const std::shared_ptr<BackgroundTaskManager>& manager() const noexcept { return manager_; }
  // awaken's bind_runtime_context: set_store, plus set_owner_inbox when given (not when the store
  // was refused).
  Result<void> bind_runtime_context(std::shared_ptr<StateStore> store, std::optional<InboxSender> owner_inbox) const;

  PluginDescriptor descriptor() const override { return {std::string(kName)}; }
  // Keys `background_tasks` and `background_task_state`, the tool `cancel_task`, and hooks:
  // RunStart restores the thread's persisted tasks, RunEnd is a no-op (the manager commits
  // directly), StepEnd sets PendingWorkKey to has_running(thread).
  Result<void> register_with(PluginRegistrar& registrar) const override;

 private:
  std::shared_ptr<BackgroundTaskManager> manager_;
};

}  // namespace bgtasks
