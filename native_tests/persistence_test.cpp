// Persistence: awaken's serde shapes (codec), the background_task_state snapshot, restore_for_thread.
// Format rules checked against awaken's source; see fixtures/README.md for file:line references.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "support.hpp"

namespace {

using namespace bgtasks;
using bgtasks::testing::Harness;
using bgtasks::testing::manager_with_store;

std::string read_fixture() {
  std::ifstream f(std::string(BGTASKS_FIXTURE_DIR) + "/awaken_state.json", std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open fixtures/awaken_state.json";
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TaskParentContext pc(std::optional<std::string> task_id, std::optional<std::string> run_id,
                     std::optional<std::string> call_id, std::optional<std::string> agent_id) {
  return {std::move(task_id), std::move(run_id), std::move(call_id), std::move(agent_id)};
}

std::string show(const PersistedTaskMeta& m) { return dump(to_json(m)); }

// The fixture as typed values, exactly as written in awaken_state.json.
BackgroundTaskStateSnapshot expected_fixture() {
  BackgroundTaskStateSnapshot s;
  auto add = [&](PersistedTaskMeta m) { s.tasks.emplace(m.task_id, std::move(m)); };
  PersistedTaskMeta m;

  m = {};
  m.task_id = "bg_3";
  m.owner_thread_id = "thread-1";
  m.task_type = "shell";
  m.name = "builder";
  m.description = "build project";
  m.status = TaskStatus::Running;
  m.created_at_ms = 1714000000000ULL;
  m.parent_context = pc(std::nullopt, "run-1", "call-1", "agent-a");
  add(m);

  m = {};
  m.task_id = "bg_7";
  m.owner_thread_id = "thread-1";
  m.task_type = "shell";
  m.description = "compile";
  m.status = TaskStatus::Completed;
  m.result =
      json::parse(R"({"exit_code":0,"artifacts":["a.out","libx.so"],"stats":{"ms":1234,"cached":false,"ratio":0.5}})");
  m.created_at_ms = 1714000000000ULL;
  m.completed_at_ms = 1714000001234ULL;
  add(m);

  m = {};
  m.task_id = "bg_12";
  m.owner_thread_id = "thread-1";
  m.task_type = "http";
  m.description = "fetch data";
  m.status = TaskStatus::Failed;
  m.error = "timeout";
  m.created_at_ms = 100;
  m.completed_at_ms = 200;
  m.parent_context = pc(std::nullopt, "run-1", std::nullopt, std::nullopt);
  add(m);

  m = {};
  m.task_id = "bg_5";
  m.owner_thread_id = "thread-1";
  m.task_type = "sub_agent";
  m.name = "researcher";
  m.description = "research";
  m.status = TaskStatus::Cancelled;
  m.created_at_ms = 100;
  m.completed_at_ms = 250;
  m.parent_context = pc("bg_3", std::nullopt, std::nullopt, std::nullopt);
  add(m);

  m = {};  // legacy: no owner_thread_id, no parent_context
  m.task_id = "bg_9";
  m.task_type = "shell";
  m.description = "legacy task";
  m.status = TaskStatus::Completed;
  m.created_at_ms = 100;
  m.completed_at_ms = 200;
  add(m);

  m = {};  // "result": null
  m.task_id = "bg_10";
  m.owner_thread_id = "thread-1";
  m.task_type = "shell";
  m.description = "returns null";
  m.status = TaskStatus::Completed;
  m.created_at_ms = 300;
  m.completed_at_ms = 400;
  add(m);

  m = {};
  m.task_id = "bg_restored";
  m.owner_thread_id = "thread-restore";
  m.task_type = "shell";
  m.description = "restored";
  m.status = TaskStatus::Completed;
  m.created_at_ms = 100;
  m.completed_at_ms = 200;
  add(m);
  return s;
}

json valid_entry(const std::string& id) {
  return json{{"task_id", id},        {"owner_thread_id", "thread-1"}, {"task_type", "shell"},
              {"description", "ok"},  {"status", "completed"},         {"result", {{"v", 1}}},
              {"created_at_ms", 100}, {"completed_at_ms", 200},        {"parent_context", {{"run_id", "run-1"}}}};
}

std::string replace_once(std::string s, std::string_view from, std::string_view to) {
  auto p = s.find(from);
  EXPECT_NE(p, std::string::npos) << "placeholder " << from << " not in " << s;
  if (p != std::string::npos) s.replace(p, from.size(), to);
  return s;
}

// Each row: bg_77 is valid, the entry under `key` is not.
std::string snapshot_with(const json& bad, const std::string& key = "bg_1") {
  json j;
  j["tasks"]["bg_77"] = valid_entry("bg_77");
  j["tasks"][key] = bad;
  return j.dump();
}
json without(std::string field) {
  json e = valid_entry("bg_1");
  e.erase(field);
  return e;
}
json with(std::string field, json v) {
  json e = valid_entry("bg_1");
  e[field] = std::move(v);
  return e;
}
// The entry's field set to raw JSON text (numbers nlohmann would not write, invalid UTF-8, deep nesting).
std::string with_raw(std::string field, std::string_view raw) {
  return replace_once(snapshot_with(with(std::move(field), "__RAW__")), "\"__RAW__\"", raw);
}

// Bodies (stateless: the manager calls them directly).
auto sleep_then_live = [](TaskContext ctx) -> Co<TaskResult> {
  co_await ctx.sleep(100);
  co_return TaskResult::success(json{{"live", true}});
};
auto sleep_long = [](TaskContext ctx) -> Co<TaskResult> {
  co_await ctx.sleep(1'000'000);
  co_return TaskResult::success(json{{"late", true}});
};
auto succeed_object = [](TaskContext) -> Co<TaskResult> {
  co_return TaskResult::success(json::parse(R"({"n":1,"list":[1,"two",{"x":false}],"s":"é\u00e9"})"));
};
auto succeed_null = [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); };
auto fail_boom = [](TaskContext) -> Co<TaskResult> { co_return TaskResult::failed("boom"); };
auto agent_until_cancelled = [](AgentTaskContext ctx) -> Co<TaskResult> {
  co_await ctx.cancelled();
  co_return TaskResult::cancelled();
};

}  // namespace

// ============================================================================ Codec

TEST(Codec, StatusStringsAreAwakensLowercase) {
  EXPECT_STREQ(as_str(TaskStatus::Running), "running");
  EXPECT_STREQ(as_str(TaskStatus::Completed), "completed");
  EXPECT_STREQ(as_str(TaskStatus::Failed), "failed");
  EXPECT_STREQ(as_str(TaskStatus::Cancelled), "cancelled");
  EXPECT_EQ(parse_task_status("cancelled"), TaskStatus::Cancelled);
  EXPECT_EQ(parse_task_status("Running"), std::nullopt);  // rename_all = "lowercase" only
  EXPECT_EQ(parse_task_status("paused"), std::nullopt);
  EXPECT_EQ(parse_task_status(""), std::nullopt);
}

TEST(Codec, MetaAlwaysWritesOwnerAndParentContext) {
  PersistedTaskMeta m;
  m.task_id = "bg_0";
  m.task_type = "shell";
  m.description = "d";
  m.status = TaskStatus::Running;
  m.created_at_ms = 5;
  EXPECT_EQ(dump(to_json(m)), R"({"created_at_ms":5,"description":"d","owner_thread_id":"","parent_context":{},)"
                              R"("status":"running","task_id":"bg_0","task_type":"shell"})");
}

TEST(Codec, MetaWritesOptionalFieldsOnlyWhenPresent) {
  PersistedTaskMeta m;
  m.task_id = "bg_1";
  m.owner_thread_id = "t1";
  m.task_type = "shell";
  m.name = "builder";
  m.description = "compile";
  m.status = TaskStatus::Failed;
  m.error = "boom";
  m.result = json::parse(R"({"b":1,"a":[1,2]})");
  m.created_at_ms = 100;
  m.completed_at_ms = 200;
  m.parent_context = pc("bg_0", "r", "c", "a");
  EXPECT_EQ(dump(to_json(m)), R"({"completed_at_ms":200,"created_at_ms":100,"description":"compile","error":"boom",)"
                              R"("name":"builder","owner_thread_id":"t1",)"
                              R"("parent_context":{"agent_id":"a","call_id":"c","run_id":"r","task_id":"bg_0"},)"
                              R"("result":{"a":[1,2],"b":1},"status":"failed","task_id":"bg_1","task_type":"shell"})");

  // Each skipped field disappears on its own.
  m.name.reset();
  m.error.reset();
  m.result.reset();
  m.completed_at_ms.reset();
  m.parent_context = pc(std::nullopt, "r", std::nullopt, std::nullopt);
  EXPECT_EQ(dump(to_json(m)),
            R"({"created_at_ms":100,"description":"compile","owner_thread_id":"t1",)"
            R"("parent_context":{"run_id":"r"},"status":"failed","task_id":"bg_1","task_type":"shell"})");
}

TEST(Codec, NullResultIsWrittenAndDecodesAsAbsent) {
  PersistedTaskMeta m = bgtasks::testing::make_meta("bg_4", "t", TaskStatus::Completed);
  m.result = json(nullptr);  // Success(null)
  const std::string text = dump(to_json(m));
  EXPECT_NE(text.find(R"("result":null)"), std::string::npos) << text;
  auto back = meta_from_json(json::parse(text));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_FALSE(back->result.has_value());
  m.result.reset();
  EXPECT_EQ(*back, m) << show(*back);
}

TEST(Codec, SummaryOmitsEmptyParentContextAndHasNoNameOrOwner) {
  TaskSummary s;
  s.task_id = "bg_0";
  s.task_type = "shell";
  s.description = "d";
  s.status = TaskStatus::Running;
  s.created_at_ms = 5;
  EXPECT_EQ(dump(to_json(s)),
            R"({"created_at_ms":5,"description":"d","status":"running","task_id":"bg_0","task_type":"shell"})");

  s.parent_context.run_id = "r";
  s.status = TaskStatus::Completed;
  s.result = json{{"answer", 42}};
  s.completed_at_ms = 9;
  EXPECT_EQ(dump(to_json(s)),
            R"({"completed_at_ms":9,"created_at_ms":5,"description":"d","parent_context":{"run_id":"r"},)"
            R"("result":{"answer":42},"status":"completed","task_id":"bg_0","task_type":"shell"})");

  auto back = summary_from_json(to_json(s));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
}

TEST(Codec, ParentContextEncoding) {
  EXPECT_EQ(dump(to_json(TaskParentContext{})), "{}");
  EXPECT_EQ(dump(to_json(pc("p", std::nullopt, std::nullopt, "ag"))), R"({"agent_id":"ag","task_id":"p"})");
  // An empty string is a value (awaken's run_id may be ""), not absence.
  EXPECT_EQ(dump(to_json(pc(std::nullopt, "", std::nullopt, std::nullopt))), R"({"run_id":""})");
  auto back = parent_context_from_json(json::parse(R"({"run_id":""})"));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->run_id, std::optional<std::string>(""));
  EXPECT_FALSE(back->is_empty());
}

TEST(Codec, SnapshotEncodingIsSortedAndExact) {
  BackgroundTaskStateSnapshot s;
  EXPECT_EQ(dump(to_json(s)), R"({"tasks":{}})");
  s.tasks["bg_2"] = bgtasks::testing::make_meta("bg_2", "t", TaskStatus::Failed);
  s.tasks["bg_2"].error = "x";
  s.tasks["bg_10"] = bgtasks::testing::make_meta("bg_10", "t", TaskStatus::Running);
  EXPECT_EQ(
      dump(to_json(s)),
      R"({"tasks":{"bg_10":{"created_at_ms":100,"description":"desc","owner_thread_id":"t","parent_context":{},)"
      R"("status":"running","task_id":"bg_10","task_type":"shell"},)"
      R"("bg_2":{"completed_at_ms":200,"created_at_ms":100,"description":"desc","error":"x","owner_thread_id":"t",)"
      R"("parent_context":{},"status":"failed","task_id":"bg_2","task_type":"shell"}}})");
}

TEST(Codec, LegacyMetaDecodesWithDefaults) {
  // awaken tests.rs persisted_task_meta_without_parent_context_deserializes_default
  auto m = meta_from_json(json::parse(
      R"({"task_id":"bg_old","task_type":"shell","description":"legacy task","status":"completed","created_at_ms":100,"completed_at_ms":200})"));
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->task_id, "bg_old");
  EXPECT_EQ(m->owner_thread_id, "");
  EXPECT_FALSE(m->name.has_value());
  EXPECT_TRUE(m->parent_context.is_empty());
  EXPECT_FALSE(m->result.has_value());
  EXPECT_EQ(m->completed_at_ms, std::optional<std::uint64_t>(200));
  EXPECT_EQ(dump(to_json(*m)),
            R"({"completed_at_ms":200,"created_at_ms":100,"description":"legacy task","owner_thread_id":"",)"
            R"("parent_context":{},"status":"completed","task_id":"bg_old","task_type":"shell"})");
}

TEST(Codec, SerdeLeniencyNullOptionalsAndUnknownFields) {
  // serde: Option<T> reads null as None; unknown fields are ignored (no deny_unknown_fields).
  auto m = meta_from_json(
      json::parse(R"({"task_id":"bg_1","task_type":"shell","description":"d","status":"running","created_at_ms":1,)"
                  R"("name":null,"error":null,"completed_at_ms":null,"result":null,"extra":{"x":1},)"
                  R"("parent_context":{"task_id":null,"run_id":"r","future_field":3}})"));
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_FALSE(m->name || m->error || m->completed_at_ms || m->result);
  EXPECT_EQ(m->parent_context, pc(std::nullopt, "r", std::nullopt, std::nullopt));
}

TEST(Codec, U64BoundsRoundTrip) {
  PersistedTaskMeta m = bgtasks::testing::make_meta("bg_1", "t", TaskStatus::Completed);
  m.created_at_ms = UINT64_MAX;
  m.completed_at_ms = UINT64_MAX;
  const std::string text = dump(to_json(m));
  EXPECT_NE(text.find(R"("created_at_ms":18446744073709551615)"), std::string::npos) << text;
  auto back = meta_from_json(json::parse(text));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, m);
  m.created_at_ms = 0;
  back = meta_from_json(to_json(m));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->created_at_ms, 0u);
}

TEST(Codec, FromSummaryCopiesAndSetsOwnerWithoutName) {
  TaskSummary s;
  s.task_id = "bg_8";
  s.task_type = "http";
  s.description = "d";
  s.status = TaskStatus::Failed;
  s.error = "e";
  s.result = json{1, 2};
  s.created_at_ms = 7;
  s.completed_at_ms = 8;
  s.parent_context = pc("bg_1", "r", "c", "a");
  PersistedTaskMeta m = PersistedTaskMeta::from_summary(s, "owner-x");
  EXPECT_EQ(m.owner_thread_id, "owner-x");
  EXPECT_FALSE(m.name.has_value());
  EXPECT_EQ(m.to_summary(), s);
}

TEST(Codec, ErrorsNameTheGivenLocation) {
  json e = valid_entry("bg_3");
  e.erase("status");
  auto r = meta_from_json(e, "tasks.bg_3");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::InvalidSnapshot);
  EXPECT_NE(r.error().message.find("tasks.bg_3"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("status"), std::string::npos) << r.error().message;

  auto p = parent_context_from_json(json::parse(R"({"run_id":5})"), "tasks.bg_3.parent_context");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("tasks.bg_3.parent_context"), std::string::npos) << p.error().message;
  EXPECT_NE(p.error().message.find("run_id"), std::string::npos) << p.error().message;
}

TEST(Codec, ParseSnapshotSurvivesVeryDeepNesting) {
  // Untrusted input: 100k levels must be refused, not overflow the stack.
  constexpr std::size_t kDepth = 100'000;
  std::string deep(kDepth, '[');
  deep.append(kDepth, ']');
  auto r = parse_snapshot(with_raw("result", deep));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::InvalidSnapshot);
  auto j = parse_json(deep, "payload");
  EXPECT_FALSE(j.ok());
}

// ============================================================================ Snapshot

TEST(Snapshot, FixtureDecodesFieldByField) {
  const std::string text = read_fixture();
  auto snap = parse_snapshot(text);
  ASSERT_TRUE(snap.ok()) << snap.error().message;
  const auto expected = expected_fixture();
  ASSERT_EQ(snap->tasks.size(), expected.tasks.size());
  for (const auto& [id, want] : expected.tasks) {
    ASSERT_EQ(snap->tasks.count(id), 1u) << id;
    EXPECT_EQ(snap->tasks.at(id), want) << id << ": got " << show(snap->tasks.at(id)) << " want " << show(want);
  }
  // Spot checks in plain terms.
  const auto& running = snap->tasks.at("bg_3");
  EXPECT_EQ(running.status, TaskStatus::Running);
  EXPECT_EQ(running.name, std::optional<std::string>("builder"));
  EXPECT_EQ(running.parent_context.call_id, std::optional<std::string>("call-1"));
  EXPECT_FALSE(running.parent_context.task_id.has_value());
  EXPECT_EQ(snap->tasks.at("bg_7").result->at("stats").at("ms"), 1234);
  EXPECT_EQ(snap->tasks.at("bg_12").error, std::optional<std::string>("timeout"));
  EXPECT_EQ(snap->tasks.at("bg_5").parent_context.task_id, std::optional<std::string>("bg_3"));
  EXPECT_EQ(snap->tasks.at("bg_9").owner_thread_id, "");
  EXPECT_TRUE(snap->tasks.at("bg_9").parent_context.is_empty());
  EXPECT_FALSE(snap->tasks.at("bg_10").result.has_value());  // "result": null
  EXPECT_EQ(snap->tasks.at("bg_restored").owner_thread_id, "thread-restore");

  // The JSON-value entry point agrees.
  auto from_value = snapshot_from_json(json::parse(text));
  ASSERT_TRUE(from_value.ok()) << from_value.error().message;
  EXPECT_EQ(*from_value, *snap);
}

TEST(Snapshot, FixtureReencodesAsAwakenWould) {
  const std::string text = read_fixture();
  auto snap = parse_snapshot(text);
  ASSERT_TRUE(snap.ok()) << snap.error().message;

  // Encoding: the fixture as written, except that the legacy entry gains owner_thread_id ""
  // and parent_context {}, and "result": null (= None) is skipped.
  json want = json::parse(text);
  want["tasks"]["bg_9"]["owner_thread_id"] = "";
  want["tasks"]["bg_9"]["parent_context"] = json::object();
  want["tasks"]["bg_10"].erase("result");
  EXPECT_EQ(to_json(*snap), want) << dump(to_json(*snap));

  // Decoding again gives the same values, from a value and from text.
  auto again = snapshot_from_json(to_json(*snap));
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(*again, *snap);
  auto again_text = parse_snapshot(dump(to_json(*snap)));
  ASSERT_TRUE(again_text.ok()) << again_text.error().message;
  EXPECT_EQ(*again_text, *snap);
}

TEST(Snapshot, ModerateNestingInResultIsAccepted) {
  std::string nested(50, '[');
  nested.append(50, ']');
  auto r = parse_snapshot(with_raw("result", nested));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->tasks.at("bg_1").result, json::parse(nested));
  EXPECT_EQ(r->tasks.count("bg_77"), 1u);
}

TEST(Snapshot, SnapshotJsonIsSortedAndExact) {
  auto h = manager_with_store();
  auto r = h->manager->restore_json(
      "t9",
      R"({"tasks":{"bg_9":{"task_id":"bg_9","task_type":"shell","description":"legacy task","status":"completed","created_at_ms":100,"completed_at_ms":200}}})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->added, 1u);
  EXPECT_EQ(
      h->manager->snapshot_json("t9"),
      R"({"tasks":{"bg_9":{"completed_at_ms":200,"created_at_ms":100,"description":"legacy task",)"
      R"("owner_thread_id":"t9","parent_context":{},"status":"completed","task_id":"bg_9","task_type":"shell"}}})");
  EXPECT_EQ(h->manager->snapshot_json("nobody"), R"({"tasks":{}})");
}

// A key given twice: the last entry counts, in parse_snapshot's map and in restore_json (which reads
// the entries as a list), also when an entry between them was bad.
TEST(Snapshot, RepeatedIdKeepsItsLastEntryInParseAndRestore) {
  auto entry = [](const char* id, const char* description) {
    return std::string("\"") + id + R"(":{"task_id":")" + id + R"(","task_type":"shell","description":")" +
           description + R"(","status":"completed","created_at_ms":1})";
  };
  const std::string text = "{\"tasks\":{" + entry("bg_2", "first") + "," + entry("bg_1", "one") + "," +
                           entry("bg_2", "second") + ",\"bg_3\":5," + entry("bg_3", "fixed") + "," + entry("x", "a") +
                           "," + entry("x", "b") + "}}";
  auto parsed = parse_snapshot(text);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_EQ(parsed->tasks.size(), 4u);
  EXPECT_EQ(parsed->tasks.at("bg_2").description, "second");
  EXPECT_EQ(parsed->tasks.at("bg_3").description, "fixed");
  EXPECT_EQ(parsed->tasks.at("x").description, "b");
  auto list = parse_snapshot_entries(text);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 6u);  // in text order, repeats included

  auto h = manager_with_store();
  auto r = h->manager->restore_json("t", text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->added, 4u);
  EXPECT_EQ(h->manager->get("bg_2")->description, "second");
  EXPECT_EQ(h->manager->get("bg_3")->description, "fixed");
  EXPECT_EQ(h->manager->get("x")->description, "b");
  EXPECT_EQ(h->manager->list("t").size(), 4u);
  EXPECT_EQ(h->manager->next_task_number(), 4u);

  // A bad last entry fails the whole snapshot, and nothing changes.
  const std::string bad = "{\"tasks\":{" + entry("bg_7", "good") + ",\"bg_7\":5}}";
  EXPECT_FALSE(parse_snapshot_entries(bad).ok());
  auto refused = h->manager->restore_json("t", bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::InvalidSnapshot);
  EXPECT_FALSE(h->manager->get("bg_7"));
  EXPECT_EQ(h->manager->next_task_number(), 4u);
}

// ============================================================================ Restore

TEST(Restore, FixtureOrphansRunningKeepsTerminalAndClaimsOwner) {
  auto h = manager_with_store();
  auto r = h->manager->restore_json("thread-2", read_fixture());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->added, 7u);

  const auto stored = h->manager->persisted_snapshot();
  ASSERT_EQ(stored.tasks.size(), 7u);
  for (const auto& [id, orig] : expected_fixture().tasks) {
    ASSERT_EQ(stored.tasks.count(id), 1u) << id;
    PersistedTaskMeta want = orig;
    want.owner_thread_id = "thread-2";  // every entry, including "" and "thread-restore"
    if (orig.status == TaskStatus::Running) {
      want.status = TaskStatus::Failed;
      want.error = kOrphanedError;
    }
    EXPECT_EQ(stored.tasks.at(id), want) << id << ": got " << show(stored.tasks.at(id)) << " want " << show(want);
  }

  auto orphan = h->manager->get("bg_3");
  ASSERT_TRUE(orphan.has_value());
  EXPECT_EQ(orphan->status, TaskStatus::Failed);
  EXPECT_EQ(orphan->error, std::optional<std::string>("task orphaned: runtime restarted while running"));
  EXPECT_FALSE(orphan->completed_at_ms.has_value());
  EXPECT_EQ(orphan->parent_context, pc(std::nullopt, "run-1", "call-1", "agent-a"));

  EXPECT_EQ(h->manager->list("thread-2").size(), 7u);
  EXPECT_TRUE(h->manager->list("thread-1").empty());
  EXPECT_TRUE(h->manager->list("thread-restore").empty());
  EXPECT_FALSE(h->manager->has_running("thread-2"));
  EXPECT_FALSE(h->manager->get("bg_10")->result.has_value());
  // Restored-only ids have no body: cancel answers false.
  EXPECT_FALSE(h->manager->cancel("bg_3"));
  EXPECT_FALSE(h->manager->cancel("bg_7"));

  // Restoring the same snapshot again adds nothing and changes nothing: into the same thread
  // every entry is skipped; into another thread the checked form refuses (the ids are
  // thread-2's now), and awaken's form skips them all.
  const std::string before = h->manager->snapshot_json();
  auto again = h->manager->restore_json("thread-2", read_fixture());
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->added, 0u);
  EXPECT_EQ(again->skipped.size(), 7u);
  EXPECT_EQ(h->manager->snapshot_json(), before);
  auto other = h->manager->restore_json("thread-3", read_fixture());
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, Errc::IdConflict);
  EXPECT_EQ(h->manager->snapshot_json(), before);
  auto parsed = parse_snapshot(read_fixture());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(h->manager->restore_for_thread("thread-3", *parsed), 0u);
  EXPECT_EQ(h->manager->snapshot_json(), before);
}

TEST(Restore, FixtureBumpsCounterToMaxPlusOne) {
  auto h = manager_with_store();
  ASSERT_TRUE(h->manager->restore_json("thread-2", read_fixture()).ok());
  EXPECT_EQ(h->manager->next_task_number(), 13u);  // bg_12 is the highest; bg_restored ignored
  auto id = h->manager->spawn("thread-2", "shell", std::nullopt, "after restore", {}, succeed_null);
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(*id, "bg_13");
}

TEST(Restore, NonBgIdDoesNotBumpCounterAndCounterNeverGoesDown) {
  auto h = manager_with_store();
  auto r = h->manager->restore_json(
      "t", R"({"tasks":{"bg_restored":{"task_id":"bg_restored","task_type":"shell","description":"restored",)"
           R"("status":"completed","created_at_ms":100,"completed_at_ms":200}}})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->added, 1u);
  EXPECT_EQ(h->manager->next_task_number(), 0u);
  auto id = h->manager->spawn("t", "shell", std::nullopt, "first", {}, succeed_null);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, "bg_0");

  // awaken: bg_5 and bg_10 → next bg_11 (fetch_max: a lower id later does not lower it).
  json j;
  j["tasks"]["bg_5"] = valid_entry("bg_5");
  j["tasks"]["bg_10"] = valid_entry("bg_10");
  ASSERT_TRUE(h->manager->restore_json("t", j.dump()).ok());
  EXPECT_EQ(h->manager->next_task_number(), 11u);
  json low;
  low["tasks"]["bg_2"] = valid_entry("bg_2");
  ASSERT_TRUE(h->manager->restore_json("t", low.dump()).ok());
  EXPECT_EQ(h->manager->next_task_number(), 11u);
  EXPECT_EQ(h->manager->list("t").size(), 5u);  // bg_restored, bg_0, bg_5, bg_10, bg_2
}

TEST(Restore, SkipsIdsAlreadyInStoreAndLiveTaskStillCompletes) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("live", "shell", "worker", "live desc", {}, sleep_then_live);
  ASSERT_TRUE(id.ok()) << id.error().message;
  ASSERT_EQ(*id, "bg_0");
  h->run_until_idle();  // the body is now suspended in its sleep

  // A stale terminal copy of bg_0 and a running copy: both skipped; bg_4 is new and orphaned.
  json stale = valid_entry("bg_0");
  stale["owner_thread_id"] = "ghost";
  stale["task_type"] = "http";
  stale["description"] = "stale";
  json snap;
  snap["tasks"]["bg_0"] = stale;
  json run4 = valid_entry("bg_4");
  run4["status"] = "running";
  run4.erase("completed_at_ms");
  run4.erase("result");
  snap["tasks"]["bg_4"] = run4;
  // The checked form refuses: bg_0 is thread "live"'s; nothing changes.
  const std::string untouched = h->manager->snapshot_json();
  auto refused = h->manager->restore_json("restorer", snap.dump());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::IdConflict);
  EXPECT_EQ(refused.error().message, "restore refused: ids held by tasks of another thread: bg_0 (thread 'live')");
  EXPECT_EQ(h->manager->snapshot_json(), untouched);
  EXPECT_EQ(h->manager->next_task_number(), 1u);
  // awaken's form skips it.
  auto parsed = parse_snapshot(snap.dump());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(h->manager->restore_for_thread("restorer", *parsed), 1u);

  stale["status"] = "running";
  json snap2;
  snap2["tasks"]["bg_0"] = stale;
  auto parsed2 = parse_snapshot(snap2.dump());
  ASSERT_TRUE(parsed2.ok());
  EXPECT_EQ(h->manager->restore_for_thread("restorer", *parsed2), 0u);

  const auto live = h->manager->persisted_snapshot().tasks.at("bg_0");
  EXPECT_EQ(live.status, TaskStatus::Running);
  EXPECT_EQ(live.owner_thread_id, "live");
  EXPECT_EQ(live.task_type, "shell");
  EXPECT_EQ(live.description, "live desc");
  EXPECT_EQ(live.name, std::optional<std::string>("worker"));
  EXPECT_FALSE(live.result.has_value());
  EXPECT_TRUE(h->manager->has_running("live"));

  const auto orphan = h->manager->persisted_snapshot().tasks.at("bg_4");
  EXPECT_EQ(orphan.status, TaskStatus::Failed);
  EXPECT_EQ(orphan.error, std::optional<std::string>(kOrphanedError));
  EXPECT_EQ(orphan.owner_thread_id, "restorer");
  EXPECT_FALSE(orphan.completed_at_ms.has_value());
  EXPECT_EQ(h->manager->next_task_number(), 5u);

  // The live body is untouched by the restore and still finishes normally.
  h->run_for(100);
  auto done = h->manager->get("bg_0");
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->status, TaskStatus::Completed);
  EXPECT_EQ(done->result, std::optional<json>(json{{"live", true}}));
  EXPECT_EQ(done->completed_at_ms, std::optional<std::uint64_t>(1'000'100));
}

TEST(Restore, RoundTripThroughSnapshotJsonIsEqualByValue) {
  auto a = manager_with_store();
  auto& m = *a->manager;
  ASSERT_TRUE(m.restore_json("t1", read_fixture()).ok());  // counter → 13
  auto ok =
      m.spawn("t1", "shell", "ok", "object result", pc(std::nullopt, "run-9", "call-9", "agent-9"), succeed_object);
  auto bad = m.spawn("t1", "http", std::nullopt, "fails", {}, fail_boom);
  ASSERT_TRUE(ok.ok() && bad.ok());
  auto agent = m.spawn_agent_with_context("t1", "helper", "sub agent", pc(*ok, "run-9", std::nullopt, std::nullopt),
                                          agent_until_cancelled);
  auto other = m.spawn("other", "shell", std::nullopt, "other thread", {}, succeed_object);
  ASSERT_TRUE(agent.ok() && other.ok());
  a->run_until_idle();
  a->clock.advance(5);
  EXPECT_TRUE(m.cancel(*agent));
  a->run_until_idle();
  EXPECT_FALSE(m.has_running("t1"));
  EXPECT_EQ(m.get(*agent)->status, TaskStatus::Cancelled);

  const std::string text = m.snapshot_json("t1");
  const json value = json::parse(text);
  EXPECT_EQ(value["tasks"].size(), 10u);  // 7 restored + 3 spawned on t1
  EXPECT_FALSE(value["tasks"].contains(*other));
  EXPECT_EQ(value["tasks"][*agent]["parent_context"], json::parse(R"({"run_id":"run-9","task_id":"bg_13"})"));
  EXPECT_EQ(value["tasks"][*agent]["name"], "helper");
  EXPECT_EQ(value["tasks"][*agent]["task_type"], "sub_agent");

  auto b = manager_with_store();
  auto r = b->manager->restore_json("t1", text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->added, 10u);
  EXPECT_EQ(json::parse(b->manager->snapshot_json("t1")), value);
  EXPECT_EQ(json::parse(b->manager->snapshot_json()), value);
  EXPECT_EQ(b->manager->next_task_number(), 16u);  // bg_15 (the agent) is the highest on t1
}

TEST(Restore, RoundTripOrphansRunningAndDropsNullResult) {
  auto a = manager_with_store();
  auto& m = *a->manager;
  auto running = m.spawn("t1", "shell", "slow", "runs long", {}, sleep_long);
  auto nul = m.spawn("t1", "shell", std::nullopt, "null result", {}, succeed_null);
  ASSERT_TRUE(running.ok() && nul.ok());
  a->run_until_idle();
  const std::string text = m.snapshot_json("t1");
  json want = json::parse(text);
  ASSERT_EQ(want["tasks"][*nul]["result"], nullptr);  // Success(null) writes "result":null
  ASSERT_EQ(want["tasks"][*running]["status"], "running");

  auto b = manager_with_store();
  auto r = b->manager->restore_json("t1", text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->added, 2u);
  want["tasks"][*running]["status"] = "failed";
  want["tasks"][*running]["error"] = kOrphanedError;
  want["tasks"][*nul].erase("result");  // null decodes as None, which is skipped
  EXPECT_EQ(json::parse(b->manager->snapshot_json("t1")), want) << b->manager->snapshot_json("t1");
}

namespace {
struct BadRow {
  std::string label;
  std::string text;
  std::vector<std::string> must_name;  // substrings of the error message
};

std::vector<BadRow> bad_rows() {
  const std::string good = snapshot_with(valid_entry("bg_1"));
  std::vector<BadRow> rows = {
      {"invalid JSON", R"({tasks: {"bg_1": 1}})", {}},
      {"truncated JSON", good.substr(0, good.size() / 2), {}},
      {"empty text", "", {}},
      {"top-level array", R"([{"tasks":{}}])", {}},
      {"top-level null", "null", {}},
      {"missing tasks", R"({"task":{}})", {"tasks"}},
      {"tasks is an array", R"({"tasks":[]})", {"tasks"}},
      {"tasks is null", R"({"tasks":null})", {"tasks"}},
      {"tasks is a string", R"({"tasks":"bg_1"})", {"tasks"}},
      {"entry is a number", snapshot_with(5), {"tasks.bg_1"}},
      {"entry is an array", snapshot_with(json::array({valid_entry("bg_1")})), {"tasks.bg_1"}},
      {"missing task_id", snapshot_with(without("task_id")), {"tasks.bg_1", "task_id"}},
      {"missing task_type", snapshot_with(without("task_type")), {"tasks.bg_1", "task_type"}},
      {"missing description", snapshot_with(without("description")), {"tasks.bg_1", "description"}},
      {"missing status", snapshot_with(without("status")), {"tasks.bg_1", "status"}},
      {"missing created_at_ms", snapshot_with(without("created_at_ms")), {"tasks.bg_1", "created_at_ms"}},
      {"task_id is a number", snapshot_with(with("task_id", 1)), {"tasks.bg_1", "task_id"}},
      {"task_type is null", snapshot_with(with("task_type", nullptr)), {"tasks.bg_1", "task_type"}},
      {"description is a bool", snapshot_with(with("description", true)), {"tasks.bg_1", "description"}},
      {"status is a number", snapshot_with(with("status", 1)), {"tasks.bg_1", "status"}},
      {"owner_thread_id is a number", snapshot_with(with("owner_thread_id", 3)), {"tasks.bg_1", "owner_thread_id"}},
      {"owner_thread_id is null", snapshot_with(with("owner_thread_id", nullptr)), {"tasks.bg_1", "owner_thread_id"}},
      {"name is a number", snapshot_with(with("name", 7)), {"tasks.bg_1", "name"}},
      {"error is an array", snapshot_with(with("error", json::array({"x"}))), {"tasks.bg_1", "error"}},
      {"created_at_ms is a string", snapshot_with(with("created_at_ms", "100")), {"tasks.bg_1", "created_at_ms"}},
      {"completed_at_ms is a string", snapshot_with(with("completed_at_ms", "200")), {"tasks.bg_1", "completed_at_ms"}},
      {"completed_at_ms negative", snapshot_with(with("completed_at_ms", -5)), {"tasks.bg_1", "completed_at_ms"}},
      {"parent_context is an array",
       snapshot_with(with("parent_context", json::array())),
       {"tasks.bg_1", "parent_context"}},
      {"parent_context is null", snapshot_with(with("parent_context", nullptr)), {"tasks.bg_1", "parent_context"}},
      {"parent_context.run_id is a number",
       snapshot_with(with("parent_context", {{"run_id", 42}})),
       {"tasks.bg_1", "parent_context", "run_id"}},
      {"parent_context.task_id is a bool",
       snapshot_with(with("parent_context", {{"task_id", false}})),
       {"tasks.bg_1", "parent_context", "task_id"}},
      {"unknown status paused", snapshot_with(with("status", "paused")), {"tasks.bg_1", "status"}},
      {"status in wrong case", snapshot_with(with("status", "Running")), {"tasks.bg_1", "status"}},
      {"negative created_at_ms", with_raw("created_at_ms", "-1"), {"tasks.bg_1", "created_at_ms"}},
      {"float created_at_ms", with_raw("created_at_ms", "1.5"), {"tasks.bg_1", "created_at_ms"}},
      {"integral float created_at_ms", with_raw("created_at_ms", "100.0"), {"tasks.bg_1", "created_at_ms"}},
      {"exponent created_at_ms", with_raw("created_at_ms", "1e3"), {"tasks.bg_1", "created_at_ms"}},
      {"created_at_ms above 2^64-1",
       with_raw("created_at_ms", "18446744073709551616"),
       {"tasks.bg_1", "created_at_ms"}},
      {"empty task_id under empty key", snapshot_with(with("task_id", ""), ""), {"task_id"}},
      {"empty task_id under bg_1", snapshot_with(with("task_id", "")), {"tasks.bg_1", "task_id"}},
      {"key differs from task_id", snapshot_with(with("task_id", "bg_2")), {"tasks.bg_1", "task_id"}},
      {"nesting deeper than kMaxJsonDepth in result",
       with_raw("result", std::string(kMaxJsonDepth + 10, '[') + std::string(kMaxJsonDepth + 10, ']')),
       {}},
      {"invalid UTF-8 in description", with_raw("description", "\"bad \xff\xfe byte\""), {}},
      {"invalid UTF-8 in a result string", with_raw("result", "{\"k\":\"\xc3\x28\"}"), {}},
      {"overlong UTF-8 in task_type", with_raw("task_type", "\"\xc0\xaf\""), {}},
  };
  // Larger than kMaxSnapshotBytes, though otherwise valid JSON (whitespace padding).
  std::string big = good;
  big.append(kMaxSnapshotBytes + 1 - big.size(), ' ');
  rows.push_back({"text larger than kMaxSnapshotBytes", std::move(big), {}});
  return rows;
}
}  // namespace

TEST(Restore, BadInputIsRejectedWholeAndChangesNothing) {
  const auto rows = bad_rows();
  ASSERT_GE(rows.size(), 25u);
  // Sanity: the good base snapshot is accepted by the decoder.
  ASSERT_TRUE(parse_snapshot(snapshot_with(valid_entry("bg_1"))).ok());

  for (const auto& row : rows) {
    SCOPED_TRACE(row.label);
    // A fresh manager per row, with restored and live state: rows stay independent.
    auto h = manager_with_store();
    auto& m = *h->manager;
    ASSERT_TRUE(m.restore_json("t1", read_fixture()).ok());
    auto live = m.spawn("t1", "shell", "live", "live", {}, sleep_long);
    ASSERT_TRUE(live.ok());
    h->run_until_idle();

    const std::string before = m.snapshot_json();
    const std::uint64_t counter = m.next_task_number();
    ASSERT_EQ(counter, 14u);
    auto r = m.restore_json("t1", row.text);
    EXPECT_FALSE(r.ok()) << "accepted: " << row.label;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, Errc::InvalidSnapshot) << r.error().message;
      EXPECT_FALSE(r.error().message.empty());
      for (const auto& s : row.must_name) {
        EXPECT_NE(r.error().message.find(s), std::string::npos)
            << "message lacks \"" << s << "\": " << r.error().message;
      }
    }
    EXPECT_EQ(m.snapshot_json(), before);
    EXPECT_EQ(m.next_task_number(), counter);
    EXPECT_FALSE(m.get("bg_77").has_value()) << "valid entry of a rejected snapshot was restored";
    EXPECT_FALSE(m.get("bg_1").has_value());
    EXPECT_EQ(m.get(*live)->status, TaskStatus::Running);

    // The decoder alone agrees.
    auto d = parse_snapshot(row.text);
    EXPECT_FALSE(d.ok());
    if (!d.ok()) {
      EXPECT_EQ(d.error().code, Errc::InvalidSnapshot);
    }
  }
}

TEST(Restore, WithoutStoreIsStoreNotConfiguredAndChangesNothing) {
  Harness h;
  h.manager = std::make_shared<BackgroundTaskManager>(h.exec);
  const std::string before = h.manager->snapshot_json();
  auto r = h.manager->restore_json("t", read_fixture());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::StoreNotConfigured);
  EXPECT_EQ(r.error().message, "background task state store is not configured");
  EXPECT_EQ(h.manager->snapshot_json(), before);
  EXPECT_EQ(h.manager->next_task_number(), 0u);
  EXPECT_FALSE(h.manager->get("bg_7").has_value());
  EXPECT_TRUE(h.manager->list("t").empty());
}

// ---- limits found by fuzzing (fuzz/corpus reproducers) --------------------------------------

// The last id is bg_18446744073709551615: after it is restored (or handed out) spawns are refused
// instead of wrapping to bg_0 and overwriting a stored task.
TEST(Restore, LastPossibleIdExhaustsIdsAndSpawnIsRefusedNotWrapped) {
  auto h = manager_with_store();
  auto first = h->manager->spawn("t", "shell", std::nullopt, "first", {}, succeed_null);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(*first, "bg_0");
  h->run_until_idle();
  json j;
  j["tasks"]["bg_18446744073709551615"] = valid_entry("bg_18446744073709551615");
  ASSERT_TRUE(h->manager->restore_json("t", j.dump()).ok());
  EXPECT_TRUE(h->manager->ids_exhausted());
  const std::string before = h->manager->snapshot_json();
  auto refused = h->manager->spawn("t", "shell", std::nullopt, "one too many", {}, succeed_null);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::InvalidArgument);
  EXPECT_NE(refused.error().message.find("task ids exhausted"), std::string::npos) << refused.error().message;
  EXPECT_EQ(h->manager->snapshot_json(), before);  // bg_0 and the restored entry untouched
  EXPECT_EQ(h->manager->get("bg_0")->description, "first");
}

TEST(Restore, SecondToLastIdHandsOutTheLastOneThenRefuses) {
  auto h = manager_with_store();
  json j;
  j["tasks"]["bg_18446744073709551613"] = valid_entry("bg_18446744073709551613");
  ASSERT_TRUE(h->manager->restore_json("t", j.dump()).ok());
  EXPECT_FALSE(h->manager->ids_exhausted());
  auto last = h->manager->spawn("t", "shell", std::nullopt, "last", {}, succeed_null);
  ASSERT_TRUE(last.ok()) << last.error().message;
  EXPECT_EQ(*last, "bg_18446744073709551614");
  auto very_last = h->manager->spawn("t", "shell", std::nullopt, "very last", {}, succeed_null);
  ASSERT_TRUE(very_last.ok()) << very_last.error().message;
  EXPECT_EQ(*very_last, "bg_18446744073709551615");
  EXPECT_TRUE(h->manager->ids_exhausted());
  EXPECT_FALSE(h->manager->spawn("t", "shell", std::nullopt, "none left", {}, succeed_null).ok());
  h->run_until_idle();
  EXPECT_EQ(h->manager->list("t").size(), 3u);
}

// A result at the value nesting limit (kMaxJsonDepth) sits 3 levels deeper inside a snapshot; the
// snapshot limit leaves room for it, so every accepted result stays restorable.
TEST(Restore, ResultAtTheValueDepthLimitSurvivesSnapshotAndRestore) {
  const std::string deepest(kMaxJsonDepth + 1, '[');
  const std::string closing(kMaxJsonDepth + 1, ']');
  auto value = parse_json(deepest + closing, "result", Errc::InvalidArgument);
  ASSERT_TRUE(value.ok()) << value.error().message;
  EXPECT_FALSE(parse_json("[" + deepest + closing + "]", "result", Errc::InvalidArgument).ok());

  auto h = manager_with_store();
  auto id = h->manager->spawn_host("t", "shell", std::nullopt, "deep result", {});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(h->manager->complete(*id, *value).ok());
  const std::string text = h->manager->snapshot_json("t");
  auto other = manager_with_store();
  auto restored = other->manager->restore_json("t", text);
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(restored->added, 1u);
  EXPECT_EQ(other->manager->snapshot_json("t"), text);
}
