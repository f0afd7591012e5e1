/*
 * A routing plugin in C: offers the conversation to the first candidate
 * (or, built with -DPICK_LAST, to the last one). It shows the shape of a C
 * plugin against switchboard_plugin.h: a static descriptor, one exported
 * function, answers malloc'd and given back through free_buffer.
 *
 * Build: cc -shared -fPIC -I plugins/sdk/include -o librouter.so router.c
 *
 * The request is scanned with a toy reader that finds the "id" keys after
 * "candidates" and does not handle escaped quotes in ids; a real plugin
 * should use a JSON library (cJSON, jansson, yyjson).
 */
#include <stdlib.h>
#include <string.h>

#include "switchboard_plugin.h"

#ifndef ROUTER_VERSION
#define ROUTER_VERSION "1.0.0"
#endif
#ifndef PICK_LAST
#define PICK_LAST 0
#endif

/* Hand `len` bytes of `text` to the host. */
static int32_t answer(sb_buffer *out, int32_t status, const char *text, size_t len) {
    if (out == NULL) return status;
    uint8_t *p = malloc(len ? len : 1);
    if (p == NULL) return SB_STATUS_ERROR;
    memcpy(p, text, len);
    out->ptr = p;
    out->len = len;
    out->cap = len;
    return status;
}

static int32_t fail(sb_buffer *out, const char *message) {
    return answer(out, SB_STATUS_ERROR, message, strlen(message));
}

static const char *skip_space(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* Find `needle` in [p, end). */
static const char *find(const char *p, const char *end, const char *needle) {
    size_t n = strlen(needle);
    for (; p + n <= end; p++) {
        if (memcmp(p, needle, n) == 0) return p;
    }
    return NULL;
}

static int32_t route(void *instance, const uint8_t *input, size_t input_len, sb_buffer *out) {
    (void)instance;
    const char *p = (const char *)input;
    const char *end = p + input_len;
    const char *chosen = NULL;
    size_t chosen_len = 0;

    p = find(p, end, "\"candidates\"");
    if (p == NULL) return answer(out, SB_STATUS_BAD_REQUEST, "no candidates", 13);
    while ((p = find(p, end, "\"id\"")) != NULL) {
        p = skip_space(p + 4, end);
        if (p >= end || *p != ':') continue;
        p = skip_space(p + 1, end);
        if (p >= end || *p != '"') continue;
        const char *start = ++p;
        while (p < end && *p != '"' && *p != '\\') p++;
        if (p >= end || *p == '\\') return fail(out, "unsupported agent id");
        if (chosen == NULL || PICK_LAST) {
            chosen = start;
            chosen_len = (size_t)(p - start);
        }
    }
    if (chosen == NULL) {
        static const char keep[] = "{\"keep_queued\":true}";
        return answer(out, SB_STATUS_OK, keep, sizeof keep - 1);
    }
    size_t len = chosen_len + 12; /* {"agent":"<id>"} */
    char *json = malloc(len);
    if (json == NULL) return fail(out, "out of memory");
    memcpy(json, "{\"agent\":\"", 10);
    memcpy(json + 10, chosen, chosen_len);
    memcpy(json + 10 + chosen_len, "\"}", 2);
    out->ptr = (uint8_t *)json;
    out->len = len;
    out->cap = len;
    return SB_STATUS_OK;
}

static void free_buffer(sb_buffer buffer) { free(buffer.ptr); }

static const sb_plugin_v1 DESCRIPTOR = {
    .abi_version = SB_ABI_VERSION,
    .struct_size = sizeof(sb_plugin_v1),
    .roles = SB_ROLE_ROUTING,
    .reserved = 0,
    .name = "c-router",
    .version = ROUTER_VERSION,
    .create = NULL,
    .destroy = NULL,
    .free_buffer = free_buffer,
    .route = route,
    .entry = NULL,
    .wrapup_reasons = NULL,
    .channel_verify = NULL,
    .channel_inbound = NULL,
    .channel_outbound = NULL,
};

const sb_plugin_v1 *switchboard_plugin(void) { return &DESCRIPTOR; }
