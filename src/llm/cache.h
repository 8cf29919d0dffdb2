/* The response cache (SPEC section 8): one SQLite file, shared by every run and process of
 * one user, that maps a content address (the hash of the canonical wire request, the provider
 * and the sample index) to the response JSON the request path stored for it.
 * The cache never parses responses and never sees parsing options, so changing how answers
 * are parsed or verified reuses what was already paid for.
 *
 * Threading: a struct llm_cache belongs to one thread (the loop thread). Calls block, for
 * microseconds on a read; a write waits at most the 5 s busy timeout for another process's
 * write lock, then fails with CACHE_EBUSY and leaves the file as it was. */
#ifndef ML_LLM_CACHE_H
#define ML_LLM_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

enum cache_mode {
  CACHE_OFF,       /* the file is never opened: every get misses, every put is dropped */
  CACHE_READ,      /* hits are served, nothing new is stored */
  CACHE_READWRITE, /* hits are served and new responses stored */
  CACHE_REFRESH,   /* every get misses and every put replaces: re-asks and rewrites */
};

/* Negative return codes. Every failure also leaves a message (see cache_errmsg). */
enum {
  CACHE_EFAIL = -1,   /* SQLite or file-system error */
  CACHE_EBUSY = -2,   /* another process held the write lock past the busy timeout */
  CACHE_EINVAL = -3,  /* bad argument (unknown mode name, non-object body, NULL key...) */
  CACHE_ENOMEM = -4,  /* out of memory */
  CACHE_EFORMAT = -5, /* the file is not a moonloop cache: not SQLite, corrupt, another
                         program's database, or a schema newer than this build */
};

/* The schema version written to PRAGMA user_version; a newer one is refused on open. */
#define CACHE_SCHEMA_VERSION 1

struct llm_cache;

struct cache_stats {
  uint64_t hits, misses, writes, errors; /* this process, since cache_open */
  int64_t entries, bytes;                /* the whole file now; -1 when unknown (mode off) */
};

/* "off", "read", "readwrite" or "refresh" -> *out; returns 0, or CACHE_EINVAL and leaves
 * *out alone for anything else (NULL included). */
int cache_mode_parse(const char *s, enum cache_mode *out);

/* The mode's name as cache_mode_parse accepts it. */
const char *cache_mode_name(enum cache_mode mode);

/* Open (creating if needed) the cache at path. A leading "~" or "~/" means $HOME; missing
 * parent directories are created (mode 0700: cached prompts and answers may be private).
 * Sets WAL, synchronous=NORMAL and a 5000 ms busy timeout, creates the schema in an
 * empty file and checks it in an existing one. In CACHE_OFF nothing is touched on disk.
 * Returns 0 with *out set, or a negative code with *out = NULL and a message in err that
 * names the path and what to do. */
int cache_open(struct llm_cache **out, const char *path, enum cache_mode mode, char *err,
               size_t errlen);

/* The cache key of one request: 32 lowercase hex digits of the 128-bit text_hash128 over a
 * key-format version, the provider name, the canonical body (keys sorted, numbers in one
 * spelling: 1, 1.0 and 1e0 agree) minus the top-level fields that never change the answer
 * (stream, stream_options, user, metadata), and sample_index (>= 0, so the n samples of one
 * prompt stay distinct). request_body must be a JSON object; it is not modified.
 * Returns 0, or a negative code with a message in err. */
int cache_key(const cJSON *request_body, int sample_index, const char *provider, char out[33],
              char *err, size_t errlen);

/* Look key up. Returns 1 on a hit with *response_json a malloc'd copy (caller frees) and the
 * entry's hit count incremented (best effort: a failed increment never spoils a hit), 0 on
 * a miss, a negative code on error (*response_json NULL in both). CACHE_OFF and CACHE_REFRESH
 * always miss without reading, and those misses are not counted in the stats.
 * A NULL cache behaves like CACHE_OFF. */
int cache_get(struct llm_cache *c, const char *key, char **response_json);

/* Store response_json (any text; the cache does not parse it) under key, replacing an older
 * entry. model may be NULL. Writes in CACHE_READWRITE and CACHE_REFRESH; returns 0 without
 * writing in CACHE_OFF and CACHE_READ (and for a NULL cache). Negative code on error. */
int cache_put(struct llm_cache *c, const char *key, const char *model, const char *response_json);

/* Counters of this process plus the file's entry count and total response bytes. */
void cache_stats(struct llm_cache *c, struct cache_stats *out);

/* The message of the latest failure ("" if none); valid until the next call on c. */
const char *cache_errmsg(const struct llm_cache *c);

/* Finalise the statements and close the file. NULL is fine. */
void cache_close(struct llm_cache *c);

#endif
