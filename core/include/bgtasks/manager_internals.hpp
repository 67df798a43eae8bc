// Not API: what the wasm binding, the shared-scenario runner, the fuzzers and the tests call on a
// BackgroundTaskManager beyond what a C++ user calls. No compatibility promise; it may change with
// any release. Each function forwards to a private member of the manager.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "bgtasks/manager.hpp"

namespace bgtasks::detail {

struct ManagerInternals {
  // ---- tasks addressed by number: the binding's task handles (ids bg_N) ----
  static Result<void> settle(BackgroundTaskManager& m, TaskNumber task, TaskResult result) {
    return m.settle(task, std::move(result));
  }
  static Result<void> settle(BackgroundTaskManager& m, std::string_view id, TaskResult result) {
    return m.settle(id, std::move(result));
  }
  // settle for a host that keeps each result on its side (the JS binding keeps the object): the
  // stored meta takes the result's value without a copy, and the Completed event carries
  // `event_value` in its place. `event_value` is taken (left null) only when that event was
  // queued; a task that ends cancelled or failed, no owner inbox, or an inbox that refused the
  // event leave it as it was. Where the event goes afterwards, the value goes with it: a DropOldest
  // eviction drops it, and a closed inbox's fallback receives {"kind":"completed",
  // "result":<event_value>,…} (the value is then left with the caller).
  static Result<void> settle(BackgroundTaskManager& m, TaskNumber task, TaskResult result, json& event_value) {
    return m.settle(task, std::move(result), event_value);
  }
  static Result<void> settle(BackgroundTaskManager& m, std::string_view id, TaskResult result, json& event_value) {
    return m.settle(id, std::move(result), event_value);
  }
  static bool emit(BackgroundTaskManager& m, TaskNumber task, std::string_view event_type, json payload) {
    return m.emit(task, event_type, std::move(payload));
  }
  static bool emit(BackgroundTaskManager& m, std::string_view id, std::string_view event_type, json payload) {
    return m.emit(id, event_type, std::move(payload));
  }
  static std::optional<CancelReason> cancel_reason(const BackgroundTaskManager& m, TaskNumber task) {
    return m.cancel_reason(task);
  }
  static std::optional<CancelReason> cancel_reason(const BackgroundTaskManager& m, std::string_view id) {
    return m.cancel_reason(id);
  }
  static bool is_queued(const BackgroundTaskManager& m, TaskNumber task) { return m.is_queued(task); }
  static bool is_queued(const BackgroundTaskManager& m, std::string_view id) { return m.is_queued(id); }

  // ---- timers for host-driven bodies (JS ctx.sleep, a host's timed wait) ----
  // A sleep for a host-driven body, on the executor's clock and timer queue: it fires `true` once
  // `ms` have passed, or `false` as soon as the task's cancel is requested. Returns a timer
  // number; read outcomes with take_fired_host_timers() after polling.
  static Result<std::uint64_t> arm_host_timer(BackgroundTaskManager& m, std::string_view id, std::uint64_t ms) {
    return m.arm_host_timer(id, ms);
  }
  // A timer tied to no task: fires `true` after `ms`; numbered with the host timers.
  static std::uint64_t arm_plain_timer(BackgroundTaskManager& m, std::uint64_t ms) { return m.arm_plain_timer(ms); }
  static std::vector<std::pair<std::uint64_t, bool>> take_fired_host_timers(BackgroundTaskManager& m) {
    return m.take_fired_host_timers();
  }

  // ---- test hooks ----
  // How many tasks have an end-waiter list (a list goes when its task ends).
  static std::size_t end_waiter_lists(const BackgroundTaskManager& m) noexcept { return m.end_waiters_.size(); }
};

}  // namespace bgtasks::detail
