// The one place that knows which coroutine header this toolchain has.
// g++ 12 ships <coroutine>; Emscripten 3.1.6's libc++ only <experimental/coroutine>.
#pragma once

#if __has_include(<coroutine>)
#include <coroutine>
namespace bgtasks::coro {
using std::coroutine_handle;
using std::noop_coroutine;
using std::suspend_always;
using std::suspend_never;
}  // namespace bgtasks::coro
#elif __has_include(<experimental/coroutine>)
#include <experimental/coroutine>
namespace bgtasks::coro {
using std::experimental::coroutine_handle;
using std::experimental::noop_coroutine;
using std::experimental::suspend_always;
using std::experimental::suspend_never;
}  // namespace bgtasks::coro
#else
#error "bgtasks needs C++20 coroutines (<coroutine> or <experimental/coroutine>)"
#endif
