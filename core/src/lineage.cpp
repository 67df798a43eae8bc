#include "bgtasks/lineage.hpp"

namespace bgtasks {
namespace {
thread_local std::optional<ToolLineageContext> t_lineage;
thread_local std::optional<BackgroundTaskContext> t_task;
}  // namespace

std::optional<ToolLineageContext> current_tool_lineage_context() { return t_lineage; }
std::optional<BackgroundTaskContext> current_background_task_context() { return t_task; }

ToolLineageScope::ToolLineageScope(std::optional<ToolLineageContext> lineage) : previous_(std::move(t_lineage)) {
  t_lineage = std::move(lineage);
}
ToolLineageScope::~ToolLineageScope() { t_lineage = std::move(previous_); }

BackgroundTaskScope::BackgroundTaskScope(std::optional<BackgroundTaskContext> task) : previous_(std::move(t_task)) {
  t_task = std::move(task);
}
BackgroundTaskScope::~BackgroundTaskScope() { t_task = std::move(previous_); }

TaskParentContext merge_ambient_parent(TaskParentContext p) {
  if (!p.task_id && t_task) p.task_id = t_task->task_id;
  if (t_lineage) {
    if (!p.run_id) p.run_id = t_lineage->run_id;
    if (!p.call_id && !t_lineage->call_id.empty()) p.call_id = t_lineage->call_id;
    if (!p.agent_id && !t_lineage->agent_id.empty()) p.agent_id = t_lineage->agent_id;
  }
  return p;
}

}  // namespace bgtasks
