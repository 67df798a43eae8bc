// An immutable, NUL-terminated string shared by reference count. A task's owner thread name is
// routed with every event the task sends; sharing it makes that a count increment instead of a
// heap copy per event (wasm32's short-string buffer holds only 10 bytes, so most thread names
// would be copied). The count is atomic, as shared_ptr's: a drained Event may be handed to, or
// destroyed on, another thread (on wasm without threads the atomics are plain operations).
// Kept against the libraries (bench/native/containers_bench.cpp, 2026-12-07): copying and
// destroying a 12- or 20-char name took std::shared_ptr<const std::string> 1.2-1.7x our wall time
// (2.0x the instructions: two words, a separate count) and std::string 1.7x / 4.5-5.9x (3.2x /
// 14x the instructions: the 20-char name is a heap copy, on wasm32 the 12-char one too).
#pragma once

#include <atomic>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace bgtasks {

class SharedString {
 public:
  SharedString() noexcept = default;
  SharedString(std::string_view s) : p_(s.empty() ? nullptr : make(s)) {}    // NOLINT: implicit, as std::string
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
  bool empty() const noexcept { return size() == 0; }
  // Keeps this text when it already reads s, else takes a copy of s: a run of equal texts (one
  // thread's spawns, one snapshot's task types) then shares one block.
  const SharedString& reuse_for(std::string_view s) {
    // memcmp, not string_view's ==: GCC may keep string_view::compare out of line in a large
    // caller (spawn's), and this runs twice per spawn.
    const std::string_view v = view();
    if (v.size() != s.size() || (!s.empty() && std::memcmp(v.data(), s.data(), s.size()) != 0)) *this = SharedString(s);
    return *this;
  }
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
  friend class OptionalSharedString;
  struct Block {
    std::atomic<std::size_t> refs;
    std::size_t size;
    char* data() noexcept { return reinterpret_cast<char*>(this + 1); }
    const char* data() const noexcept { return reinterpret_cast<const char*>(this + 1); }
  };
  static Block* make(std::string_view s) {
    // No string is that long; saying so keeps GCC's allocation-size check quiet at -O2.
    if (s.size() > static_cast<std::size_t>(PTRDIFF_MAX) - sizeof(Block) - 1) {
#if defined(__cpp_exceptions)
      throw std::bad_alloc();
#else
      std::abort();
#endif
    }
    void* raw = ::operator new(sizeof(Block) + s.size() + 1);
    auto* b = new (raw) Block{{1}, s.size()};
    if (!s.empty()) std::memcpy(b->data(), s.data(), s.size());  // an empty view's data may be null
    b->data()[s.size()] = '\0';
    return b;
  }
  // The null test stays inline: most optional texts (lineage ids, names, errors) are absent, and
  // a spawn moves a handful of them (16 out-of-line calls per spawn before the split).
  void release() noexcept {
    if (p_) drop(std::exchange(p_, nullptr));
  }
  static void drop(Block* b) noexcept {
    if (b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      b->~Block();
      ::operator delete(b);
    }
  }
  Block* p_ = nullptr;
};

// An optional SharedString in one pointer (std::optional<std::string> takes 40 bytes on x86-64,
// 16 on wasm32). The stored task meta has six optional texts — name, error and four lineage
// ids — that are absent in most tasks; this keeps an absent one at a pointer's size and makes a
// copy of a present one a count increment. Absent is the null pointer; a present empty text
// gets its own block. Reads like std::optional<std::string>: has_value, *, ->, value_or, reset,
// emplace, ==; `*` gives a SharedString (a string_view-like text; .str() for a std::string).
class OptionalSharedString {
 public:
  OptionalSharedString() noexcept = default;
  OptionalSharedString(std::nullopt_t) noexcept {}                                           // NOLINT: as std::optional
  OptionalSharedString(std::string_view s) { s_.p_ = SharedString::make(s); }                // NOLINT
  OptionalSharedString(const std::string& s) : OptionalSharedString(std::string_view(s)) {}  // NOLINT
  OptionalSharedString(const char* s) : OptionalSharedString(std::string_view(s)) {}         // NOLINT
  OptionalSharedString(SharedString s) {                                                     // NOLINT: shares s's text
    if (s.p_)
      s_ = std::move(s);
    else
      s_.p_ = SharedString::make({});
  }
  OptionalSharedString(const std::optional<std::string>& o) {  // NOLINT
    if (o) s_.p_ = SharedString::make(*o);
  }
  OptionalSharedString& operator=(std::nullopt_t) noexcept {
    reset();
    return *this;
  }

  bool has_value() const noexcept { return s_.p_ != nullptr; }
  explicit operator bool() const noexcept { return has_value(); }
  const SharedString& operator*() const noexcept { return s_; }
  const SharedString* operator->() const noexcept { return &s_; }
  const SharedString& value() const {
    if (!has_value()) {
#if defined(__cpp_exceptions)
      throw std::bad_optional_access();
#else
      std::abort();  // as std::optional::value without exceptions
#endif
    }
    return s_;
  }
  std::string value_or(std::string_view fallback) const { return std::string(has_value() ? s_.view() : fallback); }
  void reset() noexcept { s_.release(); }
  const SharedString& emplace(std::string_view s) {
    *this = OptionalSharedString(s);
    return s_;
  }
  std::optional<std::string> to_optional() const {
    return has_value() ? std::optional<std::string>(s_.str()) : std::nullopt;
  }

  friend bool operator==(const OptionalSharedString& a, const OptionalSharedString& b) noexcept {
    return a.has_value() == b.has_value() && a.s_ == b.s_;
  }
  friend bool operator==(const OptionalSharedString& a, std::nullopt_t) noexcept { return !a.has_value(); }
  // A present text equal to s (std::optional's rule for comparing with a value).
  friend bool operator==(const OptionalSharedString& a, std::string_view s) noexcept {
    return a.has_value() && a.s_ == s;
  }
  friend bool operator==(const OptionalSharedString& a, const std::string& s) noexcept {
    return a == std::string_view(s);
  }
  friend bool operator==(const OptionalSharedString& a, const char* s) noexcept { return a == std::string_view(s); }
  friend bool operator==(const OptionalSharedString& a, const SharedString& s) noexcept { return a == s.view(); }
  friend bool operator==(const OptionalSharedString& a, const std::optional<std::string>& b) noexcept {
    return b ? a == std::string_view(*b) : !a.has_value();
  }
  // Without it std::optional's own template would compare an absent one unequal to nullopt views.
  friend bool operator==(const OptionalSharedString& a, const std::optional<std::string_view>& b) noexcept {
    return b ? a == *b : !a.has_value();
  }
  friend std::ostream& operator<<(std::ostream& os, const OptionalSharedString& s) {
    return s.has_value() ? os << '"' << s.s_.view() << '"' : os << "nullopt";
  }

 private:
  SharedString s_;
};

}  // namespace bgtasks

template <>
struct std::hash<bgtasks::SharedString> {
  std::size_t operator()(const bgtasks::SharedString& s) const noexcept {
    return std::hash<std::string_view>{}(s.view());
  }
};
