// An agent runtime on one asio::io_context, with bgtasks' asio bridge (<bgtasks/asio.hpp>).
// The executor runs on the system clock, driven by asio_driver: no poll loop of our own. Task
// bodies await asio timers (bgtasks::use_fiber) next to bgtasks' own inbox; a sub-agent answers a
// message the host sends from an asio handler; a host-driven task is completed by a worker
// std::thread through Executor::post; a watcher's asio wait is cancelled, the asio way, when the
// task is cancelled. io.run() returns once neither asio nor the executor has anything left.
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/executor_work_guard.hpp>
#include <bgtasks/asio.hpp>
#include <bgtasks/bgtasks.hpp>
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

using namespace bgtasks;
using namespace std::chrono_literals;

int main() {
  asio::io_context io;
  SystemClock clock;
  Executor exec{clock};
  Runtime rt = make_runtime(exec);  // store, manager, plugin, owner inbox
  const std::shared_ptr<BackgroundTaskManager>& mgr = rt.manager;
  asio_driver driver(io, exec);  // declared after the executor: destroyed before it
  driver.start();

  const std::string thread = "t1";
  const auto start = std::chrono::steady_clock::now();
  auto elapsed_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  };
  mgr->subscribe(
      [&](const Event& e) { std::cout << "[+" << elapsed_ms() << "ms] event " << e.to_json().dump() << '\n'; }, thread);

  // 1. A poller: three asio timer waits of 30 ms, an event after each.
  const TaskId poller =
      mgr->spawn({.thread = thread, .type = "poll", .name = "poller", .description = "polls an endpoint every 30 ms"},
                 [&io](TaskContext ctx) -> Co<TaskResult> {
                   asio::steady_timer timer(io);
                   for (int n = 1; n <= 3; ++n) {
                     timer.expires_after(30ms);
                     const asio::error_code ec = co_await timer.async_wait(use_fiber);
                     if (ec) co_return TaskResult::failed(ec.message());
                     ctx.emit("tick", {{"n", n}});
                   }
                   co_return TaskResult::success({{"ticks", 3}});
                 })
          .value();  // value(): throws bad_result_access naming the error, were the spawn refused

  // 2. A sub-agent: waits for a message on its inbox, "thinks" for 20 ms on an asio timer, answers.
  const TaskId researcher =
      mgr->spawn_agent_with_context({.thread = thread, .name = "researcher", .description = "answers one question"},
                                    [&io](AgentTaskContext ctx) -> Co<TaskResult> {
                                      std::optional<json> message =
                                          co_await ctx.inbox_receiver.recv_or_cancel(ctx.cancel_token());
                                      if (!message) co_return TaskResult::cancelled();
                                      asio::steady_timer think(io, 20ms);
                                      co_await think.async_wait(use_fiber);
                                      ctx.emit("answer", {{"text", "42"}});
                                      co_return TaskResult::success({{"answered", true}});
                                    })
          .value();
  // The host asks it something 40 ms in, from an asio handler.
  asio::steady_timer ask(io, 40ms);
  ask.async_wait([&](const asio::error_code&) {
    auto r = mgr->send_task_inbox_message(researcher, thread, "host", "what is 6 x 7?");
    std::cout << "[+" << elapsed_ms() << "ms] asked " << researcher << ": " << (r ? "delivered" : r.error().message)
              << '\n';
  });

  // 3. A watcher that would wait a minute on an asio timer. Cancelling a task does not interrupt
  //    another library's operation by itself: this one is bound to a cancellation signal that the
  //    manager's cancel hook emits, so the wait ends at once with operation_aborted.
  asio::cancellation_signal watch_signal;
  const TaskId watch =
      mgr->spawn({.thread = thread, .type = "watch", .name = "watch", .description = "watch src/ for changes"},
                 [&io, &watch_signal](TaskContext ctx) -> Co<TaskResult> {
                   asio::steady_timer timer(io, 60s);
                   const asio::error_code ec =
                       co_await timer.async_wait(asio::bind_cancellation_slot(watch_signal.slot(), use_fiber));
                   if (ctx.is_cancelled()) co_return TaskResult::cancelled();
                   co_return TaskResult::success({{"ec", ec.message()}});
                 })
          .value();
  // Both hooks run on the io_context's thread (inside the driver's polls, or in host code there).
  mgr->set_hooks(ManagerHooks(
      [&](const TaskId& id) {
        if (id == watch) watch_signal.emit(asio::cancellation_type::terminal);
      },
      [&](const TaskSummary& s) {
        if (s.task_id != poller) return;
        std::cout << "[+" << elapsed_ms() << "ms] poller done; cancel(" << watch << ") -> " << std::boolalpha
                  << mgr->cancel(watch) << '\n';
      }));

  // 4. A host-driven task whose work runs on a worker thread, which hands the outcome back with
  //    Executor::post (the wake callback then queues a driver turn). Until it arrives, a work
  //    guard keeps io.run() from returning.
  const TaskId checksum =
      mgr->spawn_host(
             {.thread = thread, .type = "host", .name = "checksum", .description = "sha256 on a worker thread"})
          .value();
  auto guard = asio::make_work_guard(io);
  std::thread worker([&exec, &guard, m = mgr, checksum] {
    std::this_thread::sleep_for(50ms);  // the "work"
    exec.post([&guard, m, checksum] {
      if (auto r = m->complete(checksum, {{"sha256", "9f86d081884c7d65"}}); !r)
        std::cerr << "complete: " << r.error().message << '\n';
      guard.reset();
    });
  });

  std::cout << "spawned poller=" << poller << " researcher=" << researcher << " watch=" << watch
            << " checksum=" << checksum << '\n';
  io.run();
  worker.join();
  driver.stop();

  std::cout << "final tasks:\n";
  for (const TaskSummary& s : mgr->list(thread))
    std::cout << "  " << s.task_id << ' ' << s.task_type << ' ' << as_str(s.status) << '\n';
  std::cout << "stats " << mgr->stats().to_json().dump() << '\n';
  std::cout << "driver polls " << driver.polls() << '\n';
  std::cout << "elapsed " << elapsed_ms() << " ms\n";
  return 0;
}
