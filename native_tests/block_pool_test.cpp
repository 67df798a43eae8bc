// The per-thread block cache behind coroutine frames and task cores (block_pool.hpp).
#include "bgtasks/block_pool.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "support.hpp"

namespace bgtasks {
namespace {

class BlockCache : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!detail::kBlockCacheEnabled) GTEST_SKIP() << "the block cache is off under AddressSanitizer";
    trim_block_cache();
  }
  void TearDown() override { trim_block_cache(); }
};

TEST_F(BlockCache, AFreedBlockServesTheNextRequestOfItsSizeClass) {
  void* a = detail::pool_allocate(300);
  detail::pool_deallocate(a, 300);
  EXPECT_EQ(block_cache_stats().blocks, 1u);
  EXPECT_EQ(block_cache_stats().bytes, 304u);  // 16-byte classes
  void* other_class = detail::pool_allocate(200);
  EXPECT_NE(other_class, a);
  void* b = detail::pool_allocate(290);  // same class as 300
  EXPECT_EQ(b, a);
  EXPECT_EQ(block_cache_stats().blocks, 0u);
  detail::pool_deallocate(b, 290);
  detail::pool_deallocate(other_class, 200);
  EXPECT_EQ(block_cache_stats().blocks, 2u);
  trim_block_cache();
  EXPECT_EQ(block_cache_stats().blocks, 0u);
  EXPECT_EQ(block_cache_stats().bytes, 0u);
}

TEST_F(BlockCache, HoldsAtMostItsBoundAndNothingLarge) {
  std::vector<void*> blocks;
  const std::size_t n = 2 * detail::kMaxCachedBytes / 512;
  for (std::size_t i = 0; i < n; ++i) blocks.push_back(detail::pool_allocate(512));
  for (void* p : blocks) detail::pool_deallocate(p, 512);
  EXPECT_EQ(block_cache_stats().bytes, detail::kMaxCachedBytes);
  EXPECT_EQ(block_cache_stats().blocks, detail::kMaxCachedBytes / 512);
  trim_block_cache();
  void* large = detail::pool_allocate(detail::kMaxBlock + 1);
  detail::pool_deallocate(large, detail::kMaxBlock + 1);
  EXPECT_EQ(block_cache_stats().blocks, 0u);
}

TEST_F(BlockCache, EachThreadHasItsOwnEmptiedWhenTheThreadEnds) {
  void* a = detail::pool_allocate(64);
  void* b = detail::pool_allocate(64);
  detail::pool_deallocate(b, 64);  // cached on this thread
  const std::size_t released_before = detail::blocks_released_at_thread_exit();
  std::thread([a] {
    detail::pool_deallocate(a, 64);  // freed on another thread: cached there
    EXPECT_EQ(block_cache_stats().blocks, 1u);
  }).join();
  EXPECT_EQ(detail::blocks_released_at_thread_exit(), released_before + 1)
      << "the thread's cache was emptied at its exit";
  EXPECT_EQ(block_cache_stats().blocks, 1u) << "this thread's cache is its own";
}

// Frames and task cores go through the cache: a finished task's blocks serve the next spawn.
TEST_F(BlockCache, FinishedTasksLeaveTheirFrameAndCoreForTheNextSpawn) {
  auto h = testing::manager_with_store();
  auto body = [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); };
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(h->manager->spawn("t", "job", std::nullopt, "d", {}, body).ok());
  h->run_until_idle();
  // The frames are freed at completion; the cores stay until the tasks are forgotten.
  const std::size_t after_completion = block_cache_stats().blocks;
  EXPECT_GE(after_completion, 10u);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(h->manager->forget("bg_" + std::to_string(i)));
  EXPECT_GE(block_cache_stats().blocks, after_completion + 10);
  const std::size_t before_spawn = block_cache_stats().blocks;
  ASSERT_TRUE(h->manager->spawn("t", "job", std::nullopt, "d", {}, body).ok());
  EXPECT_EQ(block_cache_stats().blocks, before_spawn - 2) << "one frame and one core taken from the cache";
  h->run_until_idle();
  EXPECT_EQ(h->manager->stats().completed, 1u);  // the ten were forgotten
}

}  // namespace
}  // namespace bgtasks
