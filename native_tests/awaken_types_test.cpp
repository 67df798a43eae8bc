// awaken's tests of the plain types: TaskStatus, TaskResult, TaskSummary, PersistedTaskMeta
// and TaskParentContext, their JSON round-trips, and the cancellation token.
//
// These are awaken's tests by name: each is TEST(AwakenSeed, <awaken's test name>), its body a
// translation of awaken's (awaken_seed_support.hpp lists the translations common to all);
// docs/awaken-differences.md explains where bgtasks and awaken differ.

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>

#include "awaken_seed_support.hpp"

namespace {
using namespace bgtasks;
using namespace bgtasks::testing;
}  // namespace

TEST(AwakenSeed, task_status_terminal_check) {
  EXPECT_FALSE(is_terminal(TaskStatus::Running));
  EXPECT_TRUE(is_terminal(TaskStatus::Completed));
  EXPECT_TRUE(is_terminal(TaskStatus::Failed));
  EXPECT_TRUE(is_terminal(TaskStatus::Cancelled));
}

TEST(AwakenSeed, task_status_as_str) {
  EXPECT_STREQ(as_str(TaskStatus::Running), "running");
  EXPECT_STREQ(as_str(TaskStatus::Completed), "completed");
  EXPECT_STREQ(as_str(TaskStatus::Failed), "failed");
  EXPECT_STREQ(as_str(TaskStatus::Cancelled), "cancelled");
}

TEST(AwakenSeed, task_result_status) {
  EXPECT_EQ(TaskResult::success(nullptr).status(), TaskStatus::Completed);
  EXPECT_EQ(TaskResult::failed("err").status(), TaskStatus::Failed);
  EXPECT_EQ(TaskResult::cancelled().status(), TaskStatus::Cancelled);
}

TEST(AwakenSeed, persisted_task_meta_from_summary) {
  TaskSummary summary;
  summary.task_id = "bg_0";
  summary.task_type = "shell";
  summary.description = "build project";
  summary.status = TaskStatus::Completed;
  summary.result = json{{"ok", true}};
  summary.created_at_ms = 1000;
  summary.completed_at_ms = 2000;

  auto meta = PersistedTaskMeta::from_summary(summary, "thread-1");
  EXPECT_EQ(meta.task_id, "bg_0");
  EXPECT_EQ(meta.owner_thread_id, "thread-1");
  EXPECT_EQ(meta.task_type, "shell");
  EXPECT_EQ(meta.status, TaskStatus::Completed);
  EXPECT_EQ(meta.completed_at_ms, std::optional<std::uint64_t>(2000));
  EXPECT_EQ(meta.result, std::optional<json>(json{{"ok", true}}));
}

TEST(AwakenSeed, persisted_task_meta_serde_roundtrip) {
  auto meta = meta_of("bg_1", "t", "http", "fetch data", TaskStatus::Failed, 100, 200);
  meta.error = "timeout";

  const std::string text = dump(to_json(meta));
  auto decoded = meta_from_json(json::parse(text));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded.value(), meta);
}

TEST(AwakenSeed, cancellation_token_check) {
  auto [handle, token] = CancellationToken::new_pair();
  EXPECT_FALSE(token.is_cancelled());
  handle.cancel();
  EXPECT_TRUE(token.is_cancelled());
}

TEST(AwakenSeed, task_summary_serde_roundtrip) {
  TaskSummary summary;
  summary.task_id = "bg_42";
  summary.task_type = "http";
  summary.description = "fetch API data";
  summary.status = TaskStatus::Failed;
  summary.error = "connection refused";
  summary.created_at_ms = 1000;
  summary.completed_at_ms = 2000;

  const std::string text = dump(to_json(summary));
  auto decoded = summary_from_json(json::parse(text));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->task_id, "bg_42");
  EXPECT_EQ(decoded->status, TaskStatus::Failed);
  EXPECT_EQ(decoded->error, std::optional<std::string>("connection refused"));
  EXPECT_FALSE(decoded->result.has_value());
  EXPECT_EQ(decoded->completed_at_ms, std::optional<std::uint64_t>(2000));
}

TEST(AwakenSeed, persisted_task_meta_with_parent_context_serde_roundtrip) {
  auto meta = meta_of("bg_99", "t", "delegation", "delegated work", TaskStatus::Completed, 500, 600);
  meta.parent_context.run_id = "run-123";
  meta.parent_context.agent_id = "agent-a";

  const std::string text = dump(to_json(meta));
  auto decoded = meta_from_json(json::parse(text));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded.value(), meta);
  EXPECT_EQ(decoded->parent_context.run_id, std::optional<std::string>("run-123"));
  EXPECT_FALSE(decoded->parent_context.call_id.has_value());
  EXPECT_EQ(decoded->parent_context.agent_id, std::optional<std::string>("agent-a"));
}

TEST(AwakenSeed, persisted_task_meta_without_parent_context_deserializes_default) {
  const char* text = R"({
    "task_id": "bg_old",
    "task_type": "shell",
    "description": "legacy task",
    "status": "completed",
    "created_at_ms": 100,
    "completed_at_ms": 200
  })";
  auto decoded = meta_from_json(json::parse(text));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->task_id, "bg_old");
  EXPECT_TRUE(decoded->parent_context.is_empty());
  EXPECT_FALSE(decoded->result.has_value());
}

TEST(AwakenSeed, persisted_task_meta_result_field_roundtrip) {
  auto meta = meta_of("bg_r", "t", "shell", "result test", TaskStatus::Completed, 100, 200);
  meta.result = json{{"output", "built ok"}, {"lines", 42}};

  const std::string text = dump(to_json(meta));
  EXPECT_NE(text.find("\"result\""), std::string::npos) << text;
  auto decoded = meta_from_json(json::parse(text));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  ASSERT_TRUE(decoded->result.has_value());
  EXPECT_EQ(decoded->result->at("output"), "built ok");
  EXPECT_EQ(decoded->result->at("lines"), 42);
}

TEST(AwakenSeed, persisted_task_meta_result_none_omitted_in_json) {
  auto meta = meta_of("bg_n", "t", "shell", "no result", TaskStatus::Running, 100, std::nullopt);
  const std::string text = dump(to_json(meta));
  EXPECT_EQ(text.find("\"result\""), std::string::npos) << text;
}

TEST(AwakenSeed, task_parent_context_is_empty) {
  EXPECT_TRUE(TaskParentContext{}.is_empty());
  TaskParentContext t;
  t.task_id = "t";
  EXPECT_FALSE(t.is_empty());
  TaskParentContext r;
  r.run_id = "r";
  EXPECT_FALSE(r.is_empty());
  TaskParentContext c;
  c.call_id = "c";
  EXPECT_FALSE(c.is_empty());
  TaskParentContext a;
  a.agent_id = "a";
  EXPECT_FALSE(a.is_empty());
}

TEST(AwakenSeed, task_summary_with_empty_parent_context_omits_field_in_json) {
  TaskSummary summary;
  summary.task_id = "bg_0";
  summary.task_type = "test";
  summary.description = "no parent";
  summary.status = TaskStatus::Running;
  summary.created_at_ms = 100;
  const std::string text = dump(to_json(summary));
  EXPECT_EQ(text.find("parent_context"), std::string::npos) << text;
}

TEST(AwakenSeed, task_summary_with_parent_context_includes_field_in_json) {
  TaskSummary summary;
  summary.task_id = "bg_0";
  summary.task_type = "test";
  summary.description = "with parent";
  summary.status = TaskStatus::Running;
  summary.created_at_ms = 100;
  summary.parent_context.run_id = "run-1";
  const std::string text = dump(to_json(summary));
  EXPECT_NE(text.find("parent_context"), std::string::npos) << text;
  EXPECT_NE(text.find("run-1"), std::string::npos) << text;
}
