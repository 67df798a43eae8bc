// The C++ API's guard rails (docs/cpp-api.md): spawn options by name, Result's checked access and
// combinators, Errc as std::error_code, contexts kept past their task, ctx.spawn.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "bgtasks/bgtasks.hpp"

namespace {
using namespace bgtasks;

Co<TaskResult> done_at_once(TaskContext) { co_return TaskResult::success(7); }

Co<TaskResult> wait_cancel(TaskContext ctx) {
  co_await ctx.cancelled();
  co_return TaskResult::cancelled();
}

struct Fixture {
  ManualClock clock{1'000};
  Executor exec{clock};
  Runtime rt = make_runtime(exec);
  BackgroundTaskManager& m = *rt.manager;
};

std::vector<std::string> kinds(const std::vector<json>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.value("kind", std::string()) + ":" + e.value("task_id", std::string()));
  return out;
}

// ---- spawn options -------------------------------------------------------------------------------
TEST(SpawnOptionsByName, DesignatedInitialisersSpawn) {
  Fixture f;
  const TaskId a = f.m.spawn({.thread = "t1", .type = "shell", .description = "d"}, done_at_once).value();
  TaskParentContext run;
  run.run_id = "run-1";
  const TaskId b = f.m.spawn({.thread = "t1",
                              .type = "http",
                              .name = "fetch",
                              .description = "get",
                              .parent_context = run,
                              .timeout_ms = 500},
                             wait_cancel)
                       .value();
  const TaskId c = f.m.spawn_host({.thread = "t2", .type = "host", .description = "outside"}).value();
  const TaskId d = f.m.spawn_agent({.thread = "t2", .description = "agent"},
                                   [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> {
                                     co_return TaskResult::success(nullptr);
                                   })
                       .value();
  const auto sa = *f.m.get(a);
  EXPECT_EQ(sa.task_type, "shell");
  EXPECT_EQ(sa.description, "d");
  const auto sb = *f.m.get(b);
  EXPECT_EQ(sb.task_type, "http");
  EXPECT_EQ(sb.parent_context.run_id, "run-1");
  EXPECT_EQ(f.m.persisted_snapshot().tasks.at(b).name, "fetch");
  EXPECT_EQ(f.m.get(c)->task_type, "host");
  EXPECT_EQ(f.m.get(d)->task_type, "sub_agent");
  f.exec.run_until_idle();
  f.exec.advance(500);
  f.exec.run_until_idle();
  EXPECT_EQ(f.m.get(a)->status, TaskStatus::Completed);
  EXPECT_EQ(f.m.get(b)->status, TaskStatus::Failed);  // its deadline
  EXPECT_EQ(f.m.get(b)->error, "task timed out after 500 ms");
}

TEST(SpawnOptionsByName, FieldOrder) {
  // thread, type, name, description, parent_context, timeout_ms: positional aggregates keep working.
  SpawnOptions o{"t", "job", std::nullopt, "desc", {}, 5};
  EXPECT_EQ(o.thread, "t");
  EXPECT_EQ(o.type, "job");
  EXPECT_EQ(o.description, "desc");
  EXPECT_EQ(o.timeout_ms, 5u);
  SpawnOptions empty{};
  EXPECT_TRUE(empty.thread.empty());
  EXPECT_FALSE(empty.name.has_value());
  EXPECT_FALSE(empty.timeout_ms.has_value());
}

// ---- Result ----------------------------------------------------------------------------------------
Result<int> parse_digit(char c) {
  if (c < '0' || c > '9') return errors::invalid_argument(std::string("not a digit: ") + c);
  return c - '0';
}

TEST(ResultAccess, ValueOfAnErrorThrowsBadResultAccess) {
  Result<int> r = errors::task_not_found();
  try {
    (void)r.value();
    FAIL() << "value() of an error returned";
  } catch (const bad_result_access& e) {
    EXPECT_EQ(e.error().code, Errc::TaskNotFound);
    EXPECT_EQ(e.error().message, "task not found");
    EXPECT_STREQ(e.what(), "bgtasks: TaskNotFound: task not found");
  }
  EXPECT_THROW((void)*r, bad_result_access);
  EXPECT_THROW((void)std::move(r).value(), bad_result_access);
  const Result<std::string> s = errors::no_inbox();
  EXPECT_THROW((void)s->size(), bad_result_access);
  static_assert(std::is_base_of_v<std::exception, bad_result_access>);
}

TEST(ResultAccess, ErrorOfAValueThrows) {
  Result<int> r = 3;
  EXPECT_THROW((void)r.error(), bad_result_access);
  Result<void> ok;
  EXPECT_THROW((void)ok.error(), bad_result_access);
  EXPECT_NO_THROW(ok.value());
  Result<void> bad = errors::inbox_full();
  EXPECT_THROW(bad.value(), bad_result_access);
}

TEST(ResultAccess, ValueOr) {
  EXPECT_EQ(parse_digit('4').value_or(-1), 4);
  EXPECT_EQ(parse_digit('x').value_or(-1), -1);
  Result<std::string> s = errors::task_not_found();
  EXPECT_EQ(std::move(s).value_or("none"), "none");
}

TEST(ResultAccess, AndThenAndTransform) {
  auto twice = [](int v) -> Result<int> { return v * 2; };
  auto refuse = [](int) -> Result<int> { return errors::inbox_closed(); };
  EXPECT_EQ(parse_digit('4').and_then(twice).value(), 8);
  EXPECT_EQ(parse_digit('x').and_then(twice).error().code, Errc::InvalidArgument);
  EXPECT_EQ(parse_digit('4').and_then(refuse).error().code, Errc::InboxClosed);
  Result<std::string> text = parse_digit('5').transform([](int v) { return std::to_string(v) + "!"; });
  EXPECT_EQ(text.value(), "5!");
  EXPECT_EQ(parse_digit('?').transform([](int v) { return v + 1; }).error().message, "not a digit: ?");
  int seen = 0;
  Result<void> side = parse_digit('3').transform([&](int v) { seen = v; });
  EXPECT_TRUE(side.ok());
  EXPECT_EQ(seen, 3);
  // Moves the value out of an rvalue Result.
  Result<std::unique_ptr<int>> owned = std::make_unique<int>(9);
  Result<int> got = std::move(owned).transform([](std::unique_ptr<int> p) { return *p; });
  EXPECT_EQ(*got, 9);
  // Result<void> chains too.
  Result<void> fine;
  EXPECT_EQ(fine.and_then([] { return parse_digit('1'); }).value(), 1);
  EXPECT_EQ(fine.transform([] { return 2; }).value(), 2);
  Result<void> failed = errors::shutting_down();
  EXPECT_EQ(failed.and_then([] { return parse_digit('1'); }).error().code, Errc::ShuttingDown);
  EXPECT_EQ(failed.transform([] { return 2; }).error().code, Errc::ShuttingDown);
}

TEST(ResultAccess, ErrorCodes) {
  EXPECT_FALSE(parse_digit('1').error_code());
  EXPECT_FALSE(Result<void>().error_code());
  const std::error_code ec = parse_digit('x').error_code();
  EXPECT_TRUE(ec);
  EXPECT_EQ(ec, Errc::InvalidArgument);
  EXPECT_NE(ec, Errc::TaskNotFound);
  EXPECT_STREQ(ec.category().name(), "bgtasks");
  EXPECT_EQ(&ec.category(), &error_category());
  EXPECT_EQ(ec.message(), "InvalidArgument: invalid argument");
  std::error_code from_enum = Errc::Disposed;  // is_error_code_enum
  EXPECT_EQ(from_enum.value(), static_cast<int>(Errc::Disposed));
  EXPECT_EQ(make_error_code(Errc::ShuttingDown).message(), "ShuttingDown: the manager is shutting down");
  // Every code has its name in its message; one past the last is unknown.
  for (int c = 0; c <= static_cast<int>(Errc::ShuttingDown); ++c) {
    const auto code = static_cast<Errc>(c);
    EXPECT_EQ(make_error_code(code).message().rfind(errc_name(code), 0), 0u) << c;
  }
  EXPECT_EQ(error_category().message(static_cast<int>(Errc::ShuttingDown) + 1), "unknown bgtasks error");
  EXPECT_EQ(errors::executor_gone().code, Errc::Disposed);
}

// ---- contexts --------------------------------------------------------------------------------------
TEST(KeptContext, EmitsNothingAfterItsTaskEnded) {
  Fixture f;
  std::optional<TaskContext> kept;
  const TaskId id = f.m.spawn({.thread = "t1", .type = "job", .description = "d"},
                              [&kept](TaskContext ctx) -> Co<TaskResult> {
                                kept = ctx;
                                EXPECT_TRUE(ctx.emit("progress", 1));
                                co_return TaskResult::success(nullptr);
                              })
                        .value();
  f.exec.run_until_idle();
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(f.m.get(id)->status, TaskStatus::Completed);
  EXPECT_FALSE(kept->emit("late", 2));
  EXPECT_FALSE(f.m.emit(id, "late", 3));
  EXPECT_EQ(kinds(f.rt.events.drain()), (std::vector<std::string>{"custom:" + id, "completed:" + id}));
  // Also once the manager forgot the task, and once the manager is gone.
  EXPECT_TRUE(f.m.forget(id));
  EXPECT_FALSE(kept->emit("later", 4));
  f.rt.manager.reset();
  f.rt.plugin.reset();
  f.rt.cancel_tool.reset();
  EXPECT_FALSE(kept->emit("latest", 5));
  EXPECT_TRUE(f.rt.events.drain().empty());
}

TEST(KeptContext, ForcedEndStopsItsEvents) {
  Fixture f;
  std::optional<TaskContext> kept;
  const TaskId id = f.m.spawn({.thread = "t1", .type = "job", .description = "d", .timeout_ms = 10},
                              [&kept](TaskContext ctx) -> Co<TaskResult> {
                                kept = ctx;
                                bool slept = co_await ctx.sleep(1'000);  // cut short by the forced end's cancel
                                EXPECT_FALSE(slept);
                                EXPECT_FALSE(ctx.emit("after", 1));  // its task has ended
                                co_return TaskResult::success(nullptr);
                              })
                        .value();
  f.exec.run_until_idle();
  f.exec.advance(10);
  f.exec.run_until_idle();
  EXPECT_EQ(f.m.get(id)->status, TaskStatus::Failed);
  EXPECT_FALSE(kept->emit("late", 2));
  f.exec.advance(1'000);
  f.exec.run_until_idle();
  EXPECT_EQ(kinds(f.rt.events.drain()), (std::vector<std::string>{"failed:" + id}));
}

// ---- ctx.spawn -----------------------------------------------------------------------------------
TEST(ContextSpawn, ChildInTheSameThreadUnderItsParent) {
  Fixture f;
  std::vector<TaskId> children;
  const TaskId parent =
      f.m.spawn({.thread = "t7", .type = "parent", .description = "p"},
                [&children](TaskContext ctx) -> Co<TaskResult> {
                  auto a = ctx.spawn({.type = "shell", .name = "kid", .description = "child"}, done_at_once);
                  EXPECT_TRUE(a.ok());
                  if (a) children.push_back(*a);
                  auto b = ctx.spawn_agent({.description = "helper"}, [](AgentTaskContext actx) -> Co<TaskResult> {
                    co_return TaskResult::success(actx.task_id());
                  });
                  EXPECT_TRUE(b.ok());
                  if (b) children.push_back(*b);
                  // A running child's name is taken in this thread.
                  auto dup = ctx.spawn({.type = "shell", .name = "kid"}, done_at_once);
                  EXPECT_EQ(dup.error_code(), Errc::DuplicateName);
                  co_await ctx.cancelled();
                  co_return TaskResult::cancelled();
                })
          .value();
  f.exec.run_until_idle();
  ASSERT_EQ(children.size(), 2u);
  for (const auto& c : children) {
    const auto s = *f.m.get(c);
    EXPECT_EQ(s.parent_context.task_id, parent) << c;
    EXPECT_EQ(s.status, TaskStatus::Completed) << c;
  }
  EXPECT_EQ(f.m.get(children[0])->task_type, "shell");
  EXPECT_EQ(f.m.get(children[1])->task_type, "sub_agent");
  EXPECT_EQ(f.m.list("t7").size(), 3u);
  // A child of a child, from a kept context outside any step.
  std::optional<TaskContext> kept;
  const TaskId holder = f.m.spawn({.thread = "t8", .type = "holder"},
                                  [&kept](TaskContext ctx) -> Co<TaskResult> {
                                    kept = ctx;
                                    co_await ctx.cancelled();
                                    co_return TaskResult::cancelled();
                                  })
                            .value();
  f.exec.run_until_idle();
  const TaskId grandchild = kept->spawn({.type = "late", .timeout_ms = 5}, wait_cancel).value();
  EXPECT_EQ(f.m.get(grandchild)->parent_context.task_id, holder);
  f.exec.run_until_idle();
  f.exec.advance(5);
  f.exec.run_until_idle();
  EXPECT_EQ(f.m.get(grandchild)->status, TaskStatus::Failed);  // its deadline
  // cancel_tree reaches the children through the lineage ctx.spawn wrote.
  EXPECT_EQ(f.m.cancel_tree(holder), 1u);
  f.exec.run_until_idle();
  EXPECT_EQ(f.m.get(holder)->status, TaskStatus::Cancelled);
  // The task ended: its kept context spawns nothing.
  auto late = kept->spawn({.type = "late"}, done_at_once);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, Errc::TaskTerminated);
}

TEST(ContextSpawn, RefusalsOfTheManagerPassThrough) {
  Fixture f;
  std::optional<TaskContext> kept;
  f.m.spawn({.thread = "t1", .type = "p"},
            [&kept](TaskContext ctx) -> Co<TaskResult> {
              kept = ctx;
              co_await ctx.cancelled();
              co_return TaskResult::cancelled();
            })
      .value();
  f.exec.run_until_idle();
  auto reserved = kept->spawn({.type = "c", .name = "self"}, done_at_once);
  EXPECT_EQ(reserved.error_code(), Errc::ReservedName);
  f.m.begin_shutdown();
  // Still live: a shutdown ends tasks once their bodies return.
  auto refused = kept->spawn({.type = "c"}, done_at_once);
  EXPECT_EQ(refused.error_code(), Errc::ShuttingDown);
  f.exec.run_until_idle();
}

}  // namespace
