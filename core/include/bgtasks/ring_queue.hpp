// A first-in first-out queue in one ring buffer that keeps its room between fills: an inbox is
// filled and drained over and over (emit ... drain), and std::deque allocated and freed a block
// per 4 KiB of events on every round (in wasm, dlmalloc's large-block path: the biggest allocator
// cost of the JS agent workload). The room grows by doubling; once emptied it is given back only
// when the fill that emptied it used less than a quarter of it (a burst does not pin its peak).
#pragma once

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

  // If growing throws, the queue is unchanged.
  void push_back(T&& v) {
    if (size_ == cap_) grow();
    ::new (static_cast<void*>(buf_ + wrap(head_ + size_))) T(std::move(v));
    ++size_;
    if (size_ > peak_) peak_ = size_;
  }
  void pop_front() noexcept { destroy_front(1); }
  // Removes the n oldest elements (n <= size()).
  void erase_front(std::size_t n) noexcept { destroy_front(n); }
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

  std::size_t wrap(std::size_t i) const noexcept { return i & (cap_ - 1); }

  void destroy_front(std::size_t n) noexcept {
    assert(n <= size_);
    for (std::size_t k = 0; k < n; ++k) buf_[wrap(head_ + k)].~T();
    size_ -= n;
    head_ = size_ == 0 ? 0 : wrap(head_ + n);
    if (size_ == 0 && cap_ > kFirstCapacity && peak_ * 4 < cap_) {
      ::operator delete(buf_);
      buf_ = nullptr;
      cap_ = 0;
    }
    if (size_ == 0) peak_ = 0;  // the next fill's peak decides about the room it leaves
  }

  // Allocates first (if that throws, nothing changed); moving cannot throw.
  void grow() {
    const std::size_t cap = cap_ == 0 ? kFirstCapacity : 2 * cap_;
    T* fresh = static_cast<T*>(::operator new(cap * sizeof(T)));
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
