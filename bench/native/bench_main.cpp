// Native benchmarks of bgtasks against its peers, in one binary and one run:
//   spawn -> complete: bgtasks (coroutine body; host-driven spawn_host + complete), asio co_spawn on
//   a single-thread io_context, and the bare floor (bare_floor.hpp);
//   emit -> drain, cancel_tree over a 1e4-node tree, snapshot_json / restore_json of 1e5 tasks;
//   scaling: spawn -> complete with 1e3..1e6 live idle tasks present;
//   a body awaiting an expired asio timer (bgtasks/asio.hpp) against asio co_spawn doing the same.
// Every figure is per task / event / node: items_per_second in the JSON (ns/item = 1e9 / it).
// Timing is Google Benchmark's default, the process's CPU time (not UseRealTime): these machines
// are shared and often overloaded, and wall time then mostly measures the share of a core we got
// (real_time is still in the JSON).
// Setup and teardown of a manager (or io_context) are outside the timed region (PauseTiming),
// except where a benchmark's name says "teardown".
//
// `--smoke` (our flag, stripped before Google Benchmark sees the rest) registers tiny sizes.
#include <benchmark/benchmark.h>

#include <asio.hpp>
#include <cstring>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "bare_floor.hpp"
#include "bgtasks/asio.hpp"
#include "rig.hpp"

using namespace bgbench;

namespace {

bool g_smoke = false;

double thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// ---- spawn -> complete ---------------------------------------------------------------------------
void BM_bgtasks_spawn_complete(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  bool checked = false;
  for (auto _ : state) {
    state.PauseTiming();
    auto rig = std::make_unique<Rig>();
    state.ResumeTiming();
    for (std::size_t i = 0; i < n; ++i) {
      auto id = rig->m().spawn("t", "job", std::nullopt, "d", {}, kTrivialBody);
      benchmark::DoNotOptimize(id);
    }
    rig->exec.run_until_idle();
    state.PauseTiming();
    if (!checked) {
      if (rig->m().stats().completed != n) fail("bgtasks spawn_complete: not all tasks completed");
      checked = true;
    }
    rig.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// The same under a per-thread limit of 64: all but 64 spawns queue (their callables wait, unbuilt)
// and start as slots free.
void BM_bgtasks_spawn_complete_limited(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  bool checked = false;
  for (auto _ : state) {
    state.PauseTiming();
    auto rig = std::make_unique<Rig>(false, limited_options(64));
    state.ResumeTiming();
    for (std::size_t i = 0; i < n; ++i) {
      auto id = rig->m().spawn("t", "job", std::nullopt, "d", {}, kTrivialBody);
      benchmark::DoNotOptimize(id);
    }
    rig->exec.run_until_idle();
    state.PauseTiming();
    if (!checked) {
      if (rig->m().stats().completed != n) fail("bgtasks spawn_complete_limited: not all tasks completed");
      checked = true;
    }
    rig.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// The same with a deadline on every spawn (armed at spawn, disarmed at the end).
void BM_bgtasks_spawn_complete_deadline(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  bool checked = false;
  for (auto _ : state) {
    state.PauseTiming();
    auto rig = std::make_unique<Rig>();
    state.ResumeTiming();
    for (std::size_t i = 0; i < n; ++i) {
      auto id = rig->m().spawn(deadline_spawn(), kTrivialBody);
      benchmark::DoNotOptimize(id);
    }
    rig->exec.run_until_idle();
    state.PauseTiming();
    if (!checked) {
      if (rig->m().stats().completed != n) fail("bgtasks spawn_complete_deadline: not all tasks completed");
      checked = true;
    }
    rig.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// The same, with the manager's teardown (every record and handle freed) inside the timed region.
void BM_bgtasks_spawn_complete_teardown(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    auto rig = std::make_unique<Rig>();
    for (std::size_t i = 0; i < n; ++i) {
      auto id = rig->m().spawn("t", "job", std::nullopt, "d", {}, kTrivialBody);
      benchmark::DoNotOptimize(id);
    }
    rig->exec.run_until_idle();
    rig.reset();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

void BM_bgtasks_host_spawn_complete(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<TaskId> ids;
  bool checked = false;
  for (auto _ : state) {
    state.PauseTiming();
    auto rig = std::make_unique<Rig>();
    ids.clear();
    ids.reserve(n);
    state.ResumeTiming();
    for (std::size_t i = 0; i < n; ++i)
      ids.push_back(std::move(*rig->m().spawn_host("t", "job", std::nullopt, "d", {})));
    for (const auto& id : ids) {
      auto r = rig->m().complete(id, json());
      benchmark::DoNotOptimize(r);
    }
    state.PauseTiming();
    if (!checked) {
      if (rig->m().stats().completed != n) fail("bgtasks host spawn_complete: not all tasks completed");
      checked = true;
    }
    rig.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

std::size_t g_asio_done = 0;
asio::awaitable<void> asio_trivial() {
  ++g_asio_done;
  co_return;
}

void BM_asio_spawn_complete(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    auto ctx = std::make_unique<asio::io_context>(1);
    g_asio_done = 0;
    state.ResumeTiming();
    for (std::size_t i = 0; i < n; ++i) asio::co_spawn(*ctx, asio_trivial(), asio::detached);
    ctx->run();
    state.PauseTiming();
    if (g_asio_done != n) fail("asio spawn_complete: not all coroutines ran");
    ctx.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

void BM_bare_floor_spawn_complete(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    auto q = std::make_unique<bare::RunQueue>();
    state.ResumeTiming();
    for (std::size_t i = 0; i < n; ++i) q->spawn(bare::trivial());
    benchmark::DoNotOptimize(q->run());
    state.PauseTiming();
    q.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// ---- a body awaiting an asio timer --------------------------------------------------------------
// N task bodies each await an expired asio steady_timer through bgtasks::use_fiber, the executor
// driven from the same single-thread io_context by bgtasks::asio_driver, until io_context::run()
// returns; against N asio co_spawn coroutines awaiting the same with use_awaitable. The io_context
// (and rig) are set up and torn down outside the timed region.
asio::io_context* g_timer_io = nullptr;
const auto kAsioTimerBody = [](TaskContext) -> Co<TaskResult> {
  asio::steady_timer timer(*g_timer_io);  // expiry: the epoch, long past
  co_await timer.async_wait(use_fiber);
  co_return TaskResult::success(nullptr);
};

void BM_bgtasks_asio_timer(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  bool checked = false;
  for (auto _ : state) {
    state.PauseTiming();
    auto io = std::make_unique<asio::io_context>(1);
    g_timer_io = io.get();
    auto rig = std::make_unique<Rig>();
    auto driver = std::make_unique<asio_driver>(*io, rig->exec);
    driver->start();
    state.ResumeTiming();
    for (std::size_t i = 0; i < n; ++i) {
      auto id = rig->m().spawn("t", "io", std::nullopt, "d", {}, kAsioTimerBody);
      benchmark::DoNotOptimize(id);
    }
    io->run();
    state.PauseTiming();
    if (!checked) {
      if (rig->m().stats().completed != n) fail("bgtasks asio_timer: not all tasks completed");
      checked = true;
    }
    driver.reset();
    rig.reset();
    io.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

std::size_t g_asio_timer_done = 0;
asio::awaitable<void> asio_timer_wait() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  co_await timer.async_wait(asio::use_awaitable);
  ++g_asio_timer_done;
}

void BM_asio_timer(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    auto ctx = std::make_unique<asio::io_context>(1);
    g_asio_timer_done = 0;
    state.ResumeTiming();
    for (std::size_t i = 0; i < n; ++i) asio::co_spawn(*ctx, asio_timer_wait(), asio::detached);
    ctx->run();
    state.PauseTiming();
    if (g_asio_timer_done != n) fail("asio asio_timer: not all coroutines ran");
    ctx.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// ---- emit -> drain -------------------------------------------------------------------------------
// One task emits N events through TaskContext::emit (payload {"pct":50}); the owner drains them
// with InboxReceiver::drain_json. Counters split the two phases (ns per event).
void BM_bgtasks_emit_drain(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  double emit_ns = 0, drain_ns = 0;
  std::size_t bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto rig = std::make_unique<Rig>(/*with_inbox=*/true);
    auto body = [n](TaskContext ctx) -> Co<TaskResult> {
      for (std::size_t i = 0; i < n; ++i) ctx.emit("progress", json{{"pct", 50}});
      co_return TaskResult::success(nullptr);
    };
    if (!rig->m().spawn("t", "job", std::nullopt, "emitter", {}, body).ok()) fail("emit_drain: spawn");
    state.ResumeTiming();
    const double t0 = thread_cpu_ns();
    rig->exec.run_until_idle();
    const double t1 = thread_cpu_ns();
    std::string text = rig->inbox->drain_json();
    const double t2 = thread_cpu_ns();
    state.PauseTiming();
    emit_ns += t1 - t0;
    drain_ns += t2 - t1;
    bytes = text.size();
    if (text.size() < n * 20 || !rig->inbox->is_empty()) fail("emit_drain: events missing");
    rig.reset();
    state.ResumeTiming();
  }
  const double per = static_cast<double>(state.iterations()) * static_cast<double>(n);
  state.counters["emit_ns_per_event"] = emit_ns / per;
  state.counters["drain_ns_per_event"] = drain_ns / per;
  state.counters["json_bytes_per_event"] = static_cast<double>(bytes) / static_cast<double>(n);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// Floor for emit -> drain: the same event objects built straight as nlohmann values in a vector,
// then serialized as one array (what drain_json produces, minus the inbox and the Event records).
void BM_json_floor_emit_drain(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    json events = json::array();
    for (std::size_t i = 0; i < n; ++i)
      events.push_back(
          json{{"kind", "custom"}, {"task_id", "bg_0"}, {"event_type", "progress"}, {"payload", json{{"pct", 50}}}});
    std::string text = events.dump();
    benchmark::DoNotOptimize(text.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// ---- cancel_tree ---------------------------------------------------------------------------------
// A tree of N live idle coroutine tasks (fan-out 4: the parent of task i is task (i-1)/4), in one
// thread. Timed: cancel_tree(root) alone, or with the run_until_idle that lets every body end.
void build_tree(Rig& rig, std::size_t n, std::vector<TaskId>& ids) {
  ids.clear();
  ids.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    TaskParentContext parent;
    if (i > 0) parent.task_id = ids[(i - 1) / 4];
    auto id = rig.m().spawn("t", "job", std::nullopt, "node", std::move(parent), kIdleBody);
    if (!id.ok()) fail("cancel_tree: spawn");
    ids.push_back(std::move(*id));
  }
  rig.exec.run_until_idle();  // every body suspended in ctx.cancelled()
}

void BM_bgtasks_cancel_tree(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<TaskId> ids;
  for (auto _ : state) {
    state.PauseTiming();
    auto rig = std::make_unique<Rig>();
    build_tree(*rig, n, ids);
    state.ResumeTiming();
    const std::size_t cancelled = rig->m().cancel_tree(ids[0]);
    state.PauseTiming();
    if (cancelled != n) fail("cancel_tree: count");
    rig.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

void BM_bgtasks_cancel_tree_settle(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<TaskId> ids;
  for (auto _ : state) {
    state.PauseTiming();
    auto rig = std::make_unique<Rig>();
    build_tree(*rig, n, ids);
    state.ResumeTiming();
    const std::size_t cancelled = rig->m().cancel_tree(ids[0]);
    rig->exec.run_until_idle();
    state.PauseTiming();
    if (cancelled != n || rig->m().stats().cancelled != n) fail("cancel_tree_settle: count");
    rig.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// ---- snapshot / restore ----------------------------------------------------------------------------
// N finished host tasks (completed, result {"exit_code":0}) in one thread.
std::unique_ptr<Rig> rig_with_finished(std::size_t n) {
  auto rig = std::make_unique<Rig>();
  for (std::size_t i = 0; i < n; ++i) {
    auto id = rig->m().spawn_host("t", "shell", std::nullopt, "build step", {});
    if (!id.ok() || !rig->m().complete(*id, json{{"exit_code", 0}}).ok()) fail("snapshot setup");
  }
  return rig;
}

void BM_bgtasks_snapshot_json(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto rig = rig_with_finished(n);
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string text = rig->m().snapshot_json();
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["json_bytes_per_task"] = static_cast<double>(bytes) / static_cast<double>(n);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

void BM_bgtasks_restore_json(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::string text = rig_with_finished(n)->m().snapshot_json();
  for (auto _ : state) {
    state.PauseTiming();
    auto rig = std::make_unique<Rig>();
    state.ResumeTiming();
    auto added = rig->m().restore_json("t2", text);
    state.PauseTiming();
    if (!added.ok() || added->added != n) fail("restore_json: count");
    rig.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// Floors: nlohmann dump of the same snapshot already held as a DOM, and parse of the same text to
// a DOM (what a generic JSON library costs for the same bytes, with no validation or records).
void BM_json_floor_dump(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const json dom = json::parse(rig_with_finished(n)->m().snapshot_json());
  for (auto _ : state) {
    std::string text = dom.dump();
    benchmark::DoNotOptimize(text.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

void BM_json_floor_parse(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::string text = rig_with_finished(n)->m().snapshot_json();
  for (auto _ : state) {
    json dom = json::parse(text);
    benchmark::DoNotOptimize(dom);
    state.PauseTiming();
    dom = json();  // freeing the DOM is not part of the parse (restore keeps its records too)
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// ---- scaling ---------------------------------------------------------------------------------------
// Per-task spawn -> complete (batches of kScaleBatch) with L live idle coroutine tasks present. The
// L-task manager is built once per L and reused by every repetition (built outside the timed region); after each batch
// its K finished tasks are forgotten (outside the timed region) so the manager does not grow.
std::size_t g_scale_batch = 1000;
std::map<std::size_t, std::unique_ptr<Rig>> g_scale_rigs;

Rig& scale_rig(std::size_t live) {
  auto it = g_scale_rigs.find(live);
  if (it != g_scale_rigs.end()) return *it->second;
  // All kept (about 1.1e6 live tasks, ~1.5 GB at most): with --benchmark_enable_random_interleaving
  // the sizes alternate, and rebuilding 1e6 tasks per repetition would dominate the run.
  auto rig = std::make_unique<Rig>();
  for (std::size_t i = 0; i < live; ++i)
    if (!rig->m().spawn("t", "idle", std::nullopt, "idle", {}, kIdleBody).ok()) fail("scaling setup");
  rig->exec.run_until_idle();
  return *g_scale_rigs.emplace(live, std::move(rig)).first->second;
}

void BM_bgtasks_scaling(benchmark::State& state) {
  const auto live = static_cast<std::size_t>(state.range(0));
  const std::size_t k = g_scale_batch;
  Rig& rig = scale_rig(live);
  std::vector<TaskId> ids;
  ids.reserve(k);
  for (auto _ : state) {
    ids.clear();
    for (std::size_t i = 0; i < k; ++i)
      ids.push_back(std::move(*rig.m().spawn("t", "job", std::nullopt, "d", {}, kTrivialBody)));
    rig.exec.run_until_idle();
    state.PauseTiming();
    for (const auto& id : ids)
      if (!rig.m().forget(id)) fail("scaling: forget");
    state.ResumeTiming();
  }
  state.counters["live_tasks"] = static_cast<double>(live);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(k));
}

void register_all() {
  const std::vector<std::int64_t> sizes =
      g_smoke ? std::vector<std::int64_t>{100, 1000} : std::vector<std::int64_t>{1000, 10000, 100000, 1000000};
  const std::int64_t events = g_smoke ? 1000 : 100000;
  const std::int64_t tree = g_smoke ? 100 : 10000;
  const std::int64_t snap = g_smoke ? 1000 : 100000;
  g_scale_batch = g_smoke ? 100 : 1000;

  auto sized = [&](const char* name, auto fn) {
    auto* b = benchmark::RegisterBenchmark(name, fn);
    for (auto s : sizes) b->Arg(s);
    b->Unit(benchmark::kMicrosecond);
  };
  // Peers side by side for each size.
  sized("spawn_complete/bgtasks", BM_bgtasks_spawn_complete);
  sized("spawn_complete/bgtasks_limited", BM_bgtasks_spawn_complete_limited);
  sized("spawn_complete/bgtasks_deadline", BM_bgtasks_spawn_complete_deadline);
  sized("spawn_complete/asio", BM_asio_spawn_complete);
  sized("spawn_complete/bare_floor", BM_bare_floor_spawn_complete);
  sized("spawn_complete/bgtasks_host", BM_bgtasks_host_spawn_complete);
  sized("spawn_complete/bgtasks_teardown", BM_bgtasks_spawn_complete_teardown);
  // A body awaiting an (expired) asio timer, driven by asio_driver, against asio's co_spawn.
  sized("asio_timer/bgtasks", BM_bgtasks_asio_timer);
  sized("asio_timer/asio", BM_asio_timer);

  benchmark::RegisterBenchmark("emit_drain/bgtasks", BM_bgtasks_emit_drain)->Arg(events)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("emit_drain/json_floor", BM_json_floor_emit_drain)
      ->Arg(events)
      ->Unit(benchmark::kMicrosecond);
  // Setup (a 1e4-task tree) dominates the wall time of these: a fixed iteration count keeps the run short.
  benchmark::RegisterBenchmark("cancel_tree/bgtasks", BM_bgtasks_cancel_tree)
      ->Arg(tree)
      ->Iterations(g_smoke ? 2 : 30)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("cancel_tree_settle/bgtasks", BM_bgtasks_cancel_tree_settle)
      ->Arg(tree)
      ->Iterations(g_smoke ? 2 : 30)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("snapshot_json/bgtasks", BM_bgtasks_snapshot_json)
      ->Arg(snap)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("snapshot_json/json_floor_dump", BM_json_floor_dump)
      ->Arg(snap)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("restore_json/bgtasks", BM_bgtasks_restore_json)
      ->Arg(snap)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("restore_json/json_floor_parse", BM_json_floor_parse)
      ->Arg(snap)
      ->Unit(benchmark::kMillisecond);
  auto* s = benchmark::RegisterBenchmark("scaling/bgtasks", BM_bgtasks_scaling);
  for (auto live : sizes) s->Arg(live);
  s->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) {
  bgbench::keep_heap_mapped();
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--smoke") == 0)
      g_smoke = true;
    else
      args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  register_all();
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  benchmark::AddCustomContext("bgtasks_smoke", g_smoke ? "true" : "false");
  benchmark::AddCustomContext("scaling_batch", std::to_string(g_scale_batch));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_scale_rigs.clear();
  return 0;
}
