/*
 * switchboard_plugin.h: the C ABI of Switchboard dynamic plugins, version 1.
 *
 * Mirrors plugins/sdk/src/abi.rs (crate switchboard-plugin); the layout
 * is pinned by tests on both sides, and core/tests/native_c.rs builds a C
 * plugin against this header and loads it through the host.
 *
 * A plugin is a shared library exporting one function,
 *
 *     const sb_plugin_v1 *switchboard_plugin(void);
 *
 * returning a pointer to a static, immutable descriptor. Every call takes a
 * JSON request (bytes + length, not NUL-terminated) and fills an output
 * buffer allocated by the plugin with the JSON answer (or, on a non-zero
 * status, a UTF-8 error message); the host copies it and gives it back
 * through free_buffer. The JSON schemas are in docs/plugins.md.
 *
 * Rules: calls on one instance may come from several threads at once; the
 * library is never unloaded (no dlclose), so keep no state that needs it;
 * never let an exception or a longjmp cross a function below. Native
 * plugins are trusted code: a crash (abort, segfault) takes the host down.
 */
#ifndef SWITCHBOARD_PLUGIN_H
#define SWITCHBOARD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SB_ABI_VERSION 1u

/* Roles (bit flags of sb_plugin_v1.roles). */
#define SB_ROLE_ROUTING 1u /* route (required), entry (optional) */
#define SB_ROLE_WRAPUP 2u  /* wrapup_reasons (required) */
#define SB_ROLE_CHANNEL 4u /* channel_inbound, channel_outbound (required), channel_verify (optional) */
#define SB_ROLE_RESPONSES 8u /* responses (required; appended to the descriptor) */

/* Status codes returned by every call. */
#define SB_STATUS_OK 0          /* output holds the answer JSON */
#define SB_STATUS_ERROR 1       /* output may hold a UTF-8 message */
#define SB_STATUS_BAD_REQUEST 2 /* the request could not be read */
#define SB_STATUS_PANIC 3       /* a panic/exception was caught inside */

/* Bytes handed from the plugin to the host. The host passes {NULL, 0, 0};
 * C plugins usually malloc ptr and set cap = len. */
typedef struct sb_buffer {
    uint8_t *ptr;
    size_t len;
    size_t cap;
} sb_buffer;

typedef int32_t (*sb_create_fn)(const uint8_t *settings, size_t settings_len,
                                void **instance, sb_buffer *error);
typedef void (*sb_destroy_fn)(void *instance);
typedef void (*sb_free_fn)(sb_buffer buffer);
typedef int32_t (*sb_json_fn)(void *instance, const uint8_t *input,
                              size_t input_len, sb_buffer *output);

/* abi_version and struct_size come first in every version of the ABI. New
 * fields are only ever appended (struct_size tells the host which ones a
 * plugin has); anything else bumps SB_ABI_VERSION. */
typedef struct sb_plugin_v1 {
    uint32_t abi_version; /* SB_ABI_VERSION */
    uint32_t struct_size; /* sizeof(sb_plugin_v1) */
    uint32_t roles;       /* SB_ROLE_* */
    uint32_t reserved;    /* 0 */
    const char *name;     /* NUL-terminated UTF-8 */
    const char *version;  /* NUL-terminated UTF-8 */
    sb_create_fn create;  /* optional: NULL gives a NULL instance */
    sb_destroy_fn destroy; /* optional */
    sb_free_fn free_buffer; /* required */
    sb_json_fn route;            /* SB_ROLE_ROUTING */
    sb_json_fn entry;            /* optional */
    sb_json_fn wrapup_reasons;   /* SB_ROLE_WRAPUP */
    sb_json_fn channel_verify;   /* optional */
    sb_json_fn channel_inbound;  /* SB_ROLE_CHANNEL */
    sb_json_fn channel_outbound; /* SB_ROLE_CHANNEL */
    sb_json_fn responses;        /* SB_ROLE_RESPONSES (appended) */
} sb_plugin_v1;

/* The one exported symbol. */
const sb_plugin_v1 *switchboard_plugin(void);

#ifdef __cplusplus
}
#endif

#endif /* SWITCHBOARD_PLUGIN_H */
