/* A routing plugin built against the version 1 header: its descriptor as
 * that header declared it (104 bytes, JSON `route` only). The host speaks
 * version 2 and must refuse it; used by core/tests/native_c.rs and
 * tests/e2e_plugins.rs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct { uint8_t *ptr; size_t len; size_t cap; } sb_buffer;
typedef int32_t (*sb_json_fn)(void *, const uint8_t *, size_t, sb_buffer *);

typedef struct sb_plugin_v1 {
    uint32_t abi_version;
    uint32_t struct_size;
    uint32_t roles;
    uint32_t reserved;
    const char *name;
    const char *version;
    void *create;
    void *destroy;
    void (*free_buffer)(sb_buffer);
    sb_json_fn route;
    sb_json_fn entry;
    sb_json_fn wrapup_reasons;
    sb_json_fn channel_verify;
    sb_json_fn channel_inbound;
    sb_json_fn channel_outbound;
} sb_plugin_v1;

static int32_t route(void *instance, const uint8_t *input, size_t len, sb_buffer *out) {
    (void)instance; (void)input; (void)len;
    const char *text = "{\"agent\": \"agent0\"}";
    size_t n = strlen(text);
    out->ptr = malloc(n);
    if (out->ptr == NULL) return 1;
    memcpy(out->ptr, text, n);
    out->len = n;
    out->cap = n;
    return 0;
}

static void free_buffer(sb_buffer b) { free(b.ptr); }

static const sb_plugin_v1 DESCRIPTOR = {
    .abi_version = 1,
    .struct_size = sizeof(sb_plugin_v1),
    .roles = 1,
    .name = "old-router",
    .version = "1.0.0",
    .free_buffer = free_buffer,
    .route = route,
};

const sb_plugin_v1 *switchboard_plugin(void) { return &DESCRIPTOR; }
