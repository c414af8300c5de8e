// Which ZeroMQ endpoints may carry plain (unencrypted, unauthenticated) traffic. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.h"

namespace polyphony {

// True when traffic on `endpoint` can leave the process's host: every transport except
// ipc:// and inproc://. Those need CURVE (or `insecure: true` on loopback).
bool crosses_host(std::string_view endpoint);

// True for tcp:// endpoints whose host is in 127.0.0.0/8 or is "localhost" (a source address,
// "tcp://src;dst", counts only when both sides are loopback).
bool is_loopback_tcp(std::string_view endpoint);

// Whether `endpoint` may be used without CURVE: ipc:// and inproc:// always; tcp:// on loopback
// only when `insecure` is set; nothing else. The error (code "config", at `where`) names
// `key_setting`, the setting that would turn CURVE on.
Status check_plain_endpoint(std::string_view endpoint, bool insecure, const std::string& key_setting,
                            const std::string& insecure_setting, const std::string& where);

// True for a host in 127.0.0.0/8, "::1" or "localhost".
bool is_loopback_host(std::string_view host);

// An HTTP listen address "HOST:PORT" ("[::1]:PORT" for IPv6) split into host and port (0-65535;
// 0: any free port); nullopt when it is not one.
std::optional<std::pair<std::string, int>> parse_http_listen(std::string_view address);

// True when `text` is a Z85-encoded CURVE key: 40 characters of the Z85 alphabet.
bool is_z85_key(std::string_view text);

}  // namespace polyphony
