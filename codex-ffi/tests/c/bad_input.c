/* bad_input.c: misuse of the C ABI gets result codes, never a crash.
 *
 *   bad_input
 *
 * Environment: CODEX_HOME and BAD_CWD for the embedded runtimes it opens
 * (the worker binary comes from $CODEX_WORKER_PATH). Null and made-up
 * handles, invalid JSON, non-messages, unknown methods, calls after close,
 * a callback that re-enters the API (and tries to close its own runtime),
 * too-small buffers, a poll waiter woken by close, a server that hangs up
 * (a fake one, served by this program). Prints "bad_input: ok"
 * and exits 0 when every call returned what it should.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "codex.h"
#include "minijson.h"

static int failures;
static int checks;

static void check_code(int line, const char *what, CodexResult got, CodexResult want) {
  checks++;
  if (got == want) {
    if (want != CODEX_RESULT_OK) {
      /* Every failure leaves a readable message. */
      char e[512];
      size_t n = 0;
      if (codex_last_error(e, sizeof e, &n) != CODEX_RESULT_OK || n == 0 || strlen(e) != n) {
        fprintf(stderr, "bad_input.c:%d: %s: no last error text\n", line, what);
        failures++;
      }
    }
    return;
  }
  char e[512] = "";
  size_t n = 0;
  codex_last_error(e, sizeof e, &n);
  fprintf(stderr, "bad_input.c:%d: %s = %d, want %d (last error: %s)\n", line, what, (int)got,
          (int)want, e);
  failures++;
}
#define CHECK(expr, want) check_code(__LINE__, #expr, (expr), (want))

static void check_true(int line, const char *what, int ok) {
  checks++;
  if (!ok) {
    fprintf(stderr, "bad_input.c:%d: %s is false\n", line, what);
    failures++;
  }
}
#define TRUE(expr) check_true(__LINE__, #expr, (expr))

static int send_str(codex_runtime *rt, const char *json, int64_t *id) {
  return codex_send(rt, json, strlen(json), id);
}

/* The callback runtime's state, shared with its callback. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_changed = PTHREAD_COND_INITIALIZER;
static codex_runtime *g_rt;
static int g_in_callback, g_concurrent, g_events;
static int g_reentered;
static CodexResult g_close_in_cb, g_next_in_cb, g_send_in_cb, g_info_in_cb;
static int64_t g_cb_req, g_unknown_req;
static int g_cb_answered, g_unknown_error;
static int g_freed;
/* Written by codex_runtime_open before the first callback. */
static codex_runtime *g_cb_handle;
static int g_handle_missing;

static void on_event(void *userdata, codex_str m) {
  (void)userdata;
  if (!g_cb_handle) g_handle_missing = 1;
  pthread_mutex_lock(&g_lock);
  if (g_in_callback) g_concurrent = 1;
  g_in_callback = 1;
  g_events++;
  codex_runtime *rt = g_rt;
  mj_span msg = mj_span_of(m.ptr, m.len);
  if (!g_reentered && rt) {
    /* Re-entering the API from the callback. */
    size_t len = 0;
    char small[4];
    g_reentered = 1;
    g_close_in_cb = codex_runtime_close(rt, 0);
    g_next_in_cb = codex_next_event(rt, 0, small, sizeof small, &len);
    g_info_in_cb = codex_initialize_result(rt, NULL, 0, &len);
    g_send_in_cb = send_str(rt, "{\"method\":\"thread/loaded/list\",\"params\":{}}", &g_cb_req);
  }
  if (!mj_get(msg, "method").n) {
    long long id = mj_int(mj_get(msg, "id"));
    if (id == g_cb_req && mj_get(msg, "result").n) g_cb_answered = 1;
    if (id == g_unknown_req && mj_get(msg, "error").n) g_unknown_error = 1;
  }
  g_in_callback = 0;
  pthread_cond_broadcast(&g_changed);
  pthread_mutex_unlock(&g_lock);
}

static void count_free(void *userdata) {
  if (userdata == (void *)&g_freed) g_freed++;
}

static codex_runtime_options base_options(void) {
  codex_runtime_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.codex_home = getenv("CODEX_HOME");
  o.cwd = getenv("BAD_CWD");
  o.client_name = "ffi_bad_input";
  o.userdata = &g_freed;
  o.free_userdata = count_free;
  return o;
}

static void bad_opens(void) {
  codex_runtime *rt = NULL;
  codex_runtime_options o = base_options();
  o.on_event = on_event;
  CHECK(codex_runtime_open(NULL, &rt), CODEX_RESULT_INVALID_ARGUMENT);
  CHECK(codex_runtime_open(&o, NULL), CODEX_RESULT_INVALID_ARGUMENT);

  codex_runtime_options x = o;
  x.struct_size = 0;
  CHECK(codex_runtime_open(&x, &rt), CODEX_RESULT_INVALID_ARGUMENT);
  x = o;
  x.on_event = NULL;
  CHECK(codex_runtime_open(&x, &rt), CODEX_RESULT_INVALID_ARGUMENT);
  x = o;
  x.flags = CODEX_OPEN_POLL;
  CHECK(codex_runtime_open(&x, &rt), CODEX_RESULT_INVALID_ARGUMENT);
  x = o;
  x.flags = CODEX_OPEN_POLL;
  x.on_event = NULL;
  x.on_closed = count_free;
  CHECK(codex_runtime_open(&x, &rt), CODEX_RESULT_INVALID_ARGUMENT);
  x = o;
  x.flags = 0x80;
  CHECK(codex_runtime_open(&x, &rt), CODEX_RESULT_INVALID_ARGUMENT);
  x = o;
  x.event_queue_cap = 0xffffffffu;
  CHECK(codex_runtime_open(&x, &rt), CODEX_RESULT_INVALID_ARGUMENT);
  x = o;
  x.endpoint = "ftp://example";
  CHECK(codex_runtime_open(&x, &rt), CODEX_RESULT_INVALID_ARGUMENT);
  x = o;
  x.endpoint = "unix://";
  CHECK(codex_runtime_open(&x, &rt), CODEX_RESULT_INVALID_ARGUMENT);
  x = o;
  x.codex_home = "\xff\xfe";
  CHECK(codex_runtime_open(&x, &rt), CODEX_RESULT_INVALID_ARGUMENT);
  x = o;
  x.endpoint = "unix:///nonexistent/codexd.sock";
  CHECK(codex_runtime_open(&x, &rt), CODEX_RESULT_IO);
  x = o;
  x.worker_path = "/nonexistent/codex";
  CHECK(codex_runtime_open(&x, &rt), CODEX_RESULT_WORKER_NOT_FOUND);
  TRUE(rt == NULL);
  TRUE(g_freed == 0); /* failed opens never take the userdata */
}

static void bad_handles(void) {
  codex_runtime *made_up[] = {NULL, (codex_runtime *)(uintptr_t)0x1234,
                              (codex_runtime *)(uintptr_t)(1u << 20)};
  for (size_t i = 0; i < sizeof made_up / sizeof *made_up; i++) {
    codex_runtime *rt = made_up[i];
    char buf[16];
    size_t len = 0;
    int64_t id = 0;
    CHECK(send_str(rt, "{\"method\":\"thread/list\",\"params\":{}}", &id),
          CODEX_RESULT_INVALID_ARGUMENT);
    CHECK(codex_respond(rt, "1", "{}"), CODEX_RESULT_INVALID_ARGUMENT);
    CHECK(codex_next_event(rt, 0, buf, sizeof buf, &len), CODEX_RESULT_INVALID_ARGUMENT);
    CHECK(codex_initialize_result(rt, buf, sizeof buf, &len), CODEX_RESULT_INVALID_ARGUMENT);
    TRUE(codex_event_fd(rt) == -1);
    CHECK(codex_runtime_close(rt, 0), CODEX_RESULT_INVALID_ARGUMENT);
  }
}

static void last_error_buffers(void) {
  codex_runtime *rt = NULL;
  CHECK(codex_runtime_open(NULL, &rt), CODEX_RESULT_INVALID_ARGUMENT);
  size_t len = 0, full = 0;
  char buf[256];
  CHECK(codex_last_error(NULL, 0, &full), CODEX_RESULT_BUFFER_TOO_SMALL);
  TRUE(full > 4);
  memset(buf, 'x', sizeof buf);
  CHECK(codex_last_error(buf, 4, &len), CODEX_RESULT_BUFFER_TOO_SMALL);
  TRUE(len == full && strlen(buf) == 3);
  CHECK(codex_last_error(NULL, 5, &len), CODEX_RESULT_INVALID_ARGUMENT);
  CHECK(codex_last_error(buf, sizeof buf, &len), CODEX_RESULT_OK);
  TRUE(len == full && strlen(buf) == full);
  TRUE(codex_version() != NULL && strlen(codex_version()) > 0);
}

static void wait_for(int *flag) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 300;
  pthread_mutex_lock(&g_lock);
  while (!*flag && pthread_cond_timedwait(&g_changed, &g_lock, &until) == 0) {
  }
  pthread_mutex_unlock(&g_lock);
}

static void bad_messages(codex_runtime *rt) {
  int64_t id = 7;
  static const char *const not_messages[] = {
      "{nope",
      "[1]",
      "42",
      "\"text\"",
      "{}",
      "{\"method\":5}",
      "{\"id\":1.5,\"method\":\"thread/list\"}",
      "{\"id\":null,\"method\":\"thread/list\"}",
      "{\"id\":1}",
      "{\"result\":{}}",
      "{\"id\":1,\"method\":\"thread/list\"} trailing",
  };
  for (size_t i = 0; i < sizeof not_messages / sizeof *not_messages; i++)
    CHECK(send_str(rt, not_messages[i], &id), CODEX_RESULT_INVALID_ARGUMENT);
  CHECK(codex_send(rt, NULL, 10, &id), CODEX_RESULT_INVALID_ARGUMENT);
  CHECK(codex_send(rt, "{}", 0, &id), CODEX_RESULT_INVALID_ARGUMENT);
  CHECK(codex_send(rt, "\xff\xfe{}", 4, &id), CODEX_RESULT_INVALID_ARGUMENT);
  TRUE(id == 7); /* untouched by failures */

  CHECK(codex_respond(rt, NULL, "{}"), CODEX_RESULT_INVALID_ARGUMENT);
  CHECK(codex_respond(rt, "1", NULL), CODEX_RESULT_INVALID_ARGUMENT);
  CHECK(codex_respond(rt, "{", "{}"), CODEX_RESULT_INVALID_ARGUMENT);
  CHECK(codex_respond(rt, "[1]", "{}"), CODEX_RESULT_INVALID_ARGUMENT);
  CHECK(codex_respond(rt, "1.5", "{}"), CODEX_RESULT_INVALID_ARGUMENT);
  CHECK(codex_respond(rt, "1", "{bad"), CODEX_RESULT_INVALID_ARGUMENT);
  /* A well-formed answer to a request nobody asked: sent, then ignored. */
  CHECK(codex_respond(rt, "424242", "{\"decision\":\"accept\"}"), CODEX_RESULT_OK);

  /* A notification (no id wanted) and a request with the host's own id. */
  CHECK(codex_send(rt, "{\"method\":\"initialized\"}", 24, NULL), CODEX_RESULT_OK);
  id = 0;
  CHECK(send_str(rt, "{\"id\":99,\"method\":\"thread/loaded/list\",\"params\":{}}", &id),
        CODEX_RESULT_OK);
  TRUE(id == 99);

  /* An unknown method is the server's error answer, as an event. */
  pthread_mutex_lock(&g_lock);
  CHECK(send_str(rt, "{\"method\":\"no/such/method\",\"params\":{}}", &g_unknown_req),
        CODEX_RESULT_OK);
  TRUE(g_unknown_req <= CODEX_FIRST_AUTO_ID);
  pthread_mutex_unlock(&g_lock);
  wait_for(&g_unknown_error);
  TRUE(g_unknown_error);
}

static void callback_runtime(void) {
  codex_runtime_options o = base_options();
  o.on_event = on_event;
  pthread_mutex_lock(&g_lock);
  CodexResult r = codex_runtime_open(&o, &g_cb_handle);
  codex_runtime *rt = g_cb_handle;
  CHECK(r, CODEX_RESULT_OK);
  if (r != CODEX_RESULT_OK) {
    pthread_mutex_unlock(&g_lock);
    return;
  }
  g_rt = rt;
  pthread_mutex_unlock(&g_lock);

  /* The callback re-enters on the first event. */
  wait_for(&g_cb_answered);
  pthread_mutex_lock(&g_lock);
  TRUE(g_reentered);
  TRUE(!g_handle_missing); /* no callback before *out was stored */
  CHECK(g_close_in_cb, CODEX_RESULT_INVALID_STATE);
  CHECK(g_next_in_cb, CODEX_RESULT_INVALID_STATE);
  CHECK(g_info_in_cb, CODEX_RESULT_BUFFER_TOO_SMALL);
  CHECK(g_send_in_cb, CODEX_RESULT_OK);
  TRUE(g_cb_answered);
  pthread_mutex_unlock(&g_lock);

  bad_messages(rt);

  char buf[16];
  size_t len = 0;
  CHECK(codex_next_event(rt, 0, buf, sizeof buf, &len), CODEX_RESULT_INVALID_STATE);
  TRUE(codex_event_fd(rt) == -1);

  CHECK(codex_runtime_close(rt, 10000), CODEX_RESULT_OK);
  TRUE(g_freed == 1);
  TRUE(!g_concurrent);
  /* Everything after close: CLOSED, never a crash or a second free. */
  int64_t id = 0;
  CHECK(codex_runtime_close(rt, 0), CODEX_RESULT_CLOSED);
  CHECK(send_str(rt, "{\"method\":\"thread/list\",\"params\":{}}", &id), CODEX_RESULT_CLOSED);
  CHECK(codex_respond(rt, "1", "{}"), CODEX_RESULT_CLOSED);
  CHECK(codex_next_event(rt, 0, buf, sizeof buf, &len), CODEX_RESULT_CLOSED);
  CHECK(codex_initialize_result(rt, buf, sizeof buf, &len), CODEX_RESULT_CLOSED);
  TRUE(codex_event_fd(rt) == -1);
  TRUE(g_freed == 1);
}

struct waiter {
  codex_runtime *rt;
  CodexResult last;
  int events;
};

static void *wait_forever(void *arg) {
  struct waiter *w = arg;
  char buf[65536];
  size_t len = 0;
  for (;;) {
    w->last = codex_next_event(w->rt, -1, buf, sizeof buf, &len);
    if (w->last != CODEX_RESULT_OK) break;
    w->events++;
  }
  return NULL;
}

static void poll_runtime(void) {
  codex_runtime_options o = base_options();
  o.flags = CODEX_OPEN_POLL;
  o.event_queue_cap = 2;
  codex_runtime *rt = NULL;
  CodexResult r = codex_runtime_open(&o, &rt);
  CHECK(r, CODEX_RESULT_OK);
  if (r != CODEX_RESULT_OK) return;
  TRUE(codex_event_fd(rt) >= 0);

  char buf[8];
  size_t len = 0;
  int64_t id = 0;
  CHECK(send_str(rt, "{\"method\":\"thread/loaded/list\",\"params\":{}}", &id), CODEX_RESULT_OK);
  /* Waits for an event, which cannot fit: it stays queued, nothing written. */
  CHECK(codex_next_event(rt, 60000, NULL, 0, &len), CODEX_RESULT_BUFFER_TOO_SMALL);
  TRUE(len > sizeof buf);
  size_t needed = len;
  memset(buf, 'x', sizeof buf);
  CHECK(codex_next_event(rt, 0, buf, sizeof buf, &len), CODEX_RESULT_BUFFER_TOO_SMALL);
  TRUE(len == needed && buf[0] == 'x');
  CHECK(codex_next_event(rt, 0, buf, sizeof buf, NULL), CODEX_RESULT_INVALID_ARGUMENT);
  CHECK(codex_next_event(rt, 0, NULL, 10, &len), CODEX_RESULT_INVALID_ARGUMENT);
  char *big = malloc(needed + 1);
  CHECK(codex_next_event(rt, 0, big, needed + 1, &len), CODEX_RESULT_OK);
  TRUE(len == needed && strlen(big) == needed);
  free(big);
  /* Drain the rest; then nothing: TIMEOUT. */
  char drain[65536];
  int got_answer = 0;
  for (int i = 0; i < 100 && !got_answer; i++) {
    r = codex_next_event(rt, 30000, drain, sizeof drain, &len);
    if (r != CODEX_RESULT_OK) break;
    mj_span m = mj_span_of(drain, len);
    if (!mj_get(m, "method").n && mj_int(mj_get(m, "id")) == id) got_answer = 1;
  }
  TRUE(got_answer);
  while (codex_next_event(rt, 200, drain, sizeof drain, &len) == CODEX_RESULT_OK) {
  }
  CHECK(codex_next_event(rt, 0, drain, sizeof drain, &len), CODEX_RESULT_TIMEOUT);

  /* A waiter with no time limit wakes when another thread closes. */
  struct waiter w = {rt, CODEX_RESULT_OK, 0};
  pthread_t t;
  pthread_create(&t, NULL, wait_forever, &w);
  struct timespec pause = {0, 200 * 1000 * 1000};
  nanosleep(&pause, NULL);
  CHECK(codex_runtime_close(rt, 10000), CODEX_RESULT_OK);
  pthread_join(t, NULL);
  CHECK(w.last, CODEX_RESULT_CLOSED);
  TRUE(g_freed == 2);
  CHECK(codex_next_event(rt, 0, drain, sizeof drain, &len), CODEX_RESULT_CLOSED);
  TRUE(codex_event_fd(rt) == -1);
}


/* A fake app server on a unix socket: answers initialize, sends one
 * notification, hangs up. */
static int read_line(int fd, char *buf, size_t cap) {
  size_t n = 0;
  while (n + 1 < cap) {
    char c;
    if (read(fd, &c, 1) != 1) return -1;
    if (c == '\n') break;
    buf[n++] = c;
  }
  buf[n] = 0;
  return (int)n;
}

static void write_str(int fd, const char *s) {
  size_t n = strlen(s);
  while (n) {
    ssize_t w = write(fd, s, n);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static void *fake_server(void *arg) {
  int listener = *(int *)arg;
  int c = accept(listener, NULL, NULL);
  if (c < 0) return NULL;
  char line[4096];
  if (read_line(c, line, sizeof line) > 0) {
    mj_span id = mj_get(mj_span_of(line, strlen(line)), "id");
    char reply[256];
    snprintf(reply, sizeof reply, "{\"id\":%.*s,\"result\":{\"userAgent\":\"fake/1\"}}\n",
             (int)id.n, id.p);
    write_str(c, reply);
    read_line(c, line, sizeof line); /* initialized */
    write_str(c, "{\"method\":\"warning\",\"params\":{\"message\":\"bye\"}}\n");
  }
  close(c);
  return NULL;
}

static int g_fake_events, g_closed_calls, g_closed_early;

static void on_fake_event(void *userdata, codex_str m) {
  (void)userdata;
  pthread_mutex_lock(&g_lock);
  if (mj_contains(mj_span_of(m.ptr, m.len), "bye")) g_fake_events++;
  pthread_cond_broadcast(&g_changed);
  pthread_mutex_unlock(&g_lock);
}

static void on_fake_closed(void *userdata) {
  (void)userdata;
  pthread_mutex_lock(&g_lock);
  if (!g_fake_events) g_closed_early = 1;
  g_closed_calls++;
  pthread_cond_broadcast(&g_changed);
  pthread_mutex_unlock(&g_lock);
}

/* The server ends the connection: the callback host is told once, after
 * the last event; the poll host gets the event, then CLOSED. */
static void server_hangs_up(int poll_mode) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s/fake.sock", getenv("BAD_CWD"));
  unlink(addr.sun_path);
  int listener = socket(AF_UNIX, SOCK_STREAM, 0);
  TRUE(listener >= 0);
  TRUE(bind(listener, (struct sockaddr *)&addr, sizeof addr) == 0);
  TRUE(listen(listener, 1) == 0);
  pthread_t t;
  pthread_create(&t, NULL, fake_server, &listener);

  char endpoint[sizeof addr.sun_path + 16];
  snprintf(endpoint, sizeof endpoint, "unix://%s", addr.sun_path);
  codex_runtime_options o = base_options();
  o.endpoint = endpoint;
  if (poll_mode) {
    o.flags = CODEX_OPEN_POLL;
  } else {
    o.on_event = on_fake_event;
    o.on_closed = on_fake_closed;
  }
  int freed = g_freed;
  codex_runtime *rt = NULL;
  CodexResult r = codex_runtime_open(&o, &rt);
  CHECK(r, CODEX_RESULT_OK);
  if (r == CODEX_RESULT_OK) {
    char buf[4096];
    size_t len = 0;
    CHECK(codex_initialize_result(rt, buf, sizeof buf, &len), CODEX_RESULT_OK);
    TRUE(strcmp(buf, "{\"userAgent\":\"fake/1\"}") == 0);
    if (poll_mode) {
      CHECK(codex_next_event(rt, 30000, buf, sizeof buf, &len), CODEX_RESULT_OK);
      TRUE(mj_contains(mj_span_of(buf, len), "bye"));
      CHECK(codex_next_event(rt, 30000, buf, sizeof buf, &len), CODEX_RESULT_CLOSED);
      struct pollfd p = {codex_event_fd(rt), POLLIN, 0};
      TRUE(poll(&p, 1, 0) == 1); /* the end is readable */
    } else {
      wait_for(&g_closed_calls);
      pthread_mutex_lock(&g_lock);
      TRUE(g_fake_events == 1 && g_closed_calls == 1 && !g_closed_early);
      pthread_mutex_unlock(&g_lock);
    }
    int64_t id = 0;
    CHECK(send_str(rt, "{\"method\":\"thread/list\",\"params\":{}}", &id), CODEX_RESULT_CLOSED);
    CHECK(codex_respond(rt, "1", "{}"), CODEX_RESULT_CLOSED);
    CHECK(codex_runtime_close(rt, 1000), CODEX_RESULT_OK);
    TRUE(g_freed == freed + 1);
    TRUE(g_closed_calls == 1); /* poll mode never calls it; close does not */
  }
  pthread_join(t, NULL);
  close(listener);
  unlink(addr.sun_path);
}

int main(void) {
  if (!getenv("CODEX_HOME") || !getenv("BAD_CWD")) {
    fprintf(stderr, "bad_input: set CODEX_HOME and BAD_CWD\n");
    return 2;
  }
  bad_opens();
  bad_handles();
  last_error_buffers();
  callback_runtime();
  poll_runtime();
  server_hangs_up(0);
  server_hangs_up(1);
  if (failures) {
    fprintf(stderr, "bad_input: %d of %d checks failed\n", failures, checks);
    return 1;
  }
  printf("bad_input: ok (%d checks)\n", checks);
  return 0;
}
