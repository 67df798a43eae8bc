#include "bgtasks/tool.hpp"

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
    if (!member(target, "name").is_string()) return ToolError{ToolError::Kind::InvalidArguments, "child requires 'name'"};
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
    if (id.find_first_not_of(" \t\n\r\f\v") != std::string::npos) run = id;
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
