/* The response cache on the system's libsqlite3 (contracts in cache.h). SQLite does the hard
 * parts (atomic commits, locking between processes, crash safety); this file chooses the
 * key, keeps the statements prepared, and turns every failure into a message naming the file.
 * The key hash is text_hash128 (src/lua/text.c), the canonical JSON ml_json_print. */
#include "llm/cache.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "lua/json.h"
#include "lua/modules.h"

/* Bump this whenever the bytes hashed for a key change: old entries then simply miss,
 * instead of answering a request they were not made for. */
#define KEY_FORMAT "moonloop cache key v1"

/* How long a write waits for another process's write lock before giving up. */
#define BUSY_TIMEOUT_MS 5000

/* The hit counter is bookkeeping: it may wait this long, not the full timeout, because the
 * loop thread is blocked while it waits and the response is already in hand. */
#define HIT_BUSY_TIMEOUT_MS 100

struct llm_cache {
  sqlite3 *db; /* NULL in CACHE_OFF */
  enum cache_mode mode;
  char *path; /* after ~ expansion; for messages */
  sqlite3_stmt *get, *hit, *put, *count;
  struct cache_stats st;
  char errmsg[512];
};

/* Top-level request fields that change how an answer is delivered or billed, never what
 * it says. Nested fields of the same names (a message's "metadata") stay in the key. */
static const char *const ignored_fields[] = {"stream", "stream_options", "user", "metadata"};

static const char *const mode_names[] = {"off", "read", "readwrite", "refresh"};

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* SQLite result -> our code. LOCKED comes from shared-cache mode only, but means the same. */
static int code_of(int rc) {
  switch (rc & 0xFF) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return CACHE_EBUSY;
  case SQLITE_NOTADB:
  case SQLITE_CORRUPT: return CACHE_EFORMAT;
  case SQLITE_NOMEM: return CACHE_ENOMEM;
  default: return CACHE_EFAIL;
  }
}

/* Describe a failed SQLite call on c's file in buf; returns the matching code. */
static int describe(char *buf, size_t len, const char *path, sqlite3 *db, const char *op, int rc) {
  int code = code_of(rc);
  const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  if (code == CACHE_EBUSY)
    set_err(buf, len,
            "cache %s: %s: still locked by another process after %d ms (%s); "
            "retry, or give this run its own cache.path",
            path, op, BUSY_TIMEOUT_MS, msg);
  else if (code == CACHE_EFORMAT)
    set_err(buf, len,
            "cache %s: not a SQLite database, or a damaged one (%s); move the file "
            "aside or set cache.path to another file",
            path, msg);
  else
    set_err(buf, len, "cache %s: %s: %s", path, op, msg);
  return code;
}

/* Record a failure of a get or put: message and error counter. */
static int fail_sql(struct llm_cache *c, const char *op, int rc) {
  c->st.errors++;
  return describe(c->errmsg, sizeof c->errmsg, c->path, c->db, op, rc);
}

int cache_mode_parse(const char *s, enum cache_mode *out) {
  if (s == NULL)
    return CACHE_EINVAL;
  for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++) {
    if (strcmp(s, mode_names[i]) == 0) {
      *out = (enum cache_mode)i;
      return 0;
    }
  }
  return CACHE_EINVAL;
}

const char *cache_mode_name(enum cache_mode mode) {
  if ((int)mode < 0 || (size_t)mode >= sizeof mode_names / sizeof mode_names[0])
    return "?";
  return mode_names[mode];
}

/* ---------------------------------------------------------------------------------- */
/* Keys */

static int is_ignored(const char *name) {
  for (size_t i = 0; i < sizeof ignored_fields / sizeof ignored_fields[0]; i++)
    if (strcmp(name, ignored_fields[i]) == 0)
      return 1;
  return 0;
}

int cache_key(const cJSON *request_body, int sample_index, const char *provider, char out[33],
              char *err, size_t errlen) {
  cJSON *view = NULL;
  char *body = NULL, *buf = NULL;
  int rc = CACHE_ENOMEM;
  if (!cJSON_IsObject(request_body) || provider == NULL || sample_index < 0) {
    set_err(err, errlen, "cache key: %s",
            !cJSON_IsObject(request_body) ? "the request body must be a JSON object"
            : provider == NULL            ? "no provider name"
                                          : "the sample index must be >= 0");
    return CACHE_EINVAL;
  }
  /* A view of the body without the ignored fields. The members are references, so the
   * caller's tree is neither copied (prompts can be large) nor changed. */
  view = cJSON_CreateObject();
  if (view == NULL)
    goto fail;
  for (const cJSON *m = request_body->child; m != NULL; m = m->next) {
    if (m->string == NULL || is_ignored(m->string))
      continue;
    if (!cJSON_AddItemReferenceToObject(view, m->string, (cJSON *)m))
      goto fail;
  }
  body = ml_json_print(view, ML_JSON_SORT_KEYS, err, errlen);
  if (body == NULL) {
    rc = CACHE_EINVAL; /* NaN, bad UTF-8, too deep: err says which */
    goto fail;
  }
  /* Lengths before the variable parts keep the fields from running into each other: no
   * provider name can be chosen to make two different requests hash the same bytes. */
  size_t plen = strlen(provider), blen = strlen(body);
  size_t cap = sizeof KEY_FORMAT + plen + blen + 96;
  buf = malloc(cap);
  if (buf == NULL)
    goto fail;
  int head = snprintf(buf, cap, "%s\nprovider %zu:%s\nsample %d\nbody %zu:", KEY_FORMAT, plen,
                      provider, sample_index, blen);
  if (head < 0 || (size_t)head + blen >= cap)
    goto fail;
  memcpy(buf + head, body, blen);
  text_hash_hex(buf, (size_t)head + blen, out);
  rc = 0;
fail:
  if (rc == CACHE_ENOMEM)
    set_err(err, errlen, "cache key: out of memory");
  cJSON_Delete(view);
  free(body);
  free(buf);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Opening */

/* "~" and "~/rest" -> $HOME and $HOME/rest; other paths are copied as they are. */
static int expand_home(const char *path, char **out, char *err, size_t errlen) {
  const char *rest = path, *home = "";
  if (path[0] == '~') {
    if (path[1] != '\0' && path[1] != '/') {
      set_err(err, errlen,
              "cache %s: only ~ or ~/ (your home directory) is expanded; write "
              "the full path",
              path);
      return CACHE_EINVAL;
    }
    home = getenv("HOME");
    if (home == NULL || home[0] == '\0') {
      set_err(err, errlen,
              "cache %s: cannot expand ~ because $HOME is not set; write the "
              "full path",
              path);
      return CACHE_EINVAL;
    }
    rest = path + 1;
  }
  size_t hlen = strlen(home), rlen = strlen(rest);
  *out = malloc(hlen + rlen + 1);
  if (*out == NULL) {
    set_err(err, errlen, "cache %s: out of memory", path);
    return CACHE_ENOMEM;
  }
  memcpy(*out, home, hlen);
  memcpy(*out + hlen, rest, rlen + 1);
  return 0;
}

/* mkdir -p of the directory that will hold path. New directories get 0700: the cache holds
 * prompts and answers, which may be private. Existing ones are left as they are. */
static int make_parents(const char *path, char *err, size_t errlen) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL || slash == path)
    return 0; /* the current directory or / */
  size_t len = (size_t)(slash - path);
  char *dir = malloc(len + 1);
  if (dir == NULL) {
    set_err(err, errlen, "cache %s: out of memory", path);
    return CACHE_ENOMEM;
  }
  memcpy(dir, path, len);
  dir[len] = '\0';
  int rc = 0;
  for (size_t i = 1; i <= len; i++) {
    if (i < len && dir[i] != '/')
      continue;
    if (dir[i - 1] == '/') /* repeated slash */
      continue;
    char saved = dir[i];
    dir[i] = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
      set_err(err, errlen, "cache %s: cannot create directory %s: %s", path, dir, strerror(errno));
      rc = CACHE_EFAIL;
      goto done;
    }
    dir[i] = saved;
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    set_err(err, errlen, "cache %s: %s is not a directory", path, dir);
    rc = CACHE_EFAIL;
  }
done:
  free(dir);
  return rc;
}

/* Run a statement that returns at most one row; its first column goes to *ival if given. */
static int run_one(struct llm_cache *c, const char *sql, sqlite3_int64 *ival) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      if (ival)
        *ival = sqlite3_column_int64(st, 0);
      rc = SQLITE_DONE;
    }
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Create the schema in an empty file, or check the one found. The version is read first
 * without a lock, so opening an existing cache never waits for a writer; creation takes
 * the write lock and reads again, since another process may have just done it. */
static int check_schema(struct llm_cache *c, char *err, size_t errlen) {
  sqlite3_int64 version = 0, objects = 0;
  int rc = run_one(c, "PRAGMA user_version", &version);
  if (rc != SQLITE_OK)
    return describe(err, errlen, c->path, c->db, "reading the schema version", rc);
  int locked = 0;
  if (version == 0) {
    rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
      return describe(err, errlen, c->path, c->db, "creating the schema", rc);
    locked = 1;
    rc = run_one(c, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK)
      rc = run_one(c, "SELECT count(*) FROM sqlite_master", &objects);
    if (rc != SQLITE_OK)
      goto sql_fail;
  }
  if (version > CACHE_SCHEMA_VERSION) {
    set_err(err, errlen,
            "cache %s: schema version %lld is newer than this moonloop reads "
            "(%d); upgrade moonloop, or set cache.path to another file",
            c->path, (long long)version, CACHE_SCHEMA_VERSION);
    rc = CACHE_EFORMAT;
    goto done;
  }
  if (version == 0 && objects > 0) {
    set_err(err, errlen,
            "cache %s: a SQLite database of some other program (it has tables "
            "but no moonloop schema version); set cache.path to another file",
            c->path);
    rc = CACHE_EFORMAT;
    goto done;
  }
  if (version == 0) {
    char sql[320];
    snprintf(sql, sizeof sql,
             "CREATE TABLE entries(key TEXT PRIMARY KEY, model TEXT, response TEXT NOT NULL, "
             "created INTEGER, hits INTEGER DEFAULT 0, bytes INTEGER);"
             "PRAGMA user_version = %d;"
             "COMMIT",
             CACHE_SCHEMA_VERSION);
    rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
      goto sql_fail;
    locked = 0;
  }
  rc = 0;
  goto done;
sql_fail:
  rc = describe(err, errlen, c->path, c->db, "creating the schema", rc);
done:
  if (locked)
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

static int prepare(struct llm_cache *c, const char *sql, sqlite3_stmt **st, char *err,
                   size_t errlen) {
  int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
  if (rc != SQLITE_OK)
    return describe(err, errlen, c->path, c->db, "preparing statements", rc);
  return 0;
}

int cache_open(struct llm_cache **out, const char *path, enum cache_mode mode, char *err,
               size_t errlen) {
  struct llm_cache *c = NULL;
  int rc;
  *out = NULL;
  if (path == NULL || path[0] == '\0' || (int)mode < CACHE_OFF || mode > CACHE_REFRESH) {
    set_err(err, errlen, "cache: %s",
            path == NULL || path[0] == '\0' ? "no path given" : "unknown mode");
    return CACHE_EINVAL;
  }
  c = calloc(1, sizeof *c);
  if (c == NULL) {
    set_err(err, errlen, "cache %s: out of memory", path);
    return CACHE_ENOMEM;
  }
  c->mode = mode;
  if ((rc = expand_home(path, &c->path, err, errlen)) != 0)
    goto fail;
  if (mode == CACHE_OFF)
    goto done; /* off means off: no directory, no file */
  if ((rc = make_parents(c->path, err, errlen)) != 0)
    goto fail;
  int src = sqlite3_open_v2(c->path, &c->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (src != SQLITE_OK) {
    rc = describe(err, errlen, c->path, c->db, "opening", src);
    goto fail;
  }
  sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
  /* WAL: readers never wait for a writer, and a commit is one append. The mode is stored in
   * the file, so this is a no-op after the first open. NORMAL sync in WAL can lose the last
   * commits on power loss but never corrupts; a lost entry is only a future miss. */
  /* Two processes creating the file at the same moment: switching to WAL or creating the
   * schema can fail with SQLITE_BUSY without going through the busy handler, so those steps
   * are retried for as long as the busy timeout allows. */
  for (int waited = 0;; waited += 10) {
    src = run_one(c, "PRAGMA journal_mode=WAL", NULL);
    if (src == SQLITE_OK)
      src = sqlite3_exec(c->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    if (src == SQLITE_OK) {
      rc = check_schema(c, err, errlen);
      if (rc != CACHE_EBUSY)
        break;
    } else if (src != SQLITE_BUSY && src != SQLITE_LOCKED) {
      rc = describe(err, errlen, c->path, c->db, "setting up", src);
      break;
    }
    if (waited >= BUSY_TIMEOUT_MS) {
      if (src != SQLITE_OK)
        rc = describe(err, errlen, c->path, c->db, "setting up", src);
      break;
    }
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (rc != 0)
    goto fail;
  const struct {
    const char *sql;
    sqlite3_stmt **st;
  } stmts[] = {
      {"SELECT response FROM entries WHERE key = ?1", &c->get},
      {"UPDATE entries SET hits = hits + 1 WHERE key = ?1", &c->hit},
      {"INSERT OR REPLACE INTO entries(key, model, response, created, hits, bytes) "
       "VALUES(?1, ?2, ?3, ?4, 0, ?5)",
       &c->put},
      {"SELECT count(*), coalesce(sum(bytes), 0) FROM entries", &c->count},
  };
  for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
    if ((rc = prepare(c, stmts[i].sql, stmts[i].st, err, errlen)) != 0)
      goto fail;
done:
  *out = c;
  return 0;
fail:
  cache_close(c);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Reads and writes */

int cache_get(struct llm_cache *c, const char *key, char **response_json) {
  if (response_json)
    *response_json = NULL;
  if (c == NULL || c->db == NULL || c->mode == CACHE_OFF || c->mode == CACHE_REFRESH)
    return 0;
  if (key == NULL || response_json == NULL) {
    c->st.errors++;
    snprintf(c->errmsg, sizeof c->errmsg, "cache %s: get without a key or output", c->path);
    return CACHE_EINVAL;
  }
  int rc = sqlite3_bind_text(c->get, 1, key, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(c->get);
  int result = 0;
  if (rc == SQLITE_ROW) {
    const void *text = sqlite3_column_text(c->get, 0);
    int len = sqlite3_column_bytes(c->get, 0);
    char *copy = text ? malloc((size_t)len + 1) : NULL;
    if (copy == NULL) {
      /* NULL text on a NOT NULL column can only be SQLite running out of memory. */
      c->st.errors++;
      snprintf(c->errmsg, sizeof c->errmsg, "cache %s: get: out of memory", c->path);
      result = CACHE_ENOMEM;
    } else {
      memcpy(copy, text, (size_t)len);
      copy[len] = '\0';
      *response_json = copy;
      result = 1;
    }
  } else if (rc != SQLITE_DONE) {
    result = fail_sql(c, "get", rc);
  }
  sqlite3_reset(c->get);
  sqlite3_clear_bindings(c->get);
  if (result == 0)
    c->st.misses++;
  if (result != 1)
    return result;
  c->st.hits++;
  /* The counter is a statistic, so READ (which writes nothing) skips it and a failure here
   * is ignored rather than turning a good hit into an error. */
  if (c->mode == CACHE_READWRITE) {
    sqlite3_busy_timeout(c->db, HIT_BUSY_TIMEOUT_MS);
    if (sqlite3_bind_text(c->hit, 1, key, -1, SQLITE_STATIC) == SQLITE_OK)
      sqlite3_step(c->hit);
    sqlite3_reset(c->hit);
    sqlite3_clear_bindings(c->hit);
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
  }
  return 1;
}

int cache_put(struct llm_cache *c, const char *key, const char *model, const char *response_json) {
  if (c == NULL || c->db == NULL || (c->mode != CACHE_READWRITE && c->mode != CACHE_REFRESH))
    return 0;
  if (key == NULL || response_json == NULL) {
    c->st.errors++;
    snprintf(c->errmsg, sizeof c->errmsg, "cache %s: put without a key or response", c->path);
    return CACHE_EINVAL;
  }
  size_t len = strlen(response_json);
  int rc = sqlite3_bind_text(c->put, 1, key, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK)
    rc = model ? sqlite3_bind_text(c->put, 2, model, -1, SQLITE_STATIC)
               : sqlite3_bind_null(c->put, 2);
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_text64(c->put, 3, response_json, len, SQLITE_STATIC, SQLITE_UTF8);
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_int64(c->put, 4, (sqlite3_int64)time(NULL));
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_int64(c->put, 5, (sqlite3_int64)len);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(c->put);
  int result = rc == SQLITE_DONE ? 0 : fail_sql(c, "put", rc);
  sqlite3_reset(c->put);
  sqlite3_clear_bindings(c->put);
  if (result == 0)
    c->st.writes++;
  return result;
}

/* ---------------------------------------------------------------------------------- */
/* Stats and closing */

void cache_stats(struct llm_cache *c, struct cache_stats *out) {
  memset(out, 0, sizeof *out);
  out->entries = out->bytes = -1;
  if (c == NULL)
    return;
  *out = c->st;
  out->entries = out->bytes = -1;
  if (c->db == NULL)
    return;
  int rc = sqlite3_step(c->count);
  if (rc == SQLITE_ROW) {
    out->entries = sqlite3_column_int64(c->count, 0);
    out->bytes = sqlite3_column_int64(c->count, 1);
  } else {
    fail_sql(c, "counting entries", rc);
    out->errors = c->st.errors;
  }
  sqlite3_reset(c->count);
}

const char *cache_errmsg(const struct llm_cache *c) {
  return c ? c->errmsg : "";
}

void cache_close(struct llm_cache *c) {
  if (c == NULL)
    return;
  sqlite3_finalize(c->get);
  sqlite3_finalize(c->hit);
  sqlite3_finalize(c->put);
  sqlite3_finalize(c->count);
  sqlite3_close(c->db); /* the last connection checkpoints and removes the -wal file */
  free(c->path);
  free(c);
}
