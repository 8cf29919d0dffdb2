/* The `sqlite` Lua module (trusted code only) on the system's libsqlite3: open a database,
 * run statements with positional parameters, read rows as tables, and nest transactions.
 * Calls block the loop thread; that is accepted for local databases (a busy timeout, not a
 * spin, is what waits for another process's write lock). */
#include "lua/modules.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <sqlite3.h>

#define DB_MT "moonloop.sqlite.db"

/* Prepared statements kept per connection; past this the cache is emptied and refilled,
 * which costs a re-prepare but bounds memory for scripts that build SQL text on the fly. */
#define STMT_CACHE_MAX 64

/* How much of a statement an error message quotes. */
#define SQL_QUOTE_MAX 80

struct db {
  sqlite3 *h; /* NULL once closed */
  char *path; /* for messages; kept after close */
  int depth;  /* db:transaction nesting: 0 outside, 1 in BEGIN, 2+ in savepoints */
  int cached; /* statements in the cache (the userdata's uservalue 1, SQL -> stmt) */
};

/* ---------------------------------------------------------------------------------- */
/* Errors */

/* Push a one-line excerpt of sql: whitespace runs become one space, at most SQL_QUOTE_MAX
 * bytes (never splitting a UTF-8 character), "..." when cut. */
static void push_sql_excerpt(lua_State *L, const char *sql) {
  char buf[SQL_QUOTE_MAX + 1];
  size_t n = 0;
  int space = 0;
  const char *p = sql;
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
    p++;
  for (; *p && n < SQL_QUOTE_MAX + 1; p++) {
    if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
      space = 1;
      continue;
    }
    if (space && n < sizeof buf)
      buf[n++] = ' ';
    space = 0;
    if (n < sizeof buf)
      buf[n++] = *p;
  }
  int cut = n > SQL_QUOTE_MAX || *p != '\0';
  n = text_utf8_cut(buf, n, SQL_QUOTE_MAX);
  lua_pushlstring(L, buf, n);
  if (cut) {
    lua_pushliteral(L, "...");
    lua_concat(L, 2);
  }
}

/* Raise "<op>: <message> (SQL: "<excerpt>", database: <path>)". sql may be NULL. */
static int raise_msg(lua_State *L, struct db *db, const char *op, const char *sql,
                     const char *msg) {
  lua_pushstring(L, msg); /* copy first: msg may live inside the connection */
  if (sql) {
    push_sql_excerpt(L, sql);
    return luaL_error(L, "%s: %s (SQL: \"%s\", database: %s)", op, lua_tostring(L, -2),
                      lua_tostring(L, -1), db->path);
  }
  return luaL_error(L, "%s: %s (database: %s)", op, lua_tostring(L, -1), db->path);
}

static int raise_db(lua_State *L, struct db *db, const char *op, const char *sql) {
  return raise_msg(L, db, op, sql, sqlite3_errmsg(db->h));
}

/* ---------------------------------------------------------------------------------- */
/* Connection */

static struct db *check_db(lua_State *L, const char *op) {
  struct db *db = luaL_checkudata(L, 1, DB_MT);
  if (db->h == NULL)
    luaL_error(L, "%s: the database %s is closed", op, db->path ? db->path : "?");
  return db;
}

/* Finalize every statement of the connection and close it; safe to call twice. */
static void db_close(lua_State *L, struct db *db, int idx) {
  if (db->h == NULL)
    return;
  sqlite3_stmt *s;
  while ((s = sqlite3_next_stmt(db->h, NULL)) != NULL)
    sqlite3_finalize(s);
  sqlite3_close(db->h);
  db->h = NULL;
  db->cached = 0;
  lua_newtable(L);
  lua_setiuservalue(L, idx, 1);
}

/* Reset every statement, so none holds a read snapshot or a lock past a call (a memory
 * error in the middle of a query can leave one mid-step). */
static void reset_all(struct db *db) {
  for (sqlite3_stmt *s = sqlite3_next_stmt(db->h, NULL); s; s = sqlite3_next_stmt(db->h, s))
    sqlite3_reset(s);
}

/* Empty the statement cache. Only called between calls, when no statement is in use. */
static void cache_clear(lua_State *L, struct db *db) {
  sqlite3_stmt *s;
  while ((s = sqlite3_next_stmt(db->h, NULL)) != NULL)
    sqlite3_finalize(s);
  db->cached = 0;
  lua_newtable(L);
  lua_setiuservalue(L, 1, 1);
}

/* The SQL argument at index 2, which must not contain NUL bytes (SQLite stops at one and
 * would run a different statement than the one written). */
static const char *check_sql(lua_State *L, size_t *len) {
  const char *sql = luaL_checklstring(L, 2, len);
  luaL_argcheck(L, strlen(sql) == *len && *len < INT_MAX, 2,
                "SQL must be a string without NUL bytes");
  return sql;
}

/* The prepared statement for the SQL at index 2, from the cache or freshly prepared.
 * Exactly one statement is allowed: a second one would be silently ignored otherwise. */
static sqlite3_stmt *prepare(lua_State *L, struct db *db, const char *op) {
  size_t len;
  const char *sql = check_sql(L, &len);
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  sqlite3_stmt *stmt = lua_touserdata(L, -1);
  lua_pop(L, 2);
  if (stmt) {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return stmt;
  }
  if (db->cached >= STMT_CACHE_MAX)
    cache_clear(L, db);
  const char *tail = NULL;
  if (sqlite3_prepare_v2(db->h, sql, (int)len, &stmt, &tail) != SQLITE_OK)
    raise_db(L, db, op, sql);
  if (stmt == NULL)
    raise_msg(L, db, op, sql, "the text holds no SQL statement");
  if (tail && *tail) {
    sqlite3_stmt *more = NULL;
    int rc = sqlite3_prepare_v2(db->h, tail, -1, &more, NULL);
    if (rc != SQLITE_OK || more != NULL) {
      sqlite3_finalize(more);
      sqlite3_finalize(stmt);
      raise_msg(L, db, op, sql, "the text holds more than one statement; use db:exec for scripts");
    }
  }
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_pushlightuserdata(L, stmt);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  db->cached++;
  return stmt;
}

/* Bind the Lua values from index `first` to the top as ?1..?n. Their number must equal the
 * statement's parameter count: a missing value would silently become NULL. */
static void bind_args(lua_State *L, struct db *db, sqlite3_stmt *stmt, int first, const char *op) {
  int n = lua_gettop(L) - first + 1;
  int want = sqlite3_bind_parameter_count(stmt);
  const char *sql = sqlite3_sql(stmt);
  if (n != want) {
    lua_pushfstring(L, "the statement has %d parameter(s) but %d value(s) were given", want, n);
    raise_msg(L, db, op, sql, lua_tostring(L, -1));
  }
  for (int i = 1; i <= n; i++) {
    int idx = first + i - 1, rc;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: rc = sqlite3_bind_null(stmt, i); break;
    case LUA_TBOOLEAN: rc = sqlite3_bind_int(stmt, i, lua_toboolean(L, idx)); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx))
        rc = sqlite3_bind_int64(stmt, i, (sqlite3_int64)lua_tointeger(L, idx));
      else
        rc = sqlite3_bind_double(stmt, i, (double)lua_tonumber(L, idx));
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      rc = sqlite3_bind_text64(stmt, i, s, len, SQLITE_TRANSIENT, SQLITE_UTF8);
      break;
    }
    default:
      lua_pushfstring(L, "parameter %d is a %s; only nil, booleans, numbers and strings bind", i,
                      luaL_typename(L, idx));
      raise_msg(L, db, op, sql, lua_tostring(L, -1));
      return;
    }
    if (rc != SQLITE_OK)
      raise_db(L, db, op, sql);
  }
}

/* Push the current row as a table keyed by column name; NULL columns are absent. */
static void push_row(lua_State *L, sqlite3_stmt *stmt) {
  int ncol = sqlite3_column_count(stmt);
  lua_createtable(L, 0, ncol);
  for (int c = 0; c < ncol; c++) {
    switch (sqlite3_column_type(stmt, c)) {
    case SQLITE_INTEGER: lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(stmt, c)); break;
    case SQLITE_FLOAT: lua_pushnumber(L, (lua_Number)sqlite3_column_double(stmt, c)); break;
    case SQLITE_TEXT:
      lua_pushlstring(L, (const char *)sqlite3_column_text(stmt, c),
                      (size_t)sqlite3_column_bytes(stmt, c));
      break;
    case SQLITE_BLOB: {
      const void *p = sqlite3_column_blob(stmt, c);
      lua_pushlstring(L, p ? p : "", (size_t)sqlite3_column_bytes(stmt, c));
      break;
    }
    default: continue;
    }
    lua_setfield(L, -2, sqlite3_column_name(stmt, c));
  }
}

/* Step failed: copy the message before reset, then raise. */
static int raise_step(lua_State *L, struct db *db, sqlite3_stmt *stmt, const char *op) {
  lua_pushstring(L, sqlite3_errmsg(db->h));
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return raise_msg(L, db, op, sqlite3_sql(stmt), lua_tostring(L, -1));
}

static void done_with(sqlite3_stmt *stmt) {
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt); /* do not keep large strings alive in the cache */
}

/* ---------------------------------------------------------------------------------- */
/* Methods */

/* db:exec(sql): run one or more statements; no parameters, no results. */
static int l_exec(lua_State *L) {
  struct db *db = check_db(L, "db:exec");
  size_t len;
  const char *sql = check_sql(L, &len);
  char *msg = NULL;
  if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
    lua_pushstring(L, msg ? msg : sqlite3_errmsg(db->h));
    sqlite3_free(msg);
    return raise_msg(L, db, "db:exec", sql, lua_tostring(L, -1));
  }
  return 0;
}

/* db:query(sql, ...) -> list of rows. */
static int l_query(lua_State *L) {
  struct db *db = check_db(L, "db:query");
  sqlite3_stmt *stmt = prepare(L, db, "db:query");
  bind_args(L, db, stmt, 3, "db:query");
  lua_newtable(L);
  lua_Integer n = 0;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    push_row(L, stmt);
    lua_rawseti(L, -2, ++n);
  }
  if (rc != SQLITE_DONE)
    return raise_step(L, db, stmt, "db:query");
  done_with(stmt);
  return 1;
}

/* db:first(sql, ...) -> the first row, or nil. */
static int l_first(lua_State *L) {
  struct db *db = check_db(L, "db:first");
  sqlite3_stmt *stmt = prepare(L, db, "db:first");
  bind_args(L, db, stmt, 3, "db:first");
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW)
    push_row(L, stmt);
  else if (rc == SQLITE_DONE)
    lua_pushnil(L);
  else
    return raise_step(L, db, stmt, "db:first");
  done_with(stmt);
  return 1;
}

/* db:run(sql, ...) -> changes, last_insert_rowid. Rows the statement returns are skipped. */
static int l_run(lua_State *L) {
  struct db *db = check_db(L, "db:run");
  sqlite3_stmt *stmt = prepare(L, db, "db:run");
  bind_args(L, db, stmt, 3, "db:run");
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
    ;
  if (rc != SQLITE_DONE)
    return raise_step(L, db, stmt, "db:run");
  done_with(stmt);
  lua_pushinteger(L, (lua_Integer)sqlite3_changes64(db->h));
  lua_pushinteger(L, (lua_Integer)sqlite3_last_insert_rowid(db->h));
  return 2;
}

/* Run a fixed transaction-control statement; returns SQLITE_OK or the error code. */
static int control(struct db *db, const char *sql) {
  return sqlite3_exec(db->h, sql, NULL, NULL, NULL);
}

/* db:transaction(fn) -> fn's results. fn(db) runs inside BEGIN IMMEDIATE ... COMMIT, or a
 * SAVEPOINT when nested; an error rolls back (to the savepoint) and is re-raised as it was.
 * fn must not wait (task.sleep, llm.chat): other tasks share the connection, and their
 * statements would land inside this transaction. The C call boundary below enforces it. */
static int l_transaction(lua_State *L) {
  struct db *db = check_db(L, "db:transaction");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  int depth = db->depth;
  char begin[48], commit[48], rollback[96];
  if (depth == 0) {
    snprintf(begin, sizeof begin, "BEGIN IMMEDIATE");
    snprintf(commit, sizeof commit, "COMMIT");
    snprintf(rollback, sizeof rollback, "ROLLBACK");
  } else {
    snprintf(begin, sizeof begin, "SAVEPOINT ml_tx%d", depth);
    snprintf(commit, sizeof commit, "RELEASE ml_tx%d", depth);
    snprintf(rollback, sizeof rollback, "ROLLBACK TO ml_tx%d; RELEASE ml_tx%d", depth, depth);
  }
  if (control(db, begin) != SQLITE_OK)
    return raise_db(L, db, "db:transaction", begin);
  db->depth = depth + 1;
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 1);
  int status = lua_pcall(L, 1, LUA_MULTRET, 0);
  db->depth = depth;
  if (db->h == NULL) { /* fn closed the database: SQLite rolled back what was open */
    if (status != LUA_OK)
      return lua_error(L);
    return luaL_error(L, "db:transaction: the database %s was closed inside the transaction",
                      db->path);
  }
  reset_all(db);
  if (status == LUA_OK) {
    if (control(db, commit) == SQLITE_OK)
      return lua_gettop(L) - 2;
    lua_pushstring(L, sqlite3_errmsg(db->h));
    control(db, rollback);
    return raise_msg(L, db, "db:transaction", commit, lua_tostring(L, -1));
  }
  /* After some errors (a full disk, an interrupted statement) SQLite has already rolled
   * back; the ROLLBACK then fails with "no transaction is active", which is harmless. */
  control(db, rollback);
  if (lua_type(L, -1) == LUA_TSTRING && strstr(lua_tostring(L, -1), "cannot wait here")) {
    lua_pushfstring(L,
                    "%s (inside db:transaction: a transaction function must not wait, "
                    "because other tasks share the connection; wait before or after it)",
                    lua_tostring(L, -1));
  }
  return lua_error(L);
}

/* db:close(): idempotent; also run by __gc and __close. */
static int l_close(lua_State *L) {
  struct db *db = luaL_checkudata(L, 1, DB_MT);
  db_close(L, db, 1);
  return 0;
}

static int l_gc(lua_State *L) {
  struct db *db = luaL_checkudata(L, 1, DB_MT);
  db_close(L, db, 1);
  free(db->path);
  db->path = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  struct db *db = luaL_checkudata(L, 1, DB_MT);
  lua_pushfstring(L, "sqlite db (%s%s)", db->path ? db->path : "?", db->h ? "" : ", closed");
  return 1;
}

/* ---------------------------------------------------------------------------------- */
/* sqlite.open */

static int opt_field(lua_State *L, int idx, const char *key) {
  lua_getfield(L, idx, key);
  return lua_type(L, -1);
}

/* Run "PRAGMA journal_mode=WAL" and push the mode SQLite reports. */
static int set_wal(lua_State *L, struct db *db) {
  sqlite3_stmt *stmt = NULL;
  if (sqlite3_prepare_v2(db->h, "PRAGMA journal_mode=WAL", -1, &stmt, NULL) != SQLITE_OK)
    return -1;
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW)
    lua_pushstring(L, (const char *)sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  return rc == SQLITE_ROW ? 0 : -1;
}

/* sqlite.open(path [, {wal = true, busy_timeout_ms = 5000, readonly = false}]) -> db.
 * path may be ":memory:" or "" (a private temporary database). */
static int l_open(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, strlen(path) == len, 1, "path contains a NUL byte");
  int wal = 1, readonly = 0;
  lua_Integer busy = 5000;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
      if (strcmp(k, "wal") != 0 && strcmp(k, "busy_timeout_ms") != 0 && strcmp(k, "readonly") != 0)
        return luaL_error(L,
                          "sqlite.open: unknown option '%s' (known: wal, busy_timeout_ms, "
                          "readonly)",
                          luaL_tolstring(L, -2, NULL));
      lua_pop(L, 1);
    }
    if (opt_field(L, 2, "wal") != LUA_TNIL) {
      luaL_argcheck(L, lua_isboolean(L, -1), 2, "wal must be a boolean");
      wal = lua_toboolean(L, -1);
    }
    if (opt_field(L, 2, "readonly") != LUA_TNIL) {
      luaL_argcheck(L, lua_isboolean(L, -1), 2, "readonly must be a boolean");
      readonly = lua_toboolean(L, -1);
    }
    if (opt_field(L, 2, "busy_timeout_ms") != LUA_TNIL) {
      luaL_argcheck(
          L, lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0 && lua_tointeger(L, -1) <= INT_MAX,
          2, "busy_timeout_ms must be a non-negative integer");
      busy = lua_tointeger(L, -1);
    }
    lua_settop(L, 2);
  }

  struct db *db = lua_newuserdatauv(L, sizeof *db, 1);
  memset(db, 0, sizeof *db);
  luaL_setmetatable(L, DB_MT);
  int ud = lua_gettop(L);
  lua_newtable(L);
  lua_setiuservalue(L, ud, 1);
  if ((db->path = strdup(len ? path : "(temporary)")) == NULL)
    return luaL_error(L, "sqlite.open: out of memory");

  int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(path, &db->h, flags, NULL);
  if (rc != SQLITE_OK) {
    lua_pushstring(L, db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
    sqlite3_close(db->h);
    db->h = NULL;
    return luaL_error(L, "sqlite.open: cannot open '%s': %s", db->path, lua_tostring(L, -1));
  }
  sqlite3_extended_result_codes(db->h, 1);
  sqlite3_busy_timeout(db->h, (int)busy);
  int is_file = len > 0 && strcmp(path, ":memory:") != 0;
  if (wal && !readonly) {
    if (set_wal(L, db) != 0) {
      lua_pushstring(L, sqlite3_errmsg(db->h));
      db_close(L, db, ud);
      return luaL_error(L, "sqlite.open: cannot switch '%s' to WAL mode: %s", db->path,
                        lua_tostring(L, -1));
    }
    if (is_file && strcmp(lua_tostring(L, -1), "wal") != 0) {
      db_close(L, db, ud);
      return luaL_error(L,
                        "sqlite.open: '%s' stayed in journal mode '%s' instead of WAL "
                        "(a file system without shared memory?); pass wal = false",
                        db->path, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    if (control(db, "PRAGMA synchronous=NORMAL") != SQLITE_OK)
      return raise_db(L, db, "sqlite.open", "PRAGMA synchronous=NORMAL");
  }
  lua_settop(L, ud);
  return 1;
}

int store_sqlite_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"exec", l_exec}, {"query", l_query}, {"first", l_first},
      {"run", l_run},   {"close", l_close}, {"transaction", l_transaction},
      {NULL, NULL},
  };
  static const luaL_Reg meta[] = {
      {"__gc", l_gc},
      {"__close", l_close},
      {"__tostring", l_tostring},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, DB_MT)) {
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"open", l_open}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
