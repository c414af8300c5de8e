// Which ZeroMQ endpoints may carry plain (unencrypted, unauthenticated) traffic. Pure.
#pragma once

#include <string>
#include <string_view>

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

// True when `text` is a Z85-encoded CURVE key: 40 characters of the Z85 alphabet.
bool is_z85_key(std::string_view text);

}  // namespace polyphony
