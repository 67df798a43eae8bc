// The core's home-made containers against the library containers that could replace them, each
// driven through the access pattern the core gives it (docs/benchmarks.md, "Home-made containers
// against libraries"). The project keeps a home-made container only where the library loses by
// more than 10 %, so every pair runs in one binary and one run, and the verdict is a ratio.
//   id map       TaskMetaMap (IdMap<PersistedTaskMeta>) vs std:: / boost::unordered_map<string, …>:
//                N live records; per op one id "bg_<n>" inserted, found 3 times, and an older id
//                erased (completion order, shuffled within groups of 16)
//   handle map   TaskHandleMap vs std:: / boost::unordered_map<uint64_t, shared_ptr<…>>: the same
//                pattern by task number (the shared_ptrs come from a pool: no allocation of ours)
//   ring queue   RingQueue<Event> vs std::deque, boost::container::deque, boost::circular_buffer
//                (grown by doubling when full): fill K events then drain all, repeated; and a
//                backlog of 1024 that takes 64 and gives 64 per round (never empties)
//   shared str   SharedString vs std::shared_ptr<const std::string> vs std::string: a thread name
//                copied into an event and destroyed, per event
// Per op: ns per cycle / event / copy. Wall time (UseRealTime), as the brief for this comparison
// asks; take medians over --benchmark_repetitions.
#include <benchmark/benchmark.h>

#include <boost/circular_buffer.hpp>
#include <boost/container/deque.hpp>
#include <boost/unordered_map.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bgtasks/id_map.hpp"
#include "bgtasks/inbox.hpp"
#include "bgtasks/ring_queue.hpp"
#include "bgtasks/shared_string.hpp"
#include "bgtasks/task_handle_map.hpp"
#include "bgtasks/types.hpp"

namespace {

// The id erased at step i: ids complete roughly in spawn order, shuffled within groups of 16
// (7 is odd, so each group's 16 ids are erased exactly once).
std::uint64_t completion_order(std::uint64_t i) { return (i & ~std::uint64_t{15}) | ((i * 7) & 15); }

std::string id_of(std::uint64_t n) { return "bg_" + std::to_string(n); }

// Each op is one call of a noinline step, so that callgrind can count instructions per op:
//   valgrind --tool=callgrind --toggle-collect='*step*' containers_bench --benchmark_filter=…
// and divide by the steps printed at exit (the same call overhead for every contender).
std::uint64_t g_steps = 0;
const bool g_report_steps = [] {
  std::atexit([] { std::fprintf(stderr, "steps: %llu\n", static_cast<unsigned long long>(g_steps)); });
  return true;
}();

// ---- id map ---------------------------------------------------------------------------------------
using Meta = bgtasks::PersistedTaskMeta;

struct HomeIds {
  bgtasks::TaskMetaMap m;
  void insert(const std::string& k) { m.try_emplace(k); }
  const Meta* find(const std::string& k) const {
    auto it = m.find(k);
    return it == m.end() ? nullptr : &it->second;
  }
  void erase(const std::string& k) { m.erase(k); }
};
template <class Map>
struct LibIds {
  Map m;
  void insert(const std::string& k) { m.try_emplace(k); }
  const Meta* find(const std::string& k) const {
    auto it = m.find(k);
    return it == m.end() ? nullptr : &it->second;
  }
  void erase(const std::string& k) { m.erase(k); }
};
using StdIds = LibIds<std::unordered_map<std::string, Meta>>;
using BoostIds = LibIds<boost::unordered_map<std::string, Meta>>;

template <class M>
[[gnu::noinline]] void id_step(M& m, std::uint64_t i, std::uint64_t live) {
  ++g_steps;
  const std::string k = id_of(i + live);
  m.insert(k);
  for (int r = 0; r < 3; ++r) benchmark::DoNotOptimize(m.find(k));
  m.erase(id_of(completion_order(i)));
}

template <class M>
void BM_id_map(benchmark::State& state) {
  const auto live = static_cast<std::uint64_t>(state.range(0));
  M m;
  for (std::uint64_t n = 0; n < live; ++n) m.insert(id_of(n));
  std::uint64_t i = 0;
  for (auto _ : state) id_step(m, i++, live);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---- handle map -----------------------------------------------------------------------------------
struct Spawned {  // the size of the manager's SpawnedTask (176 B)
  std::uint64_t number = 0;
  char rest[168] = {};
};
struct NumberOf {
  std::uint64_t operator()(const Spawned& s) const noexcept { return s.number; }
};

struct HomeHandles {
  bgtasks::detail::TaskHandleMap<Spawned, NumberOf> m;
  void insert(const std::shared_ptr<Spawned>& p) { m.insert(p); }
  Spawned* find(std::uint64_t k) const { return m.find(k); }
  void erase(std::uint64_t k) { m.erase(k); }
};
template <class Map>
struct LibHandles {
  Map m;
  void insert(const std::shared_ptr<Spawned>& p) { m.emplace(p->number, p); }
  Spawned* find(std::uint64_t k) const {
    auto it = m.find(k);
    return it == m.end() ? nullptr : it->second.get();
  }
  void erase(std::uint64_t k) { m.erase(k); }
};
using StdHandles = LibHandles<std::unordered_map<std::uint64_t, std::shared_ptr<Spawned>>>;
using BoostHandles = LibHandles<boost::unordered_map<std::uint64_t, std::shared_ptr<Spawned>>>;

template <class M>
[[gnu::noinline]] void handle_step(M& m, std::vector<std::shared_ptr<Spawned>>& pool, std::uint64_t i,
                                   std::uint64_t live) {
  ++g_steps;
  const std::uint64_t n = i + live;
  pool[n % pool.size()]->number = n;
  m.insert(pool[n % pool.size()]);
  for (int r = 0; r < 3; ++r) benchmark::DoNotOptimize(m.find(n));
  m.erase(completion_order(i));
}

template <class M>
void BM_handle_map(benchmark::State& state) {
  const auto live = static_cast<std::uint64_t>(state.range(0));
  // Slot n % pool of a pool 32 larger than the live set is free again by the time n comes round.
  const std::uint64_t pool_size = live + 32;
  std::vector<std::shared_ptr<Spawned>> pool(pool_size);
  for (auto& p : pool) p = std::make_shared<Spawned>();
  M m;
  for (std::uint64_t n = 0; n < live; ++n) {
    pool[n % pool_size]->number = n;
    m.insert(pool[n % pool_size]);
  }
  std::uint64_t i = 0;
  for (auto _ : state) handle_step(m, pool, i++, live);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---- ring queue -----------------------------------------------------------------------------------
using bgtasks::Event;

struct HomeQueue {
  bgtasks::detail::RingQueue<Event> q;
  template <class... A>
  void push(A&&... a) {
    q.emplace_back(std::forward<A>(a)...);
  }
  Event& front() { return q.front(); }
  void pop() { q.pop_front(); }
};
template <class Q>
struct LibQueue {
  Q q;
  template <class... A>
  void push(A&&... a) {
    q.emplace_back(std::forward<A>(a)...);
  }
  Event& front() { return q.front(); }
  void pop() { q.pop_front(); }
};
using StdQueue = LibQueue<std::deque<Event>>;
using BoostQueue = LibQueue<boost::container::deque<Event>>;
struct CircularQueue {  // boost::circular_buffer has a fixed capacity: doubled when full
  boost::circular_buffer<Event> q;
  template <class... A>
  void push(A&&... a) {  // no emplace_back in Boost 1.74: built, then moved in
    if (q.full()) q.set_capacity(q.capacity() < 16 ? 16 : 2 * q.capacity());
    q.push_back(Event(std::forward<A>(a)...));
  }
  Event& front() { return q.front(); }
  void pop() { q.pop_front(); }
};

// What the inbox holds per emit: a custom event with a short id, the shared thread name, a type
// and a small payload (all without allocation: the container's own cost is what differs), built
// in the queue's slot where the container can (InboxSender::send_custom does).
template <class Q>
void push_event(Q& q, std::uint64_t n, const bgtasks::SharedString& thread) {
  q.push(id_of(n), thread, "progress", bgtasks::json(static_cast<std::int64_t>(n)));
}

// One round: k events in, then `out` taken from the front (steps count events here).
template <class Q>
[[gnu::noinline]] void queue_step(Q& q, std::uint64_t& n, std::uint64_t k, std::uint64_t out,
                                  const bgtasks::SharedString& thread) {
  g_steps += k;
  for (std::uint64_t j = 0; j < k; ++j) push_event(q, n++, thread);
  for (std::uint64_t j = 0; j < out; ++j) {
    benchmark::DoNotOptimize(q.front().kind);
    q.pop();
  }
}

template <class Q>
void BM_queue_fill_drain(benchmark::State& state) {
  const auto k = static_cast<std::uint64_t>(state.range(0));
  const bgtasks::SharedString thread("agent-thread-main");
  Q q;
  std::uint64_t n = 0;
  for (auto _ : state) queue_step(q, n, k, k, thread);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * k));
}

template <class Q>
void BM_queue_backlog(benchmark::State& state) {
  constexpr std::uint64_t kBacklog = 1024, kRound = 64;
  const bgtasks::SharedString thread("agent-thread-main");
  Q q;
  std::uint64_t n = 0;
  for (; n < kBacklog; ++n) push_event(q, n, thread);
  for (auto _ : state) queue_step(q, n, kRound, kRound, thread);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kRound));
}

// ---- shared string --------------------------------------------------------------------------------
// Thread names of 12 and 20 characters (64-bit std::string keeps 15 in place, wasm32's 10).
std::string thread_name(std::int64_t len) { return std::string("agent-thread-main-worker").substr(0, len); }

template <class S>
S make_name(const std::string& s) {
  if constexpr (std::is_same_v<S, std::shared_ptr<const std::string>>) {
    return std::make_shared<const std::string>(s);
  } else {
    return S(s);
  }
}

template <class S>
[[gnu::noinline]] void name_step(const S& name) {
  ++g_steps;
  S copy = name;  // into the event, then the event is destroyed
  benchmark::DoNotOptimize(copy);
}

template <class S>
void BM_name_copy(benchmark::State& state) {
  const S name = make_name<S>(thread_name(state.range(0)));
  for (auto _ : state) name_step(name);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

}  // namespace

BENCHMARK_TEMPLATE(BM_id_map, HomeIds)->Name("id_map/home")->Arg(1000)->Arg(100000)->UseRealTime();
BENCHMARK_TEMPLATE(BM_id_map, StdIds)->Name("id_map/std_unordered")->Arg(1000)->Arg(100000)->UseRealTime();
BENCHMARK_TEMPLATE(BM_id_map, BoostIds)->Name("id_map/boost_unordered")->Arg(1000)->Arg(100000)->UseRealTime();

BENCHMARK_TEMPLATE(BM_handle_map, HomeHandles)->Name("handle_map/home")->Arg(1000)->Arg(100000)->UseRealTime();
BENCHMARK_TEMPLATE(BM_handle_map, StdHandles)->Name("handle_map/std_unordered")->Arg(1000)->Arg(100000)->UseRealTime();
BENCHMARK_TEMPLATE(BM_handle_map, BoostHandles)
    ->Name("handle_map/boost_unordered")
    ->Arg(1000)
    ->Arg(100000)
    ->UseRealTime();

BENCHMARK_TEMPLATE(BM_queue_fill_drain, HomeQueue)->Name("queue_fill_drain/home")->Arg(16)->Arg(1024)->UseRealTime();
BENCHMARK_TEMPLATE(BM_queue_fill_drain, StdQueue)
    ->Name("queue_fill_drain/std_deque")
    ->Arg(16)
    ->Arg(1024)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_queue_fill_drain, BoostQueue)
    ->Name("queue_fill_drain/boost_deque")
    ->Arg(16)
    ->Arg(1024)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_queue_fill_drain, CircularQueue)
    ->Name("queue_fill_drain/boost_circular")
    ->Arg(16)
    ->Arg(1024)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_queue_backlog, HomeQueue)->Name("queue_backlog/home")->UseRealTime();
BENCHMARK_TEMPLATE(BM_queue_backlog, StdQueue)->Name("queue_backlog/std_deque")->UseRealTime();
BENCHMARK_TEMPLATE(BM_queue_backlog, BoostQueue)->Name("queue_backlog/boost_deque")->UseRealTime();
BENCHMARK_TEMPLATE(BM_queue_backlog, CircularQueue)->Name("queue_backlog/boost_circular")->UseRealTime();

BENCHMARK_TEMPLATE(BM_name_copy, bgtasks::SharedString)->Name("name_copy/home")->Arg(12)->Arg(20)->UseRealTime();
BENCHMARK_TEMPLATE(BM_name_copy, std::shared_ptr<const std::string>)
    ->Name("name_copy/shared_ptr_string")
    ->Arg(12)
    ->Arg(20)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_name_copy, std::string)->Name("name_copy/std_string")->Arg(12)->Arg(20)->UseRealTime();

BENCHMARK_MAIN();
