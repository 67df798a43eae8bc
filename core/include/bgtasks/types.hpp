// awaken's data types (crates/awaken-runtime/src/extensions/background/types.rs, state.rs),
// as typed C++ values. JSON lives only in codec.hpp.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "bgtasks/id_map.hpp"
#include "bgtasks/shared_string.hpp"

namespace bgtasks {

// nlohmann's default object type is a std::map: keys come out sorted, like awaken's serde Value.
using json = nlohmann::json;
using TaskId = std::string;

enum class TaskStatus : std::uint8_t { Running, Completed, Failed, Cancelled };

constexpr bool is_terminal(TaskStatus s) noexcept { return s != TaskStatus::Running; }
const char* as_str(TaskStatus s) noexcept;
std::optional<TaskStatus> parse_task_status(std::string_view s) noexcept;

// What a body returns. Never serialized.
struct TaskResult {
  enum class Kind : std::uint8_t { Success, Failed, Cancelled };
  Kind kind = Kind::Cancelled;
  json value;          // Success
  SharedString error;  // Failed (8 bytes in every body's frame; the stored meta shares the text)

  static TaskResult success(json v) { return {Kind::Success, std::move(v), {}}; }
  static TaskResult failed(SharedString message) { return {Kind::Failed, nullptr, std::move(message)}; }
  static TaskResult cancelled() { return {Kind::Cancelled, nullptr, {}}; }
  TaskStatus status() const noexcept;
};

// Lineage. Every field optional; empty serializes as {} and is omitted from TaskSummary.
// The ids are OptionalSharedStrings: an absent one is a null pointer, copies share one text.
struct TaskParentContext {
  OptionalSharedString task_id;
  OptionalSharedString run_id;
  OptionalSharedString call_id;
  OptionalSharedString agent_id;

  bool is_empty() const noexcept { return !task_id && !run_id && !call_id && !agent_id; }
  friend bool operator==(const TaskParentContext&, const TaskParentContext&) = default;
};

struct TaskSummary {
  TaskId task_id;
  std::string task_type;
  std::string description;
  TaskStatus status = TaskStatus::Running;
  OptionalSharedString error;
  std::optional<json> result;
  std::uint64_t created_at_ms = 0;
  std::optional<std::uint64_t> completed_at_ms;
  TaskParentContext parent_context;
  // Waiting for a concurrency slot (its stored status is `running`, as awaken would write it).
  // Serialized only when true; stored entries and snapshots never carry it.
  bool queued = false;

  friend bool operator==(const TaskSummary&, const TaskSummary&) = default;
};

// One entry of the `background_task_state` key: the single source of truth for task metadata.
struct PersistedTaskMeta {
  TaskId task_id;
  // Shared with the task's core and its events (one text per thread name and per task type).
  SharedString owner_thread_id;
  SharedString task_type;
  OptionalSharedString name;  // shared texts: see OptionalSharedString
  std::string description;
  TaskStatus status = TaskStatus::Running;
  OptionalSharedString error;
  std::optional<json> result;
  std::uint64_t created_at_ms = 0;
  std::optional<std::uint64_t> completed_at_ms;
  TaskParentContext parent_context;

  static PersistedTaskMeta from_summary(const TaskSummary& s, std::string_view owner_thread_id);
  TaskSummary to_summary() const;
  friend bool operator==(const PersistedTaskMeta&, const PersistedTaskMeta&) = default;
};

// Task id → meta: the map of the `background_task_state` value (awaken's HashMap). The part of
// std::unordered_map's interface one uses on it, with stable entries and no allocation per entry
// (id_map.hpp); a std::unordered_map<TaskId, PersistedTaskMeta> converts to it.
using TaskMetaMap = detail::IdMap<PersistedTaskMeta>;

// Value of the `background_task_state` key (awaken's BackgroundTaskStateSnapshot).
struct BackgroundTaskStateSnapshot {
  TaskMetaMap tasks;
  friend bool operator==(const BackgroundTaskStateSnapshot&, const BackgroundTaskStateSnapshot&) = default;
};

// Value of the `background_tasks` key (registered, never written by the manager, as in awaken).
struct TaskViewEntry {
  std::string task_type;
  std::string description;
  std::string status;
  friend bool operator==(const TaskViewEntry&, const TaskViewEntry&) = default;
};
struct BackgroundTaskView {
  std::unordered_map<TaskId, TaskViewEntry> tasks;
  friend bool operator==(const BackgroundTaskView&, const BackgroundTaskView&) = default;
};

// "bg_<u64>" → n (as Rust's u64 parse: digits, an optional '+', leading zeros allowed).
std::optional<std::uint64_t> parse_bg_number(std::string_view id) noexcept;

}  // namespace bgtasks

namespace bgtasks {

// Reducer actions of the two keys. Upsert/ReplaceAll are awaken's; Remove backs forget()
// and retention (docs/behaviour.md).
struct BackgroundTaskStateAction {
  enum class Kind : std::uint8_t { Upsert, ReplaceAll, Remove };
  Kind kind = Kind::Upsert;
  PersistedTaskMeta meta;  // Upsert
  TaskMetaMap tasks;       // ReplaceAll
  TaskId id;               // Remove

  static BackgroundTaskStateAction upsert(PersistedTaskMeta m) {
    BackgroundTaskStateAction a;
    a.meta = std::move(m);
    return a;
  }
  static BackgroundTaskStateAction replace_all(TaskMetaMap t) {
    BackgroundTaskStateAction a;
    a.kind = Kind::ReplaceAll;
    a.tasks = std::move(t);
    return a;
  }
  static BackgroundTaskStateAction remove(TaskId id) {
    BackgroundTaskStateAction a;
    a.kind = Kind::Remove;
    a.id = std::move(id);
    return a;
  }
};
void reduce(BackgroundTaskStateSnapshot& state, BackgroundTaskStateAction action);

struct BackgroundTaskViewAction {
  enum class Kind : std::uint8_t { Replace, Clear };
  Kind kind = Kind::Clear;
  std::unordered_map<TaskId, TaskViewEntry> tasks;
  static BackgroundTaskViewAction replace(std::unordered_map<TaskId, TaskViewEntry> t) {
    return {Kind::Replace, std::move(t)};
  }
  static BackgroundTaskViewAction clear() { return {Kind::Clear, {}}; }
};
void reduce(BackgroundTaskView& view, BackgroundTaskViewAction action);

}  // namespace bgtasks
