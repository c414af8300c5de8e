#include "worker-agent/curl_library.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace polyphony {

namespace {

template <typename F>
bool bind(void* handle, const char* name, F& slot, std::string& missing) {
  slot = reinterpret_cast<F>(dlsym(handle, name));
  if (slot == nullptr) missing += std::string(missing.empty() ? "" : ", ") + name;
  return slot != nullptr;
}

Result<const CurlLibrary*> load() {
  static CurlLibrary lib;
  void* handle = nullptr;
  std::string tried;
  for (const char* soname : {"libcurl.so.4", "libcurl-gnutls.so.4"}) {
    handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) break;
    const char* why = dlerror();
    tried += std::string(tried.empty() ? "" : "; ") + (why != nullptr ? why : soname);
  }
  if (handle == nullptr) {
    return make_error(
        "config",
        "cannot load libcurl, which the Docker Engine client needs (" + tried + "); install the libcurl4 package",
        "libcurl");
  }
  std::string missing;
  CURLcode (*global_init)(long) = nullptr;
  bind(handle, "curl_global_init", global_init, missing);
  bind(handle, "curl_easy_init", lib.easy_init, missing);
  bind(handle, "curl_easy_setopt", lib.easy_setopt, missing);
  bind(handle, "curl_easy_perform", lib.easy_perform, missing);
  bind(handle, "curl_easy_getinfo", lib.easy_getinfo, missing);
  bind(handle, "curl_easy_cleanup", lib.easy_cleanup, missing);
  bind(handle, "curl_easy_strerror", lib.easy_strerror, missing);
  bind(handle, "curl_slist_append", lib.slist_append, missing);
  bind(handle, "curl_slist_free_all", lib.slist_free_all, missing);
  if (!missing.empty()) {
    return make_error("config", "the libcurl found lacks " + missing + "; install the libcurl4 package", "libcurl");
  }
  // Never unloaded: the process keeps the handle, as it would a linked library.
  if (CURLcode code = global_init(CURL_GLOBAL_DEFAULT); code != CURLE_OK) {
    const char* what = lib.easy_strerror(code);
    return make_error("config", std::string("libcurl did not initialise: ") + (what ? what : "unknown error"),
                      "libcurl");
  }
  return &lib;
}

}  // namespace

Result<const CurlLibrary*> curl_library() {
  static std::once_flag once;
  static Result<const CurlLibrary*> loaded = make_error("config", "libcurl not loaded yet", "libcurl");
  std::call_once(once, [] { loaded = load(); });
  return loaded;
}

}  // namespace polyphony
