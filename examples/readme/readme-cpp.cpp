// The README's C++ program, compiled and run by examples/readme/check.mjs against an installed
// bgtasks (find_package, as examples/native), with g++ and with clang++. The text between the two
// marker lines must equal the README's ```cpp block byte for byte (check.mjs compares them), and
// nothing else in this file may be code: the README's block is a whole program as it stands.
// ---- README ```cpp block begin ----
#include <bgtasks/bgtasks.hpp>
#include <iostream>

int main() {
  using namespace bgtasks;
  ManualClock manual;                      // or SystemClock
  Executor exec{manual};
  auto store = std::make_shared<StateStore>();
  auto [tx, rx] = inbox_channel();
  auto mgr = std::make_shared<BackgroundTaskManager>(exec);
  (void)mgr->set_store(store);             // a new manager takes any store
  mgr->set_owner_inbox(tx);
  (void)store->install_plugin(BackgroundTaskPlugin(mgr));   // registers the two state keys

  auto id = mgr->spawn("t1", "shell", "build", "Build the app", {},
      [](TaskContext ctx) -> Co<TaskResult> {
        ctx.emit("progress", {{"pct", 50}});
        bool slept = co_await ctx.sleep(1000);   // false: cancelled early
        if (!slept) co_return TaskResult::cancelled();
        co_return TaskResult::success({{"ok", true}});
      });
  exec.run_until_idle();                   // the body starts here, then waits on its timer
  exec.advance(1000);                      // manual time; runs nothing by itself
  exec.run_until_idle();
  for (const json& ev : rx.drain()) std::cout << ev.dump() << '\n';
  if (auto s = mgr->get(*id)) std::cout << *id << ' ' << as_str(s->status) << '\n';  // bg_0 completed
}
// ---- README ```cpp block end ----
