// A shared library (a plugin, a Python extension, a JNI library...) with the static bgtasks
// linked in: this only links when libbgtasks.a is position-independent code.
#include <bgtasks/bgtasks.hpp>
#include <cstddef>
#include <cstdio>

namespace {

// Outside the extern "C" function: g++ 12 mangles a coroutine lambda inside an extern "C"
// function into symbols that collide ("symbol ... is already defined" from the assembler).
int run_one_task(char* out, std::size_t size) {
  using namespace bgtasks;
  ManualClock manual;
  Executor exec{manual};
  auto store = std::make_shared<StateStore>();
  auto mgr = std::make_shared<BackgroundTaskManager>(exec);
  (void)mgr->set_store(store);  // a new manager takes any store
  if (!store->install_plugin(BackgroundTaskPlugin(mgr))) return 4;
  auto id = mgr->spawn("plugin", "work", "tick", "sleep then succeed", {}, [](TaskContext ctx) -> Co<TaskResult> {
    const bool slept = co_await ctx.sleep(250);
    if (!slept) co_return TaskResult::cancelled();
    co_return TaskResult::success({{"from", "plugin"}});
  });
  if (!id) {
    std::snprintf(out, size, "spawn: %s", id.error().message.c_str());
    return 1;
  }
  exec.run_until_idle();
  exec.advance(250);
  exec.run_until_idle();
  auto s = mgr->get(*id);
  if (!s) return 2;
  std::snprintf(out, size, "%s %s", id->c_str(), as_str(s->status));
  return s->status == TaskStatus::Completed ? 0 : 3;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int plugin_run(char* out, std::size_t size) {
  return run_one_task(out, size);
}
