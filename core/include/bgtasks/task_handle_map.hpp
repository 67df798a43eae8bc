// The manager's handles by task number: an open-addressing table (linear probing, at most half
// full; groups of 16 consecutive numbers share adjacent slots, the groups Fibonacci-hashed: see
// grouped_home). std::unordered_map<uint64_t, …> cost a node allocation per task and, on wasm32, a
// 64-bit murmur hash and a modulo per lookup; the JS binding looks a task up on every emit and
// settle. A slot is the value's shared pointer alone (16 bytes, not 24): the key is read from the
// value (KeyOf), which a lookup that finds it reads next anyway.
// Kept against the libraries (bench/native/containers_bench.cpp, 2026-12-07, wall-time medians):
// insert + 3 finds + erase per task took std::unordered_map 1.36-1.71x our time at 1e3 live and
// 1.13-1.19x at 1e5; boost::unordered_map 1.74 1.09-1.55x at 1e3, but 0.92-1.20x at 1e5 with
// equal instructions: a thin margin, and either adds a node allocation per task.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "bgtasks/id_map.hpp"

namespace bgtasks::detail {

// KeyOf: a functor, key_of(const T&) -> the entry's task number (it never changes while stored).
template <class T, class KeyOf>
class TaskHandleMap {
 public:
  TaskHandleMap() = default;
  // The source is left empty (a usable table), so a destructor can take every entry out first.
  TaskHandleMap(TaskHandleMap&& o) noexcept
      : slots_(std::move(o.slots_)), size_(std::exchange(o.size_, 0)), shift_(std::exchange(o.shift_, 64)) {
    o.slots_.clear();
  }
  TaskHandleMap& operator=(TaskHandleMap&&) = delete;
  TaskHandleMap(const TaskHandleMap&) = delete;
  TaskHandleMap& operator=(const TaskHandleMap&) = delete;

  T* find(std::uint64_t key) const noexcept {
    const Slot* s = slot_of(key);
    return s ? s->get() : nullptr;
  }
  // The stored pointer itself (shares ownership); null when absent.
  std::shared_ptr<T> share(std::uint64_t key) const noexcept {
    const Slot* s = slot_of(key);
    return s ? *s : nullptr;
  }

  // Room for `n` entries: a later insert up to that size allocates nothing and cannot throw.
  void reserve(std::size_t n) {
    if (2 * n <= slots_.size()) return;  // the usual case, kept inline
    grow(n);
  }

  // `value` must be non-null (an empty slot is a null pointer) and its key absent.
  void insert(std::shared_ptr<T> value) {
    assert(value && !find(key_of(*value)));
    reserve(size_ + 1);
    place(std::move(value));
    ++size_;
  }

  bool erase(std::uint64_t key) noexcept {
    if (size_ == 0) return false;
    std::size_t i = home(key);
    for (;; i = (i + 1) & mask()) {
      if (!slots_[i]) return false;
      if (key_of(*slots_[i]) == key) break;
    }
    // Backward-shift deletion: later entries of the probe run move up, so no tombstones. The
    // value is released once the table is consistent again (its destructor may look here).
    std::shared_ptr<T> doomed = std::move(slots_[i]);
    for (std::size_t j = (i + 1) & mask(); slots_[j]; j = (j + 1) & mask()) {
      const std::size_t h = home(key_of(*slots_[j]));
      // Move j into the hole at i unless its home lies cyclically in (i, j].
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (stays) continue;
      slots_[i] = std::move(slots_[j]);
      i = j;
    }
    --size_;
    doomed.reset();
    return true;
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  void clear() noexcept {
    std::vector<Slot> old = std::move(slots_);
    slots_.clear();
    size_ = 0;
    // `old` (and every value) is released here, with the table already empty.
  }
  // f(key, T&) for every entry, in table order; f must not insert or erase.
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s) f(key_of(*s), *s);
  }
  // True once pred(T&) holds for an entry (table order, stops there).
  template <class P>
  bool any_of(P&& pred) const {
    for (const Slot& s : slots_)
      if (s && pred(*s)) return true;
    return false;
  }

 private:
  using Slot = std::shared_ptr<T>;
  static std::uint64_t key_of(const T& v) noexcept { return KeyOf{}(v); }
  std::size_t mask() const noexcept { return slots_.size() - 1; }
  const Slot* slot_of(std::uint64_t key) const noexcept {
    if (size_ == 0) return nullptr;
    for (std::size_t i = home(key);; i = (i + 1) & mask()) {
      const Slot& s = slots_[i];
      if (!s) return nullptr;
      if (key_of(*s) == key) return &s;
    }
  }
  std::size_t home(std::uint64_t key) const noexcept {
    return grouped_home<4>(key, 64 - shift_);  // task numbers are consecutive: see grouped_home
  }
  void place(std::shared_ptr<T> value) noexcept {
    std::size_t i = home(key_of(*value));
    while (slots_[i]) i = (i + 1) & mask();
    slots_[i] = std::move(value);
  }
  void grow(std::size_t n) {
    std::size_t capacity = slots_.empty() ? 16 : slots_.size();
    while (2 * n > capacity) capacity *= 2;
    if (capacity != slots_.size()) rehash(capacity);
  }
  // Allocates first: if that throws, the table is unchanged.
  void rehash(std::size_t capacity) {
    std::vector<Slot> fresh(capacity);
    unsigned shift = 64;
    for (std::size_t c = capacity; c > 1; c >>= 1) --shift;
    slots_.swap(fresh);
    shift_ = shift;
    for (Slot& s : fresh)
      if (s) place(std::move(s));
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
  unsigned shift_ = 64;
};

}  // namespace bgtasks::detail
