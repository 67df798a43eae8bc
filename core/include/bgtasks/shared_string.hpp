// An immutable string shared by a (non-atomic) reference count. A task's owner thread name is
// routed with every event the task sends; sharing it makes that a count increment instead of a
// heap copy per event (wasm32's short-string buffer holds only 10 bytes, so most thread names
// would be copied).
#pragma once

#include <cstddef>
#include <cstring>
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
    if (p_) ++p_->refs;
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
  const char* data() const noexcept { return view().data(); }
  std::size_t size() const noexcept { return p_ ? p_->size : 0; }
  bool empty() const noexcept { return p_ == nullptr; }
  // Same text, shared storage: a cheap test before comparing characters.
  bool shares(const SharedString& o) const noexcept { return p_ == o.p_; }

  friend bool operator==(const SharedString& a, const SharedString& b) noexcept {
    return a.p_ == b.p_ || a.view() == b.view();
  }
  friend bool operator==(const SharedString& a, std::string_view b) noexcept { return a.view() == b; }
  friend bool operator==(const SharedString& a, const std::string& b) noexcept { return a.view() == b; }
  friend bool operator==(const SharedString& a, const char* b) noexcept { return a.view() == b; }
  friend std::string operator+(const std::string& a, const SharedString& b) { return a + std::string(b.view()); }
  friend std::string operator+(const SharedString& a, const std::string& b) { return std::string(a.view()) + b; }
  friend std::ostream& operator<<(std::ostream& os, const SharedString& s) { return os << s.view(); }

 private:
  struct Block {
    std::size_t refs;
    std::size_t size;
    char* data() noexcept { return reinterpret_cast<char*>(this + 1); }
    const char* data() const noexcept { return reinterpret_cast<const char*>(this + 1); }
  };
  static Block* make(std::string_view s) {
    auto* b = static_cast<Block*>(::operator new(sizeof(Block) + s.size()));
    b->refs = 1;
    b->size = s.size();
    std::memcpy(b->data(), s.data(), s.size());
    return b;
  }
  void release() noexcept {
    if (p_ && --p_->refs == 0) ::operator delete(p_);
    p_ = nullptr;
  }
  Block* p_ = nullptr;
};

}  // namespace bgtasks
