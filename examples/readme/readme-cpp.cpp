// The README's C++ program, compiled and run by examples/readme/check.mjs against an installed
// bgtasks (find_package, as examples/native), with g++ and with clang++. The text between the two
// marker lines must equal the README's ```cpp block byte for byte (check.mjs compares them), and
// nothing else in this file may be code: the README's block is a whole program as it stands.
// ---- README ```cpp block begin ----
#include <bgtasks/bgtasks.hpp>
#include <iostream>

int main() {
  using namespace bgtasks;
  ManualClock manual;  // or SystemClock
  Executor exec{manual};
  Runtime rt = make_runtime(exec);  // store + plugin + manager + owner inbox

  auto id = rt.manager->spawn({.thread = "t1", .type = "shell", .description = "Build the app"},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                ctx.emit("progress", {{"pct", 50}});
                                bool slept = co_await ctx.sleep(1000);  // false: cancelled early
                                if (!slept) co_return TaskResult::cancelled();
                                co_return TaskResult::success({{"ok", true}});
                              });
  exec.run_until_idle();  // the body starts here, then waits on its timer
  exec.advance(1000);     // manual time; runs nothing by itself
  exec.run_until_idle();
  for (const json& ev : rt.events.drain()) std::cout << ev.dump() << '\n';
  if (auto s = rt.manager->get(id.value())) std::cout << id.value() << ' ' << as_str(s->status) << '\n';
}
// ---- README ```cpp block end ----
