// Memory per task, measured by counting allocator bytes: the global operator new/delete of this
// executable are replaced by counting versions (every coroutine frame, record, string, hash node
// and bucket array goes through them; nlohmann and the standard containers use std::allocator).
//
// Figures (per task, as the delta over N tasks divided by N; bucket arrays and vector growth are
// thus amortized in):
//   idle task  — live bytes held by a spawned task whose body is suspended (co_await
//                ctx.cancelled()), frame + SpawnedTask + store record + everything;
//   host idle  — the same for a host-driven task (spawn_host, no frame);
//   spawn->complete — allocations and bytes allocated per task, and live bytes retained after it
//                (bgtasks keeps the finished record until forget/retention);
//   peers: the bare floor (bare_floor.hpp) and asio co_spawn.
// "bytes" are the sizes asked of operator new; "heap_bytes" estimate what glibc malloc really
// holds for them (8-byte chunk header, 16-byte granularity, 32-byte minimum chunk).
//
// Usage: memory_probe [N]   (default 100000) — prints one JSON object.
#include <asio.hpp>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "bare_floor.hpp"
#include "rig.hpp"

namespace {

struct Counters {
  std::size_t allocs = 0;      // operator new calls (cumulative)
  std::size_t bytes = 0;       // requested bytes (cumulative)
  std::size_t live_bytes = 0;  // requested bytes not yet freed
  std::size_t live_heap = 0;   // estimated malloc chunk bytes not yet freed
  std::size_t live_blocks = 0;
};
Counters g;

constexpr std::size_t kHeader = 16;  // keeps 16-byte alignment; holds the requested size

std::size_t heap_estimate(std::size_t n) {
  std::size_t c = (n + 8 + 15) & ~std::size_t{15};
  return c < 32 ? 32 : c;
}

void* counted_new(std::size_t n) {
  void* raw = std::malloc(n + kHeader);
  if (!raw) throw std::bad_alloc();
  *static_cast<std::size_t*>(raw) = n;
  ++g.allocs;
  g.bytes += n;
  g.live_bytes += n;
  g.live_heap += heap_estimate(n);
  ++g.live_blocks;
  return static_cast<char*>(raw) + kHeader;
}

void counted_delete(void* p) noexcept {
  if (!p) return;
  void* raw = static_cast<char*>(p) - kHeader;
  const std::size_t n = *static_cast<std::size_t*>(raw);
  g.live_bytes -= n;
  g.live_heap -= heap_estimate(n);
  --g.live_blocks;
  std::free(raw);
}

void* counted_new_aligned(std::size_t n, std::align_val_t al) {
  const std::size_t a = static_cast<std::size_t>(al);
  if (a <= kHeader) return counted_new(n);
  // Over-aligned: header of `a` bytes in front, the size in its last word, the offset before it.
  const std::size_t total = ((n + a + a - 1) / a) * a;
  void* raw = std::aligned_alloc(a, total);
  if (!raw) throw std::bad_alloc();
  char* p = static_cast<char*>(raw) + a;
  reinterpret_cast<std::size_t*>(p)[-1] = n;
  ++g.allocs;
  g.bytes += n;
  g.live_bytes += n;
  g.live_heap += heap_estimate(total);
  ++g.live_blocks;
  return p;
}

void counted_delete_aligned(void* p, std::align_val_t al) noexcept {
  if (!p) return;
  const std::size_t a = static_cast<std::size_t>(al);
  if (a <= kHeader) return counted_delete(p);
  const std::size_t n = reinterpret_cast<std::size_t*>(p)[-1];
  const std::size_t total = ((n + a + a - 1) / a) * a;
  g.live_bytes -= n;
  g.live_heap -= heap_estimate(total);
  --g.live_blocks;
  std::free(static_cast<char*>(p) - a);
}

}  // namespace

void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void operator delete(void* p) noexcept { counted_delete(p); }
void operator delete[](void* p) noexcept { counted_delete(p); }
void operator delete(void* p, std::size_t) noexcept { counted_delete(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_delete(p); }
void operator delete(void* p, std::align_val_t a) noexcept { counted_delete_aligned(p, a); }
void operator delete[](void* p, std::align_val_t a) noexcept { counted_delete_aligned(p, a); }
void operator delete(void* p, std::size_t, std::align_val_t a) noexcept { counted_delete_aligned(p, a); }
void operator delete[](void* p, std::size_t, std::align_val_t a) noexcept { counted_delete_aligned(p, a); }

namespace {

using namespace bgbench;

struct Delta {
  double allocs, bytes, live_bytes, live_heap, live_blocks;
};

Delta delta(const Counters& a, const Counters& b, std::size_t n) {
  const double d = static_cast<double>(n);
  return {static_cast<double>(b.allocs - a.allocs) / d, static_cast<double>(b.bytes - a.bytes) / d,
          (static_cast<double>(b.live_bytes) - static_cast<double>(a.live_bytes)) / d,
          (static_cast<double>(b.live_heap) - static_cast<double>(a.live_heap)) / d,
          (static_cast<double>(b.live_blocks) - static_cast<double>(a.live_blocks)) / d};
}

std::string fmt(const char* name, const Delta& d, bool last = false) {
  char buf[512];
  std::snprintf(
      buf, sizeof buf,
      "    \"%s\": {\"allocs_per_task\": %.2f, \"bytes_allocated_per_task\": %.1f, "
      "\"live_bytes_per_task\": %.1f, \"live_heap_bytes_per_task\": %.1f, \"live_blocks_per_task\": %.2f}%s\n",
      name, d.allocs, d.bytes, d.live_bytes, d.live_heap, d.live_blocks, last ? "" : ",");
  return buf;
}

std::size_t asio_done = 0;
asio::awaitable<void> asio_trivial() {
  ++asio_done;
  co_return;
}

// An idle asio task: suspended on a timer that never expires in this program.
asio::awaitable<void> asio_idle() {
  asio::steady_timer timer(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
  co_await timer.async_wait(asio::use_awaitable);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100000;
  std::string out = "{\n  \"tasks\": " + std::to_string(n) + ",\n  \"figures\": {\n";

  {  // bgtasks: live idle coroutine tasks
    Rig rig;
    const Counters before = g;
    for (std::size_t i = 0; i < n; ++i)
      if (!rig.m().spawn("t", "idle", std::nullopt, "idle", {}, kIdleBody).ok()) fail("probe: spawn idle");
    rig.exec.run_until_idle();  // every body started and suspended in ctx.cancelled()
    const Counters after = g;
    if (rig.m().stats().live_bodies != n) fail("probe: idle bodies");
    out += fmt("bgtasks_idle_task", delta(before, after, n));
  }
  {  // bgtasks: live idle host-driven tasks
    Rig rig;
    const Counters before = g;
    for (std::size_t i = 0; i < n; ++i)
      if (!rig.m().spawn_host("t", "idle", std::nullopt, "idle", {}).ok()) fail("probe: spawn_host");
    const Counters after = g;
    out += fmt("bgtasks_host_idle_task", delta(before, after, n));
  }
  {  // bgtasks: spawn -> complete (allocations on the path; what stays live is the finished record)
    Rig rig;
    const Counters before = g;
    for (std::size_t i = 0; i < n; ++i)
      if (!rig.m().spawn("t", "job", std::nullopt, "d", {}, kTrivialBody).ok()) fail("probe: spawn");
    rig.exec.run_until_idle();
    const Counters after = g;
    if (rig.m().stats().completed != n) fail("probe: completed");
    out += fmt("bgtasks_spawn_complete", delta(before, after, n));
  }
  {  // bgtasks: host-driven spawn_host -> complete
    Rig rig;
    std::vector<TaskId> ids;
    ids.reserve(n);
    const Counters before = g;
    for (std::size_t i = 0; i < n; ++i)
      ids.push_back(std::move(*rig.m().spawn_host("t", "job", std::nullopt, "d", {})));
    for (const auto& id : ids)
      if (!rig.m().complete(id, json()).ok()) fail("probe: complete");
    const Counters after = g;
    // the ids vector itself was reserved before; its strings are bgtasks' returned ids (counted).
    out += fmt("bgtasks_host_spawn_complete", delta(before, after, n));
  }
  {  // bare floor: idle frames and spawn -> complete
    bare::RunQueue q;
    q.reserve(n);
    const Counters before = g;
    for (std::size_t i = 0; i < n; ++i) q.spawn(bare::idle());
    q.run();
    const Counters after = g;
    out += fmt("bare_floor_idle_task", delta(before, after, n));
  }
  {
    bare::RunQueue q;
    q.reserve(n);
    const Counters before = g;
    for (std::size_t i = 0; i < n; ++i) q.spawn(bare::trivial());
    q.run();
    const Counters after = g;
    out += fmt("bare_floor_spawn_complete", delta(before, after, n));
  }
  {  // asio: live idle tasks (each suspended on its own steady_timer)
    asio::io_context ctx(1);
    const Counters before = g;
    for (std::size_t i = 0; i < n; ++i) asio::co_spawn(ctx, asio_idle(), asio::detached);
    ctx.poll();
    const Counters after = g;
    out += fmt("asio_idle_task", delta(before, after, n));
    ctx.stop();
  }
  {  // asio: co_spawn -> complete on a single-thread io_context
    asio::io_context ctx(1);
    const Counters before = g;
    for (std::size_t i = 0; i < n; ++i) asio::co_spawn(ctx, asio_trivial(), asio::detached);
    ctx.run();
    const Counters after = g;
    if (asio_done != n) fail("probe: asio");
    out += fmt("asio_spawn_complete", delta(before, after, n), true);
  }
  out += "  }\n}\n";
  std::fputs(out.c_str(), stdout);
  return 0;
}
