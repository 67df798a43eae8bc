// fuzz_snapshot: the input bytes are a snapshot text handed to restore_json of a manager that
// already has live tasks (host-driven and a coroutine body, one with cancel requested, one finished).
// Invariants:
//  - error  → InvalidSnapshot (parse_snapshot refuses the text too), or IdConflict exactly when the
//             decoded snapshot names an id stored for another thread; either way the state is
//             exactly unchanged (snapshot_json and next_task_number equal before/after);
//  - success → existing entries untouched and reported as skipped (id order), each new entry is
//             the decoded one with owner := thread and running → failed "orphaned"; the counter is
//             max(before, bg_N + 1) and the report's highest the largest bg_N;
//             snapshot → restore (fresh manager) → snapshot stable; the next spawn gets an id that
//             no entry has; the live tasks still settle as docs/behaviour.md says.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"

using namespace bgtasks;
using fuzz::Harness;

namespace {

Co<TaskResult> sleepy_body(TaskContext ctx) {
  const bool slept = co_await ctx.sleep(50);
  co_return TaskResult::success(json{{"slept", slept}});
}

std::string show(const PersistedTaskMeta* m) { return m ? dump(to_json(*m)) : std::string("<absent>"); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Harness h;
  auto& m = *h.manager;

  // A few live tasks: bg_0 host "builder", bg_1 host sub-agent child of bg_0 (cancel requested),
  // bg_2 host completed, bg_3 coroutine sleeping on the manual clock.
  auto b0 = m.spawn_host("t1", "shell", "builder", "build", {});
  auto b1 = m.spawn_host("t1", "sub_agent", "researcher", "research", TaskParentContext{"bg_0", "run-1", {}, {}}, true);
  auto b2 = m.spawn_host("t2", "http", std::nullopt, "fetch", {});
  auto b3 = m.spawn("t1", "shell", std::nullopt, "sleeper", {}, sleepy_body);
  FUZZ_CHECK(b0.ok() && b1.ok() && b2.ok() && b3.ok(), "setup spawn failed");
  FUZZ_CHECK(m.complete(*b2, json{{"ok", true}}).ok(), "setup complete failed");
  FUZZ_CHECK(m.cancel(*b1), "setup cancel failed");
  h.exec.run_until_idle();

  const std::string thread = (size % 2 == 0) ? "t1" : "t9";
  const std::string before = m.snapshot_json();
  const std::uint64_t n0 = m.next_task_number();
  auto before_val = parse_snapshot(before);
  FUZZ_CHECK(before_val.ok(), "own snapshot does not parse: " + before_val.error().message);

  auto r = m.restore_json(thread, text);
  const std::string after = m.snapshot_json();

  // Ids of the decoded snapshot that another thread's entries hold.
  std::size_t held = 0;
  if (auto decoded = parse_snapshot(text); decoded.ok())
    for (const auto& [id, meta] : decoded->tasks)
      if (auto it = before_val->tasks.find(id); it != before_val->tasks.end() && it->second.owner_thread_id != thread)
        ++held;

  if (!r.ok()) {
    FUZZ_CHECK(!r.error().message.empty(), "error without a message");
    FUZZ_CHECK(after == before, "a refused snapshot changed the state:\n before=" + before + "\n after=" + after);
    FUZZ_CHECK(m.next_task_number() == n0, "a refused snapshot moved the counter");
    if (r.error().code == Errc::IdConflict) {
      FUZZ_CHECK(held > 0, "IdConflict without an id of another thread: " + r.error().message);
      FUZZ_CHECK(r.error().message.rfind("restore refused: ids held by tasks of another thread: ", 0) == 0,
                 "IdConflict message: " + r.error().message);
    } else {
      FUZZ_CHECK(r.error().code == Errc::InvalidSnapshot,
                 std::string("unexpected error code ") + errc_name(r.error().code));
      FUZZ_CHECK(!parse_snapshot(text).ok(), "restore_json refused what parse_snapshot accepts");
    }
  } else {
    FUZZ_CHECK(held == 0, "a snapshot naming another thread's ids was accepted");
    auto snap = parse_snapshot(text);
    FUZZ_CHECK(snap.ok(), "restore_json accepted what parse_snapshot refuses");
    auto after_val = parse_snapshot(after);
    FUZZ_CHECK(after_val.ok(), "snapshot after restore does not parse: " + after_val.error().message);
    const auto& was = before_val->tasks;
    const auto& now = after_val->tasks;

    std::size_t added = 0;
    std::size_t skipped = 0;
    std::optional<std::uint64_t> highest;
    for (const auto& [id, meta] : snap->tasks)
      if (auto n = parse_bg_number(id)) highest = std::max(highest.value_or(0), *n);
    for (const auto& [id, meta] : was) {
      auto it = now.find(id);
      FUZZ_CHECK(it != now.end() && it->second == meta, "restore changed an existing entry " + id + ": " + show(&meta) +
                                                            " -> " + show(it == now.end() ? nullptr : &it->second));
    }
    for (const auto& [id, meta] : snap->tasks) {
      if (was.count(id)) {
        ++skipped;
        FUZZ_CHECK(std::count(r->skipped.begin(), r->skipped.end(), id) == 1,
                   "skipped id " + id + " not reported once");
        continue;
      }
      ++added;
      BackgroundTaskStateSnapshot one;
      one.tasks.emplace(id, meta);
      const auto want = fuzz::restored_into_empty(one, thread).tasks.at(id);
      auto it = now.find(id);
      FUZZ_CHECK(
          it != now.end() && it->second == want,
          "restored entry " + id + " is " + show(it == now.end() ? nullptr : &it->second) + ", want " + show(&want));
    }
    FUZZ_CHECK(r->added == added,
               "restore_json returned " + std::to_string(r->added) + ", added " + std::to_string(added));
    FUZZ_CHECK(r->skipped.size() == skipped, "restore_json reported " + std::to_string(r->skipped.size()) + " skipped");
    FUZZ_CHECK(std::is_sorted(r->skipped.begin(), r->skipped.end(),
                              [](const std::string& a, const std::string& b) {
                                const auto na = parse_bg_number(a), nb = parse_bg_number(b);
                                if (na.has_value() != nb.has_value()) return na.has_value();
                                if (na && *na != *nb) return *na < *nb;
                                return a < b;
                              }),
               "skipped ids out of id order");
    FUZZ_CHECK(r->highest_number == highest, "restore_json reported the wrong highest number");
    FUZZ_CHECK(now.size() == was.size() + added, "restore added entries that were not in the snapshot");
    FUZZ_CHECK(
        m.next_task_number() == fuzz::counter_after(*snap, n0),
        "counter " + std::to_string(m.next_task_number()) + ", want " + std::to_string(fuzz::counter_after(*snap, n0)));

    fuzz::check_restore_stable(after);

    // bg_N is never reused: the next spawn gets an id no entry has.
    // Once bg_18446744073709551615 exists, spawning is refused rather than wrapping around.
    const bool exhausted = m.ids_exhausted();
    auto fresh = m.spawn_host(thread, "shell", std::nullopt, "after restore", {});
    FUZZ_CHECK(fresh.ok() != exhausted, "spawn after restore: ids_exhausted() and the answer disagree");
    // Handing out the last id exhausts them (a restored bg_18446744073709551614 leaves exactly one).
    if (fresh.ok())
      FUZZ_CHECK(m.ids_exhausted() == (*fresh == "bg_18446744073709551615"), "ids_exhausted() after taking " + *fresh);
    if (!fresh.ok()) {
      FUZZ_CHECK(fresh.error().code == Errc::InvalidArgument && now.count("bg_18446744073709551615"),
                 "spawn after restore refused: " + fresh.error().message);
    } else {
      FUZZ_CHECK(now.count(*fresh) == 0, "spawn after restore reused id " + *fresh + " (counter was " +
                                             std::to_string(fuzz::counter_after(*snap, n0)) + ")");
      FUZZ_CHECK(parse_bg_number(*fresh) == fuzz::counter_after(*snap, n0), "spawn id does not follow the counter");
    }
  }

  // The live tasks are unaffected: bg_0 completes, bg_1 (cancel requested) ends cancelled, bg_3
  // cancelled ends cancelled, bg_2 stays completed.
  FUZZ_CHECK(m.complete(*b0, json("done")).ok(), "live host task no longer completes");
  FUZZ_CHECK(m.complete(*b1, json("late")).ok(), "live host sub-agent no longer settles");
  FUZZ_CHECK(m.cancel(*b3), "live coroutine task no longer cancellable");
  h.exec.run_until_idle();
  auto s0 = m.get(*b0);
  auto s1 = m.get(*b1);
  auto s2 = m.get(*b2);
  auto s3 = m.get(*b3);
  FUZZ_CHECK(s0 && s0->status == TaskStatus::Completed && s0->result == json("done"), "bg_0 did not complete");
  FUZZ_CHECK(s1 && s1->status == TaskStatus::Cancelled && !s1->result, "bg_1 (cancel said true) did not end cancelled");
  FUZZ_CHECK(s2 && s2->status == TaskStatus::Completed, "bg_2 changed");
  FUZZ_CHECK(s3 && s3->status == TaskStatus::Cancelled, "bg_3 (cancel said true) did not end cancelled");

  // Restored entries emit nothing: every event belongs to a task spawned here.
  std::set<std::string> spawned{*b0, *b1, *b2, *b3};
  for (const auto& ev : h.inbox->drain_events()) {
    FUZZ_CHECK(ev.kind != EventKind::Raw && spawned.count(ev.task_id),
               "event for a task not spawned here: " + dump(ev.to_json()));
  }
  return 0;
}
