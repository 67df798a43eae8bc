// Load and soak of the native core (memory stays flat with retention on). A standalone
// program, no GoogleTest: `load_soak --short` (CI, seconds) or `load_soak --long` (minutes).
//
// (a) Load: N tasks, M custom events in total. Each coroutine body emits {"seq": k}, k = 0, 1, …
//     (its own number of times, mean M/N), interleaved with yield_now(), ctx.sleep() and
//     sleep_for() on a manual clock; at most W bodies are live at once (a sliding window). The owner
//     inbox is drained in batches of B events (JSON, as a host reads it). Checked per task_id:
//     no event lost, none reordered (seq strictly +1), exactly one terminal event (completed, with
//     the count) after the task's last custom event, and forget() succeeds once it is drained.
// (b) Soak: C cycles of spawn → settle (host tasks: emit + complete/fail; coroutine bodies: finish
//     on their own, or are cancelled asleep) → forget (by retain_finished = 100 per thread, and an
//     explicit forget() every tenth cycle), in batches of K cycles, the owner inbox drained after
//     each batch. Live heap bytes (counted by the operator new/delete below)
//     are sampled after warm-up (10% of the cycles) and at the end: growth must stay ≤ 5%.
//
// Both parts also check that destroying the manager gives back every byte (residual_bytes == 0).
// Prints one JSON line; exits 1 on any failure, 2 on bad arguments.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "bgtasks/block_pool.hpp"

// ---- heap accounting ---------------------------------------------------------------------------
// Every global operator new/delete goes through here: a header in front of each block records its
// requested size (and the header size, for over-aligned blocks). Single-threaded program.
namespace heap {
std::int64_t live_bytes = 0;
std::int64_t live_allocs = 0;
std::int64_t peak_bytes = 0;
std::uint64_t total_allocs = 0;

constexpr std::size_t kHeader = 2 * sizeof(std::size_t) > alignof(std::max_align_t) ? 2 * sizeof(std::size_t)
                                                                                    : alignof(std::max_align_t);

void* alloc(std::size_t n, std::size_t align) noexcept {
  const std::size_t header = std::max(kHeader, align);
  void* raw;
  if (align <= alignof(std::max_align_t)) {
    raw = std::malloc(n + header);
  } else {
    const std::size_t total = (n + header + align - 1) / align * align;
    raw = std::aligned_alloc(align, total);
  }
  if (!raw) return nullptr;
  auto* p = static_cast<unsigned char*>(raw) + header;
  reinterpret_cast<std::size_t*>(p)[-1] = n;
  reinterpret_cast<std::size_t*>(p)[-2] = header;
  live_bytes += static_cast<std::int64_t>(n);
  ++live_allocs;
  ++total_allocs;
  if (live_bytes > peak_bytes) peak_bytes = live_bytes;
  return p;
}

void free(void* ptr) noexcept {
  if (!ptr) return;
  auto* p = static_cast<unsigned char*>(ptr);
  const std::size_t n = reinterpret_cast<std::size_t*>(p)[-1];
  const std::size_t header = reinterpret_cast<std::size_t*>(p)[-2];
  live_bytes -= static_cast<std::int64_t>(n);
  --live_allocs;
  std::free(p - header);
}

void* alloc_or_throw(std::size_t n, std::size_t align) {
  if (void* p = alloc(n == 0 ? 1 : n, align)) return p;
  throw std::bad_alloc();
}
}  // namespace heap

// Live bytes without the per-thread block cache (block_pool.hpp), which keeps up to 1 MiB of freed
// frames and cores by design: emptied first, so a baseline and a residual count the core's own.
std::int64_t live_bytes_of_the_core() {
  bgtasks::trim_block_cache();
  return heap::live_bytes;
}

void* operator new(std::size_t n) { return heap::alloc_or_throw(n, alignof(std::max_align_t)); }
void* operator new[](std::size_t n) { return heap::alloc_or_throw(n, alignof(std::max_align_t)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return heap::alloc(n ? n : 1, alignof(std::max_align_t));
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return heap::alloc(n ? n : 1, alignof(std::max_align_t));
}
void* operator new(std::size_t n, std::align_val_t a) { return heap::alloc_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return heap::alloc_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return heap::alloc(n ? n : 1, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return heap::alloc(n ? n : 1, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { heap::free(p); }
void operator delete[](void* p) noexcept { heap::free(p); }
void operator delete(void* p, std::size_t) noexcept { heap::free(p); }
void operator delete[](void* p, std::size_t) noexcept { heap::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { heap::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { heap::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { heap::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { heap::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { heap::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { heap::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { heap::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { heap::free(p); }

namespace {
using namespace bgtasks;
using Clk = std::chrono::steady_clock;

double seconds_since(Clk::time_point t0) { return std::chrono::duration<double>(Clk::now() - t0).count(); }
double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

std::uint64_t mix(std::uint64_t x) {  // splitmix64 finaliser: a fixed, well-spread schedule
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// One manager on a manual clock with a store and an owner inbox (support.hpp's harness, without
// GoogleTest). Members are destroyed bottom-up: the manager first, the executor and clock last.
struct Rig {
  ManualClock clock{1'000'000};
  Executor exec{clock};
  std::shared_ptr<StateStore> store = std::make_shared<StateStore>();
  std::optional<InboxReceiver> inbox;
  std::shared_ptr<BackgroundTaskManager> manager;

  explicit Rig(ManagerOptions options = {}) {
    auto [tx, rx] = inbox_channel();
    inbox.emplace(std::move(rx));
    manager = std::make_shared<BackgroundTaskManager>(exec, std::move(options));
    manager->set_owner_inbox(std::move(tx));
    (void)manager->set_store(store);  // a new manager's first store: never refused
    if (!store->install_plugin(BackgroundTaskPlugin(manager)).ok()) {
      std::fprintf(stderr, "load_soak: install_plugin failed\n");
      std::exit(1);
    }
  }
  Rig(const Rig&) = delete;
  ~Rig() { manager.reset(); }
};

const char* const kThreads[] = {"thread-a", "thread-b", "thread-c", "thread-d"};

// ---- (a) load -----------------------------------------------------------------------------------
// --inject: the checks' own test. lose / reorder tamper with the drained stream (one event), leak
// keeps 64 bytes per soak batch; each must make the run fail.
enum class Inject { None, Lose, Reorder, Leak };
Inject g_inject = Inject::None;

// How many events task `idx` emits: tasks pair up (2j, 2j+1) as base − d and base + d, so every
// count is in [1, 2·base − 1] and the total is exactly tasks · base (tasks even).
std::uint32_t g_base = 10;
std::uint64_t g_tasks = 0;

std::uint32_t emits_for(std::uint64_t idx) {
  if (g_base <= 1) return g_base;
  if ((idx | 1) >= g_tasks) return g_base;  // an unpaired last task
  const std::uint32_t d = static_cast<std::uint32_t>((idx / 2) % g_base);
  return idx % 2 == 0 ? g_base - d : g_base + d;
}

// The body of every load task: stateless (one coroutine frame), its schedule derived from its id.
Co<TaskResult> load_body(TaskContext ctx) {
  const std::uint64_t idx = parse_bg_number(ctx.task_id()).value_or(0);
  const std::uint32_t n = emits_for(idx);
  if (mix(idx) % 5 == 0) co_await ctx.sleep(1 + mix(idx) % 3);  // some start late
  for (std::uint32_t k = 0; k < n; ++k) {
    if (!ctx.emit("tick", json{{"seq", k}})) co_return TaskResult::failed("emit refused");
    const std::uint64_t h = mix(idx * 64 + k);
    switch (h % 8) {
      case 0:
      case 1:
      case 2:
        co_await yield_now();
        break;
      case 3:
      case 4: {
        const bool slept = co_await ctx.sleep(1 + (h >> 8) % 5);
        if (!slept) co_return TaskResult::failed("sleep cancelled");
        break;
      }
      case 5:
        co_await sleep_for(ctx.executor(), (h >> 8) % 3);
        break;  // 0 ms: due at the next poll
      default:
        break;  // back-to-back emits
    }
  }
  co_return TaskResult::success(json{{"emitted", n}});
}

struct LoadFigures {
  std::uint64_t tasks = 0, events_expected = 0, events = 0, terminals = 0;
  std::uint64_t lost = 0, reordered = 0, terminal_missing = 0, terminal_duplicate = 0, terminal_early = 0;
  std::uint64_t bad_events = 0, forget_failed = 0, stuck = 0;
  std::size_t window = 0, max_inbox_depth = 0;
  std::int64_t peak_live_bytes = 0, residual_bytes = 0;
  double seconds = 0, cpu_seconds = 0;
  bool ok() const {
    return lost == 0 && reordered == 0 && terminal_missing == 0 && terminal_duplicate == 0 && terminal_early == 0 &&
           bad_events == 0 && forget_failed == 0 && stuck == 0 && events == events_expected && terminals == tasks &&
           residual_bytes == 0;
  }
};

LoadFigures run_load(std::uint64_t tasks, std::uint64_t events, std::size_t window, std::size_t drain_batch) {
  LoadFigures f;
  f.tasks = tasks;
  f.window = window;
  g_tasks = tasks;
  g_base = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, events / std::max<std::uint64_t>(1, tasks)));
  std::vector<std::uint32_t> expected(tasks), next_seq(tasks, 0), received(tasks, 0);
  std::vector<std::uint8_t> terminal(tasks, 0);
  for (std::uint64_t i = 0; i < tasks; ++i) f.events_expected += (expected[i] = emits_for(i));

  const std::int64_t base_bytes = live_bytes_of_the_core();
  heap::peak_bytes = heap::live_bytes;
  const auto t0 = Clk::now();
  const double c0 = cpu_seconds();
  {
    Rig rig;
    auto& mgr = *rig.manager;
    std::uint64_t spawned = 0, done = 0, live = 0, iter = 0;
    std::uint64_t customs_seen = 0;
    std::optional<json> held;  // --inject reorder: one event delivered late
    auto process = [&](const json& e) {
      auto kind = e.find("kind");
      auto tid = e.find("task_id");
      if (kind == e.end() || tid == e.end() || !tid->is_string()) {
        ++f.bad_events;
        return;
      }
      const std::string& id = tid->get_ref<const std::string&>();
      auto n = parse_bg_number(id);
      if (!n || *n >= tasks) {
        ++f.bad_events;
        return;
      }
      const std::uint64_t idx = *n;
      if (*kind == "custom") {
        ++f.events;
        auto payload = e.find("payload");
        auto et = e.find("event_type");
        if (payload == e.end() || !payload->is_object() || et == e.end() || *et != "tick" ||
            !payload->contains("seq") || !(*payload)["seq"].is_number_unsigned()) {
          ++f.bad_events;
          return;
        }
        const auto seq = (*payload)["seq"].get<std::uint64_t>();
        ++received[idx];
        if (terminal[idx]) ++f.reordered;  // a custom event after the terminal one
        if (seq != next_seq[idx]) ++f.reordered;
        // seq must be next_seq + 0; resynchronise so one slip counts once, not for every later event.
        next_seq[idx] = static_cast<std::uint32_t>(std::max<std::uint64_t>(next_seq[idx], seq + 1));
      } else if (*kind == "completed") {
        ++f.terminals;
        if (terminal[idx]++) {
          ++f.terminal_duplicate;
          return;
        }
        if (next_seq[idx] != expected[idx]) ++f.terminal_early;
        auto result = e.find("result");
        if (result == e.end() || !result->is_object() ||
            result->value("emitted", -1) != static_cast<std::int64_t>(expected[idx]))
          ++f.bad_events;
        if (!mgr.forget(id)) ++f.forget_failed;
        ++done;
        --live;
      } else {
        ++f.bad_events;  // failed / cancelled: no load task should end so
        ++f.terminals;
        terminal[idx]++;
        ++done;
        --live;
      }
    };
    auto drain = [&](std::size_t max) {
      for (std::size_t i = 0; i < max; ++i) {
        std::optional<json> ev = rig.inbox->try_recv();
        if (!ev) break;
        if (g_inject != Inject::None && ev->value("kind", "") == "custom" && ++customs_seen == 1000) {
          if (g_inject == Inject::Lose) continue;
          if (g_inject == Inject::Reorder) {  // delivered after the same task's next event
            held = std::move(ev);
            continue;
          }
        }
        process(*ev);
        if (held && (*ev)["task_id"] == (*held)["task_id"]) {
          process(*held);
          held.reset();
        }
      }
      if (held && max == SIZE_MAX) {
        process(*held);
        held.reset();
      }
    };
    while (done < tasks) {
      while (live < window && spawned < tasks) {
        auto r = mgr.spawn(kThreads[spawned % 4], "load", std::nullopt, "load task", {}, load_body);
        if (!r) {
          std::fprintf(stderr, "load_soak: spawn failed: %s\n", r.error().message.c_str());
          f.stuck = 1;
          break;
        }
        ++spawned;
        ++live;
      }
      if (f.stuck) break;
      rig.exec.poll();
      f.max_inbox_depth = std::max(f.max_inbox_depth, rig.inbox->len());
      drain(drain_batch);
      if (!rig.exec.has_ready()) {
        if (auto d = rig.exec.next_deadline()) {
          rig.exec.set_time(*d);
        } else if (rig.inbox->is_empty() && spawned == tasks && done < tasks) {
          f.stuck = tasks - done;  // nothing can run, nothing queued, tasks unaccounted for
          break;
        }
      } else if (++iter % 4 == 0) {
        rig.exec.advance(1);  // time passes while work is ready too: timers fire amid yields
      }
    }
    drain(SIZE_MAX);
    for (std::uint64_t i = 0; i < tasks; ++i) {
      if (received[i] < expected[i]) f.lost += expected[i] - received[i];
      if (received[i] > expected[i]) f.reordered += received[i] - expected[i];  // duplicates
      if (!terminal[i]) ++f.terminal_missing;
    }
    const ManagerStats st = mgr.stats();
    if (st.live_bodies != 0 || st.running != 0 || st.completed != 0) ++f.stuck;  // all forgotten
  }
  f.seconds = seconds_since(t0);
  f.cpu_seconds = cpu_seconds() - c0;
  f.peak_live_bytes = heap::peak_bytes - base_bytes;
  f.residual_bytes = live_bytes_of_the_core() - base_bytes;
  return f;
}

// ---- (b) soak -----------------------------------------------------------------------------------
Co<TaskResult> soak_quick(TaskContext ctx) {
  ctx.emit("tick", json{{"seq", 0}});
  co_await yield_now();
  co_return TaskResult::success(json{{"ok", true}});
}

Co<TaskResult> soak_sleeper(TaskContext ctx) {  // cancelled right after spawn
  ctx.emit("tick", json{{"seq", 0}});
  // The awaited value goes into a variable: with g++ 12.2, `if (!co_await ctx.sleep(…)) co_return …;`
  // in a free-function coroutine (lambdas are fine) never resumes or hits an illegal instruction.
  const bool slept = co_await ctx.sleep(60'000);
  if (!slept) co_return TaskResult::success(json("late value, discarded"));
  co_return TaskResult::failed("sleep was not cancelled");
}

struct SoakFigures {
  std::uint64_t cycles = 0, events = 0, events_expected = 0, errors = 0;
  std::size_t retain = 100, batch = 0;
  std::int64_t bytes_warmup = 0, bytes_end = 0, bytes_max_after_warmup = 0, allocs_warmup = 0, allocs_end = 0;
  std::int64_t residual_bytes = 0;
  double growth_pct = 0, seconds = 0, cpu_seconds = 0;
  bool ok() const {
    return errors == 0 && events == events_expected && bytes_warmup > 0 && growth_pct <= 5.0 && residual_bytes == 0;
  }
};

SoakFigures run_soak(std::uint64_t cycles, std::size_t batch) {
  SoakFigures f;
  f.cycles = cycles;
  f.batch = batch;
  const std::int64_t base_bytes = live_bytes_of_the_core();
  // Warm-up: 10% of the cycles, and at least long enough for retention to be full on both threads.
  const std::uint64_t warmup_at = std::max<std::uint64_t>(20 * f.retain, cycles / 10);
  bool warmed = false;
  const auto t0 = Clk::now();
  const double c0 = cpu_seconds();
  {
    ManagerOptions options;
    options.retain_finished = f.retain;
    Rig rig(options);
    auto& mgr = *rig.manager;
    std::vector<TaskId> to_cancel;
    static std::vector<std::unique_ptr<char[]>> leak_sink;  // --inject leak
    std::uint64_t c = 0;
    auto err = [&](const char* what) {
      if (f.errors++ < 5)
        std::fprintf(stderr, "load_soak: soak cycle %llu: %s\n", static_cast<unsigned long long>(c), what);
    };
    while (c < cycles) {
      const std::uint64_t end = std::min<std::uint64_t>(cycles, c + batch);
      for (; c < end; ++c) {
        const char* thread = kThreads[c % 2];
        switch (c % 10) {
          case 0:
          case 1:
          case 2:
          case 3:
          case 4:
          case 5:
          case 6: {  // host task: emit, complete / fail
            auto id = mgr.spawn_host(thread, "soak", std::nullopt, "soak host task", {});
            if (!id) {
              err("spawn_host failed");
              break;
            }
            if (!mgr.emit(*id, "tick", json{{"seq", 0}})) err("emit refused");
            auto r = c % 10 == 6 ? mgr.fail(*id, "soak failure") : mgr.complete(*id, json{{"cycle", c}});
            if (!r) err("settle failed");
            if (c % 10 == 5 && !mgr.forget(*id)) err("forget of a finished task said false");
            f.events_expected += 2;
            break;
          }
          case 7:
          case 8: {  // coroutine body, completes on its own at the next polls
            auto id = mgr.spawn(thread, "soak", std::nullopt, "soak body", {}, soak_quick);
            if (!id) {
              err("spawn failed");
              break;
            }
            f.events_expected += 2;
            break;
          }
          default: {  // coroutine body cancelled while asleep
            auto id = mgr.spawn(thread, "soak", std::nullopt, "soak sleeper", {}, soak_sleeper);
            if (!id) {
              err("spawn failed");
              break;
            }
            to_cancel.push_back(std::move(*id));
            f.events_expected += 2;
            break;
          }
        }
      }
      if (g_inject == Inject::Leak) leak_sink.push_back(std::make_unique<char[]>(64));
      rig.exec.run_until_idle();  // bodies start and sleep
      for (const auto& id : to_cancel)
        if (!mgr.cancel(id)) err("cancel said false");
      to_cancel.clear();
      rig.exec.advance(1);
      rig.exec.run_until_idle();
      for (auto& e : rig.inbox->drain_events()) {
        ++f.events;
        if (e.task_id.empty()) err("event without task_id");
      }
      const ManagerStats st = mgr.stats();
      const std::size_t finished = st.completed + st.failed + st.cancelled;
      if (st.running != 0 || st.live_bodies != 0) err("tasks still running after the batch");
      if (finished > 2 * f.retain) err("retention kept more than retain_finished per thread");
      if (st.owner_inbox_depth != 0) err("owner inbox not empty after drain");
      if (c % (batch * 100) == 0 && mgr.list(kThreads[0]).size() > f.retain) err("list longer than retain_finished");
      if (!warmed && c >= warmup_at) {
        warmed = true;
        f.bytes_warmup = heap::live_bytes - base_bytes;
        f.allocs_warmup = heap::live_allocs;
      }
      if (warmed) f.bytes_max_after_warmup = std::max(f.bytes_max_after_warmup, heap::live_bytes - base_bytes);
    }
    f.bytes_end = heap::live_bytes - base_bytes;
    f.allocs_end = heap::live_allocs;
  }
  f.seconds = seconds_since(t0);
  f.cpu_seconds = cpu_seconds() - c0;
  f.residual_bytes = live_bytes_of_the_core() - base_bytes;
  f.growth_pct = f.bytes_warmup > 0
                     ? 100.0 * static_cast<double>(f.bytes_end - f.bytes_warmup) / static_cast<double>(f.bytes_warmup)
                     : 0;
  return f;
}

std::uint64_t parse_count(const char* s) {
  char* end = nullptr;
  const double v = std::strtod(s, &end);  // accepts 1e6
  if (!end || *end || v < 0) {
    std::fprintf(stderr, "load_soak: bad count '%s'\n", s);
    std::exit(2);
  }
  return static_cast<std::uint64_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode;
  std::uint64_t tasks = 0, events = 0, cycles = 0, window = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--short" || a == "--long") {
      mode = a.substr(2);
    } else if (a == "--inject" && i + 1 < argc) {
      const std::string_view w = argv[++i];
      g_inject = w == "lose"      ? Inject::Lose
                 : w == "reorder" ? Inject::Reorder
                 : w == "leak"    ? Inject::Leak
                                  : Inject::None;
      if (g_inject == Inject::None) return std::fprintf(stderr, "load_soak: --inject lose|reorder|leak\n"), 2;
    } else if ((a == "--tasks" || a == "--events" || a == "--cycles" || a == "--window") && i + 1 < argc) {
      const std::uint64_t v = parse_count(argv[++i]);
      (a == "--tasks" ? tasks : a == "--events" ? events : a == "--cycles" ? cycles : window) = v;
    } else {
      std::fprintf(
          stderr,
          "usage: %s --short|--long [--tasks N] [--events M] [--cycles C] [--window W] [--inject lose|reorder|leak]\n"
          "  --short: 1e5 tasks, 1e6 events, 1e5 soak cycles (CI)\n"
          "  --long:  1e6 tasks, 1e7 events, 1e6 soak cycles\n",
          argv[0]);
      return 2;
    }
  }
  if (mode.empty()) mode = "short";
  const bool lng = mode == "long";
  if (!tasks) tasks = lng ? 1'000'000 : 100'000;
  if (!events) events = lng ? 10'000'000 : 1'000'000;
  if (!cycles) cycles = lng ? 1'000'000 : 100'000;
  if (!window) window = lng ? 100'000 : 10'000;

  // Priming: the core's first-use statics (a few KB, once per process) are allocated before any
  // baseline is taken, so that residual_bytes (live bytes left after a manager is destroyed) is 0.
  (void)run_load(8, 16, 4, 4096);
  const LoadFigures L = run_load(tasks, events, window, 4096);
  const SoakFigures S = run_soak(cycles, 100);
  const bool ok = L.ok() && S.ok();

  std::printf(
      "{\"target\":\"native\",\"mode\":\"%s\",\"ok\":%s,"
      "\"load\":{\"tasks\":%llu,\"events\":%llu,\"events_expected\":%llu,\"terminals\":%llu,\"lost\":%llu,"
      "\"reordered\":%llu,\"terminal_missing\":%llu,\"terminal_duplicate\":%llu,\"terminal_early\":%llu,"
      "\"bad_events\":%llu,\"forget_failed\":%llu,\"stuck\":%llu,\"window\":%zu,\"max_inbox_depth\":%zu,"
      "\"peak_live_bytes\":%lld,\"residual_bytes\":%lld,\"seconds\":%.2f,\"cpu_seconds\":%.2f},"
      "\"soak\":{\"cycles\":%llu,\"retain_finished\":%zu,\"batch\":%zu,\"events\":%llu,\"events_expected\":%llu,"
      "\"errors\":%llu,\"live_bytes_warmup\":%lld,\"live_bytes_end\":%lld,\"live_bytes_max_after_warmup\":%lld,"
      "\"live_allocs_warmup\":%lld,\"live_allocs_end\":%lld,\"growth_pct\":%.3f,\"residual_bytes\":%lld,"
      "\"seconds\":%.2f,\"cpu_seconds\":%.2f},\"total_allocations\":%llu}\n",
      mode.c_str(), ok ? "true" : "false", (unsigned long long)L.tasks, (unsigned long long)L.events,
      (unsigned long long)L.events_expected, (unsigned long long)L.terminals, (unsigned long long)L.lost,
      (unsigned long long)L.reordered, (unsigned long long)L.terminal_missing, (unsigned long long)L.terminal_duplicate,
      (unsigned long long)L.terminal_early, (unsigned long long)L.bad_events, (unsigned long long)L.forget_failed,
      (unsigned long long)L.stuck, L.window, L.max_inbox_depth, (long long)L.peak_live_bytes,
      (long long)L.residual_bytes, L.seconds, L.cpu_seconds, (unsigned long long)S.cycles, S.retain, S.batch,
      (unsigned long long)S.events, (unsigned long long)S.events_expected, (unsigned long long)S.errors,
      (long long)S.bytes_warmup, (long long)S.bytes_end, (long long)S.bytes_max_after_warmup,
      (long long)S.allocs_warmup, (long long)S.allocs_end, S.growth_pct, (long long)S.residual_bytes, S.seconds,
      S.cpu_seconds, (unsigned long long)heap::total_allocs);
  std::fflush(stdout);
  if (!ok) std::fprintf(stderr, "load_soak: FAILED (see the JSON line)\n");
  return ok ? 0 : 1;
}
