// A per-thread cache of freed blocks for coroutine frames and spawned tasks.
//
// Every spawn → complete allocates a frame (≈ 300 bytes) and a SpawnedTask (≈ 250 bytes) and frees
// both. Those sizes are above glibc's fast bins, so each free went through chunk coalescing and
// each malloc through the unsorted and small bins — about a sixth of a spawn → complete's
// instructions, and cache misses on the neighbouring chunks once many tasks are live. Here a freed
// block of up to kMaxBlock bytes goes on its size class's free list (16-byte classes) and the next
// request of that class takes it back: a push and a pop.
//
// Bounded: the cache of a thread holds at most kMaxCachedBytes; past that, blocks go back to
// ::operator delete. It is emptied when its thread ends, and by trim_block_cache(). Under
// AddressSanitizer it is off, so a use after free of a frame is still reported.
#pragma once

#include <cstddef>
#include <new>

namespace bgtasks {

// What the calling thread's cache holds: the blocks and their bytes (requested sizes rounded up
// to 16).
struct BlockCacheStats {
  std::size_t blocks = 0;
  std::size_t bytes = 0;
};
BlockCacheStats block_cache_stats() noexcept;
// Gives the calling thread's cached blocks back to ::operator delete.
void trim_block_cache() noexcept;

namespace detail {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kBlockCacheEnabled = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kBlockCacheEnabled = false;
#else
inline constexpr bool kBlockCacheEnabled = true;
#endif
#else
inline constexpr bool kBlockCacheEnabled = true;
#endif

inline constexpr std::size_t kMaxBlock = 1024;
inline constexpr std::size_t kMaxCachedBytes = std::size_t{1} << 20;

// n bytes, 16-byte aligned (as ::operator new). Throws std::bad_alloc as ::operator new does.
void* pool_allocate(std::size_t n);
// p came from pool_allocate(n) on any thread.
void pool_deallocate(void* p, std::size_t n) noexcept;

// Blocks the exiting threads' caches gave back so far, over the whole process (for tests and
// diagnostics).
std::size_t blocks_released_at_thread_exit() noexcept;

// A std allocator over the pool (std::allocate_shared of task cores).
template <class T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() noexcept = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) noexcept {}
  static_assert(alignof(T) <= 16, "PoolAllocator: over-aligned types are not supported");
  T* allocate(std::size_t n) { return static_cast<T*>(pool_allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { pool_deallocate(p, n * sizeof(T)); }
  template <class U>
  friend bool operator==(const PoolAllocator&, const PoolAllocator<U>&) noexcept {
    return true;
  }
};

}  // namespace detail
}  // namespace bgtasks
