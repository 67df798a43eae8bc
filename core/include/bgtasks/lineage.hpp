// Ambient context (awaken's tokio task-locals), as thread-local scopes on the polling thread:
// - the background task whose body is running (set around every step of a body, and by hosts
//   around the synchronous part of a host-driven body);
// - the tool lineage (run/call/agent ids) set by whoever executes a tool.
// A spawn fills each missing parent field from them (rules in merge_ambient_parent).
#pragma once

#include <optional>
#include <string>

#include "bgtasks/types.hpp"

namespace bgtasks {

class BackgroundTaskManager;

struct ToolLineageContext {
  std::string run_id;
  std::string call_id;
  std::string agent_id;
};

struct BackgroundTaskContext {
  BackgroundTaskManager* manager = nullptr;
  TaskId task_id;
};

std::optional<ToolLineageContext> current_tool_lineage_context();
std::optional<BackgroundTaskContext> current_background_task_context();

// awaken's scope_tool_lineage_context: the lineage holds for this scope's lifetime.
class ToolLineageScope {
 public:
  explicit ToolLineageScope(std::optional<ToolLineageContext> lineage);
  ~ToolLineageScope();
  ToolLineageScope(const ToolLineageScope&) = delete;
  ToolLineageScope& operator=(const ToolLineageScope&) = delete;

 private:
  std::optional<ToolLineageContext> lineage_;
  const ToolLineageContext* previous_;
};

// Sets (or, with nullopt, clears) the ambient background task for this scope's lifetime.
class BackgroundTaskScope {
 public:
  explicit BackgroundTaskScope(std::optional<BackgroundTaskContext> task);
  ~BackgroundTaskScope();
  BackgroundTaskScope(const BackgroundTaskScope&) = delete;
  BackgroundTaskScope& operator=(const BackgroundTaskScope&) = delete;

 private:
  std::optional<BackgroundTaskContext> task_;
  const BackgroundTaskContext* previous_;
};

namespace detail {
// Around one step of a body: the ambient task is `task` (owned by the caller, no copy) and there
// is no tool lineage. Restores both after.
class AmbientTaskStep {
 public:
  explicit AmbientTaskStep(const BackgroundTaskContext* task) noexcept;
  ~AmbientTaskStep();
  AmbientTaskStep(const AmbientTaskStep&) = delete;
  AmbientTaskStep& operator=(const AmbientTaskStep&) = delete;

 private:
  const BackgroundTaskContext* previous_task_;
  const ToolLineageContext* previous_lineage_;
};
}  // namespace detail

// Explicit fields win; each missing one is filled independently: task_id from the ambient task,
// run_id from the lineage (even ""), call_id/agent_id from the lineage when non-empty.
TaskParentContext merge_ambient_parent(TaskParentContext explicit_parent);
// The same, in place (spawn's path: no moves of the four fields).
void merge_ambient_parent_into(TaskParentContext& parent);

}  // namespace bgtasks
