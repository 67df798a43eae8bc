// The shared bad-input catalogue (scenarios/bad_inputs/catalogue.json), run natively: every row
// that is not "js_only" goes through the core's public API as the wasm binding would drive it
// (restore_json, spawn_host, send_task_inbox_message, parse_json + emit). Each refused row must
// answer the expected code with a message naming the problem and leave the manager unchanged
// (snapshot_json, next_task_number, stats, inbox depths); each accepted row must have its
// documented effect. Nothing may crash. The format is described in scenarios/bad_inputs/README.md.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "support.hpp"

namespace {

using namespace bgtasks;
using bgtasks::testing::Harness;

std::string catalogue_path() { return std::string(BGTASKS_SCENARIO_DIR) + "/bad_inputs/catalogue.json"; }

std::optional<json> load_catalogue() {
  std::ifstream f(catalogue_path(), std::ios::binary);
  if (!f.good()) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("rows")) return std::nullopt;
  return j;
}

const json& catalogue() {
  static const json c = load_catalogue().value_or(json::object());
  return c;
}

struct Row {
  std::string name;
  json j;
};
void PrintTo(const Row& r, std::ostream* os) { *os << r.name; }

std::vector<Row> native_rows() {
  std::vector<Row> out;
  const json& c = catalogue();
  if (!c.contains("rows")) return out;
  for (const auto& r : c["rows"])
    if (!r.value("js_only", false)) out.push_back({r.at("name").get<std::string>(), r});
  return out;
}

// ---- decoding a row ---------------------------------------------------------------------------
std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

// Replaces every expand marker in `s` ({"marker", "repeat", "times"}).
std::string expand(std::string s, const json& row) {
  if (!row.contains("expand")) return s;
  for (const auto& e : row["expand"]) {
    const std::string marker = e.at("marker");
    std::string fill;
    const std::string unit = e.at("repeat");
    const std::size_t times = e.at("times");
    fill.reserve(unit.size() * times);
    for (std::size_t i = 0; i < times; ++i) fill += unit;
    for (std::size_t p = s.find(marker); p != std::string::npos; p = s.find(marker, p + fill.size()))
      s.replace(p, marker.size(), fill);
  }
  return s;
}

// A string input: absent → `fallback`; `<field>_hex` → raw bytes. Anything else must be a string
// (JS-only encodings such as {"$undefined": true} belong to js_only rows).
std::string str_input(const json& row, const std::string& field, const std::string& fallback) {
  if (row.contains(field + "_hex")) return from_hex(row[field + "_hex"].get<std::string>());
  if (!row.contains(field)) return fallback;
  const json& v = row[field];
  if (!v.is_string()) {
    ADD_FAILURE() << "field '" << field << "' is not a string in a row run natively: " << v.dump();
    return fallback;
  }
  return expand(v.get<std::string>(), row);
}

// Expectations for this target: the row's, with the "native" object's keys overriding them.
struct Expect {
  json error;  // null: accepted
  std::vector<std::string> message_contains;
  json accepted;
  std::optional<std::string> known_bug;
};

Expect expectation(const json& row) {
  json merged = row;
  if (row.contains("native"))
    for (auto it = row["native"].begin(); it != row["native"].end(); ++it) merged[it.key()] = it.value();
  Expect e;
  e.error = merged.value("error", json());
  if (merged.contains("message_contains"))
    e.message_contains = merged["message_contains"].get<std::vector<std::string>>();
  e.accepted = merged.value("accepted", json::object());
  if (merged.contains("known_bug")) e.known_bug = merged["known_bug"].get<std::string>();
  return e;
}

std::uint64_t bg_number(const std::string& id) {
  auto n = parse_bg_number(id);
  EXPECT_TRUE(n.has_value()) << id;
  return n.value_or(0);
}

// ---- the fixture: the catalogue's setup, driven as the binding drives host tasks --------------
struct World {
  std::unique_ptr<Harness> h = bgtasks::testing::manager_with_store_and_inbox();
  std::string thread;
  std::map<std::string, std::string> refs;

  World() {
    const json& setup = catalogue().at("setup");
    thread = setup.at("thread");
    auto& m = *h->manager;
    auto r = m.restore_json(thread, dump(setup.at("snapshot")));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    for (const auto& t : setup.at("tasks")) {
      const bool agent = t.value("agent", false);
      std::optional<std::string> name;
      if (t.contains("task_name")) name = t["task_name"].get<std::string>();
      auto id =
          m.spawn_host(thread, t.value("type", "shell"), name ? std::optional<std::string_view>(*name) : std::nullopt,
                       t.value("description", ""), {}, agent);
      EXPECT_TRUE(id.ok());
      if (!id.ok()) continue;
      EXPECT_EQ(*id, t.at("expect_id").get<std::string>());
      refs["@" + t.at("as").get<std::string>()] = *id;
      if (t.contains("complete")) {
        EXPECT_TRUE(m.complete(*id, t["complete"]).ok());
      }
    }
    for (auto it = setup["refs"].begin(); it != setup["refs"].end(); ++it) refs[it.key()] = it.value();
    h->run_until_idle();
    EXPECT_EQ(m.next_task_number(), bg_number(setup.at("next_id")));
  }

  std::string resolve(const std::string& ref) const {
    auto it = refs.find(ref);
    return it == refs.end() ? ref : it->second;
  }

  struct State {
    std::string snapshot;
    std::uint64_t next;
    std::string stats;
    std::size_t owner_depth;
    std::size_t agent_depth;
    bool operator==(const State&) const = default;
  };
  State state() const {
    auto& m = *h->manager;
    return {m.snapshot_json(), m.next_task_number(), dump(m.stats().to_json()), h->inbox->len(),
            m.agent_inbox_len(resolve("@agent"))};
  }
};

// What an operation answered: an error, or a value describing the effect.
struct Outcome {
  std::optional<Error> error;
  json value;  // restore: {added, skipped}; spawn: id; send: null; emit: delivered
};

Outcome run_op(World& w, const json& row) {
  auto& m = *w.h->manager;
  const std::string op = row.at("op");
  const std::string thread = str_input(row, "thread", w.thread);
  if (op == "restore") {
    std::string text;
    if (row.contains("bytes_hex"))
      text = from_hex(row["bytes_hex"].get<std::string>());
    else if (row.contains("value"))
      text = dump(row["value"]);
    else
      text = str_input(row, "text", "");
    auto r = m.restore_json(thread, text);
    if (!r) return {r.error(), nullptr};
    return {std::nullopt, json{{"added", r->added}, {"skipped", r->skipped}}};
  }
  if (op == "spawn") {
    std::optional<std::string> name;
    if (row.contains("task_name") && !row["task_name"].is_null()) name = str_input(row, "task_name", "");
    auto r = m.spawn_host(thread, str_input(row, "type", "shell"),
                          name ? std::optional<std::string_view>(*name) : std::nullopt,
                          str_input(row, "description", ""), {}, row.value("agent", false));
    if (!r) return {r.error(), nullptr};
    return {std::nullopt, *r};
  }
  if (op == "send") {
    auto r = m.send_task_inbox_message(w.resolve(str_input(row, "task", "@agent")), thread,
                                       str_input(row, "from", "parent"), str_input(row, "content", "hi"));
    if (!r) return {r.error(), nullptr};
    return {std::nullopt, nullptr};
  }
  if (op == "emit") {
    // The binding's path: the payload arrives as JSON text and is parsed within the limits.
    const std::string text = row.contains("payload_hex") ? from_hex(row["payload_hex"].get<std::string>())
                                                         : str_input(row, "payload_text", "null");
    auto payload = parse_json(text, "payload");
    if (!payload) return {payload.error(), nullptr};
    return {std::nullopt, m.emit(w.resolve(str_input(row, "task", "@plain")), str_input(row, "event_type", "progress"),
                                 std::move(*payload))};
  }
  ADD_FAILURE() << "unknown op " << op;
  return {std::nullopt, nullptr};
}

class Catalogue : public ::testing::TestWithParam<Row> {};

TEST_P(Catalogue, Row) {
  const json& row = GetParam().j;
  const Expect want = expectation(row);
  if (want.known_bug) GTEST_SKIP() << "known bug: " << *want.known_bug;
  ASSERT_FALSE(want.error.is_string() && want.error == "TypeError")
      << "TypeError is a JS answer; give a \"native\" override";

  World w;
  // Ids granted as a shared store would grant them ({"grant": [first, count]}).
  if (row.contains("grant")) w.h->manager->grant_ids(row["grant"].at(0), row["grant"].at(1));
  const auto before = w.state();
  Outcome got = run_op(w, row);

  if (!want.error.is_null()) {
    ASSERT_TRUE(got.error.has_value()) << "accepted, answered " << got.value.dump();
    EXPECT_EQ(std::string(errc_name(got.error->code)), want.error.get<std::string>()) << got.error->message;
    for (const auto& s : want.message_contains)
      EXPECT_NE(got.error->message.find(s), std::string::npos)
          << "message lacks \"" << s << "\": " << got.error->message;
    EXPECT_TRUE(w.state() == before) << "state changed:\n"
                                     << before.snapshot << "\n→ " << w.state().snapshot << "\nstats " << before.stats
                                     << " → " << w.state().stats;
  } else {
    ASSERT_FALSE(got.error.has_value()) << errc_name(got.error->code) << ": " << got.error->message;
    const std::string op = row.at("op");
    const json& a = want.accepted;
    const auto after = w.state();
    if (op == "restore") {
      EXPECT_EQ(got.value["added"], a.at("added"));
      if (a.contains("skipped")) {
        EXPECT_EQ(got.value["skipped"], a["skipped"]);
      }
      EXPECT_EQ(after.next, bg_number(a.at("next_id")));
    } else if (op == "spawn") {
      EXPECT_EQ(got.value, a.at("id"));
      auto s = w.h->manager->get(got.value.get<std::string>());
      ASSERT_TRUE(s.has_value());
      EXPECT_EQ(s->status, TaskStatus::Running);
      EXPECT_EQ(after.next, before.next + 1);
    } else if (op == "send") {
      EXPECT_EQ(after.agent_depth, before.agent_depth + 1);
      EXPECT_EQ(after.snapshot, before.snapshot);
    } else if (op == "emit") {
      const bool delivered = a.at("delivered");
      EXPECT_EQ(got.value, delivered);
      EXPECT_EQ(after.owner_depth, before.owner_depth + (delivered ? 1 : 0));
      EXPECT_EQ(after.snapshot, before.snapshot);
    }
    if (op != "restore" && op != "spawn") {
      EXPECT_EQ(after.next, before.next);
    }
  }

  // Still usable, and every output path copes with what went in (invalid UTF-8 included). A row
  // that used up its granted ids grants the probe one more ({"probe_grant": [first, count]}).
  auto& m = *w.h->manager;
  if (row.contains("probe_grant")) m.grant_ids(row["probe_grant"].at(0), row["probe_grant"].at(1));
  const std::uint64_t next = m.next_task_number();
  auto probe = m.spawn_host(w.thread, "probe", std::nullopt, "after the row", {}, false);
  ASSERT_TRUE(probe.ok());
  EXPECT_EQ(bg_number(*probe), next);
  EXPECT_TRUE(m.complete(*probe, json{{"ok", true}}).ok());
  w.h->run_until_idle();
  EXPECT_NO_THROW({
    (void)m.snapshot_json();
    (void)dump(m.task_tree());
    for (const auto& msg : m.take_agent_messages(w.resolve("@agent"))) (void)dump(msg);
    (void)w.h->inbox->drain_json();
  });
}

INSTANTIATE_TEST_SUITE_P(BadInput, Catalogue, ::testing::ValuesIn(native_rows()),
                         [](const ::testing::TestParamInfo<Row>& info) { return info.param.name; });

TEST(BadInputCatalogue, HasAtLeastThirtyRowsWithUniqueNamesAndKnownOps) {
  const json& c = catalogue();
  ASSERT_TRUE(c.contains("rows")) << "cannot load " << catalogue_path();
  std::set<std::string> names;
  std::size_t both = 0;
  for (const auto& r : c["rows"]) {
    const std::string name = r.at("name");
    EXPECT_TRUE(names.insert(name).second) << "duplicate row " << name;
    for (char ch : name) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_') << name;
    const std::string op = r.at("op");
    EXPECT_TRUE(op == "restore" || op == "spawn" || op == "send" || op == "emit") << name << ": " << op;
    EXPECT_TRUE(r.contains("error")) << name;
    EXPECT_FALSE(r.value("js_only", false) && r.value("native_only", false)) << name;
    if (!r.value("js_only", false) && !r.value("native_only", false)) ++both;
  }
  EXPECT_GE(both, 30u) << "rows run on both targets";
}

}  // namespace
