// The Embind binding: one class, `Core`, over one executor + manager + owner inbox.
// Hot calls take and return scalars and ids; bulk results (drain, list, snapshot, stats) are one
// JSON text left in a buffer that JS decodes straight from wasm memory (TextDecoder), which
// avoids Embind's slow std::string return path. Errors never throw: a call reports a code
// (0 = ok) and the message waits in lastErrorMessage().
#include <emscripten/bind.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bgtasks/bgtasks.hpp"

namespace {
using namespace bgtasks;

// Error codes shared with js/src/errors.js (index = code).
int code_of(Errc e) { return static_cast<int>(e) + 1; }

class Core {
 public:
  Core(bool manual_clock, double start_ms, int retain_finished, int agent_inbox_capacity, bool agent_inbox_drop_oldest,
       int owner_inbox_capacity, bool owner_inbox_drop_oldest)
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
    manager_->set_store(store_);
    (void)store_->install_plugin(BackgroundTaskPlugin(manager_));
    manager_->set_hooks({[this](const TaskId& id) { cancel_requests_.push_back(id); },
                         [this](const TaskSummary& s) { last_ended_ = s; }});
  }

  // ---- spawning (host-driven bodies) ----
  // parent_json: "" for none, else {"task_id":…,"run_id":…,…}. Returns the id, or "" on error.
  std::string spawn(const std::string& thread, const std::string& type, const std::string& name, bool has_name,
                    const std::string& description, const std::string& parent_json, bool sub_agent) {
    TaskParentContext parent;
    if (!parent_json.empty()) {
      auto j = parse_json(parent_json, "parent", Errc::InvalidArgument);
      if (!j) return fail_str(j.error());
      auto p = parent_context_from_json(*j, "parent");
      if (!p) return fail_str(p.error());
      parent = std::move(*p);
    }
    auto r = manager_->spawn_host(thread, type, has_name ? std::optional<std::string_view>(name) : std::nullopt,
                                  description, std::move(parent), sub_agent);
    if (!r) return fail_str(r.error());
    return std::move(*r);
  }

  int complete(const std::string& id, const std::string& result_json) {
    auto j = parse_json(result_json, "result", Errc::InvalidArgument);
    if (!j) return fail(j.error());
    return code(manager_->complete(id, std::move(*j)));
  }
  int failTask(const std::string& id, const std::string& message) { return code(manager_->fail(id, message)); }
  int settleCancelled(const std::string& id) { return code(manager_->settle(id, TaskResult::cancelled())); }
  // The terminal summary of the task that ended last (valid even if retention already dropped it).
  std::size_t lastEnded() { return put(dump(to_json(last_ended_))); }

  // 1 delivered, 0 not (unknown/finished task, closed inbox), negative: error code (bad JSON).
  int emit(const std::string& id, const std::string& event_type, const std::string& payload_json) {
    auto j = parse_json(payload_json, "payload", Errc::InvalidArgument);
    if (!j) return -fail(j.error());
    return manager_->emit(id, event_type, std::move(*j)) ? 1 : 0;
  }

  void enterTask(const std::string& id) {
    scopes_.push_back(std::make_unique<BackgroundTaskScope>(BackgroundTaskContext{manager_.get(), id}));
  }
  void leaveTask() {
    if (!scopes_.empty()) scopes_.pop_back();
  }

  // ctx.sleep: a timer number, or a negative error code.
  double armTimer(const std::string& id, double ms) {
    auto r = manager_->arm_host_timer(id, static_cast<std::uint64_t>(ms));
    if (!r) return -fail(r.error());
    return static_cast<double>(*r);
  }
  // [[timer, slept], …] for the timers that fired (slept=false: cancelled first).
  std::size_t takeFiredTimers() {
    json arr = json::array();
    for (auto [n, ok] : manager_->take_fired_host_timers()) arr.push_back(json::array({n, ok}));
    return put(dump(arr));
  }

  // ---- queries ----
  std::size_t get(const std::string& id) {
    auto s = manager_->get(id);
    return put(s ? dump(to_json(*s)) : std::string());
  }
  std::size_t list(const std::string& thread) {
    json arr = json::array();
    for (const auto& s : manager_->list(thread)) arr.push_back(to_json(s));
    return put(dump(arr));
  }
  bool hasRunning(const std::string& thread) { return manager_->has_running(thread); }
  bool isCancelRequested(const std::string& id) { return manager_->is_cancel_requested(id); }

  // ---- cancellation ----
  bool cancel(const std::string& id) { return manager_->cancel(id); }
  int cancelTree(const std::string& id) { return static_cast<int>(manager_->cancel_tree(id)); }
  int cancelAll(const std::string& thread) { return static_cast<int>(manager_->cancel_all(thread)); }
  // Ids whose cancel was requested since the last call, as a JSON array (the host aborts their signals).
  std::size_t takeCancelRequests() {
    json arr = json::array();
    for (auto& id : cancel_requests_) arr.push_back(std::move(id));
    cancel_requests_.clear();
    return put(dump(arr));
  }

  // ---- messages ----
  int sendMessage(const std::string& id, const std::string& thread, const std::string& from, const std::string& content) {
    return code(manager_->send_task_inbox_message(id, thread, from, content));
  }
  std::size_t takeAgentMessages(const std::string& id, int max) {
    json arr = json::array();
    for (auto& m : manager_->take_agent_messages(id, max < 0 ? SIZE_MAX : static_cast<std::size_t>(max))) arr.push_back(std::move(m));
    return put(dump(arr));
  }
  int agentInboxLen(const std::string& id) { return static_cast<int>(manager_->agent_inbox_len(id)); }

  // ---- events ----
  // max < 0: every pending event.
  std::size_t drain(const std::string& thread, bool has_thread, int max) {
    return put(inbox_->drain_json(has_thread ? std::optional<std::string_view>(thread) : std::nullopt,
                                  max < 0 ? SIZE_MAX : static_cast<std::size_t>(max)));
  }
  int pendingEvents() { return static_cast<int>(inbox_->len()); }

  // ---- persistence ----
  std::size_t snapshot(const std::string& thread, bool has_thread) {
    return put(manager_->snapshot_json(has_thread ? std::optional<std::string_view>(thread) : std::nullopt));
  }
  // Restored entry count, or a negative error code.
  int restore(const std::string& thread, const std::string& snapshot_json) {
    auto r = manager_->restore_json(thread, snapshot_json);
    if (!r) return -fail(r.error());
    return static_cast<int>(*r);
  }

  // ---- introspection and retention ----
  std::size_t stats() { return put(dump(manager_->stats().to_json())); }
  std::size_t taskTree(const std::string& thread, bool has_thread) {
    return put(dump(manager_->task_tree(has_thread ? std::optional<std::string_view>(thread) : std::nullopt)));
  }
  bool forget(const std::string& id) { return manager_->forget(id); }
  void setRetainFinished(int n) {
    manager_->set_retain_finished(n < 0 ? std::nullopt : std::optional<std::size_t>(static_cast<std::size_t>(n)));
  }

  // ---- the poll loop ----
  int poll() { return static_cast<int>(exec_.poll()); }
  int runUntilIdle() { return static_cast<int>(exec_.run_until_idle()); }
  bool advance(double ms) { return exec_.advance(static_cast<std::uint64_t>(ms)); }
  bool setTime(double ms) { return exec_.set_time(static_cast<std::uint64_t>(ms)); }
  double now() const { return static_cast<double>(exec_.now_ms()); }
  double nextDeadline() const {
    auto d = exec_.next_deadline();
    return d ? static_cast<double>(*d) : -1.0;
  }
  bool isManual() const { return clock_->is_manual(); }

  // ---- the result buffer and the last error ----
  std::uintptr_t bufferPtr() const { return reinterpret_cast<std::uintptr_t>(buffer_.data()); }
  std::size_t bufferLen() const { return buffer_.size(); }
  std::string lastErrorMessage() const { return last_error_message_; }
  int lastErrorStatus() const { return last_error_status_; }

 private:
  std::size_t put(std::string s) {
    buffer_ = std::move(s);
    return buffer_.size();
  }
  int fail(const Error& e) {
    last_error_message_ = e.message;
    last_error_status_ = e.status ? static_cast<int>(*e.status) : -1;
    last_error_code_ = code_of(e.code);
    return last_error_code_;
  }
  std::string fail_str(const Error& e) {
    fail(e);
    return {};
  }
  int code(const Result<void>& r) { return r ? 0 : fail(r.error()); }

 public:
  int lastErrorCode() const { return last_error_code_; }

 private:
  std::unique_ptr<Clock> clock_;
  Executor exec_;
  std::shared_ptr<StateStore> store_;
  std::optional<InboxReceiver> inbox_;
  std::shared_ptr<BackgroundTaskManager> manager_;
  std::vector<std::unique_ptr<BackgroundTaskScope>> scopes_;
  std::vector<TaskId> cancel_requests_;
  TaskSummary last_ended_;
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
  emscripten::class_<Core>("Core")
      .constructor<bool, double, int, int, bool, int, bool>()
      .function("spawn", &Core::spawn)
      .function("complete", &Core::complete)
      .function("failTask", &Core::failTask)
      .function("settleCancelled", &Core::settleCancelled)
      .function("lastEnded", &Core::lastEnded)
      .function("emit", &Core::emit)
      .function("enterTask", &Core::enterTask)
      .function("armTimer", &Core::armTimer)
      .function("takeFiredTimers", &Core::takeFiredTimers)
      .function("leaveTask", &Core::leaveTask)
      .function("get", &Core::get)
      .function("list", &Core::list)
      .function("hasRunning", &Core::hasRunning)
      .function("isCancelRequested", &Core::isCancelRequested)
      .function("cancel", &Core::cancel)
      .function("cancelTree", &Core::cancelTree)
      .function("cancelAll", &Core::cancelAll)
      .function("takeCancelRequests", &Core::takeCancelRequests)
      .function("sendMessage", &Core::sendMessage)
      .function("takeAgentMessages", &Core::takeAgentMessages)
      .function("agentInboxLen", &Core::agentInboxLen)
      .function("drain", &Core::drain)
      .function("pendingEvents", &Core::pendingEvents)
      .function("snapshot", &Core::snapshot)
      .function("restore", &Core::restore)
      .function("stats", &Core::stats)
      .function("taskTree", &Core::taskTree)
      .function("forget", &Core::forget)
      .function("setRetainFinished", &Core::setRetainFinished)
      .function("poll", &Core::poll)
      .function("runUntilIdle", &Core::runUntilIdle)
      .function("advance", &Core::advance)
      .function("setTime", &Core::setTime)
      .function("now", &Core::now)
      .function("nextDeadline", &Core::nextDeadline)
      .function("isManual", &Core::isManual)
      .function("bufferPtr", &Core::bufferPtr)
      .function("bufferLen", &Core::bufferLen)
      .function("lastErrorCode", &Core::lastErrorCode)
      .function("lastErrorMessage", &Core::lastErrorMessage)
      .function("lastErrorStatus", &Core::lastErrorStatus);
}
