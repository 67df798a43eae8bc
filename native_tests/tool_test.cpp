// The cancel_task tool, compared with awaken's CancelTaskTool and its tool executor: argument
// errors and their text, the scope (current task, else a cancellable run with a non-blank id),
// each relation's receipt, and the run's own cancellation token.
#include <gtest/gtest.h>

#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "support.hpp"

namespace {

using namespace bgtasks;
using bgtasks::testing::child_of;
using bgtasks::testing::finish_at_once;
using bgtasks::testing::Harness;
using bgtasks::testing::manager_with_store;
using bgtasks::testing::of_run;
using bgtasks::testing::spawn_waiting;
using bgtasks::testing::wait_cancelled;

// awaken's test context: thread-1, run-1, agent, call-1, with a run cancellation token.
ToolCallContext call_context(std::string run_id = "run-1",
                             std::optional<CancellationToken> token = CancellationToken()) {
  return ToolCallContext{"call-1", RunIdentity{"thread-1", std::move(run_id), "agent"}, std::move(token)};
}

const json kSelf = {{"target", {{"relation", "self"}}}};
json child_named(std::string_view name) { return {{"target", {{"relation", "child"}, {"name", name}}}}; }

// execute() without the executor's validation; the receipt of a success, else fails the test.
json receipt_of(const std::variant<ToolResult, ToolError>& out) {
  if (const auto* e = std::get_if<ToolError>(&out)) {
    ADD_FAILURE() << "tool error: " << e->to_string();
    return nullptr;
  }
  const auto& r = std::get<ToolResult>(out);
  EXPECT_EQ(r.tool_name, "cancel_task");
  EXPECT_EQ(r.status, "success");
  EXPECT_FALSE(r.message.has_value());
  return r.data;
}

json accepted(std::string_view root, std::size_t count) {
  return {{"status", "accepted"}, {"root_task_id", root}, {"cancelled_count", count}};
}
json not_found(std::string_view root) {
  return {{"status", "failed"}, {"root_task_id", root}, {"cancelled_count", 0}, {"error", "task_not_found"}};
}

TaskStatus status_of(Harness& h, const TaskId& id) {
  auto s = h.manager->get(id);
  EXPECT_TRUE(s.has_value()) << id;
  return s ? s->status : TaskStatus::Running;
}

// ============================================================================ descriptor and arguments

TEST(CancelTaskTool, DescriptorIsAwakensNameDescriptionAndParameters) {
  auto h = manager_with_store();
  const auto d = CancelTaskTool(h->manager).descriptor();
  EXPECT_EQ(d.id, "cancel_task");
  EXPECT_EQ(d.name, "cancel_task");
  EXPECT_EQ(d.description,
            "Cancel the current background task or one of its child tasks. Descendant tasks are cancelled together.");
  EXPECT_EQ(d.parameters, json::parse(R"({"type":"object","properties":{"target":{"oneOf":[
    {"type":"object","properties":{"relation":{"const":"self"}},"required":["relation"]},
    {"type":"object","properties":{"relation":{"const":"child"},"name":{"type":"string","description":"Direct child task name or task_id"}},"required":["relation","name"]}
  ]}},"required":["target"]})"));
}

TEST(CancelTaskTool, ValidateArgsGivesAwakensMessageForEachMalformedArgument) {
  auto h = manager_with_store();
  CancelTaskTool tool(h->manager);
  struct Case {
    json args;
    std::optional<std::string> error;
  };
  const Case cases[] = {
      {json::object(), "missing 'target'"},
      {nullptr, "missing 'target'"},  // serde's Value::get on a non-object: None
      {json::array({kSelf}), "missing 'target'"},
      {json("self"), "missing 'target'"},
      {{{"Target", {{"relation", "self"}}}}, "missing 'target'"},  // keys are case-sensitive
      {{{"target", nullptr}}, "missing 'target.relation'"},        // present but null: the relation is missing
      {{{"target", "self"}}, "missing 'target.relation'"},
      {{{"target", json::object()}}, "missing 'target.relation'"},
      {{{"target", {{"relation", 1}}}}, "missing 'target.relation'"},
      {{{"target", {{"relation", nullptr}}}}, "missing 'target.relation'"},
      {{{"target", {{"relation", "child"}}}}, "child requires 'name'"},
      {{{"target", {{"relation", "child"}, {"name", 7}}}}, "child requires 'name'"},
      {{{"target", {{"relation", "child"}, {"name", nullptr}}}}, "child requires 'name'"},
      {{{"target", {{"relation", "parent"}}}}, "unknown relation 'parent'"},
      {{{"target", {{"relation", "Self"}}}}, "unknown relation 'Self'"},
      {{{"target", {{"relation", ""}}}}, "unknown relation ''"},
      {kSelf, std::nullopt},
      {{{"target", {{"relation", "self"}, {"name", 7}}}}, std::nullopt},  // self ignores other fields
      {child_named(""), std::nullopt},
      {child_named("worker"), std::nullopt},
  };
  for (const auto& c : cases) {
    auto e = tool.validate_args(c.args);
    if (!c.error) {
      EXPECT_FALSE(e.has_value()) << c.args.dump() << " -> " << e->detail;
      continue;
    }
    ASSERT_TRUE(e.has_value()) << c.args.dump();
    EXPECT_EQ(e->kind, ToolError::Kind::InvalidArguments) << c.args.dump();
    EXPECT_EQ(e->detail, *c.error) << c.args.dump();
    EXPECT_EQ(e->to_string(), "Invalid arguments: " + *c.error);
  }
}

TEST(CancelTaskTool, ExecutorTurnsInvalidArgumentsIntoAnErrorResultAndCancelsNothing) {
  auto h = manager_with_store();
  auto id = spawn_waiting(*h, "worker", of_run("run-1"));
  h->run_until_idle();
  CancelTaskTool tool(h->manager);
  auto ctx = call_context();
  const auto r = execute_tool(tool, {{"target", {{"relation", "child"}}}}, ctx);
  EXPECT_EQ(
      r.to_json().dump(),
      R"({"data":null,"message":"Invalid arguments: child requires 'name'","status":"error","tool_name":"cancel_task"})");
  EXPECT_FALSE(ctx.cancellation_token->is_cancelled());
  EXPECT_FALSE(h->manager->is_cancel_requested(id));
}

TEST(CancelTaskTool, ExecuteWithoutValidationAnswersAnyOtherRelationUnknownCancellationRelation) {
  // awaken's execute reads the relation with unwrap_or_default: a missing one is "".
  auto h = manager_with_store();
  auto tool = CancelTaskTool::with_current_task(h->manager, "bg_0");
  for (const json& args : {json{{"target", {{"relation", "parent"}}}}, json{{"target", {{"relation", 3}}}},
                           json::object(), json(nullptr)}) {
    auto ctx = call_context();
    auto out = tool.execute(args, ctx);
    ASSERT_TRUE(std::holds_alternative<ToolError>(out)) << args.dump();
    EXPECT_EQ(std::get<ToolError>(out).kind, ToolError::Kind::InvalidArguments);
    EXPECT_EQ(std::get<ToolError>(out).to_string(), "Invalid arguments: unknown cancellation relation");
    EXPECT_FALSE(ctx.cancellation_token->is_cancelled()) << args.dump();
  }
}

// ============================================================================ no scope

TEST(CancelTaskTool, WithoutTaskOrCancellableRunSelfAndChildFailCurrentTaskUnavailable) {
  auto h = manager_with_store();
  spawn_waiting(*h, "worker", of_run("run-1"));
  h->run_until_idle();
  CancelTaskTool tool(h->manager);
  // A run id without a token, and a token with a blank run id, give no scope.
  const ToolCallContext contexts[] = {call_context("run-1", std::nullopt), call_context(""),
                                      call_context(" \t\r\n\v\f")};
  for (const auto& ctx : contexts) {
    for (const json& args : {kSelf, child_named("worker")}) {
      auto out = tool.execute(args, ctx);
      ASSERT_TRUE(std::holds_alternative<ToolError>(out)) << args.dump() << " run '" << ctx.run_identity.run_id << "'";
      EXPECT_EQ(std::get<ToolError>(out).kind, ToolError::Kind::ExecutionFailed);
      EXPECT_EQ(std::get<ToolError>(out).to_string(), "Execution failed: current_task_unavailable");
      const auto r = execute_tool(tool, args, ctx);
      EXPECT_EQ(r.to_json(), (json{{"tool_name", "cancel_task"},
                                   {"status", "error"},
                                   {"data", nullptr},
                                   {"message", "Execution failed: current_task_unavailable"}}));
      if (ctx.cancellation_token) {
        EXPECT_FALSE(ctx.cancellation_token->is_cancelled()) << "no scope, no cancel";
      }
    }
  }
  EXPECT_EQ(h->manager->stats().cancel_requested_running, 0u);
}

TEST(CancelTaskTool, RunIdOfUnicodeWhiteSpaceOnlyIsBlankAsRustsTrimSeesIt) {
  // Rust's str::trim drops every White_Space code point, not only ASCII ones.
  auto h = manager_with_store();
  CancelTaskTool tool(h->manager);
  for (const char* blank :
       {"\u00a0", "\u0085", "\u1680", "\u2000\u200a", "\u2028\u2029", "\u202f \u205f", "\t\u3000\n"}) {
    auto ctx = call_context(blank);
    auto out = tool.execute(kSelf, ctx);
    ASSERT_TRUE(std::holds_alternative<ToolError>(out)) << "run id bytes: " << json(blank).dump();
    EXPECT_EQ(std::get<ToolError>(out).to_string(), "Execution failed: current_task_unavailable");
    EXPECT_FALSE(ctx.cancellation_token->is_cancelled());
  }
  // Not White_Space: a zero-width space, a byte order mark, an ASCII unit separator. These are runs.
  for (const char* run : {"\u200b", "\ufeff", "\x1f", "\u180e"}) {
    auto ctx = call_context(run);
    EXPECT_EQ(receipt_of(tool.execute(kSelf, ctx)), accepted(run, 1)) << json(run).dump();
    EXPECT_TRUE(ctx.cancellation_token->is_cancelled());
  }
}

TEST(CancelTaskTool, TrimWhiteSpaceDropsEveryWhiteSpaceCodePointAtBothEndsOnly) {
  const char32_t white_space[] = {0x09,   0x0A,   0x0B,   0x0C,   0x0D,   0x20,   0x85,   0xA0,   0x1680,
                                  0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
                                  0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  const auto utf8 = [](char32_t c) {
    std::string out;
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
    return out;
  };
  for (char32_t c : white_space) {
    const std::string ws = utf8(c);
    EXPECT_EQ(trim_white_space(ws), "") << std::hex << static_cast<unsigned>(c);
    EXPECT_EQ(trim_white_space(ws + "a" + ws + "b" + ws), "a" + ws + "b") << std::hex << static_cast<unsigned>(c);
  }
  // Every other code point below U+3001 is kept (U+0000 to U+3000, each alone).
  std::size_t kept = 0;
  for (char32_t c = 0; c <= 0x3000; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    const std::string s = utf8(c);
    if (trim_white_space(s) == s) ++kept;
  }
  EXPECT_EQ(kept, 0x3001u - std::size(white_space));
  EXPECT_EQ(trim_white_space(""), "");
  EXPECT_EQ(trim_white_space("run-1"), "run-1");
  EXPECT_EQ(trim_white_space("\u00a0 run-1\u3000"), "run-1");
  EXPECT_EQ(trim_white_space("\xF0\x9F\x98\x80\u2003"), "\xF0\x9F\x98\x80");  // a 4-byte code point
  // Bytes that are not valid UTF-8 are not white space, whatever they would decode to.
  EXPECT_EQ(trim_white_space("\xC0\xA0"), "\xC0\xA0");          // overlong U+0020
  EXPECT_EQ(trim_white_space("\xE0\x82\xA0"), "\xE0\x82\xA0");  // overlong U+00A0
  EXPECT_EQ(trim_white_space(" \xC2"), "\xC2");                 // truncated U+00A0
  EXPECT_EQ(trim_white_space("\xA0 "), "\xA0");                 // a stray continuation byte
  EXPECT_EQ(trim_white_space("\xE3\x80"), "\xE3\x80");          // truncated U+3000
  EXPECT_EQ(trim_white_space(std::string_view("\0 ", 2)), std::string_view("\0", 1));
}

// ============================================================================ self, task scope

TEST(CancelTaskTool, SelfInTaskScopeCancelsTheTreeAndCountsEveryLiveTask) {
  auto h = manager_with_store();
  auto root = spawn_waiting(*h, "root-task", {});
  auto child = spawn_waiting(*h, "child", child_of(root));
  auto grandchild = spawn_waiting(*h, "grandchild", child_of(child));
  auto other = spawn_waiting(*h, "other", {});
  h->run_until_idle();
  auto tool = CancelTaskTool::with_current_task(h->manager, root);
  auto ctx = call_context();
  const auto r = execute_tool(tool, kSelf, ctx);
  EXPECT_EQ(r.to_json().dump(),
            R"({"data":{"cancelled_count":3,"root_task_id":")" + root +
                R"(","status":"accepted"},"message":null,"status":"success","tool_name":"cancel_task"})");
  EXPECT_TRUE(ctx.cancellation_token->is_cancelled()) << "awaken cancels the call's token in task scope too";
  h->run_until_idle();
  for (const auto& id : {root, child, grandchild}) EXPECT_EQ(status_of(*h, id), TaskStatus::Cancelled) << id;
  EXPECT_EQ(status_of(*h, other), TaskStatus::Running);
}

TEST(CancelTaskTool, SelfInTaskScopeWithoutTokenStillCancelsTheTree) {
  auto h = manager_with_store();
  auto root = spawn_waiting(*h, std::nullopt, {});
  auto child = spawn_waiting(*h, std::nullopt, child_of(root));
  h->run_until_idle();
  auto tool = CancelTaskTool::with_current_task(h->manager, root);
  EXPECT_EQ(receipt_of(tool.execute(kSelf, call_context("", std::nullopt))), accepted(root, 2));
  h->run_until_idle();
  EXPECT_EQ(status_of(*h, child), TaskStatus::Cancelled);
}

TEST(CancelTaskTool, SelfOnAFinishedTaskWithoutLiveDescendantsIsAFailedReceiptThatStillCancelsTheToken) {
  auto h = manager_with_store();
  auto done = h->manager->spawn("thread-1", "worker", std::nullopt, "ends", {}, finish_at_once);
  ASSERT_TRUE(done.ok());
  h->run_until_idle();
  auto tool = CancelTaskTool::with_current_task(h->manager, *done);
  auto ctx = call_context();
  EXPECT_EQ(receipt_of(tool.execute(kSelf, ctx)), not_found(*done));
  EXPECT_TRUE(ctx.cancellation_token->is_cancelled());
  // An id the store never saw: the same receipt.
  auto unknown = CancelTaskTool::with_current_task(h->manager, "bg_404");
  EXPECT_EQ(receipt_of(unknown.execute(kSelf, call_context())), not_found("bg_404"));
}

TEST(CancelTaskTool, CurrentTaskWinsOverACancellableRun) {
  auto h = manager_with_store();
  auto run_child = spawn_waiting(*h, "run-child", of_run("run-1"));
  auto task = spawn_waiting(*h, "task", {});
  h->run_until_idle();
  auto tool = CancelTaskTool::with_current_task(h->manager, task);
  auto ctx = call_context("run-1");
  EXPECT_EQ(receipt_of(tool.execute(kSelf, ctx)), accepted(task, 1)) << "no +1 for the run in task scope";
  EXPECT_TRUE(ctx.cancellation_token->is_cancelled());
  EXPECT_FALSE(h->manager->is_cancel_requested(run_child)) << "the run's descendants are not the task's";
}

TEST(CancelTaskTool, InsideABodyTheAmbientTaskIsTheScope) {
  auto h = manager_with_store();
  auto out = std::make_shared<std::optional<ToolResult>>();
  auto tool = std::make_shared<CancelTaskTool>(h->manager);
  auto body = h->manager->spawn("thread-1", "worker", "self-canceller", "cancels itself", {},
                                [tool, out](TaskContext ctx) -> Co<TaskResult> {
                                  *out = execute_tool(*tool, kSelf, call_context("run-1", std::nullopt));
                                  co_await ctx.cancelled();
                                  co_return TaskResult::cancelled();
                                });
  ASSERT_TRUE(body.ok());
  auto child = spawn_waiting(*h, "child", child_of(*body));
  h->run_until_idle();
  ASSERT_TRUE(out->has_value());
  EXPECT_EQ((*out)->data, accepted(*body, 2));
  EXPECT_EQ(status_of(*h, *body), TaskStatus::Cancelled);
  EXPECT_EQ(status_of(*h, child), TaskStatus::Cancelled);
}

// ============================================================================ self, run scope

TEST(CancelTaskTool, SelfInRunScopeCountsTheRunsDescendantsPlusTheRunAndCancelsItsToken) {
  auto h = manager_with_store();
  auto a = spawn_waiting(*h, "a", of_run("run-1"));
  auto a_child = spawn_waiting(*h, "a-child", child_of(a));
  auto b = spawn_waiting(*h, "b", of_run("run-1"), "thread-2");  // runs' roots are found across threads
  auto other_run = spawn_waiting(*h, "c", of_run("run-2"));
  h->run_until_idle();
  CancelTaskTool tool(h->manager);
  auto ctx = call_context("run-1");
  ASSERT_FALSE(ctx.cancellation_token->is_cancelled());
  EXPECT_EQ(execute_tool(tool, kSelf, ctx).data, accepted("run-1", 3 + 1));
  EXPECT_TRUE(ctx.cancellation_token->is_cancelled());
  h->run_until_idle();
  for (const auto& id : {a, a_child, b}) EXPECT_EQ(status_of(*h, id), TaskStatus::Cancelled) << id;
  EXPECT_EQ(status_of(*h, other_run), TaskStatus::Running);
}

TEST(CancelTaskTool, SelfInRunScopeWithNoDescendantsIsAcceptedWithCountOneForTheRun) {
  auto h = manager_with_store();
  CancelTaskTool tool(h->manager);
  auto ctx = call_context("run-1");
  EXPECT_EQ(receipt_of(tool.execute(kSelf, ctx)), accepted("run-1", 1));
  EXPECT_TRUE(ctx.cancellation_token->is_cancelled());
  // Again, once everything is cancelled: still the run's own 1 (the token is present).
  EXPECT_EQ(receipt_of(tool.execute(kSelf, ctx)), accepted("run-1", 1));
}

TEST(CancelTaskTool, SelfInRunScopeWakesABodyWaitingOnTheRunsToken) {
  auto h = manager_with_store();
  auto [handle, run_token] = CancellationToken::new_pair();
  auto woke = std::make_shared<bool>(false);
  auto waiter = h->manager->spawn("thread-1", "watcher", std::nullopt, "waits on the run's token", {},
                                  [token = run_token, woke](TaskContext) -> Co<TaskResult> {
                                    co_await token.cancelled();
                                    *woke = true;
                                    co_return TaskResult::success(nullptr);
                                  });
  ASSERT_TRUE(waiter.ok());
  h->run_until_idle();
  ASSERT_FALSE(*woke);
  CancelTaskTool tool(h->manager);
  EXPECT_EQ(receipt_of(tool.execute(kSelf, call_context("run-1", run_token))), accepted("run-1", 1));
  EXPECT_TRUE(handle.is_cancelled());
  h->run_until_idle();
  EXPECT_TRUE(*woke);
  EXPECT_EQ(status_of(*h, *waiter), TaskStatus::Completed);
}

TEST(CancelTaskTool, RunScopeKeepsTheRunIdUntrimmed) {
  // awaken trims only to decide whether there is a run; the root and the match use the id as given.
  auto h = manager_with_store();
  auto padded = spawn_waiting(*h, "padded", of_run(" run-1\u00a0"));
  auto plain = spawn_waiting(*h, "plain", of_run("run-1"));
  h->run_until_idle();
  CancelTaskTool tool(h->manager);
  EXPECT_EQ(receipt_of(tool.execute(kSelf, call_context(" run-1\u00a0"))), accepted(" run-1\u00a0", 2));
  EXPECT_TRUE(h->manager->is_cancel_requested(padded));
  EXPECT_FALSE(h->manager->is_cancel_requested(plain));
}

// ============================================================================ child

TEST(CancelTaskTool, ChildInTaskScopeResolvesADirectLiveChildByNameOrIdAndCancelsItsTree) {
  auto h = manager_with_store();
  auto parent = spawn_waiting(*h, "parent-task", {});
  auto worker = spawn_waiting(*h, "worker", child_of(parent));
  auto worker_child = spawn_waiting(*h, "helper", child_of(worker));
  auto sibling = spawn_waiting(*h, "sibling", child_of(parent));
  h->run_until_idle();
  auto tool = CancelTaskTool::with_current_task(h->manager, parent);
  auto ctx = call_context();
  EXPECT_EQ(receipt_of(tool.execute(child_named("worker"), ctx)), accepted(worker, 2));
  EXPECT_FALSE(ctx.cancellation_token->is_cancelled()) << "only self cancels the call's token";
  EXPECT_EQ(receipt_of(tool.execute(child_named(sibling), ctx)), accepted(sibling, 1)) << "by task id";
  h->run_until_idle();
  for (const auto& id : {worker, worker_child, sibling}) EXPECT_EQ(status_of(*h, id), TaskStatus::Cancelled) << id;
  EXPECT_EQ(status_of(*h, parent), TaskStatus::Running);
}

TEST(CancelTaskTool, ChildThatIsNotADirectLiveChildIsTaskNotFoundWithTheNameAsRoot) {
  auto h = manager_with_store();
  auto parent = spawn_waiting(*h, "parent-task", {});
  auto worker = spawn_waiting(*h, "worker", child_of(parent));
  spawn_waiting(*h, "grandchild", child_of(worker));
  auto done = h->manager->spawn("thread-1", "worker", "finished", "ends", child_of(parent), finish_at_once);
  ASSERT_TRUE(done.ok());
  h->run_until_idle();
  auto tool = CancelTaskTool::with_current_task(h->manager, parent);
  for (const std::string& name : std::vector<std::string>{"grandchild", "finished", *done, "nobody", "", "Worker"}) {
    const auto r = execute_tool(tool, child_named(name), call_context());
    EXPECT_EQ(r.to_json().dump(),
              R"({"data":{"cancelled_count":0,"error":"task_not_found","root_task_id":")" + name +
                  R"(","status":"failed"},"message":null,"status":"success","tool_name":"cancel_task"})");
  }
  EXPECT_EQ(h->manager->stats().cancel_requested_running, 0u);
}

TEST(CancelTaskTool, ChildInRunScopeResolvesOnlyTheRunsRootTasks) {
  auto h = manager_with_store();
  auto root = spawn_waiting(*h, "scout", of_run("run-1"));
  TaskParentContext nested = child_of(root);
  nested.run_id = "run-1";  // has the run, but a parent task too: not one of the run's children
  spawn_waiting(*h, "nested", std::move(nested));
  spawn_waiting(*h, "elsewhere", of_run("run-2"));
  h->run_until_idle();
  CancelTaskTool tool(h->manager);
  auto ctx = call_context("run-1");
  EXPECT_EQ(receipt_of(tool.execute(child_named("nested"), ctx)), not_found("nested"));
  EXPECT_EQ(receipt_of(tool.execute(child_named("elsewhere"), ctx)), not_found("elsewhere"));
  EXPECT_EQ(receipt_of(tool.execute(child_named("scout"), ctx)), accepted(root, 2));
  EXPECT_FALSE(ctx.cancellation_token->is_cancelled()) << "cancelling a child leaves the run going";
}

}  // namespace
