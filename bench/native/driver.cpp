// The same C++ driver, compiled natively (g++, bench/CMakeLists.txt) and to wasm (em++,
// bench/wasm/CMakeLists.txt, run with `node driver.js`): spawn -> complete of N trivial tasks, and
// emit -> drain of E events, plus the bare floor (and, natively only, asio co_spawn) for reference,
// and spawn -> complete under a per-thread limit of 64 and with a deadline on every spawn. Each section is timed twice
// over: wall time with std::chrono::steady_clock, and the process's CPU time (clock_gettime natively,
// process.cpuUsage() under Node) — on a shared, overloaded machine wall time mostly measures the
// share of a core the process got, so the ratios use CPU time. REPS repetitions after one warm-up
// round; prints medians (and minima) as one JSON object.
//
// Usage: driver [tasks] [events] [reps]      (defaults 100000 100000 7)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bare_floor.hpp"
#include "rig.hpp"

#if !defined(__EMSCRIPTEN__)
#include <asio.hpp>  // native only: the asio peer, for bench/run.sh's instruction counts
#endif

#if defined(__EMSCRIPTEN__)
#include <emscripten.h>
// Node's process CPU time (user + system, all threads) in microseconds.
EM_JS(double, node_cpu_us, (), {
  const u = process.cpuUsage();
  return u.user + u.system;
});
#else
#include <time.h>
#endif

using namespace bgbench;
using clk = std::chrono::steady_clock;

namespace {

double cpu_ns() {
#if defined(__EMSCRIPTEN__)
  return node_cpu_us() * 1e3;
#else
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
#endif
}

// One timed section: wall and CPU nanoseconds.
struct Sample {
  double wall = 0, cpu = 0;
};
class Timer {
 public:
  Timer() : wall0_(clk::now()), cpu0_(cpu_ns()) {}
  Sample stop(double per) const {
    const double cpu = cpu_ns() - cpu0_;
    const double wall = std::chrono::duration<double, std::nano>(clk::now() - wall0_).count();
    return {wall / per, cpu / per};
  }

 private:
  clk::time_point wall0_;
  double cpu0_;
};

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs[xs.size() / 2];
}
double minimum(const std::vector<double>& xs) { return *std::min_element(xs.begin(), xs.end()); }

// The measured work, each kept out of line (callgrind --toggle-collect selects these by name);
// the manager's setup, checks and teardown are outside them and outside the timed region.
[[gnu::noinline]] void work_spawn_complete(Rig& rig, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (!rig.m().spawn("t", "job", std::nullopt, "d", {}, kTrivialBody).ok()) fail("driver: spawn");
  rig.exec.run_until_idle();
}

[[gnu::noinline]] void work_limited_spawn_complete(Rig& rig, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (!rig.m().spawn("t", "job", std::nullopt, "d", {}, kTrivialBody).ok()) fail("driver: limited spawn");
  rig.exec.run_until_idle();
}

[[gnu::noinline]] void work_deadline_spawn_complete(Rig& rig, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (!rig.m().spawn(deadline_spawn(), kTrivialBody).ok()) fail("driver: deadline spawn");
  rig.exec.run_until_idle();
}

[[gnu::noinline]] void work_host_spawn_complete(Rig& rig, std::vector<TaskId>& ids, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) ids.push_back(std::move(*rig.m().spawn_host("t", "job", std::nullopt, "d", {})));
  for (const auto& id : ids)
    if (!rig.m().complete(id, json()).ok()) fail("driver: complete");
}

[[gnu::noinline]] std::string work_emit_drain(Rig& rig) {
  rig.exec.run_until_idle();  // the emitter body runs: E x TaskContext::emit
  return rig.inbox->drain_json();
}

[[gnu::noinline]] void work_bare_floor(bare::RunQueue& q, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) q.spawn(bare::trivial());
  q.run();
}

#if !defined(__EMSCRIPTEN__)
std::size_t g_asio_done = 0;
asio::awaitable<void> asio_trivial() {
  ++g_asio_done;
  co_return;
}

[[gnu::noinline]] void work_asio(asio::io_context& ctx, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) asio::co_spawn(ctx, asio_trivial(), asio::detached);
  ctx.run();
}
#endif

// Per task.
Sample spawn_complete(std::size_t n) {
  auto rig = std::make_unique<Rig>();
  const Timer t;
  work_spawn_complete(*rig, n);
  const Sample s = t.stop(static_cast<double>(n));
  if (rig->m().stats().completed != n) fail("driver: completed");
  return s;
}

// Per task, under a per-thread limit of 64 / with a deadline on every spawn.
Sample limited_spawn_complete(std::size_t n) {
  auto rig = std::make_unique<Rig>(false, limited_options(64));
  const Timer t;
  work_limited_spawn_complete(*rig, n);
  const Sample s = t.stop(static_cast<double>(n));
  if (rig->m().stats().completed != n) fail("driver: limited completed");
  return s;
}

Sample deadline_spawn_complete(std::size_t n) {
  auto rig = std::make_unique<Rig>();
  const Timer t;
  work_deadline_spawn_complete(*rig, n);
  const Sample s = t.stop(static_cast<double>(n));
  if (rig->m().stats().completed != n) fail("driver: deadline completed");
  return s;
}

Sample host_spawn_complete(std::size_t n) {
  auto rig = std::make_unique<Rig>();
  std::vector<TaskId> ids;
  ids.reserve(n);
  const Timer t;
  work_host_spawn_complete(*rig, ids, n);
  const Sample s = t.stop(static_cast<double>(n));
  if (rig->m().stats().completed != n) fail("driver: host completed");
  return s;
}

// Per event: one task emits E events through TaskContext::emit, then one drain_json.
Sample emit_drain(std::size_t e, std::size_t* bytes) {
  auto rig = std::make_unique<Rig>(/*with_inbox=*/true);
  auto body = [e](TaskContext ctx) -> Co<TaskResult> {
    for (std::size_t i = 0; i < e; ++i) ctx.emit("progress", json{{"pct", 50}});
    co_return TaskResult::success(nullptr);
  };
  if (!rig->m().spawn("t", "job", std::nullopt, "emitter", {}, body).ok()) fail("driver: spawn emitter");
  const Timer t;
  const std::string text = work_emit_drain(*rig);
  const Sample s = t.stop(static_cast<double>(e));
  *bytes = text.size();
  if (text.size() < e * 20) fail("driver: events missing");
  return s;
}

Sample bare_floor(std::size_t n) {
  bare::RunQueue q;
  const Timer t;
  work_bare_floor(q, n);
  return t.stop(static_cast<double>(n));
}

#if !defined(__EMSCRIPTEN__)
Sample asio_spawn_complete(std::size_t n) {
  asio::io_context ctx(1);
  g_asio_done = 0;
  const Timer t;
  work_asio(ctx, n);
  const Sample s = t.stop(static_cast<double>(n));
  if (g_asio_done != n) fail("driver: asio");
  return s;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bgbench::keep_heap_mapped();
  const std::size_t tasks = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100000;
  const std::size_t events = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 100000;
  const std::size_t reps = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 7;
#if defined(__EMSCRIPTEN__)
  constexpr int kSections = 6;
#else
  constexpr int kSections = 7;  // + the asio peer, native only
#endif
  const char* names[] = {
      "spawn_complete_ns_per_task",     "host_spawn_complete_ns_per_task",    "emit_drain_ns_per_event",
      "bare_floor_ns_per_task",         "limited_spawn_complete_ns_per_task", "deadline_spawn_complete_ns_per_task",
      "asio_spawn_complete_ns_per_task"};
  std::vector<double> wall[kSections], cpu[kSections];
  std::size_t bytes = 0;
  // One unmeasured warm-up round (wasm tiers up; the native heap warms), then the repetitions.
  for (std::size_t r = 0; r < reps + 1; ++r) {
    const Sample s[kSections] = {
      spawn_complete(tasks),
      host_spawn_complete(tasks),
      emit_drain(events, &bytes),
      bare_floor(tasks),
      limited_spawn_complete(tasks),
      deadline_spawn_complete(tasks)
#if !defined(__EMSCRIPTEN__)
          ,
      asio_spawn_complete(tasks)
#endif
    };
    if (r == 0) continue;
    for (int k = 0; k < kSections; ++k) {
      wall[k].push_back(s[k].wall);
      cpu[k].push_back(s[k].cpu);
    }
  }
#if defined(__EMSCRIPTEN__)
  const char* platform = "wasm";
#else
  const char* platform = "native";
#endif
  // "x": CPU-time median (what the ratios use); "x_wall": steady_clock median; "_min": minima.
  std::printf("{\"platform\": \"%s\", \"tasks\": %zu, \"events\": %zu, \"reps\": %zu, \"drain_json_bytes\": %zu",
              platform, tasks, events, reps, bytes);
  for (int k = 0; k < kSections; ++k)
    std::printf(", \"%s\": %.1f, \"%s_min\": %.1f, \"%s_wall\": %.1f, \"%s_wall_min\": %.1f", names[k], median(cpu[k]),
                names[k], minimum(cpu[k]), names[k], median(wall[k]), names[k], minimum(wall[k]));
  std::printf("}\n");
  return 0;
}
