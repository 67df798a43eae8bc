// Errors are values at the API (DECISIONS.md §5): one code enum, awaken's Display text as message.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "bgtasks/types.hpp"

namespace bgtasks {

enum class Errc : std::uint8_t {
  // send_task_inbox_message
  TaskNotFound,
  NotOwner,
  TaskTerminated,
  NoInbox,
  InboxClosed,
  InboxFull,
  // spawn
  ReservedName,
  DuplicateName,
  StoreNotConfigured,
  UnknownKey,  // awaken's SpawnError::State(StateError::UnknownKey)
  // restore
  InvalidSnapshot,
  // host-driven tasks and argument checks
  NotHostTask,
  InvalidArgument,
  // ids shared with other managers (departures from awaken: docs/ids-and-restore.md)
  IdConflict,      // a checked restore met ids that tasks of another thread hold
  IdsUnavailable,  // spawn with granted ids: every granted id is used
  StaleOwner,      // produced by the JS stores (a newer owner holds the thread), never by the core
  // scheduling (docs/scheduling.md)
  Disposed,      // the JS layer's answer after dispose(), never produced by the core
  ShuttingDown,  // spawn after begin_shutdown()
};

// "TaskNotFound", … — the JS BgTasksError.code.
const char* errc_name(Errc code) noexcept;

struct Error {
  Errc code;
  std::string message;
  std::optional<TaskStatus> status;  // TaskTerminated carries the status it found

  friend bool operator==(const Error&, const Error&) = default;
};

// Constructors with awaken's Display strings.
namespace errors {
Error task_not_found();
Error not_owner();
Error task_terminated(TaskStatus status);
Error no_inbox();
Error inbox_closed();
Error inbox_full();
Error reserved_name(std::string_view name);
Error duplicate_name(std::string_view name);
Error store_not_configured();
Error unknown_key(std::string_view key);
Error invalid_snapshot(std::string message);
Error not_host_task(std::string_view id);
Error invalid_argument(std::string message);
Error id_conflict(std::string message);
Error ids_unavailable();
Error stale_owner(std::string message);
Error disposed();
Error shutting_down();
}  // namespace errors

// A minimal expected<T, Error>.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const& { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}
  bool ok() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return ok(); }
  const Error& error() const& { assert(!ok()); return *error_; }

 private:
  std::optional<Error> error_;
};

}  // namespace bgtasks
