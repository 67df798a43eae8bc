#include "bgtasks/manager.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <unordered_set>

#include "bgtasks/codec.hpp"
#include "bgtasks/metrics.hpp"

namespace bgtasks {

// One spawned task: its fiber (the body's frames) and its TaskState part (id, cancellation state,
// and what awaken captures at spawn: the owner inbox), which contexts and tokens share; ownership
// is shared (std::shared_ptr) by the handle table, contexts and tokens. Metadata lives in the
// store, not here.
struct BackgroundTaskManager::SpawnedTask final : Fiber, detail::TaskState {
  SpawnedTask(BackgroundTaskManager& m, std::uint64_t n, TaskId task_id, SharedString owner_thread, SharedString type,
              BodyKind k)
      : Fiber(m.executor()),
        TaskState(m, std::move(task_id)),
        number(n),
        owner(std::move(owner_thread)),
        task_type(std::move(type)),
        kind(k) {}
  ~SpawnedTask() override { destroy_frame(); }

  const TaskId& id() const noexcept { return ambient.task_id; }

  void step() override {
    // Ambient context of a body: this task; no tool lineage (task-locals do not cross spawn).
    detail::AmbientTaskStep scope(&ambient);
    Fiber::step();
  }

  // The body returned. finish() holds this SpawnedTask while user code it runs may forget it. The frame
  // goes only once the end is recorded, since its captures may own the manager (as awaken's
  // running task holds its manager until then); nothing of this SpawnedTask or the manager is read after.
  void finished() override {
    if (zombie) [[unlikely]] {
      discard_body();
      return;
    }
    TaskResult result = body_result();
    auto body = frame();  // not const: libc++'s experimental handle has a non-const destroy()
    forget_top();         // the manager's destructor, if user code below runs it, leaves the frame to us
    ambient.manager->finish(*this, result);
    body.destroy();  // may destroy the manager, or free this SpawnedTask
  }

  // The body of a task the manager ended by force returned: its result (or what it threw) is
  // discarded; nothing is committed or reported.
  void discard_body() {
    zombie = false;
#if defined(__cpp_exceptions)
    try {
      (void)body_result();
    } catch (...) {
    }
#endif
    // A forgotten task's SpawnedTask is kept by the manager's zombie list until here.
    std::shared_ptr<SpawnedTask> self;
    if (BackgroundTaskManager* m = ambient.manager) {
      if (auto it = m->zombies_.find(number); it != m->zombies_.end()) {
        self = std::move(it->second);
        m->zombies_.erase(it);
      }
    }
    destroy_frame();  // may destroy the manager
  }                   // `self` goes last: it may free this SpawnedTask

  // The manager was destroyed while this body's step ran; the step has returned now.
  void abandoned() noexcept override { destroy_frame(); }

  // What the body returned, or what it threw as a failure. Returned, not assigned: no TaskResult
  // temporaries to destroy on the completion path.
  TaskResult body_result() {
#if defined(__cpp_exceptions)
    try {
      return frame().promise().take();
    } catch (const std::exception& e) {
      return TaskResult::failed(e.what());
    } catch (...) {
      return TaskResult::failed("task body threw a non-standard exception");
    }
#else
    return frame().promise().take();
#endif
  }

  void dying_for_teardown() noexcept { mark_dying(); }
  using Fiber::stepping;

  void start_body(Co<TaskResult> body) { start(body.release()); }

  // The body's frame is the fiber's top frame.
  coro::coroutine_handle<detail::Promise<TaskResult>> frame() const noexcept {
    return coro::coroutine_handle<detail::Promise<TaskResult>>::from_address(top().address());
  }
  // The fiber lets go of the frame first: its destructors may reach the manager's destructor,
  // which destroys the frames of the SpawnedTasks that still have one.
  void destroy_frame() noexcept {
    auto body = frame();
    forget_top();
    if (body) body.destroy();
  }
  // The id's key in the stored map, hashed from the number (no text parsed).
  detail::HashedId key() const noexcept { return {id(), detail::task_number_hash(number)}; }

  bool has_frame() const noexcept { return static_cast<bool>(top()); }

  std::uint64_t number;  // N of the id bg_N (spawned tasks are always numbered)
  SharedString owner;
  SharedString task_type;
  BodyKind kind;
  bool live = true;  // the task has not ended (its terminal status is not recorded)
  // Scheduling state (kQueued, kHoldsSlot, kTimers): one test on the completion path.
  std::uint8_t sched = 0;
  static constexpr std::uint8_t kQueued = 1;     // waiting for a concurrency slot: no body yet
  static constexpr std::uint8_t kHoldsSlot = 2;  // counted in the limits' running counts
  static constexpr std::uint8_t kTimers = 4;     // a deadline or grace timer is armed
  bool zombie = false;              // ended by the manager while its frame still runs: what it does is discarded
  std::uint8_t reason = kNoReason;  // CancelReason of the first cancel request
  static constexpr std::uint8_t kNoReason = 0xff;
  bool queued() const noexcept { return (sched & kQueued) != 0; }
  std::uint64_t finish_seq = 0;  // order of ending in this manager (retention's tie-break)
  // Sub-agents only (boxed: most tasks are not sub-agents, and every byte here is per task).
  struct AgentInbox {
    InboxSender tx;                        // the parent's end
    std::optional<InboxReceiver> host_rx;  // host-driven sub-agents: the SpawnedTask keeps the receiving end
  };
  std::unique_ptr<AgentInbox> agent;
};

inline std::uint64_t BackgroundTaskManager::TaskNumberOf::operator()(const SpawnedTask& t) const noexcept {
  return t.number;
}

// The counts behind the concurrency limits, kept once limits were first set.
namespace {
// Byte order without std::string_view::compare (see same_text below for why).
struct TextLess {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept {
    const std::size_t n = a.size() < b.size() ? a.size() : b.size();
    const int c = n == 0 ? 0 : std::memcmp(a.data(), b.data(), n);
    return c != 0 ? c < 0 : a.size() < b.size();
  }
};
using TextCounts = std::map<std::string, std::size_t, TextLess>;
}  // namespace

struct BackgroundTaskManager::Limits {
  // Tasks holding a slot: by owner thread (while a per-thread limit is set), and by type (the
  // limited types only).
  TextCounts per_thread;
  TextCounts per_type;
  // Queued tasks, grouped by (thread, type): a group's tasks fit or not together, so only its
  // oldest is a candidate, and a start costs a walk over the groups, not over the queue.
  struct Waiting {
    std::uint64_t seq;     // spawn order over all groups
    std::uint64_t number;  // the task
  };
  struct Group {
    std::string thread;
    std::string type;
    std::deque<Waiting> tasks;  // oldest first
  };
  std::map<std::string, Group, TextLess> groups;  // by group_key(thread, type)
  std::uint64_t next_seq = 0;
  bool scanning = false;  // start_eligible() is on the stack: its loop sees every change

  static std::string group_key(std::string_view thread, std::string_view type) {
    std::string k = std::to_string(thread.size());  // length-prefixed: no pair spells another's key
    k += ':';
    k += thread;
    k += type;
    return k;
  }
  void push(std::string_view thread, std::string_view type, std::uint64_t number) {
    auto it = groups.find(group_key(thread, type));
    if (it == groups.end())
      it = groups.emplace(group_key(thread, type), Group{std::string(thread), std::string(type), {}}).first;
    it->second.tasks.push_back({next_seq++, number});
  }
  void remove(std::string_view thread, std::string_view type, std::uint64_t number) {
    auto it = groups.find(group_key(thread, type));
    if (it == groups.end()) return;
    auto& tasks = it->second.tasks;
    // Usually the oldest (cancels and deadlines go in spawn order).
    for (auto w = tasks.begin(); w != tasks.end(); ++w) {
      if (w->number != number) continue;
      tasks.erase(w);
      break;
    }
    if (tasks.empty()) groups.erase(it);
  }
};

// The manager's timer fiber: not a coroutine. The executor resumes it (its step) when its timer
// fires; the step ends the tasks whose deadlines or grace periods are due, then re-arms.
class BackgroundTaskManager::Ticker final : public Fiber {
 public:
  explicit Ticker(BackgroundTaskManager& m) : Fiber(m.executor()), m_(&m) { timer_.waiter = &waiter_; }
  ~Ticker() override { executor().disarm(timer_); }
  void arm_at(std::uint64_t when) noexcept {
    waiter_.arm(this);
    executor().arm(timer_, when);
  }
  void disarm() noexcept { executor().disarm(timer_); }
  std::optional<std::uint64_t> armed_at() const noexcept {
    return timer_.pos != TimerNode::npos ? std::optional<std::uint64_t>(timer_.deadline) : std::nullopt;
  }
  void detach() noexcept {
    m_ = nullptr;
    disarm();
  }
  bool stepping_now() const noexcept { return stepping(); }

 protected:
  // While it runs, the manager does not re-arm it (a fiber is only ever queued while suspended):
  // run_due_deadlines picks up what came due meanwhile and re-arms once at its end.
  void step() override {
    if (m_) m_->run_due_deadlines();  // may destroy the manager (then m_ is null afterwards)
  }
  void finished() override {}

 private:
  BackgroundTaskManager* m_;
  Waiter waiter_;
  TimerNode timer_;
};

namespace {

// Id order: bg_N by N, then any other id lexicographically.
bool id_less(const TaskId& a, const TaskId& b) {
  auto na = parse_bg_number(a), nb = parse_bg_number(b);
  if (na && nb) return *na != *nb ? *na < *nb : a < b;
  if (na || nb) return na.has_value();
  return a < b;
}

// Sorts metas in id order, parsing each id once (id_less parses both ids at every comparison:
// most of a 1e5-entry restore went there).
// Returns the largest N among the bg_N ids.
std::optional<std::uint64_t> sort_by_id(std::vector<const PersistedTaskMeta*>& metas) {
  struct Keyed {
    bool numbered;
    std::uint64_t n;
    const PersistedTaskMeta* meta;
  };
  std::vector<Keyed> keyed;
  keyed.reserve(metas.size());
  for (const auto* m : metas) {
    const auto n = parse_bg_number(m->task_id);
    keyed.push_back({n.has_value(), n.value_or(0), m});
  }
  std::sort(keyed.begin(), keyed.end(), [](const Keyed& a, const Keyed& b) {
    if (a.numbered != b.numbered) return a.numbered;  // as id_less
    if (a.numbered && a.n != b.n) return a.n < b.n;
    if (const int c = a.meta->task_id.compare(b.meta->task_id)) return c < 0;
    return a.meta < b.meta;  // one id twice (entries of a list): in list order
  });
  for (std::size_t i = 0; i < keyed.size(); ++i) metas[i] = keyed[i].meta;
  // Numbered ids come first, by N: the last of them holds the largest.
  std::optional<std::uint64_t> highest;
  for (auto k = keyed.rbegin(); k != keyed.rend() && !highest; ++k)
    if (k->numbered) highest = k->n;
  return highest;
}

// The canonical id text of bg_N, in a caller's buffer (no allocation). Digits by hand, for the
// reason same_text gives.
struct IdText {
  char buf[24] = {'b', 'g', '_'};
  std::size_t len;
  explicit IdText(std::uint64_t n) noexcept {
    char digits[20];
    std::size_t k = 0;
    do {
      digits[k++] = static_cast<char>('0' + n % 10);
      n /= 10;
    } while (n != 0);
    for (len = 3; k > 0;) buf[len++] = digits[--k];
  }
  std::string_view view() const noexcept { return {buf, len}; }
};

// Text equality without std::string_view::compare: each more call of it in this file can make
// GCC stop inlining it, and the spawn path pays a call per compare (as it does for to_chars).
bool same_text(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

// N of a canonical bg_N id ("bg_07" and "bg_+7" name other ids than bg_7).
std::optional<std::uint64_t> canonical_bg_number(std::string_view id) noexcept {
  const auto n = parse_bg_number(id);
  if (n && same_text(IdText(*n).view(), id)) return n;
  return std::nullopt;
}

TaskId format_id(std::uint64_t n) {
  char buf[24] = {'b', 'g', '_'};
  auto [end, ec] = std::to_chars(buf + 3, buf + sizeof buf, n);
  (void)ec;
  return TaskId(buf, end);
}

}  // namespace

// ---- contexts ------------------------------------------------------------------------------------
// Every TaskState is a SpawnedTask, a Fiber that knows its executor.
Executor& TaskContextBase::executor() const noexcept {
  return static_cast<const BackgroundTaskManager::SpawnedTask&>(*task_).executor();
}

bool TaskContextBase::emit(std::string_view event_type, json payload) const {
  auto& spawned = static_cast<BackgroundTaskManager::SpawnedTask&>(*task_);
  // Ended (also by force, or with its manager): no event after the terminal one. While the task
  // lives its manager does too (the manager's destructor ends every task).
  if (!spawned.live) return false;
  if (!spawned.ambient.manager->listeners_.empty()) [[unlikely]]
    return spawned.ambient.manager->emit_published(spawned, event_type, payload);
  const InboxSender* inbox = task_->owner_inbox();
  if (!inbox) return false;
  return inbox->send_custom(task_id(), {}, event_type, std::move(payload)) == SendOutcome::Delivered;
}

Result<BackgroundTaskManager*> TaskContextBase::child_spawn(const ChildOptions& options, SpawnOptions& out) const {
  const auto& spawned = static_cast<const BackgroundTaskManager::SpawnedTask&>(*task_);
  // While the task is live its manager is (the manager's end, and its executor's, end every task);
  // an ended task's SpawnedTask may outlive its manager, so nothing of the manager is read then.
  if (!spawned.live)
    return Error{Errc::TaskTerminated, "task " + spawned.id() + " has ended: its context spawns no children",
                 std::nullopt};
  out.thread = spawned.owner.view();
  out.type = options.type;
  out.name = options.name;
  out.description = options.description;
  out.parent_context = TaskParentContext{};
  out.parent_context.task_id = spawned.id();
  out.timeout_ms = options.timeout_ms;
  return spawned.ambient.manager;
}

std::optional<CancelReason> TaskContextBase::cancel_reason() const noexcept {
  const auto& spawned = static_cast<const BackgroundTaskManager::SpawnedTask&>(*task_);
  if (spawned.reason != BackgroundTaskManager::SpawnedTask::kNoReason) return static_cast<CancelReason>(spawned.reason);
  if (spawned.cancel.cancelled) return CancelReason::Cancel;  // through the token itself
  return std::nullopt;
}

const char* as_str(CancelReason r) noexcept {
  switch (r) {
    case CancelReason::Cancel:
      return "cancel";
    case CancelReason::CancelTree:
      return "cancel_tree";
    case CancelReason::CancelAll:
      return "cancel_all";
    case CancelReason::Run:
      return "run";
    case CancelReason::Timeout:
      return "timeout";
    case CancelReason::Shutdown:
      return "shutdown";
    case CancelReason::Grace:
      return "grace";
  }
  return "cancel";
}

json ManagerStats::to_json() const {
  return json{{"running", running},
              {"completed", completed},
              {"failed", failed},
              {"cancelled", cancelled},
              {"cancel_requested_running", cancel_requested_running},
              {"live_bodies", live_bodies},
              {"owner_inbox_depth", owner_inbox_depth},
              {"owner_inbox_dropped", owner_inbox_dropped},
              {"agent_inbox_dropped", agent_inbox_dropped},
              {"queued", queued},
              {"listener_errors", listener_errors}};
}

// ---- lifecycle --------------------------------------------------------------------------------------
BackgroundTaskManager::BackgroundTaskManager(Executor& executor, ManagerOptions options)
    : executor_(&executor), options_(std::move(options)) {
  if (!options_.concurrency.empty()) {
    limits_ = std::make_unique<Limits>();  // no task yet: every count is 0
    update_spawn_refusal();                // a limit of 0 refuses spawns until set_concurrency
  }
  executor_->attach(*this);  // last: a constructor that throws leaves nothing attached
}

// Everything the manager keeps on its executor: the tasks' SpawnedTasks (their fibers and body frames),
// the SpawnedTasks of forgotten tasks whose bodies still run, queued tasks' callables, the timer fiber.
struct BackgroundTaskManager::ExecutorWork {
  detail::TaskHandleMap<SpawnedTask, TaskNumberOf> spawned_tasks;
  std::unordered_map<std::uint64_t, std::shared_ptr<SpawnedTask>> zombies;
  std::unordered_map<std::uint64_t, std::unique_ptr<DeferredBody>> deferred;
  std::shared_ptr<Ticker> ticker;

  // Needs nothing of the manager: a frame's destructor (user code) may destroy it meanwhile.
  // Frames first (they hold tokens that share their SpawnedTasks), then what queued tasks' callables
  // captured, then the SpawnedTasks (a SpawnedTask a context or token shares stays until that goes; it is never
  // scheduled again).
  void destroy_frames_and_callables() noexcept {
    ticker.reset();  // detached from the manager and its timer disarmed already
    spawned_tasks.for_each([](std::uint64_t, SpawnedTask& spawned) {
      if (!spawned.stepping()) spawned.destroy_frame();
    });
    for (auto& [n, spawned] : zombies)
      if (!spawned->stepping()) spawned->destroy_frame();
    deferred.clear();
  }
  void release_spawned() noexcept {
    spawned_tasks.clear();
    zombies.clear();
  }
};

BackgroundTaskManager::ExecutorWork BackgroundTaskManager::take_executor_work() noexcept {
  // The table is emptied before any frame is destroyed: a frame's destructors may call back in
  // (lookups then find nothing, spawns are refused) and must not see a table being iterated.
  ExecutorWork work{std::move(handles_), std::move(zombies_), std::move(deferred_), std::move(ticker_)};
  zombies_.clear();
  deferred_.clear();
  auto teardown = [&](SpawnedTask& spawned, const std::shared_ptr<SpawnedTask>& keep) {
    spawned.dying_for_teardown();
    spawned.live = false;  // a context kept elsewhere emits nothing more
    spawned.zombie = false;
    if (spawned.stepping()) {
      // Its body destroyed the manager from inside its step: the frame is still running. The
      // executor holds the SpawnedTask and destroys the frame once the step returns.
      executor_->abandon_after_step(spawned, keep);
    }
    spawned.ambient.manager = nullptr;
  };
  work.spawned_tasks.for_each(
      [&](std::uint64_t n, SpawnedTask& spawned) { teardown(spawned, work.spawned_tasks.share(n)); });
  for (auto& [n, spawned] : work.zombies) teardown(*spawned, spawned);
  if (work.ticker) {
    // The timer fiber: if a forced end it ran destroyed the manager, its step is on the stack.
    work.ticker->detach();
    if (work.ticker->stepping_now()) executor_->abandon_after_step(*work.ticker, work.ticker);
  }
  executor_->purge_dying();  // every queued fiber of ours in one pass
  // What named the tasks on the schedule: no task is left to start or to end by a deadline.
  deadlines_.clear();
  task_timers_.clear();
  if (limits_) {
    limits_->groups.clear();
    limits_->per_thread.clear();
    limits_->per_type.clear();
  }
  return work;
}

BackgroundTaskManager::~BackgroundTaskManager() {
  // Manager code further down this stack, which called the user code that destroys the manager,
  // learns that it is gone and returns without touching it.
  for (UserCallGuard* g = open_guards_; g; g = g->outer_) g->m_ = nullptr;
  open_guards_ = nullptr;
  destroying_ = true;
  update_spawn_refusal();
  std::optional<ExecutorWork> work;
  if (executor_) {  // else executor_ending() took it all while the executor still existed
    executor_->detach(*this);
    work.emplace(take_executor_work());
    work->destroy_frames_and_callables();  // nothing runs, nothing is committed
  }
  // What listeners captured goes now, while calls back in are refused.
  auto listeners = std::move(listeners_);
  listeners.clear();
  // What still waits for one of our tasks' ends is another manager's body or a detached
  // coroutine: it resumes with nothing to read.
  for (auto& [n, list] : end_waiters_) {
    list.for_each([](WaitNode& node) { static_cast<WaitAwaiter::Node&>(node).manager_gone = true; });
    list.wake_all(WakeReason::Signal);
  }
  if (work) work->release_spawned();
}

void BackgroundTaskManager::executor_ending() noexcept {
  // As the destructor, for what is on the executor; the manager stays, detached: spawns are
  // refused (Disposed), no task is live, the stored entries stay as they were (docs/lifetime.md).
  UserCallGuard guard(*this);  // frames' destructors are user code: they may destroy the manager
  ExecutorWork work = take_executor_work();
  executor_ = nullptr;
  update_spawn_refusal();
  work.destroy_frames_and_callables();
  if (guard.alive()) {
    // Nothing will end the tasks these wait for: they resume with nothing to read.
    for (auto& [n, list] : end_waiters_) {
      list.for_each([](WaitNode& node) { static_cast<WaitAwaiter::Node&>(node).manager_gone = true; });
      list.wake_all(WakeReason::Signal);
    }
    end_waiters_.clear();
  }
  work.release_spawned();
}

void BackgroundTaskManager::set_owner_inbox(InboxSender sender) { owner_inbox_ = std::move(sender); }

Result<void> BackgroundTaskManager::set_store(std::shared_ptr<StateStore> store) {
  if (!store) return errors::invalid_argument("set_store: the store is null");
  if (store_ == store) return {};
  if (store_) return errors::invalid_argument("a store is already set; a manager keeps its first store");
  store_ = std::move(store);
  return {};
}

void BackgroundTaskManager::set_retain_finished(std::optional<std::size_t> n) {
  options_.retain_finished = n;
  index_version_ = 0;  // the finished index is kept only under retention: rebuild it
  finished_.clear();
  if (!n || !store_) return;
  ensure_indexes();
  std::vector<SharedString> owners;
  for (const auto& [owner, set] : finished_) owners.push_back(owner);
  UserCallGuard guard(*this);
  for (const auto& owner : owners) {
    apply_retention(owner);
    if (!guard.alive()) return;
  }
}

const BackgroundTaskStateSnapshot* BackgroundTaskManager::state() const {
  return store_ ? store_->peek<BackgroundTaskStateKey>() : nullptr;
}

const PersistedTaskMeta* BackgroundTaskManager::meta(std::string_view id) const {
  const auto* s = state();
  if (!s) return nullptr;
  auto it = s->tasks.find(id);
  return it == s->tasks.end() ? nullptr : &it->second;
}

BackgroundTaskManager::SpawnedTask* BackgroundTaskManager::find_spawned(std::string_view id) {
  return const_cast<SpawnedTask*>(std::as_const(*this).find_spawned(id));
}

BackgroundTaskManager::SpawnedTask* BackgroundTaskManager::find_spawned(TaskNumber task) {
  return handles_.find(static_cast<std::uint64_t>(task));
}

const BackgroundTaskManager::SpawnedTask* BackgroundTaskManager::find_spawned(std::string_view id) const {
  const auto n = parse_bg_number(id);
  if (!n) return nullptr;
  const SpawnedTask* t = handles_.find(*n);
  // "bg_07" and "bg_+7" parse as 7 too, but only the canonical spelling was handed out.
  return t && t->id() == id ? t : nullptr;
}

// ---- spawning -------------------------------------------------------------------------------------
template <class Edit>
Result<void> BackgroundTaskManager::write_task_records(StateStore& store, const UserCallGuard& guard, Edit&& edit) {
  bool fresh = false;
  Result<void> r = store.modify<BackgroundTaskStateKey>([&](BackgroundTaskStateSnapshot& state) {
    if (!guard.alive()) return;
    fresh = indexes_fresh();  // here, after any commit hook that wrote the key before this write
    IndexFollower indexes(*this, fresh);
    edit(state, indexes);
  });
  if (guard.alive() && r && fresh) index_version_ = store.key_version<BackgroundTaskStateKey>();
  return r;
}

Result<TaskId> BackgroundTaskManager::spawn_impl(std::string_view owner, std::string_view task_type,
                                                 std::optional<std::string_view> name, std::string_view description,
                                                 TaskParentContext& parent, BodyKind kind, const BodyFactory& make_body,
                                                 bool host_agent, const std::uint64_t* timeout_ms) {
  // awaken's order: merge lineage, validate the name, take the id, commit, start the body. The
  // body's frame is made before the commit, so that a factory that throws leaves no stored entry.
  if (refuse_spawns_) [[unlikely]]
    return spawn_refusal();
  merge_ambient_parent_into(parent);
  if (name) {
    for (const char* reserved : kReservedNames)
      if (*name == reserved) return errors::reserved_name(*name);
    if (store_) {
      ensure_indexes();
      if (running_names_.count(name_key(owner, *name))) return errors::duplicate_name(*name);
    }
  }
  // One test on the counter's path, as before ids could be granted: with granted ids, the
  // number is put in counter_ (unused then otherwise) and taken from there.
  if (id_source_ != IdSource::Counter) [[unlikely]] {
    if (auto refused = take_other_id()) return std::move(*refused);
  }
  const std::uint64_t number = counter_;
  TaskId id = format_id(number);
  if (counter_ == UINT64_MAX) {
    if (id_source_ == IdSource::Counter) id_source_ = IdSource::Exhausted;
  } else {
    ++counter_;
  }
  if (!store_) return errors::store_not_configured();

  // What may allocate or throw comes before the commit, so a stored meta always gets a handle.
  auto spawned = std::allocate_shared<SpawnedTask>(detail::PoolAllocator<SpawnedTask>{}, *this, number, std::move(id),
                                                   last_owner_.reuse_for(owner), last_type_.reuse_for(task_type), kind);
  handles_.reserve(handles_.size() + 1);
  const TaskId& task_id = spawned->id();
  if (owner_inbox_) spawned->set_owner_inbox(owner_inbox_->for_thread(spawned->owner));
  UserCallGuard guard(*this);  // the body's factory and the commit hook are user code
  Co<TaskResult> body;
  std::unique_ptr<DeferredBody> deferred;  // a queued task's callable, built once it has a slot
  // Decided before the body is built: a queued body is not built until it gets its slot.
  const bool queue_it = limits_ && !fits(owner, task_type);
  std::string description_copy;
  std::optional<std::string> name_copy;
  if (kind == BodyKind::Host) {
    if (host_agent) {
      auto [tx, rx] = inbox_channel(options_.agent_inbox);
      spawned->agent = std::make_unique<SpawnedTask::AgentInbox>(SpawnedTask::AgentInbox{std::move(tx), std::move(rx)});
    }
  } else {
    // The factory moves the caller's callable away: a name or description that views into it
    // (a member of the callable) would dangle afterwards.
    description_copy.assign(description);
    description = description_copy;
    if (name) name = name_copy.emplace(*name);
    if (queue_it) [[unlikely]] {
      deferred = defer_queued(make_body, *spawned);
    } else {
      body = make_body.make(make_body.fn, spawned);
    }
    if (!guard.alive()) return errors::invalid_argument("spawn refused: the manager was destroyed");
    // The factory is user code: it may have spawned a running task of the same name meanwhile.
    if (name) {
      ensure_indexes();
      if (running_names_.count(name_key(owner, *name))) return errors::duplicate_name(*name);
    }
    handles_.reserve(handles_.size() + 1);  // again: the factory may have spawned
  }

  // awaken's upsert, written in place (no action, no meta copies).
  const std::uint64_t now = executor_->now_ms();
  const auto store_hold = hold_store_for_hook();
  StateStore* store = store_.get();
  auto r = write_task_records(*store, guard, [&](BackgroundTaskStateSnapshot& state, IndexFollower& indexes) {
    auto [it, inserted] = state.tasks.try_emplace(spawned->key());
    PersistedTaskMeta& m = it->second;
    if (!inserted) {
      indexes.remove(m);
      m = PersistedTaskMeta{};
    }
    m.task_id = task_id;
    m.owner_thread_id = spawned->owner;
    m.task_type = spawned->task_type;
    if (name) m.name.emplace(*name);
    if (kind == BodyKind::Host)
      m.description = description;
    else
      m.description = std::move(description_copy);
    m.status = TaskStatus::Running;
    m.created_at_ms = now;
    m.parent_context = std::move(parent);
    indexes.add(m);
  });
  if (!guard.alive()) return errors::invalid_argument("spawn refused: the manager was destroyed");
  if (!r) return r.error();
  if (track_changes_) [[unlikely]]
    note_changed(spawned->owner);

  SpawnedTask& t = *spawned;
  handles_.insert(std::move(spawned));  // reserved above (a commit hook that spawns may use the room up)
  if (limits_ || timeout_ms) [[unlikely]]
    return place_scheduled(t, queue_it, std::move(body), std::move(deferred), timeout_ms, now);
  if (body.valid()) t.start_body(std::move(body));
  return t.id();
}

std::unique_ptr<BackgroundTaskManager::DeferredBody> BackgroundTaskManager::defer_queued(const BodyFactory& make_body,
                                                                                         SpawnedTask& t) {
  auto deferred = make_body.defer(make_body.defer_fn);
  if (t.kind == BodyKind::Agent) {
    // Messages may reach a queued sub-agent: its inbox exists from the spawn on (the receiving end
    // waits in the SpawnedTask until the body is built).
    auto [tx, rx] = inbox_channel(options_.agent_inbox);
    t.agent = std::make_unique<SpawnedTask::AgentInbox>(SpawnedTask::AgentInbox{std::move(tx), std::move(rx)});
  }
  return deferred;
}

TaskId BackgroundTaskManager::place_scheduled(SpawnedTask& t, bool queue_it, Co<TaskResult> body,
                                              std::unique_ptr<DeferredBody> deferred, const std::uint64_t* timeout_ms,
                                              std::uint64_t now) {
  if (timeout_ms) arm_deadline(t, DeadlineKind::Timeout, saturating_add(now, *timeout_ms), *timeout_ms);
  if (!limits_) {
    if (body.valid()) t.start_body(std::move(body));
    return t.id();
  }
  TaskId id = t.id();  // placing may start queued tasks (user code): `t` may go meanwhile
  place_limited(t, queue_it, std::move(body), std::move(deferred));
  return id;
}

Error BackgroundTaskManager::spawn_refusal() const {
  if (destroying_) return errors::invalid_argument("spawn refused: the manager is being destroyed");
  if (!executor_) return errors::executor_gone();
  if (shutting_down_) return errors::shutting_down();
  return errors::invalid_argument("spawn refused: concurrency limits must be at least 1");
}

TaskContext BackgroundTaskManager::make_task_context(const std::shared_ptr<SpawnedTask>& t) { return TaskContext(t); }

AgentTaskContext BackgroundTaskManager::make_agent_context(const std::shared_ptr<SpawnedTask>& t) {
  if (t->agent && t->agent->host_rx) {  // a queued sub-agent: its inbox was made at spawn
    InboxReceiver rx = std::move(*t->agent->host_rx);
    t->agent->host_rx.reset();
    return AgentTaskContext(t, t->agent->tx, std::move(rx));
  }
  auto [tx, rx] = inbox_channel(options_.agent_inbox);
  t->agent = std::make_unique<SpawnedTask::AgentInbox>(SpawnedTask::AgentInbox{tx, std::nullopt});
  return AgentTaskContext(t, std::move(tx), std::move(rx));
}

Result<TaskId> BackgroundTaskManager::spawn_host(std::string_view owner, std::string_view task_type,
                                                 std::optional<std::string_view> name, std::string_view description,
                                                 TaskParentContext parent, bool sub_agent) {
  return spawn_impl(owner, sub_agent ? std::string_view("sub_agent") : task_type, name, description, parent,
                    BodyKind::Host, {}, sub_agent);
}

Result<TaskId> BackgroundTaskManager::spawn_host(const SpawnOptions& o, bool sub_agent) {
  TaskParentContext parent = o.parent_context;
  return spawn_impl(o.thread, sub_agent ? std::string_view("sub_agent") : o.type, o.name, o.description, parent,
                    BodyKind::Host, {}, sub_agent, o.timeout_ms ? &*o.timeout_ms : nullptr);
}

// ---- completion -------------------------------------------------------------------------------------
bool BackgroundTaskManager::finish(SpawnedTask& t, TaskResult& result, json* event_value, bool forced) {
  // The commit hook, the inbox's fallback, the end hook and retention's commits run user code.
  UserCallGuard guard(*this);
  const bool tap = !listeners_.empty();
  // `t` is read after the commit hook and after the fallback, either of which may forget the task
  // (or destroy the manager): hold it while one of them can run (listeners too). Nothing reads
  // `t` after the end hook, and retention only forgets.
  std::shared_ptr<SpawnedTask> hold_spawned;
  if ((store_ && store_->has_commit_hook()) || (t.owner_inbox() && t.owner_inbox()->is_closed()) || tap)
    hold_spawned = handles_.share(t.number);
  t.live = false;
  // Set once the stored meta has left the retention index: the index key reads finish_seq, and a
  // meta already terminal (written by someone else, or restored as orphaned) is indexed under 0.
  const std::uint64_t finish_seq = ++finish_counter_;
  // Once cancel was requested, the task ends cancelled (failed, for a shutdown's request); a late
  // value is discarded. A forced end brings its own result.
  if (t.cancel.cancelled && !forced) result = cancelled_result(t);
  bool freed_slot = false;
  // A queued task's callable, never started: destroyed once the end is recorded and reported, so
  // its destructor (user code) sees the task ended rather than between two states.
  std::unique_ptr<DeferredBody> unstarted_body;
  if (t.sched != 0) [[unlikely]]
    freed_slot = leave_schedule(t, unstarted_body);
  const std::uint64_t now = executor_->now_ms();
  // The list, not an iterator: user code runs before its use, and a wait() it polls into may
  // rehash the map (elements never move).
  WaitList* end_waiters = nullptr;
  if (!end_waiters_.empty())
    if (auto it = end_waiters_.find(t.number); it != end_waiters_.end()) end_waiters = &it->second;
  // The end as the stored entry and this task tell it, for when the commit could not build it.
  auto summary_from_store = [&] {
    const auto* m = meta(t.id());
    TaskSummary s =
        m ? m->to_summary() : TaskSummary{t.id(), t.task_type.str(), {}, result.status(), {}, {}, 0, now, {}};
    s.status = result.status();
    s.completed_at_ms = now;
    return s;
  };
  const bool wants_summary = (end_waiters && !end_waiters->empty()) || static_cast<bool>(hooks_->on_task_end);
  std::optional<TaskSummary> summary;

  // The completion commit rewrites the task's stored meta with its terminal fields, in place
  // (awaken upserts the whole spawn-time meta: see docs/awaken-differences.md).
  // The terminal event needs the value and the error afterwards; otherwise they are moved. A
  // Completed event given its own value (event_value) does not need the result's.
  const bool event_carries_own_value = event_value != nullptr && result.kind == TaskResult::Kind::Success;
  const bool keep_result = (t.owner_inbox() != nullptr || tap) && !event_carries_own_value;
  const auto store_hold = hold_store_for_hook();
  StateStore* store = store_.get();
  auto write = [&](BackgroundTaskStateSnapshot& state, IndexFollower& indexes) {
    auto [it, inserted] = state.tasks.try_emplace(t.key());
    PersistedTaskMeta& m = it->second;
    if (inserted) {
      m.task_id = t.id();
      m.owner_thread_id = t.owner;
      m.task_type = t.task_type;
    } else {
      indexes.remove(m);
    }
    t.finish_seq = finish_seq;
    m.status = result.status();
    m.error.reset();
    m.result.reset();
    if (result.kind == TaskResult::Kind::Success) {
      if (keep_result)
        m.result = result.value;
      else
        m.result = std::move(result.value);
    }
    if (result.kind == TaskResult::Kind::Failed) {
      if (keep_result)
        m.error = result.error;
      else
        m.error = std::move(result.error);
    }
    m.completed_at_ms = now;
    indexes.add(m);
    if (wants_summary) summary = m.to_summary();
  };
  Result<void> committed =
      store ? write_task_records(*store, guard, write) : Result<void>(errors::store_not_configured());
  if (!guard.alive()) return false;
  t.finish_seq = finish_seq;  // also when the commit failed
  if (committed && track_changes_) [[unlikely]]
    note_changed(t.owner);
  if (!committed) {
    // awaken: counted and logged; the stored meta stays `running` (a zombie entry).
    // awaken labels by how the task was spawned: spawn_agent (here also a host sub-agent) or spawn,
    // whatever task type a plain spawn gave.
    const bool spawned_as_agent = t.kind == BodyKind::Agent || (t.kind == BodyKind::Host && t.agent);
    metrics::increment_counter(metrics::kCommitFailuresTotal,
                               {{"operation", spawned_as_agent ? "sub_agent_completion" : "task_completion"}});
    if (wants_summary) summary = summary_from_store();
  }
  // The waiters get the summary before any user code runs below: if that code destroys the
  // manager, they still resume with it (the destructor wakes them).
  if (end_waiters) end_waiters->for_each([&](WaitNode& n) { *static_cast<WaitAwaiter::Node&>(n).summary = summary; });
  if (tap) [[unlikely]] {
    if (!send_terminal_published(t, result, event_carries_own_value ? event_value : nullptr)) return false;
  } else if (const InboxSender* inbox = t.owner_inbox()) {
    // A copy of event_value: the caller's is taken only once the event is queued.
    if (event_carries_own_value) result.value = *event_value;
    const SendOutcome sent = inbox->send_event(Event::terminal(t.id(), t.owner, std::move(result)));
    if (event_carries_own_value && sent == SendOutcome::Delivered) *event_value = nullptr;
    if (!guard.alive()) return false;  // a closed inbox's fallback may have destroyed the manager
  }

  // Retention may free `t`: keep the owner (only then; a copy per completion otherwise).
  std::optional<SharedString> owner;
  if (options_.retain_finished) owner = t.owner;
  if (end_waiters) {
    end_waiters->wake_all(WakeReason::Signal);  // schedules them; none runs before the erase
    end_waiters_.erase(t.number);               // by key, for the same reason (the commit hook, on_closed)
  }
  if (t.agent) {
    t.agent->host_rx.reset();  // a finished host sub-agent's inbox is closed, like a dropped receiver
    ended_agent_inbox_dropped_ += t.agent->tx.dropped();
  }
  if (hooks_->on_task_end) {
    const auto hooks = hooks_;  // the hook may replace them
    // Installed by user code during this end (the commit hook, a fallback): no summary yet.
    if (!summary) summary = summary_from_store();
    hooks->on_task_end(*summary);
    if (!guard.alive()) return false;
  }
  if (unstarted_body) {
    unstarted_body.reset();
    if (!guard.alive()) return false;
  }
  if (owner) apply_retention(*owner);
  if (freed_slot && guard.alive()) start_eligible();
  return guard.alive();
}

void BackgroundTaskManager::apply_retention(const SharedString& owner) {
  if (!options_.retain_finished || !store_) return;
  // The thread's finished tasks, oldest first (RetentionLess); the newest n stay.
  ensure_indexes();
  auto it = finished_.find(owner);
  if (it == finished_.end() || it->second.size() <= *options_.retain_finished) return;
  const std::size_t excess = it->second.size() - *options_.retain_finished;
  // forget() edits the set: take the ids first.
  std::vector<TaskId> victims;
  victims.reserve(excess);
  for (auto k = it->second.begin(); victims.size() < excess; ++k) victims.push_back(k->id);
  UserCallGuard guard(*this);  // each forget commits (the commit hook is user code)
  for (const auto& id : victims) {
    forget(id);
    if (!guard.alive()) return;
  }
}

// ---- indexes ----------------------------------------------------------------------------------------
// Oldest first: tasks finished elsewhere (restored, or made terminal by an outside write: seq 0)
// before the ones that ended in this manager, which go in the order they ended; among the former,
// completion time, then id order. Completion times of other clocks, or of a system clock that
// stepped back, never reorder the tasks that ended here.
bool BackgroundTaskManager::RetentionLess::operator()(const RetentionKey& a, const RetentionKey& b) const {
  if (a.seq != b.seq) return a.seq < b.seq;
  if (a.completed_at != b.completed_at) return a.completed_at < b.completed_at;
  return id_less(a.id, b.id);
}

std::string BackgroundTaskManager::name_key(std::string_view owner, std::string_view name) {
  // Length-prefixed so that no (owner, name) pair spells another's key.
  std::string k = std::to_string(owner.size());
  k += ':';
  k += owner;
  k += name;
  return k;
}

BackgroundTaskManager::RetentionKey BackgroundTaskManager::retention_key(const PersistedTaskMeta& m) const {
  const SpawnedTask* t = find_spawned(m.task_id);
  return {m.completed_at_ms.value_or(0), t ? t->finish_seq : 0, m.task_id};
}

bool BackgroundTaskManager::indexes_fresh() const noexcept {
  return store_ && index_version_ != 0 && index_version_ == store_->key_version<BackgroundTaskStateKey>();
}

void BackgroundTaskManager::ensure_indexes() {
  if (indexes_fresh()) return;
  running_names_.clear();
  finished_.clear();
  if (const auto* s = state())
    for (const auto& [id, m] : s->tasks) index_add(m);
  // Before the key's first write (version 0) the indexes stay empty and are rebuilt at next use.
  index_version_ = store_ ? store_->key_version<BackgroundTaskStateKey>() : 0;
}

void BackgroundTaskManager::index_add(const PersistedTaskMeta& m) {
  if (!is_terminal(m.status)) {
    if (m.name) ++running_names_[name_key(m.owner_thread_id, *m.name)];
  } else if (options_.retain_finished) {
    auto& set = finished_[m.owner_thread_id];
    set.emplace_hint(set.end(), retention_key(m));  // usually the newest
  }
}

void BackgroundTaskManager::index_remove(const PersistedTaskMeta& m) {
  if (!is_terminal(m.status)) {
    if (!m.name) return;
    auto it = running_names_.find(name_key(m.owner_thread_id, *m.name));
    if (it != running_names_.end() && --it->second == 0) running_names_.erase(it);
  } else if (options_.retain_finished) {
    auto it = finished_.find(m.owner_thread_id);
    if (it == finished_.end()) return;
    it->second.erase(retention_key(m));
    if (it->second.empty()) finished_.erase(it);
  }
}

Result<void> BackgroundTaskManager::settle(std::string_view id, TaskResult result) {
  return settle_spawned(find_spawned(id), result);
}

Result<void> BackgroundTaskManager::settle(TaskNumber task, TaskResult result) {
  return settle_spawned(find_spawned(task), result);
}

Result<void> BackgroundTaskManager::settle(std::string_view id, TaskResult result, json& event_value) {
  return settle_spawned(find_spawned(id), result, &event_value);
}

Result<void> BackgroundTaskManager::settle(TaskNumber task, TaskResult result, json& event_value) {
  return settle_spawned(find_spawned(task), result, &event_value);
}

Result<void> BackgroundTaskManager::settle_spawned(SpawnedTask* t, TaskResult& result, json* event_value) {
  if (!t) return errors::task_not_found();
  if (t->kind != BodyKind::Host) return errors::not_host_task(t->id());
  if (!t->live) {
    const auto* m = meta(t->id());
    return errors::task_terminated(m ? m->status : result.status());
  }
  finish(*t, result, event_value);
  return {};
}

bool BackgroundTaskManager::emit(std::string_view id, std::string_view event_type, json payload) {
  return emit_spawned(find_spawned(id), event_type, payload);
}

bool BackgroundTaskManager::emit(TaskNumber task, std::string_view event_type, json payload) {
  return emit_spawned(find_spawned(task), event_type, payload);
}

bool BackgroundTaskManager::emit_spawned(SpawnedTask* t, std::string_view event_type, json& payload) {
  if (!t || !t->live) return false;
  if (!listeners_.empty()) [[unlikely]]
    return emit_published(*t, event_type, payload);
  const InboxSender* inbox = t->owner_inbox();
  if (!inbox) return false;
  return inbox->send_custom(t->id(), t->owner, event_type, std::move(payload)) == SendOutcome::Delivered;
}

bool BackgroundTaskManager::send_terminal_published(SpawnedTask& t, TaskResult& result, json* event_value) {
  UserCallGuard guard(*this);
  if (event_value) result.value = *event_value;            // the event carries the caller's value
  Event event = Event::terminal(t.id(), t.owner, result);  // the listeners' copy
  if (const InboxSender* inbox = t.owner_inbox()) {
    const SendOutcome sent = inbox->send_event(Event::terminal(t.id(), t.owner, std::move(result)));
    if (event_value && sent == SendOutcome::Delivered) *event_value = nullptr;
    if (!guard.alive()) return false;  // a closed inbox's fallback may have destroyed the manager
  }
  publish(std::move(event));
  return guard.alive();
}

bool BackgroundTaskManager::emit_published(SpawnedTask& t, std::string_view event_type, json& payload) {
  Event event(t.id(), t.owner, event_type, json(payload));  // the listeners' copy
  bool delivered = false;
  if (const InboxSender* inbox = t.owner_inbox()) {
    UserCallGuard guard(*this);  // a closed inbox's fallback is user code
    delivered = inbox->send_custom(t.id(), t.owner, event_type, std::move(payload)) == SendOutcome::Delivered;
    if (!guard.alive()) return delivered;
  }
  publish(std::move(event));
  return delivered;
}

std::vector<json> BackgroundTaskManager::take_agent_messages(std::string_view id, std::size_t max) {
  std::vector<json> out;
  SpawnedTask* t = find_spawned(id);
  // A queued coroutine sub-agent's receiving end waits in the SpawnedTask too: it is its body's.
  if (!t || t->kind != BodyKind::Host || !t->agent || !t->agent->host_rx) return out;
  while (out.size() < max) {
    auto m = t->agent->host_rx->try_recv();
    if (!m) break;
    out.push_back(std::move(*m));
  }
  return out;
}

std::size_t BackgroundTaskManager::agent_inbox_len(std::string_view id) const {
  const SpawnedTask* t = find_spawned(id);
  return t && t->kind == BodyKind::Host && t->agent && t->agent->host_rx ? t->agent->host_rx->len() : 0;
}

BackgroundTaskScope BackgroundTaskManager::enter_task(std::string_view id) {
  return BackgroundTaskScope(BackgroundTaskContext{this, TaskId(id)});
}

namespace {
Co<void> host_timer(Executor& exec, CancellationToken token, std::uint64_t deadline, std::uint64_t number,
                    std::shared_ptr<std::vector<std::pair<std::uint64_t, bool>>> fired) {
  const bool slept = co_await CancellableSleepAwaiter(exec, token.state(), deadline);
  fired->emplace_back(number, slept);
}
}  // namespace

Result<std::uint64_t> BackgroundTaskManager::arm_host_timer(std::string_view id, std::uint64_t ms) {
  SpawnedTask* t = find_spawned(id);
  if (!t) return errors::task_not_found();
  if (t->kind != BodyKind::Host) return errors::not_host_task(id);
  if (!t->live) return errors::task_terminated(meta(id) ? meta(id)->status : TaskStatus::Cancelled);
  const std::uint64_t number = ++host_timer_counter_;
  // The timer holds the task's cancel state through a token (it may outlive the task's record).
  auto token = CancellationToken::share(handles_.share(t->number), &t->cancel);
  // The deadline is fixed now, though the timer coroutine first runs at the next poll.
  executor_->spawn(
      host_timer(*executor_, std::move(token), saturating_add(executor_->now_ms(), ms), number, fired_host_timers_));
  return number;
}

namespace {
Co<void> plain_timer(Executor& exec, std::uint64_t deadline, std::uint64_t number,
                     std::shared_ptr<std::vector<std::pair<std::uint64_t, bool>>> fired) {
  co_await sleep_until(exec, deadline);
  fired->emplace_back(number, true);
}
}  // namespace

std::uint64_t BackgroundTaskManager::arm_plain_timer(std::uint64_t ms) {
  const std::uint64_t number = ++host_timer_counter_;
  if (!executor_) return number;  // no executor to run it: it never fires
  executor_->spawn(plain_timer(*executor_, saturating_add(executor_->now_ms(), ms), number, fired_host_timers_));
  return number;
}

std::vector<std::pair<std::uint64_t, bool>> BackgroundTaskManager::take_fired_host_timers() {
  std::vector<std::pair<std::uint64_t, bool>> out;
  out.swap(*fired_host_timers_);
  return out;
}

// ---- queries --------------------------------------------------------------------------------------------
std::optional<TaskSummary> BackgroundTaskManager::get(std::string_view id) const {
  const auto* m = meta(id);
  if (!m) return std::nullopt;
  TaskSummary s = m->to_summary();
  if (limits_) [[unlikely]]  // only limits queue tasks
    s.queued = is_queued(id);
  return s;
}

std::vector<TaskSummary> BackgroundTaskManager::list(std::string_view owner) const {
  std::vector<const PersistedTaskMeta*> metas;
  if (const auto* s = state())
    for (const auto& [id, m] : s->tasks)
      if (m.owner_thread_id == owner) metas.push_back(&m);
  sort_by_id(metas);
  std::vector<TaskSummary> out;
  out.reserve(metas.size());
  for (const auto* m : metas) {
    out.push_back(m->to_summary());
    if (limits_) [[unlikely]]
      out.back().queued = is_queued(m->task_id);
  }
  return out;
}

bool BackgroundTaskManager::has_running(std::string_view owner) const {
  if (const auto* s = state()) {
    for (const auto& [id, m] : s->tasks)
      if (m.owner_thread_id == owner && !is_terminal(m.status)) return true;
    return false;
  }
  // awaken's fallback without a store value: any handle of the thread, status ignored.
  return handles_.any_of([&](const SpawnedTask& t) { return t.owner == owner; });
}

bool BackgroundTaskManager::is_cancel_requested(std::string_view id) const {
  const SpawnedTask* t = find_spawned(id);
  return t && t->live && t->cancel.cancelled;
}

namespace {
template <class Core>
std::optional<CancelReason> reason_of(const Core* t) {
  if (!t) return std::nullopt;
  if (t->reason != Core::kNoReason) return static_cast<CancelReason>(t->reason);
  if (t->cancel.cancelled) return CancelReason::Cancel;  // through the task's token itself
  return std::nullopt;
}
}  // namespace

std::optional<CancelReason> BackgroundTaskManager::cancel_reason(std::string_view id) const {
  return reason_of(find_spawned(id));
}

std::optional<CancelReason> BackgroundTaskManager::cancel_reason(TaskNumber task) const {
  return reason_of(handles_.find(static_cast<std::uint64_t>(task)));
}

bool BackgroundTaskManager::is_queued(std::string_view id) const {
  const SpawnedTask* t = find_spawned(id);
  return t && t->queued();
}

bool BackgroundTaskManager::is_queued(TaskNumber task) const {
  const SpawnedTask* t = handles_.find(static_cast<std::uint64_t>(task));
  return t && t->queued();
}

// ---- cancellation --------------------------------------------------------------------------------------
bool BackgroundTaskManager::cancel_spawned(SpawnedTask& t, CancelReason reason) {
  if (!t.live) return false;
  if (const auto* m = meta(t.id()); m && is_terminal(m->status)) return false;
  if (t.queued()) [[unlikely]] {
    cancel_queued(t, reason);
    return true;
  }
  if (!t.cancel.cancelled) signal_cancel(t, reason);
  return true;
}

void BackgroundTaskManager::cancel_queued(SpawnedTask& t, CancelReason reason) {
  // Reported as any first request (on_cancel_requested may even settle it); then, having no body to
  // wait for, the task ends at once: cancelled, or failed for a shutdown.
  std::shared_ptr<SpawnedTask> hold = handles_.share(t.number);
  UserCallGuard guard(*this);
  if (!t.cancel.cancelled) signal_cancel(t, reason);
  if (guard.alive() && t.live) force_end(t, cancelled_result(t), reason);
}

void BackgroundTaskManager::signal_cancel(SpawnedTask& t, CancelReason reason) {
  t.cancel.cancelled = true;
  t.reason = static_cast<std::uint8_t>(reason);
  t.cancel.waiters.wake_all(WakeReason::Cancel);
  if (t.live && !t.queued() && options_.cancel_grace_ms) [[unlikely]]
    arm_deadline(t, DeadlineKind::Grace, saturating_add(executor_->now_ms(), *options_.cancel_grace_ms));
  if (hooks_->on_cancel_requested) {
    // Copies: the hook may replace the hooks, forget the task or destroy the manager.
    const auto hooks = hooks_;
    const TaskId id = t.id();
    hooks->on_cancel_requested(id);
  }
}

TaskResult BackgroundTaskManager::cancelled_result(const SpawnedTask& t) {
  if (t.reason == static_cast<std::uint8_t>(CancelReason::Shutdown)) return TaskResult::failed(kInterruptedError);
  return TaskResult::cancelled();
}

bool BackgroundTaskManager::cancel_counted(SpawnedTask& t, bool count_missing_meta, CancelReason reason) {
  const auto* m = meta(t.id());
  if (m ? is_terminal(m->status) : !count_missing_meta) return false;
  cancel_spawned(t, reason);  // a body that has ended (its completion commit failed) has nothing to signal
  return true;
}

bool BackgroundTaskManager::cancel(std::string_view id) {
  SpawnedTask* t = find_spawned(id);
  return t && cancel_spawned(*t, CancelReason::Cancel);
}

std::size_t BackgroundTaskManager::cancel_tree(std::string_view root) {
  return cancel_tree_impl(root, CancelReason::CancelTree);
}

std::size_t BackgroundTaskManager::cancel_tree_impl(std::string_view root, CancelReason reason) {
  const auto* s = state();
  if (!s || !s->tasks.count(TaskId(root))) return 0;
  // Children through parent_context.task_id, across all threads; each node visited once.
  std::unordered_map<std::string_view, std::vector<std::string_view>> children;
  for (const auto& [id, m] : s->tasks)
    if (m.parent_context.task_id) children[*m.parent_context.task_id].push_back(id);
  std::vector<TaskId> order;
  std::unordered_set<std::string_view> seen;
  std::vector<std::string_view> stack{root};
  while (!stack.empty()) {
    std::string_view current = stack.back();
    stack.pop_back();
    if (!seen.insert(current).second) continue;
    order.emplace_back(current);
    if (auto it = children.find(current); it != children.end())
      for (auto child : it->second) stack.push_back(child);
  }
  std::size_t count = 0;
  UserCallGuard guard(*this);  // the cancel hook is user code
  for (const auto& id : order) {
    if (SpawnedTask* t = find_spawned(id); t && cancel_counted(*t, false, reason)) ++count;
    if (!guard.alive()) break;
  }
  return count;
}

std::size_t BackgroundTaskManager::cancel_all(std::string_view owner) {
  // Handles are keyed by N of bg_N: number order is id order.
  std::vector<std::uint64_t> targets;
  handles_.for_each([&](std::uint64_t n, const SpawnedTask& t) {
    if (t.owner == owner) targets.push_back(n);
  });
  std::sort(targets.begin(), targets.end());
  std::size_t count = 0;
  // Found again by number: a cancel hook may have forgotten a later target meanwhile.
  UserCallGuard guard(*this);
  for (const std::uint64_t n : targets) {
    if (SpawnedTask* t = handles_.find(n); t && cancel_counted(*t, true, CancelReason::CancelAll)) ++count;
    if (!guard.alive()) break;
  }
  return count;
}

std::size_t BackgroundTaskManager::cancel_descendants_for_run(std::string_view run_id) {
  std::vector<TaskId> roots;
  if (const auto* s = state())
    for (const auto& [id, m] : s->tasks)
      if (!is_terminal(m.status) && m.parent_context.run_id == run_id && !m.parent_context.task_id) roots.push_back(id);
  std::sort(roots.begin(), roots.end(), id_less);
  std::size_t count = 0;
  UserCallGuard guard(*this);
  for (const auto& r : roots) {
    count += cancel_tree_impl(r, CancelReason::Run);
    if (!guard.alive()) break;
  }
  return count;
}

// ---- messages to sub-agents ------------------------------------------------------------------------------
Result<void> BackgroundTaskManager::send_task_inbox_message(std::string_view id, std::string_view owner,
                                                            std::string_view sender_agent_id,
                                                            std::string_view content) {
  SpawnedTask* t = find_spawned(id);
  if (!t) return errors::task_not_found();
  if (t->owner != owner) return errors::not_owner();
  if (const auto* m = meta(id); m && is_terminal(m->status)) return errors::task_terminated(m->status);
  if (!t->agent) return errors::no_inbox();
  json payload{{"from", sender_agent_id}, {"content", content}};
  switch (t->agent->tx.send_event(Event::custom(t->id(), t->owner, "agent_message", std::move(payload)))) {
    case SendOutcome::Delivered:
      return {};
    case SendOutcome::Full:
      return errors::inbox_full();
    case SendOutcome::Closed:
      break;
  }
  return errors::inbox_closed();
}

std::optional<TaskId> BackgroundTaskManager::resolve_live_child_task(std::string_view parent,
                                                                     std::string_view x) const {
  std::optional<TaskId> best;
  if (const auto* s = state())
    for (const auto& [id, m] : s->tasks)
      if (!is_terminal(m.status) && m.parent_context.task_id == parent && (m.task_id == x || m.name == x))
        if (!best || id_less(id, *best)) best = id;
  return best;
}

std::optional<TaskId> BackgroundTaskManager::resolve_live_child_run(std::string_view run, std::string_view x) const {
  std::optional<TaskId> best;
  if (const auto* s = state())
    for (const auto& [id, m] : s->tasks)
      if (!is_terminal(m.status) && m.parent_context.run_id == run && !m.parent_context.task_id &&
          (m.task_id == x || m.name == x))
        if (!best || id_less(id, *best)) best = id;
  return best;
}

// ---- persistence ---------------------------------------------------------------------------------------------
BackgroundTaskStateSnapshot BackgroundTaskManager::persisted_snapshot() const {
  const auto* s = state();
  return s ? *s : BackgroundTaskStateSnapshot{};
}

BackgroundTaskStateSnapshot BackgroundTaskManager::persisted_snapshot(std::string_view owner) const {
  BackgroundTaskStateSnapshot out;
  if (const auto* s = state())
    for (const auto& [id, m] : s->tasks)
      if (m.owner_thread_id == owner) out.tasks.emplace(id, m);
  return out;
}

namespace {
std::vector<const PersistedTaskMeta*> entries_of(const BackgroundTaskStateSnapshot& snapshot) {
  std::vector<const PersistedTaskMeta*> entries;
  entries.reserve(snapshot.tasks.size());
  for (const auto& [id, m] : snapshot.tasks) entries.push_back(&m);
  return entries;
}
}  // namespace

std::size_t BackgroundTaskManager::restore_for_thread(std::string_view owner,
                                                      const BackgroundTaskStateSnapshot& snapshot) {
  auto entries = entries_of(snapshot);
  auto r = restore_entries(owner, entries, false, false);
  return r ? r->added : 0;  // unchecked: never refused
}

std::size_t BackgroundTaskManager::restore_for_thread(std::string_view owner, BackgroundTaskStateSnapshot&& snapshot) {
  auto entries = entries_of(snapshot);
  auto r = restore_entries(owner, entries, true, false);
  return r ? r->added : 0;
}

Result<RestoreReport> BackgroundTaskManager::restore(std::string_view owner, BackgroundTaskStateSnapshot snapshot) {
  auto entries = entries_of(snapshot);
  return restore_checked(owner, entries);
}

Result<RestoreReport> BackgroundTaskManager::restore_checked(std::string_view owner,
                                                             std::vector<const PersistedTaskMeta*>& entries) {
  if (!store_) return errors::store_not_configured();
  if (destroying_) return errors::invalid_argument("restore refused: the manager is being destroyed");
  if (!store_->is_registered(BackgroundTaskStateKey::name)) return errors::unknown_key(BackgroundTaskStateKey::name);
  return restore_entries(owner, entries, true, true);
}

// take: the entries belong to a snapshot the caller gave up (moved from, not copied).
Result<RestoreReport> BackgroundTaskManager::restore_entries(std::string_view owner,
                                                             std::vector<const PersistedTaskMeta*>& entries, bool take,
                                                             bool checked) {
  RestoreReport report;
  if (!store_ || destroying_) return report;
  // Ids are visited in id order so that the outcome does not depend on hash order.
  report.highest_number = sort_by_id(entries);
  // An id listed twice (restore_json's entry list): its last entry counts, as in parse_snapshot.
  auto superseded = [&](std::size_t i) {
    return i + 1 < entries.size() && entries[i + 1]->task_id == entries[i]->task_id;
  };
  if (checked && state() && !state()->tasks.empty()) {
    // Before anything changes: an id another thread's task holds refuses the whole restore
    // (awaken would drop the entry silently, and the other thread's task would keep the id).
    constexpr std::size_t kNamed = 10;
    std::string named;
    std::size_t conflicts = 0;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (superseded(i)) continue;
      const PersistedTaskMeta* held = meta(entries[i]->task_id);
      if (!held || same_text(held->owner_thread_id, owner)) continue;
      if (++conflicts > kNamed) continue;
      if (conflicts > 1) named += ", ";
      named += entries[i]->task_id;
      named += " (thread '";
      named += held->owner_thread_id.view();
      named += "')";
    }
    if (conflicts > 0) {
      std::string message = "restore refused: ids held by tasks of another thread: " + named;
      if (conflicts > kNamed) message += " and " + std::to_string(conflicts - kNamed) + " more";
      return errors::id_conflict(std::move(message));
    }
  }
  const SharedString owner_name(owner);  // one text for every restored entry
  const auto store_hold = hold_store_for_hook();
  StateStore* store = store_.get();
  UserCallGuard guard(*this);
  bool wrote = false;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (superseded(i)) continue;
    const PersistedTaskMeta* entry = entries[i];
    const TaskId& id = entry->task_id;
    if (meta(id)) {  // existing ids (live tasks among them) are kept as they are
      if (checked) report.skipped.push_back(id);
      continue;
    }
    const auto number = parse_bg_number(id);
    if (number) {
      if (id_source_ == IdSource::Granted) {
        // The counter is not this manager's to move; a granted number now stored is used up.
        if (!granted_.empty()) {
          if (const auto canonical = canonical_bg_number(id)) carve_granted(*canonical);
        }
      } else if (*number == UINT64_MAX) {
        counter_ = UINT64_MAX;  // no bg_N is left to hand out
        id_source_ = IdSource::Exhausted;
      } else {
        counter_ = std::max(counter_, *number + 1);
      }
    }
    PersistedTaskMeta m = take ? std::move(*const_cast<PersistedTaskMeta*>(entry)) : *entry;
    m.owner_thread_id = owner_name;
    const SpawnedTask* t = number ? find_spawned(m.task_id) : nullptr;  // spawned tasks all have bg_N ids
    if (m.status == TaskStatus::Running && !(t && t->live)) {
      m.status = TaskStatus::Failed;
      static const OptionalSharedString orphaned(kOrphanedError);  // one text for every orphan
      m.error = orphaned;
    }
    bool inserted_here = false;  // not when a commit hook's own restore got there first
    auto r = write_task_records(*store, guard, [&](BackgroundTaskStateSnapshot& state, IndexFollower& indexes) {
      // Absent when checked above; a commit hook may have written it since: awaken's upsert.
      auto [it, inserted] = state.tasks.try_emplace(m.task_id);
      inserted_here = inserted;
      if (!inserted) indexes.remove(it->second);
      it->second = std::move(m);
      indexes.add(it->second);
    });
    if (!guard.alive()) return report;
    if (r.ok()) {
      wrote = true;
      if (inserted_here) ++report.added;
    } else {
      metrics::increment_counter(metrics::kCommitFailuresTotal, {{"operation", "restore_task_metadata"}});
    }
  }
  if (wrote && track_changes_) note_changed(owner_name);
  apply_retention(owner_name);
  return report;
}

Result<RestoreReport> BackgroundTaskManager::restore_json(std::string_view owner, std::string_view text) {
  if (!store_) return errors::store_not_configured();
  if (destroying_) return errors::invalid_argument("restore refused: the manager is being destroyed");
  auto parsed = parse_snapshot_entries(text);
  if (!parsed) return parsed.error();
  std::vector<const PersistedTaskMeta*> entries;
  entries.reserve(parsed->size());
  for (const auto& m : *parsed) entries.push_back(&m);
  return restore_checked(owner, entries);
}

// ---- ids granted by a shared allocator -------------------------------------------------------------------------
std::optional<Error> BackgroundTaskManager::take_other_id() {
  // bg_18446744073709551615 is the last id; after it, spawning is refused instead of wrapping
  // around onto ids that may still be stored.
  if (id_source_ == IdSource::Exhausted)
    return errors::invalid_argument("task ids exhausted: bg_18446744073709551615 was handed out");
  const auto granted = find_granted();
  if (!granted) return errors::ids_unavailable();
  take_granted(*granted);
  counter_ = *granted;
  return std::nullopt;
}

bool BackgroundTaskManager::number_in_use(std::uint64_t n) const {
  if (handles_.find(n)) return true;
  const auto* s = state();
  return s && s->tasks.find(IdText(n).view()) != s->tasks.end();
}

void BackgroundTaskManager::grant_ids(std::uint64_t first, std::uint64_t count) {
  if (count == 0) return;
  id_source_ = IdSource::Granted;
  // [first, last], cut at UINT64_MAX.
  const std::uint64_t last = count - 1 > UINT64_MAX - first ? UINT64_MAX : first + (count - 1);
  // Numbers in the block that are stored already (a restore put them there) are left out.
  std::vector<std::uint64_t> used;
  if (const auto* s = state())
    for (const auto& [id, m] : s->tasks)
      if (const auto n = canonical_bg_number(id); n && *n >= first && *n <= last) used.push_back(*n);
  handles_.for_each([&](std::uint64_t n, const SpawnedTask&) {
    if (n >= first && n <= last) used.push_back(n);
  });
  std::sort(used.begin(), used.end());
  used.erase(std::unique(used.begin(), used.end()), used.end());
  std::uint64_t from = first;
  bool more = true;  // false once `from` would pass UINT64_MAX
  for (const std::uint64_t n : used) {
    if (n > from) granted_.push_back({from, n - from});
    if (n == UINT64_MAX)
      more = false;
    else
      from = n + 1;
  }
  if (more && from <= last) granted_.push_back({from, last - from + 1});
}

std::uint64_t BackgroundTaskManager::granted_ids_left() const {
  std::uint64_t left = 0;
  for (const IdBlock& b : granted_) left = b.left > UINT64_MAX - left ? UINT64_MAX : left + b.left;
  return left;
}

std::optional<std::uint64_t> BackgroundTaskManager::find_granted() const {
  // Numbers stored since they were granted (written by someone else) are passed over.
  for (const IdBlock& b : granted_)
    for (std::uint64_t k = 0; k < b.left; ++k)
      if (!number_in_use(b.next + k)) return b.next + k;
  return std::nullopt;
}

void BackgroundTaskManager::take_granted(std::uint64_t n) {
  // Blocks before the one holding n had only numbers in use: they go too.
  while (!granted_.empty()) {
    IdBlock& b = granted_.front();
    if (n >= b.next && n - b.next < b.left) {
      b.left -= n - b.next + 1;
      b.next = n + 1;  // n < UINT64_MAX whenever numbers are left after it
      if (b.left == 0) granted_.pop_front();
      return;
    }
    granted_.pop_front();
  }
}

void BackgroundTaskManager::carve_granted(std::uint64_t n) {
  for (auto it = granted_.begin(); it != granted_.end();) {
    if (n < it->next || n - it->next >= it->left) {
      ++it;
      continue;
    }
    const std::uint64_t before = n - it->next;
    const std::uint64_t after = it->left - before - 1;
    if (before == 0 && after == 0) {
      it = granted_.erase(it);
    } else if (before == 0) {
      *it = {n + 1, after};
      ++it;
    } else {
      it->left = before;
      it = after > 0 ? granted_.insert(it + 1, IdBlock{n + 1, after}) + 1 : it + 1;
    }
  }
}

// ---- change tracking ---------------------------------------------------------------------------------------------
void BackgroundTaskManager::track_changed_threads(bool on) {
  track_changes_ = on;
  if (!on) {
    changed_threads_.clear();
    changed_seen_.clear();
  }
}

std::vector<std::string> BackgroundTaskManager::take_changed_threads() {
  changed_seen_.clear();
  return std::exchange(changed_threads_, {});
}

void BackgroundTaskManager::note_changed(std::string_view owner) {
  if (!changed_threads_.empty() && same_text(changed_threads_.back(), owner)) return;  // the usual repeat
  if (changed_seen_.emplace(owner).second) changed_threads_.emplace_back(owner);
}

std::string BackgroundTaskManager::snapshot_json(std::optional<std::string_view> owner) const {
  // Written straight from the stored entries: no DOM and no copy of the metas.
  if (const auto* s = state()) return dump(*s, owner);
  return dump(BackgroundTaskStateSnapshot{}, owner);
}

// ---- introspection and retention ------------------------------------------------------------------------------
ManagerStats BackgroundTaskManager::stats() const {
  ManagerStats st;
  if (const auto* s = state()) {
    for (const auto& [id, m] : s->tasks) {
      switch (m.status) {
        case TaskStatus::Running:
          ++st.running;
          break;
        case TaskStatus::Completed:
          ++st.completed;
          break;
        case TaskStatus::Failed:
          ++st.failed;
          break;
        case TaskStatus::Cancelled:
          ++st.cancelled;
          break;
      }
    }
  }
  st.agent_inbox_dropped = ended_agent_inbox_dropped_;
  handles_.for_each([&](std::uint64_t, const SpawnedTask& t) {
    if (t.zombie) ++st.live_bodies;  // ended by force, its body still runs
    if (!t.live) return;
    if (t.queued())
      ++st.queued;  // no body yet
    else
      ++st.live_bodies;
    if (t.cancel.cancelled) ++st.cancel_requested_running;
    if (t.agent) st.agent_inbox_dropped += t.agent->tx.dropped();
  });
  st.live_bodies += zombies_.size();
  st.listener_errors = listener_errors_;
  if (owner_inbox_) {
    st.owner_inbox_depth = owner_inbox_->len();
    st.owner_inbox_dropped = owner_inbox_->dropped();
  }
  return st;
}

json BackgroundTaskManager::task_tree(std::optional<std::string_view> owner) const {
  std::vector<const PersistedTaskMeta*> metas;
  if (const auto* s = state())
    for (const auto& [id, m] : s->tasks)
      if (!owner || m.owner_thread_id == *owner) metas.push_back(&m);
  sort_by_id(metas);
  std::unordered_map<std::string_view, std::vector<const PersistedTaskMeta*>> children;
  std::unordered_set<std::string_view> present;
  for (const auto* m : metas) present.insert(m->task_id);
  std::vector<const PersistedTaskMeta*> roots;
  for (const auto* m : metas) {
    const auto& p = m->parent_context.task_id;
    if (p && present.count(*p) && *p != m->task_id)
      children[*p].push_back(m);
    else
      roots.push_back(m);
  }
  // Iterative build (a restored snapshot may nest deeply); a cycle's members are never roots and
  // are left out, each node is emitted once.
  std::unordered_set<std::string_view> emitted;
  auto node_of = [this](const PersistedTaskMeta& m) {
    json n{{"task_id", m.task_id},
           {"task_type", m.task_type},
           {"description", m.description},
           {"status", as_str(m.status)},
           {"children", json::array()}};
    if (m.name) n["name"] = *m.name;
    if (limits_ && is_queued(m.task_id)) n["queued"] = true;
    return n;
  };
  json forest = json::array();
  struct Frame {
    const PersistedTaskMeta* meta;
    json* node;
  };
  for (const auto* r : roots) {
    forest.push_back(node_of(*r));
    emitted.insert(r->task_id);
    std::vector<Frame> stack{{r, &forest.back()}};
    while (!stack.empty()) {
      Frame f = stack.back();
      stack.pop_back();
      auto it = children.find(f.meta->task_id);
      if (it == children.end()) continue;
      json& kids = (*f.node)["children"];
      for (const auto* c : it->second) {
        if (!emitted.insert(c->task_id).second) continue;
        kids.push_back(node_of(*c));
      }
      // Pointers into `kids` are stable once it is complete.
      std::size_t i = 0;
      for (const auto* c : it->second) {
        if (i < kids.size() && kids[i]["task_id"] == c->task_id) stack.push_back({c, &kids[i++]});
      }
    }
  }
  return forest;
}

bool BackgroundTaskManager::forget(std::string_view id) {
  if (destroying_) return false;  // a frame's destructor during teardown: nothing is removed
  const SpawnedTask* t = find_spawned(id);
  if (t && t->live) return false;
  const auto* m = meta(id);
  if (m && !is_terminal(m->status)) return false;
  if (!m && !t) return false;
  // By number: the commit hook (user code) may forget this task itself, or free its spawned.
  const bool has_handle = t != nullptr;
  const std::uint64_t number = t ? t->number : 0;
  if (m) {
    UserCallGuard guard(*this);
    const auto store_hold = hold_store_for_hook();
    StateStore* store = store_.get();
    std::optional<SharedString> erased_owner;  // kept only while changes are tracked
    auto r = write_task_records(*store, guard, [&](BackgroundTaskStateSnapshot& state, IndexFollower& indexes) {
      auto it = state.tasks.find(id);
      if (it == state.tasks.end()) return;
      indexes.remove(it->second);
      if (track_changes_) erased_owner = it->second.owner_thread_id;
      state.tasks.erase(it);
    });
    if (!guard.alive()) return false;
    if (!r) return false;
    if (erased_owner && track_changes_) note_changed(*erased_owner);
  }
  if (has_handle) {
    // A body ended by force still runs: its spawned stays until the body returns.
    if (SpawnedTask* spawned = handles_.find(number); spawned && spawned->zombie)
      zombies_.emplace(number, handles_.share(number));
    handles_.erase(number);
  }
  return true;  // also when a commit hook's own forget of the same task got there first
}

// ---- scheduling: limits, deadlines, grace, shutdown (docs/scheduling.md) ------------------------------------
struct BackgroundTaskManager::ReadyBody final : DeferredBody {
  explicit ReadyBody(Co<TaskResult> c) : co(std::move(c)) {}
  Co<TaskResult> make(BackgroundTaskManager&, const std::shared_ptr<SpawnedTask>&) override { return std::move(co); }
  Co<TaskResult> co;
};

namespace {
bool limits_valid(const ConcurrencyLimits& c) noexcept {
  if (c.per_thread && *c.per_thread == 0) return false;
  for (const auto& [type, n] : c.per_type)
    if (n == 0) return false;
  return true;
}

void count_up(TextCounts& counts, std::string_view key) {
  auto it = counts.find(key);
  if (it == counts.end()) it = counts.emplace(std::string(key), 0).first;
  ++it->second;
}

void count_down(TextCounts& counts, std::string_view key) {
  auto it = counts.find(key);
  if (it == counts.end()) return;
  if (--it->second == 0) counts.erase(it);
}

// The limit of a type: a walk over the few limited types, not the map's own (std::less<>) lookup,
// whose string_view compares would change what GCC inlines elsewhere in this file.
std::optional<std::size_t> type_limit(const ConcurrencyLimits& c, std::string_view type) {
  for (const auto& [name, n] : c.per_type)
    if (same_text(name, type)) return n;
  return std::nullopt;
}
}  // namespace

void BackgroundTaskManager::update_spawn_refusal() noexcept {
  refuse_spawns_ = destroying_ || !executor_ || shutting_down_ || (limits_ && !limits_valid(options_.concurrency));
}

Result<void> BackgroundTaskManager::set_concurrency(ConcurrencyLimits limits) {
  if (limits.per_thread && *limits.per_thread == 0)
    return errors::invalid_argument("concurrency limits must be at least 1: per_thread is 0");
  for (const auto& [type, n] : limits.per_type)
    if (n == 0) return errors::invalid_argument("concurrency limits must be at least 1: type '" + type + "' is 0");
  if (destroying_) return errors::invalid_argument("set_concurrency refused: the manager is being destroyed");
  options_.concurrency = std::move(limits);
  if (!limits_) {
    if (options_.concurrency.empty()) return {};
    limits_ = std::make_unique<Limits>();
  }
  recount_slots();
  update_spawn_refusal();
  start_eligible();  // queued tasks that fit now start
  return {};
}

bool BackgroundTaskManager::fits(std::string_view owner, std::string_view type) const {
  const ConcurrencyLimits& c = options_.concurrency;
  if (c.per_thread) {
    auto it = limits_->per_thread.find(owner);
    if (it != limits_->per_thread.end() && it->second >= *c.per_thread) return false;
  }
  if (!c.per_type.empty()) {
    if (const auto limit = type_limit(c, type)) {
      auto it = limits_->per_type.find(type);
      if (it != limits_->per_type.end() && it->second >= *limit) return false;
    }
  }
  return true;
}

void BackgroundTaskManager::claim_slot(SpawnedTask& t) {
  t.sched |= SpawnedTask::kHoldsSlot;
  const ConcurrencyLimits& c = options_.concurrency;
  if (c.per_thread) count_up(limits_->per_thread, t.owner.view());
  if (type_limit(c, t.task_type.view())) count_up(limits_->per_type, t.task_type.view());
}

void BackgroundTaskManager::release_slot(SpawnedTask& t) {
  t.sched &= static_cast<std::uint8_t>(~SpawnedTask::kHoldsSlot);
  count_down(limits_->per_thread, t.owner.view());
  count_down(limits_->per_type, t.task_type.view());
}

void BackgroundTaskManager::recount_slots() {
  // Every live task whose body started holds a slot, also one started before any limit was set.
  limits_->per_thread.clear();
  limits_->per_type.clear();
  handles_.for_each([&](std::uint64_t, SpawnedTask& t) {
    t.sched &= static_cast<std::uint8_t>(~SpawnedTask::kHoldsSlot);
    if (t.live && !t.queued()) claim_slot(t);
  });
}

void BackgroundTaskManager::place_limited(SpawnedTask& t, bool queue_it, Co<TaskResult> body,
                                          std::unique_ptr<DeferredBody> deferred) {
  if (!queue_it && fits(t.owner, t.task_type)) {
    claim_slot(t);
    if (body.valid()) t.start_body(std::move(body));
    return;
  }
  // Over a limit. (Or decided before the body was built, and user code run during the spawn took
  // the last slot since: then the built frame waits.)
  if (!deferred && body.valid()) deferred = std::make_unique<ReadyBody>(std::move(body));
  t.sched |= SpawnedTask::kQueued;
  if (deferred) deferred_[t.number] = std::move(deferred);
  limits_->push(t.owner.view(), t.task_type.view(), t.number);
  // User code run during the spawn (a commit hook) may have freed a slot since the decision.
  if (fits(t.owner, t.task_type)) start_eligible();
}

void BackgroundTaskManager::start_eligible() {
  if (!limits_ || shutting_down_ || destroying_) return;  // a shutdown starts nothing
  if (limits_->scanning) return;                          // the loop on the stack re-evaluates after every start
  UserCallGuard guard(*this);                             // factories and on_task_start are user code
  limits_->scanning = true;
  // The oldest queued task that fits, again and again. Starting a task only takes room, so this
  // starts exactly the tasks one pass over the queue in spawn order would.
  while (!shutting_down_) {
    Limits::Group* best = nullptr;
    for (auto& [key, group] : limits_->groups) {
      if (best && group.tasks.front().seq > best->tasks.front().seq) continue;
      if (fits(group.thread, group.type)) best = &group;
    }
    if (!best) break;
    const std::uint64_t number = best->tasks.front().number;
    best->tasks.pop_front();
    if (best->tasks.empty()) limits_->groups.erase(Limits::group_key(best->thread, best->type));
    SpawnedTask* t = handles_.find(number);
    if (!t || !t->queued()) continue;
    start_queued(*t, guard);  // user code: the groups may change; they are walked afresh
    if (!guard.alive()) return;
  }
  limits_->scanning = false;
}

void BackgroundTaskManager::start_queued(SpawnedTask& t, const UserCallGuard& guard) {
  t.sched &= static_cast<std::uint8_t>(~SpawnedTask::kQueued);
  claim_slot(t);
  std::shared_ptr<SpawnedTask> spawned = handles_.share(t.number);  // user code below may forget it
  if (t.kind != BodyKind::Host) {
    std::unique_ptr<DeferredBody> deferred;
    if (auto it = deferred_.find(t.number); it != deferred_.end()) {
      deferred = std::move(it->second);
      deferred_.erase(it);
    }
    Co<TaskResult> body;
    std::optional<TaskResult> threw;
#if defined(__cpp_exceptions)
    try {
      if (deferred) body = deferred->make(*this, spawned);
    } catch (const std::exception& e) {
      threw = TaskResult::failed(e.what());
    } catch (...) {
      threw = TaskResult::failed("task body threw a non-standard exception");
    }
#else
    if (deferred) body = deferred->make(*this, spawned);
#endif
    if (!guard.alive()) return;
    if (!t.live) return;  // the factory ended it (a forced end): its body never runs
    if (threw) {
      // The factory threw where spawn would have let it out: the task fails with it.
      finish(t, *threw);
      return;
    }
    if (body.valid()) t.start_body(std::move(body));
  }
  if (hooks_->on_task_start) {
    const auto hooks = hooks_;
    const TaskId id = t.id();
    hooks->on_task_start(id);
  }
}

bool BackgroundTaskManager::leave_schedule(SpawnedTask& t, std::unique_ptr<DeferredBody>& unstarted_body) {
  bool freed = false;
  if (t.queued()) {
    if (auto it = deferred_.find(t.number); it != deferred_.end()) {
      unstarted_body = std::move(it->second);
      deferred_.erase(it);
    }
    t.sched &= static_cast<std::uint8_t>(~SpawnedTask::kQueued);
    limits_->remove(t.owner.view(), t.task_type.view(), t.number);
  }
  if (t.sched & SpawnedTask::kHoldsSlot) {
    release_slot(t);
    freed = true;
  }
  if (t.sched & SpawnedTask::kTimers) disarm_deadlines(t);
  return freed;
}

void BackgroundTaskManager::arm_deadline(SpawnedTask& t, DeadlineKind kind, std::uint64_t when,
                                         std::uint64_t timeout_ms) {
  if (!executor_) return;  // only live tasks get deadlines, and none is live without an executor
  if (!ticker_) ticker_ = std::make_shared<Ticker>(*this);
  TaskTimers& timers = task_timers_[t.number];
  std::optional<DeadlineKey>& slot = kind == DeadlineKind::Timeout ? timers.timeout : timers.grace;
  if (slot) deadlines_.erase(*slot);
  const DeadlineKey key{when, deadline_seq_++};
  deadlines_.emplace(key, std::make_pair(t.number, kind));
  slot = key;
  if (kind == DeadlineKind::Timeout) timers.timeout_ms = timeout_ms;
  t.sched |= SpawnedTask::kTimers;
  rearm_ticker();
}

void BackgroundTaskManager::disarm_deadlines(SpawnedTask& t) {
  t.sched &= static_cast<std::uint8_t>(~SpawnedTask::kTimers);
  auto it = task_timers_.find(t.number);
  if (it == task_timers_.end()) return;
  if (it->second.timeout) deadlines_.erase(*it->second.timeout);
  if (it->second.grace) deadlines_.erase(*it->second.grace);
  task_timers_.erase(it);
  rearm_ticker();
}

void BackgroundTaskManager::rearm_ticker() {
  if (!ticker_ || ticker_->stepping_now())
    return;  // (no ticker once the executor is gone)  // the running step re-arms at its end
  if (deadlines_.empty()) {
    ticker_->disarm();  // next_deadline() then reports no stale time
    return;
  }
  const std::uint64_t when = deadlines_.begin()->first.first;
  if (ticker_->armed_at() != when) ticker_->arm_at(when);
}

void BackgroundTaskManager::run_due_deadlines() {
  UserCallGuard guard(*this);  // a forced end runs user code
  while (!deadlines_.empty()) {
    auto due = deadlines_.begin();
    if (due->first.first > executor_->now_ms()) break;
    const auto [number, kind] = due->second;
    deadlines_.erase(due);
    std::uint64_t timeout_ms = 0;
    if (auto it = task_timers_.find(number); it != task_timers_.end()) {
      (kind == DeadlineKind::Timeout ? it->second.timeout : it->second.grace).reset();
      timeout_ms = it->second.timeout_ms;
      if (!it->second.timeout && !it->second.grace) task_timers_.erase(it);
    }
    SpawnedTask* t = handles_.find(number);
    if (!t || !t->live) continue;
    if (!task_timers_.count(number)) t->sched &= static_cast<std::uint8_t>(~SpawnedTask::kTimers);
    if (kind == DeadlineKind::Timeout) {
      // A task whose cancel was requested before keeps that promise: it ends as the request says.
      TaskResult r = t->cancel.cancelled
                         ? cancelled_result(*t)
                         : TaskResult::failed("task timed out after " + std::to_string(timeout_ms) + " ms");
      force_end(*t, std::move(r), CancelReason::Timeout);
    } else {
      force_end(*t, cancelled_result(*t), CancelReason::Grace);
    }
    if (!guard.alive()) return;
  }
  if (!ticker_) return;
  // rearm_ticker() leaves a stepping ticker alone: arm it here.
  if (deadlines_.empty())
    ticker_->disarm();
  else if (ticker_->armed_at() != deadlines_.begin()->first.first)
    ticker_->arm_at(deadlines_.begin()->first.first);
}

void BackgroundTaskManager::force_end(SpawnedTask& t, TaskResult result, CancelReason reason) {
  std::shared_ptr<SpawnedTask> hold = handles_.share(t.number);  // user code below may forget it
  UserCallGuard guard(*this);
  const bool was_queued = t.queued();
  // A started coroutine body runs on until it returns or notices its cancel; its end is discarded.
  if (t.kind != BodyKind::Host && t.has_frame()) t.zombie = true;
  const TaskStatus status = result.status();
  if (!finish(t, result, nullptr, true)) return;
  if (!t.cancel.cancelled) {
    if (was_queued) {
      // A queued task's deadline: recorded for cancel_reason(); there is no body to tell (a host
      // timer armed for it wakes).
      t.cancel.cancelled = true;
      t.reason = static_cast<std::uint8_t>(reason);
      t.cancel.waiters.wake_all(WakeReason::Cancel);
    } else {
      signal_cancel(t, reason);  // so the body can stop
      if (!guard.alive()) return;
    }
  }
  if (hooks_->on_forced_end) {
    const auto hooks = hooks_;
    const TaskId id = t.id();
    hooks->on_forced_end(id, status);
  }
}

std::size_t BackgroundTaskManager::begin_shutdown() {
  if (destroying_ || shutting_down_) return 0;
  shutting_down_ = true;
  update_spawn_refusal();
  // In id order; found again by number, as cancel_all does (user code runs in between).
  std::vector<std::uint64_t> targets;
  handles_.for_each([&](std::uint64_t n, const SpawnedTask& t) {
    if (t.live && !t.cancel.cancelled) targets.push_back(n);
  });
  std::sort(targets.begin(), targets.end());
  std::size_t count = 0;
  UserCallGuard guard(*this);
  for (const std::uint64_t n : targets) {
    SpawnedTask* t = handles_.find(n);
    if (t && t->live && !t->cancel.cancelled && cancel_spawned(*t, CancelReason::Shutdown)) ++count;
    if (!guard.alive()) break;
  }
  return count;
}

std::size_t BackgroundTaskManager::finish_shutdown() {
  if (destroying_) return 0;
  UserCallGuard guard(*this);
  if (!shutting_down_) {
    begin_shutdown();
    if (!guard.alive()) return 0;
  }
  std::vector<std::uint64_t> targets;
  handles_.for_each([&](std::uint64_t n, const SpawnedTask& t) {
    if (t.live) targets.push_back(n);
  });
  std::sort(targets.begin(), targets.end());
  std::size_t count = 0;
  for (const std::uint64_t n : targets) {
    SpawnedTask* t = handles_.find(n);
    if (!t || !t->live) continue;
    // Every live task's cancel was requested by now (by a user, or by the shutdown) unless its
    // stored entry was terminal already; either way it ends as the shutdown says.
    TaskResult r = t->cancel.cancelled ? cancelled_result(*t) : TaskResult::failed(kInterruptedError);
    force_end(*t, std::move(r), CancelReason::Shutdown);
    ++count;
    if (!guard.alive()) break;
  }
  return count;
}

// ---- fan-out -----------------------------------------------------------------------------------------------------
SubscriptionId BackgroundTaskManager::subscribe(std::function<void(const Event&)> listener,
                                                std::optional<std::string> thread) {
  if (!listener) return 0;
  const SubscriptionId id = ++last_subscription_;
  listeners_.push_back(
      Listener{id, std::move(thread), std::make_shared<std::function<void(const Event&)>>(std::move(listener))});
  return id;
}

bool BackgroundTaskManager::unsubscribe(SubscriptionId id) {
  auto it = std::find_if(listeners_.begin(), listeners_.end(), [id](const Listener& l) { return l.id == id && l.fn; });
  if (it == listeners_.end()) return false;
  if (publishing_) {
    it->fn.reset();  // a delivery is iterating: compacted after it
    listeners_dirty_ = true;
  } else {
    listeners_.erase(it);
  }
  return true;
}

void BackgroundTaskManager::publish(Event event) {
  if (publishing_) {
    // Produced by a listener (or by what it called): every listener sees the current event first.
    publish_queue_.push_back(std::move(event));
    return;
  }
  UserCallGuard guard(*this);
  publishing_ = true;
  for (;;) {
    // Listeners subscribed during this delivery start with the next event.
    const std::size_t n = listeners_.size();
    for (std::size_t i = 0; i < n; ++i) {
      if (!listeners_[i].fn) continue;
      if (listeners_[i].thread && !same_text(*listeners_[i].thread, event.thread.view())) continue;
      const auto fn = listeners_[i].fn;  // kept while it runs: it may unsubscribe itself
      bool threw = false;
#if defined(__cpp_exceptions)
      try {
        (*fn)(event);
      } catch (...) {
        threw = true;
      }
#else
      (*fn)(event);
#endif
      if (!guard.alive()) return;
      if (threw) ++listener_errors_;
    }
    if (publish_queue_.empty()) break;
    event = std::move(publish_queue_.front());
    publish_queue_.pop_front();
  }
  publishing_ = false;
  if (listeners_dirty_) {
    listeners_dirty_ = false;
    listeners_.erase(std::remove_if(listeners_.begin(), listeners_.end(), [](const Listener& l) { return !l.fn; }),
                     listeners_.end());
  }
}

// ---- waiting ----------------------------------------------------------------------------------------------------
bool BackgroundTaskManager::WaitAwaiter::await_ready() const {
  const SpawnedTask* t = m_->find_spawned(id_);
  return !(t && t->live);
}

void BackgroundTaskManager::WaitAwaiter::await_suspend(coro::coroutine_handle<> h) {
  WaitList& waiters = m_->end_waiters_[m_->find_spawned(id_)->number];  // may throw: before suspending
  waiter_.arm(suspend_current(h));
  node_.summary = &summary_;
  waiters.push(node_, waiter_);
}

std::optional<TaskSummary> BackgroundTaskManager::WaitAwaiter::await_resume() {
  node_.unlink();
  if (summary_) return std::move(summary_);
  if (node_.manager_gone) return std::nullopt;  // m_ is gone
  return m_->get(id_);
}

}  // namespace bgtasks
