// Result<T>: a value or an Error saying what failed, with the value that caused it and where.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace polyphony {

// An error for the person at the terminal: `code` is a short machine-readable
// kind ("config", "docker", "git", "io", "protocol", "usage", "not_found", ...),
// `message` says what failed and what to do, `where` names the place (file:line,
// a frame field, a CLI flag, a task id) when there is one.
struct Error {
  std::string code;
  std::string message;
  std::string where;

  // "where: message" or just "message".
  std::string to_string() const { return where.empty() ? message : where + ": " + message; }
};

inline Error make_error(std::string code, std::string message, std::string where = {}) {
  return Error{std::move(code), std::move(message), std::move(where)};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status ok_status() {
  return Status();
}

}  // namespace polyphony

// Propagate an error from an expression returning Result<...>.
#define POLY_TRY(expr)                                 \
  do {                                                 \
    auto&& poly_try_r_ = (expr);                       \
    if (!poly_try_r_.ok()) return poly_try_r_.error(); \
  } while (0)
