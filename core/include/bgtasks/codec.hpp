// The one JSON codec of the project: awaken's snake_case shapes in and out. Encoders follow
// serde's skip rules; decoders validate every field and name the first wrong one.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bgtasks/result.hpp"
#include "bgtasks/types.hpp"

namespace bgtasks {

// Limits on untrusted snapshot input.
inline constexpr std::size_t kMaxSnapshotBytes = 64u * 1024u * 1024u;
// Nesting of a value (payload, result, parent) counted from its root at 0.
inline constexpr std::size_t kMaxJsonDepth = 128;
// A snapshot holds values 3 levels down ({"tasks": {id: {"result": …}}}), so every value accepted
// under kMaxJsonDepth stays restorable once it is inside a snapshot.
inline constexpr std::size_t kMaxSnapshotDepth = kMaxJsonDepth + 3;

json to_json(const TaskParentContext& p);
json to_json(const TaskSummary& s);
json to_json(const PersistedTaskMeta& m);
json to_json(const BackgroundTaskStateSnapshot& s);
json to_json(const TaskViewEntry& e);
json to_json(const BackgroundTaskView& v);

// `where` prefixes error messages, e.g. "tasks.bg_3".
Result<TaskParentContext> parent_context_from_json(const json& j, std::string_view where = "parent_context");
Result<TaskSummary> summary_from_json(const json& j, std::string_view where = "summary");
Result<PersistedTaskMeta> meta_from_json(const json& j, std::string_view where = "meta");
// awaken's background_task_state value {"tasks": {id: meta}}; each key must equal its entry's
// non-empty task_id.
Result<BackgroundTaskStateSnapshot> snapshot_from_json(const json& j);
// Text in: size and nesting limits, then the same result and errors as snapshot_from_json on the
// parsed value, read without a DOM for the envelope (only results become json). Errors are
// InvalidSnapshot.
Result<BackgroundTaskStateSnapshot> parse_snapshot(std::string_view text);
// The same check, the entries as a list in text order: an id given twice appears twice, and its
// last entry is the one parse_snapshot keeps. Restoring reads this (no map to build and drop).
Result<std::vector<PersistedTaskMeta>> parse_snapshot_entries(std::string_view text);
// Any JSON text within the limits (emit payloads, task results from hosts); errors carry `code`.
Result<json> parse_json(std::string_view text, std::string_view what, Errc code = Errc::InvalidSnapshot,
                        std::size_t max_depth = kMaxJsonDepth);

// nlohmann's dump with invalid UTF-8 replaced, so dumping never throws.
std::string dump(const json& j);

// Writers: append to `out` exactly the text of dump(v) / dump(to_json(v)), without building a DOM
// (snapshot, summaries and drained events are the hot outputs). Keys sorted, as the DOM writes them.
void write_json(std::string& out, const json& v);
void write_json_string(std::string& out, std::string_view s);  // == dump(json(s))
void write_json(std::string& out, const TaskParentContext& p);
void write_json(std::string& out, const TaskSummary& s);
void write_json(std::string& out, const PersistedTaskMeta& m);
// With owner_thread_id: only that thread's entries, i.e. the text of snapshot(thread) without
// copying them out first.
void write_json(std::string& out, const BackgroundTaskStateSnapshot& s,
                std::optional<std::string_view> owner_thread_id = std::nullopt);
std::string dump(const TaskSummary& s);
std::string dump(const PersistedTaskMeta& m);
std::string dump(const BackgroundTaskStateSnapshot& s, std::optional<std::string_view> owner_thread_id = std::nullopt);

}  // namespace bgtasks
