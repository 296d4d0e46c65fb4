/* A tiny JSON reader for the C tests: finds members of objects and compares
 * or copies simple values, without allocating. Enough to follow the
 * app-server protocol; not a general parser (no unescaping). */
#ifndef MINIJSON_H
#define MINIJSON_H

#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *p;
  size_t n;
} mj_span;

static inline const char *mj_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* The end of the value starting at p (NULL if malformed). */
static inline const char *mj_skip(const char *p, const char *end) {
  p = mj_ws(p, end);
  if (p >= end) return NULL;
  if (*p == '"') {
    for (p++; p < end; p++) {
      if (*p == '\\') {
        p++;
      } else if (*p == '"') {
        return p + 1;
      }
    }
    return NULL;
  }
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < end) {
      if (*p == '"') {
        p = mj_skip(p, end);
        if (!p) return NULL;
        continue;
      }
      if (*p == '{' || *p == '[') depth++;
      if (*p == '}' || *p == ']') {
        depth--;
        if (depth == 0) return p + 1;
      }
      p++;
    }
    return NULL;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n') p++;
  return p;
}

/* The value of member `key` of the object `obj` (n == 0 when absent). */
static inline mj_span mj_get(mj_span obj, const char *key) {
  mj_span none = {NULL, 0};
  const char *end = obj.p + obj.n;
  const char *p = mj_ws(obj.p, end);
  size_t klen = strlen(key);
  if (p >= end || *p != '{') return none;
  p++;
  for (;;) {
    p = mj_ws(p, end);
    if (p >= end || *p == '}') return none;
    if (*p != '"') return none;
    const char *kend = mj_skip(p, end);
    if (!kend) return none;
    int match = (size_t)(kend - p) == klen + 2 && memcmp(p + 1, key, klen) == 0;
    p = mj_ws(kend, end);
    if (p >= end || *p != ':') return none;
    const char *v = mj_ws(p + 1, end);
    const char *vend = mj_skip(v, end);
    if (!vend) return none;
    if (match) {
      mj_span s = {v, (size_t)(vend - v)};
      return s;
    }
    p = mj_ws(vend, end);
    if (p < end && *p == ',') p++;
  }
}

static inline mj_span mj_span_of(const char *s, size_t n) {
  mj_span r = {s, n};
  return r;
}

/* get(get(get(obj, a), b), c) for a NULL-terminated path. */
static inline mj_span mj_path(mj_span obj, const char *const *keys) {
  for (; *keys && obj.n; keys++) obj = mj_get(obj, *keys);
  return obj;
}

/* Whether the value is the JSON string "lit" (no escapes). */
static inline int mj_is_str(mj_span v, const char *lit) {
  size_t n = strlen(lit);
  return v.n == n + 2 && v.p[0] == '"' && memcmp(v.p + 1, lit, n) == 0;
}

/* Copies a JSON string's raw contents (without quotes) or any other value's
 * text into buf; returns 0 when it does not fit or is absent. */
static inline int mj_copy(mj_span v, char *buf, size_t cap) {
  const char *p = v.p;
  size_t n = v.n;
  if (!n) return 0;
  if (n >= 2 && p[0] == '"') {
    p++;
    n -= 2;
  }
  if (n + 1 > cap) return 0;
  memcpy(buf, p, n);
  buf[n] = 0;
  return 1;
}

static inline long long mj_int(mj_span v) {
  char tmp[32];
  if (!v.n || v.n >= sizeof tmp) return 0;
  memcpy(tmp, v.p, v.n);
  tmp[v.n] = 0;
  return strtoll(tmp, NULL, 10);
}

/* Whether the span contains the text `needle`. */
static inline int mj_contains(mj_span v, const char *needle) {
  size_t n = strlen(needle);
  if (n > v.n) return 0;
  for (size_t i = 0; i + n <= v.n; i++)
    if (memcmp(v.p + i, needle, n) == 0) return 1;
  return 0;
}

#endif
