/*
 * A routing plugin in C: offers the conversation to the first candidate
 * (or, built with -DPICK_LAST, to the last one). It shows the shape of a C
 * plugin against switchboard_plugin.h (ABI version 2): a static
 * descriptor, one exported function, and a decision over the agent table
 * by slots (route_agents): no JSON to read on the hot path.
 *
 * Build: cc -shared -fPIC -I plugins/sdk/include -o librouter.so router.c
 *
 * This router needs nothing but the candidates' order, so it keeps no
 * agent table and leaves `agents` NULL; a router that looks at skills or
 * idle times would fill `agents` (JSON, rare) and keep a table by slot,
 * applying `input->changed` at each decision.
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

static int32_t fail(sb_route_output *out, const char *message) {
    size_t len = strlen(message);
    uint8_t *p = malloc(len ? len : 1);
    if (p != NULL) {
        memcpy(p, message, len);
        out->error.ptr = p;
        out->error.len = len;
        out->error.cap = len;
    }
    return SB_STATUS_ERROR;
}

static int32_t route_agents(void *instance, const sb_route_input *input, sb_route_output *out) {
    (void)instance;
    if (input == NULL || out == NULL) return SB_STATUS_BAD_REQUEST;
    if (input->struct_size < sizeof(sb_route_input)) return fail(out, "route input too short");
    if (input->candidates_len == 0) {
        out->kind = SB_ROUTE_KEEP_QUEUED;
        out->len = 0;
        return SB_STATUS_OK;
    }
    if (out->capacity < 1) return fail(out, "no room for an answer");
    size_t pick = PICK_LAST ? input->candidates_len - 1 : 0;
    out->slots[0] = input->candidates[pick];
    out->len = 1;
    out->kind = SB_ROUTE_AGENT;
    return SB_STATUS_OK;
}

static void free_buffer(sb_buffer buffer) { free(buffer.ptr); }

static const sb_plugin_v2 DESCRIPTOR = {
    .abi_version = SB_ABI_VERSION,
    .struct_size = sizeof(sb_plugin_v2),
    .roles = SB_ROLE_ROUTING,
    .reserved = 0,
    .name = "c-router",
    .version = ROUTER_VERSION,
    .create = NULL,
    .destroy = NULL,
    .free_buffer = free_buffer,
    .route = NULL,
    .entry = NULL,
    .wrapup_reasons = NULL,
    .channel_verify = NULL,
    .channel_inbound = NULL,
    .channel_outbound = NULL,
    .agents = NULL,
    .route_agents = route_agents,
};

const sb_plugin_v2 *switchboard_plugin(void) { return &DESCRIPTOR; }
