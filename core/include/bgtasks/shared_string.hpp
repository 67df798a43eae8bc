// An immutable, NUL-terminated string shared by reference count. A task's owner thread name is
// routed with every event the task sends; sharing it makes that a count increment instead of a
// heap copy per event (wasm32's short-string buffer holds only 10 bytes, so most thread names
// would be copied). The count is atomic, as shared_ptr's: a drained Event may be handed to, or
// destroyed on, another thread (on wasm without threads the atomics are plain operations).
#pragma once

#include <atomic>
#include <compare>
#include <cstddef>
#include <cstring>
#include <functional>
#include <new>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace bgtasks {

class SharedString {
 public:
  SharedString() noexcept = default;
  SharedString(std::string_view s) : p_(s.empty() ? nullptr : make(s)) {}  // NOLINT: implicit, as std::string
  SharedString(const std::string& s) : SharedString(std::string_view(s)) {}  // NOLINT
  SharedString(const char* s) : SharedString(std::string_view(s)) {}         // NOLINT
  SharedString(const SharedString& o) noexcept : p_(o.p_) {
    if (p_) p_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  SharedString(SharedString&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  SharedString& operator=(SharedString o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~SharedString() { release(); }

  std::string_view view() const noexcept { return p_ ? std::string_view(p_->data(), p_->size) : std::string_view(); }
  operator std::string_view() const noexcept { return view(); }  // NOLINT: reads as a string
  std::string str() const { return std::string(view()); }
  const char* c_str() const noexcept { return p_ ? p_->data() : ""; }
  const char* data() const noexcept { return c_str(); }
  std::size_t size() const noexcept { return p_ ? p_->size : 0; }
  std::size_t length() const noexcept { return size(); }
  bool empty() const noexcept { return p_ == nullptr; }
  // Same storage (so the same text): a cheap test before comparing characters.
  bool shares(const SharedString& o) const noexcept { return p_ == o.p_; }

  friend bool operator==(const SharedString& a, const SharedString& b) noexcept {
    return a.p_ == b.p_ || a.view() == b.view();
  }
  friend bool operator==(const SharedString& a, std::string_view b) noexcept { return a.view() == b; }
  friend bool operator==(const SharedString& a, const std::string& b) noexcept { return a.view() == b; }
  friend bool operator==(const SharedString& a, const char* b) noexcept { return a.view() == b; }
  // Through compare(): the libc++ of Emscripten 3.1.6 has no operator<=> for string_view.
  friend std::strong_ordering operator<=>(const SharedString& a, const SharedString& b) noexcept {
    return a.view().compare(b.view()) <=> 0;
  }
  friend std::strong_ordering operator<=>(const SharedString& a, std::string_view b) noexcept {
    return a.view().compare(b) <=> 0;
  }
  friend std::strong_ordering operator<=>(const SharedString& a, const std::string& b) noexcept {
    return a.view().compare(b) <=> 0;
  }
  friend std::strong_ordering operator<=>(const SharedString& a, const char* b) noexcept {
    return a.view().compare(b) <=> 0;
  }
  friend std::string operator+(const std::string& a, const SharedString& b) { return a + std::string(b.view()); }
  friend std::string operator+(const SharedString& a, const std::string& b) { return std::string(a.view()) + b; }
  friend std::ostream& operator<<(std::ostream& os, const SharedString& s) { return os << s.view(); }

 private:
  struct Block {
    std::atomic<std::size_t> refs;
    std::size_t size;
    char* data() noexcept { return reinterpret_cast<char*>(this + 1); }
    const char* data() const noexcept { return reinterpret_cast<const char*>(this + 1); }
  };
  static Block* make(std::string_view s) {
    void* raw = ::operator new(sizeof(Block) + s.size() + 1);
    auto* b = new (raw) Block{{1}, s.size()};
    std::memcpy(b->data(), s.data(), s.size());
    b->data()[s.size()] = '\0';
    return b;
  }
  void release() noexcept {
    if (p_ && p_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      p_->~Block();
      ::operator delete(p_);
    }
    p_ = nullptr;
  }
  Block* p_ = nullptr;
};

}  // namespace bgtasks

template <>
struct std::hash<bgtasks::SharedString> {
  std::size_t operator()(const bgtasks::SharedString& s) const noexcept { return std::hash<std::string_view>{}(s.view()); }
};
