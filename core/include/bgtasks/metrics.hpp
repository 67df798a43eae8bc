// A small counter registry: awaken emits `awaken_background_task_state_commit_failures_total`
// through the `metrics` crate; here counters go to the installed recorder (a process-wide one by
// default, or a scoped local one, like metrics::with_local_recorder).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bgtasks::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::string_view kCommitFailuresTotal = "awaken_background_task_state_commit_failures_total";

class Recorder {
 public:
  void increment_counter(std::string_view name, const Labels& labels, std::uint64_t by = 1);
  // 0 when never incremented.
  std::uint64_t counter(std::string_view name, const Labels& labels) const;
  // Every counter, as (name, labels, value), in a stable order.
  std::vector<std::tuple<std::string, Labels, std::uint64_t>> snapshot() const;
  void clear() { counters_.clear(); }

 private:
  std::map<std::pair<std::string, Labels>, std::uint64_t> counters_;
};

// The recorder counters go to on this thread: the innermost LocalRecorderScope, else global().
Recorder& current();
Recorder& global();

class LocalRecorderScope {
 public:
  explicit LocalRecorderScope(Recorder& r) noexcept;
  ~LocalRecorderScope();
  LocalRecorderScope(const LocalRecorderScope&) = delete;
  LocalRecorderScope& operator=(const LocalRecorderScope&) = delete;

 private:
  Recorder* previous_;
};

inline void increment_counter(std::string_view name, const Labels& labels, std::uint64_t by = 1) {
  current().increment_counter(name, labels, by);
}

}  // namespace bgtasks::metrics
