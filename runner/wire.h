// The wire between a worker and the runner in its task container (polyphony-runner), over the
// unix socket the worker listens on in the task's meta directory. Header-only: the runner is a
// static program that links nothing of Polyphony's but this.
//
// A frame is one type byte, a 4-byte big-endian length, then that many bytes.
//   runner -> worker  'H' hello: "polyphony-runner <version>", once, on connect
//                     'O' / 'E' a chunk of the process's stdout / stderr
//                     'X' the process ended: its status as decimal text (128 + signal when killed)
//   worker -> runner  'R' run a process: strings (see pack_strings) cwd, argc, argv..., envc, env...
//                     (env is added to the container's own environment; cwd "" : the container's)
// One process runs at a time. When the worker's end closes, the runner kills everything in the
// container and exits, which ends the container.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace polyphony::runner {

inline constexpr std::string_view kHello = "polyphony-runner 1";
inline constexpr uint32_t kMaxFrame = 16u << 20;  // a run request's argv and env, at most
inline constexpr size_t kHeader = 5;

inline void put_be32(std::string& out, uint32_t n) {
  out += static_cast<char>(n >> 24);
  out += static_cast<char>(n >> 16);
  out += static_cast<char>(n >> 8);
  out += static_cast<char>(n);
}

inline std::string frame(char type, std::string_view payload) {
  std::string out;
  out.reserve(kHeader + payload.size());
  out += type;
  put_be32(out, static_cast<uint32_t>(payload.size()));
  out.append(payload);
  return out;
}

inline uint32_t be32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

// The payload length a frame's header announces.
inline uint32_t frame_length(const char* header) {
  return be32(header + 1);
}

// A run request: each string as a 4-byte big-endian length and its bytes; counts as decimal strings.
struct RunRequest {
  std::string cwd;
  std::vector<std::string> argv;
  std::vector<std::string> env;
};

inline void put_string(std::string& out, std::string_view s) {
  put_be32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

inline std::string pack_request(const RunRequest& r) {
  std::string out;
  put_string(out, r.cwd);
  put_string(out, std::to_string(r.argv.size()));
  for (const auto& a : r.argv) put_string(out, a);
  put_string(out, std::to_string(r.env.size()));
  for (const auto& e : r.env) put_string(out, e);
  return out;
}

// nullopt when the payload is not a well-formed request (or has an empty argv).
inline std::optional<RunRequest> unpack_request(std::string_view p) {
  size_t at = 0;
  auto next = [&](std::string& s) {
    if (p.size() - at < 4) return false;
    const uint32_t n = be32(p.data() + at);
    at += 4;
    if (p.size() - at < n) return false;
    s.assign(p.substr(at, n));
    at += n;
    return true;
  };
  auto count = [&](size_t& n) {
    std::string s;
    if (!next(s) || s.empty() || s.size() > 7) return false;
    n = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      n = n * 10 + static_cast<size_t>(c - '0');
    }
    return true;
  };
  RunRequest r;
  size_t n = 0;
  if (!next(r.cwd) || !count(n) || n == 0 || n > p.size()) return std::nullopt;
  r.argv.resize(n);
  for (auto& a : r.argv) {
    if (!next(a)) return std::nullopt;
  }
  if (!count(n) || n > p.size()) return std::nullopt;
  r.env.resize(n);
  for (auto& e : r.env) {
    if (!next(e)) return std::nullopt;
  }
  if (at != p.size()) return std::nullopt;
  return r;
}

}  // namespace polyphony::runner
