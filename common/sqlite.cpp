// A small SQLite wrapper.
#include "common/sqlite.h"

#include "common/private_files.h"

namespace polyphony {

namespace detail {

StatementCache::~StatementCache() {
  for (auto& [sql, stmt] : idle) sqlite3_finalize(stmt);
}

void StatementRelease::operator()(sqlite3_stmt* stmt) const {
  if (stmt == nullptr) return;
  auto owner = cache.lock();
  if (owner) {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (owner->idle.emplace(std::string_view(sqlite3_sql(stmt)), stmt).second) return;
  }
  sqlite3_finalize(stmt);
}

}  // namespace detail

Statement& Statement::bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_.get(), index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_.get(), index, value);
  return *this;
}

Statement& Statement::bind(int index, double value) {
  sqlite3_bind_double(stmt_.get(), index, value);
  return *this;
}

Statement& Statement::bind_null(int index) {
  sqlite3_bind_null(stmt_.get(), index);
  return *this;
}

Result<bool> Statement::step() {
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3* db = sqlite3_db_handle(stmt_.get());
  return make_error("db", std::string("SQLite: ") + sqlite3_errmsg(db), where_);
}

Status Statement::run() {
  while (true) {
    auto r = step();
    if (!r.ok()) return r.error();
    if (!*r) return {};
  }
}

void Statement::reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

std::string Statement::text(int column) const {
  const unsigned char* p = sqlite3_column_text(stmt_.get(), column);
  int n = sqlite3_column_bytes(stmt_.get(), column);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
}

int64_t Statement::int64(int column) const {
  return sqlite3_column_int64(stmt_.get(), column);
}
double Statement::real(int column) const {
  return sqlite3_column_double(stmt_.get(), column);
}
bool Statement::is_null(int column) const {
  return sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL;
}

namespace {

Status check_owned(Database& db, const std::filesystem::path& path, int32_t application_id) {
  auto st = db.prepare("PRAGMA application_id");
  if (!st.ok()) {
    return make_error("db",
                      "is not a Polyphony database (SQLite says: " + st.error().message +
                          "); move it away or point the config at another path",
                      path.string());
  }
  auto row = st->step();
  if (!row.ok()) {
    return make_error("db",
                      "is not a SQLite database or is corrupt (" + row.error().message +
                          "); it was left untouched: move it away or restore it",
                      path.string());
  }
  int32_t id = *row ? static_cast<int32_t>(st->int64(0)) : 0;
  if (id == application_id) return {};
  auto tables = db.prepare("SELECT count(*) FROM sqlite_master");
  if (!tables.ok()) return tables.error();
  auto t = tables->step();
  if (!t.ok()) return make_error("db", "is corrupt (" + t.error().message + "); it was left untouched", path.string());
  if (id == 0 && tables->int64(0) == 0) return {};  // a new, empty file
  return make_error("db",
                    "belongs to another program (application_id " + std::to_string(id) +
                        "); it was left untouched: point the config at another path",
                    path.string());
}

}  // namespace

Result<Database> Database::open(const std::filesystem::path& path, int32_t application_id, bool create,
                                bool read_only) {
  Database db;
  db.path_ = path;
  if (!create && !std::filesystem::exists(path)) {
    return make_error("not_found", "no database here yet", path.string());
  }
  if (create && path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
  }
  int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0));
  sqlite3* raw = nullptr;
  // No mutex per call: a Database (and its statement cache) is used by one thread at a time.
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  db.db_.reset(raw);
  if (rc != SQLITE_OK) {
    return make_error("db", std::string("cannot open: ") + (raw ? sqlite3_errmsg(raw) : "out of memory"),
                      path.string());
  }
  sqlite3_busy_timeout(raw, 10000);
  // Only the owner reads the DB; SQLite gives its WAL and shared-memory files the same mode.
  if (!read_only) {
    for (const char* suffix : {"", "-wal", "-shm"}) make_private(path.string() + suffix);
  }
  POLY_TRY(check_owned(db, path, application_id));
  if (!read_only) {
    POLY_TRY(db.exec("PRAGMA journal_mode=WAL"));
    POLY_TRY(db.exec("PRAGMA synchronous=NORMAL"));
    POLY_TRY(db.exec("PRAGMA application_id=" + std::to_string(application_id)));
  }
  POLY_TRY(db.exec("PRAGMA foreign_keys=ON"));
  return db;
}

Status Database::exec(const std::string& sql) {
  char* msg = nullptr;
  int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &msg);
  if (rc != SQLITE_OK) {
    std::string m = msg ? msg : sqlite3_errstr(rc);
    sqlite3_free(msg);
    return make_error("db", "SQLite: " + m, path_.string());
  }
  return {};
}

Status Database::run_cached(const std::string& sql) {
  auto st = prepare(sql);
  if (!st.ok()) return st.error();
  return st->run();
}

Result<Statement> Database::prepare(const std::string& sql) {
  // A statement in use is out of the cache, so the same SQL prepared twice at once gets two.
  if (auto it = statements_->idle.find(std::string_view(sql)); it != statements_->idle.end()) {
    sqlite3_stmt* stmt = it->second;
    statements_->idle.erase(it);
    return Statement(stmt, path_.string(), statements_);
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return make_error("db", std::string("SQLite: ") + sqlite3_errmsg(db_.get()), path_.string());
  }
  return Statement(stmt, path_.string(), statements_);
}

int64_t Database::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_.get());
}
int Database::changes() const {
  return sqlite3_changes(db_.get());
}

}  // namespace polyphony
