// The plain-TCP rule: CURVE on every endpoint that crosses a host, plain TCP only on loopback
// and only when the config says so.
#include "common/endpoint_policy.h"

#include <cstdio>

namespace polyphony {

namespace {

constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// "host:port" -> "host" ("*:port" and ":port" give "*" and "").
std::string_view host_of(std::string_view address) {
  const size_t colon = address.rfind(':');
  return colon == std::string_view::npos ? address : address.substr(0, colon);
}

}  // namespace

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  unsigned a = 0, b = 0, c = 0, d = 0;
  char extra = 0;
  const std::string h(host);
  if (std::sscanf(h.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) != 4) return false;
  return a == 127 && b <= 255 && c <= 255 && d <= 255;
}

std::optional<std::pair<std::string, int>> parse_http_listen(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string host(address.substr(0, colon));
  const std::string_view port = address.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  else if (host.find(':') != std::string::npos)
    return std::nullopt;  // IPv6 needs brackets
  if (port.empty() || port.size() > 5) return std::nullopt;
  int n = 0;
  for (char ch : port) {
    if (ch < '0' || ch > '9') return std::nullopt;
    n = n * 10 + (ch - '0');
  }
  if (n > 65535 || host.find_first_of(" /\t") != std::string::npos) return std::nullopt;
  return std::pair{host, n};
}

bool crosses_host(std::string_view endpoint) {
  return !starts_with(endpoint, "ipc://") && !starts_with(endpoint, "inproc://");
}

bool is_loopback_tcp(std::string_view endpoint) {
  if (!starts_with(endpoint, "tcp://")) return false;
  std::string_view rest = endpoint.substr(6);
  if (rest.empty()) return false;
  const size_t semi = rest.find(';');
  if (semi != std::string_view::npos) {
    return is_loopback_host(host_of(rest.substr(0, semi))) && is_loopback_host(host_of(rest.substr(semi + 1)));
  }
  return is_loopback_host(host_of(rest));
}

Status check_plain_endpoint(std::string_view endpoint, bool insecure, const std::string& key_setting,
                            const std::string& insecure_setting, const std::string& where) {
  if (!crosses_host(endpoint)) return {};
  const std::string ep(endpoint);
  if (!is_loopback_tcp(endpoint)) {
    return make_error("config",
                      ep + " is reachable from other hosts and " + key_setting +
                          " is not set: set it to a CURVE secret key file (make one with "
                          "`polyphony keys gen`); plain TCP is allowed only on 127.0.0.0/8",
                      where);
  }
  if (!insecure) {
    return make_error("config",
                      ep + " would be plain TCP: set " + key_setting + " for CURVE, or " + insecure_setting +
                          ": true to allow unencrypted loopback",
                      where);
  }
  return {};
}

bool is_z85_key(std::string_view text) {
  if (text.size() != 40) return false;
  for (char c : text) {
    if (kZ85Alphabet.find(c) == std::string_view::npos) return false;
  }
  return true;
}

}  // namespace polyphony
