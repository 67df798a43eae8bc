// Errors are values at the API (docs/behaviour.md, "Errors"): one code enum, awaken's Display text as message.
#pragma once

#include <cassert>  // kept: users of this header had assert through it
#include <exception>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
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
  // The manager can run nothing more: the JS layer's answer after dispose(), and the core's once
  // the executor a manager ran on was destroyed (docs/lifetime.md).
  Disposed,
  ShuttingDown,  // spawn after begin_shutdown()
};

// "TaskNotFound", … — the JS BgTasksError.code.
const char* errc_name(Errc code) noexcept;

// Errc as a std::error_code: category name "bgtasks", message a sentence per code. With the
// is_error_code_enum specialisation below, `std::error_code ec = Errc::TaskNotFound;` and
// `ec == Errc::TaskNotFound` work.
const std::error_category& error_category() noexcept;
inline std::error_code make_error_code(Errc code) noexcept { return {static_cast<int>(code), error_category()}; }

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
// Disposed, as the manager answers once its executor is gone.
Error executor_gone();
Error shutting_down();
}  // namespace errors

// What value() throws on a Result that holds an error (and error() on one that holds a value).
// Built without exceptions (the wasm build), those calls print the error to stderr and abort.
class bad_result_access : public std::exception {
 public:
  explicit bad_result_access(Error error);
  const char* what() const noexcept override { return what_.c_str(); }
  const Error& error() const noexcept { return error_; }

 private:
  Error error_;
  std::string what_;  // "bgtasks: <code>: <message>"
};

namespace detail {
// Throws bad_result_access(error), or prints it and aborts without exceptions.
[[noreturn]] void bad_result(const Error& error);
// error() on a Result that holds a value.
[[noreturn]] void bad_result_no_error();
}  // namespace detail

template <class T>
class Result;

namespace detail {
template <class R>
struct is_result : std::false_type {};
template <class U>
struct is_result<Result<U>> : std::true_type {};
}  // namespace detail

// A small expected<T, Error>. value() (and *, ->) on an error throws bad_result_access; error()
// on a value likewise. and_then / transform chain as std::expected's do.
template <class T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const noexcept { return v_.index() == 0; }
  bool has_value() const noexcept { return ok(); }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & {
    check();
    return *std::get_if<0>(&v_);
  }
  const T& value() const& {
    check();
    return *std::get_if<0>(&v_);
  }
  T&& value() && {
    check();
    return std::move(*std::get_if<0>(&v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& {
    if (ok()) detail::bad_result_no_error();
    return *std::get_if<1>(&v_);
  }
  Error&& error() && {
    if (ok()) detail::bad_result_no_error();
    return std::move(*std::get_if<1>(&v_));
  }
  // Empty (no error) when the result holds a value.
  std::error_code error_code() const noexcept {
    return ok() ? std::error_code() : make_error_code(std::get_if<1>(&v_)->code);
  }

  template <class U>
  T value_or(U&& fallback) const& {
    return ok() ? *std::get_if<0>(&v_) : static_cast<T>(std::forward<U>(fallback));
  }
  template <class U>
  T value_or(U&& fallback) && {
    return ok() ? std::move(*std::get_if<0>(&v_)) : static_cast<T>(std::forward<U>(fallback));
  }

  // f(value) -> Result<U>; an error passes through untouched.
  template <class F>
  auto and_then(F&& f) & {
    return and_then_impl(*this, std::forward<F>(f));
  }
  template <class F>
  auto and_then(F&& f) const& {
    return and_then_impl(*this, std::forward<F>(f));
  }
  template <class F>
  auto and_then(F&& f) && {
    return and_then_impl(std::move(*this), std::forward<F>(f));
  }
  // f(value) -> U, wrapped as Result<U> (Result<void> for a void f); an error passes through.
  template <class F>
  auto transform(F&& f) & {
    return transform_impl(*this, std::forward<F>(f));
  }
  template <class F>
  auto transform(F&& f) const& {
    return transform_impl(*this, std::forward<F>(f));
  }
  template <class F>
  auto transform(F&& f) && {
    return transform_impl(std::move(*this), std::forward<F>(f));
  }

 private:
  void check() const {
    if (!ok()) detail::bad_result(*std::get_if<1>(&v_));
  }
  // The value as f receives it: moved from an rvalue Result, const from a const one.
  template <class Self>
  using arg_t = std::conditional_t<std::is_rvalue_reference_v<Self&&>, T&&,
                                   std::conditional_t<std::is_const_v<std::remove_reference_t<Self>>, const T&, T&>>;
  template <class Self, class F>
  static auto and_then_impl(Self&& self, F&& f) {
    using Arg = arg_t<Self>;
    using R = std::remove_cvref_t<std::invoke_result_t<F, Arg>>;
    static_assert(detail::is_result<R>::value, "and_then: the function must return a Result");
    if (!self.ok()) return R(static_cast<Self&&>(self).error());
    return std::forward<F>(f)(static_cast<Arg>(*std::get_if<0>(&self.v_)));
  }
  template <class Self, class F>
  static auto transform_impl(Self&& self, F&& f) {
    using Arg = arg_t<Self>;
    using U = std::remove_cvref_t<std::invoke_result_t<F, Arg>>;
    if (!self.ok()) return Result<U>(static_cast<Self&&>(self).error());
    if constexpr (std::is_void_v<U>) {
      std::forward<F>(f)(static_cast<Arg>(*std::get_if<0>(&self.v_)));
      return Result<U>();
    } else {
      return Result<U>(std::forward<F>(f)(static_cast<Arg>(*std::get_if<0>(&self.v_))));
    }
  }
  template <class>
  friend class Result;

  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;

  Result() = default;
  Result(Error error) : error_(std::move(error)) {}
  bool ok() const noexcept { return !error_; }
  bool has_value() const noexcept { return ok(); }
  explicit operator bool() const noexcept { return ok(); }
  // Throws bad_result_access on an error (as Result<T>::value does).
  void value() const {
    if (error_) detail::bad_result(*error_);
  }
  const Error& error() const& {
    if (!error_) detail::bad_result_no_error();
    return *error_;
  }
  Error&& error() && {
    if (!error_) detail::bad_result_no_error();
    return std::move(*error_);
  }
  std::error_code error_code() const noexcept { return error_ ? make_error_code(error_->code) : std::error_code(); }

  // f() -> Result<U>; an error passes through.
  template <class F>
  auto and_then(F&& f) const {
    using R = std::remove_cvref_t<std::invoke_result_t<F>>;
    static_assert(detail::is_result<R>::value, "and_then: the function must return a Result");
    if (error_) return R(*error_);
    return std::forward<F>(f)();
  }
  // f() -> U, wrapped as Result<U>; an error passes through.
  template <class F>
  auto transform(F&& f) const {
    using U = std::remove_cvref_t<std::invoke_result_t<F>>;
    if (error_) return Result<U>(*error_);
    if constexpr (std::is_void_v<U>) {
      std::forward<F>(f)();
      return Result<U>();
    } else {
      return Result<U>(std::forward<F>(f)());
    }
  }

 private:
  std::optional<Error> error_;
};

}  // namespace bgtasks

template <>
struct std::is_error_code_enum<bgtasks::Errc> : std::true_type {};
