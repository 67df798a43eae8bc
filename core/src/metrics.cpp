#include "bgtasks/metrics.hpp"

#include <tuple>

namespace bgtasks::metrics {
namespace {
thread_local Recorder* t_local = nullptr;
}

void Recorder::increment_counter(std::string_view name, const Labels& labels, std::uint64_t by) {
  counters_[{std::string(name), labels}] += by;
}

std::uint64_t Recorder::counter(std::string_view name, const Labels& labels) const {
  auto it = counters_.find({std::string(name), labels});
  return it == counters_.end() ? 0 : it->second;
}

std::vector<std::tuple<std::string, Labels, std::uint64_t>> Recorder::snapshot() const {
  std::vector<std::tuple<std::string, Labels, std::uint64_t>> out;
  for (const auto& [key, value] : counters_) out.emplace_back(key.first, key.second, value);
  return out;
}

Recorder& global() {
  static Recorder r;
  return r;
}

Recorder& current() { return t_local ? *t_local : global(); }

LocalRecorderScope::LocalRecorderScope(Recorder& r) noexcept : previous_(t_local) { t_local = &r; }
LocalRecorderScope::~LocalRecorderScope() { t_local = previous_; }

}  // namespace bgtasks::metrics
