// A small SQLite wrapper: open with checks, prepared statements, transactions.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"

namespace polyphony {

namespace detail {

// A Database's prepared statements not in use, by SQL text: preparing (parsing) the same SQL
// again costs more than running it.
struct StatementCache {
  // Keyed by the statement's own SQL text (sqlite3_sql), which lives as long as the statement.
  std::unordered_map<std::string_view, sqlite3_stmt*> idle;
  ~StatementCache();
};

// Gives a statement back to its cache (reset, bindings cleared), or finalizes it when the
// cache is gone or already holds one for the same SQL.
struct StatementRelease {
  std::weak_ptr<StatementCache> cache;
  void operator()(sqlite3_stmt* stmt) const;
};

}  // namespace detail

class Statement {
 public:
  Statement() = default;
  Statement(sqlite3_stmt* stmt, std::string where, std::weak_ptr<detail::StatementCache> cache = {})
      : stmt_(stmt, detail::StatementRelease{std::move(cache)}), where_(std::move(where)) {}

  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, double value);
  Statement& bind_null(int index);

  // true: a row is available; false: done.
  Result<bool> step();
  // Runs to completion.
  Status run();
  void reset();

  std::string text(int column) const;
  int64_t int64(int column) const;
  double real(int column) const;
  bool is_null(int column) const;

 private:
  std::unique_ptr<sqlite3_stmt, detail::StatementRelease> stmt_;
  std::string where_;
};

class Database {
 public:
  // Opens (creating when `create`) the database at `path` in WAL mode with a busy timeout.
  // `application_id` marks files we own: an existing file with another id, or one that is not
  // SQLite at all, is refused (never overwritten) with an error naming the path.
  static Result<Database> open(const std::filesystem::path& path, int32_t application_id, bool create,
                               bool read_only = false);

  Status exec(const std::string& sql);
  // One statement without results, prepared once and kept (transaction control in a batch
  // runs thousands of times).
  Status run_cached(const std::string& sql);
  Result<Statement> prepare(const std::string& sql);
  int64_t last_insert_rowid() const;
  int changes() const;

  // BEGIN IMMEDIATE ... COMMIT around fn; rolls back when fn returns an error. Inside another
  // transaction it is a savepoint: an error undoes fn's changes only, and they commit with the
  // outer transaction.
  template <class F>
  Status transaction(F&& fn) {
    const bool nested = in_transaction();
    POLY_TRY(run_cached(nested ? "SAVEPOINT nested" : "BEGIN IMMEDIATE"));
    Status s = fn();
    if (!s.ok()) {
      if (nested) {
        (void)run_cached("ROLLBACK TO nested");
        (void)run_cached("RELEASE nested");
      } else {
        (void)run_cached("ROLLBACK");
      }
      return s;
    }
    return run_cached(nested ? "RELEASE nested" : "COMMIT");
  }

  bool in_transaction() const { return sqlite3_get_autocommit(db_.get()) == 0; }

  const std::filesystem::path& path() const { return path_; }

 private:
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db_{nullptr, &sqlite3_close_v2};
  std::filesystem::path path_;
  // Destroyed (its statements finalized) before db_ is closed.
  std::shared_ptr<detail::StatementCache> statements_ = std::make_shared<detail::StatementCache>();
};

}  // namespace polyphony
