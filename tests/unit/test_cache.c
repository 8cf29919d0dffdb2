/* Unit tests for the response cache (src/llm/cache.c): which requests share a key, what each
 * mode may read and write, the counters, the files it refuses, and two processes sharing one
 * file. Every test works in its own temporary directory. */
#include "llm/cache.h"

#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ml_test.h"

/* ---- Helpers ---- */

static char tmp[64];

static void tmp_make(void) {
  snprintf(tmp, sizeof tmp, "/tmp/ml_cache_XXXXXX");
  if (mkdtemp(tmp) == NULL) {
    perror("mkdtemp");
    exit(2);
  }
}

/* rm -r; the trees here are a few files deep and hold no symlinks. */
static void rm_tree(const char *path) {
  DIR *d = opendir(path);
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      char sub[512];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      rm_tree(sub);
    }
    closedir(d);
  }
  remove(path);
}

static void tmp_remove(void) {
  rm_tree(tmp);
}

/* tmp/name in a static buffer (one at a time is enough here). */
static const char *in_tmp(const char *name) {
  static char p[256];
  snprintf(p, sizeof p, "%s/%s", tmp, name);
  return p;
}

static int exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

/* The key of a JSON text (sample 0, provider "openai" unless given), or "" on error. */
static const char *key_for(const char *json, int sample, const char *provider, char out[33]) {
  char err[256] = "";
  cJSON *body = cJSON_Parse(json);
  out[0] = '\0';
  if (body == NULL || cache_key(body, sample, provider, out, err, sizeof err) != 0) {
    fprintf(stderr, "  cache_key(%s): %s\n", json, err);
    out[0] = '\0';
  }
  cJSON_Delete(body);
  return out;
}

static int same_key(const char *a, const char *b) {
  char ka[33], kb[33];
  key_for(a, 0, "openai", ka);
  key_for(b, 0, "openai", kb);
  return ka[0] != '\0' && strcmp(ka, kb) == 0;
}

static struct llm_cache *open_mode(const char *path, enum cache_mode mode) {
  struct llm_cache *c = NULL;
  char err[512] = "";
  if (cache_open(&c, path, mode, err, sizeof err) != 0)
    fprintf(stderr, "  cache_open(%s): %s\n", path, err);
  return c;
}

/* One integer from the file, read behind the cache's back. -1 on any failure. */
static long long sql_int(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  long long v = -1;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static int sql_exec(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open(path, &db);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  sqlite3_close(db);
  return rc;
}

#define BASE "\"model\":\"gpt-x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

/* ---- Keys ---- */

static void key_ignores_member_order(void) {
  ML_CHECK(same_key("{" BASE ",\"temperature\":0.5}",
                    "{\"temperature\":0.5,\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],"
                    "\"model\":\"gpt-x\"}"));
}

static void key_ignores_number_spelling(void) {
  ML_CHECK(same_key("{" BASE ",\"n\":1,\"temperature\":0.5}",
                    "{" BASE ",\"n\":1.0,\"temperature\":5e-1}"));
  ML_CHECK(same_key("{" BASE ",\"n\":1e0,\"temperature\":0.50}",
                    "{" BASE ",\"n\":1,\"temperature\":0.5}"));
  ML_CHECK(same_key("{" BASE ",\"top_p\":-0.25}", "{" BASE ",\"top_p\":-2.5E-1}"));
}

static void key_keeps_integers_exact(void) {
  ML_CHECK(
      !same_key("{" BASE ",\"seed\":9007199254740991}", "{" BASE ",\"seed\":9007199254740990}"));
  /* Bodies built from Lua carry integers past 2^53 as raw text (ml_json_from_lua). */
  cJSON *a = cJSON_Parse("{" BASE "}"), *b = cJSON_Parse("{" BASE "}");
  cJSON_AddItemToObject(a, "seed", cJSON_CreateRaw("9007199254740993"));
  cJSON_AddItemToObject(b, "seed", cJSON_CreateRaw("9007199254740992"));
  char ka[33] = "", kb[33] = "", err[128];
  ML_CHECK_INT(cache_key(a, 0, "openai", ka, err, sizeof err), 0);
  ML_CHECK_INT(cache_key(b, 0, "openai", kb, err, sizeof err), 0);
  ML_CHECK(strcmp(ka, kb) != 0);
  cJSON_Delete(a);
  cJSON_Delete(b);
}

static void key_ignores_delivery_fields(void) {
  ML_CHECK(same_key("{" BASE "}",
                    "{" BASE ",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                    "\"user\":\"u-17\",\"metadata\":{\"run\":\"r1\"}}"));
  ML_CHECK(same_key("{" BASE ",\"stream\":false}", "{" BASE ",\"stream\":true}"));
}

static void key_keeps_nested_fields_named_like_ignored_ones(void) {
  ML_CHECK(!same_key("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
                     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\","
                     "\"metadata\":{\"x\":1}}]}"));
  ML_CHECK(!same_key("{\"model\":\"m\",\"tools\":[{\"stream\":1}]}",
                     "{\"model\":\"m\",\"tools\":[{\"stream\":2}]}"));
}

static void key_differs_by_sample_index(void) {
  char k0[33], k1[33], k2[33];
  key_for("{" BASE "}", 0, "openai", k0);
  key_for("{" BASE "}", 1, "openai", k1);
  key_for("{" BASE "}", 2, "openai", k2);
  ML_CHECK(k0[0] && k1[0] && k2[0]);
  ML_CHECK(strcmp(k0, k1) != 0 && strcmp(k1, k2) != 0 && strcmp(k0, k2) != 0);
}

static void key_differs_by_provider(void) {
  char a[33], b[33];
  key_for("{" BASE "}", 0, "openai", a);
  key_for("{" BASE "}", 0, "local", b);
  ML_CHECK(a[0] && b[0] && strcmp(a, b) != 0);
}

static void key_differs_by_anything_that_changes_the_answer(void) {
  ML_CHECK(!same_key("{" BASE "}", "{\"model\":\"gpt-y\",\"messages\":[{\"role\":\"user\","
                                   "\"content\":\"hi\"}]}"));
  ML_CHECK(!same_key("{" BASE ",\"temperature\":0.5}", "{" BASE ",\"temperature\":0.7}"));
  ML_CHECK(!same_key("{" BASE "}", "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"user\","
                                   "\"content\":\"hi!\"}]}"));
  ML_CHECK(!same_key("{" BASE "}", "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"system\","
                                   "\"content\":\"hi\"}]}"));
  ML_CHECK(!same_key("{" BASE "}", "{" BASE ",\"max_tokens\":10}"));
}

/* The key addresses entries written by earlier runs, so it must never drift by accident:
 * a deliberate change bumps KEY_FORMAT in cache.c and this value. The hashed bytes are
 * "moonloop cache key v1\nprovider 6:openai\nsample 3\nbody 83:" and the sorted body
 * {"messages":[{"content":"hi","role":"user"}],"model":"gpt-x","temperature":0.5}. */
static void key_is_pinned(void) {
  char k[33];
  key_for("{" BASE ",\"temperature\":0.5}", 3, "openai", k);
  ML_CHECK_STR(k, "774d4561d6be89ec50d5d21273d4aef4");
  ML_CHECK_INT(strspn(k, "0123456789abcdef"), 32);
}

static void key_leaves_the_body_unchanged(void) {
  const char *json = "{\"stream\":true,\"user\":\"u\"," BASE "}";
  cJSON *body = cJSON_Parse(json);
  char *before = cJSON_PrintUnformatted(body), k[33], err[128];
  ML_CHECK_INT(cache_key(body, 0, "openai", k, err, sizeof err), 0);
  char *after = cJSON_PrintUnformatted(body);
  ML_CHECK_STR(after, before);
  cJSON_free(before);
  cJSON_free(after);
  cJSON_Delete(body);
}

static void key_rejects_bad_arguments(void) {
  char k[33], err[128] = "";
  cJSON *arr = cJSON_Parse("[1,2]"), *obj = cJSON_Parse("{" BASE "}");
  ML_CHECK_INT(cache_key(arr, 0, "openai", k, err, sizeof err), CACHE_EINVAL);
  ML_CHECK(strstr(err, "object") != NULL);
  ML_CHECK_INT(cache_key(obj, -1, "openai", k, err, sizeof err), CACHE_EINVAL);
  ML_CHECK_INT(cache_key(obj, 0, NULL, k, err, sizeof err), CACHE_EINVAL);
  cJSON_Delete(arr);
  cJSON_Delete(obj);
}

/* ---- Modes ---- */

static void mode_parse_accepts_the_four_names(void) {
  enum cache_mode m = CACHE_READ;
  ML_CHECK_INT(cache_mode_parse("off", &m), 0);
  ML_CHECK_INT(m, CACHE_OFF);
  ML_CHECK_INT(cache_mode_parse("read", &m), 0);
  ML_CHECK_INT(m, CACHE_READ);
  ML_CHECK_INT(cache_mode_parse("readwrite", &m), 0);
  ML_CHECK_INT(m, CACHE_READWRITE);
  ML_CHECK_INT(cache_mode_parse("refresh", &m), 0);
  ML_CHECK_INT(m, CACHE_REFRESH);
  ML_CHECK_INT(cache_mode_parse("READ", &m), CACHE_EINVAL);
  ML_CHECK_INT(cache_mode_parse("", &m), CACHE_EINVAL);
  ML_CHECK_INT(cache_mode_parse(NULL, &m), CACHE_EINVAL);
  ML_CHECK_INT(m, CACHE_REFRESH); /* untouched by failures */
  ML_CHECK_STR(cache_mode_name(CACHE_READWRITE), "readwrite");
}

static void mode_off_never_touches_the_disk(void) {
  tmp_make();
  struct llm_cache *c = open_mode(in_tmp("sub/cache.db"), CACHE_OFF);
  ML_CHECK(c != NULL);
  char *r = (char *)1;
  ML_CHECK_INT(cache_put(c, "k", "m", "{\"text\":\"x\"}"), 0);
  ML_CHECK_INT(cache_get(c, "k", &r), 0);
  ML_CHECK(r == NULL);
  struct cache_stats st;
  cache_stats(c, &st);
  ML_CHECK_INT(st.writes, 0);
  ML_CHECK_INT(st.hits + st.misses, 0);
  ML_CHECK_INT(st.entries, -1);
  cache_close(c);
  ML_CHECK(!exists(in_tmp("sub")));
  tmp_remove();
}

static void mode_read_never_writes(void) {
  tmp_make();
  char path[256];
  snprintf(path, sizeof path, "%s", in_tmp("cache.db"));
  struct llm_cache *c = open_mode(path, CACHE_READWRITE);
  ML_CHECK_INT(cache_put(c, "old", "m", "\"old answer\""), 0);
  cache_close(c);

  c = open_mode(path, CACHE_READ);
  ML_CHECK(c != NULL);
  char *r = NULL;
  ML_CHECK_INT(cache_put(c, "new", "m", "\"new answer\""), 0);
  ML_CHECK_INT(cache_get(c, "new", &r), 0);
  ML_CHECK_INT(cache_get(c, "old", &r), 1);
  ML_CHECK_STR(r, "\"old answer\"");
  free(r);
  struct cache_stats st;
  cache_stats(c, &st);
  ML_CHECK_INT(st.writes, 0);
  cache_close(c);
  ML_CHECK_INT(sql_int(path, "SELECT count(*) FROM entries"), 1);
  ML_CHECK_INT(sql_int(path, "SELECT hits FROM entries WHERE key = 'old'"), 0);
  tmp_remove();
}

static void mode_readwrite_reads_and_writes(void) {
  tmp_make();
  struct llm_cache *c = open_mode(in_tmp("cache.db"), CACHE_READWRITE);
  ML_CHECK(c != NULL);
  char *r = NULL;
  ML_CHECK_INT(cache_get(c, "k", &r), 0);
  ML_CHECK_INT(cache_put(c, "k", "gpt-x", "{\"text\":\"hello\"}"), 0);
  ML_CHECK_INT(cache_get(c, "k", &r), 1);
  ML_CHECK_STR(r, "{\"text\":\"hello\"}");
  free(r);
  cache_close(c);
  /* And a later process finds it. */
  c = open_mode(in_tmp("cache.db"), CACHE_READWRITE);
  ML_CHECK_INT(cache_get(c, "k", &r), 1);
  ML_CHECK_STR(r, "{\"text\":\"hello\"}");
  free(r);
  cache_close(c);
  tmp_remove();
}

static void mode_refresh_writes_but_never_reads(void) {
  tmp_make();
  char path[256];
  snprintf(path, sizeof path, "%s", in_tmp("cache.db"));
  struct llm_cache *c = open_mode(path, CACHE_READWRITE);
  ML_CHECK_INT(cache_put(c, "k", "m", "\"stale\""), 0);
  cache_close(c);

  c = open_mode(path, CACHE_REFRESH);
  char *r = NULL;
  ML_CHECK_INT(cache_get(c, "k", &r), 0);
  ML_CHECK(r == NULL);
  ML_CHECK_INT(cache_put(c, "k", "m", "\"fresh\""), 0);
  ML_CHECK_INT(cache_get(c, "k", &r), 0); /* even what it just wrote */
  struct cache_stats st;
  cache_stats(c, &st);
  ML_CHECK_INT(st.hits + st.misses, 0); /* no lookups happened */
  ML_CHECK_INT(st.writes, 1);
  cache_close(c);

  c = open_mode(path, CACHE_READWRITE);
  ML_CHECK_INT(cache_get(c, "k", &r), 1);
  ML_CHECK_STR(r, "\"fresh\"");
  free(r);
  cache_close(c);
  tmp_remove();
}

/* ---- Counters ---- */

static void hits_are_counted_in_the_file_and_the_stats(void) {
  tmp_make();
  char path[256];
  snprintf(path, sizeof path, "%s", in_tmp("cache.db"));
  struct llm_cache *c = open_mode(path, CACHE_READWRITE);
  char *r = NULL;
  ML_CHECK_INT(cache_get(c, "k", &r), 0);
  ML_CHECK_INT(cache_put(c, "k", "m", "1"), 0);
  for (int i = 0; i < 3; i++) {
    ML_CHECK_INT(cache_get(c, "k", &r), 1);
    free(r);
  }
  struct cache_stats st;
  cache_stats(c, &st);
  ML_CHECK_INT(st.hits, 3);
  ML_CHECK_INT(st.misses, 1);
  ML_CHECK_INT(st.writes, 1);
  ML_CHECK_INT(st.errors, 0);
  ML_CHECK_INT(sql_int(path, "SELECT hits FROM entries WHERE key = 'k'"), 3);
  cache_close(c);
  tmp_remove();
}

static void stats_count_entries_and_bytes_of_the_file(void) {
  tmp_make();
  char path[256];
  snprintf(path, sizeof path, "%s", in_tmp("cache.db"));
  struct llm_cache *c = open_mode(path, CACHE_READWRITE);
  struct cache_stats st;
  cache_stats(c, &st);
  ML_CHECK_INT(st.entries, 0);
  ML_CHECK_INT(st.bytes, 0);
  ML_CHECK_INT(cache_put(c, "a", "m", "12345"), 0);
  ML_CHECK_INT(cache_put(c, "b", NULL, "123"), 0);
  ML_CHECK_INT(cache_put(c, "a", "m", "1234567890"), 0); /* replaces, does not add */
  cache_stats(c, &st);
  ML_CHECK_INT(st.entries, 2);
  ML_CHECK_INT(st.bytes, 13);
  ML_CHECK_INT(st.writes, 3);
  /* Entries written by another process count too: the numbers come from the file. */
  struct llm_cache *other = open_mode(path, CACHE_READWRITE);
  ML_CHECK_INT(cache_put(other, "c", "m", "1"), 0);
  cache_close(other);
  cache_stats(c, &st);
  ML_CHECK_INT(st.entries, 3);
  ML_CHECK_INT(st.writes, 3);
  cache_close(c);
  tmp_remove();
}

/* ---- Files it opens and refuses ---- */

static void open_refuses_a_file_that_is_not_sqlite(void) {
  tmp_make();
  char path[256];
  snprintf(path, sizeof path, "%s", in_tmp("notes.txt"));
  FILE *f = fopen(path, "w");
  for (int i = 0; i < 100; i++)
    fputs("these are my notes, not a database\n", f);
  fclose(f);
  struct llm_cache *c = (struct llm_cache *)1;
  char err[512] = "";
  ML_CHECK_INT(cache_open(&c, path, CACHE_READWRITE, err, sizeof err), CACHE_EFORMAT);
  ML_CHECK(c == NULL);
  ML_CHECK(strstr(err, path) != NULL);
  ML_CHECK(strstr(err, "not a SQLite database") != NULL);
  f = fopen(path, "r"); /* and it was left alone */
  char line[64] = "";
  ML_CHECK(f != NULL && fgets(line, sizeof line, f) != NULL);
  ML_CHECK_STR(line, "these are my notes, not a database\n");
  if (f)
    fclose(f);
  tmp_remove();
}

static void open_refuses_a_newer_schema_version(void) {
  tmp_make();
  char path[256];
  snprintf(path, sizeof path, "%s", in_tmp("cache.db"));
  ML_CHECK_INT(sql_exec(path, "CREATE TABLE entries(key TEXT PRIMARY KEY, stuff BLOB);"
                              "PRAGMA user_version = 2"),
               SQLITE_OK);
  struct llm_cache *c = NULL;
  char err[512] = "";
  ML_CHECK_INT(cache_open(&c, path, CACHE_READWRITE, err, sizeof err), CACHE_EFORMAT);
  ML_CHECK(c == NULL);
  ML_CHECK(strstr(err, path) != NULL);
  ML_CHECK(strstr(err, "newer") != NULL);
  ML_CHECK_INT(sql_int(path, "PRAGMA user_version"), 2);
  tmp_remove();
}

static void open_refuses_another_programs_database(void) {
  tmp_make();
  char path[256];
  snprintf(path, sizeof path, "%s", in_tmp("run.db"));
  ML_CHECK_INT(sql_exec(path, "CREATE TABLE journal(id INTEGER); INSERT INTO journal VALUES(7)"),
               SQLITE_OK);
  struct llm_cache *c = NULL;
  char err[512] = "";
  ML_CHECK_INT(cache_open(&c, path, CACHE_READWRITE, err, sizeof err), CACHE_EFORMAT);
  ML_CHECK(strstr(err, path) != NULL);
  ML_CHECK_INT(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'entries'"), 0);
  ML_CHECK_INT(sql_int(path, "SELECT id FROM journal"), 7);
  tmp_remove();
}

static void open_creates_missing_parent_directories(void) {
  tmp_make();
  struct llm_cache *c = open_mode(in_tmp("a/b//c/cache.db"), CACHE_READWRITE);
  ML_CHECK(c != NULL);
  cache_close(c);
  ML_CHECK(exists(in_tmp("a/b/c/cache.db")));
  struct stat st;
  ML_CHECK(stat(in_tmp("a/b"), &st) == 0 && (st.st_mode & 077) == 0);
  tmp_remove();
}

static void open_names_the_path_when_the_directory_cannot_exist(void) {
  tmp_make();
  FILE *f = fopen(in_tmp("plain"), "w");
  fclose(f);
  char path[256];
  snprintf(path, sizeof path, "%s", in_tmp("plain/cache.db"));
  struct llm_cache *c = NULL;
  char err[512] = "";
  ML_CHECK(cache_open(&c, path, CACHE_READWRITE, err, sizeof err) < 0);
  ML_CHECK(c == NULL);
  ML_CHECK(strstr(err, path) != NULL);
  tmp_remove();
}

static void open_expands_tilde_to_home(void) {
  tmp_make();
  const char *old = getenv("HOME");
  char *saved = old ? strdup(old) : NULL;
  setenv("HOME", tmp, 1);
  struct llm_cache *c = open_mode("~/.cache/moonloop/cache.db", CACHE_READWRITE);
  ML_CHECK(c != NULL);
  ML_CHECK_INT(cache_put(c, "k", "m", "1"), 0);
  cache_close(c);
  ML_CHECK(exists(in_tmp(".cache/moonloop/cache.db")));
  char err[512] = "";
  ML_CHECK_INT(cache_open(&c, "~root/cache.db", CACHE_READWRITE, err, sizeof err), CACHE_EINVAL);
  ML_CHECK(strstr(err, "~root/cache.db") != NULL);
  if (saved)
    setenv("HOME", saved, 1);
  else
    unsetenv("HOME");
  free(saved);
  tmp_remove();
}

/* ---- Sharing and size ---- */

#define PER_PROCESS 1000

static void entry_text(int who, int i, char *buf, size_t len) {
  snprintf(buf, len, "{\"who\":%d,\"i\":%d,\"text\":\"answer %d from process %d\"}", who, i, i,
           who);
}

/* Write PER_PROCESS entries of its own while reading the other's as they appear. Returns the
 * number of problems (errors, or a hit with the wrong text). */
static int share_worker(const char *path, int who) {
  struct llm_cache *c = open_mode(path, CACHE_READWRITE);
  if (c == NULL)
    return 1;
  int bad = 0;
  char key[32], want[128];
  for (int i = 0; i < PER_PROCESS; i++) {
    snprintf(key, sizeof key, "p%d-%d", who, i);
    entry_text(who, i, want, sizeof want);
    if (cache_put(c, key, "m", want) != 0) {
      fprintf(stderr, "  process %d: %s\n", who, cache_errmsg(c));
      bad++;
    }
    snprintf(key, sizeof key, "p%d-%d", 1 - who, i);
    entry_text(1 - who, i, want, sizeof want);
    char *r = NULL;
    int rc = cache_get(c, key, &r);
    if (rc < 0 || (rc == 1 && strcmp(r, want) != 0))
      bad++;
    free(r);
  }
  cache_close(c);
  return bad;
}

static void two_processes_share_one_file(void) {
  tmp_make();
  char path[256];
  snprintf(path, sizeof path, "%s", in_tmp("shared/cache.db"));
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0)
    _exit(share_worker(path, 1) > 0 ? 1 : 0); /* both create the file at the same moment */
  ML_CHECK(pid > 0);
  ML_CHECK_INT(share_worker(path, 0), 0);
  int status = 0;
  ML_CHECK(waitpid(pid, &status, 0) == pid);
  ML_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  struct llm_cache *c = open_mode(path, CACHE_READ);
  int found = 0;
  char key[32], want[128];
  for (int who = 0; who < 2; who++) {
    for (int i = 0; i < PER_PROCESS; i++) {
      snprintf(key, sizeof key, "p%d-%d", who, i);
      entry_text(who, i, want, sizeof want);
      char *r = NULL;
      if (cache_get(c, key, &r) == 1 && strcmp(r, want) == 0)
        found++;
      free(r);
    }
  }
  ML_CHECK_INT(found, 2 * PER_PROCESS);
  cache_close(c);
  tmp_remove();
}

static void large_response_round_trips(void) {
  tmp_make();
  size_t n = 5u << 20;
  char *big = malloc(n + 1);
  for (size_t i = 0; i < n; i++)
    big[i] = (char)('a' + i % 26);
  big[0] = '"';
  big[n - 1] = '"';
  big[n] = '\0';
  struct llm_cache *c = open_mode(in_tmp("cache.db"), CACHE_READWRITE);
  ML_CHECK_INT(cache_put(c, "big", "m", big), 0);
  char *r = NULL;
  ML_CHECK_INT(cache_get(c, "big", &r), 1);
  ML_CHECK(r != NULL && strlen(r) == n && memcmp(r, big, n) == 0);
  struct cache_stats st;
  cache_stats(c, &st);
  ML_CHECK_INT(st.bytes, (long long)n);
  free(r);
  free(big);
  cache_close(c);
  tmp_remove();
}

/* A writer that holds the lock past the busy timeout costs this put an error, not the file:
 * reads go on meanwhile (WAL), and the next put works. Takes about 5 s. */
static void a_lock_held_too_long_fails_the_put_cleanly(void) {
  tmp_make();
  char path[256];
  snprintf(path, sizeof path, "%s", in_tmp("cache.db"));
  struct llm_cache *c = open_mode(path, CACHE_READWRITE);
  ML_CHECK_INT(cache_put(c, "kept", "m", "\"kept\""), 0);
  sqlite3 *hog = NULL;
  ML_CHECK_INT(sqlite3_open(path, &hog), SQLITE_OK);
  ML_CHECK_INT(sqlite3_exec(hog, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

  ML_CHECK_INT(cache_put(c, "late", "m", "\"late\""), CACHE_EBUSY);
  ML_CHECK(strstr(cache_errmsg(c), path) != NULL);
  char *r = NULL;
  ML_CHECK_INT(cache_get(c, "kept", &r), 1); /* the hit counter gives up quickly */
  free(r);

  sqlite3_exec(hog, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close(hog);
  ML_CHECK_INT(cache_put(c, "late", "m", "\"late\""), 0);
  struct cache_stats st;
  cache_stats(c, &st);
  ML_CHECK_INT(st.errors, 1);
  ML_CHECK_INT(st.entries, 2);
  cache_close(c);
  ML_CHECK_INT(sql_int(path, "SELECT count(*) FROM pragma_integrity_check WHERE "
                             "integrity_check = 'ok'"),
               1);
  tmp_remove();
}

ML_TEST_MAIN(ML_CASE(key_ignores_member_order), ML_CASE(key_ignores_number_spelling),
             ML_CASE(key_keeps_integers_exact), ML_CASE(key_ignores_delivery_fields),
             ML_CASE(key_keeps_nested_fields_named_like_ignored_ones),
             ML_CASE(key_differs_by_sample_index), ML_CASE(key_differs_by_provider),
             ML_CASE(key_differs_by_anything_that_changes_the_answer), ML_CASE(key_is_pinned),
             ML_CASE(key_leaves_the_body_unchanged), ML_CASE(key_rejects_bad_arguments),
             ML_CASE(mode_parse_accepts_the_four_names), ML_CASE(mode_off_never_touches_the_disk),
             ML_CASE(mode_read_never_writes), ML_CASE(mode_readwrite_reads_and_writes),
             ML_CASE(mode_refresh_writes_but_never_reads),
             ML_CASE(hits_are_counted_in_the_file_and_the_stats),
             ML_CASE(stats_count_entries_and_bytes_of_the_file),
             ML_CASE(open_refuses_a_file_that_is_not_sqlite),
             ML_CASE(open_refuses_a_newer_schema_version),
             ML_CASE(open_refuses_another_programs_database),
             ML_CASE(open_creates_missing_parent_directories),
             ML_CASE(open_names_the_path_when_the_directory_cannot_exist),
             ML_CASE(open_expands_tilde_to_home), ML_CASE(two_processes_share_one_file),
             ML_CASE(large_response_round_trips),
             ML_CASE(a_lock_held_too_long_fails_the_put_cleanly))
