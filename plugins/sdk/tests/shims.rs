//! The shims behind `export_plugin!`, called in-process through the
//! descriptor exactly as a host would: answers, plugin errors, caught
//! panics, bad request JSON, and settings at create.

use std::ffi::{c_void, CStr};
use switchboard_plugin::wire::{RouteAnswer, RouteRequest, WrapUpReason, WrapUpRequest};
use switchboard_plugin::{
    export_plugin, Buffer, Error, Plugin, PluginV2, ABI_VERSION, ROLE_ROUTING, ROLE_WRAPUP,
    STATUS_BAD_REQUEST, STATUS_ERROR, STATUS_OK, STATUS_PANIC,
};

struct Probe {
    prefix: String,
}

impl Plugin for Probe {
    const ROLES: u32 = ROLE_ROUTING | ROLE_WRAPUP;

    fn create(settings: serde_json::Value) -> Result<Self, Error> {
        if settings["fail"] == true {
            return Err("refused by settings".into());
        }
        if settings["panic"] == true {
            panic!("create blew up");
        }
        Ok(Probe {
            prefix: settings["prefix"].as_str().unwrap_or("").to_string(),
        })
    }

    fn route(&self, r: RouteRequest) -> Result<RouteAnswer, Error> {
        match r.conversation.queue.as_str() {
            "panic" => panic!("route blew up on purpose"),
            "error" => Err(Error::new("no agent fits")),
            _ => Ok(RouteAnswer::Agent(format!(
                "{}{}",
                self.prefix, r.candidates[0].id
            ))),
        }
    }

    fn wrapup_reasons(&self, r: WrapUpRequest) -> Result<Vec<WrapUpReason>, Error> {
        Ok(vec![WrapUpReason {
            code: "done".into(),
            label: format!("Done ({})", r.queue),
        }])
    }
}

export_plugin!(Probe);

fn descriptor() -> PluginV2 {
    // SAFETY: the pointer is to a static descriptor defined just above.
    unsafe { *switchboard_plugin() }
}

/// Call a role function; returns the status and the answer text.
fn call(f: switchboard_plugin::abi::JsonFn, instance: *mut c_void, input: &[u8]) -> (i32, String) {
    let d = descriptor();
    let mut out = Buffer::EMPTY;
    // SAFETY: the function is this crate's shim, the instance came from its
    // `create`, the input slice and `out` are valid.
    let status = unsafe { f(instance, input.as_ptr(), input.len(), &mut out) };
    let text = if out.ptr.is_null() {
        String::new()
    } else {
        // SAFETY: the shim filled `out` with `len` initialized bytes.
        let bytes = unsafe { std::slice::from_raw_parts(out.ptr, out.len) };
        String::from_utf8_lossy(bytes).into_owned()
    };
    let free = d.free_buffer.expect("free_buffer");
    // SAFETY: the buffer came from this plugin and is given back once.
    unsafe { free(out) };
    (status, text)
}

fn create(settings: &str) -> Result<*mut c_void, (i32, String)> {
    let d = descriptor();
    let mut instance = std::ptr::null_mut();
    let mut err = Buffer::EMPTY;
    let create = d.create.expect("create");
    // SAFETY: valid settings slice and out-pointers.
    let status = unsafe { create(settings.as_ptr(), settings.len(), &mut instance, &mut err) };
    if status == STATUS_OK {
        return Ok(instance);
    }
    // SAFETY: the shim filled `err` with `len` bytes.
    let msg = unsafe { std::slice::from_raw_parts(err.ptr, err.len) };
    let msg = String::from_utf8_lossy(msg).into_owned();
    // SAFETY: given back once.
    unsafe { d.free_buffer.expect("free")(err) };
    Err((status, msg))
}

fn destroy(instance: *mut c_void) {
    // SAFETY: the instance came from `create` and is not used again.
    unsafe { descriptor().destroy.expect("destroy")(instance) };
}

const REQUEST: &str = r#"{"conversation": {"id": 1, "queue": "QUEUE", "channel": "webchat",
  "customer": "v", "customer_name": "", "source": "", "preview": "", "received_at": 0,
  "queued_at": 0}, "candidates": [{"id": "a1", "name": "A", "load": 0, "capacity": 1,
  "idle_since": 5}], "now": 9}"#;

#[test]
fn the_descriptor_names_the_package_and_its_roles() {
    let d = descriptor();
    assert_eq!(d.abi_version, ABI_VERSION);
    assert_eq!(d.struct_size as usize, std::mem::size_of::<PluginV2>());
    assert_eq!(d.roles, ROLE_ROUTING | ROLE_WRAPUP);
    // SAFETY: the macro points these at NUL-terminated static strings.
    let name = unsafe { CStr::from_ptr(d.name) };
    assert_eq!(name.to_str(), Ok("switchboard-plugin"));
    assert!(d.route.is_some() && d.entry.is_some() && d.wrapup_reasons.is_some());
    assert!(d.channel_inbound.is_none() && d.channel_outbound.is_none());
}

#[test]
fn answers_errors_and_panics_come_back_as_status_codes() {
    let d = descriptor();
    let route = d.route.expect("route");
    let p = create(r#"{"prefix": "x-"}"#).expect("create");
    let ok = call(route, p, REQUEST.replace("QUEUE", "support").as_bytes());
    assert_eq!(ok, (STATUS_OK, r#"{"agent":"x-a1"}"#.to_string()));

    let (status, msg) = call(route, p, REQUEST.replace("QUEUE", "error").as_bytes());
    assert_eq!((status, msg.as_str()), (STATUS_ERROR, "no agent fits"));

    let (status, msg) = call(route, p, REQUEST.replace("QUEUE", "panic").as_bytes());
    assert_eq!(status, STATUS_PANIC);
    assert_eq!(msg, "plugin panicked: route blew up on purpose");

    // The instance still serves after a caught panic.
    let again = call(route, p, REQUEST.replace("QUEUE", "support").as_bytes());
    assert_eq!(again.0, STATUS_OK);

    for bad in [&b"not json"[..], b"", br#"{"conversation": 3}"#] {
        let (status, msg) = call(route, p, bad);
        assert_eq!(status, STATUS_BAD_REQUEST, "{msg}");
        assert!(msg.starts_with("bad request: "), "{msg}");
    }

    let wrapup = d.wrapup_reasons.expect("wrapup");
    let (status, text) = call(wrapup, p, br#"{"queue": "billing"}"#);
    assert_eq!(status, STATUS_OK);
    assert_eq!(
        text,
        r#"{"reasons":[{"code":"done","label":"Done (billing)"}]}"#
    );
    // entry has a default: keep the channel's queue.
    let entry = d.entry.expect("entry");
    let (status, text) = call(entry, p, REQUEST.replace("QUEUE", "s").as_bytes());
    assert_eq!((status, text.as_str()), (STATUS_OK, r#"{"queue":null}"#));
    destroy(p);
}

#[test]
fn create_reports_refusals_and_panics() {
    assert_eq!(
        create(r#"{"fail": true}"#).err(),
        Some((STATUS_ERROR, "refused by settings".to_string()))
    );
    assert_eq!(
        create(r#"{"panic": true}"#).err(),
        Some((STATUS_PANIC, "plugin panicked: create blew up".to_string()))
    );
    let Err((status, msg)) = create("{") else {
        panic!("bad settings accepted")
    };
    assert_eq!(status, STATUS_BAD_REQUEST);
    assert!(msg.starts_with("bad settings"), "{msg}");
    // No settings at all is `null`.
    let p = create("").expect("null settings");
    destroy(p);
}

#[test]
fn a_null_instance_is_an_error_not_a_crash() {
    let route = descriptor().route.expect("route");
    let (status, msg) = call(route, std::ptr::null_mut(), REQUEST.as_bytes());
    assert_eq!((status, msg.as_str()), (STATUS_ERROR, "no plugin instance"));
}
