// The codec's JSON reader: one pass over the text, SAX events to a handler with nlohmann's SAX
// interface (null, boolean, number_integer, number_unsigned, number_float, string, start_object,
// key, end_object, start_array, end_array). It accepts exactly what nlohmann 3.11's strict parser
// accepts, with the same values (checked against it by native_tests/codec_differential_test.cpp
// and fuzz/fuzz_event_json.cpp):
//  - RFC 8259 JSON, whitespace " \t\n\r", an optional UTF-8 BOM at the very start, and
//    anything after a NUL byte that follows the value (nlohmann's lexer ends input there);
//  - strings: strict UTF-8, no raw control characters, \u escapes with surrogate pairs checked;
//  - integers that fit int64 (negative) or uint64 are integers, others doubles (strtod, whatever
//    the C locale's decimal point); a double that overflows to infinity is an error (nlohmann's
//    "number overflow").
// Why not nlohmann's lexer: it copies every character into a token buffer and an error-message
// buffer; restoring a 1e5-task snapshot spent most of its time there (bench/README.md).
// Nesting is bounded by max_depth (the container stack is a vector, no recursion either way).
// Internal to core/src: included by codec.cpp only.
#pragma once

#include <array>
#include <bit>
#include <clocale>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace bgtasks::detail {

// The first byte at or after p (before end) that a JSON string cannot hold as it is: '"', '\\',
// a control character, or a byte of a multi-byte UTF-8 sequence. The reader copies the bytes
// before it at once, and the writers do the same. Eight bytes at a time (the strings of a
// snapshot are short, so the word that holds the closing quote is the common case): each test
// below flags, in bit 7 of a byte, that byte and possibly later ones (a borrow runs upwards only),
// so the lowest flag is the first special byte.
inline const char* skip_plain(const char* p, const char* end) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  if constexpr (std::endian::native == std::endian::little) {
    for (; end - p >= 8; p += 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      const std::uint64_t quote = w ^ (kOnes * '"'), backslash = w ^ (kOnes * '\\');
      const std::uint64_t special = ((w - kOnes * 0x20) & ~w)             // below 0x20
                                    | ((quote - kOnes) & ~quote)          // '"'
                                    | ((backslash - kOnes) & ~backslash)  // '\\'
                                    | w;                                  // 0x80 and above
      if (const std::uint64_t flags = special & kHigh) return p + (std::countr_zero(flags) >> 3);
    }
  }
  // The tail (and big-endian machines): a table, one load per byte.
  static constexpr auto kSpecial = [] {
    std::array<bool, 256> t{};
    for (unsigned c = 0; c < 256; ++c) t[c] = c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
    return t;
  }();
  while (p != end && !kSpecial[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

// Length of the well-formed UTF-8 sequence at p (n bytes available), 0 if it is ill-formed:
// RFC 3629, as nlohmann's decoder accepts it (no overlongs, no surrogates, nothing above
// U+10FFFF). The reader validates strings with it, and the writers decide with it what to copy.
inline std::size_t utf8_sequence_length(const unsigned char* p, std::size_t n) {
  const unsigned c = p[0];
  auto cont = [&](std::size_t i) { return (p[i] & 0xC0u) == 0x80u; };
  if (c < 0xC2) return 0;
  if (c < 0xE0) return n >= 2 && cont(1) ? 2 : 0;
  if (c < 0xF0) {
    if (n < 3 || !cont(2)) return 0;
    const unsigned c1 = p[1];
    if (c == 0xE0) return c1 >= 0xA0 && c1 <= 0xBF ? 3 : 0;
    if (c == 0xED) return c1 >= 0x80 && c1 <= 0x9F ? 3 : 0;
    return cont(1) ? 3 : 0;
  }
  if (c < 0xF5) {
    if (n < 4 || !cont(2) || !cont(3)) return 0;
    const unsigned c1 = p[1];
    if (c == 0xF0) return c1 >= 0x90 && c1 <= 0xBF ? 4 : 0;
    if (c == 0xF4) return c1 >= 0x80 && c1 <= 0x8F ? 4 : 0;
    return cont(1) ? 4 : 0;
  }
  return 0;
}

template <class Sax>
class JsonSaxReader {
 public:
  // max_depth: containers may nest this many levels below the root (which is level 0); deeper
  // input fails like a syntax error.
  JsonSaxReader(std::string_view text, Sax& sax, std::size_t max_depth)
      : p_(text.data()), end_(text.data() + text.size()), sax_(sax), max_depth_(max_depth) {}

  // True when the whole text is one JSON value and the handler accepted every event.
  bool parse() {
    if (end_ - p_ >= 1 && static_cast<unsigned char>(*p_) == 0xEF) {
      if (end_ - p_ < 3 || static_cast<unsigned char>(p_[1]) != 0xBB || static_cast<unsigned char>(p_[2]) != 0xBF)
        return false;
      p_ += 3;
    }
    if (!value()) return false;
    skip_ws();
    // nlohmann's lexer reads a NUL byte where a token starts as the end of input: text after the
    // value's NUL is ignored (anywhere else a NUL is an error, as for nlohmann).
    return p_ == end_ || *p_ == '\0';
  }

 private:
  enum Frame : std::uint8_t { kInArray, kInObject };

  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  // Iterative over containers: `stack_` says what a value closes into.
  bool value() {
    for (;;) {
      skip_ws();
      if (p_ == end_) return false;
      bool done_scalar = true;
      switch (*p_) {
        case '{':
          if (stack_.size() > max_depth_) return false;
          ++p_;
          if (!sax_.start_object(static_cast<std::size_t>(-1))) return false;
          skip_ws();
          if (p_ != end_ && *p_ == '}') {
            ++p_;
            if (!sax_.end_object()) return false;
            break;
          }
          stack_.push_back(kInObject);
          if (!object_key()) return false;
          done_scalar = false;
          break;
        case '[':
          if (stack_.size() > max_depth_) return false;
          ++p_;
          if (!sax_.start_array(static_cast<std::size_t>(-1))) return false;
          skip_ws();
          if (p_ != end_ && *p_ == ']') {
            ++p_;
            if (!sax_.end_array()) return false;
            break;
          }
          stack_.push_back(kInArray);
          done_scalar = false;
          break;
        case '"':
          ++p_;
          if (!string_into(buf_) || !sax_.string(buf_)) return false;
          break;
        case 't':
          if (!literal("true") || !sax_.boolean(true)) return false;
          break;
        case 'f':
          if (!literal("false") || !sax_.boolean(false)) return false;
          break;
        case 'n':
          if (!literal("null") || !sax_.null()) return false;
          break;
        default:
          if (!number()) return false;
      }
      if (!done_scalar) continue;  // the first element of a container follows
      // A value ended: close containers until one expects another element.
      for (;;) {
        if (stack_.empty()) return true;
        skip_ws();
        if (p_ == end_) return false;
        const char c = *p_++;
        if (stack_.back() == kInArray) {
          if (c == ',') break;
          if (c != ']' || !sax_.end_array()) return false;
        } else {
          if (c == ',') {
            if (!object_key()) return false;
            break;
          }
          if (c != '}' || !sax_.end_object()) return false;
        }
        stack_.pop_back();
      }
    }
  }

  // `"key" :` inside an object.
  bool object_key() {
    skip_ws();
    if (p_ == end_ || *p_ != '"') return false;
    ++p_;
    if (!string_into(buf_) || !sax_.key(buf_)) return false;
    skip_ws();
    if (p_ == end_ || *p_ != ':') return false;
    ++p_;
    return true;
  }

  bool literal(const char (&word)[5]) { return literal_n(word, 4); }
  bool literal(const char (&word)[6]) { return literal_n(word, 5); }
  bool literal_n(const char* word, std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return false;
    p_ += n;
    return true;
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(unsigned& out) {
    if (end_ - p_ < 4) return false;
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = hex(p_[i]);
      if (h < 0) return false;
      v = (v << 4) | static_cast<unsigned>(h);
    }
    p_ += 4;
    out = v;
    return true;
  }
  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // After the opening quote; leaves p_ after the closing one. Runs of plain bytes are copied at once.
  bool string_into(std::string& out) {
    out.clear();
    for (;;) {
      const char* run = p_;
      p_ = skip_plain(p_, end_);
      out.append(run, static_cast<std::size_t>(p_ - run));
      if (p_ == end_) return false;
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++p_;
        if (!escape(out)) return false;
        continue;
      }
      if (!utf8_sequence(out)) return false;
    }
  }

  bool escape(std::string& out) {
    if (p_ == end_) return false;
    switch (*p_++) {
      case '"':
        out += '"';
        return true;
      case '\\':
        out += '\\';
        return true;
      case '/':
        out += '/';
        return true;
      case 'b':
        out += '\b';
        return true;
      case 'f':
        out += '\f';
        return true;
      case 'n':
        out += '\n';
        return true;
      case 'r':
        out += '\r';
        return true;
      case 't':
        out += '\t';
        return true;
      case 'u': {
        unsigned cp = 0;
        if (!hex4(cp)) return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          // A high surrogate must be followed by \u and a low one.
          unsigned lo = 0;
          if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
          p_ += 2;
          if (!hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          return false;
        }
        put_utf8(out, cp);
        return true;
      }
      default:
        return false;
    }
  }

  // One multi-byte UTF-8 sequence, validated as nlohmann does.
  bool utf8_sequence(std::string& out) {
    const std::size_t n =
        utf8_sequence_length(reinterpret_cast<const unsigned char*>(p_), static_cast<std::size_t>(end_ - p_));
    if (n == 0) return false;
    out.append(p_, n);
    p_ += n;
    return true;
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  // The C locale's decimal point, looked up once per parse (at its first fraction).
  char decimal_point() {
    if (decimal_point_ == '\0') {
      const char* point = std::localeconv()->decimal_point;
      decimal_point_ = point && point[0] != '\0' ? point[0] : '.';
    }
    return decimal_point_;
  }

  bool number() {
    const char* start = p_;
    const bool negative = *p_ == '-';
    if (negative) ++p_;
    if (p_ == end_ || !digit(*p_)) return false;
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ != end_ && digit(*p_)) ++p_;
    }
    const char* int_end = p_;
    bool is_float = false;
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || !digit(*p_)) return false;
      while (p_ != end_ && digit(*p_)) ++p_;
      is_float = true;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !digit(*p_)) return false;
      while (p_ != end_ && digit(*p_)) ++p_;
      is_float = true;
    }
    if (!is_float) {
      // Exact integer when it fits (int64 for negatives, uint64 otherwise); else a double, as nlohmann.
      const char* d = negative ? start + 1 : start;
      std::uint64_t v = 0;
      bool overflow = false;
      for (; d != int_end; ++d) {
        const auto digit_value = static_cast<std::uint64_t>(*d - '0');
        if (v > (UINT64_MAX - digit_value) / 10) {
          overflow = true;
          break;
        }
        v = v * 10 + digit_value;
      }
      if (!overflow) {
        if (!negative) return sax_.number_unsigned(v);
        if (v <= static_cast<std::uint64_t>(INT64_MAX) + 1)
          return sax_.number_integer(v == static_cast<std::uint64_t>(INT64_MAX) + 1 ? INT64_MIN
                                                                                    : -static_cast<std::int64_t>(v));
      }
    }
    // strtod needs a terminated copy (the text is a view), and reads the decimal point of the
    // process's C locale (LC_NUMERIC): write that one for '.', as nlohmann's lexer does, so that a
    // host running under, say, de_DE reads 1.5 as 1.5 and not as 1.
    num_.assign(start, static_cast<std::size_t>(p_ - start));
    if (const std::size_t dot = num_.find('.'); dot != std::string::npos) num_[dot] = decimal_point();
    const double d = std::strtod(num_.c_str(), nullptr);
    if (!std::isfinite(d)) return false;
    return sax_.number_float(d, num_);
  }

  const char* p_;
  const char* end_;
  Sax& sax_;
  std::size_t max_depth_;
  std::vector<Frame> stack_;
  std::string buf_;  // the current string or key (handlers may move from it)
  std::string num_;
  char decimal_point_ = '\0';  // not looked up yet
};

// Parses `text` into `sax`; false on a syntax error, nesting past max_depth, or when the handler stopped.
template <class Sax>
bool json_sax_parse(std::string_view text, Sax& sax, std::size_t max_depth) {
  return JsonSaxReader<Sax>(text, sax, max_depth).parse();
}

}  // namespace bgtasks::detail
