// Shared pieces of the libFuzzer targets: a manager built as native_tests/support.hpp builds one
// (manual clock, executor, state store with the plugin's keys, owner inbox), an invariant check
// that aborts (so libFuzzer reports it with the input), and the snapshot → restore → snapshot
// stability check.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "bgtasks/bgtasks.hpp"

namespace fuzz {

using namespace bgtasks;

[[noreturn]] inline void invariant_failed(const char* file, int line, const char* cond, const std::string& detail) {
  std::fprintf(stderr, "\n==== INVARIANT BROKEN at %s:%d: %s\n%s\n", file, line, cond, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

// FUZZ_CHECK(cond, detail-expression-yielding-std::string); the detail is only built on failure.
#define FUZZ_CHECK(cond, detail)                                                \
  do {                                                                          \
    if (!(cond)) ::fuzz::invariant_failed(__FILE__, __LINE__, #cond, (detail)); \
  } while (0)

// Core bugs this fuzzing found, all fixed; their reproducers stay in fuzz/corpus/*/ (crash-kb*,
// regress-kb*) and the targets check the fixed behaviour strictly:
//   KB1  ids wrapped after bg_18446744073709551615 (now: spawn refused, ids_exhausted()).
//   KB2  a result at the value depth limit made its snapshot unrestorable (now: kMaxSnapshotDepth =
//        kMaxJsonDepth + 3).
//   KB3  now + ms wrapped in sleeps, host timers and ManualClock::advance (now: saturating_add).

struct Harness {
  ManualClock clock{1'000'000};
  Executor exec{clock};
  std::shared_ptr<StateStore> store = std::make_shared<StateStore>();
  std::optional<InboxReceiver> inbox;              // owner inbox receiver
  std::shared_ptr<BackgroundTaskManager> manager;  // declared last: destroyed first

  // `light`: a bare manager for restore checks (no owner inbox; the store registers only the
  // background_task_state key, instead of everything the plugin brings).
  struct Light {};
  explicit Harness(Light) {
    manager = std::make_shared<BackgroundTaskManager>(exec);
    (void)manager->set_store(store);  // a new manager's first store: never refused
    auto reg = store->register_keys({KeyRegistration::of<BackgroundTaskStateKey>("background_tasks")});
    FUZZ_CHECK(reg.ok(), "register_keys failed");
  }
  // `deleter`: destroys the manager when its last owner lets go (fuzz_api learns so when the
  // manager dies, wherever that happens).
  explicit Harness(ManagerOptions options = {}, bool with_inbox = true,
                   std::function<void(BackgroundTaskManager*)> deleter = {}) {
    if (deleter)
      manager = std::shared_ptr<BackgroundTaskManager>(new BackgroundTaskManager(exec, std::move(options)),
                                                       std::move(deleter));
    else
      manager = std::make_shared<BackgroundTaskManager>(exec, std::move(options));
    if (with_inbox) {
      auto [tx, rx] = inbox_channel();
      inbox.emplace(std::move(rx));
      manager->set_owner_inbox(std::move(tx));
    }
    (void)manager->set_store(store);  // a new manager's first store: never refused
    auto plugin = std::make_shared<BackgroundTaskPlugin>(manager);
    auto env = ExecutionEnv::from_plugins({plugin});
    FUZZ_CHECK(env.ok(), "ExecutionEnv::from_plugins failed");
    auto reg = store->register_keys(env->key_registrations);
    FUZZ_CHECK(reg.ok(), "register_keys failed");
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;
  ~Harness() { manager.reset(); }
};

// What restore_for_thread makes of `snap` in a manager that has none of its ids and no live body:
// every owner becomes `owner`, running entries become failed "orphaned" (completed_at_ms untouched).
inline BackgroundTaskStateSnapshot restored_into_empty(const BackgroundTaskStateSnapshot& snap,
                                                       const std::string& owner) {
  BackgroundTaskStateSnapshot out;
  for (const auto& [id, m] : snap.tasks) {
    PersistedTaskMeta e = m;
    e.owner_thread_id = owner;
    if (e.status == TaskStatus::Running) {
      e.status = TaskStatus::Failed;
      e.error = kOrphanedError;
    }
    out.tasks.emplace(id, std::move(e));
  }
  return out;
}

// The counter a restore of `snap` raises an empty manager's counter to (awaken's fetch_max(n + 1)).
inline std::uint64_t counter_after(const BackgroundTaskStateSnapshot& snap, std::uint64_t start = 0) {
  std::uint64_t c = start;
  for (const auto& [id, m] : snap.tasks)
    if (auto n = parse_bg_number(id)) c = std::max(c, *n == UINT64_MAX ? *n : *n + 1);
  return c;
}

// snapshot text s1 → its value → restore into a fresh manager → state s2 → its snapshot text →
// restore into another fresh manager → state s3. s1 must decode; s2 must be exactly what restore
// promises (restored_into_empty of s1's value); s3 must equal s2 by value.
inline void check_restore_stable(const std::string& s1) {
  auto snap1 = parse_snapshot(s1);
  FUZZ_CHECK(snap1.ok(), "a manager's own snapshot does not restore: " + snap1.error().message +
                             "\nsnapshot: " + s1.substr(0, 2000));
  Harness fresh{Harness::Light{}};
  auto r = fresh.manager->restore_json("fresh", s1);
  FUZZ_CHECK(r.ok(), "restore of a valid snapshot failed: " + r.error().message);
  FUZZ_CHECK(r->added == snap1->tasks.size() && r->skipped.empty(), "restore into an empty manager skipped entries");
  FUZZ_CHECK(fresh.manager->next_task_number() == counter_after(*snap1), "counter after restore");
  FUZZ_CHECK(fresh.exec.idle(), "restore scheduled work");
  const BackgroundTaskStateSnapshot s2 = fresh.manager->persisted_snapshot();
  if (!(s2 == restored_into_empty(*snap1, "fresh")))
    FUZZ_CHECK(false, "restore changed more than owner/orphan status:\n s1=" + s1.substr(0, 2000) +
                          "\n s2=" + fresh.manager->snapshot_json().substr(0, 2000) +
                          "\n want=" + dump(to_json(restored_into_empty(*snap1, "fresh"))).substr(0, 2000));
  const std::string s2_text = fresh.manager->snapshot_json();
  Harness fresh2{Harness::Light{}};
  auto r2 = fresh2.manager->restore_json("fresh", s2_text);
  FUZZ_CHECK(r2.ok(), "second restore failed: " + r2.error().message + "\n s2=" + s2_text.substr(0, 2000));
  FUZZ_CHECK(fresh2.manager->persisted_snapshot() == s2,
             "snapshot -> restore -> snapshot not stable:\n s2=" + s2_text.substr(0, 2000) +
                 "\n s3=" + fresh2.manager->snapshot_json().substr(0, 2000));
}

// Reads a fuzz input front to back; zeros once exhausted (FuzzedDataProvider takes integers from
// the back, which makes hand-written seeds awkward).
class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
  bool empty() const noexcept { return p_ >= end_; }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  std::uint8_t u8() { return p_ < end_ ? *p_++ : 0; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(u8()) << (8 * i);
    return v;
  }
  // A length byte, then that many bytes (fewer at the end of the input).
  std::string str(std::size_t max = 255) {
    std::size_t n = std::min<std::size_t>(u8(), max);
    n = std::min(n, remaining());
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

}  // namespace fuzz
