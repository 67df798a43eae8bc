// The one JSON codec: awaken's serde shapes (spec §1), with validating decoders.
#include "bgtasks/codec.hpp"

#include <string>

namespace bgtasks {
namespace {

const char* type_name(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::binary: return "binary";
    case json::value_t::discarded: return "discarded";
  }
  return "unknown";
}

std::string field(std::string_view where, std::string_view name) {
  std::string s(where);
  s += '.';
  s += name;
  return s;
}

Error bad(std::string_view where, std::string_view what) {
  std::string m(where);
  m += ": ";
  m += what;
  return errors::invalid_snapshot(std::move(m));
}

Error wrong_type(std::string_view where, std::string_view expected, const json& got) {
  return bad(where, "expected " + std::string(expected) + ", got " + type_name(got));
}

// Required string field.
Result<std::string> req_string(const json& obj, std::string_view where, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) return bad(where, std::string("missing field \"") + name + "\"");
  if (!it->is_string()) return wrong_type(field(where, name), "a string", *it);
  return it->get<std::string>();
}

// Optional string field: absent or null → nullopt.
Result<std::optional<std::string>> opt_string(const json& obj, std::string_view where, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return wrong_type(field(where, name), "a string or null", *it);
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::uint64_t> as_u64(const json& v, std::string_view where) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer()) return bad(where, "expected a non-negative integer, got " + dump(v));
  if (v.is_number_float()) return bad(where, "expected a non-negative integer below 2^64, got " + dump(v));
  return wrong_type(where, "a non-negative integer", v);
}

Result<std::optional<std::uint64_t>> opt_u64(const json& obj, std::string_view where, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::optional<std::uint64_t>();
  auto v = as_u64(*it, field(where, name));
  if (!v) return v.error();
  return std::optional<std::uint64_t>(*v);
}

Result<TaskStatus> req_status(const json& obj, std::string_view where) {
  auto s = req_string(obj, where, "status");
  if (!s) return s.error();
  auto st = parse_task_status(*s);
  if (!st) return bad(field(where, "status"), "unknown status " + dump(json(*s)));
  return *st;
}

std::optional<json> opt_value(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::nullopt;  // serde: null → None
  return *it;
}

}  // namespace

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json to_json(const TaskParentContext& p) {
  json j = json::object();
  if (p.task_id) j["task_id"] = *p.task_id;
  if (p.run_id) j["run_id"] = *p.run_id;
  if (p.call_id) j["call_id"] = *p.call_id;
  if (p.agent_id) j["agent_id"] = *p.agent_id;
  return j;
}

json to_json(const TaskSummary& s) {
  json j = json::object();
  j["task_id"] = s.task_id;
  j["task_type"] = s.task_type;
  j["description"] = s.description;
  j["status"] = as_str(s.status);
  if (s.error) j["error"] = *s.error;
  if (s.result) j["result"] = *s.result;
  j["created_at_ms"] = s.created_at_ms;
  if (s.completed_at_ms) j["completed_at_ms"] = *s.completed_at_ms;
  if (!s.parent_context.is_empty()) j["parent_context"] = to_json(s.parent_context);
  return j;
}

json to_json(const PersistedTaskMeta& m) {
  json j = json::object();
  j["task_id"] = m.task_id;
  j["owner_thread_id"] = m.owner_thread_id;
  j["task_type"] = m.task_type;
  if (m.name) j["name"] = *m.name;
  j["description"] = m.description;
  j["status"] = as_str(m.status);
  if (m.error) j["error"] = *m.error;
  if (m.result) j["result"] = *m.result;
  j["created_at_ms"] = m.created_at_ms;
  if (m.completed_at_ms) j["completed_at_ms"] = *m.completed_at_ms;
  j["parent_context"] = to_json(m.parent_context);
  return j;
}

json to_json(const BackgroundTaskStateSnapshot& s) {
  json tasks = json::object();
  for (const auto& [id, meta] : s.tasks) tasks[id] = to_json(meta);
  return json{{"tasks", std::move(tasks)}};
}

json to_json(const TaskViewEntry& e) {
  return json{{"task_type", e.task_type}, {"description", e.description}, {"status", e.status}};
}

json to_json(const BackgroundTaskView& v) {
  json tasks = json::object();
  for (const auto& [id, e] : v.tasks) tasks[id] = to_json(e);
  return json{{"tasks", std::move(tasks)}};
}

Result<TaskParentContext> parent_context_from_json(const json& j, std::string_view where) {
  // serde's `default` covers a missing field only: null is refused like any non-object.
  if (!j.is_object()) return wrong_type(where, "an object", j);
  TaskParentContext p;
  for (auto [name, slot] : {std::pair{"task_id", &p.task_id}, std::pair{"run_id", &p.run_id},
                            std::pair{"call_id", &p.call_id}, std::pair{"agent_id", &p.agent_id}}) {
    auto v = opt_string(j, where, name);
    if (!v) return v.error();
    *slot = std::move(*v);
  }
  return p;
}

Result<TaskSummary> summary_from_json(const json& j, std::string_view where) {
  if (!j.is_object()) return wrong_type(where, "an object", j);
  TaskSummary s;
  auto id = req_string(j, where, "task_id");
  if (!id) return id.error();
  s.task_id = std::move(*id);
  auto type = req_string(j, where, "task_type");
  if (!type) return type.error();
  s.task_type = std::move(*type);
  auto desc = req_string(j, where, "description");
  if (!desc) return desc.error();
  s.description = std::move(*desc);
  auto status = req_status(j, where);
  if (!status) return status.error();
  s.status = *status;
  auto error = opt_string(j, where, "error");
  if (!error) return error.error();
  s.error = std::move(*error);
  s.result = opt_value(j, "result");
  auto created = j.find("created_at_ms");
  if (created == j.end()) return bad(where, "missing field \"created_at_ms\"");
  auto c = as_u64(*created, field(where, "created_at_ms"));
  if (!c) return c.error();
  s.created_at_ms = *c;
  auto completed = opt_u64(j, where, "completed_at_ms");
  if (!completed) return completed.error();
  s.completed_at_ms = *completed;
  if (auto it = j.find("parent_context"); it != j.end()) {
    auto p = parent_context_from_json(*it, field(where, "parent_context"));
    if (!p) return p.error();
    s.parent_context = std::move(*p);
  }
  return s;
}

Result<PersistedTaskMeta> meta_from_json(const json& j, std::string_view where) {
  auto s = summary_from_json(j, where);
  if (!s) return s.error();
  PersistedTaskMeta m = PersistedTaskMeta::from_summary(*s, "");
  // serde default "" when missing; null is not a string.
  if (auto it = j.find("owner_thread_id"); it != j.end()) {
    if (!it->is_string()) return wrong_type(field(where, "owner_thread_id"), "a string", *it);
    m.owner_thread_id = it->get<std::string>();
  }
  auto name = opt_string(j, where, "name");
  if (!name) return name.error();
  m.name = std::move(*name);
  return m;
}

Result<BackgroundTaskStateSnapshot> snapshot_from_json(const json& j) {
  if (!j.is_object()) return wrong_type("snapshot", "an object {\"tasks\": {...}}", j);
  auto tasks = j.find("tasks");
  if (tasks == j.end()) return bad("snapshot", "missing field \"tasks\"");
  if (!tasks->is_object()) return wrong_type("tasks", "an object", *tasks);
  BackgroundTaskStateSnapshot snap;
  snap.tasks.reserve(tasks->size());
  for (auto it = tasks->begin(); it != tasks->end(); ++it) {
    std::string where = "tasks." + it.key();
    if (it.key().empty()) return bad("tasks.\"\".task_id", "must not be empty");
    auto meta = meta_from_json(it.value(), where);
    if (!meta) return meta.error();
    if (meta->task_id.empty()) return bad(field(where, "task_id"), "must not be empty");
    if (meta->task_id != it.key())
      return bad(field(where, "task_id"), dump(json(meta->task_id)) + " does not match its key");
    snap.tasks.emplace(it.key(), std::move(*meta));
  }
  return snap;
}

Result<json> parse_json(std::string_view text, std::string_view what, Errc code, std::size_t max_depth) {
  auto fail = [&](const std::string& detail) {
    std::string message = std::string(what) + ": " + detail;
    return code == Errc::InvalidSnapshot ? errors::invalid_snapshot(std::move(message)) : Error{code, std::move(message), std::nullopt};
  };
  if (text.size() > kMaxSnapshotBytes)
    return fail(std::to_string(text.size()) + " bytes exceeds the limit of " + std::to_string(kMaxSnapshotBytes));
  // Depth is checked by one linear scan first: nlohmann's callback parser would rescan a parent
  // object at each child's end (quadratic on a {"tasks": {…}} of 1e5 entries).
  bool too_deep = false;
  {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size() && !too_deep; ++i) {
      const char c = text[i];
      if (in_string) {
        if (c == '\\')
          ++i;
        else if (c == '"')
          in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '[' || c == '{') {
        too_deep = ++depth > max_depth + 1;  // levels count from 0 at the root container
      } else if ((c == ']' || c == '}') && depth > 0) {
        --depth;
      }
    }
  }
  json j = too_deep ? json(json::value_t::discarded) : json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (too_deep) return fail("nesting deeper than " + std::to_string(max_depth) + " levels");
  if (j.is_discarded()) return fail("not valid JSON (syntax error, truncated text or invalid UTF-8)");
  return j;
}

Result<BackgroundTaskStateSnapshot> parse_snapshot(std::string_view text) {
  auto j = parse_json(text, "snapshot", Errc::InvalidSnapshot, kMaxSnapshotDepth);
  if (!j) return j.error();
  return snapshot_from_json(*j);
}

}  // namespace bgtasks
