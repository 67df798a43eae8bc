// awaken's tests of the owner inbox: the inbox a body gets, custom events from emit, terminal
// events, on_closed, and events while tasks are cancelled.
//
// These are awaken's tests by name: each is TEST(AwakenSeed, <awaken's test name>), its body a
// translation of awaken's (awaken_seed_support.hpp lists the translations common to all);
// docs/awaken-differences.md explains where bgtasks and awaken differ.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "awaken_seed_support.hpp"

namespace {
using namespace bgtasks;
using namespace bgtasks::testing;
}  // namespace

TEST(AwakenSeed, task_context_provides_inbox_sender) {
  auto h = manager_with_store_and_inbox();
  auto had_inbox = std::make_shared<std::optional<bool>>();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "inbox task", TaskParentContext{},
                              [had_inbox](TaskContext ctx) -> Co<TaskResult> {
                                *had_inbox = ctx.inbox() != nullptr;
                                EXPECT_NE(ctx.inbox(), nullptr) << "inbox should be Some";
                                if (ctx.inbox()) {
                                  ctx.inbox()->send(json{{"progress", 50}});
                                  ctx.inbox()->send(json{{"progress", 100}});
                                }
                                co_return TaskResult::success("done");
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  ASSERT_EQ(*had_inbox, std::optional<bool>(true));
  auto msgs = h->drain();
  ASSERT_GE(msgs.size(), 2u) << "expected at least 2 messages, got " << msgs.size() << ": " << dump_all(msgs);
  EXPECT_EQ(msgs[0].at("progress"), 50) << dump_all(msgs);
  EXPECT_EQ(msgs[1].at("progress"), 100) << dump_all(msgs);
}

TEST(AwakenSeed, task_context_inbox_is_none_by_default) {
  auto h = manager_with_store();
  auto had_inbox = std::make_shared<std::optional<bool>>();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "no inbox", TaskParentContext{},
                              [had_inbox](TaskContext ctx) -> Co<TaskResult> {
                                *had_inbox = ctx.inbox() != nullptr;
                                EXPECT_EQ(ctx.inbox(), nullptr);
                                co_return TaskResult::success(nullptr);
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  EXPECT_EQ(*had_inbox, std::optional<bool>(false));
  auto summary = h->manager->get(*id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->status, TaskStatus::Completed);
}

TEST(AwakenSeed, task_completion_sends_terminal_event_to_inbox) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "completes", TaskParentContext{},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success("ok"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  auto msgs = h->drain();
  EXPECT_TRUE(any_kind(msgs, "completed")) << "inbox should receive terminal Completed event, got: " << dump_all(msgs);
}

// OnInboxClosed is a std::function (inbox.hpp), not a trait object; drop(rx) is rx's destructor.
TEST(AwakenSeed, on_closed_fires_when_inbox_receiver_dropped) {
  auto h = std::make_unique<Harness>();
  auto counter = std::make_shared<std::size_t>(0);
  auto [inbox_tx, inbox_rx] = inbox_channel_with_fallback([counter](const json&) { ++*counter; });
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  h->manager->set_owner_inbox(std::move(inbox_tx));
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  std::shared_ptr<Plugin> plugin = std::make_shared<BackgroundTaskPlugin>(h->manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  ASSERT_TRUE(env.ok()) << env.error().message;
  ASSERT_TRUE(h->store->register_keys(env->key_registrations).ok());

  { InboxReceiver dropped = std::move(inbox_rx); }  // drop(inbox_rx)

  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "late completion", TaskParentContext{},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success("ok"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  EXPECT_GT(*counter, 0u) << "on_closed should fire when receiver is dropped";
}

TEST(AwakenSeed, custom_and_terminal_events_arrive_in_inbox) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "crawl", std::nullopt, "fetch pages", TaskParentContext{},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                ctx.emit("progress", json{{"percent", 50}});
                                ctx.emit("data_ready", json{{"rows", 10}});
                                co_return TaskResult::success("done");
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(100);

  auto msgs = h->drain();
  EXPECT_TRUE(any_kind(msgs, "custom")) << "should have custom events, got: " << dump_all(msgs);
  EXPECT_TRUE(any_kind(msgs, "completed")) << "should have Completed event, got: " << dump_all(msgs);
}

TEST(AwakenSeed, task_context_emit_delivers_structured_custom_event) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "emitter", TaskParentContext{},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                ctx.emit("progress", json{{"percent", 75}});
                                co_return TaskResult::success("ok");
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(100);

  auto messages = h->drain();
  auto progress = std::find_if(messages.begin(), messages.end(), [](const json& m) {
    if (kind_of(m) != std::optional<std::string>("custom")) return false;
    auto it = m.find("event_type");
    return it != m.end() && it->is_string() && it->get<std::string>() == "progress";
  });
  ASSERT_NE(progress, messages.end()) << "inbox should contain a custom progress event, got: " << dump_all(messages);
  ASSERT_TRUE(progress->contains("payload")) << progress->dump();
  EXPECT_EQ(progress->at("payload").at("percent"), 75);
}

TEST(AwakenSeed, inbox_events_accumulate_until_drained) {
  auto h = manager_with_store_and_inbox();
  auto id =
      h->manager->spawn("thread-1", "producer", std::nullopt, "emit many", {}, [](TaskContext ctx) -> Co<TaskResult> {
        for (int i = 0; i < 5; ++i) {
          ctx.emit("tick", json{{"n", i}});
          co_await sleep_for(ctx.executor(), 5);
        }
        co_return TaskResult::success("done");
      });
  ASSERT_TRUE(id.ok());
  h->run_for(100);
  auto msgs = h->drain();
  EXPECT_EQ(msgs.size(), 6u) << "should have 6 messages, got: " << json(msgs).dump();
  EXPECT_FALSE(h->inbox->try_recv().has_value());
}

TEST(AwakenSeed, inbox_drain_empty_when_no_events) {
  auto h = manager_with_store_and_inbox();
  auto msgs = h->drain();
  EXPECT_TRUE(msgs.empty());
}

TEST(AwakenSeed, multiple_tasks_share_same_inbox) {
  auto h = manager_with_store_and_inbox();
  for (int i = 0; i < 3; ++i) {
    auto id = h->manager->spawn("thread-1", "worker", std::nullopt, "worker-" + std::to_string(i), {},
                                [i](TaskContext ctx) -> Co<TaskResult> {
                                  ctx.emit("result", json{{"worker", i}});
                                  co_return TaskResult::success(i);
                                });
    ASSERT_TRUE(id.ok());
  }
  h->run_for(100);
  auto msgs = h->drain();
  EXPECT_EQ(msgs.size(), 6u) << "3 workers should produce 6 events";
}

// The receiver's close() is awaken's drop(rx).
TEST(AwakenSeed, on_closed_fires_for_late_task_completion) {
  auto h = std::make_unique<Harness>();
  auto counter = std::make_shared<std::size_t>(0);
  auto [tx, rx] = inbox_channel_with_fallback([counter](const json&) { ++*counter; });
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  h->manager->set_owner_inbox(tx);
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  register_plugin_keys(h->manager, *h->store);

  auto id = h->manager->spawn("thread-1", "slow", std::nullopt, "slow work", {}, [](TaskContext ctx) -> Co<TaskResult> {
    co_await sleep_for(ctx.executor(), 50);
    ctx.emit("done", "result");
    co_return TaskResult::success("ok");
  });
  ASSERT_TRUE(id.ok());
  rx.close();  // drop(rx)
  h->run_for(100);
  EXPECT_GE(*counter, 1u) << "on_closed should fire at least once";
}

TEST(AwakenSeed, task_events_carry_task_id) {
  auto h = manager_with_store_and_inbox();
  auto task_id =
      h->manager->spawn("thread-1", "tagged", std::nullopt, "id check", {}, [](TaskContext ctx) -> Co<TaskResult> {
        ctx.emit("ping", nullptr);
        co_return TaskResult::success("pong");
      });
  ASSERT_TRUE(task_id.ok());
  h->run_for(50);
  auto msgs = h->drain();
  for (const auto& msg : msgs) {
    EXPECT_EQ(str_field(msg, "task_id"), std::optional<std::string>(*task_id))
        << "event should carry correct task_id: " << msg.dump();
  }
}

// No owner-inbox lock exists here. The analogous guarantee: an exception thrown from
// an inbox-closed callback, and a body that throws, leave the owner inbox and the manager usable.
TEST(AwakenSeed, owner_inbox_lock_recovers_after_panicking_holder) {
  auto h = std::make_unique<Harness>();
  auto closed_calls = std::make_shared<std::size_t>(0);
  auto [tx, rx] = inbox_channel_with_fallback([closed_calls](const json&) {
    ++*closed_calls;
    throw std::runtime_error("panic in on_closed");
  });
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  h->manager->set_owner_inbox(tx);
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  register_plugin_keys(h->manager, *h->store);
  rx.close();

  // 1. The terminal event of this task hits the closed inbox: the callback throws.
  auto a = h->manager->spawn("thread-1", "test", std::nullopt, "callback throws", {},
                             [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success("a"); });
  ASSERT_TRUE(a.ok());
  try {
    h->run_for(10);
  } catch (...) {
    // Whether the exception crosses poll() is not pinned; what follows must hold either way.
  }
  EXPECT_GE(*closed_calls, 1u) << "the terminal event must have reached the closed inbox";
  // The completion commit comes before the terminal event, so it is recorded.
  auto a_sum = h->manager->get(*a);
  ASSERT_TRUE(a_sum.has_value());
  EXPECT_EQ(S(a_sum->status), S(TaskStatus::Completed));

  // 2. A body that throws.
  auto should_throw = std::make_shared<bool>(true);
  auto b = h->manager->spawn("thread-1", "test", std::nullopt, "body throws", {},
                             [should_throw](TaskContext) -> Co<TaskResult> {
                               if (*should_throw) throw std::runtime_error("panic in body");
                               co_return TaskResult::success("b");
                             });
  ASSERT_TRUE(b.ok());
  try {
    h->run_for(10);
  } catch (...) {
  }

  // 3. The owner inbox can be replaced and is reported present; the manager still works.
  auto [tx2, rx2] = inbox_channel();
  h->manager->set_owner_inbox(tx2);
  EXPECT_TRUE(h->manager->has_owner_inbox());
  auto c =
      h->manager->spawn("thread-1", "test", std::nullopt, "after the panics", {}, [](TaskContext) -> Co<TaskResult> {
        co_return TaskResult::success(json{{"ok", true}});
      });
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_NO_THROW(h->run_for(10));
  auto c_sum = h->manager->get(*c);
  ASSERT_TRUE(c_sum.has_value());
  EXPECT_EQ(S(c_sum->status), S(TaskStatus::Completed));
  auto msgs = rx2.drain();
  bool got = false;
  for (const auto& m : msgs) got |= str_field(m, "kind") == "completed" && str_field(m, "task_id") == *c;
  EXPECT_TRUE(got) << "the later task's completed event must arrive: " << json(msgs).dump();
}

TEST(AwakenSeed, events_do_not_change_task_result) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "pipeline", std::nullopt, "multi-step work", {},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                ctx.emit("step", json{{"n", 1}});
                                ctx.emit("step", json{{"n", 2}});
                                ctx.emit("step", json{{"n", 3}});
                                co_return TaskResult::success(json{{"final", "answer"}});
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(100);
  (void)h->drain();
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Completed));
  ASSERT_TRUE(task->result.has_value());
  EXPECT_EQ((*task->result)["final"], "answer");
}

TEST(AwakenSeed, rapid_sequential_emits_no_loss) {
  auto h = manager_with_store_and_inbox();
  auto id =
      h->manager->spawn("thread-1", "burst", std::nullopt, "rapid emitter", {}, [](TaskContext ctx) -> Co<TaskResult> {
        for (int i = 0; i < 100; ++i) ctx.emit("tick", json{{"n", i}});
        co_return TaskResult::success("done");
      });
  ASSERT_TRUE(id.ok());
  h->run_for(100);
  auto msgs = h->drain();
  const auto custom_count = count_kind(msgs, "custom");
  EXPECT_EQ(custom_count, 100u) << "all 100 emits must arrive, got " << custom_count;
}

TEST(AwakenSeed, cancel_during_emit_loop) {
  auto h = manager_with_store_and_inbox();
  auto id =
      h->manager->spawn("thread-1", "emitter", std::nullopt, "cancel me", {}, [](TaskContext ctx) -> Co<TaskResult> {
        for (int i = 0; i < 1000; ++i) {
          if (ctx.is_cancelled()) co_return TaskResult::cancelled();
          ctx.emit("tick", json{{"n", i}});
          co_await sleep_for(ctx.executor(), 1);
        }
        co_return TaskResult::success("finished");
      });
  ASSERT_TRUE(id.ok());
  h->run_for(20);
  h->manager->cancel(*id);
  h->run_for(50);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Cancelled));
  auto msgs = h->drain();
  EXPECT_TRUE(any_kind(msgs, "cancelled"));
  const auto tick_count = count_kind(msgs, "custom");
  EXPECT_TRUE(tick_count > 0 && tick_count < 1000) << "partial delivery: got " << tick_count;
}

TEST(AwakenSeed, emit_after_cancel_still_delivers) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "post-cancel emit", {},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                co_await ctx.cancelled();
                                ctx.emit("final_words", json{{"last", true}});
                                co_return TaskResult::cancelled();
                              });
  ASSERT_TRUE(id.ok());
  h->manager->cancel(*id);
  h->run_for(50);
  auto msgs = h->drain();
  bool found = false;
  for (const auto& m : msgs) found |= str_field(m, "event_type") == "final_words";
  EXPECT_TRUE(found) << "post-cancel emit should deliver if channel alive: " << json(msgs).dump();
}

TEST(AwakenSeed, terminal_event_contains_correct_data) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "compute", std::nullopt, "calc", {}, [](TaskContext) -> Co<TaskResult> {
    co_return TaskResult::success(json{{"score", 3.125}});
  });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto msgs = h->drain();
  const json* completed = nullptr;
  for (const auto& m : msgs)
    if (!completed && str_field(m, "kind") == "completed") completed = &m;
  ASSERT_NE(completed, nullptr) << "must have Completed event";
  EXPECT_EQ(str_field(*completed, "task_id"), std::optional<std::string>(*id));
  ASSERT_TRUE(completed->contains("result"));
  ASSERT_TRUE(completed->at("result").is_object());
  ASSERT_TRUE(completed->at("result").contains("score"));
  EXPECT_EQ(completed->at("result").at("score"), 3.125);
}

TEST(AwakenSeed, failed_terminal_event_contains_error) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "fail", {},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::failed("disk full"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto msgs = h->drain();
  const json* failed = nullptr;
  for (const auto& m : msgs)
    if (!failed && str_field(m, "kind") == "failed") failed = &m;
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(str_field(*failed, "error"), std::optional<std::string>("disk full"));
}

TEST(AwakenSeed, cancel_all_during_concurrent_emits) {
  auto h = manager_with_store_and_inbox();
  for (int i = 0; i < 5; ++i) {
    auto id = h->manager->spawn("thread-1", "worker", std::nullopt, "worker-" + std::to_string(i), {},
                                [i](TaskContext ctx) -> Co<TaskResult> {
                                  for (;;) {
                                    if (ctx.is_cancelled()) co_return TaskResult::cancelled();
                                    ctx.emit("heartbeat", json{{"worker", i}});
                                    co_await sleep_for(ctx.executor(), 5);
                                  }
                                });
    ASSERT_TRUE(id.ok());
  }
  h->run_for(30);
  EXPECT_EQ(h->manager->cancel_all("thread-1"), 5u);
  h->run_for(50);
  EXPECT_FALSE(h->manager->has_running("thread-1"));
  auto msgs = h->drain();
  EXPECT_EQ(count_kind(msgs, "cancelled"), 5u) << "each task should emit Cancelled";
}
