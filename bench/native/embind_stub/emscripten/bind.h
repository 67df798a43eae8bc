// Just enough of Embind's declarations for wasm/bindings.cpp to compile natively, for
// bench/native/binding_path.cpp (a profiling harness: nothing is bound, nothing is called from JS).
#pragma once

namespace emscripten {
template <class T>
void constant(const char*, const T&) {}

template <class C>
struct class_ {
  explicit class_(const char*) {}
  template <class... Args>
  class_& constructor() {
    return *this;
  }
  template <class F>
  class_& function(const char*, F) {
    return *this;
  }
};
}  // namespace emscripten

#define EMSCRIPTEN_BINDINGS(name) [[maybe_unused]] static void embind_stub_##name()
