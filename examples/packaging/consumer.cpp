// The smallest useful bgtasks program: one task that emits, sleeps on manual time and completes.
// examples/packaging/test.sh builds it four ways — pkg-config (g++ and clang++), the shared
// library, FetchContent — and checks what it prints:
//   bgtasks <version>
//   {"event_type":"progress",...}
//   {"kind":"completed",...}
//   consumer: bg_0 completed
#include <bgtasks/bgtasks.hpp>
#include <bgtasks/version.hpp>
#include <cstring>
#include <iostream>

int main() {
  using namespace bgtasks;
  // The headers and the library agree (a shared library is found at run time and may differ).
  if (std::strcmp(version(), BGTASKS_VERSION_STRING) != 0) {
    std::cerr << "headers say " << BGTASKS_VERSION_STRING << ", library says " << version() << '\n';
    return 1;
  }
  std::cout << "bgtasks " << version() << '\n';

  ManualClock manual;
  Executor exec{manual};
  auto store = std::make_shared<StateStore>();
  auto [tx, rx] = inbox_channel();
  auto mgr = std::make_shared<BackgroundTaskManager>(exec);
  (void)mgr->set_store(store);  // a new manager takes any store
  mgr->set_owner_inbox(tx);
  if (!store->install_plugin(BackgroundTaskPlugin(mgr))) return 2;

  auto id = mgr->spawn("t1", "shell", "build", "Build the app", {}, [](TaskContext ctx) -> Co<TaskResult> {
    ctx.emit("progress", {{"pct", 50}});
    const bool slept = co_await ctx.sleep(1000);  // never `if (!co_await …)`: g++ 12 miscompiles it
    if (!slept) co_return TaskResult::cancelled();
    co_return TaskResult::success({{"ok", true}});
  });
  if (!id) return 3;
  exec.run_until_idle();
  exec.advance(1000);
  exec.run_until_idle();
  for (const json& ev : rx.drain()) std::cout << ev.dump() << '\n';
  auto s = mgr->get(*id);
  if (!s || s->status != TaskStatus::Completed) return 4;
  std::cout << "consumer: " << *id << ' ' << as_str(s->status) << '\n';
  return 0;
}
