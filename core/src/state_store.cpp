#include "bgtasks/state_store.hpp"

namespace bgtasks {

void MutationBatch::append(MutationBatch other) {
  for (auto& op : other.ops_) ops_.push_back(std::move(op));
}

Result<void> StateStore::register_keys(const std::vector<KeyRegistration>& keys) {
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (is_registered(keys[i].name)) return errors::invalid_argument("key already registered: " + keys[i].name);
    for (std::size_t j = 0; j < i; ++j)
      if (keys[j].name == keys[i].name) return errors::invalid_argument("key registered twice: " + keys[i].name);
  }
  for (const auto& k : keys) registry_.keys_by_name.emplace(k.name, k);
  return {};
}

Result<void> StateStore::uninstall_plugin(std::string_view plugin_name) {
  bool found = false;
  for (auto it = registry_.keys_by_name.begin(); it != registry_.keys_by_name.end();) {
    if (it->second.plugin == plugin_name) {
      values_.erase(it->first);
      it = registry_.keys_by_name.erase(it);
      found = true;
    } else {
      ++it;
    }
  }
  drop_slot_cache();
  if (!found) return errors::invalid_argument("plugin not installed: " + std::string(plugin_name));
  ++version_;
  return {};
}

Result<void> StateStore::run_hook(std::string_view key) {
  const std::vector<std::string_view> keys{key};
  const auto hook = hook_;
  return (*hook)(keys);
}

Result<StateStore::Slot*> StateStore::writable_slot_slow(std::string_view key) {
  if (!is_registered(key)) return errors::unknown_key(key);
  auto it = values_.find(key);
  if (it == values_.end()) it = values_.emplace(std::string(key), Slot{}).first;
  cached_key_ = key;
  cached_slot_ = &it->second;
  return &it->second;
}

Result<void> StateStore::commit(MutationBatch batch) {
  std::vector<std::string_view> keys;
  for (const auto& op : batch.ops_) {
    if (!is_registered(op.key)) return errors::unknown_key(op.key);
    keys.push_back(op.key);
  }
  if (hook_ && !batch.ops_.empty()) {
    const auto hook = hook_;  // it may replace itself
    if (auto r = (*hook)(keys); !r) return r.error();
    // It may also have uninstalled a key of the batch: then nothing is applied.
    for (const auto& op : batch.ops_)
      if (!is_registered(op.key)) return errors::unknown_key(op.key);
  }
  for (auto& op : batch.ops_) {
    auto it = values_.find(op.key);
    if (it == values_.end()) it = values_.emplace(op.key, Slot{}).first;
    op.apply(it->second.value);
    it->second.version = version_ + 1;
  }
  if (!batch.ops_.empty()) ++version_;
  return {};
}

StoreSnapshot StateStore::snapshot() const {
  StoreSnapshot s;
  for (const auto& [k, v] : values_)
    if (v.value.has_value()) s.values_.emplace(k, v.value);
  return s;
}

void StateStore::clear_run_scoped() {
  drop_slot_cache();
  for (const auto& [name, reg] : registry_.keys_by_name)
    if (reg.options.scope == KeyScope::Run) values_.erase(name);
  ++version_;
}

}  // namespace bgtasks
