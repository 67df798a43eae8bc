// Helpers for the awaken_*_test.cpp files, which hold awaken's background-task tests by name
// (TEST(AwakenSeed, <awaken's test name>); docs/awaken-differences.md explains where bgtasks and
// awaken differ).
//
// Translations common to all of those tests:
// - `tokio::time::sleep(N)` in a test is `h->run_for(N)` on the manual clock; a tokio sleep inside
//   a body is `co_await sleep_for(executor, ms)`.
// - Arc<Mutex/Atomic> is std::shared_ptr; SpawnError/SendError variants are Errc codes
//   (docs/behaviour.md); `.await.unwrap()` on a spawn is ASSERT_TRUE(ok()).
// - `serde_json::to_string`/`from_str` is `dump(to_json(x))` / `meta_from_json`/`summary_from_json`
//   (codec.hpp); `persisted_snapshot().len()` is `.tasks.size()`.
// - Rust asserts inside a body (a panic there leaves the task unfinished) are EXPECTs inside the
//   coroutine plus a flag checked afterwards or a Failed result, so the outer assert fails as well.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "support.hpp"

namespace bgtasks {
// Readable gtest output for statuses.
inline void PrintTo(TaskStatus s, std::ostream* os) { *os << as_str(s); }
}  // namespace bgtasks

namespace bgtasks::testing {

// Readable failure output for enums compared as strings.
inline std::string S(TaskStatus s) { return as_str(s); }
inline std::string E(Errc c) { return errc_name(c); }

// make_meta with the given timestamps.
inline PersistedTaskMeta meta_of(std::string id, std::string owner, std::string task_type, std::string description,
                                 TaskStatus status, std::uint64_t created, std::optional<std::uint64_t> completed) {
  auto m = make_meta(std::move(id), std::move(owner), status, std::move(task_type), std::move(description));
  m.created_at_ms = created;
  m.completed_at_ms = completed;
  return m;
}

// A harness with a manager and nothing else (no store, no inbox), like awaken's hand-built setups.
inline std::unique_ptr<Harness> bare_harness() {
  auto h = std::make_unique<Harness>();
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  return h;
}

// The plugin's keys registered in `store` (the tail of awaken's manager_with_store).
inline void register_plugin_keys(const std::shared_ptr<BackgroundTaskManager>& manager, StateStore& store) {
  auto plugin = std::make_shared<BackgroundTaskPlugin>(manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  ASSERT_TRUE(env.ok());
  ASSERT_TRUE(store.register_keys(env->key_registrations).ok());
}

// m.get(key).and_then(as_str), as the Rust tests read events.
inline std::optional<std::string> str_field(const json& m, const char* key) {
  if (!m.is_object()) return std::nullopt;
  auto it = m.find(key);
  if (it == m.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

inline std::optional<std::string> kind_of(const json& m) { return str_field(m, "kind"); }

inline std::size_t count_kind(const std::vector<json>& msgs, const char* kind) {
  std::size_t n = 0;
  for (const auto& m : msgs)
    if (kind_of(m) == kind) ++n;
  return n;
}

inline bool any_kind(const std::vector<json>& msgs, const char* kind) { return count_kind(msgs, kind) > 0; }

inline std::string dump_all(const std::vector<json>& msgs) { return json(msgs).dump(); }

}  // namespace bgtasks::testing
