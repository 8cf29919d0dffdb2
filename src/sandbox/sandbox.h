/* The sandbox for recipes and agent-written code (SPEC section 7). A sandbox is a userdata in
 * the runtime's one Lua state: a private environment built from copies of the safe
 * libraries, limits, and counters. Each call into it runs on a fresh coroutine with a count
 * hook on that coroutine only, so trusted code pays nothing; the runtime's allocator charges
 * what the sandbox allocates while it runs (rt.c). */
#ifndef ML_SANDBOX_H
#define ML_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

struct ml_rt;
struct sbx_call;

/* Why a sandbox was killed. A killed sandbox refuses every later call. */
enum sbx_kill {
  SBX_ALIVE = 0,
  SBX_KILL_MEMORY,
  SBX_KILL_INSTRUCTIONS,
  SBX_KILL_CPU,
  SBX_KILL_WALL,
};

/* A killed sandbox may still allocate this much over its cap, so the error that reports the
 * kill can be built inside it. */
#define SBX_MEM_HEADROOM ((int64_t)1 << 20)

struct ml_sandbox {
  struct ml_rt *rt;

  /* Memory: the net growth of the heap while this sandbox runs. It can go below zero when
   * the collector frees host garbage during the sandbox's turn; growth past mem_cap is
   * refused (the caller sees LUA_ERRMEM) and the sandbox is then killed. */
  int64_t mem_used;
  int64_t mem_cap; /* 0: no cap */
  int64_t mem_peak;
  int mem_refused;
  enum sbx_kill killed;

  /* Limits (0: none). Instructions, CPU and wall time count per call. */
  int64_t max_instructions;
  uint64_t cpu_ns, wall_ns, slice_ns;
  int max_coroutines;

  /* Counters. */
  uint64_t instructions; /* all calls */
  uint64_t calls;
  int live_coroutines;
  int resume_depth, close_depth;
  lua_State *slice_thread; /* the thread that yielded for a time slice, on its way up */
  struct sbx_call *call;   /* the innermost call of this sandbox running now */

  char name[256];
  char kill_msg[512];
};

/* The allocator's question: may the running sandbox grow by `grow` bytes? A refusal is
 * remembered and turns into a kill once the memory error surfaces. After a refusal Lua
 * collects everything and asks again once; that retry must fit under 7/8 of the cap. */
static inline int sbx_mem_allows(struct ml_sandbox *sb, size_t grow) {
  if (sb->mem_cap <= 0)
    return 1;
  int64_t limit = sb->mem_cap;
  if (sb->killed != SBX_ALIVE)
    limit += SBX_MEM_HEADROOM;
  else if (sb->mem_refused)
    limit -= sb->mem_cap / 8; /* the retry after Lua's emergency collection: what is still live
                                 fills the cap, and going on would collect at every allocation */
  if (grow > (size_t)INT64_MAX / 2 || sb->mem_used + (int64_t)grow > limit) {
    sb->mem_refused = 1;
    return 0;
  }
  return 1;
}

static inline void sbx_mem_charge(struct ml_sandbox *sb, int64_t delta) {
  sb->mem_used += delta;
  if (sb->mem_used > sb->mem_peak)
    sb->mem_peak = sb->mem_used;
}

/* Lock the string metatable (getmetatable("") no longer reaches the string library, and
 * ("").dump is gone). Called once by rt_init, before any script runs. */
void sbx_lock_strings(lua_State *L);

/* luaopen function of "moonloop.sandbox.core" (registered in package.preload by rt_init). */
int sbx_luaopen(lua_State *L);

#endif
