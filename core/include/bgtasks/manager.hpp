// The background task manager: awaken's BackgroundTaskManager on a cooperative executor.
// Task metadata lives in the state store (key `background_task_state`); the manager keeps one
// handle per spawned task (its body, cancellation token, captured inboxes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "bgtasks/cancellation.hpp"
#include "bgtasks/executor.hpp"
#include "bgtasks/inbox.hpp"
#include "bgtasks/lineage.hpp"
#include "bgtasks/result.hpp"
#include "bgtasks/shared_string.hpp"
#include "bgtasks/state_store.hpp"
#include "bgtasks/task_handle_map.hpp"
#include "bgtasks/types.hpp"

namespace bgtasks {

inline constexpr const char* kOrphanedError = "task orphaned: runtime restarted while running";
// The error of every task that a shutdown ended (docs/scheduling.md).
inline constexpr const char* kInterruptedError = "interrupted: host shutdown";

// Why a task's cancel was requested; the first request of a task records it. Timeout and Shutdown
// come from the manager itself; Grace is never a request reason (kept for hosts that report why a
// task was ended).
enum class CancelReason : std::uint8_t { Cancel, CancelTree, CancelAll, Run, Timeout, Shutdown, Grace };
const char* as_str(CancelReason r) noexcept;  // "cancel", "cancel_tree", …

// How many tasks may run at once (docs/scheduling.md). A spawn over a limit is queued: it gets
// its id and stored entry at once, its body starts when its thread and its type both have room.
struct ConcurrencyLimits {
  std::optional<std::size_t> per_thread = std::nullopt;           // running tasks per owner thread
  std::map<std::string, std::size_t, std::less<>> per_type = {};  // running tasks of each listed type
  bool empty() const noexcept { return !per_thread && per_type.empty(); }
  friend bool operator==(const ConcurrencyLimits&, const ConcurrencyLimits&) = default;
};

// spawn's arguments by name (the positional awaken forms stay), for designated initialisers:
//   m.spawn({.thread = "t1", .type = "shell", .description = "build"}, body);
// spawn_agent ignores `type` (a sub-agent's is "sub_agent"). The views are read during the call only.
struct SpawnOptions {
  // Every field has a default member initialiser: g++ -Wextra warns of a designated initialiser
  // that leaves out a field without one.
  std::string_view thread = {};  // the owner thread
  std::string_view type = {};    // the task type
  std::optional<std::string_view> name = std::nullopt;
  std::string_view description = {};
  TaskParentContext parent_context = {};
  // From the spawn, on the executor's clock: a task still live then ends failed with
  // "task timed out after N ms", and its body's cancel is requested (reason Timeout).
  std::optional<std::uint64_t> timeout_ms = std::nullopt;
};

// A child's arguments for ctx.spawn / ctx.spawn_agent: the child runs in its parent's thread, and
// its parent_context.task_id is the parent task (the ambient tool lineage, if any, fills the rest).
// ctx.spawn_agent ignores `type`.
struct ChildOptions {
  std::string_view type = {};
  std::optional<std::string_view> name = std::nullopt;
  std::string_view description = {};
  std::optional<std::uint64_t> timeout_ms = std::nullopt;  // as SpawnOptions::timeout_ms
};

using SubscriptionId = std::uint64_t;
inline constexpr const char* kReservedNames[] = {"parent", "self", "all", "broadcast"};

namespace detail {
struct ManagerInternals;  // bgtasks/manager_internals.hpp

// The part of a task that its body's context reaches. The manager's SpawnedTask derives from it;
// contexts and tokens share ownership of the SpawnedTask through it, so a copy that outlives the body
// (or the manager's record of the task) still refers to live state.
struct TaskState {
 protected:
  // Only the manager's SpawnedTask is a TaskState (TaskContextBase::executor() relies on it).
  TaskState(BackgroundTaskManager& m, TaskId&& id) : ambient{&m, std::move(id)} {}
  ~TaskState() = default;

 public:
  // The owner inbox captured at spawn (stamped with the owner thread); null when there was none.
  const InboxSender* owner_inbox() const noexcept { return owner_inbox_.has_channel() ? &owner_inbox_ : nullptr; }
  void set_owner_inbox(InboxSender sender) noexcept { owner_inbox_ = std::move(sender); }

  BackgroundTaskContext ambient;  // {manager, task id}: the ambient task around every step
  CancelState cancel;

 private:
  InboxSender owner_inbox_;  // without a channel when the manager had no owner inbox
};
}  // namespace detail

// What every task body's context offers. A context is one shared pointer to the task's state,
// so a body's frame holds 16 bytes for it and a copy costs one reference count. The manager makes
// contexts; a moved-from one is empty (only assignment and destruction are valid on it).
class TaskContextBase {
 public:
  explicit TaskContextBase(std::shared_ptr<detail::TaskState> task) noexcept : task_(std::move(task)) {}

  const TaskId& task_id() const noexcept { return task_->ambient.task_id; }
  // A token sharing this task's cancel state (cancel() on it cancels the task's body).
  CancellationToken cancel_token() const { return CancellationToken::share(task_, &task_->cancel); }
  // The executor the task runs on (its clock and timers); valid while that executor lives, also
  // after the manager's end.
  Executor& executor() const noexcept;
  // A custom event to the owner inbox; false with no inbox or a closed one, and once the task has
  // ended (a copy kept after the body, or a body the manager ended by force).
  bool emit(std::string_view event_type, json payload) const;
  bool is_cancelled() const noexcept { return task_->cancel.cancelled; }
  // Why the cancel was requested (nullopt before any); a cancel through the token reads as Cancel.
  std::optional<CancelReason> cancel_reason() const noexcept;
  // co_await ctx.cancelled(): resumes once the task's cancel is requested.
  CancellationToken::Awaiter cancelled() const noexcept { return CancellationToken::Awaiter(task_->cancel); }
  // co_await ctx.sleep(ms): true after ms on the executor's clock, false early on cancel.
  CancellableSleepAwaiter sleep(std::uint64_t ms) const noexcept {
    return {executor(), task_->cancel, saturating_add(executor().now_ms(), ms)};
  }
  // A child task of this one, in this task's thread, as JS ctx.spawn: body is a callable
  // (TaskContext) -> Co<TaskResult>, started at the next poll. While this task is live; a context
  // kept past its task's end (or its manager's) gets TaskTerminated, and the manager's refusals
  // (ShuttingDown, Disposed, DuplicateName, …) are returned as spawn returns them.
  template <class F>
  Result<TaskId> spawn(const ChildOptions& options, F&& body) const;
  // A sub-agent child: body is a callable (AgentTaskContext) -> Co<TaskResult>.
  template <class F>
  Result<TaskId> spawn_agent(const ChildOptions& options, F&& body) const;

 protected:
  // The live manager to spawn a child on and the child's SpawnOptions (views into `options` and
  // this task), or why this context cannot spawn.
  Result<BackgroundTaskManager*> child_spawn(const ChildOptions& options, SpawnOptions& out) const;

  std::shared_ptr<detail::TaskState> task_;
};

// What a plain task body receives (awaken's TaskContext, plus the executor's clock).
struct TaskContext : TaskContextBase {
  using TaskContextBase::TaskContextBase;
  // awaken's ctx.inbox: the owner inbox captured at spawn; null without one.
  const InboxSender* inbox() const noexcept { return task_->owner_inbox(); }
};

// What a sub-agent body receives: also its own inbox for agent_message events (the two ends are
// fields, so a body can move them out, as spawn_agent does).
struct AgentTaskContext : TaskContextBase {
  AgentTaskContext(std::shared_ptr<detail::TaskState> task, InboxSender tx, InboxReceiver rx) noexcept
      : TaskContextBase(std::move(task)), inbox_sender(std::move(tx)), inbox_receiver(std::move(rx)) {}
  // The owner inbox captured at spawn; null without one.
  const InboxSender* owner_inbox() const noexcept { return task_->owner_inbox(); }

  InboxSender inbox_sender;
  InboxReceiver inbox_receiver;
};

// A spawned task named by N of its id bg_N. Hosts that keep numbers (the JS binding) use it on
// their hot calls, to skip formatting and parsing ids (through bgtasks/manager_internals.hpp).
enum class TaskNumber : std::uint64_t {};

struct ManagerOptions {
  // Keep at most this many finished tasks per thread (newest kept); unlimited by default.
  std::optional<std::size_t> retain_finished = std::nullopt;
  // Capacity and overflow policy of each sub-agent inbox (default unbounded).
  InboxOptions agent_inbox = {};
  // Limits on running tasks (none by default). A limit of 0 makes every spawn fail with
  // InvalidArgument until set_concurrency() sets valid ones.
  ConcurrencyLimits concurrency = {};
  // After a cancel request, a body that has not ended within this many ms is ended by the manager
  // (cancelled). None (default): such a body keeps its task running, as in awaken.
  std::optional<std::uint64_t> cancel_grace_ms = std::nullopt;
};

struct ManagerStats {
  std::size_t running = 0;
  std::size_t completed = 0;
  std::size_t failed = 0;
  std::size_t cancelled = 0;
  std::size_t cancel_requested_running = 0;  // cancel said true, body still running
  std::size_t live_bodies = 0;
  std::size_t owner_inbox_depth = 0;
  std::uint64_t owner_inbox_dropped = 0;
  std::uint64_t agent_inbox_dropped = 0;
  std::size_t queued = 0;             // waiting for a concurrency slot (counted in `running` too)
  std::uint64_t listener_errors = 0;  // exceptions thrown by subscribe() listeners
  json to_json() const;
};

// What a checked restore (restore / restore_json) did.
struct RestoreReport {
  std::size_t added = 0;
  // Ids this thread already had: the stored entry (a live task among them) was kept over the
  // snapshot's copy, as awaken keeps it. In id order.
  std::vector<TaskId> skipped;
  // The largest N among the snapshot's bg_N ids, skipped ones included; none without one. A host
  // whose ids come from a shared allocator tells the allocator ids up to here are taken.
  std::optional<std::uint64_t> highest_number;
};

// Host notifications (the JS binding uses them to abort signals and resolve waits).
struct ManagerHooks {
  // Positional, as the two first hooks were before the others came: ManagerHooks{cancel, end}.
  ManagerHooks(std::function<void(const TaskId&)> cancel_requested = nullptr,
               std::function<void(const TaskSummary&)> task_end = nullptr,
               std::function<void(const TaskId&)> task_start = nullptr,
               std::function<void(const TaskId&, TaskStatus)> forced_end = nullptr)
      : on_cancel_requested(std::move(cancel_requested)),
        on_task_end(std::move(task_end)),
        on_task_start(std::move(task_start)),
        on_forced_end(std::move(forced_end)) {}
  std::function<void(const TaskId&)> on_cancel_requested;
  // After the completion commit and the terminal event, before retention may drop the task.
  std::function<void(const TaskSummary&)> on_task_end;
  // A queued task got its slot: its body starts (a host starts its host-driven body now).
  std::function<void(const TaskId&)> on_task_start;
  // The manager ended a task without its body (timeout, grace, shutdown, cancel of a queued task),
  // after on_task_end; a host drops its record of the body.
  std::function<void(const TaskId&, TaskStatus)> on_forced_end;
};

// Attached to its executor (an ExecutorClient): either may be destroyed first (docs/lifetime.md).
// Final: the destructor is not virtual, and nothing derives from a manager.
class BackgroundTaskManager final : private ExecutorClient {
 public:
  explicit BackgroundTaskManager(Executor& executor, ManagerOptions options = {});
  // Destroys every suspended body (their frames are freed; nothing runs, nothing is committed).
  // It may run from user code the manager called (a body dropping the last owner of its manager,
  // a callback, a capture's destructor): see docs/lifetime.md for what then happens.
  ~BackgroundTaskManager();
  BackgroundTaskManager(const BackgroundTaskManager&) = delete;
  BackgroundTaskManager& operator=(const BackgroundTaskManager&) = delete;

  // The executor the manager runs on; only while it exists (see executor_gone()).
  Executor& executor() const noexcept { return *executor_; }
  // The executor was destroyed first: everything the manager had on it is gone (bodies, timers),
  // spawns fail with Disposed, no task is live; reads of the store still work. docs/lifetime.md.
  bool executor_gone() const noexcept { return executor_ == nullptr; }

  // ---- setup (awaken) ----
  // Tasks capture the owner inbox at spawn; a later replacement does not reach them.
  void set_owner_inbox(InboxSender sender);
  bool has_owner_inbox() const noexcept { return owner_inbox_.has_value(); }
  // A manager keeps its first store: setting the same store again is ok, another one (or null) is
  // InvalidArgument and changes nothing.
  Result<void> set_store(std::shared_ptr<StateStore> store);
  const std::shared_ptr<StateStore>& store() const noexcept { return store_; }
  // May be called from inside a hook: the hook that is running finishes with the set it started with.
  void set_hooks(ManagerHooks hooks) { hooks_ = std::make_shared<const ManagerHooks>(std::move(hooks)); }
  void set_retain_finished(std::optional<std::size_t> n);

  // ---- spawning: the body starts at the next poll, never inside spawn ----
  // body: callable(TaskContext) -> Co<TaskResult>.
  template <class F>
  Result<TaskId> spawn(std::string_view owner_thread_id, std::string_view task_type,
                       std::optional<std::string_view> name, std::string_view description,
                       TaskParentContext parent_context, F&& body);
  template <class F>
  Result<TaskId> spawn(const SpawnOptions& options, F&& body);
  // body: callable(CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult>.
  template <class F>
  Result<TaskId> spawn_agent(std::string_view owner_thread_id, std::optional<std::string_view> name,
                             std::string_view description, TaskParentContext parent_context, F&& body);
  template <class F>
  Result<TaskId> spawn_agent(const SpawnOptions& options, F&& body);
  template <class F>
  Result<TaskId> spawn_agent_with_context(const SpawnOptions& options, F&& body);
  // body: callable(AgentTaskContext) -> Co<TaskResult>.
  template <class F>
  Result<TaskId> spawn_agent_with_context(std::string_view owner_thread_id, std::optional<std::string_view> name,
                                          std::string_view description, TaskParentContext parent_context, F&& body);

  // A host-driven task: the body lives outside (a JS promise); the host settles it.
  // With `sub_agent`, task_type is "sub_agent" and the task gets its own inbox (read it with
  // take_agent_messages): awaken's spawn_agent. Without it, a "sub_agent" type is only a type.
  Result<TaskId> spawn_host(std::string_view owner_thread_id, std::string_view task_type,
                            std::optional<std::string_view> name, std::string_view description,
                            TaskParentContext parent_context, bool sub_agent = false);
  Result<TaskId> spawn_host(const SpawnOptions& options, bool sub_agent = false);
  // Settles a live host task. Once cancel was requested the task ends cancelled whatever is
  // reported (a shutdown's request: failed, kInterruptedError). TaskNotFound, NotHostTask,
  // TaskTerminated (already settled, or ended by the manager: then nothing is recorded).
  Result<void> settle(std::string_view id, TaskResult result);
  Result<void> complete(std::string_view id, json result) { return settle(id, TaskResult::success(std::move(result))); }
  Result<void> fail(std::string_view id, std::string message) {
    return settle(id, TaskResult::failed(std::move(message)));
  }
  // A custom event from a live task (host bodies use this; coroutine bodies use ctx.emit).
  // False for an unknown or finished task, or without a (living) owner inbox.
  bool emit(std::string_view id, std::string_view event_type, json payload);
  // The pending agent_message events of a host-driven sub-agent, oldest first.
  std::vector<json> take_agent_messages(std::string_view id, std::size_t max = SIZE_MAX);
  std::size_t agent_inbox_len(std::string_view id) const;
  // Sets the ambient task for the scope (a host running the synchronous part of a body).
  BackgroundTaskScope enter_task(std::string_view id);

  // ---- queries (awaken) ----
  std::optional<TaskSummary> get(std::string_view id) const;
  // The thread's tasks in id order (bg_N numerically, then other ids).
  std::vector<TaskSummary> list(std::string_view owner_thread_id) const;
  bool has_running(std::string_view owner_thread_id) const;
  // True once cancel was requested for a task whose body is live.
  bool is_cancel_requested(std::string_view id) const;
  // Why the task's cancel was requested; nullopt for an unknown task or before any request.
  std::optional<CancelReason> cancel_reason(std::string_view id) const;
  // Waiting for a concurrency slot.
  bool is_queued(std::string_view id) const;

  // ---- scheduling (docs/scheduling.md) ----
  // Replaces the limits; a limit of 0 is refused (InvalidArgument, nothing changed). Queued tasks
  // that fit the new limits start at once (their bodies at the next poll).
  Result<void> set_concurrency(ConcurrencyLimits limits);
  const ConcurrencyLimits& concurrency() const noexcept { return options_.concurrency; }
  // Applies to cancels requested from now on.
  void set_cancel_grace_ms(std::optional<std::uint64_t> ms) { options_.cancel_grace_ms = ms; }
  // From now on spawns fail with ShuttingDown; every live (or queued) task's cancel is requested
  // with reason Shutdown, and each of them ends failed with kInterruptedError whatever its body
  // returns (queued ones at once). Tasks whose cancel was requested before stay `cancelled`.
  // Returns how many tasks it signalled.
  std::size_t begin_shutdown();
  // Ends every task still live (kInterruptedError; `cancelled` for one a user cancelled before),
  // without waiting for its body. Begins the shutdown first if needed. Returns how many it ended.
  std::size_t finish_shutdown();
  bool shutting_down() const noexcept { return shutting_down_; }

  // ---- fan-out ----
  // `listener` sees every event the manager produces (custom and terminal events; of `thread`
  // only, if given) as it is produced, whether or not an owner inbox took it; it never takes
  // events out of the inbox. An event produced while listeners run is delivered once the current
  // one has reached every listener. A listener's exception is caught and counted
  // (stats().listener_errors). Raw messages a body sends through its inbox sender are not events
  // of the manager and are not passed on.
  SubscriptionId subscribe(std::function<void(const Event&)> listener,
                           std::optional<std::string> thread = std::nullopt);
  // Safe from inside a listener; nothing more reaches it afterwards. False for an unknown id.
  bool unsubscribe(SubscriptionId id);

  // ---- cancellation (awaken's return values; docs/behaviour.md) ----
  bool cancel(std::string_view id);
  std::size_t cancel_tree(std::string_view id);
  std::size_t cancel_all(std::string_view owner_thread_id);
  std::size_t cancel_descendants_for_run(std::string_view run_id);

  // ---- live messages to a sub-agent ----
  Result<void> send_task_inbox_message(std::string_view id, std::string_view owner_thread_id,
                                       std::string_view sender_agent_id, std::string_view content);
  std::optional<TaskId> resolve_live_child_task(std::string_view parent_task_id, std::string_view id_or_name) const;
  std::optional<TaskId> resolve_live_child_run(std::string_view run_id, std::string_view id_or_name) const;

  // ---- persistence ----
  // The whole `background_task_state` value (every thread, running tasks included), or one thread's.
  BackgroundTaskStateSnapshot persisted_snapshot() const;
  BackgroundTaskStateSnapshot persisted_snapshot(std::string_view owner_thread_id) const;
  // awaken's restore_for_thread: existing ids skipped, bg_N bumps the counter, the owner is set,
  // running entries without a live body become failed "orphaned". Returns how many were added;
  // retain_finished applies afterwards (restored tasks count as older than every task that
  // ended in this manager). With granted ids the counter is left alone (see grant_ids).
  std::size_t restore_for_thread(std::string_view owner_thread_id, const BackgroundTaskStateSnapshot& snapshot);
  // The same, moving the entries out of a snapshot the caller no longer needs.
  std::size_t restore_for_thread(std::string_view owner_thread_id, BackgroundTaskStateSnapshot&& snapshot);
  // The checked forms (docs/ids-and-restore.md). As restore_for_thread, except that an entry whose
  // id is stored for another thread refuses the whole restore with IdConflict, naming the ids and
  // their threads, before anything changes (awaken would drop such an entry silently); ids this
  // thread already has are skipped and listed in the report. StoreNotConfigured without a store,
  // UnknownKey without the plugin's key, InvalidArgument while the manager is being destroyed.
  Result<RestoreReport> restore(std::string_view owner_thread_id, BackgroundTaskStateSnapshot snapshot);
  // Decodes and validates the whole JSON value first: an invalid one is InvalidSnapshot and
  // changes nothing. Then as restore().
  Result<RestoreReport> restore_json(std::string_view owner_thread_id, std::string_view snapshot_json);
  std::string snapshot_json(std::optional<std::string_view> owner_thread_id = std::nullopt) const;

  // ---- introspection and retention ----
  ManagerStats stats() const;
  // Forest of {task_id, task_type, description, status, name?, children:[…]}, in id order.
  json task_tree(std::optional<std::string_view> owner_thread_id = std::nullopt) const;
  // Drops a finished task (terminal status, body ended). True if it was finished and is gone now
  // (also when a commit hook's own forget of it got there first). A task the manager ended by
  // force can be forgotten while its body still runs; the body is kept until it returns.
  bool forget(std::string_view id);
  // N of the next id bg_N; once bg_18446744073709551615 is taken (ids_exhausted()), spawns are refused.
  // With granted ids: the first number left in the granted blocks; UINT64_MAX when none is left
  // (then ids_exhausted() is true and spawns fail with IdsUnavailable).
  std::uint64_t next_task_number() const noexcept {
    if (id_source_ != IdSource::Granted) return counter_;
    return granted_.empty() ? UINT64_MAX : granted_.front().next;
  }
  bool ids_exhausted() const noexcept {
    return id_source_ == IdSource::Granted ? granted_.empty() : id_source_ == IdSource::Exhausted;
  }

  // ---- ids granted by a shared allocator (a store shared by several managers) ----
  // Appends the block of numbers [first, first + count) (cut at UINT64_MAX; count 0 is ignored).
  // From the first grant on, spawns take ids only from granted blocks, in grant order, passing
  // over every number whose bg_N id is stored already (or held by a live task); none left:
  // IdsUnavailable, nothing changed. Restores no longer move the local counter; the numbers they
  // add are taken out of the blocks. Blocks are taken as given: the allocator keeps them disjoint.
  void grant_ids(std::uint64_t first, std::uint64_t count);
  // Granted numbers not yet handed out, less those this manager knows to be stored (a write by
  // anyone else to the state key may store more; spawn passes over those too). Saturates.
  std::uint64_t granted_ids_left() const;
  bool uses_granted_ids() const noexcept { return id_source_ == IdSource::Granted; }

  // ---- change tracking (for a host that saves threads it changed) ----
  // When on, every write of the manager's own to a thread's stored entries (a spawn's commit, a
  // task's end, a restore that wrote an entry, forget, retention's drops) records the thread.
  // Reads and cancel requests record nothing. Off by default. Turning it off clears the record.
  void track_changed_threads(bool on);
  // The recorded threads, each once, in the order of their first change since the last take;
  // the record is then empty.
  std::vector<std::string> take_changed_threads();

  // co_await manager.wait(id): the summary once the task's body has ended (at once if it is not
  // live); nullopt for an unknown id.
  class WaitAwaiter {
   public:
    WaitAwaiter(BackgroundTaskManager& m, std::string_view id) : m_(&m), id_(id) {}
    WaitAwaiter(const WaitAwaiter&) = delete;
    bool await_ready() const;
    void await_suspend(coro::coroutine_handle<> h);
    std::optional<TaskSummary> await_resume();

    // A node of a task's end-waiter list: also where the ending task's summary goes.
    struct Node : WaitNode {
      std::optional<TaskSummary>* summary = nullptr;
      bool manager_gone = false;  // woken by the manager's destructor: nothing left to read
    };

   private:
    BackgroundTaskManager* m_;
    TaskId id_;
    Waiter waiter_;
    Node node_;
    std::optional<TaskSummary> summary_;
  };
  WaitAwaiter wait(std::string_view id) { return WaitAwaiter(*this, id); }

 private:
  // The binding's and the tests' access to what follows (bgtasks/manager_internals.hpp).
  friend struct detail::ManagerInternals;
  // Host tasks addressed by number, settle keeping the event's value, host timers: documented in
  // bgtasks/manager_internals.hpp, which forwards to them.
  Result<void> settle(TaskNumber task, TaskResult result);
  Result<void> settle(std::string_view id, TaskResult result, json& event_value);
  Result<void> settle(TaskNumber task, TaskResult result, json& event_value);
  bool emit(TaskNumber task, std::string_view event_type, json payload);
  std::optional<CancelReason> cancel_reason(TaskNumber task) const;
  bool is_queued(TaskNumber task) const;
  Result<std::uint64_t> arm_host_timer(std::string_view id, std::uint64_t ms);
  std::vector<std::pair<std::uint64_t, bool>> take_fired_host_timers();
  std::uint64_t arm_plain_timer(std::uint64_t ms);

  struct SpawnedTask;
  friend struct SpawnedTask;
  // The executor's destructor: take everything off it (as the destructor does), then stay detached.
  void executor_ending() noexcept override;
  // What the manager has on its executor, taken out of the manager in one step (nothing of it is
  // user code yet), then destroyed without the manager (its frames' destructors may destroy it).
  struct ExecutorWork;
  ExecutorWork take_executor_work() noexcept;
  // Marks a stretch of manager code that calls user code (a body, a callback, a commit hook, a
  // frame's destructor), which may destroy the manager. Guards nest on the stack; the destructor
  // clears every open one, and the code after the user call checks alive() before it touches the
  // manager again.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
// The guard's address is stored while it lives and taken back in its destructor (or cleared by
// the manager's destructor); GCC 12 cannot see the latter and reports a dangling pointer.
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
  class UserCallGuard {
   public:
    explicit UserCallGuard(BackgroundTaskManager& m) noexcept : m_(&m), outer_(m.open_guards_) {
      m.open_guards_ = this;
    }
    ~UserCallGuard() {
      if (m_) m_->open_guards_ = outer_;
    }
    UserCallGuard(const UserCallGuard&) = delete;
    UserCallGuard& operator=(const UserCallGuard&) = delete;
    bool alive() const noexcept { return m_ != nullptr; }

   private:
    friend class BackgroundTaskManager;
    BackgroundTaskManager* m_;
    UserCallGuard* outer_;
  };
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif
  friend class TaskContextBase;  // reaches the executor through the SpawnedTask, spawns children
  friend class WaitAwaiter;
  enum class BodyKind : std::uint8_t { Plain, Agent, Host };

  // A queued task's body, built once the task gets its slot: the caller's callable moved here at
  // spawn (or, rarely, a frame built already: see place_limited).
  struct DeferredBody {
    virtual ~DeferredBody() = default;
    virtual Co<TaskResult> make(BackgroundTaskManager& m, const std::shared_ptr<SpawnedTask>& t) = 0;
  };
  template <class Fn, BodyKind K>
  struct DeferredBodyOf final : DeferredBody {
    explicit DeferredBodyOf(Fn&& fn) : f(std::move(fn)) {}
    explicit DeferredBodyOf(const Fn& fn) : f(fn) {}
    Co<TaskResult> make(BackgroundTaskManager& m, const std::shared_ptr<SpawnedTask>& t) override {
      if constexpr (K == BodyKind::Plain)
        return start_moved(m.make_task_context(t));
      else
        return start_moved(m.make_agent_context(t));
    }
    // As start_body, moving the callable into the holder frame (instantiated as with an lvalue,
    // as spawn's own calls are).
    template <class Ctx>
    Co<TaskResult> start_moved(Ctx ctx) {
      if constexpr (std::is_empty_v<Fn>)
        return f(std::move(ctx));
      else
        return hold_and_run<Fn&, Ctx>(std::move(f), std::move(ctx));
    }
    Fn f;
  };
  template <BodyKind K, class F>
  static std::unique_ptr<DeferredBody> defer_body(F&& f) {
    return std::make_unique<DeferredBodyOf<std::decay_t<F>, K>>(std::forward<F>(f));
  }

  // Builds the body's frame once the task's handle exists, or (a queued spawn) moves the callable
  // into a DeferredBody. Plain function pointers over the caller's lambdas: spawn is synchronous,
  // so nothing is stored and nothing is allocated.
  struct BodyFactory {
    Co<TaskResult> (*make)(void* fn, const std::shared_ptr<SpawnedTask>& t) = nullptr;
    void* fn = nullptr;
    std::unique_ptr<DeferredBody> (*defer)(void* fn) = nullptr;
    void* defer_fn = nullptr;
    template <class L, class D>
    static BodyFactory of(L& l, D& d) {
      return {[](void* f, const std::shared_ptr<SpawnedTask>& t) { return (*static_cast<L*>(f))(t); }, &l,
              [](void* f) { return (*static_cast<D*>(f))(); }, &d};
    }
  };
  Result<TaskId> spawn_impl(std::string_view owner, std::string_view task_type, std::optional<std::string_view> name,
                            std::string_view description, TaskParentContext& parent, BodyKind kind,
                            const BodyFactory& make_body, bool host_agent = false,
                            const std::uint64_t* timeout_ms = nullptr);
  [[gnu::noinline]] Error spawn_refusal() const;

  // ---- scheduling (manager.cpp, "scheduling") ----
  struct Limits;  // the counts of running tasks and the queue, once limits were set
  class Ticker;   // the manager's one timer fiber: deadlines and grace ends
  enum class DeadlineKind : std::uint8_t { Timeout, Grace };
  using DeadlineKey = std::pair<std::uint64_t, std::uint64_t>;  // {when, arming order}
  struct TaskTimers {
    std::optional<DeadlineKey> timeout;
    std::optional<DeadlineKey> grace;
    std::uint64_t timeout_ms = 0;
  };
  // A spawn under limits, once committed: start it, or queue it (queue_it: decided before the body
  // was built; `body` or `deferred` holds what it runs).
  // Out of line, as everything below: spawn's and finish's own paths stay as they were.
  [[gnu::noinline]] TaskId place_scheduled(SpawnedTask& t, bool queue_it, Co<TaskResult> body,
                                           std::unique_ptr<DeferredBody> deferred, const std::uint64_t* timeout_ms,
                                           std::uint64_t now);
  [[gnu::noinline]] std::unique_ptr<DeferredBody> defer_queued(const BodyFactory& make_body, SpawnedTask& t);
  void place_limited(SpawnedTask& t, bool queue_it, Co<TaskResult> body, std::unique_ptr<DeferredBody> deferred);
  [[gnu::noinline]] bool fits(std::string_view owner, std::string_view type) const;
  void claim_slot(SpawnedTask& t);
  void release_slot(SpawnedTask& t);
  void recount_slots();
  // Starts every queued task that fits, in queue order (a blocked one does not hold back later
  // ones of other threads and types).
  void start_eligible();
  void start_queued(SpawnedTask& t, const UserCallGuard& guard);  // guard: the caller's, open
  // Takes the task out of the schedule (queue, slot, timers) as it ends; true if it freed a slot.
  // Hands a queued task's unstarted callable to the caller, which destroys it (user code) when safe.
  [[gnu::noinline]] bool leave_schedule(SpawnedTask& t, std::unique_ptr<DeferredBody>& unstarted_body);
  void arm_deadline(SpawnedTask& t, DeadlineKind kind, std::uint64_t when, std::uint64_t timeout_ms = 0);
  void disarm_deadlines(SpawnedTask& t);
  void rearm_ticker();
  void run_due_deadlines();
  // Ends a live task without its body: commits `result` as is, then requests the body's cancel
  // (`reason`) so it can stop; what the body does afterwards is discarded.
  [[gnu::noinline]] void force_end(SpawnedTask& t, TaskResult result, CancelReason reason);
  // The end of a task whose cancel was requested: cancelled, or failed for a shutdown's.
  static TaskResult cancelled_result(const SpawnedTask& t);
  // Records the request (reason, wake-ups) and tells the host, as a first cancel request does.
  void signal_cancel(SpawnedTask& t, CancelReason reason);
  bool cancel_spawned(SpawnedTask& t, CancelReason reason);
  [[gnu::noinline]] void cancel_queued(SpawnedTask& t, CancelReason reason);
  std::size_t cancel_tree_impl(std::string_view root, CancelReason reason);
  struct ReadyBody;
  void update_spawn_refusal() noexcept;

  // ---- fan-out ----
  struct Listener {
    SubscriptionId id;
    std::optional<std::string> thread;
    std::shared_ptr<std::function<void(const Event&)>> fn;  // null once unsubscribed
  };
  [[gnu::noinline]] void publish(Event event);
  [[gnu::noinline]] bool emit_published(SpawnedTask& t, std::string_view event_type, json& payload);
  // finish's terminal event while listeners are subscribed; false if the manager was destroyed.
  [[gnu::noinline]] bool send_terminal_published(SpawnedTask& t, TaskResult& result, json* event_value);
  TaskContext make_task_context(const std::shared_ptr<SpawnedTask>& t);
  AgentTaskContext make_agent_context(const std::shared_ptr<SpawnedTask>& t);
  // Consumes result's value and error. event_value: see settle(task, result, event_value). The
  // caller keeps `t` alive (user code run here may forget it); false if the manager was destroyed.
  // forced: the manager ends the task (force_end), `result` stands whatever was requested.
  bool finish(SpawnedTask& t, TaskResult& result, json* event_value = nullptr, bool forced = false);
  // How cancel_tree and cancel_all count a task (awaken: it has a handle and its stored status is
  // not terminal, or for cancel_all missing); a live body is signalled as cancel() does.
  bool cancel_counted(SpawnedTask& t, bool count_missing_meta, CancelReason reason);
  SpawnedTask* find_spawned(std::string_view id);
  const SpawnedTask* find_spawned(std::string_view id) const;
  SpawnedTask* find_spawned(TaskNumber task);
  Result<void> settle_spawned(SpawnedTask* t, TaskResult& result, json* event_value = nullptr);
  // The store, held across a commit only while a commit hook (user code, which may drop the
  // manager and with it the store's last owner) can run; null otherwise (no reference count).
  std::shared_ptr<StateStore> hold_store_for_hook() const {
    return store_ && store_->has_commit_hook() ? store_ : nullptr;
  }
  bool emit_spawned(SpawnedTask* t, std::string_view event_type, json& payload);
  const BackgroundTaskStateSnapshot* state() const;
  const PersistedTaskMeta* meta(std::string_view id) const;
  void apply_retention(const SharedString& owner);
  // checked: refuse the ids of other threads (IdConflict) before any change. Without a store, or
  // while the manager is being destroyed, restores nothing.
  Result<RestoreReport> restore_entries(std::string_view owner, std::vector<const PersistedTaskMeta*>& entries,
                                        bool take, bool checked);
  Result<RestoreReport> restore_checked(std::string_view owner, std::vector<const PersistedTaskMeta*>& entries);
  // A spawn's id when the counter is not the source: the next granted number, taken and put in
  // counter_; or why there is none. Out of line: spawn_impl's counter path stays as it was.
  [[gnu::noinline]] std::optional<Error> take_other_id();
  // Granted ids: the number the next spawn takes, found without changing anything; commit it with
  // take_granted(). Nullopt: none left.
  std::optional<std::uint64_t> find_granted() const;
  void take_granted(std::uint64_t n);
  // Takes n out of the granted blocks (a restore stored bg_n).
  void carve_granted(std::uint64_t n);
  bool number_in_use(std::uint64_t n) const;
  void note_changed(std::string_view owner);

  // ---- indexes derived from the stored metas (duplicate names, retention order) ----
  // They are kept in step by the manager's own writes; any other write to the key (a commit, a
  // ReplaceAll, another manager on the same store) changes the key's version, and the next use
  // rebuilds them from the store.
  struct RetentionKey {
    std::uint64_t completed_at;
    std::uint64_t seq;
    TaskId id;
  };
  struct RetentionLess {
    bool operator()(const RetentionKey& a, const RetentionKey& b) const;
  };
  using FinishedSet = std::set<RetentionKey, RetentionLess>;
  bool indexes_fresh() const noexcept;
  void ensure_indexes();
  void index_add(const PersistedTaskMeta& m);
  void index_remove(const PersistedTaskMeta& m);
  // What an edit of the task records reports to the indexes: each record it removes or adds.
  // The indexes follow only when they matched the key as the edit began.
  class IndexFollower {
   public:
    void remove(const PersistedTaskMeta& m) {
      if (fresh_) manager_.index_remove(m);
    }
    void add(const PersistedTaskMeta& m) {
      if (fresh_) manager_.index_add(m);
    }

   private:
    friend class BackgroundTaskManager;
    IndexFollower(BackgroundTaskManager& m, bool fresh) : manager_(m), fresh_(fresh) {}
    BackgroundTaskManager& manager_;
    bool fresh_;
  };
  // The one way the task records are written (spawn, finish, restore, forget): edit(state,
  // indexes) changes the records and reports each one it removes or adds; the indexes take the
  // key's new version once the write committed. A commit hook (user code) may write the key first,
  // hence freshness is read inside the write, or destroy the manager: the caller checks `guard`.
  template <class Edit>
  Result<void> write_task_records(StateStore& store, const UserCallGuard& guard, Edit&& edit);
  static std::string name_key(std::string_view owner, std::string_view name);
  RetentionKey retention_key(const PersistedTaskMeta& m) const;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
// The frame holds the callable; a queued body's frame is instantiated from a holder's virtual
// function, which GCC attributes to this header even for a callable local to a test file.
#pragma GCC diagnostic ignored "-Wsubobject-linkage"
#endif
  template <class F, class Ctx>
  static Co<TaskResult> hold_and_run(std::decay_t<F> f, Ctx ctx) {
    co_return co_await f(std::move(ctx));
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  // Stateless callables are called directly (one frame); others are kept alive in a holder frame.
  template <class F, class Ctx>
  static Co<TaskResult> start_body(F&& f, Ctx ctx) {
    if constexpr (std::is_empty_v<std::decay_t<F>>) {
      return f(std::move(ctx));
    } else {
      return hold_and_run<F, Ctx>(std::forward<F>(f), std::move(ctx));
    }
  }

  Executor* executor_;
  ManagerOptions options_;
  // Shared so that a hook replaced while it runs stays alive until it returns.
  std::shared_ptr<const ManagerHooks> hooks_ = std::make_shared<const ManagerHooks>();
  UserCallGuard* open_guards_ = nullptr;  // innermost first
  bool destroying_ = false;               // in the destructor: spawns are refused
  bool shutting_down_ = false;            // begin_shutdown() was called: spawns are refused
  // One test on spawn's path for every refusal: destroying, shutting down, invalid limits.
  bool refuse_spawns_ = false;
  std::optional<InboxSender> owner_inbox_;
  std::shared_ptr<StateStore> store_;
  // Spawned tasks always have bg_N ids: keyed by N (find_spawned checks the spelling).
  struct TaskNumberOf {
    std::uint64_t operator()(const SpawnedTask& t) const noexcept;  // manager.cpp
  };
  detail::TaskHandleMap<SpawnedTask, TaskNumberOf> handles_;
  // The last spawn's owner thread and task type, shared by the following spawns that repeat them.
  SharedString last_owner_;
  SharedString last_type_;
  std::uint64_t index_version_ = 0;                             // key version the indexes reflect; 0: never built
  std::unordered_map<std::string, std::size_t> running_names_;  // name_key(owner, name) -> running count
  std::unordered_map<SharedString, FinishedSet> finished_;      // owner -> terminal tasks (retention only)
  std::uint64_t counter_ = 0;                                   // with granted ids: only the number a spawn is taking
  // Where spawns take ids: the counter; nowhere, once bg_<UINT64_MAX> was handed out or restored;
  // the granted blocks only, once a block was granted.
  enum class IdSource : std::uint8_t { Counter, Exhausted, Granted };
  IdSource id_source_ = IdSource::Counter;
  bool track_changes_ = false;
  struct IdBlock {
    std::uint64_t next;  // the block's first number not handed out
    std::uint64_t left;  // numbers from `next` on, at least 1
  };
  std::deque<IdBlock> granted_;               // in grant order; empty blocks are dropped
  std::vector<std::string> changed_threads_;  // in first-change order
  std::unordered_set<std::string> changed_seen_;
  std::uint64_t host_timer_counter_ = 0;
  std::uint64_t finish_counter_ = 0;
  std::uint64_t ended_agent_inbox_dropped_ = 0;  // drops counted by sub-agents that have ended
  // Bodies suspended in wait(), by the number of the task they wait for. Kept here rather than in
  // every SpawnedTask: waiting for a task's end is rare, and a SpawnedTask's 16 bytes are per task.
  std::unordered_map<std::uint64_t, WaitList> end_waiters_;
  // Shared with the timer coroutines, which may outlive the manager (they belong to the executor).
  std::shared_ptr<std::vector<std::pair<std::uint64_t, bool>>> fired_host_timers_ =
      std::make_shared<std::vector<std::pair<std::uint64_t, bool>>>();

  // ---- scheduling ----
  std::unique_ptr<Limits> limits_;  // null until limits were first set: spawns pay one test
  std::shared_ptr<Ticker> ticker_;  // made with the first deadline
  std::map<DeadlineKey, std::pair<std::uint64_t, DeadlineKind>> deadlines_;  // -> {task number, kind}
  std::unordered_map<std::uint64_t, TaskTimers> task_timers_;                // task number -> its keys
  std::uint64_t deadline_seq_ = 0;
  // Cores of forgotten tasks whose bodies still run after a forced end, by task number: kept
  // until the body returns (or the manager goes).
  std::unordered_map<std::uint64_t, std::shared_ptr<SpawnedTask>> zombies_;
  // Queued tasks' callables, by task number (host tasks and started ones have none).
  std::unordered_map<std::uint64_t, std::unique_ptr<DeferredBody>> deferred_;

  // ---- fan-out ----
  std::vector<Listener> listeners_;
  std::deque<Event> publish_queue_;  // produced while listeners ran: delivered after the current one
  bool publishing_ = false;
  bool listeners_dirty_ = false;  // unsubscribed during a delivery: compacted after it
  SubscriptionId last_subscription_ = 0;
  std::uint64_t listener_errors_ = 0;
};

template <class F>
Result<TaskId> BackgroundTaskManager::spawn(std::string_view owner, std::string_view task_type,
                                            std::optional<std::string_view> name, std::string_view description,
                                            TaskParentContext parent, F&& body) {
  auto make = [&](const std::shared_ptr<SpawnedTask>& t) {
    return start_body(std::forward<F>(body), make_task_context(t));
  };
  auto defer = [&] { return defer_body<BodyKind::Plain>(std::forward<F>(body)); };
  return spawn_impl(owner, task_type, name, description, parent, BodyKind::Plain, BodyFactory::of(make, defer));
}

template <class F>
Result<TaskId> BackgroundTaskManager::spawn(const SpawnOptions& o, F&& body) {
  auto make = [&](const std::shared_ptr<SpawnedTask>& t) {
    return start_body(std::forward<F>(body), make_task_context(t));
  };
  auto defer = [&] { return defer_body<BodyKind::Plain>(std::forward<F>(body)); };
  TaskParentContext parent = o.parent_context;
  return spawn_impl(o.thread, o.type, o.name, o.description, parent, BodyKind::Plain, BodyFactory::of(make, defer),
                    false, o.timeout_ms ? &*o.timeout_ms : nullptr);
}

template <class F>
Result<TaskId> BackgroundTaskManager::spawn_agent_with_context(std::string_view owner,
                                                               std::optional<std::string_view> name,
                                                               std::string_view description, TaskParentContext parent,
                                                               F&& body) {
  SpawnOptions o{.thread = owner,
                 .type = "sub_agent",
                 .name = name,
                 .description = description,
                 .parent_context = std::move(parent)};
  return spawn_agent_with_context(o, std::forward<F>(body));
}

template <class F>
Result<TaskId> BackgroundTaskManager::spawn_agent_with_context(const SpawnOptions& o, F&& body) {
  auto make = [&](const std::shared_ptr<SpawnedTask>& t) {
    return start_body(std::forward<F>(body), make_agent_context(t));
  };
  auto defer = [&] { return defer_body<BodyKind::Agent>(std::forward<F>(body)); };
  TaskParentContext parent = o.parent_context;
  return spawn_impl(o.thread, "sub_agent", o.name, o.description, parent, BodyKind::Agent, BodyFactory::of(make, defer),
                    false, o.timeout_ms ? &*o.timeout_ms : nullptr);
}

template <class F>
Result<TaskId> BackgroundTaskManager::spawn_agent(std::string_view owner, std::optional<std::string_view> name,
                                                  std::string_view description, TaskParentContext parent, F&& body) {
  SpawnOptions o{.thread = owner,
                 .type = "sub_agent",
                 .name = name,
                 .description = description,
                 .parent_context = std::move(parent)};
  return spawn_agent(o, std::forward<F>(body));
}

template <class F>
Result<TaskId> BackgroundTaskManager::spawn_agent(const SpawnOptions& o, F&& body) {
  // awaken's spawn_agent wraps spawn_agent_with_context, handing the three parts to the body.
  return spawn_agent_with_context(o, [f = std::forward<F>(body)](AgentTaskContext ctx) mutable {
    return f(ctx.cancel_token(), std::move(ctx.inbox_sender), std::move(ctx.inbox_receiver));
  });
}

template <class F>
Result<TaskId> TaskContextBase::spawn(const ChildOptions& options, F&& body) const {
  SpawnOptions o;
  auto m = child_spawn(options, o);
  if (!m) return std::move(m).error();
  return (*m)->spawn(o, std::forward<F>(body));
}

template <class F>
Result<TaskId> TaskContextBase::spawn_agent(const ChildOptions& options, F&& body) const {
  SpawnOptions o;
  auto m = child_spawn(options, o);
  if (!m) return std::move(m).error();
  return (*m)->spawn_agent_with_context(o, std::forward<F>(body));
}

}  // namespace bgtasks
