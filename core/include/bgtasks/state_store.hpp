// A small counterpart of awaken's StateStore: named keys registered by plugins, typed values,
// reducer actions committed in batches. The manager keeps task metadata under
// `background_task_state` (the single source of truth, as in awaken).
#pragma once

#include <any>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bgtasks/result.hpp"
#include "bgtasks/types.hpp"

namespace bgtasks {

class Plugin;

enum class KeyScope : std::uint8_t { Run, Thread };
enum class MergeStrategy : std::uint8_t { Exclusive };

struct StateKeyOptions {
  bool persistent = true;
  KeyScope scope = KeyScope::Run;  // Run-scoped values are cleared at RunStart
  MergeStrategy merge = MergeStrategy::Exclusive;
};

// ---- the keys ------------------------------------------------------------------------------
struct BackgroundTaskStateKey {
  static constexpr std::string_view name = "background_task_state";
  using Value = BackgroundTaskStateSnapshot;
  using Action = BackgroundTaskStateAction;
  static StateKeyOptions options() { return {true, KeyScope::Thread, MergeStrategy::Exclusive}; }
  static void apply(Value& v, Action a) { reduce(v, std::move(a)); }
};

struct BackgroundTaskViewKey {
  static constexpr std::string_view name = "background_tasks";
  using Value = BackgroundTaskView;
  using Action = BackgroundTaskViewAction;
  static StateKeyOptions options() { return {}; }
  static void apply(Value& v, Action a) { reduce(v, std::move(a)); }
};

// awaken's runtime key updated at StepEnd: does this thread still have background work?
struct PendingWorkKey {
  static constexpr std::string_view name = "__runtime.pending_work";
  using Value = bool;
  using Action = bool;
  static StateKeyOptions options() { return {false, KeyScope::Thread, MergeStrategy::Exclusive}; }
  static void apply(Value& v, Action a) { v = a; }
};

struct KeyRegistration {
  std::string name;
  StateKeyOptions options;
  std::function<std::any()> make_default;
  std::string plugin;  // who registered it ("" for the runtime)

  template <class K>
  static KeyRegistration of(std::string plugin = {}) {
    return {std::string(K::name), K::options(), [] { return std::any(typename K::Value{}); }, std::move(plugin)};
  }
};

// ---- batches and snapshots ---------------------------------------------------------------
class MutationBatch {
 public:
  template <class K>
  void update(typename K::Action action) {
    auto shared = std::make_shared<typename K::Action>(std::move(action));
    ops_.push_back({std::string(K::name), [shared](std::any& slot) {
                      if (!slot.has_value()) slot = typename K::Value{};
                      K::apply(*std::any_cast<typename K::Value>(&slot), std::move(*shared));
                    }});
  }
  bool is_empty() const noexcept { return ops_.empty(); }
  std::size_t len() const noexcept { return ops_.size(); }
  void append(MutationBatch other);

 private:
  friend class StateStore;
  struct Op {
    std::string key;
    std::function<void(std::any&)> apply;
  };
  std::vector<Op> ops_;
};

class StoreSnapshot {
 public:
  template <class K>
  const typename K::Value* get() const {
    auto it = values_.find(std::string(K::name));
    return it == values_.end() ? nullptr : std::any_cast<typename K::Value>(&it->second);
  }

 private:
  friend class StateStore;
  std::map<std::string, std::any, std::less<>> values_;
};

struct KeyRegistry {
  std::map<std::string, KeyRegistration, std::less<>> keys_by_name;
};

class StateStore {
 public:
  StateStore() = default;
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Registering a name twice is an error (InvalidArgument); nothing is registered then.
  Result<void> register_keys(const std::vector<KeyRegistration>& keys);
  // Registers the plugin's keys (defined in plugin.cpp).
  Result<void> install_plugin(const Plugin& plugin);
  // Drops every key the named plugin registered, and their values.
  Result<void> uninstall_plugin(std::string_view plugin_name);
  template <class P>
  Result<void> uninstall_plugin() {
    return uninstall_plugin(P::kName);
  }
  bool is_registered(std::string_view key) const { return registry_.keys_by_name.count(key) != 0; }
  const KeyRegistry& registry() const noexcept { return registry_; }

  MutationBatch begin_mutation() const { return {}; }
  // All or nothing: an unregistered key (UnknownKey) or a failing commit hook applies nothing.
  Result<void> commit(MutationBatch batch);
  // One action, without a batch (the manager's hot path). Same rules as commit.
  template <class K>
  Result<void> apply(typename K::Action action) {
    auto slot = writable_slot(K::name);
    if (!slot) return slot.error();
    std::any& v = slot.value()->value;
    if (!v.has_value()) v = typename K::Value{};
    K::apply(*std::any_cast<typename K::Value>(&v), std::move(action));
    slot.value()->version = ++version_;
    return {};
  }

  // Changes the value in place (same rules as commit: registered key, commit hook), without
  // building an action. The manager's spawn and completion paths use it. `change` runs only once
  // the commit is certain to happen.
  template <class K, class F>
  Result<void> modify(F&& change) {
    auto slot = writable_slot(K::name);
    if (!slot) return slot.error();
    std::any& v = slot.value()->value;
    if (!v.has_value()) v = typename K::Value{};
    change(*std::any_cast<typename K::Value>(&v));
    slot.value()->version = ++version_;
    return {};
  }

  // The committed value, or nullptr when the key is unregistered or was never written.
  // The pointer is valid until the next mutation.
  template <class K>
  const typename K::Value* peek() const {
    const Slot* slot = find_slot(K::name);
    if (!slot || !slot->value.has_value()) return nullptr;
    return std::any_cast<typename K::Value>(&slot->value);
  }
  template <class K>
  std::optional<typename K::Value> read() const {
    const auto* v = peek<K>();
    return v ? std::optional<typename K::Value>(*v) : std::nullopt;
  }
  // When the key's value last changed: a store-wide, never repeating stamp (0: never written, or
  // its value was dropped since). Lets a reader keep derived indexes and notice outside writes.
  template <class K>
  std::uint64_t key_version() const {
    const Slot* slot = find_slot(K::name);
    return slot && slot->value.has_value() ? slot->version : 0;
  }
  StoreSnapshot snapshot() const;
  // Clears the values of Run-scoped keys (a run begins).
  void clear_run_scoped();
  std::uint64_t version() const noexcept { return version_; }

  // Fault injection: called before every commit with the key names it touches; an error fails
  // the commit (nothing applied).
  using CommitHook = std::function<Result<void>(const std::vector<std::string_view>& keys)>;
  // May be called from inside the hook: the running hook finishes as it started.
  bool has_commit_hook() const noexcept { return hook_ != nullptr; }
  void set_commit_hook(CommitHook hook) {
    hook_ = hook ? std::make_shared<const CommitHook>(std::move(hook)) : nullptr;
  }

 private:
  struct Slot {
    std::any value;
    std::uint64_t version = 0;  // version_ at its last write
  };
  // The manager touches one key per spawn and per completion: a one-entry cache keyed by the
  // name's address (callers pass K::name, a static constant) skips the map lookups. Map nodes are
  // stable; the cache is dropped whenever a slot or a registration is erased.
  // The hook runs first and the slot is found afterwards: the hook is user code and may register
  // or uninstall keys (which drops the cache) or write values.
  Result<Slot*> writable_slot(std::string_view key) {
    if (hook_) {
      if (!is_registered(key)) return errors::unknown_key(key);
      if (auto r = run_hook(key); !r) return r.error();
    }
    if (key.data() == cached_key_.data() && key.size() == cached_key_.size()) return cached_slot_;
    return writable_slot_slow(key);
  }
  const Slot* find_slot(std::string_view key) const {
    if (key.data() == cached_key_.data() && key.size() == cached_key_.size()) return cached_slot_;
    auto it = values_.find(key);
    return it == values_.end() ? nullptr : &it->second;
  }
  Result<Slot*> writable_slot_slow(std::string_view key);
  Result<void> run_hook(std::string_view key);
  void drop_slot_cache() noexcept {
    cached_key_ = {};
    cached_slot_ = nullptr;
  }
  KeyRegistry registry_;
  std::map<std::string, Slot, std::less<>> values_;
  std::string_view cached_key_;
  Slot* cached_slot_ = nullptr;
  std::shared_ptr<const CommitHook> hook_;
  std::uint64_t version_ = 0;
};

}  // namespace bgtasks
