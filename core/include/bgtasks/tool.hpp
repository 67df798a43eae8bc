// awaken's `cancel_task` tool, plus the small tool contract it needs (descriptor, call context,
// ToolResult, and an executor that sets the ambient tool lineage around execute).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "bgtasks/cancellation.hpp"
#include "bgtasks/result.hpp"
#include "bgtasks/types.hpp"

namespace bgtasks {

class BackgroundTaskManager;

// Rust's str::trim: `s` without leading and trailing Unicode White_Space, read as UTF-8. A byte
// that does not start a valid UTF-8 sequence is kept (it is not white space).
std::string_view trim_white_space(std::string_view s) noexcept;

struct RunIdentity {
  std::string thread_id;
  std::string run_id;
  std::string agent_id;
  static RunIdentity for_thread(std::string thread_id) { return {std::move(thread_id), {}, {}}; }
};

struct ToolDescriptor {
  std::string id;
  std::string name;
  std::string description;
  json parameters;
};

struct ToolCallContext {
  std::string call_id;
  RunIdentity run_identity;
  std::optional<CancellationToken> cancellation_token;
};

// awaken's ToolError, with its Display text.
struct ToolError {
  enum class Kind : std::uint8_t { InvalidArguments, ExecutionFailed };
  Kind kind;
  std::string detail;
  std::string to_string() const;  // "Invalid arguments: …" / "Execution failed: …"
};

struct ToolResult {
  std::string tool_name;
  std::string status;  // "success" | "error"
  json data;
  std::optional<std::string> message;
  static ToolResult success(std::string tool_name, json data) {
    return {std::move(tool_name), "success", std::move(data), std::nullopt};
  }
  static ToolResult error(std::string tool_name, std::string message) {
    return {std::move(tool_name), "error", nullptr, std::move(message)};
  }
  json to_json() const;  // {"data":…,"message":…,"status":…,"tool_name":…}
};

class Tool {
 public:
  virtual ~Tool() = default;
  virtual ToolDescriptor descriptor() const = 0;
  virtual std::optional<ToolError> validate_args(const json& args) const = 0;
  // Runs on the polling thread; fails only with a ToolError.
  virtual std::variant<ToolResult, ToolError> execute(const json& args, const ToolCallContext& ctx) const = 0;
};

// Validates, sets the ambient tool lineage {run_id, call_id, agent_id} around execute, and turns
// any ToolError into ToolResult::error(name, message), as awaken's tool executor does.
ToolResult execute_tool(const Tool& tool, const json& args, const ToolCallContext& ctx);

class CancelTaskTool final : public Tool {
 public:
  static constexpr std::string_view kName = "cancel_task";
  static constexpr std::string_view kDescription =
      "Cancel the current background task or one of its child tasks. Descendant tasks are cancelled together.";
  explicit CancelTaskTool(std::shared_ptr<BackgroundTaskManager> manager) : manager_(std::move(manager)) {}
  // awaken's with_current_task: acts as if called from inside task `task_id`.
  static CancelTaskTool with_current_task(std::shared_ptr<BackgroundTaskManager> manager, TaskId task_id) {
    CancelTaskTool t(std::move(manager));
    t.current_task_override_ = std::move(task_id);
    return t;
  }

  ToolDescriptor descriptor() const override;
  std::optional<ToolError> validate_args(const json& args) const override;
  std::variant<ToolResult, ToolError> execute(const json& args, const ToolCallContext& ctx) const override;

 private:
  std::shared_ptr<BackgroundTaskManager> manager_;
  std::optional<TaskId> current_task_override_;
};

}  // namespace bgtasks
