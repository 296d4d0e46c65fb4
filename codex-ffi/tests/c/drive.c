/* drive.c: one turn through the C ABI.
 *
 *   drive ENDPOINT MODE
 *
 * ENDPOINT: "embedded" (a supervisor in this process) or
 * "unix:///path/to/codexd.sock" (a running codexd). MODE: "callback" (events
 * on the library's thread) or "poll" (codex_event_fd + codex_next_event).
 *
 * Environment: CODEX_HOME (embedded), DRIVE_CWD (the thread's working
 * directory), DRIVE_WORKER (the worker binary; else $CODEX_WORKER_PATH),
 * DRIVE_MARKER (text the approved command prints).
 *
 * open -> thread/start (approvalPolicy on-request) -> turn/start -> the
 * model's command asks for approval -> accept it from C -> the command's
 * item/completed (with the marker) -> turn/completed -> close. Prints
 * "drive: ok" and exits 0 when all of it happened.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codex.h"
#include "minijson.h"

#define DEADLINE_S 600

struct results {
  int events, approvals, command_ok, turn_completed, failed;
  char failure[1024];
};

struct drive {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  codex_runtime *rt;
  const char *cwd;
  const char *marker;
  int64_t thread_req, turn_req;
  char thread_id[128];
  struct results r;
};

/* Set by the userdata destructor. */
static int g_freed;
static struct results g_results;

static void last_error(char *buf, size_t cap) {
  size_t len = 0;
  if (codex_last_error(buf, cap, &len) == CODEX_RESULT_PANIC) snprintf(buf, cap, "?");
}

static void fail(struct drive *d, const char *fmt, ...) {
  if (d->r.failed) return;
  d->r.failed = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->r.failure, sizeof d->r.failure, fmt, ap);
  va_end(ap);
}

/* Sends a request; the library assigns its id (written to *id). */
static void send_request(struct drive *d, const char *json, int64_t *id) {
  CodexResult r = codex_send(d->rt, json, strlen(json), id);
  if (r != CODEX_RESULT_OK) {
    char e[512];
    last_error(e, sizeof e);
    fail(d, "codex_send(%s) = %d: %s", json, (int)r, e);
  }
}

static void start_turn(struct drive *d) {
  char json[512];
  snprintf(json, sizeof json,
           "{\"method\":\"turn/start\",\"params\":{\"threadId\":\"%s\",\"input\":"
           "[{\"type\":\"text\",\"text\":\"run the command\"}]}}",
           d->thread_id);
  send_request(d, json, &d->turn_req);
}

/* One event; called with d->lock held. */
static void handle(struct drive *d, const char *msg, size_t len) {
  static const char *const thread_id[] = {"result", "thread", "id", NULL};
  static const char *const item[] = {"params", "item", NULL};
  static const char *const turn_status[] = {"params", "turn", "status", NULL};
  mj_span m = mj_span_of(msg, len);
  mj_span method = mj_get(m, "method");
  mj_span id = mj_get(m, "id");
  d->r.events++;
  if (!method.n) {
    long long n = mj_int(id);
    if (mj_get(m, "error").n) {
      fail(d, "request %lld failed: %.*s", n, (int)len, msg);
    } else if (n == d->thread_req) {
      if (!mj_copy(mj_path(m, thread_id), d->thread_id, sizeof d->thread_id))
        fail(d, "no thread id in %.*s", (int)len, msg);
      else
        start_turn(d);
    }
    return;
  }
  if (mj_is_str(method, "item/commandExecution/requestApproval")) {
    char idjson[64];
    if (!id.n || id.n >= sizeof idjson) {
      fail(d, "approval request without a usable id: %.*s", (int)len, msg);
      return;
    }
    memcpy(idjson, id.p, id.n);
    idjson[id.n] = 0;
    CodexResult r = codex_respond(d->rt, idjson, "{\"decision\":\"accept\"}");
    if (r != CODEX_RESULT_OK) {
      char e[512];
      last_error(e, sizeof e);
      fail(d, "codex_respond = %d: %s", (int)r, e);
    }
    d->r.approvals++;
  } else if (mj_is_str(method, "item/completed")) {
    mj_span it = mj_path(m, item);
    if (mj_is_str(mj_get(it, "type"), "commandExecution")) {
      if (!mj_is_str(mj_get(it, "status"), "completed") ||
          mj_int(mj_get(it, "exitCode")) != 0 ||
          !mj_contains(mj_get(it, "aggregatedOutput"), d->marker))
        fail(d, "the command did not run as approved: %.*s", (int)len, msg);
      else
        d->r.command_ok = 1;
    }
  } else if (mj_is_str(method, "turn/completed")) {
    if (!mj_is_str(mj_path(m, turn_status), "completed"))
      fail(d, "the turn did not complete: %.*s", (int)len, msg);
    d->r.turn_completed = 1;
  }
}

static int done(const struct drive *d) { return d->r.failed || d->r.turn_completed; }

static void on_event(void *userdata, codex_str message) {
  struct drive *d = userdata;
  pthread_mutex_lock(&d->lock);
  if (message.ptr[message.len] != 0) fail(d, "the event is not NUL-terminated");
  handle(d, message.ptr, message.len);
  pthread_cond_broadcast(&d->changed);
  pthread_mutex_unlock(&d->lock);
}

static void free_drive(void *userdata) {
  struct drive *d = userdata;
  g_results = d->r;
  g_freed++;
  pthread_cond_destroy(&d->changed);
  pthread_mutex_destroy(&d->lock);
  free(d);
}

static void wait_callbacks(struct drive *d) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += DEADLINE_S;
  pthread_mutex_lock(&d->lock);
  while (!done(d)) {
    if (pthread_cond_timedwait(&d->changed, &d->lock, &until) == ETIMEDOUT) {
      fail(d, "no turn/completed within %d s", DEADLINE_S);
      break;
    }
  }
  pthread_mutex_unlock(&d->lock);
}

static void poll_events(struct drive *d) {
  int fd = codex_event_fd(d->rt);
  size_t cap = 64; /* small on purpose: BUFFER_TOO_SMALL, then grow */
  char *buf = malloc(cap);
  int grew = 0;
  time_t deadline = time(NULL) + DEADLINE_S;
  if (fd < 0) fail(d, "codex_event_fd = %d", fd);
  while (!done(d)) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 1000) < 0 && errno != EINTR) {
      fail(d, "poll: %s", strerror(errno));
      break;
    }
    if (time(NULL) > deadline) {
      fail(d, "no turn/completed within %d s", DEADLINE_S);
      break;
    }
    for (;;) {
      size_t len = 0;
      CodexResult r = codex_next_event(d->rt, 0, buf, cap, &len);
      if (r == CODEX_RESULT_BUFFER_TOO_SMALL) {
        cap = len + 1;
        buf = realloc(buf, cap);
        grew++;
        continue;
      }
      if (r == CODEX_RESULT_TIMEOUT) break;
      if (r != CODEX_RESULT_OK) {
        char e[512];
        last_error(e, sizeof e);
        fail(d, "codex_next_event = %d: %s", (int)r, e);
        break;
      }
      if (strlen(buf) != len) fail(d, "event length %zu but strlen %zu", len, strlen(buf));
      handle(d, buf, len);
    }
  }
  free(buf);
  if (!grew) fail(d, "no event was ever larger than 64 bytes?");
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[2], "callback") && strcmp(argv[2], "poll"))) {
    fprintf(stderr, "usage: drive embedded|unix:///path callback|poll\n");
    return 2;
  }
  int poll_mode = strcmp(argv[2], "poll") == 0;
  struct drive *d = calloc(1, sizeof *d);
  pthread_mutex_init(&d->lock, NULL);
  pthread_cond_init(&d->changed, NULL);
  d->cwd = getenv("DRIVE_CWD");
  d->marker = getenv("DRIVE_MARKER");
  if (!d->cwd || !d->marker) {
    fprintf(stderr, "drive: set DRIVE_CWD and DRIVE_MARKER\n");
    return 2;
  }

  codex_runtime_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.endpoint = argv[1];
  o.codex_home = getenv("CODEX_HOME");
  o.cwd = d->cwd;
  o.worker_path = getenv("DRIVE_WORKER");
  o.client_name = "ffi_drive";
  o.client_version = "1.0.0";
  o.event_queue_cap = 64;
  if (poll_mode)
    o.flags = CODEX_OPEN_POLL;
  else
    o.on_event = on_event;
  o.userdata = d;
  o.free_userdata = free_drive;

  /* Held until the runtime and the first request id are stored: the
   * callback may start as soon as codex_runtime_open returns. */
  pthread_mutex_lock(&d->lock);
  codex_runtime *rt = NULL;
  CodexResult r = codex_runtime_open(&o, &rt);
  if (r != CODEX_RESULT_OK) {
    char e[1024];
    last_error(e, sizeof e);
    fprintf(stderr, "drive: codex_runtime_open = %d: %s\n", (int)r, e);
    pthread_mutex_unlock(&d->lock);
    free_drive(d); /* not taken on failure */
    return 1;
  }
  d->rt = rt;

  /* The initialize result: ask for its size, then read it. */
  size_t len = 0;
  r = codex_initialize_result(rt, NULL, 0, &len);
  if (r != CODEX_RESULT_BUFFER_TOO_SMALL || len == 0) fail(d, "initialize result size: %d", (int)r);
  char *info = malloc(len + 1);
  r = codex_initialize_result(rt, info, len + 1, &len);
  if (r != CODEX_RESULT_OK || !mj_get(mj_span_of(info, len), "userAgent").n)
    fail(d, "initialize result: %d %s", (int)r, info);
  else
    printf("drive: initialize result %s\n", info);
  free(info);

  char json[1024];
  snprintf(json, sizeof json,
           "{\"method\":\"thread/start\",\"params\":{\"cwd\":\"%s\","
           "\"approvalPolicy\":\"on-request\",\"sandbox\":\"workspace-write\"}}",
           d->cwd);
  send_request(d, json, &d->thread_req);
  if (d->thread_req > CODEX_FIRST_AUTO_ID)
    fail(d, "the assigned id %lld is not from the library's range", (long long)d->thread_req);
  pthread_mutex_unlock(&d->lock);

  if (poll_mode)
    poll_events(d);
  else
    wait_callbacks(d);

  /* d is freed by the library in codex_runtime_close. */
  r = codex_runtime_close(rt, 20000);
  if (r != CODEX_RESULT_OK) {
    char e[512];
    last_error(e, sizeof e);
    fprintf(stderr, "drive: codex_runtime_close = %d: %s\n", (int)r, e);
    return 1;
  }
  if (g_freed != 1) {
    fprintf(stderr, "drive: free_userdata ran %d times\n", g_freed);
    return 1;
  }
  if (codex_runtime_close(rt, 0) != CODEX_RESULT_CLOSED ||
      codex_send(rt, "{}", 2, NULL) != CODEX_RESULT_CLOSED) {
    fprintf(stderr, "drive: calls after close are not CLOSED\n");
    return 1;
  }
  if (g_freed != 1) {
    fprintf(stderr, "drive: free_userdata ran %d times\n", g_freed);
    return 1;
  }
  struct results *res = &g_results;
  if (!res->failed && !res->approvals) {
    res->failed = 1;
    snprintf(res->failure, sizeof res->failure, "no approval was asked");
  }
  if (!res->failed && !res->command_ok) {
    res->failed = 1;
    snprintf(res->failure, sizeof res->failure, "the command's item/completed never came");
  }
  if (res->failed) {
    fprintf(stderr, "drive: FAILED after %d events: %s\n", res->events, res->failure);
    return 1;
  }
  printf("drive: ok (%s, %s: %d events, %d approval)\n", argv[1], argv[2], res->events,
         res->approvals);
  return 0;
}
