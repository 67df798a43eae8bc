// fuzz_api: the input bytes are a sequence of API calls against one manager (manual clock, store with
// the plugin's keys, owner inbox), checked against a model after every step.
//
// Input: one options byte (retain_finished, agent inbox capacity/overflow), then operations, each
// an opcode byte followed by its argument bytes (fuzz_common.hpp's Reader: front to back, zeros
// once exhausted). fuzz/make_seeds.py writes the seed sequences in this format.
//
// Invariants, after every step unless noted:
//  - ids: every spawn returns "bg_<counter>" and never an id spawned or seen in the state before;
//  - spawn outcome: ReservedName / DuplicateName exactly as awaken, lineage merged as documented;
//  - terminal entries never change while they exist; a running entry never disappears;
//  - docs/behaviour.md: cancel / cancel_tree / cancel_all / cancel_descendants_for_run answer as the model
//    says, and a task for which cancel said true ends cancelled, whatever its body or host reports;
//    otherwise it ends as its body or host said (value, error);
//  - complete/fail/emit/arm_host_timer/send_task_inbox_message/forget answer as the model says;
//  - events: every drained event carries the task_id of a task spawned in this run, its owner's
//    thread, nothing after its terminal event, custom events of a task in emission order, and at the
//    end every task that ended has exactly one terminal event of its final kind and no custom event
//    was lost; sub-agent messages arrive in order (drop-oldest keeps the newest);
//  - host timers fire once, `true` only after their ms have passed, `false` only after a cancel;
//  - stats agree with the state; retain_finished holds per thread;
//  - snapshot → restore (fresh manager) → snapshot is stable (fuzz_common.hpp);
//  - the checked restore: a snapshot naming ids that another thread's entries hold is refused
//    (IdConflict) and changes nothing; otherwise the ids the thread had are reported as skipped (in
//    id order) and the largest bg_N as highest;
//  - granted ids (options bit 0x40; opcode bytes 47, 95, 143 and 191 then grant a block): once a block
//    is granted, every spawn takes the first granted number not seen before (never the counter),
//    IdsUnavailable exactly when none is left, and granted_ids_left() counts the granted numbers
//    not seen. Blocks come as a shared allocator hands them out: disjoint, and never holding a
//    number this manager may have handed out before (numbers stored now are left out by the
//    manager).
//  - scheduling (options bit 0x80, then one byte: a per-thread limit, a "shell" limit, a cancel
//    grace; op_sched: spawns with deadlines, set_concurrency, begin/finish_shutdown): a task ends
//    as its body or host says or as the manager may force it (cancelled, timed out, interrupted),
//    never as its own end after a cancel request; spawns during a shutdown are ShuttingDown;
//    finish_shutdown leaves nothing running; `queued` only while waiting; a listener never sees
//    an event after a task's terminal one.
// Tasks: host-driven (plain and sub-agent) and coroutine bodies that return, sleep and emit, wait for
// cancel, throw, spawn a child (ambient lineage), fail, call into the manager while they run
// (cancel, settle, forget, retention), co_await manager.wait(id), or echo their sub-agent inbox. The
// owner inbox's receiver may be dropped mid-run (events then reach the fallback).
//
// Re-entry (opcode bytes 232..254, see kReentryBase): user code the manager runs calls back into it.
// Bodies and callbacks (on_task_end, on_cancel_requested, the owner inbox's fallback, the store's
// commit hook, a body capture's destructor, the continuation of co_await wait(id)) forget, cancel,
// cancel_tree, cancel_all, spawn, restore_json, run_until_idle (bodies only) or drop the manager.
// The manager lives in a shared_ptr; the harness may hand its reference to a body's capture or
// let a callback drop it, so the manager can die inside a poll, a finish or a hook. A call made
// from user code is checked against live queries (the model's state is from before the step):
// forget answers true iff the entry is terminal, cancel / cancel_tree / cancel_all count the
// tasks whose body is live and whose entry is running (the task whose end is being reported is not
// live), a spawn is refused only once the ids are exhausted; inside a commit hook the entry being
// written is between two states, so there only consistency is checked (cancel true ⇒ the hook
// fired ⇒ it ends cancelled; forget true ⇒ the entry is gone). A manager being destroyed refuses
// spawns and cancels from its bodies' destructors. Once the manager is dead: every event drained
// is well-formed, each task that ended has exactly one terminal event (a task whose end was being
// reported when the manager died may have its event without on_task_end), no custom event is
// lost, the store kept every terminal entry and holds no end the hooks did not report; then the
// rest of the input runs against a fresh manager.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "bgtasks/manager_internals.hpp"
#include "fuzz_common.hpp"

using namespace bgtasks;
using fuzz::Harness;
using fuzz::Reader;

namespace {

constexpr std::size_t kMaxOps = 64;
// Opcode bytes kReentryBase..254 are re-entrant operations; the others are byte % 24 (255 too:
// the reproducers of earlier findings use it as take_agent_messages).
constexpr std::uint8_t kReentryBase = 232;
constexpr int kMaxGenerations = 4;  // managers per input (a dead one is replaced)
const char* const kThreads[] = {"t1", "t2", ""};
const char* const kTypes[] = {"shell", "http", "sub_agent"};
const char* const kNames[] = {nullptr, "a", "b", "parent", "self", "all", "broadcast"};
const char* const kForeign[] = {"bg_999", "", "bg_restored", "custom-id", "bg_0", "bg_+1", "bg_01"};

std::string show(const json& j) { return dump(j).substr(0, 1500); }
std::string show(const PersistedTaskMeta& m) { return show(to_json(m)); }
std::string str(std::uint64_t n) { return std::to_string(n); }

enum class Kind { Host, HostAgent, Body, Agent };
enum class BodyKind { Value, SleepEmit, WaitCancel, Throw, SpawnChild, Fail, Meddle, Waiter, kCount };

struct TaskRec {
  std::string thread;
  Kind kind = Kind::Host;
  BodyKind body = BodyKind::Value;
  bool cancel_true = false;    // cancel (or tree/all/run) said true for it
  bool gone = false;           // removed by forget or retention: the handle is gone
  bool forgotten = false;      // a re-entrant forget removed it: a later restore may bring back any entry
  bool ended = false;          // on_task_end fired
  bool cancel_hooked = false;  // on_cancel_requested fired
  std::optional<TaskSummary> end_summary;
  std::optional<TaskStatus> expected;  // how it ends without a cancel, when known
  std::optional<json> expected_result;
  std::optional<std::string> expected_error;
  int terminal_events = 0;
  std::optional<EventKind> terminal_kind;
  int custom_sent = 0, custom_seen = 0;
  std::int64_t last_seq = -1;
  std::deque<json> agent_pending;  // host sub-agents: messages not yet taken
  // Spawned with scheduling on (options bit 0x80): it may wait in a queue, time out, or end by a
  // shutdown, so its end is any the manager may force (cancelled, timed out, interrupted) as well.
  bool sched = false;
};

struct Timer {
  std::string task;
  std::uint64_t armed_at = 0, ms = 0;
  bool fired = false;
};

// What user code does when it calls back into the manager.
enum class Act { Forget, Cancel, CancelTree, CancelAll, SpawnHost, SpawnBody, Restore, Drop, RunIdle, kCount };
const char* const kActNames[] = {"forget",      "cancel",       "cancel_tree",  "cancel_all",    "spawn_host",
                                 "spawn(body)", "restore_json", "drop_manager", "run_until_idle"};
struct Reentry {
  Act act = Act::Forget;
  std::string target;  // empty: the task at hand (the body itself, the task whose callback runs)
  std::uint8_t arg = 0;
};
// Where the user code runs.
enum class Where { Body, Dtor, End, Cancel, Fallback, Commit };
const char* const kWhereNames[] = {"body",     "capture dtor", "on_task_end", "on_cancel_requested",
                                   "fallback", "commit hook"};
struct Armed {
  Where where;
  int shots;
  std::vector<Reentry> acts;
};
enum class ReKind { Reenter, OwnsManager, CaptureDtor, WaitThen, kCount };

class Model;
Model* g_model = nullptr;  // for task bodies; one input at a time

// FUZZ_TRACE=1 prints each operation, spawn and end (to read a reproducer).
bool tracing() {
  static const bool on = std::getenv("FUZZ_TRACE") != nullptr;
  return on;
}
#define TRACE(...)                       \
  do {                                   \
    if (tracing()) {                     \
      std::fprintf(stderr, __VA_ARGS__); \
      std::fputc('\n', stderr);          \
    }                                    \
  } while (0)

class Model {
 public:
  explicit Model(const ManagerOptions& opts, bool grants = false, bool sched = false)
      : grants_(grants),
        sched_(sched),
        opts_(opts),
        h_(opts, /*with_inbox=*/false, [this](BackgroundTaskManager* m) { destroy_manager(m); }) {
    mgr_ = h_.manager.get();
    weak_ = h_.manager;
    // The owner inbox, with a fallback that sees what is sent after the receiver is dropped.
    auto [tx, rx] = inbox_channel_with_fallback([this](const json& m) { on_fallback(m); });
    h_.inbox.emplace(std::move(rx));
    h_.manager->set_owner_inbox(std::move(tx));
    ManagerHooks hooks;
    hooks.on_cancel_requested = [this](const TaskId& id) { on_cancel_requested(id); };
    hooks.on_task_end = [this](const TaskSummary& s) { on_task_end(s); };
    h_.manager->set_hooks(std::move(hooks));
    // Scheduling: a listener sees every event as it is produced, never one after a task's end.
    if (sched_) h_.manager->subscribe([this](const Event& e) { on_listened(e); });
  }
  ~Model() {
    g_model = nullptr;  // capture destructors run by the manager's destructor do nothing now
    hold_.reset();
    h_.manager.reset();
  }

  // Runs operations until the input or kMaxOps ends (false) or the manager died (true: the caller
  // continues with a fresh manager).
  bool run(Reader& r, std::size_t& ops);

  // ---- used by bodies --------------------------------------------------------------------------
  std::int64_t next_seq() { return seq_++; }
  void body_emitted(const std::string& id) { tasks_.at(id).custom_sent++; }
  void record_spawn(const Result<TaskId>& id, const std::string& thread, Kind kind, BodyKind body,
                    std::optional<TaskStatus> expected, std::optional<json> result, std::optional<std::string> error);
  BackgroundTaskManager& manager() {
    FUZZ_CHECK(mgr_ != nullptr, "the harness used a destroyed manager");
    return *mgr_;
  }
  bool dead() const { return mgr_ == nullptr || dying_; }
  void meddle(const std::string& self, const std::string& target, int action);
  void reenter(const std::string& at_hand, const std::vector<Reentry>& acts, Where where);
  void dtor_reenter(const std::string& self, const std::vector<Reentry>& acts);
  std::shared_ptr<BackgroundTaskManager> take_manager_ref(bool hand_off) {
    return hand_off ? std::move(h_.manager) : h_.manager;
  }

 private:
  void on_cancel_requested(const TaskId& id);
  void on_task_end(const TaskSummary& s);
  void on_fallback(const json& m);
  void on_listened(const Event& e);
  void fire(Where where, const std::string& at_hand);
  void act(const std::string& at_hand, const Reentry& e, Where where);
  bool live_now(const std::string& id);
  void destroy_manager(BackgroundTaskManager* m);
  void after_death();
  std::vector<Reentry> read_acts(Reader& r, int n);
  void op_spawn_reentrant(Reader& r);
  void op_arm(Reader& r);

  // ---- operations ----
  void op_spawn(Reader& r, Kind kind);
  void op_spawn_body(Reader& r);
  void op_complete(Reader& r, bool fail);
  void op_emit(Reader& r);
  void op_cancel(Reader& r);
  void op_cancel_tree(Reader& r);
  void op_cancel_all(Reader& r);
  void op_cancel_run(Reader& r);
  void op_send(Reader& r);
  void op_take_messages(Reader& r);
  void op_arm_timer(Reader& r);
  void op_advance(Reader& r);
  void op_snapshot_save(Reader& r);
  void op_restore_saved(Reader& r);
  void op_restore_crafted(Reader& r);
  void op_forget(Reader& r);
  void op_retain(Reader& r);
  void op_drain(Reader& r);
  void op_queries(Reader& r);
  void op_close_inbox();
  void op_grant(Reader& r);
  void op_sched(Reader& r);
  void check_cancel_count(const std::string& what, std::size_t got, std::size_t want,
                          const std::vector<std::string>& hit, std::uint64_t acts_before);
  void check_terminal_event(const std::string& id, TaskRec& rec, EventKind kind, const json& data,
                            const std::string& error, const json& shown);
  void check_fallback();

  // ---- helpers ----
  std::string ref(Reader& r);
  json value(Reader& r);
  TaskParentContext parent(Reader& r);
  bool in_handles(const std::string& id) const {
    auto it = tasks_.find(id);
    return it != tasks_.end() && !it->second.gone;
  }
  const PersistedTaskMeta* entry(const std::string& id) const {
    auto it = state_.tasks.find(id);
    return it == state_.tasks.end() ? nullptr : &it->second;
  }
  bool running(const std::string& id) const {
    const auto* m = entry(id);
    return m && m->status == TaskStatus::Running;
  }
  bool live(const std::string& id) const { return in_handles(id) && running(id); }
  bool is_host(const std::string& id) const {
    return in_handles(id) && (tasks_.at(id).kind == Kind::Host || tasks_.at(id).kind == Kind::HostAgent);
  }
  // What a call that only host tasks take (settle, arm_host_timer) must be refused with, if anything.
  std::optional<Errc> host_call_error(const std::string& id) const {
    if (!in_handles(id)) return Errc::TaskNotFound;
    if (!is_host(id)) return Errc::NotHostTask;
    if (!running(id)) return Errc::TaskTerminated;
    return std::nullopt;
  }
  std::size_t tree_count(const std::string& root, std::vector<std::string>* hit);
  void check_restore_result(const std::string& thread, const BackgroundTaskStateSnapshot& snap,
                            const BackgroundTaskStateSnapshot& before, std::uint64_t counter_before,
                            const Result<RestoreReport>& r, const std::string& before_text);
  // ---- granted ids ----
  bool seen_number(std::uint64_t n) const { return ever_.count("bg_" + str(n)) > 0 || maybe_seen_.count(n) > 0; }
  // The number the next spawn takes: the first granted number not seen.
  std::optional<std::uint64_t> grant_next() const {
    for (const std::uint64_t n : granted_seq_)
      if (!seen_number(n)) return n;
    return std::nullopt;
  }
  std::uint64_t grant_left() const {
    std::uint64_t left = 0;
    for (const std::uint64_t n : granted_seq_) left += seen_number(n) ? 0 : 1;
    return left;
  }
  // What a restore that succeeded may have stored (it took those numbers out of the blocks). An id
  // absent before it is a new entry, even where an ended task of that id was dropped (forgotten, or
  // by retention) earlier in the same step: the old entry's terminal state no longer binds it, and
  // the task's handle went with its entry (the restored entry has none).
  void note_restored(const BackgroundTaskStateSnapshot& snap, const BackgroundTaskStateSnapshot& before) {
    for (const auto& [id, m] : snap.tasks) {
      if (auto n = parse_bg_number(id); n && "bg_" + str(*n) == id) maybe_seen_.insert(*n);
      if (before.tasks.count(id)) continue;
      terminal_.erase(id);
      if (auto it = tasks_.find(id); it != tasks_.end()) it->second.gone = true;
    }
  }
  std::uint64_t expected_next(const BackgroundTaskStateSnapshot& snap, std::uint64_t counter_before) const {
    return granting_ ? grant_next().value_or(UINT64_MAX) : fuzz::counter_after(snap, counter_before);
  }
  void check_events(const std::vector<Event>& events, const std::string* thread);
  void check_fired_timers();
  void check_step(bool full = false);
  void finish();

  bool grants_;                         // options bit 0x40: some opcode bytes grant ids (op_grant)
  bool sched_;                          // options bit 0x80: limits, grace, deadlines, shutdown (op_sched)
  bool shutdown_ = false;               // begin_shutdown was called: every spawn is refused
  std::set<std::string> listened_end_;  // tasks whose terminal event a listener saw
  ManagerOptions opts_;
  Harness h_;
  std::map<std::string, TaskRec> tasks_;               // spawned in this run
  std::vector<std::string> order_;                     // spawn order
  std::vector<std::string> restored_;                  // ids added by restores
  std::set<std::string> ever_;                         // every id spawned or seen in the state
  std::map<std::string, PersistedTaskMeta> terminal_;  // terminal entries as first seen
  BackgroundTaskStateSnapshot state_;                  // the state after the last step
  std::uint64_t state_version_ = UINT64_MAX;
  std::vector<std::string> saved_;  // snapshot texts
  std::map<std::uint64_t, Timer> timers_;
  std::uint64_t last_timer_ = 0;
  std::int64_t seq_ = 0;
  bool inbox_closed_ = false;
  std::vector<json> fallback_;  // owner-inbox events sent after the receiver was dropped

  // ---- re-entry ----
  BackgroundTaskManager* mgr_ = nullptr;  // null once destroyed
  std::weak_ptr<BackgroundTaskManager> weak_;
  std::shared_ptr<BackgroundTaskManager> hold_;  // the harness's own hold for one operation
  bool dying_ = false;                           // the manager's destructor is running
  int reentry_depth_ = 0;
  std::optional<std::string> ending_;       // the task whose end is being reported (fallback, on_task_end)
  std::optional<std::string> died_ending_;  // ending_ when the manager died
  std::vector<Armed> armed_;
  bool capture_reentry_spawned_ = false;  // a capture whose destructor re-enters the manager
  bool commit_hook_set_ = false;
  // The commit hook re-enters only while the model checks answers that it cannot disturb: host
  // settles and polls (spawn, forget and restore predict the counter and the entries exactly).
  bool commit_reentry_ = false;
  int in_commit_hook_ = 0;
  // Granted ids: every granted number (the manager leaves out those stored at the grant), in
  // grant order; numbers a restore may have stored.
  bool granting_ = false;
  std::vector<std::uint64_t> granted_seq_;
  std::set<std::uint64_t> maybe_seen_;
  std::uint64_t acts_started_ = 0;  // re-entrant calls begun (a restore checks none ran inside it)  // commit hooks on
                                    // the stack: what they call sees half-written entries
};

// ---- bodies ---------------------------------------------------------------------------------------
void body_emit(const TaskContext& ctx) {
  const std::int64_t seq = g_model->next_seq();
  if (ctx.emit("fz", json{{"seq", seq}})) g_model->body_emitted(ctx.task_id());
}

Co<TaskResult> body_value(TaskContext) { co_return TaskResult::success(json{{"k", 0}}); }

Co<TaskResult> body_sleep_emit(TaskContext ctx, std::uint64_t ms, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    const std::uint64_t start = ctx.executor().now_ms();
    const bool slept = co_await ctx.sleep(ms);
    const std::uint64_t elapsed = ctx.executor().now_ms() - start;
    FUZZ_CHECK(slept ? elapsed >= ms : ctx.is_cancelled(),
               "ctx.sleep(" + str(ms) + ") returned " + (slept ? "true" : "false") + " after " + str(elapsed) + " ms");
    body_emit(ctx);
  }
  co_return TaskResult::success(json{{"k", 1}});
}

Co<TaskResult> body_wait_cancel(TaskContext ctx) {
  co_await ctx.cancelled();
  co_return TaskResult::success(json("late value"));  // discarded: a cancel that said true ends cancelled
}

Co<TaskResult> body_throw(TaskContext ctx) {
  co_await yield_now();
  if (!ctx.task_id().empty()) throw std::runtime_error("boom");
  co_return TaskResult::success(nullptr);
}

Co<TaskResult> body_spawn_child(TaskContext ctx, std::string thread) {
  // A host child spawned from inside the body: the ambient parent is this task
  auto child = g_model->manager().spawn_host(thread, "shell", std::nullopt, "child", {});
  g_model->record_spawn(child, thread, Kind::Host, BodyKind::Value, std::nullopt, std::nullopt, std::nullopt);
  if (g_model->dead()) co_return TaskResult::success(nullptr);  // a commit hook dropped the manager
  if (child.ok()) {
    auto s = g_model->manager().get(*child);
    FUZZ_CHECK(s && s->parent_context.task_id == ctx.task_id(), "ambient parent of a child spawned in a body");
  }
  co_await yield_now();
  body_emit(ctx);
  co_return TaskResult::success(json{{"k", 2}});
}

Co<TaskResult> body_fail(TaskContext) { co_return TaskResult::failed("body failed"); }

// A body that calls into the manager while it runs (re-entrancy from inside poll).
Co<TaskResult> body_meddle(TaskContext ctx, std::string target, int action) {
  co_await yield_now();
  g_model->meddle(ctx.task_id(), target, action);
  co_return TaskResult::success(json{{"k", 4}});
}

// A body waiting for another task's end (co_await manager.wait(id)).
Co<TaskResult> body_waiter(TaskContext ctx, std::string target) {
  auto s = co_await g_model->manager().wait(target);
  FUZZ_CHECK(!s || is_terminal(s->status), ctx.task_id() + " waited for " + target + " and got a running summary");
  co_return TaskResult::success(json{{"k", 5}});
}

Co<TaskResult> agent_body(AgentTaskContext ctx) {
  // Echo every message to the owner inbox until cancelled.
  for (;;) {
    auto m = co_await ctx.inbox_receiver.recv_or_cancel(ctx.cancel_token());  // never in the condition (g++ 12)
    if (!m) break;
    const std::int64_t seq = g_model->next_seq();
    if (ctx.emit("fz", json{{"seq", seq}, {"m", *m}})) g_model->body_emitted(ctx.task_id());
  }
  co_return TaskResult::success(json("agent done"));  // only after a cancel: discarded
}

// A body that calls back into the manager from its step (run_until_idle among the calls).
Co<TaskResult> body_reenter(TaskContext ctx, std::vector<Reentry> acts) {
  co_await yield_now();
  g_model->reenter(ctx.task_id(), acts, Where::Body);
  co_return TaskResult::success(json{{"k", 6}});  // the manager may be gone: touch nothing
}

// A body whose capture holds a reference to its manager (the last one once the harness handed
// its own over): the manager dies when the body's frame is destroyed, inside its finish.
Co<TaskResult> body_owns_manager(TaskContext ctx, int yields, bool emit) {
  for (int i = 0; i < yields; ++i) co_await yield_now();
  if (emit) body_emit(ctx);
  co_return TaskResult::success(json{{"k", 7}});
}

// A capture whose destructor calls back into the manager: at the body's end (inside the
// manager's finished(), before the completion commit) or while the manager is destroyed.
struct DtorReentry {
  std::shared_ptr<std::string> self;  // the task id, known once spawn returned
  std::vector<Reentry> acts;
  bool armed = true;
  DtorReentry(std::shared_ptr<std::string> s, std::vector<Reentry> a) : self(std::move(s)), acts(std::move(a)) {}
  DtorReentry(DtorReentry&& o) noexcept
      : self(std::move(o.self)), acts(std::move(o.acts)), armed(std::exchange(o.armed, false)) {}
  DtorReentry(const DtorReentry&) = delete;
  DtorReentry& operator=(const DtorReentry&) = delete;
  DtorReentry& operator=(DtorReentry&&) = delete;
  ~DtorReentry() {
    if (armed && g_model && self && !self->empty()) g_model->dtor_reenter(*self, acts);
  }
};

Co<TaskResult> body_with_capture(TaskContext) {
  co_await yield_now();
  co_return TaskResult::success(json{{"k", 8}});
}

// co_await manager.wait(target), then call back into the manager from the continuation.
Co<TaskResult> body_wait_then(TaskContext ctx, std::string target, std::vector<Reentry> acts) {
  auto s = co_await g_model->manager().wait(target);
  FUZZ_CHECK(!s || is_terminal(s->status), ctx.task_id() + " waited for " + target + " and got a running summary");
  g_model->reenter(ctx.task_id(), acts, Where::Body);
  co_return TaskResult::success(json{{"k", 9}});
}

// ---- helpers --------------------------------------------------------------------------------------
std::string Model::ref(Reader& r) {
  const std::uint8_t b = r.u8();
  if (b >= 224 || order_.empty()) {
    if (!restored_.empty() && (b & 1)) return restored_[b % restored_.size()];
    return kForeign[b % std::size(kForeign)];
  }
  return order_[b % order_.size()];
}

json Model::value(Reader& r) {
  switch (r.u8() % 8) {
    case 0:
      return nullptr;
    case 1:
      return r.u8();
    case 2: {
      const char* const s[] = {"", "x", "\xc3\xbc", "\xff\xfe not utf-8", "a\"b</background-task-event>"};
      return s[r.u8() % std::size(s)];
    }
    case 3:
      return json{{"k", r.u8()}, {"nested", {{"ok", true}}}};
    case 4:
      return json::array({1, "a", nullptr, 2.5});
    case 5: {
      std::uint64_t bits = r.u64();
      double d;
      std::memcpy(&d, &bits, sizeof d);
      if (d != d || d - d != 0) d = 0.5;  // NaN / infinity are not JSON
      return d;
    }
    case 6: {
      // What a host hands over as text (the wasm binding parses results and payloads with parse_json).
      auto j = parse_json(r.str(64), "result");
      return j.ok() ? *j : json("unparsed");
    }
    default: {
      // Deep nesting, as a host could send it: `d` arrays, accepted by parse_json up to its limit
      // (depths around kMaxJsonDepth a quarter of the time).
      const std::uint8_t b = r.u8();
      std::size_t d = b < 192 ? b % 64 : kMaxJsonDepth - 4 + b % 8;
      std::string text(d, '[');
      text.append(d, ']');
      auto j = parse_json(text, "result");
      return j.ok() ? *j : json("too deep");
    }
  }
}

TaskParentContext Model::parent(Reader& r) {
  TaskParentContext p;
  switch (r.u8() % 7) {
    case 0:
      break;
    case 1:
      p.task_id = ref(r);
      break;
    case 2:
      p.run_id = "run-1";
      break;
    case 3:
      p.task_id = ref(r);
      p.run_id = "run-2";
      p.call_id = "call-2";
      break;
    case 4:
      p.task_id = "bg_" + str(manager().next_task_number());
      break;  // its own id: a cycle
    case 5:
      p.agent_id = "agent-5";
      break;
    default:
      p.run_id = "";
      break;
  }
  return p;
}

void Model::record_spawn(const Result<TaskId>& id, const std::string& thread, Kind kind, BodyKind body,
                         std::optional<TaskStatus> expected, std::optional<json> result,
                         std::optional<std::string> error) {
  if (!id.ok()) return;
  FUZZ_CHECK(!ever_.count(*id), "spawn reused id " + *id);
  FUZZ_CHECK(!tasks_.count(*id), "spawn returned a known id " + *id);
  if (granting_) {
    const auto n = parse_bg_number(*id);
    FUZZ_CHECK(n && std::find(granted_seq_.begin(), granted_seq_.end(), *n) != granted_seq_.end(),
               "with granted ids, spawn returned " + *id + ", not a granted number");
  }
  ever_.insert(*id);
  TRACE("  spawned %s on '%s'", id->c_str(), thread.c_str());
  TaskRec rec;
  rec.thread = thread;
  rec.kind = kind;
  rec.body = body;
  rec.expected = expected;
  rec.expected_result = std::move(result);
  rec.expected_error = std::move(error);
  rec.sched = sched_;
  tasks_.emplace(*id, std::move(rec));
  order_.push_back(*id);
}

// ---- hooks: the manager reports every first cancel request and every end ----------------------------
void Model::on_cancel_requested(const TaskId& id) {
  auto it = tasks_.find(id);
  FUZZ_CHECK(it != tasks_.end(), "on_cancel_requested for a task not spawned here: " + id);
  FUZZ_CHECK(!it->second.cancel_hooked, "on_cancel_requested twice for " + id);
  // A forced end (deadline, grace, shutdown) requests the body's cancel after the task's end.
  FUZZ_CHECK(!it->second.ended || it->second.sched, "on_cancel_requested after the end of " + id);
  it->second.cancel_hooked = true;
  // A cancel made by user code: the acting code checked its answer; the model learns it here. With
  // scheduling, shutdowns and forced ends request cancels too: the hook is the record.
  if (reentry_depth_ > 0 || it->second.sched) it->second.cancel_true = true;
  fire(Where::Cancel, id);
}

void Model::on_task_end(const TaskSummary& s) {
  auto it = tasks_.find(s.task_id);
  FUZZ_CHECK(it != tasks_.end(), "on_task_end for a task not spawned here: " + s.task_id);
  TaskRec& rec = it->second;
  FUZZ_CHECK(!rec.ended, "task ended twice: " + s.task_id);
  rec.ended = true;
  rec.end_summary = s;
  rec.agent_pending.clear();  // a finished host sub-agent's inbox is closed
  TRACE("  ended %s", dump(to_json(s)).c_str());
  struct Fire {
    Model* m;
    std::string id;
    ~Fire() {
      const auto prev = m->ending_;
      m->ending_ = id;
      m->fire(Where::End, id);
      m->ending_ = prev;
    }
  } fire_after_checks{this, s.task_id};
  FUZZ_CHECK(s.completed_at_ms == h_.clock.now_ms(), "completed_at_ms is not the end time");
  if (rec.sched) {
    // Ends the manager may force: a cancel (also of a queued task, or after a grace), a deadline,
    // a shutdown. Otherwise the body's or host's own end, which a cancel request rules out.
    const bool cancelled = s.status == TaskStatus::Cancelled && !s.result && !s.error;
    const bool forced =
        s.status == TaskStatus::Failed && s.error &&
        (s.error->view() == kInterruptedError || s.error->view().rfind("task timed out after ", 0) == 0);
    if (cancelled || forced) return;
    FUZZ_CHECK(!rec.cancel_hooked, "cancel was requested but the task ended " + show(to_json(s)));
  }
  // cancel said true (the hook fired) → cancelled, whatever the body or host reported.
  if (rec.cancel_hooked) {
    FUZZ_CHECK(s.status == TaskStatus::Cancelled && !s.result && !s.error,
               "cancel said true but the task ended " + show(to_json(s)));
    return;
  }
  FUZZ_CHECK(rec.expected.has_value(), "task ended without cancel or a known outcome: " + show(to_json(s)));
  FUZZ_CHECK(s.status == *rec.expected, "task ended " + show(to_json(s)) + ", want " + as_str(*rec.expected));
  if (s.status == TaskStatus::Completed) FUZZ_CHECK(s.result == rec.expected_result, "end result " + show(to_json(s)));
  if (s.status == TaskStatus::Failed) FUZZ_CHECK(s.error == rec.expected_error, "end error " + show(to_json(s)));
}

// Called from a body's step: the model's state_ is from before this poll, so answers are checked
// against live queries (get, is_cancel_requested) rather than predicted.
void Model::meddle(const std::string& self, const std::string& target, int action) {
  auto cur = manager().get(target);
  const bool host = is_host(target);
  const bool is_live = in_handles(target) && cur && cur->status == TaskStatus::Running;
  switch (action % 6) {
    case 0: {
      const bool got = manager().cancel(target);
      if (dead()) return;
      FUZZ_CHECK(got == is_live, self + " cancel(" + target + ") answered " + (got ? "true" : "false"));
      break;
    }
    case 1: {
      if (host && is_live) {
        TaskRec& rec = tasks_.at(target);
        rec.expected = TaskStatus::Completed;
        rec.expected_result = json{{"settled_by", self}};
      }
      auto got = manager().complete(target, json{{"settled_by", self}});
      if (dead()) return;
      FUZZ_CHECK(got.ok() == (host && is_live), self + " complete(" + target + ")");
      break;
    }
    case 2: {
      const bool want = cur && is_terminal(cur->status);
      const bool got = manager().forget(target);
      if (dead()) return;
      if (got) {
        if (tasks_.count(target)) tasks_.at(target).forgotten = true;
        terminal_.erase(target);  // gone: an entry of that id restored later is a new one
      }
      FUZZ_CHECK(got == want, self + " forget(" + target + ") answered " + (got ? "true" : "false"));
      break;
    }
    case 3:
      (void)manager().cancel_tree(target);
      break;
    case 4:
      opts_.retain_finished = action & 8 ? std::optional<std::size_t>(0) : std::optional<std::size_t>(1);
      manager().set_retain_finished(opts_.retain_finished);
      break;
    default:
      (void)manager().cancel_all(tasks_.at(self).thread);
      break;
  }
  if (dead()) return;
  // Whatever said true is a cancel request: the model learns it from the manager.
  for (auto& [id, rec] : tasks_)
    if (!rec.gone && manager().is_cancel_requested(id)) rec.cancel_true = true;
}

// ---- re-entry: user code calling back into the manager ---------------------------------------------
void Model::on_fallback(const json& m) {
  fallback_.push_back(m);
  const std::string id =
      m.is_object() && m.contains("task_id") && m["task_id"].is_string() ? m["task_id"].get<std::string>() : "";
  const bool terminal = m.is_object() && m.value("kind", std::string()) != "custom";
  const auto prev = ending_;
  if (terminal) ending_ = id;  // the fallback of a terminal event runs inside that task's finish
  fire(Where::Fallback, id);
  ending_ = prev;
}

// Runs the armed re-entries for a callback (one level of callbacks inside re-entrant calls).
void Model::fire(Where where, const std::string& at_hand) {
  if (reentry_depth_ >= 2 || dead()) return;
  for (std::size_t i = 0; i < armed_.size() && !dead(); ++i) {
    if (armed_[i].where != where || armed_[i].shots <= 0) continue;
    armed_[i].shots--;
    const std::vector<Reentry> acts = armed_[i].acts;
    reenter(at_hand, acts, where);
  }
}

void Model::reenter(const std::string& at_hand, const std::vector<Reentry>& acts, Where where) {
  if (dead()) return;
  ++reentry_depth_;
  for (const Reentry& e : acts) {
    if (dead()) break;
    act(at_hand, e, where);
  }
  --reentry_depth_;
}

// A capture's destructor: at the body's end, or while the manager is being destroyed (then a
// spawn must be refused and a cancel answer false: no body of that manager will ever run again).
void Model::dtor_reenter(const std::string& self, const std::vector<Reentry>& acts) {
  if (!mgr_) return;
  if (dying_) {
    ++reentry_depth_;
    auto id = manager().spawn_host("t1", "shell", std::nullopt, "from a dtor", {});
    FUZZ_CHECK(!id.ok(), "spawn inside the manager's destructor returned " + *id);
    FUZZ_CHECK(!manager().cancel(self), "cancel(" + self + ") inside the manager's destructor said true");
    --reentry_depth_;
    return;
  }
  reenter(self, acts, Where::Dtor);
}

// Its body is live and its entry running (the task whose end is being reported is neither).
bool Model::live_now(const std::string& id) {
  if (!in_handles(id) || ending_ == id) return false;
  auto s = manager().get(id);
  return s && s->status == TaskStatus::Running;
}

void Model::act(const std::string& at_hand, const Reentry& e, Where where) {
  const std::string target = e.target.empty() ? at_hand : e.target;
  ++acts_started_;
  // In a commit hook, and in callbacks run from one, the entry being written is between two
  // states (a task may be ending there): consistency only.
  const bool exact = where != Where::Commit && in_commit_hook_ == 0;
  const std::string who = std::string(kWhereNames[static_cast<int>(where)]) + " of " + at_hand + ": " +
                          kActNames[static_cast<int>(e.act)] + "(" + target + ")";
  TRACE("  re-enter from %s", who.c_str());
  auto thread_of = [&](const std::string& id) {
    return in_handles(id) ? tasks_.at(id).thread : std::string(kThreads[e.arg % std::size(kThreads)]);
  };
  switch (e.act) {
    case Act::Forget: {
      const auto before = manager().get(target);
      const bool want = before && is_terminal(before->status);
      const bool got = manager().forget(target);
      if (dead()) return;
      if (got) {
        if (tasks_.count(target)) tasks_.at(target).forgotten = true;
        terminal_.erase(target);  // gone: an entry of that id restored later is a new one
      }
      if (exact) FUZZ_CHECK(got == want, who + " answered " + (got ? "true" : "false"));
      const bool now = manager().get(target).has_value();
      FUZZ_CHECK(got ? !now : now == before.has_value(), who + ": entry " + (now ? "present" : "absent") + " after");
      break;
    }
    case Act::Cancel: {
      const bool want = live_now(target);
      const bool got = manager().cancel(target);
      if (dead()) return;
      if (exact) FUZZ_CHECK(got == want, who + " answered " + (got ? "true" : "false"));
      if (got) FUZZ_CHECK(tasks_.count(target) && tasks_.at(target).cancel_hooked, who + " said true without the hook");
      break;
    }
    case Act::CancelTree: {
      std::size_t want = 0;
      const auto snap = manager().persisted_snapshot();
      if (snap.tasks.count(target)) {
        std::map<std::string, std::vector<std::string>> children;
        for (const auto& [id, m] : snap.tasks)
          if (m.parent_context.task_id) children[m.parent_context.task_id->str()].push_back(id);
        std::set<std::string> seen;
        std::vector<std::string> stack{target};
        while (!stack.empty()) {
          std::string cur = stack.back();
          stack.pop_back();
          if (!seen.insert(cur).second) continue;
          want += live_now(cur);
          for (const auto& c : children[cur]) stack.push_back(c);
        }
      }
      const std::size_t got = manager().cancel_tree(target);
      if (dead()) return;
      // Scheduling: a queued task ends at its cancel, and user code its end runs may end a later
      // target first, which then no longer counts.
      if (exact && !sched_) FUZZ_CHECK(got == want, who + " = " + str(got) + ", want " + str(want));
      if (exact && sched_) FUZZ_CHECK(got <= want, who + " = " + str(got) + ", at most " + str(want));
      break;
    }
    case Act::CancelAll: {
      const std::string thread = thread_of(at_hand);
      std::size_t want = 0;
      for (const auto& [id, rec] : tasks_)
        if (rec.thread == thread && live_now(id)) ++want;
      const std::size_t got = manager().cancel_all(thread);
      if (dead()) return;
      if (exact && !sched_) FUZZ_CHECK(got == want, who + " on '" + thread + "' = " + str(got) + ", want " + str(want));
      if (exact && sched_)
        FUZZ_CHECK(got <= want, who + " on '" + thread + "' = " + str(got) + ", at most " + str(want));
      break;
    }
    case Act::SpawnHost:
    case Act::SpawnBody: {
      const std::string thread = kThreads[e.arg % std::size(kThreads)];
      const bool exhausted = manager().ids_exhausted();
      const bool body = e.act == Act::SpawnBody;
      auto id = body ? manager().spawn(thread, "shell", std::nullopt, "re-entrant", {}, body_value)
                     : manager().spawn_host(thread, "shell", std::nullopt, "re-entrant", {});
      if (dead()) return;
      if (exact)
        FUZZ_CHECK(id.ok() == !(exhausted || manager().shutting_down()),
                   who + ": " + (id.ok() ? *id : id.error().message));
      if (body)
        record_spawn(id, thread, Kind::Body, BodyKind::Value, TaskStatus::Completed, json{{"k", 0}}, std::nullopt);
      else
        record_spawn(id, thread, Kind::Host, BodyKind::Value, std::nullopt, std::nullopt, std::nullopt);
      break;
    }
    case Act::Restore: {
      std::string text =
          saved_.empty()
              ? std::string(R"({"tasks":{"bg_999":{"task_id":"bg_999","task_type":"shell","description":"r",)"
                            R"("status":"running","created_at_ms":1},"custom-id":{"task_id":"custom-id",)"
                            R"("task_type":"shell","description":"r","status":"completed","created_at_ms":2}}})")
              : saved_[e.arg % saved_.size()];
      const std::string thread = thread_of(at_hand);
      auto snap = parse_snapshot(text);
      FUZZ_CHECK(snap.ok(), "re-entrant restore text does not parse");
      const auto before = manager().persisted_snapshot();
      const std::string before_text = manager().snapshot_json();
      const std::uint64_t counter = manager().next_task_number();
      const std::uint64_t acts_before = acts_started_;
      auto got = manager().restore_json(thread, text);
      if (dead()) return;
      // Calls made by a commit hook inside this restore change what it finds: a restore there may
      // add some of its entries first (it then skips them, as any existing id), a spawn moves the
      // counter.
      const bool overlapped = acts_started_ != acts_before;
      if (exact && !overlapped) {
        check_restore_result(thread, *snap, before, counter, got, before_text);
      } else {
        // Another thread's ids refuse it; what it then finds is not known exactly here.
        FUZZ_CHECK(got.ok() || got.error().code == Errc::IdConflict, who + " failed: " + got.error().message);
        if (got.ok()) note_restored(*snap, before);
      }
      break;
    }
    case Act::Drop:
      h_.manager.reset();  // the last reference unless a body or the harness's hold has one
      break;
    case Act::RunIdle:
      if (where == Where::Body) h_.exec.run_until_idle();  // a poll nested in this body's step
      break;
    case Act::kCount:
      break;
  }
}

void Model::destroy_manager(BackgroundTaskManager* m) {
  TRACE("  manager destroyed%s%s", ending_ ? " while ending " : "", ending_ ? ending_->c_str() : "");
  died_ending_ = ending_;
  dying_ = true;
  delete m;
  dying_ = false;
  mgr_ = nullptr;
}

std::vector<Reentry> Model::read_acts(Reader& r, int n) {
  std::vector<Reentry> acts;
  for (int i = 0; i < n; ++i) {
    Reentry e;
    const std::uint8_t b = r.u8();
    e.act = static_cast<Act>((b & 0x7f) % static_cast<int>(Act::kCount));
    if (b & 0x80) e.target = ref(r);
    e.arg = r.u8();
    acts.push_back(std::move(e));
  }
  return acts;
}

void Model::op_spawn_reentrant(Reader& r) {
  const std::string thread = kThreads[r.u8() % std::size(kThreads)];
  const auto kind = static_cast<ReKind>(r.u8() % static_cast<int>(ReKind::kCount));
  const std::uint8_t flags = r.u8();
  const std::vector<Reentry> acts = read_acts(r, 1 + (flags & 1));
  Result<TaskId> id = errors::invalid_argument("not spawned");
  json want;
  switch (kind) {
    case ReKind::Reenter:
      want = json{{"k", 6}};
      id = manager().spawn(thread, "shell", std::nullopt, "reenter", {},
                           [acts](TaskContext ctx) { return body_reenter(std::move(ctx), acts); });
      break;
    case ReKind::OwnsManager: {
      // flags & 2: hand the harness's reference over (the body's capture is then the last one).
      want = json{{"k", 7}};
      auto keep = take_manager_ref(flags & 2);
      const int yields = (flags >> 2) % 4;
      const bool emit = flags & 16;
      id = manager().spawn(thread, "shell", std::nullopt, "owner", {}, [keep, yields, emit](TaskContext ctx) {
        return body_owns_manager(std::move(ctx), yields, emit);
      });
      break;
    }
    case ReKind::CaptureDtor: {
      want = json{{"k", 8}};
      auto self = std::make_shared<std::string>();
      id =
          manager().spawn(thread, "shell", std::nullopt, "capture", {},
                          [g = DtorReentry(self, acts)](TaskContext ctx) { return body_with_capture(std::move(ctx)); });
      if (id.ok()) *self = *id;
      if (id.ok() && !acts.empty()) capture_reentry_spawned_ = true;
      break;
    }
    default: {
      want = json{{"k", 9}};
      const std::string target = ref(r);
      id = manager().spawn(thread, "shell", std::nullopt, "wait_then", {},
                           [target, acts](TaskContext ctx) { return body_wait_then(std::move(ctx), target, acts); });
      break;
    }
  }
  if (manager().ids_exhausted() && !id.ok()) return;
  if (shutdown_) {
    FUZZ_CHECK(!id.ok() && id.error().code == Errc::ShuttingDown, "a re-entrant spawn during a shutdown");
    return;
  }
  FUZZ_CHECK(id.ok(), "re-entrant body spawn refused: " + id.error().message);
  record_spawn(id, thread, Kind::Body, BodyKind::Value, TaskStatus::Completed, want, std::nullopt);
}

void Model::op_arm(Reader& r) {
  const std::uint8_t b = r.u8();
  const Where wheres[] = {Where::End, Where::Cancel, Where::Fallback, Where::Commit};
  Armed a{wheres[b % 4], 1 + (b >> 2) % 3, read_acts(r, 1 + ((b >> 4) & 1))};
  if (b & 0x80) armed_.clear();
  if (armed_.size() >= 4) armed_.erase(armed_.begin());
  if (a.where == Where::Commit && !commit_hook_set_) {
    commit_hook_set_ = true;
    h_.store->set_commit_hook([this](const std::vector<std::string_view>&) -> Result<void> {
      if (commit_reentry_ || reentry_depth_ > 0) {
        ++in_commit_hook_;
        fire(Where::Commit, order_.empty() ? std::string("bg_0") : order_.back());
        --in_commit_hook_;
      }
      return {};
    });
  }
  armed_.push_back(std::move(a));
}

// ---- operations -----------------------------------------------------------------------------------
void Model::op_spawn(Reader& r, Kind kind) {
  const std::string thread = kThreads[r.u8() % std::size(kThreads)];
  const std::uint8_t t = r.u8();
  const std::string type = kind == Kind::HostAgent ? "sub_agent" : kTypes[t % std::size(kTypes)];
  const char* name_c = kNames[r.u8() % std::size(kNames)];
  const std::optional<std::string_view> name = name_c ? std::optional<std::string_view>(name_c) : std::nullopt;
  TaskParentContext p = parent(r);
  const std::uint8_t ctx = r.u8();
  std::optional<std::string> ambient_task;
  if (ctx & 1) ambient_task = ref(r);
  std::optional<ToolLineageContext> lineage;
  if (ctx & 2)
    lineage = ToolLineageContext{(ctx & 4) ? "" : "run-L", (ctx & 8) ? "call-L" : "", (ctx & 16) ? "agent-L" : ""};

  // The model's answer.
  std::optional<Errc> want_error;
  if (shutdown_)
    want_error = Errc::ShuttingDown;  // before any other check
  else if (name) {
    for (const char* reserved : kReservedNames)
      if (*name == reserved) want_error = Errc::ReservedName;
    if (!want_error)
      for (const auto& [id, m] : state_.tasks)
        if (m.owner_thread_id == thread && m.status == TaskStatus::Running && m.name == std::string(*name))
          want_error = Errc::DuplicateName;
  }
  // The last id, bg_18446744073709551615, once handed out or restored, ends spawning; with granted
  // ids, the last granted number not seen does.
  const std::optional<std::uint64_t> granted = granting_ ? grant_next() : std::nullopt;
  const bool exhausted = granting_ ? !granted : ever_.count("bg_" + str(UINT64_MAX)) > 0;
  FUZZ_CHECK(manager().ids_exhausted() == exhausted, "ids_exhausted() disagrees with the ids seen");
  if (!want_error && exhausted) want_error = granting_ ? Errc::IdsUnavailable : Errc::InvalidArgument;
  TaskParentContext want_parent = p;
  if (!want_parent.task_id && ambient_task) want_parent.task_id = ambient_task;
  if (lineage) {
    if (!want_parent.run_id) want_parent.run_id = lineage->run_id;
    if (!want_parent.call_id && !lineage->call_id.empty()) want_parent.call_id = lineage->call_id;
    if (!want_parent.agent_id && !lineage->agent_id.empty()) want_parent.agent_id = lineage->agent_id;
  }
  const std::uint64_t counter = manager().next_task_number();
  if (granted) FUZZ_CHECK(counter == *granted, "next granted id bg_" + str(counter) + ", want bg_" + str(*granted));

  Result<TaskId> id = errors::invalid_argument("not spawned");
  {
    std::optional<BackgroundTaskScope> task_scope;
    if (ambient_task) task_scope.emplace(BackgroundTaskContext{&manager(), *ambient_task});  // = enter_task
    ToolLineageScope lineage_scope(lineage);
    id = manager().spawn_host(thread, type, name, "desc", p, kind == Kind::HostAgent);
  }
  if (want_error) {
    FUZZ_CHECK(!id.ok() && id.error().code == *want_error,
               std::string("spawn: want ") + errc_name(*want_error) + ", got " + (id.ok() ? *id : id.error().message));
    FUZZ_CHECK(manager().next_task_number() == counter, "a refused spawn moved the counter");
    return;
  }
  FUZZ_CHECK(id.ok(), "spawn refused: " + id.error().message);
  FUZZ_CHECK(*id == "bg_" + str(counter), "spawn returned " + *id + ", counter was " + str(counter));
  record_spawn(id, thread, kind, BodyKind::Value, std::nullopt, std::nullopt, std::nullopt);
  auto s = manager().get(*id);
  FUZZ_CHECK(s && s->status == TaskStatus::Running && s->task_type == type && s->description == "desc" &&
                 s->created_at_ms == h_.clock.now_ms(),
             "spawned meta: " + (s ? show(to_json(*s)) : std::string("<absent>")));
  FUZZ_CHECK(s->parent_context == want_parent,
             "lineage merge: got " + show(to_json(s->parent_context)) + ", want " + show(to_json(want_parent)));
}

void Model::op_spawn_body(Reader& r) {
  const std::string thread = kThreads[r.u8() % std::size(kThreads)];
  const std::uint8_t k = r.u8();
  const std::uint64_t ms = r.u8();
  const int rounds = 1 + r.u8() % 3;
  const char* name_c = kNames[1 + r.u8() % 2];  // "a" / "b" or none below
  const bool named = r.u8() & 1;
  const std::optional<std::string_view> name = named ? std::optional<std::string_view>(name_c) : std::nullopt;
  bool dup = false;
  if (name)
    for (const auto& [id, m] : state_.tasks)
      if (m.owner_thread_id == thread && m.status == TaskStatus::Running && m.name == std::string(*name)) dup = true;

  // Spawning ends once the last id is taken, or with granted ids once none is left.
  const bool none_left = granting_ ? !grant_next() : ever_.count("bg_" + str(UINT64_MAX)) > 0;
  Result<TaskId> id = errors::invalid_argument("not spawned");
  BodyKind body = static_cast<BodyKind>(k % (static_cast<int>(BodyKind::kCount) + 1));
  Kind kind = Kind::Body;
  std::optional<TaskStatus> expected;
  std::optional<json> result;
  std::optional<std::string> error;
  if (static_cast<int>(body) == static_cast<int>(BodyKind::kCount)) {
    kind = Kind::Agent;
    body = BodyKind::WaitCancel;
    id = manager().spawn_agent_with_context(thread, name, "agent", {},
                                            [](AgentTaskContext ctx) { return agent_body(std::move(ctx)); });
  } else {
    switch (body) {
      case BodyKind::Value:
        expected = TaskStatus::Completed, result = json{{"k", 0}};
        id = manager().spawn(thread, "shell", name, "value", {}, body_value);
        break;
      case BodyKind::SleepEmit:
        expected = TaskStatus::Completed, result = json{{"k", 1}};
        id = manager().spawn(thread, "shell", name, "sleep", {},
                             [ms, rounds](TaskContext ctx) { return body_sleep_emit(std::move(ctx), ms, rounds); });
        break;
      case BodyKind::WaitCancel:
        id = manager().spawn(thread, "shell", name, "wait", {}, body_wait_cancel);
        break;
      case BodyKind::Throw:
        expected = TaskStatus::Failed, error = "boom";
        id = manager().spawn(thread, "shell", name, "throw", {}, body_throw);
        break;
      case BodyKind::SpawnChild:
        expected = TaskStatus::Completed, result = json{{"k", 2}};
        id = manager().spawn(thread, "shell", name, "parent", {},
                             [thread](TaskContext ctx) { return body_spawn_child(std::move(ctx), thread); });
        break;
      case BodyKind::Meddle: {
        expected = TaskStatus::Completed, result = json{{"k", 4}};
        const std::string target = ref(r);
        const int action = r.u8();
        id = manager().spawn(thread, "shell", name, "meddle", {},
                             [target, action](TaskContext ctx) { return body_meddle(std::move(ctx), target, action); });
        break;
      }
      case BodyKind::Waiter: {
        expected = TaskStatus::Completed, result = json{{"k", 5}};
        const std::string target = ref(r);
        id = manager().spawn(thread, "shell", name, "waiter", {},
                             [target](TaskContext ctx) { return body_waiter(std::move(ctx), target); });
        break;
      }
      case BodyKind::Fail:
      case BodyKind::kCount:
        expected = TaskStatus::Failed, error = "body failed";
        id = manager().spawn(thread, "shell", name, "fail", {}, body_fail);
        break;
    }
  }
  if (shutdown_) {
    FUZZ_CHECK(!id.ok() && id.error().code == Errc::ShuttingDown, "a spawn during a shutdown");
    return;
  }
  if (dup) {
    FUZZ_CHECK(!id.ok() && id.error().code == Errc::DuplicateName, "duplicate running name accepted");
    return;
  }
  if (none_left) {
    FUZZ_CHECK(!id.ok() && id.error().code == (granting_ ? Errc::IdsUnavailable : Errc::InvalidArgument),
               "spawn with ids exhausted");
    return;
  }
  FUZZ_CHECK(id.ok(), "body spawn refused: " + id.error().message);
  record_spawn(id, thread, kind, body, expected, result, error);
}

void Model::op_complete(Reader& r, bool fail) {
  const std::string id = ref(r);
  json v = value(r);
  const std::string msg = fail ? "failed: " + std::to_string(r.u8()) : "";
  const std::optional<Errc> want = host_call_error(id);
  if (!want) {
    TaskRec& rec = tasks_.at(id);
    rec.expected = fail ? TaskStatus::Failed : TaskStatus::Completed;
    if (fail)
      rec.expected_error = msg;
    else
      rec.expected_result = v;
  }
  Result<void> got = fail ? manager().fail(id, msg) : manager().complete(id, v);
  if (dead()) return;  // a callback dropped the last reference (the unheld variant)
  if (want) {
    FUZZ_CHECK(!got.ok() && got.error().code == *want,
               "settle " + id + ": want " + errc_name(*want) + ", got " + (got.ok() ? "ok" : got.error().message));
    return;
  }
  FUZZ_CHECK(got.ok(), "settle " + id + " refused: " + got.error().message);
  TaskRec& rec = tasks_.at(id);
  FUZZ_CHECK(rec.ended, "settle returned without ending the task");
  auto s = manager().get(id);
  if (s && rec.sched) {  // a shutdown's request makes it fail as interrupted
    FUZZ_CHECK(s->status == (rec.cancel_true ? s->status : *rec.expected),
               "settled " + id + " is " + as_str(s->status));
  } else if (s) {  // retention may have dropped it already
    const TaskStatus want_status = rec.cancel_true ? TaskStatus::Cancelled : *rec.expected;
    FUZZ_CHECK(s->status == want_status,
               "settled " + id + " is " + as_str(s->status) + ", want " + as_str(want_status));
    if (!rec.cancel_true && !fail)
      FUZZ_CHECK(s->result && *s->result == v, "completed result differs: " + show(to_json(*s)));
    if (!rec.cancel_true && fail) FUZZ_CHECK(s->error == msg, "failed error differs");
    FUZZ_CHECK(s->completed_at_ms == h_.clock.now_ms(), "completed_at_ms");
  }
}

void Model::op_emit(Reader& r) {
  const std::string id = ref(r);
  const std::int64_t seq = next_seq();
  json payload{{"seq", seq}, {"v", value(r)}};
  const bool got = manager().emit(id, "fz", payload);
  const bool want = live(id) && !inbox_closed_;
  FUZZ_CHECK(got == want, "emit " + id + " answered " + (got ? "true" : "false"));
  if (got) tasks_.at(id).custom_sent++;
}

void Model::op_cancel(Reader& r) {
  const std::string id = ref(r);
  const bool want = live(id);
  const bool got = manager().cancel(id);
  if (dead()) {
    if (got) tasks_.at(id).cancel_true = true;
    return;
  }
  FUZZ_CHECK(got == want, "cancel " + id + " answered " + (got ? "true" : "false"));
  if (got) {
    tasks_.at(id).cancel_true = true;
    // A queued task ends at its cancel.
    FUZZ_CHECK(manager().is_cancel_requested(id) || (sched_ && tasks_.at(id).ended),
               "cancel said true but is_cancel_requested is false");
  }
}

std::size_t Model::tree_count(const std::string& root, std::vector<std::string>* hit) {
  if (!entry(root)) return 0;
  std::map<std::string, std::vector<std::string>> children;
  for (const auto& [id, m] : state_.tasks)
    if (m.parent_context.task_id) children[m.parent_context.task_id->str()].push_back(id);
  std::set<std::string> seen;
  std::vector<std::string> stack{root};
  std::size_t n = 0;
  while (!stack.empty()) {
    std::string cur = stack.back();
    stack.pop_back();
    if (!seen.insert(cur).second) continue;
    if (live(cur)) {
      ++n;
      if (hit) hit->push_back(cur);
    }
    for (const auto& c : children[cur]) stack.push_back(c);
  }
  return n;
}

void Model::check_cancel_count(const std::string& what, std::size_t got, std::size_t want,
                               const std::vector<std::string>& hit, std::uint64_t acts_before) {
  if (!sched_) {
    FUZZ_CHECK(got == want, what + " = " + str(got) + ", want " + str(want));
    for (const auto& id : hit) tasks_.at(id).cancel_true = true;
    return;
  }
  // Scheduling: a queued task ends at its cancel, and callbacks its end runs may end a later target
  // first (which then no longer counts); the hooks record every request.
  if (acts_started_ == acts_before)
    FUZZ_CHECK(got == want, what + " = " + str(got) + ", want " + str(want));
  else
    FUZZ_CHECK(got <= want, what + " = " + str(got) + ", at most " + str(want));
}

void Model::op_cancel_tree(Reader& r) {
  const std::string root = ref(r);
  std::vector<std::string> hit;
  const std::size_t want = tree_count(root, &hit);
  const std::uint64_t acts = acts_started_;
  const std::size_t got = manager().cancel_tree(root);
  check_cancel_count("cancel_tree " + root, got, want, hit, acts);
}

void Model::op_cancel_all(Reader& r) {
  const std::string thread = kThreads[r.u8() % std::size(kThreads)];
  std::vector<std::string> hit;
  for (const auto& [id, rec] : tasks_)
    if (rec.thread == thread && live(id)) hit.push_back(id);
  const std::uint64_t acts = acts_started_;
  const std::size_t got = manager().cancel_all(thread);
  check_cancel_count("cancel_all " + thread, got, hit.size(), hit, acts);
}

void Model::op_cancel_run(Reader& r) {
  const std::string run = (r.u8() & 1) ? "run-1" : "run-L";
  std::vector<std::string> roots;
  for (const auto& [id, m] : state_.tasks)
    if (m.status == TaskStatus::Running && m.parent_context.run_id == run && !m.parent_context.task_id)
      roots.push_back(id);
  std::vector<std::string> hit;
  std::size_t want = 0;
  for (const auto& root : roots) want += tree_count(root, &hit);
  const std::uint64_t acts = acts_started_;
  const std::size_t got = manager().cancel_descendants_for_run(run);
  check_cancel_count("cancel_descendants_for_run " + run, got, want, hit, acts);
}

void Model::op_send(Reader& r) {
  const std::string id = ref(r);
  const std::string thread = (r.u8() % 4 == 0) ? "t-other" : (in_handles(id) ? tasks_.at(id).thread : "t1");
  const std::string content = "msg-" + str(next_seq());
  auto got = manager().send_task_inbox_message(id, thread, "sender", content);
  std::optional<Errc> want;
  if (!in_handles(id))
    want = Errc::TaskNotFound;
  else if (tasks_.at(id).thread != thread)
    want = Errc::NotOwner;
  else if (!running(id))
    want = Errc::TaskTerminated;
  else if (tasks_.at(id).kind != Kind::HostAgent && tasks_.at(id).kind != Kind::Agent)
    want = Errc::NoInbox;
  if (want) {
    FUZZ_CHECK(!got.ok() && got.error().code == *want,
               "send " + id + ": want " + errc_name(*want) + ", got " + (got.ok() ? "ok" : got.error().message));
    return;
  }
  TaskRec& rec = tasks_.at(id);
  const std::size_t cap = opts_.agent_inbox.capacity;
  const bool reject = opts_.agent_inbox.overflow == OverflowPolicy::Reject;
  if (rec.kind == Kind::HostAgent) {
    const bool full = cap != 0 && rec.agent_pending.size() >= cap;
    if (full && reject) {
      FUZZ_CHECK(!got.ok() && got.error().code == Errc::InboxFull, "send to a full inbox: want InboxFull");
      return;
    }
    FUZZ_CHECK(got.ok(), "send refused: " + got.error().message);
    if (full) rec.agent_pending.pop_front();
    rec.agent_pending.push_back(json{{"kind", "custom"},
                                     {"task_id", id},
                                     {"event_type", "agent_message"},
                                     {"payload", {{"from", "sender"}, {"content", content}}}});
    FUZZ_CHECK(manager().agent_inbox_len(id) == rec.agent_pending.size(), "agent inbox length");
  } else {
    // A coroutine agent reads at its next step: its queue length is not visible here.
    FUZZ_CHECK(got.ok() || (cap != 0 && reject && got.error().code == Errc::InboxFull),
               "send to a coroutine agent: " + got.error().message);
  }
}

void Model::op_take_messages(Reader& r) {
  const std::string id = ref(r);
  const std::size_t max = r.u8() % 4;
  auto got = manager().take_agent_messages(id, max == 0 ? SIZE_MAX : max);
  std::vector<json> want;
  if (in_handles(id) && tasks_.at(id).kind == Kind::HostAgent) {
    auto& pending = tasks_.at(id).agent_pending;
    while (!pending.empty() && want.size() < (max == 0 ? SIZE_MAX : max)) {
      want.push_back(pending.front());
      pending.pop_front();
    }
  }
  FUZZ_CHECK(got == want, "take_agent_messages " + id + ": got " + str(got.size()) + " want " + str(want.size()) +
                              (got.empty() ? "" : " first " + show(got[0])));
}

void Model::op_arm_timer(Reader& r) {
  const std::string id = ref(r);
  const std::uint8_t b = r.u8();
  std::uint64_t ms = b < 250 ? b : (b == 250 ? r.u64() : UINT64_MAX - b);
  auto got = bgtasks::detail::ManagerInternals::arm_host_timer(manager(), id, ms);
  const std::optional<Errc> want = host_call_error(id);
  if (want) {
    FUZZ_CHECK(!got.ok() && got.error().code == *want, "arm_host_timer " + id + ": want " + errc_name(*want) +
                                                           ", got " + (got.ok() ? "ok" : got.error().message));
    return;
  }
  FUZZ_CHECK(got.ok(), "arm_host_timer refused: " + got.error().message);
  FUZZ_CHECK(*got == last_timer_ + 1, "timer numbers not consecutive");
  last_timer_ = *got;
  timers_[*got] = Timer{id, h_.clock.now_ms(), ms, false};
}

void Model::check_fired_timers() {
  for (const auto& [number, slept] : bgtasks::detail::ManagerInternals::take_fired_host_timers(manager())) {
    auto it = timers_.find(number);
    FUZZ_CHECK(it != timers_.end(), "unknown timer fired: " + str(number));
    Timer& t = it->second;
    FUZZ_CHECK(!t.fired, "timer fired twice: " + str(number));
    t.fired = true;
    const std::uint64_t elapsed = h_.clock.now_ms() - t.armed_at;
    if (slept)
      FUZZ_CHECK(elapsed >= t.ms,
                 "timer " + str(number) + " fired true after " + str(elapsed) + " of " + str(t.ms) + " ms");
    else
      FUZZ_CHECK(tasks_.at(t.task).cancel_true || (tasks_.at(t.task).sched && tasks_.at(t.task).ended),
                 "timer fired false without a cancel");
  }
}

void Model::on_listened(const Event& e) {
  FUZZ_CHECK(e.kind != EventKind::Raw, "a listener got a raw message");
  FUZZ_CHECK(!listened_end_.count(e.task_id),
             "a listener got an event of " + e.task_id + " after its end: " + show(e.to_json()));
  if (e.kind != EventKind::Custom) listened_end_.insert(e.task_id);
}

// Scheduling: spawns with deadlines, new limits, the two halves of a shutdown.
void Model::op_sched(Reader& r) {
  const std::uint8_t b = r.u8();
  const std::string thread = kThreads[r.u8() % std::size(kThreads)];
  const std::uint64_t timeout = r.u8() % 50;
  switch (b % 6) {
    case 0:
    case 1:
    case 2: {
      const bool body = b % 6 == 2;
      const bool exhausted = manager().ids_exhausted();
      SpawnOptions o{thread, kTypes[(b >> 3) % 2], std::nullopt, "timed", {}, timeout};
      auto id =
          body ? manager().spawn(o, [ms = timeout](TaskContext ctx) { return body_sleep_emit(std::move(ctx), ms, 1); })
               : manager().spawn_host(o);
      if (dead()) return;
      if (shutdown_) {
        FUZZ_CHECK(!id.ok() && id.error().code == Errc::ShuttingDown, "a timed spawn during a shutdown");
        return;
      }
      if (exhausted) {
        FUZZ_CHECK(!id.ok(), "a timed spawn with ids exhausted");
        return;
      }
      FUZZ_CHECK(id.ok(), "timed spawn refused: " + id.error().message);
      if (body)
        record_spawn(id, thread, Kind::Body, BodyKind::SleepEmit, TaskStatus::Completed, json{{"k", 1}}, std::nullopt);
      else
        record_spawn(id, thread, Kind::Host, BodyKind::Value, std::nullopt, std::nullopt, std::nullopt);
      break;
    }
    case 3: {
      ConcurrencyLimits l;
      if (b & 0x08) l.per_thread = (b >> 4) % 3;  // 0: refused
      if (b & 0x40) l.per_type["shell"] = (b >> 6) % 2 + (timeout % 2);
      const bool zero = (l.per_thread && *l.per_thread == 0) || (l.per_type.count("shell") && l.per_type["shell"] == 0);
      const ConcurrencyLimits before = manager().concurrency();
      auto got = manager().set_concurrency(l);
      if (dead()) return;
      if (zero) {
        FUZZ_CHECK(!got.ok() && got.error().code == Errc::InvalidArgument, "a limit of 0 accepted");
        FUZZ_CHECK(manager().concurrency() == before, "a refused set_concurrency changed the limits");
      } else {
        FUZZ_CHECK(got.ok(), "set_concurrency refused: " + got.error().message);
      }
      break;
    }
    case 4: {
      std::size_t want = 0;
      for (const auto& [id, rec] : tasks_) want += live(id) && !rec.cancel_true;
      const bool first = !shutdown_;
      shutdown_ = true;
      const std::size_t got = manager().begin_shutdown();
      if (dead()) return;
      FUZZ_CHECK(manager().shutting_down(), "shutting_down() after begin_shutdown");
      if (!first) FUZZ_CHECK(got == 0, "a second begin_shutdown signalled " + str(got));
      // User code run by the hooks, or by the destructor of a queued task's capture, may cancel a
      // later target first: then it is not counted.
      else if (armed_.empty() && !capture_reentry_spawned_)
        FUZZ_CHECK(got == want, "begin_shutdown signalled " + str(got) + ", want " + str(want));
      else
        FUZZ_CHECK(got <= want, "begin_shutdown signalled " + str(got) + ", at most " + str(want));
      break;
    }
    default: {
      shutdown_ = true;
      (void)manager().finish_shutdown();
      if (dead()) return;
      for (const auto& [id, rec] : tasks_)
        if (in_handles(id)) {
          auto s = manager().get(id);
          FUZZ_CHECK(!s || s->status != TaskStatus::Running, "finish_shutdown left " + id + " running");
        }
      break;
    }
  }
}

void Model::op_advance(Reader& r) {
  const std::uint8_t b = r.u8();
  std::uint64_t ms = b < 200 ? b : (b < 250 ? 1000u * b : (b < 255 ? r.u64() % (1ull << 40) : r.u64()));
  const std::uint64_t before = h_.clock.now_ms();
  FUZZ_CHECK(h_.exec.advance(ms), "advance on a manual clock");
  FUZZ_CHECK(h_.clock.now_ms() >= before,
             "time went backwards: advance(" + str(ms) + ") from " + str(before) + " gave " + str(h_.clock.now_ms()));
  switch (r.u8() % 3) {
    case 0:
      break;
    case 1:
      h_.exec.poll();
      break;
    default:
      h_.exec.run_until_idle();
      break;
  }
}

void Model::op_snapshot_save(Reader& r) {
  const std::uint8_t b = r.u8();
  std::string text = (b % 4 == 3) ? manager().snapshot_json() : manager().snapshot_json(kThreads[b % 3]);
  auto snap = parse_snapshot(text);
  FUZZ_CHECK(snap.ok(), "own snapshot does not parse: " + snap.error().message);
  if (b % 4 != 3)
    for (const auto& [id, m] : snap->tasks)
      FUZZ_CHECK(m.owner_thread_id == kThreads[b % 3], "thread snapshot holds another thread's task " + id);
  if (saved_.size() < 8) saved_.push_back(std::move(text));
}

void Model::check_restore_result(const std::string& thread, const BackgroundTaskStateSnapshot& snap,
                                 const BackgroundTaskStateSnapshot& before, std::uint64_t counter_before,
                                 const Result<RestoreReport>& r, const std::string& before_text) {
  // Ids another thread's entries hold refuse the whole restore.
  std::vector<std::string> held;
  for (const auto& [id, m] : snap.tasks)
    if (auto it = before.tasks.find(id); it != before.tasks.end() && it->second.owner_thread_id != thread)
      held.push_back(id);
  if (!held.empty()) {
    FUZZ_CHECK(!r.ok() && r.error().code == Errc::IdConflict,
               "restore naming " + held.front() +
                   " of another thread: " + (r.ok() ? std::string("accepted") : r.error().message));
    FUZZ_CHECK(r.error().message.rfind("restore refused: ids held by tasks of another thread: ", 0) == 0 &&
                   r.error().message.find(held.front() + " (thread '") != std::string::npos,
               "IdConflict message: " + r.error().message);
    FUZZ_CHECK(manager().snapshot_json() == before_text && manager().next_task_number() == counter_before,
               "a refused restore changed the state");
    return;
  }
  FUZZ_CHECK(r.ok(), "restore of a valid snapshot failed: " + r.error().message);
  const auto after = manager().persisted_snapshot();
  std::size_t added = 0;
  std::vector<std::pair<std::optional<std::uint64_t>, std::string>> skipped;  // (bg number, id)
  std::optional<std::uint64_t> highest;
  for (const auto& [id, m] : snap.tasks) {
    const auto number = parse_bg_number(id);
    if (number) highest = std::max(highest.value_or(0), *number);
    if (before.tasks.count(id)) {
      skipped.emplace_back(number, id);
      continue;
    }
    ++added;
    if (restored_.size() < 32) restored_.push_back(id);
    ever_.insert(id);
    auto it = after.tasks.find(id);
    if (it == after.tasks.end()) {
      FUZZ_CHECK(opts_.retain_finished.has_value(), "restored entry missing without retention: " + id);
      continue;
    }
    BackgroundTaskStateSnapshot one;
    one.tasks.emplace(id, m);
    const auto want = fuzz::restored_into_empty(one, thread).tasks.at(id);
    FUZZ_CHECK(it->second == want, "restored " + show(it->second) + ", want " + show(want));
  }
  note_restored(snap, before);
  FUZZ_CHECK(r->added == added, "restore returned " + str(r->added) + ", added " + str(added));
  // Id order: bg_N by N, then the other ids.
  std::sort(skipped.begin(), skipped.end(), [](const auto& a, const auto& b) {
    if (a.first.has_value() != b.first.has_value()) return a.first.has_value();
    if (a.first && *a.first != *b.first) return *a.first < *b.first;
    return a.second < b.second;
  });
  std::vector<TaskId> want_skipped;
  for (const auto& [n, id] : skipped) want_skipped.push_back(id);
  FUZZ_CHECK(r->skipped == want_skipped,
             "restore reported " + str(r->skipped.size()) + " skipped, want " + str(want_skipped.size()));
  FUZZ_CHECK(r->highest_number == highest, "restore reported the wrong highest number");
  FUZZ_CHECK(manager().next_task_number() == expected_next(snap, counter_before),
             "counter after restore " + str(manager().next_task_number()));
}

void Model::op_restore_saved(Reader& r) {
  if (saved_.empty()) return;
  const std::string& text = saved_[r.u8() % saved_.size()];
  const std::string thread = kThreads[r.u8() % std::size(kThreads)];
  auto snap = parse_snapshot(text);
  FUZZ_CHECK(snap.ok(), "saved snapshot no longer parses");
  const auto before = manager().persisted_snapshot();
  const std::string before_text = manager().snapshot_json();
  const std::uint64_t counter = manager().next_task_number();
  auto got = manager().restore_json(thread, text);
  check_restore_result(thread, *snap, before, counter, got, before_text);
}

void Model::op_restore_crafted(Reader& r) {
  // An outside snapshot: ids bg_<n> anywhere in u64 (also near the top), other ids, any status.
  const std::string thread = kThreads[r.u8() % std::size(kThreads)];
  const int n = 1 + r.u8() % 4;
  json tasks = json::object();
  for (int i = 0; i < n; ++i) {
    std::string id;
    const std::uint8_t k = r.u8();
    switch (k % 6) {
      case 0:
        id = "bg_" + str(manager().next_task_number() + r.u8() % 4);
        break;
      case 1:
        id = "bg_" + str(UINT64_MAX - r.u8() % 3);
        break;
      case 2:
        id = "bg_" + str(r.u64());
        break;
      case 3:
        id = kForeign[r.u8() % std::size(kForeign)];
        break;
      case 4:
        id = "bg_" + str(r.u8());
        break;
      default:
        id = order_.empty() ? "bg_0" : order_[r.u8() % order_.size()];
        break;
    }
    const char* const statuses[] = {"running", "completed", "failed", "cancelled"};
    json e{{"task_id", id},
           {"owner_thread_id", "elsewhere"},
           {"task_type", "shell"},
           {"description", "crafted"},
           {"status", statuses[k / 8 % 4]},
           {"created_at_ms", r.u8()},
           {"parent_context", json::object()}};
    if (k & 0x40) e["completed_at_ms"] = 7;
    if (k & 0x80) e["parent_context"]["task_id"] = ref(r);
    if (r.u8() & 1) e["name"] = kNames[1 + r.u8() % 2];
    if (std::string(statuses[k / 8 % 4]) == "completed") e["result"] = value(r);
    tasks[id] = std::move(e);
  }
  const std::string text = dump(json{{"tasks", tasks}});
  const auto before = manager().persisted_snapshot();
  const std::string before_text = manager().snapshot_json();
  const std::uint64_t counter = manager().next_task_number();
  auto got = manager().restore_json(thread, text);
  auto snap = parse_snapshot(text);
  if (!snap.ok()) {
    FUZZ_CHECK(!got.ok() && got.error().code == Errc::InvalidSnapshot, "invalid snapshot accepted");
    FUZZ_CHECK(manager().snapshot_json() == before_text && manager().next_task_number() == counter,
               "a refused restore changed the state");
    return;
  }
  check_restore_result(thread, *snap, before, counter, got, before_text);
}

void Model::op_grant(Reader& r) {
  const std::uint8_t b = r.u8();
  const std::uint64_t count = b % 5;  // 0 is ignored
  std::uint64_t first = 0;
  switch (b / 5 % 4) {
    case 0:
    case 1: {
      // Above every number seen, counted or granted: what a shared allocator hands out.
      std::uint64_t top = granting_ ? 0 : manager().next_task_number();
      for (const auto& id : ever_)
        if (auto n = parse_bg_number(id)) top = std::max(top, *n == UINT64_MAX ? *n : *n + 1);
      for (const std::uint64_t n : granted_seq_) top = std::max(top, n == UINT64_MAX ? n : n + 1);
      for (const std::uint64_t n : maybe_seen_) top = std::max(top, n == UINT64_MAX ? n : n + 1);
      first = top + r.u8() % 3;
      if (first < top) first = UINT64_MAX;  // wrapped
      break;
    }
    case 2:
      first = UINT64_MAX - r.u8() % 4;
      break;  // cut at the last id
    default: {
      // Numbers stored now: the manager leaves them out.
      std::vector<std::uint64_t> stored;
      for (const auto& [id, m] : state_.tasks)
        if (auto n = parse_bg_number(id); n && "bg_" + str(*n) == id) stored.push_back(*n);
      first = stored.empty() ? 0 : stored[r.u8() % stored.size()];
      break;
    }
  }
  const std::uint64_t last = count == 0 ? first : (count - 1 > UINT64_MAX - first ? UINT64_MAX : first + (count - 1));
  std::vector<std::uint64_t> fresh;
  for (std::uint64_t n = first;; ++n) {
    const bool stored = state_.tasks.count("bg_" + str(n)) > 0;
    // An allocator never grants a number twice, nor one this manager may have handed out.
    if (std::find(granted_seq_.begin(), granted_seq_.end(), n) != granted_seq_.end()) return;
    if (!stored && seen_number(n)) return;
    if (!stored && !in_handles("bg_" + str(n))) fresh.push_back(n);
    if (n == last) break;
  }
  const bool was = manager().uses_granted_ids();
  TRACE("  grant_ids(%llu, %llu)", static_cast<unsigned long long>(first), static_cast<unsigned long long>(count));
  manager().grant_ids(first, count);
  if (count == 0) {
    FUZZ_CHECK(manager().uses_granted_ids() == was, "an empty grant changed the mode");
    return;
  }
  FUZZ_CHECK(manager().uses_granted_ids(), "grant_ids did not switch to granted ids");
  granting_ = true;
  granted_seq_.insert(granted_seq_.end(), fresh.begin(), fresh.end());
}

void Model::op_forget(Reader& r) {
  const std::string id = ref(r);
  const auto* m = entry(id);
  const bool want = m && is_terminal(m->status);
  const bool got = manager().forget(id);
  FUZZ_CHECK(got == want, "forget " + id + " answered " + (got ? "true" : "false"));
  FUZZ_CHECK(!got || !manager().get(id), "forgotten task still readable");
}

void Model::op_retain(Reader& r) {
  const std::uint8_t b = r.u8();
  opts_.retain_finished = (b % 5 == 4) ? std::nullopt : std::optional<std::size_t>(b % 5);
  manager().set_retain_finished(opts_.retain_finished);
}

void Model::check_events(const std::vector<Event>& events, const std::string* thread) {
  for (const Event& ev : events) {
    FUZZ_CHECK(ev.kind != EventKind::Raw, "raw event in the owner inbox: " + show(ev.to_json()));
    auto it = tasks_.find(ev.task_id);
    FUZZ_CHECK(it != tasks_.end(), "event for a task not spawned in this run: " + show(ev.to_json()));
    TaskRec& rec = it->second;
    FUZZ_CHECK(ev.thread == rec.thread, "event routed to thread '" + ev.thread + "', owner '" + rec.thread + "'");
    if (thread) FUZZ_CHECK(ev.thread == *thread, "drain(thread) returned another thread's event");
    FUZZ_CHECK(rec.terminal_events == 0, "event after the terminal event: " + show(ev.to_json()));
    if (ev.kind == EventKind::Custom) {
      FUZZ_CHECK(ev.event_type == "fz" && ev.data.is_object() && ev.data.contains("seq"),
                 "custom event " + show(ev.to_json()));
      const std::int64_t seq = ev.data["seq"].get<std::int64_t>();
      FUZZ_CHECK(seq > rec.last_seq, "custom events of " + ev.task_id + " out of order");
      rec.last_seq = seq;
      rec.custom_seen++;
      continue;
    }
    check_terminal_event(ev.task_id, rec, ev.kind, ev.data, ev.error, ev.to_json());
  }
}

void Model::check_terminal_event(const std::string& id, TaskRec& rec, EventKind kind, const json& data,
                                 const std::string& error, const json& shown) {
  rec.terminal_events++;
  if (!rec.ended && died_ending_ == id) return;  // the manager died while reporting this end
  FUZZ_CHECK(rec.ended && rec.end_summary, "terminal event before the end: " + show(shown));
  const TaskSummary& end = *rec.end_summary;
  const EventKind want = end.status == TaskStatus::Completed ? EventKind::Completed
                         : end.status == TaskStatus::Failed  ? EventKind::Failed
                                                             : EventKind::Cancelled;
  FUZZ_CHECK(end.status != TaskStatus::Running, "ended running");
  FUZZ_CHECK(kind == want, "terminal event " + show(shown) + " differs from the end " + show(to_json(end)));
  if (want == EventKind::Completed) FUZZ_CHECK(data == end.result.value_or(json()), "completed event result");
  if (want == EventKind::Failed) FUZZ_CHECK(error == end.error.value_or(""), "failed event error");
}

// Events the fallback saw (sent after the owner inbox's receiver was dropped): well-formed, of
// tasks spawned here; terminal ones count as delivered (exactly one per ended task).
void Model::check_fallback() {
  for (const json& m : fallback_) {
    FUZZ_CHECK(inbox_closed_, "fallback fired while the receiver is alive");
    FUZZ_CHECK(m.is_object() && m.contains("kind") && m.contains("task_id") && m["task_id"].is_string(),
               "fallback message " + show(m));
    auto it = tasks_.find(m["task_id"].get<std::string>());
    FUZZ_CHECK(it != tasks_.end(), "fallback event for a task not spawned here: " + show(m));
    const std::string kind = m["kind"].get<std::string>();
    if (kind == "custom") continue;  // emit answered false for it
    const EventKind k = kind == "completed" ? EventKind::Completed
                        : kind == "failed"  ? EventKind::Failed
                                            : EventKind::Cancelled;
    FUZZ_CHECK(kind == "completed" || kind == "failed" || kind == "cancelled", "fallback kind " + show(m));
    check_terminal_event(it->first, it->second, k, m.value("result", json()), m.value("error", std::string()), m);
  }
  fallback_.clear();
}

void Model::op_close_inbox() {
  // The host reads what is queued, then drops the receiver: later events go to the fallback.
  if (inbox_closed_) return;
  check_events(h_.inbox->drain_events(), nullptr);
  h_.inbox->close();
  inbox_closed_ = true;
}

void Model::op_drain(Reader& r) {
  const std::uint8_t b = r.u8();
  if (b % 4 == 3) {
    check_events(h_.inbox->drain_events(), nullptr);
  } else {
    const std::string thread = kThreads[b % 3];
    check_events(h_.inbox->drain_events(thread, (b & 4) ? 2 : SIZE_MAX), &thread);
  }
}

void Model::op_queries(Reader& r) {
  const std::string thread = kThreads[r.u8() % std::size(kThreads)];
  auto list = manager().list(thread);
  std::size_t n = 0;
  bool any_running = false;
  for (const auto& [id, m] : state_.tasks)
    if (m.owner_thread_id == thread) {
      ++n;
      any_running |= m.status == TaskStatus::Running;
    }
  FUZZ_CHECK(list.size() == n, "list size");
  for (const auto& s : list) {
    // `queued` is the live view of a task waiting for a slot; stored entries never carry it.
    FUZZ_CHECK(!s.queued || (sched_ && s.status == TaskStatus::Running && manager().is_queued(s.task_id)),
               "list says queued: " + show(to_json(s)));
    TaskSummary stored = s;
    stored.queued = false;
    FUZZ_CHECK(entry(s.task_id) && entry(s.task_id)->to_summary() == stored, "list entry differs");
  }
  FUZZ_CHECK(manager().has_running(thread) == any_running, "has_running");
  // task_tree: every node a stored task, each at most once.
  std::set<std::string> seen;
  std::vector<const json*> stack;
  const json forest = manager().task_tree();
  for (const auto& n0 : forest) stack.push_back(&n0);
  while (!stack.empty()) {
    const json* node = stack.back();
    stack.pop_back();
    const std::string id = (*node)["task_id"].get<std::string>();
    FUZZ_CHECK(entry(id), "task_tree node is not a stored task: " + id);
    FUZZ_CHECK(seen.insert(id).second, "task_tree lists a task twice: " + id);
    for (const auto& c : (*node)["children"]) stack.push_back(&c);
  }
  const std::string id = ref(r);
  auto s = manager().get(id);
  FUZZ_CHECK(s.has_value() == (entry(id) != nullptr), "get " + id);
}

// ---- after every step -----------------------------------------------------------------------------
void Model::check_step(bool full) {
  check_fired_timers();
  check_fallback();
  if (granting_) {
    FUZZ_CHECK(manager().next_task_number() == grant_next().value_or(UINT64_MAX),
               "next granted id bg_" + str(manager().next_task_number()));
    FUZZ_CHECK(manager().granted_ids_left() == grant_left(),
               "granted_ids_left() " + str(manager().granted_ids_left()) + ", want " + str(grant_left()));
  }
  const std::uint64_t version = h_.store->version();
  if (version == state_version_ && !full) return;  // nothing committed since the last check
  state_version_ = version;
  BackgroundTaskStateSnapshot now = manager().persisted_snapshot();

  // snapshot → restore (fresh manager) → snapshot stable. Restore treats entries one by one (the
  // counter and retention aside), so after a step it is enough to check the entries that changed;
  // `full` checks the whole snapshot_json text (after restores, at the end).
  if (full) {
    fuzz::check_restore_stable(manager().snapshot_json());
  } else {
    BackgroundTaskStateSnapshot changed;
    for (const auto& [id, m] : now.tasks)
      if (auto it = state_.tasks.find(id); it == state_.tasks.end() || !(it->second == m)) changed.tasks.emplace(id, m);
    if (!changed.tasks.empty()) fuzz::check_restore_stable(dump(to_json(changed)));
  }

  for (const auto& [id, m] : state_.tasks) {
    if (now.tasks.count(id)) continue;
    auto it = tasks_.find(id);
    // A task may end and be dropped by retention within one step: on_task_end saw it end.
    FUZZ_CHECK(is_terminal(m.status) || (it != tasks_.end() && it->second.ended), "a running entry disappeared: " + id);
    terminal_.erase(id);
    if (it != tasks_.end()) it->second.gone = true;
  }
  // Spawned, ended and dropped by retention within this one step (re-entrant spawns do that).
  for (auto& [id, rec] : tasks_)
    if (!rec.gone && rec.ended && !now.tasks.count(id) && !state_.tasks.count(id)) rec.gone = true;
  for (const auto& [id, rec] : tasks_)
    FUZZ_CHECK(rec.cancel_hooked == rec.cancel_true, "on_cancel_requested disagrees with cancel's answers for " + id);
  for (const auto& [id, m] : now.tasks) {
    FUZZ_CHECK(!id.empty() && id == m.task_id, "entry key/id mismatch");
    ever_.insert(id);
    if (auto t = terminal_.find(id); t != terminal_.end()) {
      FUZZ_CHECK(m == t->second, "terminal entry changed: " + show(t->second) + " -> " + show(m));
      continue;
    }
    if (!is_terminal(m.status)) continue;
    terminal_.emplace(id, m);
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.gone || it->second.forgotten) continue;  // restored entries
    const TaskRec& rec = it->second;
    FUZZ_CHECK(m.owner_thread_id == rec.thread, "owner changed: " + show(m));
    FUZZ_CHECK(rec.ended && rec.end_summary, "terminal in the store without on_task_end: " + show(m));
    FUZZ_CHECK(m.to_summary() == *rec.end_summary,
               "stored end " + show(m) + " differs from on_task_end's " + show(to_json(*rec.end_summary)));
    if (rec.cancel_true && !rec.sched)
      FUZZ_CHECK(m.status == TaskStatus::Cancelled, "cancel said true but the task ended " + show(m));
  }
  state_ = std::move(now);

  // stats agree with the state and the model.
  const ManagerStats st = manager().stats();
  std::size_t counts[4] = {0, 0, 0, 0};
  for (const auto& [id, m] : state_.tasks) counts[static_cast<int>(m.status)]++;
  std::size_t live_n = 0, cancel_live = 0;
  for (const auto& [id, rec] : tasks_)
    if (live(id)) {
      ++live_n;
      cancel_live += rec.cancel_true;
    }
  FUZZ_CHECK(
      st.running == counts[0] && st.completed == counts[1] && st.failed == counts[2] && st.cancelled == counts[3],
      "stats counts: " + show(st.to_json()));
  if (sched_)  // queued tasks are live without a body; bodies ended by force still run
    FUZZ_CHECK(
        st.queued <= live_n && st.live_bodies + st.queued >= live_n && st.cancel_requested_running == cancel_live,
        "stats bodies: " + show(st.to_json()));
  else
    FUZZ_CHECK(st.live_bodies == live_n && st.cancel_requested_running == cancel_live && st.queued == 0,
               "stats bodies: " + show(st.to_json()));
  FUZZ_CHECK(st.owner_inbox_depth == h_.inbox->len() && st.owner_inbox_dropped == 0,
             "stats inbox: " + show(st.to_json()));

  // Retention holds per thread.
  if (opts_.retain_finished) {
    std::map<std::string, std::size_t> finished;
    for (const auto& [id, m] : state_.tasks)
      if (is_terminal(m.status)) finished[m.owner_thread_id.str()]++;
    for (const auto& [owner, n] : finished)
      FUZZ_CHECK(n <= *opts_.retain_finished, "retain_finished exceeded on thread '" + owner + "'");
  }
}

// The manager is gone (destroyed by user code it ran, or by the harness dropping its reference).
void Model::after_death() {
  TRACE("  after the manager's death");
  check_fallback();
  check_events(h_.inbox->drain_events(), nullptr);
  for (const auto& [id, rec] : tasks_) {
    const int want = rec.ended ? 1 : died_ending_ == id ? rec.terminal_events : 0;  // 0 or 1 for the latter
    FUZZ_CHECK(rec.terminal_events == want && want <= 1,
               id + ": " + str(rec.terminal_events) + " terminal events, ended=" + (rec.ended ? "yes" : "no"));
    FUZZ_CHECK(rec.custom_seen == rec.custom_sent,
               id + ": " + str(rec.custom_sent) + " custom events sent, " + str(rec.custom_seen) + " drained");
  }
  // The store outlives the manager: terminal entries unchanged, ends as the hooks reported them,
  // nothing ended that on_task_end did not see (the destructor commits nothing).
  const auto* state = h_.store->peek<BackgroundTaskStateKey>();
  if (!state) return;
  for (const auto& [id, m] : state->tasks) {
    if (auto t = terminal_.find(id); t != terminal_.end())
      FUZZ_CHECK(m == t->second, "terminal entry changed: " + show(t->second) + " -> " + show(m));
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.gone || it->second.forgotten || terminal_.count(id)) continue;
    const TaskRec& rec = it->second;
    if (!is_terminal(m.status)) continue;
    // The manager may die between the end's commit and on_task_end (a fallback that drops it).
    if (!rec.ended && died_ending_ == id) continue;
    FUZZ_CHECK(rec.ended && rec.end_summary, "terminal in the store without on_task_end: " + show(m));
    FUZZ_CHECK(m.to_summary() == *rec.end_summary, "stored end " + show(m) + " differs from on_task_end's");
  }
  fuzz::check_restore_stable(dump(to_json(*state)));
}

void Model::finish() {
  // Let everything that can run, run; then every event must be accounted for.
  commit_reentry_ = true;
  h_.exec.run_until_idle();
  commit_reentry_ = false;
  if (dead()) return after_death();
  check_step(/*full=*/true);
  check_events(h_.inbox->drain_events(), nullptr);
  for (const auto& [id, rec] : tasks_) {
    FUZZ_CHECK(rec.terminal_events == (rec.ended ? 1 : 0),
               id + ": " + str(rec.terminal_events) + " terminal events, ended=" + (rec.ended ? "yes" : "no"));
    FUZZ_CHECK(rec.ended || live(id), id + " neither ended nor live");
    FUZZ_CHECK(rec.custom_seen == rec.custom_sent,
               id + ": " + str(rec.custom_sent) + " custom events sent, " + str(rec.custom_seen) + " drained");
  }
  // A cancel wakes sleeping host timers; due timers have fired. A timer that would end at or past
  // the clock's last millisecond (kNever) is never due.
  for (const auto& [number, t] : timers_) {
    const bool due = t.ms < kNever - t.armed_at && h_.clock.now_ms() - t.armed_at >= t.ms;
    if (tasks_.at(t.task).cancel_true || due) FUZZ_CHECK(t.fired, "timer " + str(number) + " never fired");
  }
  // A queued task that never got its slot keeps its callable, which may own the manager (as a
  // body that never ends does): the end of a host's run is a shutdown, which drops it.
  if (sched_) {
    shutdown_ = true;
    manager().finish_shutdown();
    if (!dead()) h_.exec.run_until_idle();
    if (!dead()) check_step(/*full=*/true);
  }
}

bool Model::run(Reader& r, std::size_t& ops) {
  g_model = this;
  check_step();
  static const char* const names[24] = {"spawn",
                                        "spawn",
                                        "spawn_agent(host)",
                                        "spawn(body)",
                                        "spawn(body)",
                                        "complete",
                                        "complete",
                                        "fail",
                                        "emit",
                                        "cancel",
                                        "cancel",
                                        "cancel_tree",
                                        "cancel_all",
                                        "cancel_descendants_for_run",
                                        "send",
                                        "take_agent_messages",
                                        "arm_host_timer",
                                        "advance",
                                        "snapshot(save)",
                                        "restore(saved)",
                                        "restore(crafted)",
                                        "forget/retain/close_inbox",
                                        "drain",
                                        "queries"};
  static const char* const reentry_names[8] = {
      "spawn(re-entrant body)",       "spawn(re-entrant body)", "arm callback",    "arm callback",
      "drop the harness's reference", "complete/fail (unheld)", "cancel (unheld)", "disarm"};
  for (; ops < kMaxOps && !r.empty(); ++ops) {
    const std::uint8_t byte = r.u8();
    const std::uint8_t op = byte % 24;
    const int sub = byte >= kReentryBase && byte != 255 ? (byte - kReentryBase) % 8 : -1;
    TRACE("op %zu: %s (next id bg_%llu, now %llu)", ops, sub >= 0 ? reentry_names[sub] : names[op],
          static_cast<unsigned long long>(manager().next_task_number()),
          static_cast<unsigned long long>(h_.clock.now_ms()));
    // The harness holds the manager for each operation, except those through which user code may
    // drop the last reference: polls, and the unheld settle and cancel.
    const bool unheld = sub >= 0 ? (sub == 5 || sub == 6) : op == 17;
    if (!unheld) hold_ = weak_.lock();
    commit_reentry_ = sub == 5 || (sub < 0 && (op == 5 || op == 6 || op == 7 || op == 17));
    if (sub >= 0) {
      switch (sub) {
        case 0:
        case 1:
          op_spawn_reentrant(r);
          break;
        case 2:
        case 3:
          op_arm(r);
          break;
        case 4:
          h_.manager.reset();
          break;
        case 5:
          op_complete(r, r.u8() & 1);
          break;
        case 6:
          op_cancel(r);
          break;
        default:
          armed_.clear();
          break;
      }
    } else
      switch (op) {
        case 0:
        case 1:
          op_spawn(r, Kind::Host);
          break;
        case 2:
          op_spawn(r, Kind::HostAgent);
          break;
        case 3:
        case 4:
          op_spawn_body(r);
          break;
        case 5:
        case 6:
          op_complete(r, false);
          break;
        case 7:
          op_complete(r, true);
          break;
        case 8:
          op_emit(r);
          break;
        case 9:
        case 10:
          op_cancel(r);
          break;
        case 11:
          op_cancel_tree(r);
          break;
        case 12:
          op_cancel_all(r);
          break;
        case 13:
          op_cancel_run(r);
          break;
        case 14:
          op_send(r);
          break;
        case 15:
          op_take_messages(r);
          break;
        case 16:
          op_arm_timer(r);
          break;
        case 17:
          op_advance(r);
          break;
        case 18:
          op_snapshot_save(r);
          break;
        case 19:
          op_restore_saved(r), check_step(true);
          break;
        case 20:
          op_restore_crafted(r), check_step(true);
          break;
        case 21: {
          const std::uint8_t b = r.u8();
          if (b % 4 < 2)
            op_forget(r);
          else if (b % 4 == 2)
            op_retain(r);
          else
            op_close_inbox();
          break;
        }
        case 22:
          op_drain(r);
          break;
        default:
          if (grants_ && byte / 24 % 2 == 1)
            op_grant(r);
          else if (sched_ && byte / 24 % 3 != 0)
            op_sched(r);
          else
            op_queries(r);
          break;
      }
    commit_reentry_ = false;
    hold_.reset();  // the manager dies here if user code dropped every other reference
    if (dead()) {
      ++ops;
      after_death();
      return true;
    }
    check_step();
  }
  finish();
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader r(data, size);
  const std::uint8_t o = r.u8();
  ManagerOptions opts;
  if (o & 0x07) opts.retain_finished = (o & 0x07) - 1;  // 0..6
  opts.agent_inbox.capacity = (o >> 3) & 0x03;          // 0 = unbounded
  opts.agent_inbox.overflow = (o & 0x20) ? OverflowPolicy::DropOldest : OverflowPolicy::Reject;
  // 0x40: ids may be granted (op_grant).
  // 0x80: scheduling (op_sched); one more byte: limits and the cancel grace.
  const bool sched = (o & 0x80) != 0;
  if (sched) {
    const std::uint8_t s = r.u8();
    if (s & 0x03) opts.concurrency.per_thread = s & 0x03;
    if (s & 0x04) opts.concurrency.per_type["shell"] = 1 + ((s >> 3) & 1);
    if (s & 0x10) opts.cancel_grace_ms = 1 + ((s >> 5) & 7) * 3;
  }
  std::size_t ops = 0;
  for (int generation = 0; generation < kMaxGenerations; ++generation) {
    Model model(opts, (o & 0x40) != 0, sched);
    if (!model.run(r, ops) || r.empty() || ops >= kMaxOps) break;
    TRACE("-- a fresh manager");
  }
  return 0;
}
