// The codec's direct writer and DOM-less snapshot reader against nlohmann's DOM, input by input:
//  - parse_snapshot(text) gives what snapshot_from_json(json::parse(text)) gives: the same
//    snapshot, or the same error code and message (corpus files, every text and object in the
//    scenarios and the bad-input catalogue, and seeded generated texts with wrong types,
//    duplicate keys, unknown keys, missing fields and broken syntax);
//  - write_json / dump(x) / drain_json write the bytes of nlohmann's dump of the DOM form.
#include <gtest/gtest.h>

#include <clocale>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bgtasks/bgtasks.hpp"

namespace {

using namespace bgtasks;

// nlohmann's own text, the reference of every writer (dump() itself now goes through the writer).
std::string nl_dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The DOM decode the reader replaces: nlohmann's parser (the reference of what JSON is, and of
// its values), the codec's limits, then snapshot_from_json. parse_json (the codec's own reader,
// json_sax.hpp) must agree with nlohmann on the way; a disagreement comes out as an error here.
Result<BackgroundTaskStateSnapshot> dom_decode(std::string_view text) {
  auto ours = parse_json(text, "snapshot", Errc::InvalidSnapshot, kMaxSnapshotDepth);
  const json ref = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!ours) {
    const bool syntax = ours.error().message.find("not valid JSON") != std::string::npos;
    if (syntax && !ref.is_discarded()) return errors::invalid_snapshot("parse_json refused valid JSON");
    return ours.error();
  }
  if (ref.is_discarded()) return errors::invalid_snapshot("parse_json accepted invalid JSON");
  if (*ours != ref) return errors::invalid_snapshot("parse_json's value differs from nlohmann's");
  return snapshot_from_json(ref);
}

// Returns "" when both agree, else a description.
std::string compare_decode(const std::string& text) {
  auto fast = parse_snapshot(text);
  auto dom = dom_decode(text);
  if (fast.ok() != dom.ok())
    return "ok differs: reader " + (fast.ok() ? std::string("ok") : fast.error().message) + " / dom " +
           (dom.ok() ? std::string("ok") : dom.error().message);
  if (!fast.ok()) {
    if (fast.error() == dom.error()) return "";
    return "error differs: reader \"" + fast.error().message + "\" / dom \"" + dom.error().message + "\"";
  }
  if (!(*fast == *dom)) return "snapshots differ";
  // Same value, also through the writer.
  if (dump(*fast) != nl_dump(to_json(*dom))) return "re-encoding differs";
  return "";
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Every string and every object/array (as text) inside a JSON value: scenario steps carry snapshot
// texts and snapshot objects at various places.
void collect_texts(const json& j, std::vector<std::string>& out) {
  if (j.is_string()) {
    out.push_back(j.get<std::string>());
  } else if (j.is_structured()) {
    out.push_back(nl_dump(j));
    for (const auto& e : j) collect_texts(e, out);
  }
}

// ---- seeded generator of snapshot-shaped texts --------------------------------------------------
class Gen {
 public:
  explicit Gen(std::uint32_t seed) : rng_(seed) {}

  std::string snapshot_text() {
    std::string s = "{";
    const int extra_root = pick(4) == 0 ? 1 : 0;
    if (extra_root) s += "\"other\":" + any_value(2) + ",";
    if (pick(25) == 0) {
      s += "\"tasks\":" + any_value(2);  // wrong type (or, rarely, a valid object)
    } else if (pick(40) != 0) {
      s += "\"tasks\":" + tasks_object();
    } else {
      s += "\"not_tasks\":{}";
    }
    if (pick(30) == 0) s += ",\"tasks\":" + tasks_object();  // duplicate "tasks": the last wins
    s += "}";
    if (pick(30) == 0) s = "[" + s + "]";
    if (pick(20) == 0) s = mutate(s);
    return s;
  }

 private:
  std::mt19937 rng_;
  std::uint32_t pick(std::uint32_t n) { return std::uniform_int_distribution<std::uint32_t>(0, n - 1)(rng_); }

  std::string id() {
    static const char* ids[] = {"bg_0", "bg_1", "bg_2",        "bg_10", "bg_9",
                                "x",    "",     "bg_\xc3\xa9", "a\"b",  "bg_18446744073709551615",
                                "B",    "bg_01"};
    return ids[pick(sizeof ids / sizeof *ids)];
  }

  std::string quoted(const std::string& s) { return nl_dump(json(s)); }

  std::string any_scalar() {
    switch (pick(12)) {
      case 0:
        return "null";
      case 1:
        return "true";
      case 2:
        return "false";
      case 3:
        return "0";
      case 4:
        return "-3";
      case 5:
        return "-0";
      case 6:
        return "1.5";
      case 7:
        return "1e3";
      case 8:
        return "18446744073709551615";
      case 9:
        return "18446744073709551616";
      case 10:
        return "\"s\\u00e9\\n\"";
      default:
        return quoted(id());
    }
  }

  std::string any_value(int depth) {
    if (depth <= 0) return any_scalar();
    switch (pick(6)) {
      case 0: {
        std::string s = "[";
        const auto n = pick(3);
        for (std::uint32_t i = 0; i < n; ++i) s += (i ? "," : "") + any_value(depth - 1);
        return s + "]";
      }
      case 1: {
        std::string s = "{";
        const auto n = pick(3);
        for (std::uint32_t i = 0; i < n; ++i)
          s += std::string(i ? "," : "") + (pick(2) ? "\"k\"" : "\"j\"") + ":" + any_value(depth - 1);
        return s + "}";
      }
      default:
        return any_scalar();
    }
  }

  // A field value: usually right, sometimes any value.
  std::string string_or_any(const std::string& good) { return pick(12) ? quoted(good) : any_value(1); }

  std::string parent() {
    if (pick(15) == 0) return any_value(1);
    std::string s = "{";
    bool first = true;
    for (const char* k : {"task_id", "run_id", "call_id", "agent_id", "extra"}) {
      if (pick(2)) continue;
      s += std::string(first ? "" : ",") + "\"" + k + "\":" + (pick(8) ? quoted("p-" + id()) : any_value(1));
      first = false;
    }
    return s + "}";
  }

  std::string meta(const std::string& key) {
    if (pick(30) == 0) return any_value(1);
    std::vector<std::pair<std::string, std::string>> f;
    const std::string tid = pick(15) ? key : id();
    auto maybe = [&](const char* name, std::string v, int absent_one_in) {
      if (pick(static_cast<std::uint32_t>(absent_one_in)) != 0) f.emplace_back(name, std::move(v));
    };
    maybe("task_id", string_or_any(tid), 25);
    maybe("owner_thread_id", string_or_any("t1"), 4);
    maybe("task_type", string_or_any("shell"), 25);
    maybe("name", pick(3) ? string_or_any("n") : "null", 2);
    maybe("description", string_or_any("d\tx"), 25);
    static const char* statuses[] = {"running", "completed", "failed", "cancelled", "done", "Running"};
    maybe("status", pick(12) ? quoted(statuses[pick(4)]) : (pick(2) ? quoted(statuses[4 + pick(2)]) : any_value(1)),
          25);
    maybe("error", pick(3) ? string_or_any("boom") : "null", 2);
    maybe("result", any_value(3), 2);
    maybe("created_at_ms", pick(10) ? std::to_string(pick(100000)) : any_scalar(), 25);
    maybe("completed_at_ms", pick(8) ? std::to_string(pick(100000)) : any_scalar(), 2);
    maybe("parent_context", parent(), 3);
    if (pick(6) == 0) f.emplace_back("unknown", any_value(2));
    if (pick(10) == 0 && !f.empty()) f.push_back(f[pick(static_cast<std::uint32_t>(f.size()))]);  // duplicate key
    if (pick(12) == 0 && !f.empty()) f.emplace_back(f[pick(static_cast<std::uint32_t>(f.size()))].first, any_value(1));
    std::shuffle(f.begin(), f.end(), rng_);
    std::string s = "{";
    for (std::size_t i = 0; i < f.size(); ++i) s += (i ? "," : "") + quoted(f[i].first) + ":" + f[i].second;
    return s + "}";
  }

  std::string tasks_object() {
    std::string s = "{";
    const auto n = pick(6);
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::string key = id();
      s += (i ? "," : "") + quoted(key) + ":" + meta(key);
    }
    return s + "}";
  }

  // Byte-level damage: truncation, a flipped byte, an inserted byte, invalid UTF-8.
  std::string mutate(std::string s) {
    if (s.empty()) return s;
    const auto at = pick(static_cast<std::uint32_t>(s.size()));
    switch (pick(4)) {
      case 0:
        s.resize(at);
        break;
      case 1:
        s[at] = static_cast<char>(pick(256));
        break;
      case 2:
        s.insert(s.begin() + at, static_cast<char>(pick(256)));
        break;
      default:
        s.insert(at, "\"\xff\"");
        break;
    }
    return s;
  }
};

TEST(CodecDifferential, ReaderMatchesDomOnCorpusAndScenarios) {
  std::vector<std::string> texts;
  const std::filesystem::path root = std::filesystem::path(BGTASKS_SCENARIO_DIR).parent_path();
  for (const auto& dir : {root / "fuzz" / "corpus" / "fuzz_snapshot", root / "fuzz" / "corpus" / "fuzz_event_json"})
    if (std::filesystem::exists(dir))
      for (const auto& e : std::filesystem::directory_iterator(dir)) texts.push_back(read_file(e.path()));
  for (const auto& e : std::filesystem::recursive_directory_iterator(BGTASKS_SCENARIO_DIR)) {
    if (e.path().extension() != ".json") continue;
    const std::string text = read_file(e.path());
    texts.push_back(text);
    auto j = json::parse(text, nullptr, false);
    if (!j.is_discarded()) collect_texts(j, texts);
  }
  texts.push_back(read_file(std::filesystem::path(BGTASKS_FIXTURE_DIR) / "awaken_state.json"));
  ASSERT_GT(texts.size(), 100u);
  std::size_t accepted = 0;
  for (const auto& t : texts) {
    const std::string d = compare_decode(t);
    EXPECT_EQ(d, "") << "input: " << t.substr(0, 400);
    if (parse_snapshot(t).ok()) ++accepted;
  }
  EXPECT_GT(accepted, 5u);
}

TEST(CodecDifferential, ReaderMatchesDomOnGeneratedTexts) {
  Gen gen(20261125);
  std::size_t accepted = 0, failures = 0;
  std::set<std::string> messages;
  for (int i = 0; i < 30000 && failures < 10; ++i) {
    const std::string t = gen.snapshot_text();
    const std::string d = compare_decode(t);
    if (!d.empty()) {
      ++failures;
      ADD_FAILURE() << d << "\ninput: " << t;
    }
    auto r = parse_snapshot(t);
    if (r.ok())
      ++accepted;
    else
      messages.insert(r.error().message);
  }
  // The generator must reach the success path and many distinct errors to mean something.
  EXPECT_GT(accepted, 1000u);
  EXPECT_GT(messages.size(), 150u);
  std::string all;
  for (const auto& m : messages) all += m + "\n";
  for (const char* part :
       {"not valid JSON", "missing field \"tasks\"", "tasks: expected an object", "expected an object {",
        "must not be empty", "does not match its key", "unknown status", "missing field \"created_at_ms\"",
        "expected a non-negative integer, got", "below 2^64", "parent_context: expected an object",
        "parent_context.run_id: expected a string or null", "owner_thread_id: expected a string,",
        "name: expected a string or null", "error: expected a string or null", "description: expected a string"})
    EXPECT_NE(all.find(part), std::string::npos) << part;
}

TEST(CodecDifferential, ReaderMatchesDomOnLimits) {
  const std::string deep_ok =
      "{\"tasks\":{\"bg_0\":{\"task_id\":\"bg_0\",\"task_type\":\"t\",\"description\":\"d\",\"status\":\"completed\","
      "\"created_at_ms\":1,\"result\":" +
      std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']') + "}}}";
  EXPECT_EQ(compare_decode(deep_ok), "");
  EXPECT_TRUE(parse_snapshot(deep_ok).ok());
  const std::string too_deep = "{\"tasks\":{\"bg_0\":{\"result\":" + std::string(kMaxJsonDepth + 1, '[') +
                               std::string(kMaxJsonDepth + 1, ']') + "}}}";
  EXPECT_EQ(compare_decode(too_deep), "");
  EXPECT_FALSE(parse_snapshot(too_deep).ok());
  for (const char* t : {"", " ", "\xef\xbb\xbf{\"tasks\":{}}", "{\"tasks\":{}} x", "{\"tasks\":{}}\n", "null", "[]",
                        "1e400", "{\"tasks\":{\"a\":{\"created_at_ms\":1e400}}}", "{\"tasks\":{\"\\ud800\":1}}"})
    EXPECT_EQ(compare_decode(t), "") << t;
}

// ---- writer ------------------------------------------------------------------------------------
std::string odd_string(std::mt19937& rng) {
  static const char* pieces[] = {"a", "bg_1", "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", "<NUL>", "\x01", "\x1f",
                                 "\x7f", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xed\x9f\xbf",
                                 "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf",
                                 // ill-formed: lone continuation, overlong, surrogate, above U+10FFFF, truncated
                                 "\x80", "\xc0\xaf", "\xc1\xbf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5", "\xff",
                                 "\xe2\x82", "\xf0\x9f\x98", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xc3"};
  std::string s;
  const int n = std::uniform_int_distribution<int>(0, 6)(rng);
  for (int i = 0; i < n; ++i) {
    const auto k = std::uniform_int_distribution<std::size_t>(0, sizeof pieces / sizeof *pieces - 1)(rng);
    if (k == 10)
      s.push_back('\0');
    else
      s += pieces[k];
  }
  return s;
}

json odd_value(std::mt19937& rng, int depth) {
  const int k = std::uniform_int_distribution<int>(0, depth > 0 ? 11 : 9)(rng);
  static const double doubles[] = {0.0,
                                   -0.0,
                                   1.5,
                                   -2.25,
                                   1e300,
                                   1e-300,
                                   5e-324,
                                   0.1,
                                   123456789.125,
                                   1e21,
                                   1e16,
                                   std::numeric_limits<double>::quiet_NaN(),
                                   std::numeric_limits<double>::infinity(),
                                   -std::numeric_limits<double>::infinity(),
                                   3.0};
  switch (k) {
    case 0:
      return nullptr;
    case 1:
      return true;
    case 2:
      return false;
    case 3:
      return std::uniform_int_distribution<std::uint64_t>()(rng);
    case 4:
      return std::uniform_int_distribution<std::int64_t>(std::numeric_limits<std::int64_t>::min(), -1)(rng);
    case 5:
      return doubles[std::uniform_int_distribution<std::size_t>(0, sizeof doubles / sizeof *doubles - 1)(rng)];
    case 6:
      return std::uniform_real_distribution<double>(-1e6, 1e6)(rng);
    case 7:
      return json::binary({1, 2, 3});
    case 8:
    case 9:
      return odd_string(rng);
    case 10: {
      json a = json::array();
      for (int i = std::uniform_int_distribution<int>(0, 3)(rng); i > 0; --i) a.push_back(odd_value(rng, depth - 1));
      return a;
    }
    default: {
      json o = json::object();
      for (int i = std::uniform_int_distribution<int>(0, 3)(rng); i > 0; --i)
        o[odd_string(rng)] = odd_value(rng, depth - 1);
      return o;
    }
  }
}

std::optional<std::string> odd_opt(std::mt19937& rng) {
  if (rng() % 2) return std::nullopt;
  return odd_string(rng);
}

PersistedTaskMeta odd_meta(std::mt19937& rng) {
  PersistedTaskMeta m;
  m.task_id = odd_string(rng);
  m.owner_thread_id = odd_string(rng);
  m.task_type = odd_string(rng);
  m.name = odd_opt(rng);
  m.description = odd_string(rng);
  m.status = static_cast<TaskStatus>(rng() % 4);
  m.error = odd_opt(rng);
  if (rng() % 2) m.result = odd_value(rng, 3);
  m.created_at_ms = rng() % 3 ? rng() : std::numeric_limits<std::uint64_t>::max();
  if (rng() % 2) m.completed_at_ms = rng();
  m.parent_context = {odd_opt(rng), odd_opt(rng), odd_opt(rng), odd_opt(rng)};
  return m;
}

// The codec's reader (json_sax.hpp) against nlohmann's parser on the lexical corners: each text
// must be accepted or refused alike, with the same value (and type: 1 vs 1.0 vs -1).
TEST(CodecDifferential, ReaderMatchesNlohmannOnLexicalCorners) {
  const std::vector<std::string> texts = {
      // whitespace, literals, BOM
      " \t\r\n1 ", "\v1", "\f1", "1\v", "true", "tru", "truex", "nul", "null ", "false,", "TRUE", "\xEF\xBB\xBF{}",
      "\xEF\xBB{}", "\xEF{}", " \xEF\xBB\xBF{}", "\xEF\xBB\xBF",
      "\xEF\xBB\xBF\xEF\xBB\xBF"
      "1",
      // numbers
      "0", "-0", "-0.0", "00", "01", "-01", "1.", ".5", "-", "+1", "1e", "1e+", "1E-2", "1e05", "0e0", "-0e-0",
      "1.5e308", "1e309", "-1e309", "1e-400", "2.2250738585072014e-308", "0.1", "123456789012345678901234567890",
      "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
      "18446744073709551615", "18446744073709551616", "-18446744073709551616", "1.0", "[1,2.0,-3,4e1]", "0x10", "1_000",
      "Infinity", "NaN", "-Infinity", "1 2", "[1 2]",
      // strings and escapes
      "\"\"", "\"a\\\"b\"", "\"\\/\\b\\f\\n\\r\\t\\\\\"", "\"\\x\"", "\"\\u00e9\"", "\"\\u00E9\"", "\"\\u0000\"",
      "\"\\u12\"", "\"\\u12g4\"", "\"\\ud83d\\ude00\"", "\"\\ud83d\"", "\"\\ud83dx\"", "\"\\ud83d\\u0041\"",
      "\"\\ude00\"", "\"\\udbff\\udfff\"", "\"\\ud800\\udc00\"", "\"a\tb\"", "\"a\nb\"", std::string("\"a\0b\"", 5),
      "\"\x7f\"", "\"unterminated", "\"\\", "\"\\u", "'single'",
      // UTF-8
      "\"\xC3\xA9\"", "\"\xC0\xAF\"", "\"\xC1\xBF\"", "\"\xC2\x80\"", "\"\xDF\xBF\"", "\"\xE0\x9F\xBF\"",
      "\"\xE0\xA0\x80\"", "\"\xED\x9F\xBF\"", "\"\xED\xA0\x80\"", "\"\xEF\xBF\xBF\"", "\"\xF0\x8F\xBF\xBF\"",
      "\"\xF0\x90\x80\x80\"", "\"\xF4\x8F\xBF\xBF\"", "\"\xF4\x90\x80\x80\"", "\"\xF5\x80\x80\x80\"", "\"\xFF\"",
      "\"\x80\"", "\"\xE2\x82\"", "\"\xE2\x82\xAC\"", "\"\xE2\x28\xA1\"", "\"\xF0\x9F\x98\"",
      // structure
      "{}", "[]", "{ }", "[ ]", "{\"a\":1}", "{\"a\" : 1 , \"b\":[true,false,null]}", "{\"a\":1,}", "[1,]", "[,1]",
      "{,}", "{\"a\"}", "{\"a\":}", "{a:1}", "{\"a\":1 \"b\":2}", "{\"a\":1}}", "[[[]]]", "[[[]]", "[]]",
      "{\"a\":{\"b\":[{}]}}", "{\"a\":1,\"a\":2}", "{\"\":0}", "[\"a\",{\"b\":\"c\"},[1,[2,[3]]]]", "", " ", "{", "}",
      "[", "]", ":", ",", "[1]x", "{}{}", "[]\n\n", "/* c */1", "1//c",
      // NUL: nlohmann's lexer ends the input at a NUL where a token starts
      std::string("{}\0x", 4), std::string("1\0", 2), std::string("1 \0 2", 5), std::string("[1\0]", 4),
      std::string("\0", 1), std::string("[\0]", 3), std::string("tr\0ue", 6), std::string("\0{}", 3)};
  std::size_t accepted = 0;
  for (const auto& t : texts) {
    auto ours = parse_json(t, "t");
    const json ref = json::parse(t.begin(), t.end(), nullptr, /*allow_exceptions=*/false);
    EXPECT_EQ(ours.ok(), !ref.is_discarded()) << "text: " << t;
    if (!ours.ok()) {
      EXPECT_NE(ours.error().message.find("not valid JSON"), std::string::npos) << t;
      continue;
    }
    ++accepted;
    if (ref.is_discarded()) continue;
    EXPECT_EQ(*ours, ref) << "text: " << t;
    EXPECT_EQ(ours->type(), ref.type()) << "text: " << t;
    EXPECT_EQ(nl_dump(*ours), nl_dump(ref)) << "text: " << t;
  }
  EXPECT_GT(accepted, 40u);                // the list reaches the success path
  EXPECT_LT(accepted, texts.size() - 50);  // and the refusals
}

// Numbers read and written the same whatever the process's C locale: a native host may run under
// one whose decimal point is ',' (strtod reads LC_NUMERIC). .ci/test-all.sh generates de_DE.UTF-8
// into build/locale and runs the tests with LOCPATH there and BGTASKS_REQUIRE_COMMA_LOCALE=1.
TEST(CodecDifferential, NumbersDoNotDependOnTheCLocale) {
  struct RestoreLocale {
    std::string saved = std::setlocale(LC_NUMERIC, nullptr);
    ~RestoreLocale() { std::setlocale(LC_NUMERIC, saved.c_str()); }
  } restore;
  if (!std::setlocale(LC_NUMERIC, "de_DE.UTF-8")) {
    if (std::getenv("BGTASKS_REQUIRE_COMMA_LOCALE")) FAIL() << "locale de_DE.UTF-8 not found (LOCPATH?)";
    GTEST_SKIP() << "no de_DE.UTF-8 locale on this machine";
  }
  ASSERT_EQ(std::localeconv()->decimal_point[0], ',');
  const std::string text = "[1.5,2.25e1,0.5,-0.125,1e2,1.7976931348623157e308]";
  auto ours = parse_json(text, "t");
  ASSERT_TRUE(ours.ok()) << ours.error().message;
  EXPECT_EQ(*ours, json::array({1.5, 22.5, 0.5, -0.125, 100.0, 1.7976931348623157e308}));
  EXPECT_EQ(*ours, json::parse(text));
  EXPECT_EQ(dump(*ours), "[1.5,22.5,0.5,-0.125,100.0,1.7976931348623157e+308]");
  const std::string snap =
      R"({"tasks":{"bg_1":{"task_id":"bg_1","task_type":"t","description":"d","status":"completed",)"
      R"("created_at_ms":1,"result":{"pct":12.5}}}})";
  auto parsed = parse_snapshot(snap);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->tasks.at("bg_1").result, json({{"pct", 12.5}}));
}

TEST(CodecDifferential, WriterMatchesNlohmannDump) {
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const json v = odd_value(rng, 4);
    ASSERT_EQ(dump(v), nl_dump(v));
    const std::string s = odd_string(rng);
    std::string out = "x";
    write_json_string(out, s);
    ASSERT_EQ(out, "x" + nl_dump(json(s)));
  }
  for (int i = 0; i < 3000; ++i) {
    const PersistedTaskMeta m = odd_meta(rng);
    ASSERT_EQ(dump(m), nl_dump(to_json(m)));
    const TaskSummary s = m.to_summary();
    ASSERT_EQ(dump(s), nl_dump(to_json(s)));
    std::string p;
    write_json(p, m.parent_context);
    ASSERT_EQ(p, nl_dump(to_json(m.parent_context)));
  }
  for (int i = 0; i < 300; ++i) {
    BackgroundTaskStateSnapshot snap;
    for (int k = static_cast<int>(rng() % 8); k > 0; --k) {
      PersistedTaskMeta m = odd_meta(rng);
      snap.tasks.emplace(m.task_id, std::move(m));
    }
    ASSERT_EQ(dump(snap), nl_dump(to_json(snap)));
    // The owner filter writes what persisted_snapshot(owner) would hold.
    const std::string owner = snap.tasks.empty() ? std::string("t") : snap.tasks.begin()->second.owner_thread_id.str();
    BackgroundTaskStateSnapshot mine;
    for (const auto& [id, m] : snap.tasks)
      if (m.owner_thread_id == owner) mine.tasks.emplace(id, m);
    ASSERT_EQ(dump(snap, owner), nl_dump(to_json(mine)));
  }
  EXPECT_EQ(dump(BackgroundTaskStateSnapshot{}), "{\"tasks\":{}}");
}

// The string scanners read eight bytes at a time: every kind of byte that ends a plain run, at
// every position of the first and second word and at the end, written and read back as nlohmann
// writes and reads it (an invalid UTF-8 byte: its replacement when written, an error when read).
TEST(CodecDifferential, StringsWithASpecialByteAtEveryPosition) {
  const std::vector<std::string> specials = {"\"",       "\\",           std::string(1, '\0'), "\x1f", "\n",  "\x7f",
                                             "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",   "\xff", "\xc3"};
  for (const auto& special : specials) {
    for (std::size_t before = 0; before <= 19; ++before) {
      for (const std::size_t after :
           {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{13}}) {
        const std::string s = std::string(before, 'a') + special + std::string(after, 'z');
        std::string written;
        write_json_string(written, s);
        ASSERT_EQ(written, nl_dump(json(s))) << "before " << before << ", after " << after;
        // Read back inside a document, with more text after it (the scanner must stop at the quote).
        const std::string doc = "[" + written + ",\"tail\"]";
        auto ours = parse_json(doc, "value");
        const json theirs = json::parse(doc, nullptr, false);
        ASSERT_EQ(ours.ok(), !theirs.is_discarded()) << doc;
        if (ours.ok()) {
          ASSERT_EQ(*ours, theirs) << doc;
        }
        const std::string raw = "[\"" + s + "\"]";  // unescaped: control bytes and bad UTF-8 refused
        auto raw_ours = parse_json(raw, "value");
        const json raw_theirs = json::parse(raw, nullptr, false);
        ASSERT_EQ(raw_ours.ok(), !raw_theirs.is_discarded()) << "raw, before " << before << ", after " << after;
        if (raw_ours.ok()) {
          ASSERT_EQ(*raw_ours, raw_theirs);
        }
      }
    }
  }
}

TEST(CodecDifferential, DrainJsonMatchesEventDom) {
  std::mt19937 rng(11);
  for (int round = 0; round < 200; ++round) {
    auto [tx, rx] = inbox_channel();
    std::vector<Event> sent;
    for (int i = static_cast<int>(rng() % 12); i > 0; --i) {
      const std::string thread = rng() % 2 ? "t1" : "t2";
      Event e;
      switch (rng() % 5) {
        case 0:
          e = Event::custom(odd_string(rng), thread, odd_string(rng), odd_value(rng, 3));
          break;
        case 1:
          e = Event::terminal(odd_string(rng), thread, TaskResult::success(odd_value(rng, 3)));
          break;
        case 2:
          e = Event::terminal(odd_string(rng), thread, TaskResult::failed(odd_string(rng)));
          break;
        case 3:
          e = Event::terminal(odd_string(rng), thread, TaskResult::cancelled());
          break;
        default:
          e = Event::raw(thread, odd_value(rng, 3));
          break;
      }
      sent.push_back(e);
      ASSERT_EQ(tx.send_event(std::move(e)), SendOutcome::Delivered);
    }
    auto expect = [&](const std::vector<const Event*>& evs) {
      std::string s = "[";
      for (std::size_t i = 0; i < evs.size(); ++i) s += (i ? "," : "") + nl_dump(evs[i]->to_json());
      return s + "]";
    };
    std::vector<const Event*> t1;
    for (const auto& e : sent)
      if (e.thread == "t1") t1.push_back(&e);
    const std::size_t max = rng() % 3 == 0 ? 2 : SIZE_MAX;
    if (t1.size() > max) t1.resize(max);
    ASSERT_EQ(rx.drain_json("t1", max), expect(t1));
    // What is left, in queue order (the t1 events beyond max stay queued where they were).
    std::vector<const Event*> left;
    std::size_t taken = 0;
    for (const auto& e : sent) {
      if (e.thread == "t1" && taken < max) {
        ++taken;
        continue;
      }
      left.push_back(&e);
    }
    const std::size_t cut = std::min<std::size_t>(left.size(), rng() % 2 ? 3 : SIZE_MAX);
    ASSERT_EQ(rx.drain_json(std::nullopt, cut),
              expect({left.begin(), left.begin() + static_cast<std::ptrdiff_t>(cut)}));
    ASSERT_EQ(rx.drain_json(), expect({left.begin() + static_cast<std::ptrdiff_t>(cut), left.end()}));
    ASSERT_EQ(rx.drain_json(), "[]");
  }
}

}  // namespace
