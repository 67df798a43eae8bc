#include "bgtasks/types.hpp"

#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "bgtasks/result.hpp"

namespace bgtasks {

const char* as_str(TaskStatus s) noexcept {
  switch (s) {
    case TaskStatus::Running:
      return "running";
    case TaskStatus::Completed:
      return "completed";
    case TaskStatus::Failed:
      return "failed";
    case TaskStatus::Cancelled:
      return "cancelled";
  }
  return "running";
}

std::optional<TaskStatus> parse_task_status(std::string_view s) noexcept {
  if (s == "running") return TaskStatus::Running;
  if (s == "completed") return TaskStatus::Completed;
  if (s == "failed") return TaskStatus::Failed;
  if (s == "cancelled") return TaskStatus::Cancelled;
  return std::nullopt;
}

TaskStatus TaskResult::status() const noexcept {
  switch (kind) {
    case Kind::Success:
      return TaskStatus::Completed;
    case Kind::Failed:
      return TaskStatus::Failed;
    case Kind::Cancelled:
      return TaskStatus::Cancelled;
  }
  return TaskStatus::Cancelled;
}

PersistedTaskMeta PersistedTaskMeta::from_summary(const TaskSummary& s, std::string_view owner_thread_id) {
  PersistedTaskMeta m;
  m.task_id = s.task_id;
  m.owner_thread_id = owner_thread_id;
  m.task_type = s.task_type;
  m.description = s.description;
  m.status = s.status;
  m.error = s.error;
  m.result = s.result;
  m.created_at_ms = s.created_at_ms;
  m.completed_at_ms = s.completed_at_ms;
  m.parent_context = s.parent_context;
  return m;
}

TaskSummary PersistedTaskMeta::to_summary() const {
  return TaskSummary{task_id, task_type.str(), description,     status,         error,
                     result,  created_at_ms,   completed_at_ms, parent_context, false};
}

std::optional<std::uint64_t> parse_bg_number(std::string_view id) noexcept {
  if (id.size() <= 3 || id.substr(0, 3) != "bg_") return std::nullopt;
  std::string_view digits = id.substr(3);
  if (digits.front() == '+') digits.remove_prefix(1);  // Rust's u64::from_str accepts a leading '+'
  if (digits.empty()) return std::nullopt;
  for (char c : digits)
    if (c < '0' || c > '9') return std::nullopt;
  std::uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return std::nullopt;
  return n;
}

void reduce(BackgroundTaskStateSnapshot& state, BackgroundTaskStateAction action) {
  switch (action.kind) {
    case BackgroundTaskStateAction::Kind::Upsert: {
      TaskId id = action.meta.task_id;
      state.tasks.insert_or_assign(std::move(id), std::move(action.meta));
      break;
    }
    case BackgroundTaskStateAction::Kind::ReplaceAll:
      state.tasks = std::move(action.tasks);
      break;
    case BackgroundTaskStateAction::Kind::Remove:
      state.tasks.erase(action.id);
      break;
  }
}

void reduce(BackgroundTaskView& view, BackgroundTaskViewAction action) {
  if (action.kind == BackgroundTaskViewAction::Kind::Replace)
    view.tasks = std::move(action.tasks);
  else
    view.tasks.clear();
}

const char* errc_name(Errc code) noexcept {
  switch (code) {
    case Errc::TaskNotFound:
      return "TaskNotFound";
    case Errc::NotOwner:
      return "NotOwner";
    case Errc::TaskTerminated:
      return "TaskTerminated";
    case Errc::NoInbox:
      return "NoInbox";
    case Errc::InboxClosed:
      return "InboxClosed";
    case Errc::InboxFull:
      return "InboxFull";
    case Errc::ReservedName:
      return "ReservedName";
    case Errc::DuplicateName:
      return "DuplicateName";
    case Errc::StoreNotConfigured:
      return "StoreNotConfigured";
    case Errc::UnknownKey:
      return "UnknownKey";
    case Errc::InvalidSnapshot:
      return "InvalidSnapshot";
    case Errc::NotHostTask:
      return "NotHostTask";
    case Errc::InvalidArgument:
      return "InvalidArgument";
    case Errc::IdConflict:
      return "IdConflict";
    case Errc::IdsUnavailable:
      return "IdsUnavailable";
    case Errc::StaleOwner:
      return "StaleOwner";
    case Errc::Disposed:
      return "Disposed";
    case Errc::ShuttingDown:
      return "ShuttingDown";
  }
  return "Unknown";
}

namespace {
// One sentence per code: what std::error_code::message() says.
const char* errc_sentence(Errc code) noexcept {
  switch (code) {
    case Errc::TaskNotFound:
      return "task not found";
    case Errc::NotOwner:
      return "the caller does not own this task";
    case Errc::TaskTerminated:
      return "the task has already ended";
    case Errc::NoInbox:
      return "the task has no inbox (not a sub-agent)";
    case Errc::InboxClosed:
      return "the sub-agent's inbox is closed";
    case Errc::InboxFull:
      return "the sub-agent's inbox is full";
    case Errc::ReservedName:
      return "the task name is reserved";
    case Errc::DuplicateName:
      return "a running task of the thread has this name";
    case Errc::StoreNotConfigured:
      return "no state store is set on the manager";
    case Errc::UnknownKey:
      return "the state store does not have the key registered (plugin not installed)";
    case Errc::InvalidSnapshot:
      return "the snapshot is invalid";
    case Errc::NotHostTask:
      return "the task is not host-driven";
    case Errc::InvalidArgument:
      return "invalid argument";
    case Errc::IdConflict:
      return "task ids are held by tasks of another thread";
    case Errc::IdsUnavailable:
      return "no task id is available";
    case Errc::StaleOwner:
      return "a newer owner holds the thread";
    case Errc::Disposed:
      return "the manager can run no more tasks (disposed, or its executor was destroyed)";
    case Errc::ShuttingDown:
      return "the manager is shutting down";
  }
  return "unknown bgtasks error";
}

class ErrcCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "bgtasks"; }
  std::string message(int ev) const override {
    const auto code = static_cast<Errc>(ev);
    if (ev < 0 || ev > static_cast<int>(Errc::ShuttingDown)) return "unknown bgtasks error";
    return std::string(errc_name(code)) + ": " + errc_sentence(code);
  }
};
}  // namespace

const std::error_category& error_category() noexcept {
  static const ErrcCategory category;
  return category;
}

bad_result_access::bad_result_access(Error error)
    : error_(std::move(error)), what_(std::string("bgtasks: ") + errc_name(error_.code) + ": " + error_.message) {}

namespace detail {
void bad_result(const Error& error) {
#if defined(__cpp_exceptions)
  throw bad_result_access(error);
#else
  std::fprintf(stderr, "bgtasks: value() of a Result that holds an error: %s: %s\n", errc_name(error.code),
               error.message.c_str());
  std::abort();
#endif
}

void bad_result_no_error() {
#if defined(__cpp_exceptions)
  throw bad_result_access(Error{Errc::InvalidArgument, "error() of a Result that holds a value", std::nullopt});
#else
  std::fputs("bgtasks: error() of a Result that holds a value\n", stderr);
  std::abort();
#endif
}
}  // namespace detail

namespace errors {
Error task_not_found() { return {Errc::TaskNotFound, "task not found", std::nullopt}; }
Error not_owner() { return {Errc::NotOwner, "caller does not own this task", std::nullopt}; }
Error task_terminated(TaskStatus status) {
  return {Errc::TaskTerminated, std::string("task already ") + as_str(status), status};
}
Error no_inbox() { return {Errc::NoInbox, "task has no inbox (not a sub-agent)", std::nullopt}; }
Error inbox_closed() { return {Errc::InboxClosed, "sub-agent inbox closed", std::nullopt}; }
Error inbox_full() { return {Errc::InboxFull, "sub-agent inbox full", std::nullopt}; }
Error reserved_name(std::string_view name) {
  return {Errc::ReservedName, "'" + std::string(name) + "' is a reserved name", std::nullopt};
}
Error duplicate_name(std::string_view name) {
  return {Errc::DuplicateName, "a running task named '" + std::string(name) + "' already exists", std::nullopt};
}
Error store_not_configured() {
  return {Errc::StoreNotConfigured, "background task state store is not configured", std::nullopt};
}
Error unknown_key(std::string_view key) { return {Errc::UnknownKey, "unknown key: " + std::string(key), std::nullopt}; }
Error invalid_snapshot(std::string message) {
  return {Errc::InvalidSnapshot, "invalid snapshot: " + std::move(message), std::nullopt};
}
Error not_host_task(std::string_view id) {
  return {Errc::NotHostTask, "task " + std::string(id) + " is not host-driven", std::nullopt};
}
Error invalid_argument(std::string message) { return {Errc::InvalidArgument, std::move(message), std::nullopt}; }
Error id_conflict(std::string message) { return {Errc::IdConflict, std::move(message), std::nullopt}; }
Error ids_unavailable() {
  return {Errc::IdsUnavailable,
          "no task id available: every id block granted to this manager is used; reserve more before spawning",
          std::nullopt};
}
Error stale_owner(std::string message) { return {Errc::StaleOwner, std::move(message), std::nullopt}; }
Error disposed() { return {Errc::Disposed, "the task manager was disposed", std::nullopt}; }
Error executor_gone() { return {Errc::Disposed, "the executor this manager ran on was destroyed", std::nullopt}; }
Error shutting_down() { return {Errc::ShuttingDown, "spawn refused: the manager is shutting down", std::nullopt}; }
}  // namespace errors

}  // namespace bgtasks
