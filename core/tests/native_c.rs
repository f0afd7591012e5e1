//! The native host with plugins written in C against
//! `plugins/sdk/include/switchboard_plugin.h`, compiled here with the
//! system `cc`: the example router routes, a rebuilt library reloads while
//! the old one stays mapped, and broken libraries are refused or contained
//! with clear errors while the host keeps serving.

mod native_support;

use native_support::*;
use std::path::{Path, PathBuf};
use switchboard_core::native::{self, ErrorKind, NativePlugin, NativeSpec};
use switchboard_core::routing::{RouteDecision, RoutingPolicy};
use switchboard_plugin::ROLE_ROUTING;

fn router_source() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/c-example/router.c")
}

fn spec(path: &Path, cache: &Path) -> NativeSpec {
    let mut s = NativeSpec::new("t", path, cache);
    s.roles = ROLE_ROUTING;
    s
}

/// `agent1` is the longest idle; the C router picks the first (`agent0`)
/// or, built with PICK_LAST, the last (`agent2`).
fn agents() -> Agents {
    Agents::new(&[
        ("agent0", 30, &[]),
        ("agent1", 10, &[]),
        ("agent2", 20, &[]),
    ])
}

fn route(p: &dyn RoutingPolicy) -> RouteDecision {
    let a = agents();
    let cad = cad(&[]);
    p.route(&view("support", &cad), &a.candidates())
}

#[test]
fn the_c_example_routes_through_the_host() {
    let dir = scratch("c-route");
    let lib = dir.join("librouter.so");
    cc(&router_source(), &lib, &[]);
    let p = NativePlugin::load(&spec(&lib, &dir), 3, 0).expect("load");
    assert_eq!(p.info().name, "c-router");
    assert_eq!(p.info().version, "1.0.0");
    assert_eq!(p.info().abi_version, 2);
    // Content-addressed: the same bytes loaded by another test share its copy.
    let copy = &p.info().loaded_from;
    assert!(
        copy.parent().is_some_and(|d| d.ends_with("plugins-cache")),
        "{copy:?}"
    );
    assert!(copy
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("librouter-")));
    assert_eq!(route(&p), RouteDecision::Agent("agent0".into()));
    assert_eq!(RoutingPolicy::generation(&p), 3);
    // No entry function: the channel's default queue.
    let cad = cad(&[]);
    assert_eq!(p.entry(&view("support", &cad)), None);
    let report = p.report();
    assert_eq!(report.len(), 1);
    assert_eq!(
        (report[0].role, report[0].calls, report[0].errors),
        ("routing", 1, 0)
    );
    assert_eq!(report[0].file, lib.display().to_string());
}

#[test]
fn a_rebuilt_library_reloads_while_the_old_one_stays_mapped() {
    let dir = scratch("c-reload");
    let lib = dir.join("librouter.so");
    cc(&router_source(), &lib, &[]);
    let old = NativePlugin::load(&spec(&lib, &dir), 1, 0).expect("load v1");
    // Rebuilt in place, as a deploy would.
    cc(
        &router_source(),
        &lib,
        &["PICK_LAST=1", "ROUTER_VERSION=\"2.0.0\""],
    );
    let new = NativePlugin::load(&spec(&lib, &dir), 2, 0).expect("load v2");

    assert_eq!(new.info().version, "2.0.0");
    assert_ne!(old.info().loaded_from, new.info().loaded_from);
    assert_eq!(route(&new), RouteDecision::Agent("agent2".into()));
    // Calls in flight on the old generation still run its code.
    assert_eq!(route(&old), RouteDecision::Agent("agent0".into()));
    let mapped = native::mapped_libraries();
    assert!(mapped.contains(&old.info().loaded_from));
    assert!(mapped.contains(&new.info().loaded_from));

    // Dropping the old generation does not unmap it; the new one serves on.
    let old_copy = old.info().loaded_from.clone();
    drop(old);
    assert!(native::mapped_libraries().contains(&old_copy));
    assert_eq!(route(&new), RouteDecision::Agent("agent2".into()));

    // Loading the same bytes again reuses the mapped copy.
    let again = NativePlugin::load(&spec(&lib, &dir), 3, 0).expect("load v2 again");
    assert_eq!(again.info().loaded_from, new.info().loaded_from);
}

/// A C plugin that is broken in the way MODE selects.
const BROKEN: &str = r#"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "switchboard_plugin.h"

#define ABI3 1
#define NO_SYMBOL 2
#define SMALL 3
#define NULL_ROUTE 4
#define GARBAGE 5
#define WRONG_SHAPE 6
#define ERROR 7
#define NULL_NAME 8
#define UNKNOWN_ROLE 9
/* Built before `responses` was appended to the descriptor. */
#define BEFORE_RESPONSES 10
#define BEFORE_RESPONSES_CLAIMING_THEM 11

static int32_t reply(sb_buffer *out, int32_t status, const char *text) {
    size_t len = strlen(text);
    out->ptr = malloc(len);
    memcpy(out->ptr, text, len);
    out->len = len;
    out->cap = len;
    return status;
}

__attribute__((unused)) static int32_t route(void *instance, const uint8_t *input, size_t len, sb_buffer *out) {
    (void)instance; (void)input; (void)len;
#if MODE == GARBAGE
    return reply(out, SB_STATUS_OK, "{\"agent\": \"agent0\"");
#elif MODE == WRONG_SHAPE
    return reply(out, SB_STATUS_OK, "{\"agent\": 42}");
#elif MODE == ERROR
    return reply(out, SB_STATUS_ERROR, "database unreachable");
#else
    return reply(out, SB_STATUS_OK, "{\"agent\": \"agent0\"}");
#endif
}

static void free_buffer(sb_buffer b) { free(b.ptr); }

static const sb_plugin_v2 DESCRIPTOR = {
#if MODE == ABI3
    .abi_version = 3,
#else
    .abi_version = SB_ABI_VERSION,
#endif
#if MODE == SMALL
    .struct_size = 16,
#elif MODE == BEFORE_RESPONSES || MODE == BEFORE_RESPONSES_CLAIMING_THEM
    .struct_size = offsetof(sb_plugin_v2, responses),
#else
    .struct_size = sizeof(sb_plugin_v2),
#endif
#if MODE == UNKNOWN_ROLE
    .roles = SB_ROLE_ROUTING | 64u,
#elif MODE == BEFORE_RESPONSES_CLAIMING_THEM
    .roles = SB_ROLE_ROUTING | SB_ROLE_RESPONSES,
#else
    .roles = SB_ROLE_ROUTING,
#endif
#if MODE == NULL_NAME
    .name = NULL,
#else
    .name = "broken",
#endif
    .version = "0.0.1",
    .free_buffer = free_buffer,
#if MODE != NULL_ROUTE
    .route = route,
#endif
};

#if MODE == NO_SYMBOL
const sb_plugin_v2 *switchboard_plugin_v0(void) { return &DESCRIPTOR; }
#else
const sb_plugin_v2 *switchboard_plugin(void) { return &DESCRIPTOR; }
#endif
"#;

/// Whether an error is of the expected kind.
type KindCheck = Box<dyn Fn(&ErrorKind) -> bool>;

fn broken(dir: &Path, mode: &str) -> PathBuf {
    cc_source(
        dir,
        &format!("broken_{}", mode.to_lowercase()),
        BROKEN,
        &[&format!("MODE={mode}")],
    )
}

#[test]
fn broken_libraries_are_refused_naming_the_file() {
    let dir = scratch("c-refused");
    let good_lib = dir.join("librouter.so");
    cc(&router_source(), &good_lib, &[]);
    let good = NativePlugin::load(&spec(&good_lib, &dir), 1, 0).expect("load the good one");

    let not_a_library = dir.join("libtext.so");
    std::fs::write(&not_a_library, "hello").expect("write");
    let cases: Vec<(PathBuf, KindCheck, &str)> = vec![
        (
            broken(&dir, "ABI3"),
            Box::new(|k| {
                *k == ErrorKind::AbiVersion {
                    found: 3,
                    expected: 2,
                }
            }),
            "the plugin speaks ABI version 3; this host speaks version 2",
        ),
        (
            broken(&dir, "NO_SYMBOL"),
            Box::new(|k| *k == ErrorKind::MissingSymbol),
            "no `switchboard_plugin` symbol",
        ),
        (
            broken(&dir, "SMALL"),
            Box::new(|k| matches!(k, ErrorKind::StructSize { found: 16, .. })),
            "the descriptor is 16 bytes",
        ),
        (
            broken(&dir, "NULL_ROUTE"),
            Box::new(|k| matches!(k, ErrorKind::Descriptor(_))),
            "claims the routing role but route and route_agents are NULL",
        ),
        (
            broken(&dir, "NULL_NAME"),
            Box::new(|k| matches!(k, ErrorKind::Descriptor(_))),
            "name is NULL",
        ),
        (
            broken(&dir, "UNKNOWN_ROLE"),
            Box::new(|k| matches!(k, ErrorKind::Descriptor(_))),
            "roles 0x41",
        ),
        (
            not_a_library.clone(),
            Box::new(|k| matches!(k, ErrorKind::Open(_))),
            "cannot load the library",
        ),
        (
            dir.join("libmissing.so"),
            Box::new(|k| matches!(k, ErrorKind::Read(_))),
            "cannot read the library",
        ),
    ];
    for (path, is_kind, text) in cases {
        for err in [
            native::check(&path, &dir).err(),
            NativePlugin::load(&spec(&path, &dir), 2, 0).err(),
        ] {
            let err = err.unwrap_or_else(|| panic!("{} was accepted", path.display()));
            assert!(is_kind(&err.kind), "{}: {:?}", path.display(), err.kind);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("plugin {}: ", path.display())),
                "{message}"
            );
            assert!(message.contains(text), "{message}");
            assert_eq!(err.to_script_error().file, path.display().to_string());
        }
    }
    // The host keeps serving with what it had.
    assert_eq!(route(&good), RouteDecision::Agent("agent0".into()));
    let info = native::check(&good_lib, &dir).expect("check the good one");
    assert_eq!(info.role_names(), vec!["routing"]);
}

#[test]
fn a_plugin_built_before_responses_were_appended_still_loads() {
    let dir = scratch("c-before-responses");
    let old = broken(&dir, "BEFORE_RESPONSES");
    let p = NativePlugin::load(&spec(&old, &dir), 1, 0).expect("a 120-byte descriptor loads");
    assert_eq!(p.info().struct_size, 120);
    assert_eq!(route(&p), RouteDecision::Agent("agent0".into()));
    assert!(p.responses().is_empty());
    // Its descriptor has no `responses` entry, so it cannot claim the role.
    let claiming = broken(&dir, "BEFORE_RESPONSES_CLAIMING_THEM");
    let err = NativePlugin::load(&spec(&claiming, &dir), 1, 0).expect_err("refused");
    assert!(
        err.to_string()
            .contains("claims the responses role but responses is NULL"),
        "{err}"
    );
}

#[test]
fn bad_answers_fall_back_to_longest_idle_and_are_counted() {
    let dir = scratch("c-contained");
    for (mode, kind, text) in [
        ("GARBAGE", "shape", "route answered: EOF while parsing"),
        (
            "WRONG_SHAPE",
            "shape",
            "route answered: invalid type: integer `42`",
        ),
        ("ERROR", "error", "database unreachable"),
    ] {
        let lib = broken(&dir, mode);
        let p = NativePlugin::load(&spec(&lib, &dir), 1, 1_000).expect("load");
        p.set_now(5_000);
        for _ in 0..2 {
            // The engine's built-in policy decides instead.
            assert_eq!(route(&p), RouteDecision::Fallback, "{mode}");
        }
        let r = &p.report()[0];
        assert_eq!((r.calls, r.errors), (2, 2), "{mode}");
        let last = &r.last_errors[1];
        assert_eq!(last.kind, kind, "{mode}");
        assert!(last.message.starts_with(text), "{mode}: {}", last.message);
        assert_eq!((last.at, last.line), (5_000, None));
        assert_eq!(last.file, lib.display().to_string());
    }
}

/// A routing plugin built against the version 1 header (its descriptor as
/// that header declared it, 104 bytes, JSON `route` only).
const OLD_ABI: &str = include_str!("../../plugins/sdk/testdata/abi_v1_router.c");

#[test]
fn a_library_built_for_abi_version_1_is_refused_naming_the_file_and_both_versions() {
    let dir = scratch("c-old-abi");
    let lib = cc_source(&dir, "old_abi", OLD_ABI, &[]);
    for err in [
        native::check(&lib, &dir).err(),
        NativePlugin::load(&spec(&lib, &dir), 1, 0).err(),
    ] {
        let err = err.unwrap_or_else(|| panic!("{} was accepted", lib.display()));
        assert_eq!(
            err.kind,
            ErrorKind::AbiVersion {
                found: 1,
                expected: 2
            }
        );
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("plugin {}: ", lib.display())),
            "{message}"
        );
        assert!(
            message.contains("the plugin speaks ABI version 1; this host speaks version 2 only"),
            "{message}"
        );
        assert!(message.contains("rebuild it"), "{message}");
    }
}
