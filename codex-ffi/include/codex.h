/* C ABI of codex-ffi. Keep in sync with codex-ffi/src/lib.rs. */
#ifndef CODEX_H
#define CODEX_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum CodexResult {
  CODEX_RESULT_OK = 0,
  CODEX_RESULT_INVALID_ARGUMENT = 1,
  CODEX_RESULT_INVALID_CONFIG = 2,
  CODEX_RESULT_BUFFER_TOO_SMALL = 3,
  CODEX_RESULT_PANIC = 100,
} CodexResult;

/* The library version; a static string, never freed. */
const char *codex_version(void);

/* Validates $codex_home/config.toml. On CODEX_RESULT_INVALID_CONFIG a
 * NUL-terminated message is written to msg (msg_len bytes at most). */
CodexResult codex_config_check(const char *codex_home, char *msg, size_t msg_len);

#ifdef __cplusplus
}
#endif

#endif /* CODEX_H */
