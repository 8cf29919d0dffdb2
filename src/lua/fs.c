/* The `fs` Lua module (trusted code only): read, write atomically, append, list, glob and
 * stat local files. The calls block the loop thread; that is accepted because they serve
 * short, local files (recipes, datasets, scratch space), never network file systems.
 * Misuse and failures raise errors that name the path and the system's reason. */
#include "lua/modules.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

/* A path argument: a string without NUL bytes (the C library would silently cut it). */
static const char *check_path(lua_State *L, int arg) {
  size_t len;
  const char *p = luaL_checklstring(L, arg, &len);
  if (strlen(p) != len)
    luaL_argerror(L, arg, "path contains a NUL byte");
  if (len == 0)
    luaL_argerror(L, arg, "path is empty");
  return p;
}

static int fail_errno(lua_State *L, const char *what, const char *path, int err) {
  return luaL_error(L, "%s: '%s': %s", what, path, strerror(err));
}

/* Write all of buf to fd, retrying short writes and EINTR. Returns 0 or an errno. */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

struct bytes {
  const char *p;
  size_t n;
};

static int push_bytes(lua_State *L) {
  const struct bytes *b = lua_touserdata(L, 1);
  lua_pushlstring(L, b->p, b->n);
  return 1;
}

/* fs.read(path) -> string. */
static int l_read(lua_State *L) {
  const char *path = check_path(L, 1);
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int err = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail_errno(L, "fs.read", path, errno);
  for (;;) {
    if (cap - len < 65536) {
      size_t ncap = cap ? cap * 2 : 65536;
      char *nb = realloc(buf, ncap);
      if (nb == NULL) {
        err = ENOMEM;
        goto fail;
      }
      buf = nb;
      cap = ncap;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      err = errno;
      goto fail;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  struct bytes bytes = {buf, len};
  lua_pushcfunction(L, push_bytes);
  lua_pushlightuserdata(L, &bytes);
  int rc = lua_pcall(L, 1, 1, 0); /* a memory error must not leak buf */
  free(buf);
  if (rc != LUA_OK)
    return lua_error(L);
  return 1;
fail:
  close(fd);
  free(buf);
  return fail_errno(L, "fs.read", path, err);
}

/* The directory part of a path, following dirname(1): "a/b/" -> "a", "a" -> ".",
 * "/a" -> "/", "/" -> "/". Sets *n to the length of the result within p, or returns "."
 * when the result is not a prefix of p. */
static const char *dir_part(const char *p, size_t len, size_t *n) {
  size_t i = len;
  while (i > 1 && p[i - 1] == '/') /* trailing slashes */
    i--;
  while (i > 0 && p[i - 1] != '/') /* the last component */
    i--;
  if (i == 0) {
    *n = 1;
    return ".";
  }
  while (i > 1 && p[i - 1] == '/') /* the slashes before it */
    i--;
  *n = i;
  return p;
}

/* fs.write(path, data): write a temporary file beside path, fsync it, rename it over path,
 * so readers see the old or the new content, never a torn file. The new file keeps the
 * mode of the one it replaces (or 0666 less the umask). */
static int l_write(lua_State *L) {
  const char *path = check_path(L, 1);
  size_t len, plen = strlen(path);
  const char *data = luaL_checklstring(L, 2, &len);
  lua_settop(L, 2);
  if (path[plen - 1] == '/')
    return fail_errno(L, "fs.write", path, EISDIR);
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  /* The directory, to fsync after the rename, at index 3; the temporary name at 4. */
  if (slash)
    lua_pushlstring(L, path, slash == path ? 1 : (size_t)(slash - path));
  else
    lua_pushliteral(L, ".");
  lua_pushlstring(L, path, (size_t)(base - path));
  lua_pushfstring(L, "%s.%s.tmp-XXXXXX", lua_tostring(L, -1), base);
  lua_remove(L, -2);
  char *tmp = strdup(lua_tostring(L, -1)); /* mkstemp edits it in place */
  if (tmp == NULL)
    return luaL_error(L, "fs.write: out of memory");
  const char *step = "cannot create a temporary file beside";
  int err = 0;
  int fd = mkstemp(tmp);
  if (fd < 0) {
    err = errno;
    free(tmp);
    return luaL_error(L, "fs.write: %s '%s': %s", step, path, strerror(err));
  }
  struct stat st;
  mode_t mode;
  if (stat(path, &st) == 0) {
    mode = st.st_mode & 07777;
  } else {
    mode_t mask = umask(0); /* the only way to read the umask; set straight back */
    umask(mask);
    mode = 0666 & ~mask;
  }
  step = "cannot write";
  if ((err = write_all(fd, data, len)) != 0)
    goto fail;
  step = "cannot set the mode of the temporary file for";
  if (fchmod(fd, mode) != 0) {
    err = errno;
    goto fail;
  }
  step = "cannot fsync";
  if (fsync(fd) != 0) {
    err = errno;
    goto fail;
  }
  int rc = close(fd);
  fd = -1;
  if (rc != 0) {
    err = errno;
    goto fail;
  }
  step = "cannot rename the temporary file onto";
  if (rename(tmp, path) != 0) {
    err = errno;
    goto fail;
  }
  free(tmp);
  /* Make the rename itself durable; a failure here loses nothing already written. */
  int dfd = open(lua_tostring(L, 3), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return 0;
fail:
  if (fd >= 0)
    close(fd);
  unlink(tmp);
  free(tmp);
  return luaL_error(L, "fs.write: %s '%s': %s", step, path, strerror(err));
}

/* fs.append(path, data): add data at the end of path, creating it if needed. */
static int l_append(lua_State *L) {
  const char *path = check_path(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0)
    return fail_errno(L, "fs.append", path, errno);
  int err = write_all(fd, data, len);
  if (close(fd) != 0 && err == 0)
    err = errno;
  if (err)
    return fail_errno(L, "fs.append", path, err);
  return 0;
}

/* Errors that mean "there is nothing at this path" rather than "cannot tell". */
static int is_absent(int err) {
  return err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG;
}

/* fs.exists(path) -> boolean (follows symbolic links). */
static int l_exists(lua_State *L) {
  const char *path = check_path(L, 1);
  struct stat st;
  if (stat(path, &st) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!is_absent(errno))
    return fail_errno(L, "fs.exists", path, errno);
  lua_pushboolean(L, 0);
  return 1;
}

static const char *type_name(mode_t m) {
  if (S_ISREG(m))
    return "file";
  if (S_ISDIR(m))
    return "dir";
  if (S_ISLNK(m))
    return "link";
  if (S_ISFIFO(m))
    return "fifo";
  if (S_ISSOCK(m))
    return "socket";
  if (S_ISCHR(m))
    return "char";
  if (S_ISBLK(m))
    return "block";
  return "other";
}

/* fs.stat(path) -> {size=, mtime= (seconds, fractional), type=, mode=} or nil when absent. */
static int l_stat(lua_State *L) {
  const char *path = check_path(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) {
    if (is_absent(errno)) {
      lua_pushnil(L);
      return 1;
    }
    return fail_errno(L, "fs.stat", path, errno);
  }
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec / 1e9);
  lua_setfield(L, -2, "mtime");
  lua_pushstring(L, type_name(st.st_mode));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  lua_setfield(L, -2, "mode");
  return 1;
}

/* fs.mkdir(path): create path and any missing parents (mkdir -p); an existing directory is
 * fine, an existing file is an error. */
static int l_mkdir(lua_State *L) {
  const char *path = check_path(L, 1);
  char *buf = strdup(path);
  if (buf == NULL)
    return luaL_error(L, "fs.mkdir: out of memory");
  int err = 0;
  size_t len = strlen(buf);
  for (size_t i = 1; i <= len; i++) {
    if (i < len && buf[i] != '/')
      continue;
    if (buf[i - 1] == '/') /* repeated or trailing slash */
      continue;
    char saved = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
      err = errno;
      goto fail;
    }
    buf[i] = saved;
  }
  struct stat st;
  if (stat(path, &st) != 0) {
    err = errno;
    goto fail;
  }
  free(buf);
  if (!S_ISDIR(st.st_mode))
    return luaL_error(L, "fs.mkdir: '%s' exists and is not a directory", path);
  return 0;
fail:
  lua_pushstring(L, buf); /* the prefix that failed, to say where it broke */
  free(buf);
  if (strcmp(lua_tostring(L, -1), path) == 0)
    return fail_errno(L, "fs.mkdir", path, err);
  return luaL_error(L, "fs.mkdir: '%s': cannot create '%s': %s", path, lua_tostring(L, -1),
                    strerror(err));
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Push a list of the n strings in v, sorted bytewise (not by locale, so the order is the
 * same everywhere). v itself is reordered. */
static void push_sorted(lua_State *L, char **v, size_t n) {
  if (n > 1)
    qsort(v, n, sizeof *v, cmp_str);
  lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* Pushes a sorted list; the strings are copied into Lua before glob's memory is freed. */
static int glob_push(lua_State *L) {
  glob_t *g = lua_touserdata(L, 1);
  push_sorted(L, g->gl_pathv, g->gl_pathc);
  return 1;
}

/* fs.glob(pattern) -> sorted list of matching paths (glob(3); no match -> empty list). */
static int l_glob(lua_State *L) {
  const char *pattern = check_path(L, 1);
  glob_t g;
  memset(&g, 0, sizeof g);
  int rc = glob(pattern, GLOB_NOSORT, NULL, &g);
  if (rc == GLOB_NOMATCH) {
    globfree(&g);
    lua_newtable(L);
    return 1;
  }
  if (rc != 0) {
    globfree(&g);
    return luaL_error(L, "fs.glob: '%s': %s", pattern,
                      rc == GLOB_NOSPACE ? "out of memory" : "a directory could not be read");
  }
  /* Build the list under a protected call, so a memory error cannot leak the glob. */
  lua_pushcfunction(L, glob_push);
  lua_pushlightuserdata(L, &g);
  rc = lua_pcall(L, 1, 1, 0);
  globfree(&g);
  if (rc != LUA_OK)
    return lua_error(L);
  return 1;
}

struct name_list {
  char **v;
  size_t n, cap;
};

static void name_list_free(struct name_list *nl) {
  for (size_t i = 0; i < nl->n; i++)
    free(nl->v[i]);
  free(nl->v);
}

static int list_push(lua_State *L) {
  struct name_list *nl = lua_touserdata(L, 1);
  push_sorted(L, nl->v, nl->n);
  return 1;
}

/* fs.list(dir) -> sorted names of its entries, without "." and "..". */
static int l_list(lua_State *L) {
  const char *path = check_path(L, 1);
  struct name_list nl = {0};
  int err = 0;
  DIR *d = opendir(path);
  if (d == NULL)
    return fail_errno(L, "fs.list", path, errno);
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(d);
    if (e == NULL) {
      err = errno;
      break;
    }
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (nl.n == nl.cap) {
      size_t cap = nl.cap ? nl.cap * 2 : 32;
      char **v = realloc(nl.v, cap * sizeof *v);
      if (v == NULL) {
        err = ENOMEM;
        break;
      }
      nl.v = v;
      nl.cap = cap;
    }
    if ((nl.v[nl.n] = strdup(e->d_name)) == NULL) {
      err = ENOMEM;
      break;
    }
    nl.n++;
  }
  closedir(d);
  if (err) {
    name_list_free(&nl);
    return fail_errno(L, "fs.list", path, err);
  }
  lua_pushcfunction(L, list_push);
  lua_pushlightuserdata(L, &nl);
  int rc = lua_pcall(L, 1, 1, 0);
  name_list_free(&nl);
  if (rc != LUA_OK)
    return lua_error(L);
  return 1;
}

/* fs.remove(path): remove a file, a symbolic link or an empty directory. */
static int l_remove(lua_State *L) {
  const char *path = check_path(L, 1);
  if (remove(path) != 0)
    return fail_errno(L, "fs.remove", path, errno);
  return 0;
}

/* fs.tmpdir([prefix]) -> path of a new private directory under $TMPDIR (or /tmp). */
static int l_tmpdir(lua_State *L) {
  size_t plen;
  const char *prefix = luaL_optlstring(L, 1, "moonloop-", &plen);
  luaL_argcheck(L, strlen(prefix) == plen && strchr(prefix, '/') == NULL, 1,
                "prefix must not contain '/' or NUL bytes");
  const char *base = getenv("TMPDIR");
  if (base == NULL || base[0] == '\0')
    base = "/tmp";
  lua_pushfstring(L, "%s/%sXXXXXX", base, prefix);
  char *tmpl = strdup(lua_tostring(L, -1));
  if (tmpl == NULL)
    return luaL_error(L, "fs.tmpdir: out of memory");
  if (mkdtemp(tmpl) == NULL) {
    int err = errno;
    free(tmpl);
    return luaL_error(L, "fs.tmpdir: cannot create a directory in '%s': %s", base, strerror(err));
  }
  lua_pushstring(L, tmpl);
  free(tmpl);
  return 1;
}

/* fs.dirname(p): like dirname(1), on the string alone. */
static int l_dirname(lua_State *L) {
  size_t len, n;
  const char *p = luaL_checklstring(L, 1, &len);
  const char *d = dir_part(p, len, &n);
  lua_pushlstring(L, d, n);
  return 1;
}

/* fs.basename(p): like basename(1) without a suffix, on the string alone:
 * "a/b/" -> "b", "/" -> "/", "" -> "". */
static int l_basename(lua_State *L) {
  size_t len;
  const char *p = luaL_checklstring(L, 1, &len);
  size_t end = len;
  while (end > 1 && p[end - 1] == '/')
    end--;
  size_t start = end;
  while (start > 0 && p[start - 1] != '/')
    start--;
  if (start == end && end > 0) /* only slashes */
    start = end - 1;
  lua_pushlstring(L, p + start, end - start);
  return 1;
}

/* fs.join(a, b, ...): the parts joined with exactly one '/' between them; empty parts are
 * skipped. Unlike Python's os.path.join, an absolute later part does not discard the ones
 * before it: fs.join(dir, name) always stays under dir. */
static int l_join(lua_State *L) {
  int n = lua_gettop(L);
  luaL_argcheck(L, n >= 1, 1, "at least one path part expected");
  for (int i = 1; i <= n; i++)
    luaL_checkstring(L, i);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int wrote = 0, ends_slash = 0;
  for (int i = 1; i <= n; i++) {
    size_t len;
    const char *s = lua_tolstring(L, i, &len);
    if (len == 0)
      continue;
    if (wrote) {
      while (len > 0 && s[0] == '/') {
        s++;
        len--;
      }
      if (!ends_slash)
        luaL_addchar(&b, '/');
      if (len == 0) {
        ends_slash = 1;
        continue;
      }
    }
    luaL_addlstring(&b, s, len);
    wrote = 1;
    ends_slash = s[len - 1] == '/';
  }
  luaL_pushresult(&b);
  return 1;
}

int fs_open(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"read", l_read},     {"write", l_write},     {"append", l_append},     {"exists", l_exists},
      {"mkdir", l_mkdir},   {"glob", l_glob},       {"list", l_list},         {"remove", l_remove},
      {"tmpdir", l_tmpdir}, {"dirname", l_dirname}, {"basename", l_basename}, {"join", l_join},
      {"stat", l_stat},     {NULL, NULL},
  };
  luaL_newlib(L, fns);
  return 1;
}
