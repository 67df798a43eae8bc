// fuzz_event_json: the input bytes are JSON text for the codec and the inbox.
//  - parse_json agrees with nlohmann (accepts only valid JSON; within the limits it accepts all of
//    it and gives the same value; a refusal of valid JSON is the depth or size limit);
//  - parent_context_from_json, summary_from_json, meta_from_json, snapshot_from_json on the value
//    and on its members (two levels down): whatever decodes re-encodes and decodes to an equal
//    value, also through text (dump → parse_json); meta and summary agree;
//  - events: a value in the shape of an owner-inbox event decodes to an Event whose to_json is the
//    value; every value goes through an inbox (typed and raw, drain / drain(thread) / drain_json /
//    try_recv, a bounded inbox) unchanged; inbox_event_message renders awaken's text.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"

using namespace bgtasks;

namespace {

constexpr std::string_view kPrefix = "invalid snapshot: ";

void check_error(const Error& e) {
  FUZZ_CHECK(e.code == Errc::InvalidSnapshot, std::string("decoder error code ") + errc_name(e.code));
  FUZZ_CHECK(e.message.size() > kPrefix.size() && e.message.compare(0, kPrefix.size(), kPrefix) == 0,
             "decoder error without a message: " + e.message);
}

// Decoded → encoded → decoded (by value, and through text) is the identity.
template <class Decode>
void round_trip(const json& v, Decode decode, const char* what) {
  auto a = decode(v);
  if (!a.ok()) {
    check_error(a.error());
    return;
  }
  const json enc = to_json(*a);
  auto b = decode(enc);
  FUZZ_CHECK(b.ok(), std::string(what) + ": own encoding refused: " + b.error().message + "\n" + dump(enc));
  FUZZ_CHECK(*b == *a, std::string(what) + ": decode(encode(x)) != x: " + dump(enc));
  FUZZ_CHECK(to_json(*b) == enc, std::string(what) + ": encoding not stable");
  const std::string text = dump(enc);
  auto t = parse_json(text, what);
  FUZZ_CHECK(t.ok(), std::string(what) + ": dump of an encoding does not parse: " + t.error().message);
  FUZZ_CHECK(*t == enc, std::string(what) + ": dump/parse changed the value: " + text);
  auto c = decode(*t);
  FUZZ_CHECK(c.ok() && *c == *a, std::string(what) + ": decode(parse(dump(encode(x)))) != x: " + text);
}

// The owner-inbox event shapes of Event::to_json, exactly (no extra keys).
std::optional<Event> decode_event(const json& v) {
  if (!v.is_object()) return std::nullopt;
  auto kind = v.find("kind");
  auto id = v.find("task_id");
  if (kind == v.end() || !kind->is_string() || id == v.end() || !id->is_string()) return std::nullopt;
  const std::string k = kind->get<std::string>();
  const std::string tid = id->get<std::string>();
  if (k == "custom" && v.size() == 4 && v.contains("payload") && v.contains("event_type") &&
      v["event_type"].is_string())
    return Event::custom(tid, "", v["event_type"].get<std::string>(), v["payload"]);
  if (k == "completed" && v.size() == 3 && v.contains("result"))
    return Event::terminal(tid, "", TaskResult::success(v["result"]));
  if (k == "failed" && v.size() == 3 && v.contains("error") && v["error"].is_string())
    return Event::terminal(tid, "", TaskResult::failed(v["error"].get<std::string>()));
  if (k == "cancelled" && v.size() == 2) return Event::terminal(tid, "", TaskResult::cancelled());
  return std::nullopt;
}

void check_events(const json& v) {
  // Shape decode → to_json is the identity.
  std::optional<Event> ev = decode_event(v);
  if (ev) FUZZ_CHECK(ev->to_json() == v, "Event round trip changed " + dump(v) + " -> " + dump(ev->to_json()));
  FUZZ_CHECK(Event::raw("", v).to_json() == v, "raw event changed its message");

  // awaken's inbox_event_message text.
  std::string kind = "event", task_id = "unknown";
  if (v.is_object()) {
    if (v.contains("kind") && v["kind"].is_string()) kind = v["kind"].get<std::string>();
    if (v.contains("task_id") && v["task_id"].is_string()) task_id = v["task_id"].get<std::string>();
  }
  const std::string msg = inbox_event_message(v);
  FUZZ_CHECK(msg == "<background-task-event kind=\"" + kind + "\" task_id=\"" + task_id + "\">\n" + dump(v) +
                        "\n</background-task-event>",
             "inbox_event_message: " + msg.substr(0, 500));

  // Through an inbox, unchanged and in order.
  auto [tx, rx] = inbox_channel();
  const InboxSender th = tx.for_thread("th");
  const Event typed = ev ? *ev : Event::custom("bg_0", "", "fz", v);
  FUZZ_CHECK(th.send_event(typed) == SendOutcome::Delivered, "send_event refused");
  FUZZ_CHECK(th.send(v), "raw send refused");
  FUZZ_CHECK(tx.try_send(v), "try_send refused");
  FUZZ_CHECK(rx.len() == 3, "inbox length");
  auto mine = rx.drain_events("th");
  FUZZ_CHECK(mine.size() == 2 && mine[0].thread == "th" && mine[1].thread == "th",
             "drain(thread) took the wrong events");
  FUZZ_CHECK(mine[0].to_json() == typed.to_json() && mine[1].to_json() == v, "drain(thread) changed an event");
  FUZZ_CHECK(rx.len() == 1, "drain(thread) left the wrong events");
  auto rest = rx.try_recv();
  FUZZ_CHECK(rest && *rest == v && rx.is_empty(), "try_recv changed the event");

  FUZZ_CHECK(th.send_event(typed) == SendOutcome::Delivered && th.send(v), "second sends refused");
  const std::string arr = rx.drain_json();
  // drain_json output is read by JSON.parse on the JS side: no depth limit there.
  const json parsed = json::parse(arr, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!parsed.is_discarded() && parsed == json::array({typed.to_json(), v}),
             "drain_json: " + arr.substr(0, 500));

  // A bounded inbox that drops the oldest keeps the newest and counts the drop.
  auto [btx, brx] = inbox_channel({1, OverflowPolicy::DropOldest});
  FUZZ_CHECK(btx.send(json("old")) && btx.send(v), "bounded drop-oldest refused");
  FUZZ_CHECK(brx.len() == 1 && brx.dropped() == 1, "bounded inbox count");
  auto newest = brx.drain();
  FUZZ_CHECK(newest.size() == 1 && newest[0] == v, "bounded inbox kept the wrong event");
  // The receiver gone: the fallback sees the message unchanged.
  std::optional<json> fell_back;
  auto [ctx_, crx] = inbox_channel_with_fallback([&](const json& m) { fell_back = m; });
  crx.close();
  FUZZ_CHECK(ctx_.send_event(typed) == SendOutcome::Closed, "closed inbox accepted");
  FUZZ_CHECK(fell_back && *fell_back == typed.to_json(), "fallback got a different message");
}

void check_value(const json& v) {
  round_trip(
      v, [](const json& x) { return parent_context_from_json(x); }, "parent_context");
  round_trip(
      v, [](const json& x) { return summary_from_json(x); }, "summary");
  round_trip(
      v, [](const json& x) { return meta_from_json(x); }, "meta");
  round_trip(
      v, [](const json& x) { return snapshot_from_json(x); }, "snapshot");

  auto meta = meta_from_json(v);
  auto summary = summary_from_json(v);
  if (meta.ok()) {
    // `queued` is live scheduling state: a summary carries it, a persisted meta never does (a
    // restored queued task is running like any other), so both sides compare without it.
    FUZZ_CHECK(summary.ok(), "meta decodes but the summary does not");
    TaskSummary live = *summary;
    live.queued = false;
    FUZZ_CHECK(live == meta->to_summary(), "meta decodes but the summary differs");
    FUZZ_CHECK(PersistedTaskMeta::from_summary(*summary, meta->owner_thread_id).to_summary() == live,
               "from_summary/to_summary");
  }
  if (auto snap = snapshot_from_json(v); snap.ok()) {
    for (const auto& [id, m] : snap->tasks) {
      FUZZ_CHECK(!id.empty() && id == m.task_id, "snapshot entry key/id mismatch accepted: " + id);
      auto again = meta_from_json(v["tasks"][id], "tasks." + id);
      FUZZ_CHECK(again.ok() && *again == m, "snapshot entry decodes differently alone: " + id);
    }
  }
  check_events(v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto j = parse_json(text, "fuzz");
  const bool valid = json::accept(text.begin(), text.end());
  if (!j.ok()) {
    check_error(j.error());
    // Valid JSON is refused only for the depth limit (the size limit is far above -max_len).
    if (valid)
      FUZZ_CHECK(j.error().message.find("nesting deeper than") != std::string::npos,
                 "parse_json refused valid JSON: " + j.error().message);
    auto snap = parse_snapshot(text);
    FUZZ_CHECK(!snap.ok(), "parse_snapshot accepted what parse_json refuses");
    return 0;
  }
  FUZZ_CHECK(valid, "parse_json accepted invalid JSON");
  FUZZ_CHECK(*j == json::parse(text), "parse_json's value differs from nlohmann's");

  // Whatever parse_json accepts (a host's result) can be stored and still restored: the snapshot
  // holding it as a task's result must parse (kMaxSnapshotDepth = kMaxJsonDepth + 3).
  {
    json meta{{"task_id", "bg_1"},     {"task_type", "shell"}, {"description", "d"},
              {"status", "completed"}, {"created_at_ms", 1},   {"result", *j}};
    auto holder = parse_snapshot(dump(json{{"tasks", {{"bg_1", meta}}}}));
    FUZZ_CHECK(holder.ok(), "a value parse_json accepts makes its snapshot unrestorable: " + holder.error().message);
  }

  // parse_snapshot is parse_json + snapshot_from_json.
  auto s1 = parse_snapshot(text);
  auto s2 = snapshot_from_json(*j);
  FUZZ_CHECK(s1.ok() == s2.ok() && (!s1.ok() || *s1 == *s2), "parse_snapshot and snapshot_from_json disagree");
  if (!s1.ok()) FUZZ_CHECK(s1.error() == s2.error(), "parse_snapshot and snapshot_from_json name different errors");

  // The value, its members, and theirs (entries of {"tasks": {...}}, fields of a meta), at most 48.
  constexpr std::size_t kMaxValues = 48;
  std::vector<const json*> values{&*j};
  std::size_t level_begin = 0;
  for (int level = 0; level < 2; ++level) {
    const std::size_t level_end = values.size();
    for (std::size_t i = level_begin; i < level_end; ++i)
      if (values[i]->is_structured())
        for (const auto& child : *values[i]) {
          if (values.size() >= kMaxValues) break;
          values.push_back(&child);
        }
    level_begin = level_end;
  }
  for (const json* v : values) check_value(*v);
  return 0;
}
