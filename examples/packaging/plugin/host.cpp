// Loads the plugin with dlopen, as an application loads a plugin it did not link against, and
// runs its task. usage: host <path to libplugin.so>
#include <dlfcn.h>

#include <cstddef>
#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) return 64;
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    std::fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  using RunFn = int (*)(char*, std::size_t);
  auto run = reinterpret_cast<RunFn>(dlsym(lib, "plugin_run"));
  if (!run) {
    std::fprintf(stderr, "dlsym: %s\n", dlerror());
    return 1;
  }
  char out[128] = {};
  const int rc = run(out, sizeof out);
  std::printf("plugin: %s (rc %d)\n", out, rc);
  dlclose(lib);
  return rc;
}
