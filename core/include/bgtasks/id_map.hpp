// The container of the `background_task_state` value: task id (a string) → V.
//
// std::unordered_map<std::string, V> cost, per spawn → complete, a node allocation (a ~470-byte
// node: glibc's slow path once hundreds are live), two murmur hashes, a bucket array that is
// rehashed node by node as it grows, and a pointer chase per lookup. Here:
//   - values live in chunks that double in size (8, 16, 32, … entries) and never move, so a
//     reference stays valid until that entry is erased, as with unordered_map; erased slots are
//     reused;
//   - the index is an open-addressing table of 8-byte slots {32-bit hash, entry number}
//     (linear probing, at most half full, backward-shift deletion; task ids "bg_N" of consecutive
//     N share a slot line, see grouped_home): a lookup touches one slot line and one entry;
//   - a live entry keeps its key's 32-bit hash (in the free-list link's place), so a copy and an
//     erase by iterator hash no key again;
//   - iteration goes by entry number (for a map that only grows: insertion order).
// The interface is the part of std::unordered_map that users of the key touch: find, at,
// count/contains, operator[], try_emplace/emplace/insert_or_assign, erase, iteration, ==
// (order-independent). Lookups take any string_view. Unlike unordered_map's:
//   - an iterator names an entry number of one map object: references to values survive a swap
//     or a move of the map, iterators do not, and an end() taken before an insert may then name
//     the new entry;
//   - storage stays at its high-water mark (erased entries are reused, not freed) until clear(),
//     a copy, or the map's end; iteration also walks the erased entries' places.
// Kept against the libraries (bench/native/containers_bench.cpp, 2026-12-07, wall-time medians):
// with 1e5 live ids, insert + 3 finds + erase per task took std::unordered_map 2.6-7.3x and
// boost::unordered_map 1.74 2.9-4.1x our time (their node per entry); at 1e3 live they were
// within noise (0.84-1.16x, 0.62-1.07x) and ran 0.67-0.84x our instructions.
#pragma once

#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__cpp_exceptions)
#include <stdexcept>
#endif

namespace bgtasks::detail {

// One 64-bit word folded into a running hash (splitmix64's multipliers).
inline std::uint64_t mix_word(std::uint64_t h, std::uint64_t w) noexcept {
  h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
  return (h ^ (h >> 31)) * 0x94d049bb133111ebull;
}

// A 64-bit string hash, eight bytes at a time (ids are short: "bg_12345").
inline std::uint64_t hash_id(std::string_view s) noexcept {
  std::uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  const char* p = s.data();
  std::size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix_word(h, w);
  }
  if (n) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = mix_word(h, w);
  }
  return h ^ (h >> 29);
}

// Consecutive task numbers get adjacent slots in the id map's index and in the manager's handle
// table, in groups of 2^GroupBits, and the groups are scattered: a batch of spawns, or their
// completions in spawn order, touches one line of the table per group instead of one per task once
// the table outgrows the caches (spawn → complete with 1e6 live idle tasks: 1.5–2.1 → 0.9–1.1 µs
// per task; bench/README.md). The home slot of hash h in a table of 2^bits slots, bits >= GroupBits
// (both tables have at least 16 slots): the Fibonacci hash of h >> GroupBits places the group, h's
// low GroupBits the slot in it; for a well-mixed h as uniform as a plain Fibonacci hash. Larger
// groups make the probe runs of a half-full table longer: the id map, whose probes compare
// strings, uses groups of 4 (1.9–2.2 slots per hit for consecutive ids, against 1.2–1.3 with a
// plain hash; groups of 16 took 4.2–5.8); the handle table, whose probes compare integers, 16.
template <unsigned GroupBits>
std::size_t grouped_home(std::uint64_t h, unsigned bits) noexcept {
  assert(bits >= GroupBits);
  const std::uint64_t group =
      bits > GroupBits ? ((h >> GroupBits) * 0x9E3779B97F4A7C15ull) >> (64 + GroupBits - bits) : 0;
  return static_cast<std::size_t>((group << GroupBits) | (h & ((std::uint64_t{1} << GroupBits) - 1)));
}
inline constexpr unsigned kIdGroupBits = 2;

// The index hash of "bg_N" (N taken modulo 2^64): N's low kIdGroupBits stay the low bits (see
// grouped_home) and the rest is mixed as hash_id mixes a word.
inline std::uint64_t task_number_hash(std::uint64_t n) noexcept {
  std::uint64_t g = mix_word(0x9E3779B97F4A7C15ull, n >> kIdGroupBits);
  g ^= g >> 29;
  return (g << kIdGroupBits) | (n & ((1u << kIdGroupBits) - 1));
}

// The index hash of a task id. For "bg_" and up to 20 digits (the number wraps past 2^64), the
// number's low kIdGroupBits stay the low bits (see grouped_home) and the rest is mixed; any other id
// gets hash_id. ("bg_07" and "bg_7" hash alike: their keys still differ.)
inline std::uint64_t id_index_hash(std::string_view s) noexcept {
  if (s.size() > 3 && s.size() <= 3 + 20 && s[0] == 'b' && s[1] == 'g' && s[2] == '_') {
    std::uint64_t n = 0;
    bool number = true;
    for (std::size_t i = 3; number && i < s.size(); ++i) {
      const unsigned d = static_cast<unsigned char>(s[i]) - '0';
      number = d <= 9;
      n = n * 10 + d;
    }
    if (number) return task_number_hash(n);
  }
  return hash_id(s);
}

// A key whose index hash is already known: a caller that numbered the id ("bg_" + N) passes
// task_number_hash(N) instead of having the text parsed again. `hash` must be id_index_hash(id).
struct HashedId {
  std::string_view id;
  std::uint64_t hash;
};

template <class V>
class IdMap {
 public:
  using key_type = std::string;
  using mapped_type = V;
  using value_type = std::pair<const std::string, V>;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using reference = value_type&;
  using const_reference = const value_type&;

  template <bool Const>
  class Iter {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = IdMap::value_type;
    using difference_type = std::ptrdiff_t;
    using pointer = std::conditional_t<Const, const value_type*, value_type*>;
    using reference = std::conditional_t<Const, const value_type&, value_type&>;

    Iter() noexcept = default;
    template <bool C = Const, class = std::enable_if_t<C>>
    Iter(const Iter<false>& o) noexcept : map_(o.map_), i_(o.i_) {}

    reference operator*() const noexcept { return map_->entry(i_).value; }
    pointer operator->() const noexcept { return &map_->entry(i_).value; }
    Iter& operator++() noexcept {
      i_ = map_->next_live(i_ + 1);
      return *this;
    }
    Iter operator++(int) noexcept {
      Iter old = *this;
      ++*this;
      return old;
    }
    friend bool operator==(const Iter& a, const Iter& b) noexcept { return a.i_ == b.i_ && a.map_ == b.map_; }

   private:
    friend class IdMap;
    template <bool>
    friend class Iter;
    using Map = std::conditional_t<Const, const IdMap, IdMap>;
    Iter(Map* m, std::uint32_t i) noexcept : map_(m), i_(i) {}
    Map* map_ = nullptr;
    std::uint32_t i_ = 0;
  };
  using iterator = Iter<false>;
  using const_iterator = Iter<true>;

  IdMap() noexcept = default;
  IdMap(const IdMap& o) : IdMap() {
    reserve(o.size_);
    for (std::uint32_t i = o.next_live(0); i < o.used_; i = o.next_live(i + 1)) {
      const Entry& e = o.entry(i);
      place(e.hash_or_next_free, e.value.first, e.value.second);  // the key's stored hash: no rehash
    }
  }
  IdMap(IdMap&& o) noexcept { swap(o); }
  IdMap(std::initializer_list<value_type> init) : IdMap(init.begin(), init.end()) {}
  template <class It>
  IdMap(It first, It last) : IdMap() {
    for (; first != last; ++first) try_emplace(first->first, first->second);
  }
  // awaken's shape (a HashMap): converts, so code written against std::unordered_map still fits.
  template <class H, class E, class A>
  IdMap(std::unordered_map<std::string, V, H, E, A> m) : IdMap() {
    reserve(m.size());
    for (auto& [k, v] : m) try_emplace(k, std::move(v));
  }
  IdMap& operator=(const IdMap& o) {
    if (this != &o) {
      IdMap copy(o);
      swap(copy);
    }
    return *this;
  }
  IdMap& operator=(IdMap&& o) noexcept {
    if (this != &o) {
      IdMap doomed(std::move(o));  // our old entries are released once *this holds the new ones
      swap(doomed);
    }
    return *this;
  }
  ~IdMap() { release_all(); }

  void swap(IdMap& o) noexcept {
    std::swap(chunks_, o.chunks_);
    std::swap(capacity_, o.capacity_);
    std::swap(slots_, o.slots_);
    std::swap(shift_, o.shift_);
    std::swap(size_, o.size_);
    std::swap(used_, o.used_);
    std::swap(free_, o.free_);
  }
  friend void swap(IdMap& a, IdMap& b) noexcept { a.swap(b); }

  iterator begin() noexcept { return {this, next_live(0)}; }
  iterator end() noexcept { return {this, used_}; }
  const_iterator begin() const noexcept { return {this, next_live(0)}; }
  const_iterator end() const noexcept { return {this, used_}; }
  const_iterator cbegin() const noexcept { return begin(); }
  const_iterator cend() const noexcept { return end(); }

  size_type size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // Room for `n` entries: inserts up to that size allocate nothing.
  void reserve(size_type n) {
    if (n > kMaxEntries) std::abort();  // 2^30 entries at most (the index stays within a 32-bit size_t)
    grow_index(n);
    while (entry_capacity() < n) add_chunk();
  }
  void clear() noexcept {
    IdMap doomed;
    swap(doomed);  // the values are released with the map already empty
  }

  iterator find(std::string_view k) noexcept { return {this, lookup(k)}; }
  const_iterator find(std::string_view k) const noexcept { return {this, lookup(k)}; }
  size_type count(std::string_view k) const noexcept { return lookup(k) != used_; }
  bool contains(std::string_view k) const noexcept { return lookup(k) != used_; }
  V& at(std::string_view k) { return entry(checked(k)).value.second; }
  const V& at(std::string_view k) const { return entry(checked(k)).value.second; }
  V& operator[](const std::string& k) { return try_emplace(k).first->second; }
  V& operator[](std::string&& k) { return try_emplace(std::move(k)).first->second; }

  // Inserts {k, V(args…)} unless k is present (then nothing is constructed).
  template <class K, class... Args>
  std::pair<iterator, bool> try_emplace(K&& k, Args&&... args) {
    const std::string_view key(k);
    return try_emplace_hashed(id_index_hash(key), std::forward<K>(k), std::forward<Args>(args)...);
  }
  // The same with the key's hash known (the key is constructed from k.id).
  template <class... Args>
  std::pair<iterator, bool> try_emplace(HashedId k, Args&&... args) {
    assert(k.hash == id_index_hash(k.id));
    return try_emplace_hashed(k.hash, k.id, std::forward<Args>(args)...);
  }
  template <class K, class M>
  std::pair<iterator, bool> emplace(K&& k, M&& m) {
    return try_emplace(std::forward<K>(k), std::forward<M>(m));
  }
  std::pair<iterator, bool> insert(value_type v) { return try_emplace(v.first, std::move(v.second)); }
  template <class K, class M>
  std::pair<iterator, bool> insert_or_assign(K&& k, M&& m) {
    auto r = try_emplace(std::forward<K>(k), std::forward<M>(m));
    if (!r.second) r.first->second = std::forward<M>(m);
    return r;
  }

  // Returns the entry after `pos` in iteration order.
  iterator erase(const_iterator pos) noexcept {
    const std::uint32_t i = pos.i_;
    unlink(find_slot_of(i, entry(i).hash_or_next_free));
    release_entry(i);
    return {this, next_live(i + 1)};
  }
  size_type erase(std::string_view k) noexcept {
    const std::uint64_t h = id_index_hash(k);
    const std::uint32_t i = lookup(k, h);
    if (i == used_) return 0;
    unlink(find_slot_of(i, h));
    release_entry(i);
    return 1;
  }

  friend bool operator==(const IdMap& a, const IdMap& b) {
    if (a.size_ != b.size_) return false;
    for (const auto& [k, v] : a) {
      const std::uint32_t j = b.lookup(k);
      if (j == b.used_ || !(b.entry(j).value.second == v)) return false;
    }
    return true;
  }

 private:
  template <class K, class... Args>
  std::pair<iterator, bool> try_emplace_hashed(std::uint64_t h, K&& k, Args&&... args) {
    if (const std::uint32_t i = lookup(std::string_view(k), h); i != used_) return {iterator(this, i), false};
    reserve(size_ + 1);
    return {iterator(this, place(h, std::forward<K>(k), std::forward<Args>(args)...)), true};
  }

  static constexpr std::uint32_t kNone = UINT32_MAX;
  // Chunks grow 8, 16, …, 1024 entries, then stay at 1024: a small map stays small, a large one
  // overshoots by at most one chunk. Entries past used_ are raw memory, never touched.
  static constexpr std::uint32_t kFirstChunk = 8;
  static constexpr std::uint32_t kDoublings = 8;  // chunks 0..7 double
  static constexpr std::uint32_t kBigChunk = kFirstChunk << (kDoublings - 1);
  static constexpr std::uint32_t kSmallEntries = kFirstChunk * ((1u << kDoublings) - 1);  // in chunks 0..7
  static constexpr std::uint32_t kMaxEntries = 1u << 30;  // so the index (2x, in slots) fits a 32-bit size_t

  struct Entry {
    union {
      value_type value;  // constructed while `live`
    };
    std::uint32_t hash_or_next_free;  // live: its key's 32-bit hash; free: the next free entry
    bool live;
    Entry() noexcept {}
    ~Entry() {}
  };
  // Chunks come from the plain ::operator new.
  static_assert(alignof(Entry) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "IdMap: over-aligned values are not supported");
  struct Slot {
    std::uint32_t hash = 0;
    std::uint32_t entry_plus_one = 0;  // 0: empty
  };

  static std::size_t chunk_size(std::size_t c) noexcept {
    return c < kDoublings ? std::size_t{kFirstChunk} << c : kBigChunk;
  }
  Entry& entry(std::uint32_t i) const noexcept {
    if (i < kSmallEntries) {
      const auto c = static_cast<std::uint32_t>(std::bit_width(i / kFirstChunk + 1) - 1);
      return chunks_[c][i - kFirstChunk * ((1u << c) - 1)];
    }
    const std::uint32_t j = i - kSmallEntries;
    return chunks_[kDoublings + j / kBigChunk][j % kBigChunk];
  }
  std::size_t entry_capacity() const noexcept { return capacity_; }
  void add_chunk() {
    const std::size_t n = chunk_size(chunks_.size());
    if (capacity_ + n > std::size_t{kMaxEntries} + kBigChunk) std::abort();  // unreachable: reserve() refuses more
    chunks_.reserve(chunks_.size() + 1);
    chunks_.push_back(static_cast<Entry*>(::operator new(n * sizeof(Entry))));  // reserved: cannot throw
    capacity_ += n;
  }

  std::size_t mask() const noexcept { return slots_.size() - 1; }
  std::size_t home(std::uint32_t h) const noexcept { return grouped_home<kIdGroupBits>(h, 32 - shift_); }

  std::uint32_t next_live(std::uint32_t i) const noexcept {
    while (i < used_ && !entry(i).live) ++i;
    return i;
  }
  // The entry number of key k, or used_ (end) when absent.
  std::uint32_t lookup(std::string_view k) const noexcept { return lookup(k, id_index_hash(k)); }
  std::uint32_t lookup(std::string_view k, std::uint64_t h64) const noexcept {
    if (size_ == 0) return used_;
    const auto h = static_cast<std::uint32_t>(h64);
    for (std::size_t s = home(h);; s = (s + 1) & mask()) {
      const Slot& slot = slots_[s];
      if (slot.entry_plus_one == 0) return used_;
      if (slot.hash == h && entry(slot.entry_plus_one - 1).value.first == k) return slot.entry_plus_one - 1;
    }
  }
  std::uint32_t checked(std::string_view k) const {
    const std::uint32_t i = lookup(k);
    if (i == used_) {
#if defined(__cpp_exceptions)
      throw std::out_of_range("IdMap::at: no entry " + std::string(k));
#else
      std::abort();
#endif
    }
    return i;
  }
  std::size_t find_slot_of(std::uint32_t i, std::uint64_t h64) const noexcept {
    const auto h = static_cast<std::uint32_t>(h64);
    std::size_t s = home(h);
    while (slots_[s].entry_plus_one != i + 1) s = (s + 1) & mask();
    return s;
  }

  // Index room for n entries at most half full. Allocates before touching anything.
  void grow_index(std::size_t n) {
    std::size_t cap = slots_.empty() ? 16 : slots_.size();
    while (2 * n > cap) cap *= 2;
    if (cap == slots_.size()) return;
    std::vector<Slot> fresh(cap);
    std::vector<Slot> old = std::exchange(slots_, std::move(fresh));
    shift_ = 32 - std::countr_zero(cap);
    for (const Slot& s : old)
      if (s.entry_plus_one) insert_slot(s);
  }
  void insert_slot(Slot s) noexcept {
    std::size_t i = home(s.hash);
    while (slots_[i].entry_plus_one) i = (i + 1) & mask();
    slots_[i] = s;
  }
  // Backward-shift deletion: later slots of the probe run move up; no tombstones.
  void unlink(std::size_t i) noexcept {
    slots_[i] = {};
    for (std::size_t j = (i + 1) & mask(); slots_[j].entry_plus_one; j = (j + 1) & mask()) {
      const std::size_t h = home(slots_[j].hash);
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (stays) continue;
      slots_[i] = slots_[j];
      slots_[j] = {};
      i = j;
    }
  }

  // Constructs the entry and indexes it. Room (index and entries) was reserved by the caller.
  template <class K, class... Args>
  std::uint32_t place(std::uint64_t h, K&& k, Args&&... args) {
    std::uint32_t i;
    if (free_ != kNone) {
      i = free_;
    } else {
      i = used_;
      assert(i < entry_capacity());
    }
    Entry& e = free_ != kNone ? entry(i) : *new (&entry(i)) Entry;
    new (&e.value) value_type(std::piecewise_construct, std::forward_as_tuple(std::forward<K>(k)),
                              std::forward_as_tuple(std::forward<Args>(args)...));
    // Nothing below can fail.
    if (free_ != kNone)
      free_ = e.hash_or_next_free;
    else
      ++used_;
    e.live = true;
    e.hash_or_next_free = static_cast<std::uint32_t>(h);
    insert_slot({static_cast<std::uint32_t>(h), i + 1});
    ++size_;
    return i;
  }
  void release_entry(std::uint32_t i) noexcept {
    Entry& e = entry(i);
    e.live = false;
    e.hash_or_next_free = free_;
    free_ = i;
    --size_;
    e.value.~value_type();
  }
  void release_all() noexcept {
    for (std::uint32_t i = 0; i < used_; ++i)
      if (Entry& e = entry(i); e.live) e.value.~value_type();
    for (Entry* c : chunks_) ::operator delete(c);
    chunks_.clear();
    capacity_ = 0;
  }

  std::vector<Entry*> chunks_;
  std::size_t capacity_ = 0;  // entries the chunks hold
  std::vector<Slot> slots_;
  int shift_ = 28;  // 32 - log2(slots_.size())
  std::uint32_t size_ = 0;
  std::uint32_t used_ = 0;      // entry numbers handed out so far (live or free)
  std::uint32_t free_ = kNone;  // erased entries, reused first
};

}  // namespace bgtasks::detail
