#include "bgtasks/tool.hpp"

#include <utility>

#include "bgtasks/lineage.hpp"
#include "bgtasks/manager.hpp"

namespace bgtasks {

std::string ToolError::to_string() const {
  return (kind == Kind::InvalidArguments ? "Invalid arguments: " : "Execution failed: ") + detail;
}

json ToolResult::to_json() const {
  json j{{"tool_name", tool_name}, {"status", status}, {"data", data}};
  j["message"] = message ? json(*message) : json(nullptr);
  return j;
}

ToolResult execute_tool(const Tool& tool, const json& args, const ToolCallContext& ctx) {
  const std::string name = tool.descriptor().name;
  if (auto e = tool.validate_args(args)) return ToolResult::error(name, e->to_string());
  ToolLineageScope lineage(ToolLineageContext{ctx.run_identity.run_id, ctx.call_id, ctx.run_identity.agent_id});
  auto out = tool.execute(args, ctx);
  if (auto* e = std::get_if<ToolError>(&out)) return ToolResult::error(name, e->to_string());
  return std::get<ToolResult>(std::move(out));
}

namespace {
// The code point starting at s[i] and its length in bytes; length 0 when the bytes there are not
// valid UTF-8 (overlong forms, surrogates and values past U+10FFFF included).
std::pair<char32_t, std::size_t> decode_utf8(std::string_view s, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return {b0, 1};
  std::size_t len;
  char32_t cp;
  char32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return {0, 0};
  }
  if (s.size() - i < len) return {0, 0};
  for (std::size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return {0, 0};
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {0, 0};
  return {cp, len};
}

// Unicode's White_Space property (what Rust's char::is_whitespace tests).
bool is_white_space(char32_t c) noexcept {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

const json& member(const json& j, const char* key) {
  static const json null_value;
  if (!j.is_object()) return null_value;
  auto it = j.find(key);
  return it == j.end() ? null_value : *it;
}

json receipt(const std::string& root, std::size_t count) {
  if (count == 0)
    return json{{"status", "failed"}, {"root_task_id", root}, {"cancelled_count", 0}, {"error", "task_not_found"}};
  return json{{"status", "accepted"}, {"root_task_id", root}, {"cancelled_count", count}};
}
}  // namespace

std::string_view trim_white_space(std::string_view s) noexcept {
  // One pass: where the first code point that is not white space starts, and where the last ends.
  std::size_t begin = s.size(), end = 0;
  for (std::size_t i = 0; i < s.size();) {
    auto [cp, len] = decode_utf8(s, i);
    const bool blank = len != 0 && is_white_space(cp);
    if (len == 0) len = 1;  // an invalid byte is kept as it is
    if (!blank) {
      if (begin == s.size()) begin = i;
      end = i + len;
    }
    i += len;
  }
  return begin < end ? s.substr(begin, end - begin) : std::string_view();
}

ToolDescriptor CancelTaskTool::descriptor() const {
  static const json parameters = json::parse(R"({"type":"object","properties":{"target":{"oneOf":[
    {"type":"object","properties":{"relation":{"const":"self"}},"required":["relation"]},
    {"type":"object","properties":{"relation":{"const":"child"},"name":{"type":"string","description":"Direct child task name or task_id"}},"required":["relation","name"]}
  ]}},"required":["target"]})");
  return {std::string(kName), std::string(kName), std::string(kDescription), parameters};
}

std::optional<ToolError> CancelTaskTool::validate_args(const json& args) const {
  const json& target = member(args, "target");
  if (target.is_null() && !(args.is_object() && args.contains("target")))
    return ToolError{ToolError::Kind::InvalidArguments, "missing 'target'"};
  const json& relation = member(target, "relation");
  if (!relation.is_string()) return ToolError{ToolError::Kind::InvalidArguments, "missing 'target.relation'"};
  const auto& r = relation.get_ref<const std::string&>();
  if (r == "self") return std::nullopt;
  if (r == "child") {
    if (!member(target, "name").is_string())
      return ToolError{ToolError::Kind::InvalidArguments, "child requires 'name'"};
    return std::nullopt;
  }
  return ToolError{ToolError::Kind::InvalidArguments, "unknown relation '" + r + "'"};
}

std::variant<ToolResult, ToolError> CancelTaskTool::execute(const json& args, const ToolCallContext& ctx) const {
  // Scope: the current task (override, else ambient), else the run when the call is cancellable.
  std::optional<TaskId> task = current_task_override_;
  if (!task)
    if (auto c = current_background_task_context()) task = c->task_id;
  std::optional<std::string> run;
  if (!task && ctx.cancellation_token) {
    const auto& id = ctx.run_identity.run_id;
    if (!trim_white_space(id).empty()) run = id;  // the run keeps its id untrimmed, as in awaken
  }
  const json& target = member(args, "target");
  const json& relation = member(target, "relation");
  const std::string rel = relation.is_string() ? relation.get<std::string>() : std::string();
  const auto unavailable = ToolError{ToolError::Kind::ExecutionFailed, "current_task_unavailable"};

  std::string root;
  std::size_t count = 0;
  if (rel == "self") {
    if (!task && !run) return unavailable;
    if (task) {
      count = manager_->cancel_tree(*task);
      root = *task;
    } else {
      count = manager_->cancel_descendants_for_run(*run) + 1;  // +1: the run itself (token present)
      root = *run;
    }
    if (ctx.cancellation_token) ctx.cancellation_token->cancel();
  } else if (rel == "child") {
    if (!task && !run) return unavailable;
    const json& n = member(target, "name");
    const std::string name = n.is_string() ? n.get<std::string>() : std::string();
    auto child = task ? manager_->resolve_live_child_task(*task, name) : manager_->resolve_live_child_run(*run, name);
    if (!child) return ToolResult::success(std::string(kName), receipt(name, 0));
    count = manager_->cancel_tree(*child);
    root = *child;
  } else {
    return ToolError{ToolError::Kind::InvalidArguments, "unknown cancellation relation"};
  }
  return ToolResult::success(std::string(kName), receipt(root, count));
}

}  // namespace bgtasks
