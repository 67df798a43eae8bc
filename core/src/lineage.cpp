#include "bgtasks/lineage.hpp"

namespace bgtasks {
namespace {
// Pointers to contexts owned by the active scopes (or by a task, for the steps of its body).
thread_local const ToolLineageContext* t_lineage = nullptr;
thread_local const BackgroundTaskContext* t_task = nullptr;
}  // namespace

std::optional<ToolLineageContext> current_tool_lineage_context() {
  return t_lineage ? std::optional<ToolLineageContext>(*t_lineage) : std::nullopt;
}
std::optional<BackgroundTaskContext> current_background_task_context() {
  return t_task ? std::optional<BackgroundTaskContext>(*t_task) : std::nullopt;
}

ToolLineageScope::ToolLineageScope(std::optional<ToolLineageContext> lineage)
    : lineage_(std::move(lineage)), previous_(t_lineage) {
  t_lineage = lineage_ ? &*lineage_ : nullptr;
}
ToolLineageScope::~ToolLineageScope() { t_lineage = previous_; }

BackgroundTaskScope::BackgroundTaskScope(std::optional<BackgroundTaskContext> task)
    : task_(std::move(task)), previous_(t_task) {
  t_task = task_ ? &*task_ : nullptr;
}
BackgroundTaskScope::~BackgroundTaskScope() { t_task = previous_; }

detail::AmbientTaskStep::AmbientTaskStep(const BackgroundTaskContext* task) noexcept
    : previous_task_(t_task), previous_lineage_(t_lineage) {
  t_task = task;
  t_lineage = nullptr;
}
detail::AmbientTaskStep::~AmbientTaskStep() {
  t_task = previous_task_;
  t_lineage = previous_lineage_;
}

namespace {
// The last text of each ambient field, per thread: the children of one body, and the tasks of one
// tool call, then share one copy of its ids (SharedString::reuse_for). Reached only when an
// ambient context is set, so a spawn without one pays nothing for it.
struct LastAmbientTexts {
  SharedString task, run, call, agent;
};
LastAmbientTexts& last_ambient() {
  thread_local LastAmbientTexts last;
  return last;
}
}  // namespace

void merge_ambient_parent_into(TaskParentContext& p) {
  if (!p.task_id && t_task) p.task_id = last_ambient().task.reuse_for(t_task->task_id);
  if (t_lineage) {
    LastAmbientTexts& last = last_ambient();
    if (!p.run_id) p.run_id = last.run.reuse_for(t_lineage->run_id);
    if (!p.call_id && !t_lineage->call_id.empty()) p.call_id = last.call.reuse_for(t_lineage->call_id);
    if (!p.agent_id && !t_lineage->agent_id.empty()) p.agent_id = last.agent.reuse_for(t_lineage->agent_id);
  }
}

TaskParentContext merge_ambient_parent(TaskParentContext p) {
  merge_ambient_parent_into(p);
  return p;
}

}  // namespace bgtasks
