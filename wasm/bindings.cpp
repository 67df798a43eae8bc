// The Embind binding: one class, `WasmRuntime`, over one executor + manager + owner inbox.
//
// The crossing. Hot calls take and return numbers only:
// - a live task is named by a *handle*: N for bg_N when N <= 2^53 (the JS side writes the id as
//   `bg_${N}`), else a negative number standing for a bigger id kept in a table here;
// - thread, task type and event type strings are *interned* once (a small int each, at most
//   kMaxInterned strings; past that they cross as text);
// - text going in (names, results, restore input) is written by JS with TextEncoder.encodeInto
//   straight into the input buffer (inputPtr) and passed as byte lengths;
// - an emitted payload stays on the JS side: the core's event carries the payload's *handle*
//   (a number), so the core still sees, orders, counts, refuses or evicts every event;
// - a completed task's result stays on the JS side too (a copy; the core parses the JSON text for
//   its stored meta): the completed event carries the result's handle;
// - drain writes records of 4 doubles [kind, task handle, type id, payload handle or extra index]
//   into the record buffer, and what only the core holds (errors, raw events) as one JSON array text.
// Where the outputs are lies in a fixed header of doubles (headerPtr) JS reads from wasm memory.
// Bulk results (list, snapshot, stats, …) stay one JSON text in the text buffer (TextDecoder).
// Errors never throw: a call reports a code and the message waits in lastErrorMessage().
#include <emscripten/bind.h>

#include <charconv>
#include <cmath>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "bgtasks/manager_internals.hpp"

namespace {
using namespace bgtasks;
// Tasks by number, results kept on the JS side, host timers: what only a binding calls.
using Internals = bgtasks::detail::ManagerInternals;

// Error codes shared with js/src/errors.js (index = code).
int code_of(Errc e) { return static_cast<int>(e) + 1; }

constexpr std::uint64_t kMaxExactHandle = 9007199254740992ull;  // 2^53
constexpr std::size_t kMaxInterned = 4096;
constexpr int kHandleNotTaken = -1;  // complete(): settled, but no queued event holds the result's handle
// header_ slots (doubles), read by js/src/manager.js. kQueued: after each successful spawn, 1 if
// the task waits for a concurrency slot (its body must not start until takeStarts lists it).
enum Header { kRecordsPtr = 0, kTextPtr = 1, kTextLen = 2, kQueued = 3, kHeaderSize = 4 };

class WasmRuntime {
 public:
  WasmRuntime(bool manual_clock, double start_ms, int retain_finished, int agent_inbox_capacity,
              bool agent_inbox_drop_oldest, int owner_inbox_capacity, bool owner_inbox_drop_oldest)
      : clock_(manual_clock ? std::unique_ptr<Clock>(new ManualClock(static_cast<std::uint64_t>(start_ms)))
                            : std::unique_ptr<Clock>(new SystemClock())),
        exec_(*clock_),
        store_(std::make_shared<StateStore>()) {
    ManagerOptions options;
    if (retain_finished >= 0) options.retain_finished = static_cast<std::size_t>(retain_finished);
    if (agent_inbox_capacity > 0)
      options.agent_inbox = {static_cast<std::size_t>(agent_inbox_capacity),
                             agent_inbox_drop_oldest ? OverflowPolicy::DropOldest : OverflowPolicy::Reject};
    InboxOptions owner;
    if (owner_inbox_capacity > 0)
      owner = {static_cast<std::size_t>(owner_inbox_capacity),
               owner_inbox_drop_oldest ? OverflowPolicy::DropOldest : OverflowPolicy::Reject};
    auto [tx, rx] = inbox_channel(owner);
    inbox_.emplace(std::move(rx));
    manager_ = std::make_shared<BackgroundTaskManager>(exec_, options);
    manager_->set_owner_inbox(std::move(tx));
    (void)manager_->set_store(store_);  // a new manager: its first store is never refused
    (void)store_->install_plugin(BackgroundTaskPlugin(manager_));
    manager_->set_hooks(hooks(false));
  }
  ~WasmRuntime() {
    // Each scope restores the ambient task it replaced: close them innermost first (a deque
    // would destroy them front to back, leaving the ambient task pointing into freed memory).
    while (!scopes_.empty()) scopes_.pop_back();
  }

  // ---- the fixed header, the input buffer, interning ----
  std::uintptr_t headerPtr() const { return reinterpret_cast<std::uintptr_t>(header_); }
  // Room for `bytes` of input text; returns where to write it (valid until the next inputPtr).
  std::uintptr_t inputPtr(double bytes) {
    const auto n = static_cast<std::size_t>(bytes);
    if (input_.size() < n) input_.resize(n);
    return reinterpret_cast<std::uintptr_t>(input_.data());
  }
  // The string's number, or -1 once kMaxInterned strings are held (then it crosses as text).
  int intern(const std::string& s) {
    auto it = intern_ids_.find(s);
    if (it != intern_ids_.end()) return it->second;
    if (strings_.size() >= kMaxInterned) return -1;
    const int n = static_cast<int>(strings_.size());
    intern_ids_.emplace(s, n);
    strings_.push_back(s);
    return n;
  }

  // ---- spawning (host-driven bodies) ----
  // Input text, in order: the thread (if thread_id < 0), the type (if type_id < 0), the name
  // (name_len < 0: none), the description, the parent JSON (parent_len 0: none). timeout_ms < 0:
  // no deadline. Returns the new task's handle, or NaN on error (the id text of a handle < 0 is in
  // the text buffer); header slot kQueued says whether it was queued.
  double spawn(bool sub_agent, int thread_id, int type_id, int thread_len, int type_len, int name_len, int desc_len,
               int parent_len, double timeout_ms) {
    std::size_t at = 0;
    auto take = [&](int len) {
      std::string_view v(input_.data() + at, static_cast<std::size_t>(len));
      at += static_cast<std::size_t>(len);
      return v;
    };
    const std::string_view thread = thread_id >= 0 ? std::string_view(strings_[thread_id]) : take(thread_len);
    const std::string_view type = type_id >= 0 ? std::string_view(strings_[type_id]) : take(type_len);
    std::optional<std::string_view> name;
    if (name_len >= 0) name = take(name_len);
    const std::string_view description = take(desc_len);
    TaskParentContext parent;
    if (parent_len > 0) {
      auto j = parse_json(take(parent_len), "parent", Errc::InvalidArgument);
      if (!j) return fail_nan(j.error());
      auto p = parent_context_from_json(*j, "parent");
      if (!p) return fail_nan(p.error());
      parent = std::move(*p);
    }
    auto r = timeout_ms >= 0 ? manager_->spawn_host(SpawnOptions{thread, type, name, description, std::move(parent),
                                                                 static_cast<std::uint64_t>(timeout_ms)},
                                                    sub_agent)
                             : manager_->spawn_host(thread, sub_agent ? std::string_view("sub_agent") : type, name,
                                                    description, std::move(parent), sub_agent);
    if (!r) return fail_nan(r.error());
    const double h = handle_of(*r);
    if (h < 0) put(*r);
    // Only limits queue tasks: without them no lookup.
    header_[kQueued] = limited_ && on_task(h, [&](auto task) { return Internals::is_queued(*manager_, task); }) ? 1 : 0;
    return h;
  }
  // The id text of a handle (text buffer); its length.
  std::size_t idText(double h) { return put(id_of(h)); }

  // result JSON text (result_len bytes) in the input buffer; result_handle: the handle of the
  // copy JS keeps (the completed event carries it, as a custom event carries its payload's).
  // want_summary: keep the terminal summary for lastEnded(). Returns 0 (the event holds the
  // handle), kHandleNotTaken (settled, but no queued event holds it: the task ended cancelled, or
  // the inbox refused the event), or an error code.
  int complete(double h, int result_len, bool want_summary, double result_handle) {
    auto j = parse_json(std::string_view(input_.data(), static_cast<std::size_t>(result_len)), "result",
                        Errc::InvalidArgument);
    if (!j) return fail(j.error());
    json handle(static_cast<std::uint64_t>(result_handle));
    const int c = settle(h, want_summary, TaskResult::success(std::move(*j)), &handle);
    return c == 0 && !handle.is_null() ? kHandleNotTaken : c;
  }
  // The error message (message_len bytes) in the input buffer.
  int failTask(double h, int message_len, bool want_summary) {
    return settle(h, want_summary,
                  TaskResult::failed(std::string(input_.data(), static_cast<std::size_t>(message_len))), nullptr);
  }
  // The terminal summary of the task that ended last with want_summary (valid even if retention
  // already dropped the task).
  std::size_t lastEnded() { return put(dump(last_ended_)); }

  // A custom event whose payload stays on the JS side: the core's event holds `payload` (the
  // payload's handle). type_id < 0: the type is input text of type_len bytes. 1 delivered, 0 not
  // (finished task, bounded inbox refused it).
  int emit(double h, int type_id, int type_len, double payload) {
    const std::string_view type = type_id >= 0 ? std::string_view(strings_[type_id])
                                               : std::string_view(input_.data(), static_cast<std::size_t>(type_len));
    return on_task(h,
                   [&](auto task) {
                     return Internals::emit(*manager_, task, type, json(static_cast<std::uint64_t>(payload)));
                   })
               ? 1
               : 0;
  }

  void enterTask(double h) { scopes_.emplace_back(BackgroundTaskContext{manager_.get(), id_of(h)}); }
  void leaveTask() {
    if (!scopes_.empty()) scopes_.pop_back();
  }

  // ctx.sleep: a timer number, or a negative error code.
  double armTimer(double h, double ms) {
    auto r = Internals::arm_host_timer(*manager_, id_of(h), static_cast<std::uint64_t>(ms));
    if (!r) return -fail(r.error());
    return static_cast<double>(*r);
  }
  // A timer tied to no task (JS wait(id, {timeoutMs})): it fires as slept = 1 in takeFiredTimers.
  double armPlainTimer(double ms) {
    return static_cast<double>(Internals::arm_plain_timer(*manager_, static_cast<std::uint64_t>(ms)));
  }
  // Records [timer, slept] (slept 0: cancelled first) of the timers that fired; their count.
  int takeFiredTimers() {
    auto fired = Internals::take_fired_host_timers(*manager_);
    records_.resize(2 * fired.size());
    for (std::size_t i = 0; i < fired.size(); ++i) {
      records_[2 * i] = static_cast<double>(fired[i].first);
      records_[2 * i + 1] = fired[i].second ? 1 : 0;
    }
    header_[kRecordsPtr] = static_cast<double>(reinterpret_cast<std::uintptr_t>(records_.data()));
    return static_cast<int>(fired.size());
  }

  // ---- queries ----
  std::size_t get(const std::string& id) {
    auto s = manager_->get(id);
    return put(s ? dump(*s) : std::string());
  }
  std::size_t list(const std::string& thread) {
    std::string text = "[";
    for (const auto& s : manager_->list(thread)) {
      if (text.size() > 1) text += ',';
      write_json(text, s);
    }
    text += ']';
    return put(std::move(text));
  }
  bool hasRunning(const std::string& thread) { return manager_->has_running(thread); }

  // ---- cancellation ----
  bool cancel(const std::string& id) { return manager_->cancel(id); }
  int cancelTree(const std::string& id) { return static_cast<int>(manager_->cancel_tree(id)); }
  int cancelAll(const std::string& thread) { return static_cast<int>(manager_->cancel_all(thread)); }
  // The tasks whose cancel was requested since the last call, as records [handle, reason]
  // (reason: CancelReason, 0 cancel 1 cancelTree 2 cancelAll 3 run 4 timeout 5 shutdown 6 grace);
  // their count.
  int takeCancelRequests() {
    const std::size_t n = cancel_requests_.size();
    records_.resize(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
      records_[2 * i] = handle_of(cancel_requests_[i].first);
      records_[2 * i + 1] = static_cast<double>(static_cast<int>(cancel_requests_[i].second));
    }
    cancel_requests_.clear();
    header_[kRecordsPtr] = static_cast<double>(reinterpret_cast<std::uintptr_t>(records_.data()));
    return static_cast<int>(n);
  }
  // Queued host tasks that got their slot since the last call: their bodies may start now.
  // Records [handle]; their count.
  int takeStarts() {
    const std::size_t n = starts_.size();
    records_.resize(n);
    for (std::size_t i = 0; i < n; ++i) records_[i] = handle_of(starts_[i]);
    starts_.clear();
    header_[kRecordsPtr] = static_cast<double>(reinterpret_cast<std::uintptr_t>(records_.data()));
    return static_cast<int>(n);
  }
  // Tasks the core ended without their body settling (timeout, grace, finishShutdown, cancel of a
  // queued task, a queued task at beginShutdown) since the last call: records [handle, status]
  // (status 1 completed 2 failed 3 cancelled); their count.
  int takeForcedEnds() {
    const std::size_t n = forced_ends_.size();
    records_.resize(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
      records_[2 * i] = handle_of(forced_ends_[i].first);
      records_[2 * i + 1] = static_cast<double>(static_cast<int>(forced_ends_[i].second));
    }
    forced_ends_.clear();
    header_[kRecordsPtr] = static_cast<double>(reinterpret_cast<std::uintptr_t>(records_.data()));
    return static_cast<int>(n);
  }

  // ---- scheduling ----
  // per_thread < 0: no per-thread limit; per_type_json: '' (none) or an object of type -> integer
  // limit, e.g. '{"shell":2}'. 0, or InvalidArgument's code (a bad value or JSON, a 0 limit:
  // nothing changed).
  int setConcurrency(double per_thread, const std::string& per_type_json) {
    ConcurrencyLimits limits;
    if (per_thread >= 0) {
      if (!whole(per_thread))
        return fail(errors::invalid_argument("setConcurrency: perThread must be an integer from 1 to 2^53"));
      limits.per_thread = static_cast<std::size_t>(per_thread);
    } else if (!(per_thread == -1)) {
      return fail(errors::invalid_argument("setConcurrency: perThread must be an integer from 1 to 2^53, or -1"));
    }
    if (!per_type_json.empty()) {
      auto j = parse_json(per_type_json, "perType", Errc::InvalidArgument);
      if (!j) return fail(j.error());
      if (!j->is_object()) return fail(errors::invalid_argument("setConcurrency: perType must be an object"));
      for (const auto& [type, n] : j->items()) {
        if (!n.is_number_unsigned() && !(n.is_number_integer() && n.get<std::int64_t>() >= 0))
          return fail(errors::invalid_argument("setConcurrency: the limit of type '" + type + "' must be an integer"));
        limits.per_type.emplace(type, n.get<std::uint64_t>());
      }
    }
    const bool any = !limits.empty();
    if (const int c = code(manager_->set_concurrency(std::move(limits)))) return c;
    limited_ = limited_ || any;
    return 0;
  }
  void setCancelGraceMs(double ms) {
    manager_->set_cancel_grace_ms(ms >= 0 ? std::optional<std::uint64_t>(static_cast<std::uint64_t>(ms))
                                          : std::nullopt);
  }
  // How many tasks it signalled (queued ones end at once and show in takeForcedEnds).
  int beginShutdown() { return static_cast<int>(manager_->begin_shutdown()); }
  // How many tasks it ended (each shows in takeForcedEnds).
  int finishShutdown() { return static_cast<int>(manager_->finish_shutdown()); }

  // ---- fan-out ----
  // While on, every event the core produces is kept (also those a bounded inbox refused), for
  // takeTapped. Turning it off drops what was kept.
  void setTap(bool on) {
    if (on == (tap_ != 0)) return;
    if (on) {
      tap_ = manager_->subscribe([this](const Event& e) { tapped_.push_back(e); });
    } else {
      manager_->unsubscribe(tap_);
      tap_ = 0;
      tapped_.clear();
    }
  }
  // The events produced since the last call, as drain writes them (records and extras text). A
  // custom event's payload handle, or a completed one's result handle, is the one JS gave: a
  // tapped record never takes it (JS keeps the value until every reader is done).
  int takeTapped() {
    std::vector<Event> events;
    events.swap(tapped_);
    records_.resize(4 * events.size());
    RecordWriter w(*this);
    for (const Event& e : events) w.write(e);
    w.finish();
    return static_cast<int>(w.count);
  }

  // ---- messages ----
  int sendMessage(const std::string& id, const std::string& thread, const std::string& from,
                  const std::string& content) {
    return code(manager_->send_task_inbox_message(id, thread, from, content));
  }
  std::size_t takeAgentMessages(double h, int max) {
    json arr = json::array();
    for (auto& m : manager_->take_agent_messages(id_of(h), max < 0 ? SIZE_MAX : static_cast<std::size_t>(max)))
      arr.push_back(std::move(m));
    return put(dump(arr));
  }

  // ---- events ----
  // Writes events as records of 4 doubles into records_ (sized by the caller) and what only the
  // core holds as one JSON array text (drain's format, below); finish() puts the text and the
  // records' address in the header.
  struct RecordWriter {
    explicit RecordWriter(WasmRuntime& c) : core(c) {}
    WasmRuntime& core;
    std::string extras;
    std::size_t n_extras = 0;
    std::size_t count = 0;
    // A task's events, and events of one type, often come in a row: look each up once per run.
    const TaskId* last_id = nullptr;
    double last_handle = 0;
    const std::string* last_type = nullptr;
    double last_type_id = -1;

    double extra(const json& j) {
      extras += n_extras++ == 0 ? '[' : ',';
      write_json(extras, j);  // appended in place: no text per element
      return static_cast<double>(n_extras - 1);
    }
    void write(const Event& e) {
      double* r = core.records_.data() + 4 * count++;
      r[0] = static_cast<double>(static_cast<int>(e.kind));
      if (e.kind == EventKind::Raw) {
        r[1] = 0;
      } else {
        if (last_id == nullptr || *last_id != e.task_id) {
          last_id = &e.task_id;
          last_handle = core.handle_of(e.task_id);
        }
        r[1] = last_handle;
      }
      r[2] = -1;
      r[3] = -1;
      switch (e.kind) {
        case EventKind::Custom: {
          if (last_type == nullptr || *last_type != e.event_type) {
            auto it = core.intern_ids_.find(e.event_type);
            last_type = it != core.intern_ids_.end() ? &e.event_type : nullptr;
            last_type_id = it != core.intern_ids_.end() ? it->second : -1;
          }
          r[2] = last_type != nullptr ? last_type_id : -1 - extra(json(e.event_type));
          // Every custom event of this binding carries a payload handle; anything else is data.
          if (e.data.is_number_unsigned())
            r[3] = static_cast<double>(e.data.get<std::uint64_t>());
          else
            r[0] = static_cast<double>(static_cast<int>(EventKind::Raw)), r[3] = extra(e.to_json());
          break;
        }
        case EventKind::Completed:
          // Every completed event of this binding carries its result's handle; anything else is data.
          if (e.data.is_number_unsigned())
            r[3] = static_cast<double>(e.data.get<std::uint64_t>());
          else
            r[0] = static_cast<double>(static_cast<int>(EventKind::Raw)), r[3] = extra(e.to_json());
          break;
        case EventKind::Failed:
          extras += n_extras++ == 0 ? '[' : ',';
          write_json_string(extras, e.error);
          r[3] = static_cast<double>(n_extras - 1);
          break;
        case EventKind::Cancelled:
          break;
        case EventKind::Raw:
          r[3] = extra(e.data);
          break;
      }
    }
    void finish() {
      if (n_extras > 0) extras += ']';
      core.put(std::move(extras));
      core.header_[kRecordsPtr] = static_cast<double>(reinterpret_cast<std::uintptr_t>(core.records_.data()));
    }
  };

  // Takes pending events (thread_id >= 0: only that interned thread's; -2: only the thread given
  // as input text of thread_len bytes; -1: all), at most max (< 0: all). Writes one record of 4
  // doubles per event: [kind, task handle, type id, payload handle or extra index]; kind as
  // EventKind (0 custom, 1 completed, 2 failed, 3 cancelled, 4 raw). A completed event's fourth
  // double is its result's handle. What the core alone holds — an error (failed), a raw event, an
  // event type past the interning limit (then type id is -1 - its extra index) — is an element of
  // one JSON array text (header).
  int drain(int thread_id, int thread_len, int max) {
    const std::size_t limit = max < 0 ? SIZE_MAX : static_cast<std::size_t>(max);
    RecordWriter w(*this);
    if (thread_id == -1) {
      // Every thread's: read in place in the queue (no vector of moved events).
      records_.resize(4 * std::min(limit, inbox_->len()));
      inbox_->consume([&](const Event& e) { w.write(e); }, limit);
    } else {
      const std::string thread =
          thread_id >= 0 ? strings_[thread_id] : std::string(input_.data(), static_cast<std::size_t>(thread_len));
      const std::vector<Event> events = inbox_->drain_events(thread, limit);
      records_.resize(4 * events.size());
      for (const Event& e : events) w.write(e);
    }
    w.finish();
    return static_cast<int>(w.count);
  }
  int pendingEvents() { return static_cast<int>(inbox_->len()); }

  // ---- persistence ----
  std::size_t snapshot(const std::string& thread, bool has_thread) {
    return put(manager_->snapshot_json(has_thread ? std::optional<std::string_view>(thread) : std::nullopt));
  }
  // The snapshot JSON text (text_len bytes) in the input buffer; the checked restore. Restored
  // entry count, or a negative error code. On success the text buffer holds the report:
  // {"added":N,"highest":H,"skipped":["bg_1",…]} (H: the largest N of the snapshot's bg_N ids, -1
  // without one).
  int restore(const std::string& thread, double text_len) {
    auto r = manager_->restore_json(thread, std::string_view(input_.data(), static_cast<std::size_t>(text_len)));
    if (!r) return -fail(r.error());
    std::string text = "{\"added\":" + std::to_string(r->added) + ",\"highest\":";
    text += r->highest_number ? std::to_string(*r->highest_number) : std::string("-1");
    text += ",\"skipped\":[";
    for (std::size_t i = 0; i < r->skipped.size(); ++i) {
      if (i > 0) text += ',';
      write_json_string(text, r->skipped[i]);
    }
    text += "]}";
    put(std::move(text));
    return static_cast<int>(r->added);
  }

  // ---- ids granted by a shared allocator ----
  // Grants the numbers [first, first + count) (integers from 0 to 2^53). 0, or InvalidArgument's
  // code for other numbers (nothing granted).
  int grantIds(double first, double count) {
    auto exact = [](double v) {
      return std::isfinite(v) && v >= 0 && v <= static_cast<double>(kMaxExactHandle) && std::floor(v) == v;
    };
    if (!exact(first) || !exact(count))
      return fail(errors::invalid_argument("grantIds: first and count must be integers from 0 to 2^53"));
    manager_->grant_ids(static_cast<std::uint64_t>(first), static_cast<std::uint64_t>(count));
    return 0;
  }
  double idsLeft() const { return static_cast<double>(manager_->granted_ids_left()); }

  // ---- change tracking ----
  void trackChanges(bool on) { manager_->track_changed_threads(on); }
  // How many threads changed since the last call; when any, the text buffer holds their names as
  // a JSON array, in first-change order.
  int takeChangedThreads() {
    const auto threads = manager_->take_changed_threads();
    if (threads.empty()) return 0;
    std::string text = "[";
    for (std::size_t i = 0; i < threads.size(); ++i) {
      if (i > 0) text += ',';
      write_json_string(text, threads[i]);
    }
    text += ']';
    put(std::move(text));
    return static_cast<int>(threads.size());
  }

  // ---- introspection and retention ----
  std::size_t stats() { return put(dump(manager_->stats().to_json())); }
  std::size_t taskTree(const std::string& thread, bool has_thread) {
    return put(dump(manager_->task_tree(has_thread ? std::optional<std::string_view>(thread) : std::nullopt)));
  }
  bool forget(const std::string& id) { return manager_->forget(id); }

  // ---- the poll loop ----
  int runUntilIdle() { return static_cast<int>(exec_.run_until_idle()); }
  bool advance(double ms) { return exec_.advance(static_cast<std::uint64_t>(ms)); }
  bool setTime(double ms) { return exec_.set_time(static_cast<std::uint64_t>(ms)); }
  double now() const { return static_cast<double>(exec_.now_ms()); }
  double nextDeadline() const {
    auto d = exec_.next_deadline();
    return d ? static_cast<double>(*d) : -1.0;
  }

  // ---- the last error ----
  std::string lastErrorMessage() const { return last_error_message_; }
  int lastErrorStatus() const { return last_error_status_; }
  int lastErrorCode() const { return last_error_code_; }

 private:
  // The manager's hooks: cancel requests are always collected; the end hook is installed only
  // while a settle wants its summary (the manager builds a summary per completion while one is).
  ManagerHooks hooks(bool keep_summary) {
    ManagerHooks h;
    h.on_cancel_requested = [this](const TaskId& id) {
      cancel_requests_.emplace_back(id, manager_->cancel_reason(id).value_or(CancelReason::Cancel));
    };
    if (keep_summary) h.on_task_end = [this](const TaskSummary& s) { last_ended_ = s; };
    h.on_task_start = [this](const TaskId& id) { starts_.push_back(id); };
    h.on_forced_end = [this](const TaskId& id, TaskStatus status) { forced_ends_.emplace_back(id, status); };
    return h;
  }
  static bool whole(double v) {
    return std::isfinite(v) && v >= 0 && v <= static_cast<double>(kMaxExactHandle) && std::floor(v) == v;
  }
  // Settles a host task with `result`; with want_summary, its terminal summary is kept for
  // lastEnded(); with event_value, the completed event carries it instead of the result
  // (BackgroundTaskManager::settle). Returns 0 or an error code.
  int settle(double h, bool want_summary, TaskResult result, json* event_value) {
    if (want_summary) manager_->set_hooks(hooks(true));
    const int c = code(on_task(h, [&](auto task) {
      return event_value ? Internals::settle(*manager_, task, std::move(result), *event_value)
                         : Internals::settle(*manager_, task, std::move(result));
    }));
    if (want_summary) manager_->set_hooks(hooks(false));
    return c;
  }
  // bg_N with N <= 2^53 (no leading zeros) -> N; any other id -> a negative table handle.
  double handle_of(const TaskId& id) {
    if (id.size() > 3 && id.compare(0, 3, "bg_") == 0 && (id[3] != '0' || id.size() == 4)) {
      std::uint64_t n = 0;
      auto [end, ec] = std::from_chars(id.data() + 3, id.data() + id.size(), n);
      if (ec == std::errc() && end == id.data() + id.size() && n <= kMaxExactHandle) return static_cast<double>(n);
    }
    auto [it, inserted] = other_ids_.try_emplace(id, other_texts_.size());
    if (inserted) other_texts_.push_back(id);
    return -1.0 - static_cast<double>(it->second);
  }
  // Calls f with the task a handle names: its number (no id text is formatted or parsed) or its id.
  template <class F>
  std::invoke_result_t<F&, TaskNumber> on_task(double h, F&& f) {
    if (h >= 0) return f(TaskNumber{static_cast<std::uint64_t>(h)});
    const TaskId id = id_of(h);
    return f(std::string_view(id));
  }
  TaskId id_of(double h) const {
    if (h >= 0) {
      char text[24] = {'b', 'g', '_'};
      auto [end, ec] = std::to_chars(text + 3, text + sizeof text, static_cast<std::uint64_t>(h));
      (void)ec;
      return TaskId(text, static_cast<std::size_t>(end - text));
    }
    const auto k = static_cast<std::size_t>(-1.0 - h);
    return k < other_texts_.size() ? other_texts_[k] : TaskId();
  }
  std::size_t put(std::string s) {
    buffer_ = std::move(s);
    header_[kTextPtr] = static_cast<double>(reinterpret_cast<std::uintptr_t>(buffer_.data()));
    header_[kTextLen] = static_cast<double>(buffer_.size());
    return buffer_.size();
  }
  int fail(const Error& e) {
    last_error_message_ = e.message;
    last_error_status_ = e.status ? static_cast<int>(*e.status) : -1;
    last_error_code_ = code_of(e.code);
    return last_error_code_;
  }
  double fail_nan(const Error& e) {
    fail(e);
    return std::nan("");
  }
  int code(const Result<void>& r) { return r ? 0 : fail(r.error()); }

  std::unique_ptr<Clock> clock_;
  Executor exec_;
  std::shared_ptr<StateStore> store_;
  std::optional<InboxReceiver> inbox_;
  std::shared_ptr<BackgroundTaskManager> manager_;
  // A deque holds the (unmovable) scopes in place: no allocation per enterTask.
  std::deque<BackgroundTaskScope> scopes_;
  std::vector<std::pair<TaskId, CancelReason>> cancel_requests_;
  std::vector<TaskId> starts_;
  std::vector<std::pair<TaskId, TaskStatus>> forced_ends_;
  std::vector<Event> tapped_;
  SubscriptionId tap_ = 0;
  bool limited_ = false;  // limits were set once: spawns may be queued
  TaskSummary last_ended_;
  double header_[kHeaderSize] = {};
  std::vector<char> input_;
  std::vector<double> records_;
  std::unordered_map<std::string, int> intern_ids_;
  std::vector<std::string> strings_;
  // Ids that are not bg_N with N <= 2^53 (restored ids near the end of the range): handle -1-k.
  std::unordered_map<TaskId, std::size_t> other_ids_;
  std::vector<TaskId> other_texts_;
  std::string buffer_;
  std::string last_error_message_;
  int last_error_status_ = -1;
  int last_error_code_ = 0;
};

}  // namespace

EMSCRIPTEN_BINDINGS(bgtasks) {
  emscripten::constant("kMaxJsonDepth", static_cast<int>(bgtasks::kMaxJsonDepth));
  emscripten::constant("kMaxSnapshotDepth", static_cast<int>(bgtasks::kMaxSnapshotDepth));
  emscripten::constant("kMaxSnapshotBytes", static_cast<double>(bgtasks::kMaxSnapshotBytes));
  emscripten::class_<WasmRuntime>("WasmRuntime")
      .constructor<bool, double, int, int, bool, int, bool>()
      .function("headerPtr", &WasmRuntime::headerPtr)
      .function("inputPtr", &WasmRuntime::inputPtr)
      .function("intern", &WasmRuntime::intern)
      .function("spawn", &WasmRuntime::spawn)
      .function("idText", &WasmRuntime::idText)
      .function("complete", &WasmRuntime::complete)
      .function("failTask", &WasmRuntime::failTask)
      .function("lastEnded", &WasmRuntime::lastEnded)
      .function("emit", &WasmRuntime::emit)
      .function("enterTask", &WasmRuntime::enterTask)
      .function("leaveTask", &WasmRuntime::leaveTask)
      .function("armTimer", &WasmRuntime::armTimer)
      .function("takeFiredTimers", &WasmRuntime::takeFiredTimers)
      .function("get", &WasmRuntime::get)
      .function("list", &WasmRuntime::list)
      .function("hasRunning", &WasmRuntime::hasRunning)
      .function("cancel", &WasmRuntime::cancel)
      .function("cancelTree", &WasmRuntime::cancelTree)
      .function("cancelAll", &WasmRuntime::cancelAll)
      .function("takeCancelRequests", &WasmRuntime::takeCancelRequests)
      .function("takeStarts", &WasmRuntime::takeStarts)
      .function("takeForcedEnds", &WasmRuntime::takeForcedEnds)
      .function("setConcurrency", &WasmRuntime::setConcurrency)
      .function("setCancelGraceMs", &WasmRuntime::setCancelGraceMs)
      .function("beginShutdown", &WasmRuntime::beginShutdown)
      .function("finishShutdown", &WasmRuntime::finishShutdown)
      .function("setTap", &WasmRuntime::setTap)
      .function("takeTapped", &WasmRuntime::takeTapped)
      .function("armPlainTimer", &WasmRuntime::armPlainTimer)
      .function("sendMessage", &WasmRuntime::sendMessage)
      .function("takeAgentMessages", &WasmRuntime::takeAgentMessages)
      .function("drain", &WasmRuntime::drain)
      .function("pendingEvents", &WasmRuntime::pendingEvents)
      .function("snapshot", &WasmRuntime::snapshot)
      .function("restore", &WasmRuntime::restore)
      .function("grantIds", &WasmRuntime::grantIds)
      .function("idsLeft", &WasmRuntime::idsLeft)
      .function("trackChanges", &WasmRuntime::trackChanges)
      .function("takeChangedThreads", &WasmRuntime::takeChangedThreads)
      .function("stats", &WasmRuntime::stats)
      .function("taskTree", &WasmRuntime::taskTree)
      .function("forget", &WasmRuntime::forget)
      .function("runUntilIdle", &WasmRuntime::runUntilIdle)
      .function("advance", &WasmRuntime::advance)
      .function("setTime", &WasmRuntime::setTime)
      .function("now", &WasmRuntime::now)
      .function("nextDeadline", &WasmRuntime::nextDeadline)
      .function("lastErrorCode", &WasmRuntime::lastErrorCode)
      .function("lastErrorMessage", &WasmRuntime::lastErrorMessage)
      .function("lastErrorStatus", &WasmRuntime::lastErrorStatus);
}
