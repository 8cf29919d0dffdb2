/* Randomness and hashing for the mock server: a seeded PRNG that decides faults and
 * latencies (same seed and request order, same outcomes), and FNV-1a for ids and logs.
 * A dozen lines of splitmix64 beat pulling in a library and keep results portable. */
#include "mock/server.h"

#include <math.h>
#include <string.h>

uint64_t mock_rand(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double mock_rand01(uint64_t *state) {
  /* The top 53 bits fill a double's mantissa exactly. */
  return (double)(mock_rand(state) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t mock_latency_draw(const struct mock_latency *lat, uint64_t *state) {
  /* Always two draws, whatever the distribution, so changing --latency does not shift
   * the fault sequence of a seed. */
  double u1 = mock_rand01(state), u2 = mock_rand01(state);
  double ms = 0;
  switch (lat->dist) {
  case MOCK_LAT_FIXED: ms = lat->a; break;
  case MOCK_LAT_UNIFORM: ms = lat->a + (lat->b - lat->a) * u1; break;
  case MOCK_LAT_EXP: ms = -lat->a * log(1.0 - u1); break;
  case MOCK_LAT_NORMAL: {
    /* Box-Muller; 1 - u1 is in (0, 1], so the log is finite. */
    double z = sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
    ms = lat->a + lat->b * z;
    break;
  }
  }
  if (!(ms > 0))
    return 0;
  if (ms > 3600e3)
    ms = 3600e3;
  return (uint64_t)(ms + 0.5);
}

enum mock_fault mock_fault_draw(const double prob[MOCK_FAULT_COUNT], uint64_t *state) {
  double u = mock_rand01(state), acc = 0;
  for (int k = MOCK_FAULT_NONE + 1; k < MOCK_FAULT_COUNT; k++) {
    acc += prob[k];
    if (u < acc)
      return (enum mock_fault)k;
  }
  return MOCK_FAULT_NONE;
}

static const char *const NAMES[MOCK_FAULT_COUNT] = {
    "none",     "429",     "500",    "503", "reset",     "stall",
    "truncate", "badjson", "badsse", "529", "sse_error",
};

const char *mock_fault_name(enum mock_fault f) {
  if (f == MOCK_FAULT_RATELIMIT)
    return "ratelimit";
  return (f >= 0 && f < MOCK_FAULT_COUNT) ? NAMES[f] : "none";
}

int mock_fault_parse(const char *s, size_t n) {
  for (int k = 0; k < MOCK_FAULT_COUNT; k++)
    if (strlen(NAMES[k]) == n && memcmp(NAMES[k], s, n) == 0)
      return k;
  return -1;
}

uint64_t mock_fnv1a(const void *p, size_t n) {
  const unsigned char *s = p;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}
