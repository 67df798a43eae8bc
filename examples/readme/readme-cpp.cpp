// The README's C++ snippet, compiled and run by examples/readme/check.mjs against an installed
// bgtasks (find_package, as examples/native). The text between the two marker lines must equal
// the README's ```cpp block byte for byte; check.mjs compares them.
//
// The block starts with its own #include and using-directive, so it sits whole inside main():
// the header is included once above (its #pragma once makes the block's #include a no-op) and a
// using-directive is allowed at block scope. <iostream> is the wrapper's: the block uses std::cout.
#include <bgtasks/bgtasks.hpp>
#include <iostream>

int main() {
// ---- README ```cpp block begin ----
#include <bgtasks/bgtasks.hpp>
#include <iostream>
using namespace bgtasks;

ManualClock clock;                       // or SystemClock
Executor exec{clock};
auto store = std::make_shared<StateStore>();
auto [tx, rx] = inbox_channel();
auto mgr = std::make_shared<BackgroundTaskManager>(exec);
mgr->set_store(store);
mgr->set_owner_inbox(tx);
(void)store->install_plugin(BackgroundTaskPlugin(mgr));     // registers the two state keys

auto id = mgr->spawn("t1", "shell", "build", "Build the app", {},
    [](TaskContext ctx) -> Co<TaskResult> {
      ctx.emit("progress", {{"pct", 50}});
      if (!co_await ctx.sleep(1000)) co_return TaskResult::cancelled();   // false: cancelled early
      co_return TaskResult::success({{"ok", true}});
    });
exec.run_until_idle();                   // the body starts here, then waits on its timer
exec.advance(1000);                      // manual time; runs nothing by itself
exec.run_until_idle();
for (const json& ev : rx.drain()) std::cout << ev.dump() << '\n';
// ---- README ```cpp block end ----
  // The wrapper's checks (check.mjs also checks the printed events).
  if (!id) return 1;
  auto s = mgr->get(*id);
  if (!s || s->status != TaskStatus::Completed) return 2;
  std::cout << "readme-cpp: " << *id << ' ' << as_str(s->status) << '\n';
  return 0;
}
