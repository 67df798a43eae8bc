#include "bgtasks/block_pool.hpp"

#include <atomic>
#include <cstdint>

namespace bgtasks {
namespace {

constexpr std::size_t kClasses = detail::kMaxBlock / 16;

struct FreeBlock {
  FreeBlock* next;
};

// Trivially destructible, so it stays usable after its thread's destructors have run (a frame
// freed by a later destructor then goes straight to ::operator delete).
struct Cache {
  FreeBlock* heads[kClasses];
  std::size_t bytes;
  bool registered;  // the Reaper below is constructed
  bool dead;        // the thread is ending: cache nothing more
};
thread_local Cache t_cache{};

std::size_t drain(Cache& c) noexcept {
  std::size_t blocks = 0;
  for (std::size_t k = 0; k < kClasses; ++k) {
    while (FreeBlock* b = c.heads[k]) {
      c.heads[k] = b->next;
      ::operator delete(static_cast<void*>(b));
      ++blocks;
    }
  }
  c.bytes = 0;
  return blocks;
}

std::atomic<std::size_t> g_released_at_thread_exit{0};

struct Reaper {
  ~Reaper() {
    t_cache.dead = true;
    g_released_at_thread_exit.fetch_add(drain(t_cache), std::memory_order_relaxed);
  }
};
thread_local Reaper t_reaper;

// The reaper of a thread is set up on its first cache miss or first free, whichever comes first:
// a global whose destructor frees the main thread's first block would otherwise set it up after
// the thread's exit destructors ran, and the block would stay cached.
void ensure_reaper(Cache& c) noexcept {
  if (c.registered) return;
  (void)&t_reaper;  // odr-use: constructs this thread's reaper, which empties the cache at exit
  c.registered = true;
}

std::size_t class_of(std::size_t n) noexcept { return n == 0 ? 0 : (n - 1) / 16; }
// Every block of a class has the class's full size, so any request of the class can reuse it.
std::size_t class_size(std::size_t k) noexcept { return (k + 1) * 16; }

}  // namespace

void* detail::pool_allocate(std::size_t n) {
  if (detail::kBlockCacheEnabled && n <= detail::kMaxBlock) {
    Cache& c = t_cache;
    const std::size_t k = class_of(n);
    if (FreeBlock* b = c.heads[k]) {
      c.heads[k] = b->next;
      c.bytes -= class_size(k);
      return b;
    }
    ensure_reaper(c);
    return ::operator new(class_size(k));
  }
  return ::operator new(n);
}

void detail::pool_deallocate(void* p, std::size_t n) noexcept {
  if (detail::kBlockCacheEnabled && n <= detail::kMaxBlock) {
    Cache& c = t_cache;
    const std::size_t k = class_of(n);
    ensure_reaper(c);
    if (!c.dead && c.bytes + class_size(k) <= kMaxCachedBytes) {
      c.heads[k] = new (p) FreeBlock{c.heads[k]};
      c.bytes += class_size(k);
      return;
    }
  }
  ::operator delete(p);  // unsized: clang enables sized deallocation only with -fsized-deallocation
}

BlockCacheStats block_cache_stats() noexcept {
  BlockCacheStats s;
  const Cache& c = t_cache;
  for (std::size_t k = 0; k < kClasses; ++k)
    for (const FreeBlock* b = c.heads[k]; b; b = b->next) ++s.blocks;
  s.bytes = c.bytes;
  return s;
}

void trim_block_cache() noexcept { drain(t_cache); }

std::size_t detail::blocks_released_at_thread_exit() noexcept { return g_released_at_thread_exit.load(); }

}  // namespace bgtasks
