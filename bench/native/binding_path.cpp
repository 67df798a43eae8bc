// The JS agent workload's calls into the binding (wasm/bindings.cpp's WasmRuntime), made natively, so
// callgrind can count what each costs (bench/profile.sh binding): in wasm, V8's profiler sees
// only functions, and the core's inlined code is most of them. The calls and their order are
// js/src/manager.js's for bench/js/peers.mjs's workload: per batch of 1000 tasks, 1000 spawns, a
// pump, each body's 10 emits (payload handles), each completion with its result's JSON text,
// a pump, and one drain of every event.
//   binding_path [tasks=20000] [repetitions=1]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../../wasm/bindings.cpp"  // with embind_stub/emscripten/bind.h: the WasmRuntime class, unbound

namespace {

constexpr int kBatch = 1000;
constexpr int kEmits = 10;

[[gnu::noinline]] std::size_t work_binding(WasmRuntime& core, int tasks) {
  const int thread = core.intern("agent-thread");
  const int type = core.intern("tool_call");
  const int progress = core.intern("progress");
  std::size_t events = 0;
  double payload = 0;
  double handles[kBatch];
  for (int first = 0; first < tasks; first += kBatch) {
    const int n = std::min(kBatch, tasks - first);
    for (int i = 0; i < n; ++i) handles[i] = core.spawn(false, thread, type, 0, 0, -1, 0, 0, -1);
    core.runUntilIdle();
    for (int i = 0; i < n; ++i)
      for (int k = 0; k < kEmits; ++k) core.emit(handles[i], progress, 0, payload++);
    for (int i = 0; i < n; ++i) {
      // {"n":N,"ok":true}: JSON.stringify of the body's result, written into the input buffer.
      char text[48];
      const int len = std::snprintf(text, sizeof text, "{\"n\":%d,\"ok\":true}", first + i);
      std::memcpy(reinterpret_cast<char*>(core.inputPtr(sizeof text)), text, static_cast<std::size_t>(len));
      // The result's handle: JS keeps the result and its completed event carries this number.
      if (core.complete(handles[i], len, false, payload++) != 0) std::abort();
    }
    core.runUntilIdle();
    events += static_cast<std::size_t>(core.drain(-1, 0, -1));
  }
  return events;
}

}  // namespace

int main(int argc, char** argv) {
  const int tasks = argc > 1 ? std::atoi(argv[1]) : 20000;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 1;
  for (int r = 0; r < reps; ++r) {
    WasmRuntime core(/*manual_clock=*/true, 0, -1, 0, false, 0, false);
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t events = work_binding(core, tasks);
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    if (events != static_cast<std::size_t>(tasks) * (kEmits + 1)) {
      std::fprintf(stderr, "binding_path: %zu events, expected %d\n", events, tasks * (kEmits + 1));
      return 1;
    }
    std::printf("%d tasks x %d emits: %.0f ns/task\n", tasks, kEmits, ns / tasks);
  }
}
