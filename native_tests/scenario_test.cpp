// Parity scenarios (scenarios/*.json, format in scenarios/README.md), run against the native
// BackgroundTaskManager with host-driven tasks. web_tests/node/scenarios.test.mjs runs the same
// files through the JS package; both write their transcripts to build/scenario-transcripts/ and
// must agree byte for byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "bgtasks/manager_internals.hpp"

namespace {

using namespace bgtasks;
namespace fs = std::filesystem;

const fs::path kScenarioDir{BGTASKS_SCENARIO_DIR};

fs::path transcript_dir() { return kScenarioDir.parent_path() / "build" / "scenario-transcripts" / "native"; }

std::vector<fs::path> scenario_files() {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kScenarioDir, ec))
    if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

json read_json_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());  // throws (and fails the test) on a malformed file
}

// The canonical text both runners compare: keys sorted, compact (nlohmann's dump).
std::string canonical(const json& j) { return j.dump(); }

json error_json(const Error& e) { return json{{"error", errc_name(e.code)}, {"message", e.message}}; }

// One scenario run: the manager as the wasm binding builds it (manual clock, executor, store with
// the plugin's keys, owner inbox), plus the runner's alias tables.
class Runner {
 public:
  explicit Runner(const json& scenario)
      : clock_(scenario.value("start_ms", std::uint64_t{0})), exec_(clock_), store_(std::make_shared<StateStore>()) {
    ManagerOptions options;
    const json opts = scenario.value("options", json::object());
    for (auto it = opts.begin(); it != opts.end(); ++it) {
      if (it.key() == "retain_finished") {
        options.retain_finished = it->get<std::size_t>();
      } else if (it.key() == "agent_inbox_capacity") {
        options.agent_inbox.capacity = it->get<std::size_t>();
      } else if (it.key() == "agent_inbox_overflow") {
        const auto v = it->get<std::string>();
        EXPECT_TRUE(v == "reject" || v == "drop_oldest") << "agent_inbox_overflow: " << v;
        options.agent_inbox.overflow = v == "drop_oldest" ? OverflowPolicy::DropOldest : OverflowPolicy::Reject;
      } else if (it.key() == "concurrency") {
        options.concurrency = limits_of(*it);
      } else if (it.key() == "cancel_grace_ms") {
        options.cancel_grace_ms = it->get<std::uint64_t>();
      } else {
        ADD_FAILURE() << "unknown option " << it.key();
      }
    }
    auto [tx, rx] = inbox_channel();
    inbox_.emplace(std::move(rx));
    manager_ = std::make_shared<BackgroundTaskManager>(exec_, options);
    manager_->set_owner_inbox(std::move(tx));
    EXPECT_TRUE(manager_->set_store(store_).ok());
    auto plugin = std::make_shared<BackgroundTaskPlugin>(manager_);
    auto env = ExecutionEnv::from_plugins({plugin});
    EXPECT_TRUE(env.ok());
    if (env.ok()) {
      EXPECT_TRUE(store_->register_keys(env->key_registrations).ok());
    }
  }
  ~Runner() { manager_.reset(); }  // frames of unsettled bodies are freed before the executor goes
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Runs one step, then the executor until idle; returns the step's output.
  json step(const json& s) {
    json out = apply(s);
    exec_.run_until_idle();
    for (auto [number, slept] : bgtasks::detail::ManagerInternals::take_fired_host_timers(*manager_)) {
      auto it = timer_alias_.find(number);
      fired_.push_back(json::array({it == timer_alias_.end() ? json(nullptr) : json(it->second), slept}));
    }
    return out;
  }

 private:
  static std::string str(const json& s, const char* key) {
    if (!s.contains(key) || !s[key].is_string()) {
      ADD_FAILURE() << "step " << s.dump() << ": missing string field '" << key << "'";
      return {};
    }
    return s[key].get<std::string>();
  }
  static std::optional<std::string> opt_str(const json& s, const char* key) {
    if (!s.contains(key)) return std::nullopt;
    return str(s, key);
  }
  static std::uint64_t ms(const json& s) {
    if (!s.contains("ms") || !s["ms"].is_number_unsigned()) {
      ADD_FAILURE() << "step " << s.dump() << ": 'ms' must be a non-negative integer";
      return 0;
    }
    return s["ms"].get<std::uint64_t>();
  }

  // {"per_thread": n?, "per_type": {type: n}?}
  static ConcurrencyLimits limits_of(const json& j) {
    ConcurrencyLimits l;
    if (j.contains("per_thread")) l.per_thread = j["per_thread"].get<std::size_t>();
    if (j.contains("per_type"))
      for (auto it = j["per_type"].begin(); it != j["per_type"].end(); ++it)
        l.per_type[it.key()] = it->get<std::size_t>();
    return l;
  }

  // A task reference: an alias bound by an earlier "as", or "=<literal id>".
  std::string task_ref(const json& s, const char* key = "task") {
    std::string r = str(s, key);
    if (!r.empty() && r[0] == '=') return r.substr(1);
    auto it = aliases_.find(r);
    if (it == aliases_.end()) {
      ADD_FAILURE() << "step " << s.dump() << ": unbound alias '" << r << "'";
      return "<unbound " + r + ">";
    }
    return it->second;
  }

  json do_spawn(const json& s, bool agent) {
    TaskParentContext parent;
    if (s.contains("parent")) {
      auto p = parent_context_from_json(s["parent"], "parent");
      if (!p) {
        ADD_FAILURE() << "step " << s.dump() << ": " << p.error().message;
        return nullptr;
      }
      parent = std::move(*p);
    }
    const std::string thread = str(s, "thread");
    const std::string type = agent ? std::string("sub_agent") : str(s, "type");
    const std::optional<std::string> name = opt_str(s, "name");
    const std::string description = str(s, "description");
    std::optional<std::uint64_t> timeout;
    if (s.contains("timeout_ms")) timeout = s["timeout_ms"].get<std::uint64_t>();
    auto spawn = [&] {
      if (timeout)
        return manager_->spawn_host(
            SpawnOptions{thread, type, name ? std::optional<std::string_view>(*name) : std::nullopt, description,
                         parent, timeout},
            agent);
      return manager_->spawn_host(thread, type, name ? std::optional<std::string_view>(*name) : std::nullopt,
                                  description, parent, agent);
    };
    std::optional<Result<TaskId>> r;
    if (s.contains("child_of")) {
      // The spawn happens inside that task's body: it is the ambient parent (JS: its ctx.spawn).
      auto scope = manager_->enter_task(task_ref(s, "child_of"));
      r.emplace(spawn());
    } else {
      r.emplace(spawn());
    }
    if (!*r) return error_json(r->error());
    if (s.contains("as")) aliases_[str(s, "as")] = **r;
    return json{{"id", **r}};
  }

  json apply(const json& s) {
    const std::string op = str(s, "op");
    auto& m = *manager_;
    if (op == "spawn") return do_spawn(s, false);
    if (op == "spawn_agent") return do_spawn(s, true);
    if (op == "emit") return m.emit(task_ref(s), str(s, "event_type"), s.value("payload", json(nullptr)));
    if (op == "complete") {
      auto r = m.complete(task_ref(s), s.value("result", json(nullptr)));
      return r ? json(nullptr) : error_json(r.error());
    }
    if (op == "fail") {
      auto r = m.fail(task_ref(s), str(s, "error"));
      return r ? json(nullptr) : error_json(r.error());
    }
    if (op == "sleep") {
      auto r = bgtasks::detail::ManagerInternals::arm_host_timer(m, task_ref(s), ms(s));
      if (!r) return error_json(r.error());
      timer_alias_[*r] = str(s, "as");
      return nullptr;
    }
    if (op == "timers") {
      json out = std::move(fired_);
      fired_ = json::array();
      return out;
    }
    if (op == "advance") {
      EXPECT_TRUE(exec_.advance(ms(s)));
      return nullptr;
    }
    if (op == "run") return nullptr;
    if (op == "cancel") return m.cancel(task_ref(s));
    if (op == "cancel_tree") return m.cancel_tree(task_ref(s));
    if (op == "cancel_all") return m.cancel_all(str(s, "thread"));
    if (op == "send") {
      auto r = m.send_task_inbox_message(task_ref(s), str(s, "thread"), str(s, "from"), str(s, "content"));
      return r ? json(nullptr) : error_json(r.error());
    }
    if (op == "take_messages") {
      json out = json::array();
      for (auto& msg : m.take_agent_messages(task_ref(s))) out.push_back(std::move(msg));
      return out;
    }
    if (op == "get") {
      auto summary = m.get(task_ref(s));
      return summary ? to_json(*summary) : json(nullptr);
    }
    if (op == "list") {
      json out = json::array();
      for (const auto& summary : m.list(str(s, "thread"))) out.push_back(to_json(summary));
      return out;
    }
    if (op == "has_running") return m.has_running(str(s, "thread"));
    if (op == "drain") {
      json out = json::array();
      if (s.contains("thread")) {
        for (const auto& e : inbox_->drain_events(str(s, "thread"))) out.push_back(e.to_json());
      } else {
        for (auto& e : inbox_->drain()) out.push_back(std::move(e));
      }
      return out;
    }
    if (op == "snapshot") {
      return s.contains("thread") ? to_json(m.persisted_snapshot(str(s, "thread"))) : to_json(m.persisted_snapshot());
    }
    if (op == "restore") {
      if (!s.contains("snapshot")) {
        ADD_FAILURE() << "restore without a snapshot";
      }
      auto r = m.restore_json(str(s, "thread"), s.value("snapshot", json(nullptr)).dump());
      return r ? json{{"added", r->added}, {"skipped", r->skipped}} : error_json(r.error());
    }
    if (op == "forget") return m.forget(task_ref(s));
    if (op == "set_concurrency") {
      auto r = m.set_concurrency(limits_of(s));
      return r ? json(nullptr) : error_json(r.error());
    }
    if (op == "begin_shutdown") return m.begin_shutdown();
    if (op == "finish_shutdown") return m.finish_shutdown();
    if (op == "cancel_reason") {
      auto r = m.cancel_reason(task_ref(s));
      return r ? json(as_str(*r)) : json(nullptr);
    }
    if (op == "stats") return m.stats().to_json();
    if (op == "tree") {
      return s.contains("thread") ? m.task_tree(str(s, "thread")) : m.task_tree(std::nullopt);
    }
    ADD_FAILURE() << "unknown op '" << op << "'";
    return json{{"unknown_op", op}};
  }

  ManualClock clock_;
  Executor exec_;
  std::shared_ptr<StateStore> store_;
  std::optional<InboxReceiver> inbox_;
  std::shared_ptr<BackgroundTaskManager> manager_;  // declared last: destroyed first
  std::map<std::string, TaskId> aliases_;
  std::map<std::uint64_t, std::string> timer_alias_;
  json fired_ = json::array();
};

std::string test_name(const ::testing::TestParamInfo<fs::path>& info) {
  std::string n = info.param.stem().string();
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

class ScenarioTest : public ::testing::TestWithParam<fs::path> {};

TEST_P(ScenarioTest, TranscriptMatchesExpected) {
  const fs::path file = GetParam();
  const json scenario = read_json_file(file);
  const std::string name = scenario.value("name", std::string());
  EXPECT_EQ(name, file.stem().string()) << "a scenario's name is its file name";
  ASSERT_TRUE(scenario.contains("steps") && scenario["steps"].is_array());
  ASSERT_TRUE(scenario.contains("expected") && scenario["expected"].is_array());
  const json& steps = scenario["steps"];
  const json& expected = scenario["expected"];
  ASSERT_EQ(steps.size(), expected.size()) << "one expected output per step";

  json transcript = json::array();
  {
    Runner runner(scenario);
    for (const auto& s : steps) transcript.push_back(runner.step(s));
  }

  std::error_code ec;
  fs::create_directories(transcript_dir(), ec);
  ASSERT_FALSE(ec) << ec.message();
  {
    std::ofstream out(transcript_dir() / (file.stem().string() + ".json"), std::ios::binary | std::ios::trunc);
    out << canonical(transcript);
  }

  for (std::size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(canonical(transcript[i]), canonical(expected[i]))
        << file.filename().string() << " step " << i << ": " << steps[i].dump();
  }
  EXPECT_EQ(canonical(transcript), canonical(expected));
}

INSTANTIATE_TEST_SUITE_P(Scenario, ScenarioTest, ::testing::ValuesIn(scenario_files()), test_name);

TEST(ScenarioFiles, AtLeastTwentyTwoWithUniqueNames) {
  const auto files = scenario_files();
  EXPECT_GE(files.size(), 22u);
  std::set<std::string> names;
  for (const auto& f : files) EXPECT_TRUE(names.insert(test_name({f, 0})).second) << f;
}

}  // namespace
