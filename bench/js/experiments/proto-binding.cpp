// Prototype crossings for the JS workload (issue 6), built by experiments/build-wasm.sh into
// build/bench-js/wasm-proto/ — never part of the package. Same core, same constructor as
// wasm/bindings.cpp; the methods below replace strings and JSON at the boundary with ints and a
// shared buffer, so proto-manager.mjs can measure each alternative end to end:
//   intern(s)            thread / event type / task type string -> small int, once per string
//   spawnI(th, ty)       spawn with interned strings; returns N of the new id bg_N (or -code)
//   enterI(n)            enterTask by number
//   emitT(n, ty, json)   ids and types as ints, payload still JSON text
//   emitH(n, ty, h)      payload kept on the JS side: the core stores only the handle number h
//   flushEmits(k)        k emits (n, ty, h) read from the shared Float64 buffer: one call per pump
//   flushOps(k, results)  emits and completions (n, op, ...) from the shared buffer, results as one
//                        JSON array text: one call per pump
//   completeI(n, json)   settle by number (the result stays JSON: the core keeps it for snapshots)
//   drainH()             events as Float64 records [kind, n, ty, h] in the shared buffer; the
//                        results of terminal events as one JSON array text in the text buffer
//   endHook(on)          the binding's per-completion summary dump (lastEnded) on or off
#include <emscripten/bind.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bgtasks/bgtasks.hpp"

namespace {
using namespace bgtasks;

class ProtoCore {
 public:
  explicit ProtoCore(bool manual_clock)
      : clock_(manual_clock ? std::unique_ptr<Clock>(new ManualClock(0)) : std::unique_ptr<Clock>(new SystemClock())),
        exec_(*clock_),
        store_(std::make_shared<StateStore>()) {
    auto [tx, rx] = inbox_channel({});
    inbox_.emplace(std::move(rx));
    manager_ = std::make_shared<BackgroundTaskManager>(exec_, ManagerOptions{});
    manager_->set_owner_inbox(std::move(tx));
    manager_->set_store(store_);
    (void)store_->install_plugin(BackgroundTaskPlugin(manager_));
    endHook(true);
    shared_.resize(4 * 16384);
  }

  void endHook(bool on) {
    ManagerHooks hooks;
    hooks.on_cancel_requested = [this](const TaskId& id) { cancel_requests_.push_back(id); };
    if (on) hooks.on_task_end = [this](const TaskSummary& s) { last_ended_ = dump(to_json(s)); };
    manager_->set_hooks(std::move(hooks));
  }

  int intern(const std::string& s) {
    auto [it, inserted] = intern_ids_.try_emplace(s, static_cast<int>(strings_.size()));
    if (inserted) strings_.push_back(s);
    return it->second;
  }

  double spawnI(int thread, int type) {
    auto r = manager_->spawn_host(strings_[thread], strings_[type], std::nullopt, "", {}, false);
    if (!r) return -1;
    std::uint64_t n = number_of(*r);
    if (n >= ids_.size()) ids_.resize(n + 1 + n / 2);
    ids_[n] = std::move(*r);
    return static_cast<double>(n);
  }
  void enterI(double n) {
    scopes_.push_back(std::make_unique<BackgroundTaskScope>(BackgroundTaskContext{manager_.get(), ids_[idx(n)]}));
  }
  void leaveTask() {
    if (!scopes_.empty()) scopes_.pop_back();
  }

  int emitT(double n, int type, const std::string& payload_json) {
    auto j = parse_json(payload_json, "payload");
    if (!j) return -1;
    return manager_->emit(ids_[idx(n)], strings_[type], std::move(*j)) ? 1 : 0;
  }
  int emitH(double n, int type, double handle) {
    return manager_->emit(ids_[idx(n)], strings_[type], json(handle)) ? 1 : 0;
  }
  // The shared buffer holds k records (n, type, handle); returns how many were delivered.
  int flushEmits(int k) {
    int delivered = 0;
    for (int i = 0; i < k; ++i) {
      const double* r = &shared_[3 * i];
      delivered += manager_->emit(ids_[idx(r[0])], strings_[static_cast<int>(r[1])], json(r[2])) ? 1 : 0;
    }
    return delivered;
  }
  // Ops (op, n, a, b) in the shared buffer, run in order: op 0 emit (a = type, b = handle), op 1
  // complete (a = index into results_json, a JSON array). One call per pump for a whole batch.
  int flushOps(int k, const std::string& results_json) {
    json results;
    if (!results_json.empty()) {
      auto j = parse_json(results_json, "results");
      if (!j) return -1;
      results = std::move(*j);
    }
    int failures = 0;
    for (int i = 0; i < k; ++i) {
      const double* r = &shared_[4 * i];
      const TaskId& id = ids_[idx(r[1])];
      if (r[0] == 0) {
        (void)manager_->emit(id, strings_[static_cast<int>(r[2])], json(r[3]));
      } else if (!manager_->complete(id, std::move(results[idx(r[2])]))) {
        ++failures;
      }
    }
    return failures;
  }
  std::uintptr_t sharedPtr() const { return reinterpret_cast<std::uintptr_t>(shared_.data()); }
  int sharedCapacity() const { return static_cast<int>(shared_.size()); }

  int completeI(double n, const std::string& result_json) {
    auto j = parse_json(result_json, "result");
    if (!j) return -1;
    return manager_->complete(ids_[idx(n)], std::move(*j)) ? 0 : 1;
  }

  // Records [kind, n, type, handle]; kind 0 custom, 1 completed, 2 failed, 3 cancelled. Returns
  // the record count; the results of completed events are one JSON array in the text buffer.
  int drainH() {
    auto events = inbox_->drain_events();
    if (shared_.size() < 4 * events.size()) shared_.resize(4 * events.size());
    json results = json::array();
    double* out = shared_.data();
    for (const auto& e : events) {
      out[0] = static_cast<double>(static_cast<int>(e.kind));
      out[1] = static_cast<double>(number_of(e.task_id));
      if (e.kind == EventKind::Custom) {
        out[2] = intern(e.event_type);
        out[3] = e.data.get<double>();
      } else {
        out[2] = -1;
        out[3] = -1;
        if (e.kind == EventKind::Completed) results.push_back(e.data);
      }
      out += 4;
    }
    buffer_ = results.empty() ? std::string() : dump(results);
    return static_cast<int>(events.size());
  }
  std::uintptr_t bufferPtr() const { return reinterpret_cast<std::uintptr_t>(buffer_.data()); }
  int bufferLen() const { return static_cast<int>(buffer_.size()); }

  // snapshot(thread) by a writer specialised to the meta shape: no json DOM, keys written in
  // nlohmann's sorted order, ids sorted as std::map sorts them; only `result` goes through dump.
  // Must be byte-identical to the real binding's snapshot (snapshot-writer.mjs checks it).
  std::size_t snapshotFast(const std::string& thread) {
    auto snap = manager_->persisted_snapshot(thread);
    std::vector<const PersistedTaskMeta*> metas;
    metas.reserve(snap.tasks.size());
    for (const auto& [id, m] : snap.tasks) metas.push_back(&m);
    std::sort(metas.begin(), metas.end(), [](auto* a, auto* b) { return a->task_id < b->task_id; });
    std::string out;
    out.reserve(metas.size() * 256);
    out += "{\"tasks\":{";
    bool first = true;
    for (const PersistedTaskMeta* m : metas) {
      if (!first) out += ',';
      first = false;
      str(out, m->task_id);
      out += ":{";
      if (m->completed_at_ms) (out += "\"completed_at_ms\":") += std::to_string(*m->completed_at_ms) + ',';
      (out += "\"created_at_ms\":") += std::to_string(m->created_at_ms);
      out += ",\"description\":";
      str(out, m->description);
      if (m->error) {
        out += ",\"error\":";
        str(out, *m->error);
      }
      if (m->name) {
        out += ",\"name\":";
        str(out, *m->name);
      }
      out += ",\"owner_thread_id\":";
      str(out, m->owner_thread_id);
      out += ",\"parent_context\":{";
      const auto& p = m->parent_context;
      bool pf = true;
      auto field = [&](const char* k, const OptionalSharedString& v) {
        if (!v) return;
        if (!pf) out += ',';
        pf = false;
        (out += '"') += k;
        out += "\":";
        str(out, *v);
      };
      field("agent_id", p.agent_id);
      field("call_id", p.call_id);
      field("run_id", p.run_id);
      field("task_id", p.task_id);
      out += '}';
      if (m->result) (out += ",\"result\":") += dump(*m->result);
      (out += ",\"status\":\"") += as_str(m->status);
      out += "\",\"task_id\":";
      str(out, m->task_id);
      out += ",\"task_type\":";
      str(out, m->task_type);
      out += '}';
    }
    out += "}}";
    return put(std::move(out));
  }

  // The JSON text path, as the real binding: for comparisons inside one module.
  std::size_t drainJson() { return put(inbox_->drain_json(std::nullopt, SIZE_MAX)); }
  int restore(const std::string& thread, const std::string& text) {
    auto r = manager_->restore_json(thread, text);
    return r ? static_cast<int>(*r) : -1;
  }
  int runUntilIdle() { return static_cast<int>(exec_.run_until_idle()); }
  int completedCount() { return static_cast<int>(manager_->stats().completed); }

 private:
  // A JSON string as nlohmann writes it (ensure_ascii off; invalid UTF-8 replaced, as dump()).
  static void str(std::string& out, std::string_view s) {
    bool plain = true;
    for (unsigned char c : s)
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) {
        plain = false;
        break;
      }
    if (plain) {
      ((out += '"') += s) += '"';
    } else {
      out += dump(json(std::string(s)));
    }
  }
  static std::uint64_t number_of(const TaskId& id) {
    std::uint64_t n = 0;
    std::from_chars(id.data() + 3, id.data() + id.size(), n);
    return n;
  }
  static std::size_t idx(double n) { return static_cast<std::size_t>(n); }
  std::size_t put(std::string s) {
    buffer_ = std::move(s);
    return buffer_.size();
  }

  std::unique_ptr<Clock> clock_;
  Executor exec_;
  std::shared_ptr<StateStore> store_;
  std::optional<InboxReceiver> inbox_;
  std::shared_ptr<BackgroundTaskManager> manager_;
  std::vector<std::unique_ptr<BackgroundTaskScope>> scopes_;
  std::vector<TaskId> cancel_requests_;
  std::vector<TaskId> ids_;
  std::unordered_map<std::string, int> intern_ids_;
  std::vector<std::string> strings_;
  std::vector<double> shared_;
  std::string last_ended_;
  std::string buffer_;
};

}  // namespace

EMSCRIPTEN_BINDINGS(bgtasks_proto) {
  emscripten::class_<ProtoCore>("ProtoCore")
      .constructor<bool>()
      .function("endHook", &ProtoCore::endHook)
      .function("intern", &ProtoCore::intern)
      .function("spawnI", &ProtoCore::spawnI)
      .function("enterI", &ProtoCore::enterI)
      .function("leaveTask", &ProtoCore::leaveTask)
      .function("emitT", &ProtoCore::emitT)
      .function("emitH", &ProtoCore::emitH)
      .function("flushEmits", &ProtoCore::flushEmits)
      .function("flushOps", &ProtoCore::flushOps)
      .function("sharedPtr", &ProtoCore::sharedPtr)
      .function("sharedCapacity", &ProtoCore::sharedCapacity)
      .function("completeI", &ProtoCore::completeI)
      .function("drainH", &ProtoCore::drainH)
      .function("snapshotFast", &ProtoCore::snapshotFast)
      .function("restore", &ProtoCore::restore)
      .function("drainJson", &ProtoCore::drainJson)
      .function("bufferPtr", &ProtoCore::bufferPtr)
      .function("bufferLen", &ProtoCore::bufferLen)
      .function("runUntilIdle", &ProtoCore::runUntilIdle)
      .function("completedCount", &ProtoCore::completedCount);
}
