// A first-in first-out queue in one ring buffer that keeps its room between fills: an inbox is
// filled and drained over and over (emit ... drain), and std::deque allocated and freed a block
// per 4 KiB of events on every round (in wasm, dlmalloc's large-block path: the biggest allocator
// cost of the JS agent workload). The room grows by doubling; once emptied it is given back only
// when the fill that emptied it used less than a quarter of it, and a backlog that drains without
// emptying shrinks it (a burst does not pin its peak): see after_removal.
// Kept against the libraries (bench/native/containers_bench.cpp, 2026-12-07): events built in the
// slot, fill 1024 then drain took std::deque 1.25-1.68x our wall time, boost::container::deque
// 1.26-1.37x, boost::circular_buffer (no emplace in 1.74; grown by doubling) 1.65-2.10x, and
// 1.09-1.33x our instructions at every size. Fill 16: std::deque 0.79-0.81x wall, 1.09x instr.
#pragma once

#include <bit>
#include <cassert>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace bgtasks::detail {

template <class T>
class RingQueue {
  static_assert(std::is_nothrow_move_constructible_v<T>, "RingQueue moves its elements when it grows");

 public:
  RingQueue() noexcept = default;
  RingQueue(RingQueue&& o) noexcept
      : buf_(std::exchange(o.buf_, nullptr)),
        cap_(std::exchange(o.cap_, 0)),
        head_(std::exchange(o.head_, 0)),
        size_(std::exchange(o.size_, 0)),
        peak_(std::exchange(o.peak_, 0)) {}
  RingQueue& operator=(RingQueue&& o) noexcept {
    if (this != &o) {
      RingQueue gone(std::move(*this));
      swap(o);
    }
    return *this;
  }
  RingQueue(const RingQueue&) = delete;
  RingQueue& operator=(const RingQueue&) = delete;
  ~RingQueue() {
    destroy_front(size_);
    ::operator delete(buf_);
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t capacity() const noexcept { return cap_; }

  // The i-th oldest element.
  T& operator[](std::size_t i) noexcept {
    assert(i < size_);
    return buf_[wrap(head_ + i)];
  }
  const T& operator[](std::size_t i) const noexcept {
    assert(i < size_);
    return buf_[wrap(head_ + i)];
  }
  T& front() noexcept { return (*this)[0]; }

  // If growing throws, the queue is unchanged. `v` may be an element of this queue.
  void push_back(T&& v) {
    if (size_ == cap_) {
      T kept(std::move(v));  // growing moves the elements: v may be one of them
      grow(cap_ == 0 ? kFirstCapacity : 2 * cap_);
      append(std::move(kept));
    } else {
      append(std::move(v));
    }
  }
  // Constructs the newest element in place from args (which must not refer to an element). If
  // the constructor or growing throws, the queue is unchanged.
  template <class... A>
  T& emplace_back(A&&... args) {
    if (size_ == cap_) {
      T made(std::forward<A>(args)...);
      grow(cap_ == 0 ? kFirstCapacity : 2 * cap_);
      append(std::move(made));
    } else {
      ::new (static_cast<void*>(buf_ + wrap(head_ + size_))) T(std::forward<A>(args)...);
      ++size_;
      if (size_ > peak_) peak_ = size_;
    }
    return (*this)[size_ - 1];
  }
  void pop_front() noexcept { destroy_front(1); }
  // Removes the n oldest elements (n <= size()).
  void erase_front(std::size_t n) noexcept { destroy_front(n); }
  // Removes the n newest elements (n <= size()).
  void erase_back(std::size_t n) noexcept {
    assert(n <= size_);
    if (n == 0) return;  // as destroy_front: nothing removed, the room stays as it is
    for (std::size_t k = size_ - n; k < size_; ++k) (*this)[k].~T();
    size_ -= n;
    after_removal();
  }
  void clear() noexcept { destroy_front(size_); }

  void swap(RingQueue& o) noexcept {
    std::swap(buf_, o.buf_);
    std::swap(cap_, o.cap_);
    std::swap(head_, o.head_);
    std::swap(size_, o.size_);
    std::swap(peak_, o.peak_);
  }

  // Oldest to newest (for range-for; an index and the queue).
  template <class Q, class R>
  class basic_iterator {
   public:
    basic_iterator(Q* q, std::size_t i) noexcept : q_(q), i_(i) {}
    R& operator*() const noexcept { return (*q_)[i_]; }
    R* operator->() const noexcept { return &(*q_)[i_]; }
    basic_iterator& operator++() noexcept {
      ++i_;
      return *this;
    }
    bool operator==(const basic_iterator& o) const noexcept { return i_ == o.i_; }

   private:
    Q* q_;
    std::size_t i_;
  };
  using iterator = basic_iterator<RingQueue, T>;
  using const_iterator = basic_iterator<const RingQueue, const T>;
  iterator begin() noexcept { return {this, 0}; }
  iterator end() noexcept { return {this, size_}; }
  const_iterator begin() const noexcept { return {this, 0}; }
  const_iterator end() const noexcept { return {this, size_}; }

 private:
  static constexpr std::size_t kFirstCapacity = 16;  // a power of two, as every capacity
  static constexpr std::size_t kKeptRoom = 1024;     // a backlog's room shrinks only above this

  std::size_t wrap(std::size_t i) const noexcept { return i & (cap_ - 1); }

  void append(T&& v) noexcept {
    ::new (static_cast<void*>(buf_ + wrap(head_ + size_))) T(std::move(v));
    ++size_;
    if (size_ > peak_) peak_ = size_;
  }

  void destroy_front(std::size_t n) noexcept {
    assert(n <= size_);
    if (n == 0) return;  // nothing removed: the room stays as it is
    for (std::size_t k = 0; k < n; ++k) buf_[wrap(head_ + k)].~T();
    size_ -= n;
    head_ = size_ == 0 ? 0 : wrap(head_ + n);
    after_removal();
  }

  // The room policy. Emptied: the room is given back if the fill that emptied it used under a
  // quarter of it (the next fill's peak then decides). Holding under an eighth of a room of more
  // than kKeptRoom slots (a backlog that drains without emptying): it shrinks to twice what it
  // holds, as std::deque gave blocks back while draining.
  void after_removal() noexcept {
    if (size_ == 0) {
      if (cap_ > kFirstCapacity && peak_ * 4 < cap_) {
        ::operator delete(buf_);
        buf_ = nullptr;
        cap_ = 0;
      }
      head_ = 0;
      peak_ = 0;
    } else if (cap_ > kKeptRoom && size_ * 8 < cap_) {
      try_shrink(std::bit_ceil(2 * size_));
    }
  }

  // Allocates first (if that throws, nothing changed); moving cannot throw.
  void grow(std::size_t cap) {
    T* fresh = static_cast<T*>(::operator new(cap * sizeof(T)));
    relocate(fresh, cap);
  }
  void try_shrink(std::size_t cap) noexcept {
    T* fresh = static_cast<T*>(::operator new(cap * sizeof(T), std::nothrow));
    if (fresh) relocate(fresh, cap);  // out of memory: keeping the larger room is fine
  }
  void relocate(T* fresh, std::size_t cap) noexcept {
    for (std::size_t k = 0; k < size_; ++k) {
      T& old = (*this)[k];
      ::new (static_cast<void*>(fresh + k)) T(std::move(old));
      old.~T();
    }
    ::operator delete(buf_);
    buf_ = fresh;
    cap_ = cap;
    head_ = 0;
  }

  T* buf_ = nullptr;
  std::size_t cap_ = 0;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  std::size_t peak_ = 0;  // the most elements held since the queue was last empty
};

}  // namespace bgtasks::detail
