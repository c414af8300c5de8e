// libcurl, loaded the first time a Docker Engine call needs it rather than when the program
// starts. Linked normally, libcurl and the thirty libraries behind it (TLS, LDAP, Kerberos,
// SSH, ...) cost every run of `polyphony` about 20 ms of loading and relocation before main,
// although only the engine calls use it: `polyphony spawn`, `status` and the rest pay nothing
// now, and `serve` pays once, at its first call.
#pragma once

#include <curl/curl.h>

#include "common/result.h"

namespace polyphony {

// The libcurl functions the engine client calls, from the one copy loaded in this process.
struct CurlLibrary {
  CURL* (*easy_init)() = nullptr;
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...) = nullptr;
  CURLcode (*easy_perform)(CURL*) = nullptr;
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...) = nullptr;
  void (*easy_cleanup)(CURL*) = nullptr;
  const char* (*easy_strerror)(CURLcode) = nullptr;
  curl_slist* (*slist_append)(curl_slist*, const char*) = nullptr;
  void (*slist_free_all)(curl_slist*) = nullptr;
};

// Loads libcurl (soname libcurl.so.4, else Debian's libcurl-gnutls.so.4, the same ABI) and runs
// curl_global_init, once per process and thread-safe; later calls return the same table, or
// the same "config" error naming what to install.
Result<const CurlLibrary*> curl_library();

}  // namespace polyphony
