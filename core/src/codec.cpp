// The one JSON codec: awaken's serde shapes, with validating decoders.
#include "bgtasks/codec.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "json_sax.hpp"

namespace bgtasks {
using namespace std::string_view_literals;
namespace {

const char* type_name(json::value_t t) {
  switch (t) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::string:
      return "string";
    case json::value_t::array:
      return "array";
    case json::value_t::object:
      return "object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer";
    case json::value_t::number_float:
      return "number";
    case json::value_t::binary:
      return "binary";
    case json::value_t::discarded:
      return "discarded";
  }
  return "unknown";
}
const char* type_name(const json& j) { return type_name(j.type()); }

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

Error wrong_type(std::string_view where, std::string_view expected, const char* got) {
  return bad(where, "expected " + std::string(expected) + ", got " + got);
}
Error wrong_type(std::string_view where, std::string_view expected, const json& got) {
  return wrong_type(where, expected, type_name(got));
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

// ---- writer ---------------------------------------------------------------------------------------
// The same bytes as nlohmann's dump(-1, ' ', ensure_ascii=false, replace), written straight into
// one string. Strings take a fast path when they are well-formed UTF-8 (then only control
// characters, '"' and '\\' change); anything else goes to nlohmann, so replacement of invalid
// UTF-8 and the rare types (binary, discarded) stay nlohmann's by construction.
namespace {

void write_escape(std::string& out, unsigned char c) {
  switch (c) {
    case '\b':
      out += "\\b"sv;
      return;
    case '\t':
      out += "\\t"sv;
      return;
    case '\n':
      out += "\\n"sv;
      return;
    case '\f':
      out += "\\f"sv;
      return;
    case '\r':
      out += "\\r"sv;
      return;
    case '"':
      out += "\\\""sv;
      return;
    case '\\':
      out += "\\\\"sv;
      return;
    default: {
      static constexpr char kHex[] = "0123456789abcdef";  // nlohmann: "\\u%04x", lower case
      const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      out.append(u, 6);
    }
  }
}

template <class Int>
void write_integer(std::string& out, Int v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void write_float(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null"sv;  // nlohmann's dump of NaN and infinities
    return;
  }
  char buf[64];
  char* end = nlohmann::detail::to_chars(buf, buf + sizeof buf, v);  // what dump uses (Grisu2)
  out.append(buf, end);
}

// `"key":` for the fixed keys of the envelopes (plain ASCII, nothing to escape).
void write_key(std::string& out, std::string_view key) {
  out += '"';
  out += key;
  out += "\":"sv;
}

void write_status(std::string& out, TaskStatus s) {
  switch (s) {
    case TaskStatus::Running:
      out += "\"running\""sv;
      return;
    case TaskStatus::Completed:
      out += "\"completed\""sv;
      return;
    case TaskStatus::Failed:
      out += "\"failed\""sv;
      return;
    case TaskStatus::Cancelled:
      out += "\"cancelled\""sv;
      return;
  }
}

}  // namespace

void write_json_string(std::string& out, std::string_view s) {
  const char* p = s.data();
  const char* const end = p + s.size();
  const std::size_t start = out.size();
  out += '"';
  const char* run = p;  // start of the bytes not yet copied
  while ((p = detail::skip_plain(p, end)) != end) {
    const auto c = static_cast<unsigned char>(*p);
    if (c >= 0x80) {
      const std::size_t len =
          detail::utf8_sequence_length(reinterpret_cast<const unsigned char*>(p), static_cast<std::size_t>(end - p));
      if (len == 0) {  // invalid UTF-8: nlohmann's replacement, exactly
        out.resize(start);
        out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
        return;
      }
      p += len;
    } else {
      out.append(run, static_cast<std::size_t>(p - run));
      write_escape(out, c);
      run = ++p;
    }
  }
  out.append(run, static_cast<std::size_t>(end - run));
  out += '"';
}

void write_json(std::string& out, const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      out += "null"sv;
      return;
    case json::value_t::boolean:
      out += v.get<bool>() ? "true"sv : "false"sv;
      return;
    case json::value_t::string:
      write_json_string(out, *v.get_ptr<const json::string_t*>());
      return;
    case json::value_t::number_unsigned:
      write_integer(out, v.get<std::uint64_t>());
      return;
    case json::value_t::number_integer:
      write_integer(out, v.get<std::int64_t>());
      return;
    case json::value_t::number_float:
      write_float(out, v.get<double>());
      return;
    case json::value_t::object: {
      const auto& o = *v.get_ptr<const json::object_t*>();
      if (o.empty()) {
        out += "{}"sv;
        return;
      }
      char sep = '{';
      for (const auto& [k, e] : o) {
        out += sep;
        sep = ',';
        write_json_string(out, k);
        out += ':';
        write_json(out, e);
      }
      out += '}';
      return;
    }
    case json::value_t::array: {
      const auto& a = *v.get_ptr<const json::array_t*>();
      if (a.empty()) {
        out += "[]"sv;
        return;
      }
      char sep = '[';
      for (const auto& e : a) {
        out += sep;
        sep = ',';
        write_json(out, e);
      }
      out += ']';
      return;
    }
    case json::value_t::binary:
    case json::value_t::discarded:
      out += v.dump(-1, ' ', false, json::error_handler_t::replace);
      return;
  }
}

std::string dump(const json& j) {
  std::string out;
  write_json(out, j);
  return out;
}

void write_json(std::string& out, const TaskParentContext& p) {
  char sep = '{';
  for (auto [name, slot] : {std::pair{"agent_id", &p.agent_id}, std::pair{"call_id", &p.call_id},
                            std::pair{"run_id", &p.run_id}, std::pair{"task_id", &p.task_id}}) {
    if (!*slot) continue;
    out += sep;
    sep = ',';
    write_key(out, name);
    write_json_string(out, **slot);
  }
  out += sep == '{' ? "{}"sv : "}"sv;
}

// Keys in sorted order, as the DOM (a std::map) writes them; created_at_ms is always present, so
// only completed_at_ms can come before it.
void write_json(std::string& out, const TaskSummary& s) {
  out += '{';
  if (s.completed_at_ms) {
    write_key(out, "completed_at_ms");
    write_integer(out, *s.completed_at_ms);
    out += ',';
  }
  write_key(out, "created_at_ms");
  write_integer(out, s.created_at_ms);
  out += ",\"description\":"sv;
  write_json_string(out, s.description);
  if (s.error) {
    out += ",\"error\":"sv;
    write_json_string(out, *s.error);
  }
  if (!s.parent_context.is_empty()) {
    out += ",\"parent_context\":"sv;
    write_json(out, s.parent_context);
  }
  if (s.queued) out += ",\"queued\":true"sv;
  if (s.result) {
    out += ",\"result\":"sv;
    write_json(out, *s.result);
  }
  out += ",\"status\":"sv;
  write_status(out, s.status);
  out += ",\"task_id\":"sv;
  write_json_string(out, s.task_id);
  out += ",\"task_type\":"sv;
  write_json_string(out, s.task_type);
  out += '}';
}

void write_json(std::string& out, const PersistedTaskMeta& m) {
  out += '{';
  if (m.completed_at_ms) {
    write_key(out, "completed_at_ms");
    write_integer(out, *m.completed_at_ms);
    out += ',';
  }
  write_key(out, "created_at_ms");
  write_integer(out, m.created_at_ms);
  out += ",\"description\":"sv;
  write_json_string(out, m.description);
  if (m.error) {
    out += ",\"error\":"sv;
    write_json_string(out, *m.error);
  }
  if (m.name) {
    out += ",\"name\":"sv;
    write_json_string(out, *m.name);
  }
  out += ",\"owner_thread_id\":"sv;
  write_json_string(out, m.owner_thread_id);
  out += ",\"parent_context\":"sv;
  write_json(out, m.parent_context);
  if (m.result) {
    out += ",\"result\":"sv;
    write_json(out, *m.result);
  }
  out += ",\"status\":"sv;
  write_status(out, m.status);
  out += ",\"task_id\":"sv;
  write_json_string(out, m.task_id);
  out += ",\"task_type\":"sv;
  write_json_string(out, m.task_type);
  out += '}';
}

void write_json(std::string& out, const BackgroundTaskStateSnapshot& s,
                std::optional<std::string_view> owner_thread_id) {
  // The map is unordered; the DOM's std::map wrote ids in std::string order.
  // Sorted on the ids' first 8 bytes as one big-endian integer (zero-padded), the whole id only on
  // a tie: the same order as std::string's (bytes compared unsigned), mostly integer compares.
  struct Keyed {
    std::uint64_t prefix;
    const std::pair<const TaskId, PersistedTaskMeta>* entry;
  };
  std::vector<Keyed> entries;
  entries.reserve(s.tasks.size());
  for (const auto& e : s.tasks) {
    if (owner_thread_id && e.second.owner_thread_id != *owner_thread_id) continue;
    std::uint64_t prefix = 0;
    const std::size_t n = std::min<std::size_t>(8, e.first.size());
    for (std::size_t i = 0; i < 8; ++i) prefix = (prefix << 8) | (i < n ? static_cast<unsigned char>(e.first[i]) : 0u);
    entries.push_back({prefix, &e});
  }
  std::sort(entries.begin(), entries.end(), [](const Keyed& a, const Keyed& b) {
    return a.prefix != b.prefix ? a.prefix < b.prefix : a.entry->first < b.entry->first;
  });
  out += "{\"tasks\":"sv;
  char sep = '{';
  for (const auto& k : entries) {
    out += sep;
    sep = ',';
    write_json_string(out, k.entry->first);
    out += ':';
    write_json(out, k.entry->second);
  }
  out += sep == '{' ? "{}}"sv : "}}"sv;
}

std::string dump(const TaskSummary& s) {
  std::string out;
  write_json(out, s);
  return out;
}

std::string dump(const PersistedTaskMeta& m) {
  std::string out;
  write_json(out, m);
  return out;
}

std::string dump(const BackgroundTaskStateSnapshot& s, std::optional<std::string_view> owner_thread_id) {
  std::string out;
  if (!owner_thread_id) out.reserve(64 + s.tasks.size() * 224);  // ~220 bytes per finished task
  write_json(out, s, owner_thread_id);
  return out;
}

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
  if (s.queued) j["queued"] = true;
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
  if (auto it = j.find("queued"); it != j.end()) {
    if (!it->is_boolean()) return wrong_type(field(where, "queued"), "a boolean", *it);
    s.queued = it->get<bool>();
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

namespace {

Error limit_error(std::string_view what, Errc code, const std::string& detail) {
  std::string message = std::string(what) + ": " + detail;
  return code == Errc::InvalidSnapshot ? errors::invalid_snapshot(std::move(message))
                                       : Error{code, std::move(message), std::nullopt};
}

const char* const kNotJson = "not valid JSON (syntax error, truncated text or invalid UTF-8)";

// Size and nesting limits. The readers enforce them while parsing; only when a parse fails is the
// text scanned here, so that an oversized or too deep text gets the limit's message whatever else
// is wrong with it (the scan counts brackets outside strings, valid JSON or not).
std::optional<Error> check_size(std::string_view text, std::string_view what, Errc code) {
  if (text.size() > kMaxSnapshotBytes)
    return limit_error(
        what, code, std::to_string(text.size()) + " bytes exceeds the limit of " + std::to_string(kMaxSnapshotBytes));
  return std::nullopt;
}

std::optional<Error> check_depth(std::string_view text, std::string_view what, Errc code, std::size_t max_depth) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth + 1)  // levels count from 0 at the root container
        return limit_error(what, code, "nesting deeper than " + std::to_string(max_depth) + " levels");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::nullopt;
}

// The snapshot reader: SAX events (json_sax.hpp, which accepts what nlohmann's parser accepts) go
// straight into PersistedTaskMeta; only `result` values become json. It gives what
// snapshot_from_json gives on the DOM, errors included:
//  - a syntax error anywhere wins (the DOM is only decoded once the whole text parsed);
//  - a duplicate key keeps its last value (the DOM's operator[]), also for "tasks" and for ids;
//  - among bad entries, the one with the smallest id is reported (the DOM walks a std::map), with
//    the fields checked in meta_from_json's order.
class SnapshotReader {
 public:
  // ---- the SAX interface (json_sax.hpp) ----
  bool null() {
    return scalar(json::value_t::null, [] { return json(nullptr); });
  }
  bool boolean(bool b) {
    return scalar(json::value_t::boolean, [b] { return json(b); });
  }
  bool number_integer(json::number_integer_t v) {
    num_.i = v;
    return scalar(json::value_t::number_integer, [v] { return json(v); });
  }
  bool number_unsigned(json::number_unsigned_t v) {
    num_.u = v;
    return scalar(json::value_t::number_unsigned, [v] { return json(v); });
  }
  bool number_float(json::number_float_t v, const json::string_t&) {
    num_.d = v;
    return scalar(json::value_t::number_float, [v] { return json(v); });
  }
  bool string(json::string_t& s) {
    str_ = &s;
    return scalar(json::value_t::string, [&s] { return json(std::move(s)); });
  }
  bool binary(json::binary_t&) { return true; }  // never produced from text
  bool start_object(std::size_t) { return start(json::value_t::object); }
  bool start_array(std::size_t) { return start(json::value_t::array); }
  bool end_object() { return end(); }
  bool end_array() { return end(); }
  bool key(json::string_t& k);
  void syntax_error() { syntax_error_ = true; }

  // The good entries in text order; duplicates of an id are the caller's to resolve (last wins).
  Result<std::vector<PersistedTaskMeta>> finish();

 private:
  using T = json::value_t;
  static constexpr T kAbsent = T::discarded;  // "no such key" in the slots below

  enum class Target : std::uint8_t { Root, Tasks, Ignored, Entry, Field, ParentField };
  enum class Ctx : std::uint8_t { RootObj, TasksObj, MetaObj, ParentObj };
  enum Field : std::uint8_t {
    kTaskId,
    kOwnerThreadId,
    kTaskType,
    kName,
    kDescription,
    kStatus,
    kError,  // strings
    kCreatedAt,
    kCompletedAt,  // numbers
    kResult,
    kParentContext,
    kStringFields = kCreatedAt,
    kUnknown = 0xFF
  };
  struct StrSlot {
    T type = kAbsent;
    std::string value;
  };
  struct NumSlot {
    T type = kAbsent;
    std::uint64_t u = 0;
    std::int64_t i = 0;
    double d = 0;
  };

  template <class MakeJson>
  bool scalar(T type, MakeJson&& make);
  bool start(T type);
  bool end();
  void build(json v, bool container);

  void begin_meta();
  void finish_meta();
  std::string where() const { return "tasks." + entry_key_; }
  void commit(PersistedTaskMeta&& m);
  void commit(Error&& e);
  void reset_tasks(T type);

  static Field meta_field(std::string_view k);
  static int parent_field(std::string_view k);

  // Structure of the envelope.
  std::vector<Ctx> ctx_;
  Target target_ = Target::Root;
  Field field_ = kUnknown;
  int parent_field_ = -1;
  std::size_t skip_ = 0;  // > 0: inside a value nobody reads; its nesting depth
  // Building a result value (nlohmann's DOM builder's rules).
  std::vector<json*> build_stack_;
  json* build_slot_ = nullptr;
  // Scalar payload of the current event.
  NumSlot num_;
  json::string_t* str_ = nullptr;

  // What was read.
  bool syntax_error_ = false;
  T root_type_ = kAbsent;
  T tasks_type_ = kAbsent;
  // Good entries in text order (an id given twice appears twice: the last one counts, see
  // finish()); bad entries by id (the smallest id is reported). An id's later entry, good or bad,
  // replaces its earlier verdict.
  std::vector<PersistedTaskMeta> entries_;
  // Entries of one snapshot mostly repeat one task type, one owner and their lineage ids: each
  // field keeps its last text, and an entry repeating it shares it (SharedString::reuse_for).
  SharedString last_type_, last_owner_;
  std::array<SharedString, 4> last_parent_;
  std::map<std::string, Error> errors_;
  // The entry being read.
  std::string entry_key_;
  std::array<StrSlot, kStringFields> str_slots_;
  std::array<NumSlot, 2> num_slots_;
  std::optional<json> result_;
  T parent_type_ = kAbsent;
  std::array<StrSlot, 4> parent_slots_;  // task_id, run_id, call_id, agent_id
};

SnapshotReader::Field SnapshotReader::meta_field(std::string_view k) {
  switch (k.size()) {
    case 4:
      return k == "name" ? kName : kUnknown;
    case 5:
      return k == "error" ? kError : kUnknown;
    case 6:
      return k == "status" ? kStatus : (k == "result" ? kResult : kUnknown);
    case 7:
      return k == "task_id" ? kTaskId : kUnknown;
    case 9:
      return k == "task_type" ? kTaskType : kUnknown;
    case 11:
      return k == "description" ? kDescription : kUnknown;
    case 13:
      return k == "created_at_ms" ? kCreatedAt : kUnknown;
    case 14:
      return k == "parent_context" ? kParentContext : kUnknown;
    case 15:
      return k == "owner_thread_id" ? kOwnerThreadId : (k == "completed_at_ms" ? kCompletedAt : kUnknown);
    default:
      return kUnknown;
  }
}

int SnapshotReader::parent_field(std::string_view k) {
  if (k == "task_id") return 0;
  if (k == "run_id") return 1;
  if (k == "call_id") return 2;
  if (k == "agent_id") return 3;
  return -1;
}

void SnapshotReader::build(json v, bool container) {
  json* slot;
  if (build_stack_.back()->is_array()) {
    build_stack_.back()->push_back(std::move(v));
    slot = &build_stack_.back()->back();
  } else {
    *build_slot_ = std::move(v);
    slot = build_slot_;
  }
  if (container) build_stack_.push_back(slot);
}

void SnapshotReader::reset_tasks(T type) {
  tasks_type_ = type;
  entries_.clear();
  errors_.clear();
}

template <class MakeJson>
bool SnapshotReader::scalar(T type, MakeJson&& make) {
  if (skip_) return true;
  if (!build_stack_.empty()) {
    build(make(), false);
    return true;
  }
  switch (target_) {
    case Target::Root:
      root_type_ = type;
      break;
    case Target::Tasks:
      reset_tasks(type);
      break;
    case Target::Ignored:
      break;
    case Target::Entry:
      if (entry_key_.empty())
        commit(bad("tasks.\"\".task_id", "must not be empty"));
      else
        commit(wrong_type(where(), "an object", type_name(type)));
      break;
    case Target::Field:
      if (field_ < kStringFields) {
        StrSlot& s = str_slots_[field_];
        s.type = type;
        if (type == T::string) s.value = std::move(*str_);
      } else if (field_ == kCreatedAt || field_ == kCompletedAt) {
        NumSlot& n = num_slots_[field_ - kCreatedAt];
        n = num_;
        n.type = type;
      } else if (field_ == kResult) {
        if (type == T::null)
          result_.reset();  // serde: null → None
        else
          result_ = make();
      } else {  // parent_context that is not an object
        parent_type_ = type;
      }
      break;
    case Target::ParentField: {
      StrSlot& s = parent_slots_[static_cast<std::size_t>(parent_field_)];
      s.type = type;
      if (type == T::string) s.value = std::move(*str_);
      break;
    }
  }
  return true;
}

bool SnapshotReader::start(T type) {
  if (skip_) {
    ++skip_;
    return true;
  }
  if (!build_stack_.empty()) {
    build(json(type), true);
    return true;
  }
  const bool obj = type == T::object;
  switch (target_) {
    case Target::Root:
      root_type_ = type;
      if (obj) return ctx_.push_back(Ctx::RootObj), true;
      break;
    case Target::Tasks:
      reset_tasks(type);
      if (obj) return ctx_.push_back(Ctx::TasksObj), true;
      break;
    case Target::Ignored:
      break;
    case Target::Entry:
      if (obj) return begin_meta(), ctx_.push_back(Ctx::MetaObj), true;
      scalar(type, [] { return json(); });  // the entry's "not an object" error
      break;
    case Target::Field:
      if (field_ == kResult) {
        result_ = json(type);
        build_stack_.push_back(&*result_);
        return true;
      }
      if (field_ == kParentContext && obj) {
        parent_type_ = type;
        for (auto& s : parent_slots_) s.type = kAbsent;
        return ctx_.push_back(Ctx::ParentObj), true;
      }
      scalar(type, [] { return json(); });  // records the wrong type
      break;
    case Target::ParentField:
      scalar(type, [] { return json(); });
      break;
  }
  skip_ = 1;  // a container nobody reads further
  return true;
}

bool SnapshotReader::end() {
  if (skip_) {
    --skip_;
    return true;
  }
  if (!build_stack_.empty()) {
    build_stack_.pop_back();
    return true;
  }
  const Ctx c = ctx_.back();
  ctx_.pop_back();
  if (c == Ctx::MetaObj) finish_meta();
  return true;
}

bool SnapshotReader::key(json::string_t& k) {
  if (skip_) return true;
  if (!build_stack_.empty()) {
    build_slot_ = &(*build_stack_.back())[k];
    return true;
  }
  switch (ctx_.back()) {
    case Ctx::RootObj:
      target_ = k == "tasks" ? Target::Tasks : Target::Ignored;
      break;
    case Ctx::TasksObj:
      entry_key_ = std::move(k);
      target_ = Target::Entry;
      break;
    case Ctx::MetaObj:
      field_ = meta_field(k);
      target_ = field_ == kUnknown ? Target::Ignored : Target::Field;
      break;
    case Ctx::ParentObj:
      parent_field_ = parent_field(k);
      target_ = parent_field_ < 0 ? Target::Ignored : Target::ParentField;
      break;
  }
  return true;
}

void SnapshotReader::begin_meta() {
  for (auto& s : str_slots_) s.type = kAbsent;
  for (auto& n : num_slots_) n.type = kAbsent;
  result_.reset();
  parent_type_ = kAbsent;
}

void SnapshotReader::commit(PersistedTaskMeta&& m) {
  if (!errors_.empty()) errors_.erase(entry_key_);
  entries_.push_back(std::move(m));  // m.task_id == entry_key_ (checked)
}

void SnapshotReader::commit(Error&& e) {
  // An earlier good entry of this id stays in entries_, but any error fails the whole snapshot;
  // a later good entry of the id lifts the error again (commit above).
  errors_.insert_or_assign(std::move(entry_key_), std::move(e));
}

// meta_from_json (through summary_from_json) and snapshot_from_json's checks, in their order.
void SnapshotReader::finish_meta() {
  if (entry_key_.empty()) return commit(bad("tasks.\"\".task_id", "must not be empty"));
  PersistedTaskMeta m;
  auto req_string = [&](Field f, const char* name, std::string& dst) -> bool {
    StrSlot& s = str_slots_[f];
    if (s.type == kAbsent) {
      commit(bad(where(), std::string("missing field \"") + name + "\""));
      return false;
    }
    if (s.type != T::string) {
      commit(wrong_type(field(where(), name), "a string", type_name(s.type)));
      return false;
    }
    dst = std::move(s.value);
    return true;
  };
  // Messages are built only on error: a where() per entry would cost an allocation each.
  // `last` is the field's last text, shared by entries that repeat it; only the lineage ids have
  // one, so it also says the field sits inside parent_context (for the error's path).
  auto opt_string = [&](StrSlot& s, SharedString* last, const char* name, OptionalSharedString& dst) -> bool {
    if (s.type == kAbsent || s.type == T::null) return true;
    if (s.type != T::string) {
      const std::string at = last ? field(where(), "parent_context") : where();
      commit(wrong_type(field(at, name), "a string or null", type_name(s.type)));
      return false;
    }
    if (last)
      dst = last->reuse_for(s.value);
    else
      dst = s.value;
    return true;
  };
  auto as_u64 = [&](const NumSlot& n, const char* name, std::uint64_t& dst) -> bool {
    switch (n.type) {
      case T::number_unsigned:
        dst = n.u;
        return true;
      case T::number_integer:
        commit(bad(field(where(), name), "expected a non-negative integer, got " + dump(json(n.i))));
        return false;
      case T::number_float:
        commit(bad(field(where(), name), "expected a non-negative integer below 2^64, got " + dump(json(n.d))));
        return false;
      default:
        commit(wrong_type(field(where(), name), "a non-negative integer", type_name(n.type)));
        return false;
    }
  };
  std::string task_type;
  if (!req_string(kTaskId, "task_id", m.task_id) || !req_string(kTaskType, "task_type", task_type) ||
      !req_string(kDescription, "description", m.description))
    return;
  m.task_type = last_type_.reuse_for(task_type);
  std::string status;
  if (!req_string(kStatus, "status", status)) return;
  auto st = parse_task_status(status);
  if (!st) return commit(bad(field(where(), "status"), "unknown status " + dump(json(status))));
  m.status = *st;
  if (!opt_string(str_slots_[kError], nullptr, "error", m.error)) return;
  m.result = std::move(result_);
  const NumSlot& created = num_slots_[0];
  if (created.type == kAbsent) return commit(bad(where(), "missing field \"created_at_ms\""));
  if (!as_u64(created, "created_at_ms", m.created_at_ms)) return;
  const NumSlot& completed = num_slots_[1];
  if (completed.type != kAbsent && completed.type != T::null) {
    std::uint64_t v = 0;
    if (!as_u64(completed, "completed_at_ms", v)) return;
    m.completed_at_ms = v;
  }
  if (parent_type_ != kAbsent) {
    // serde's `default` covers a missing field only: null is refused like any non-object.
    if (parent_type_ != T::object)
      return commit(wrong_type(field(where(), "parent_context"), "an object", type_name(parent_type_)));
    auto& p = m.parent_context;
    if (!opt_string(parent_slots_[0], &last_parent_[0], "task_id", p.task_id) ||
        !opt_string(parent_slots_[1], &last_parent_[1], "run_id", p.run_id) ||
        !opt_string(parent_slots_[2], &last_parent_[2], "call_id", p.call_id) ||
        !opt_string(parent_slots_[3], &last_parent_[3], "agent_id", p.agent_id))
      return;
  }
  // serde default "" when missing; null is not a string.
  if (StrSlot& owner = str_slots_[kOwnerThreadId]; owner.type != kAbsent) {
    if (owner.type != T::string)
      return commit(wrong_type(field(where(), "owner_thread_id"), "a string", type_name(owner.type)));
    m.owner_thread_id = last_owner_.reuse_for(owner.value);
  }
  if (!opt_string(str_slots_[kName], nullptr, "name", m.name)) return;
  if (m.task_id.empty()) return commit(bad(field(where(), "task_id"), "must not be empty"));
  if (m.task_id != entry_key_)
    return commit(bad(field(where(), "task_id"), dump(json(m.task_id)) + " does not match its key"));
  commit(std::move(m));
}

Result<std::vector<PersistedTaskMeta>> SnapshotReader::finish() {
  if (syntax_error_) return limit_error("snapshot", Errc::InvalidSnapshot, kNotJson);
  if (root_type_ != T::object) return wrong_type("snapshot", "an object {\"tasks\": {...}}", type_name(root_type_));
  if (tasks_type_ == kAbsent) return bad("snapshot", "missing field \"tasks\"");
  if (tasks_type_ != T::object) return wrong_type("tasks", "an object", type_name(tasks_type_));
  if (!errors_.empty()) return std::move(errors_.begin()->second);
  return std::move(entries_);
}

}  // namespace

Result<json> parse_json(std::string_view text, std::string_view what, Errc code, std::size_t max_depth) {
  if (auto e = check_size(text, what, code)) return std::move(*e);
  json j;
  nlohmann::detail::json_sax_dom_parser<json> dom(j, /*allow_exceptions=*/false);
  if (!detail::json_sax_parse(text, dom, max_depth)) {
    if (auto e = check_depth(text, what, code, max_depth)) return std::move(*e);
    return limit_error(what, code, kNotJson);
  }
  return j;
}

Result<std::vector<PersistedTaskMeta>> parse_snapshot_entries(std::string_view text) {
  if (auto e = check_size(text, "snapshot", Errc::InvalidSnapshot)) return std::move(*e);
  SnapshotReader reader;
  if (!detail::json_sax_parse(text, reader, kMaxSnapshotDepth)) {
    if (auto e = check_depth(text, "snapshot", Errc::InvalidSnapshot, kMaxSnapshotDepth)) return std::move(*e);
    reader.syntax_error();
  }
  return reader.finish();
}

Result<BackgroundTaskStateSnapshot> parse_snapshot(std::string_view text) {
  auto entries = parse_snapshot_entries(text);
  if (!entries) return entries.error();
  BackgroundTaskStateSnapshot snap;
  snap.tasks.reserve(entries->size());
  for (auto& m : *entries) {
    TaskId id = m.task_id;
    snap.tasks.insert_or_assign(std::move(id), std::move(m));  // a repeated id: the last entry wins
  }
  return snap;
}

}  // namespace bgtasks
