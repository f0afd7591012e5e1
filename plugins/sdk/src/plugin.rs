//! The safe side for Rust plugin authors: the [`Plugin`] trait (one method
//! per call, serde types in and out) and the `extern "C"` shims that
//! [`crate::export_plugin!`] puts behind the descriptor.
//!
//! Every shim runs the whole call (reading the request, the plugin's code,
//! writing the answer) inside `catch_unwind`: since Rust 1.81 a panic that
//! unwinds out of an `extern "C"` function aborts the process, so a panic
//! must become [`STATUS_PANIC`] here. Invalid or wrongly shaped request JSON
//! becomes [`STATUS_BAD_REQUEST`], a plugin's `Err` [`STATUS_ERROR`].
//! A plugin built with `panic = "abort"` cannot be caught: do not.

use crate::abi::{
    Buffer, PluginV1, ABI_VERSION, ROLE_CHANNEL, ROLE_RESPONSES, ROLE_ROUTING, ROLE_WRAPUP,
    STATUS_BAD_REQUEST, STATUS_ERROR, STATUS_OK, STATUS_PANIC,
};
use crate::wire::{
    CannedResponse, ChannelRequest, EntryAnswer, EntryRequest, InboundAnswer, OutboundAnswer,
    OutboundRequest, ResponsesAnswer, ResponsesRequest, RouteAnswer, RouteRequest, Verdict,
    WrapUpAnswer, WrapUpReason, WrapUpRequest,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A plugin's error: the message the host counts and shows to admins.
/// Keep customer text out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }

    fn unsupported(call: &str) -> Self {
        Error(format!("this plugin does not implement {call}"))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(s.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error(e.to_string())
    }
}

/// A dynamic plugin written in Rust. Implement the methods of the roles in
/// [`Plugin::ROLES`] and export the type with [`crate::export_plugin!`].
///
/// The host may call one instance from several threads at once, hence
/// `Send + Sync`; a panic in any method is caught and counted as a failure,
/// and the host then uses its built-in behaviour for that call.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// The roles filled: [`ROLE_ROUTING`] | [`ROLE_WRAPUP`] | [`ROLE_CHANNEL`]
    /// | [`ROLE_RESPONSES`].
    const ROLES: u32;

    /// Build an instance from the settings the host was configured with
    /// (`null` when none).
    fn create(settings: serde_json::Value) -> Result<Self, Error>;

    /// Routing: the queue a new conversation joins (`None`: the channel's default).
    fn entry(&self, _request: EntryRequest) -> Result<Option<String>, Error> {
        Ok(None)
    }

    /// Routing: choose among the candidates.
    fn route(&self, _request: RouteRequest) -> Result<RouteAnswer, Error> {
        Err(Error::unsupported("route"))
    }

    /// Wrap-up: the reasons for a queue.
    fn wrapup_reasons(&self, _request: WrapUpRequest) -> Result<Vec<WrapUpReason>, Error> {
        Err(Error::unsupported("wrapup_reasons"))
    }

    /// Channel: answer a request now, or accept it for [`Plugin::inbound`].
    fn verify(&self, _request: ChannelRequest) -> Result<Verdict, Error> {
        Ok(Verdict::Accept)
    }

    /// Channel: parse an accepted request.
    fn inbound(&self, _request: ChannelRequest) -> Result<InboundAnswer, Error> {
        Err(Error::unsupported("inbound"))
    }

    /// Channel: build the request that carries an agent's message.
    fn outbound(&self, _request: OutboundRequest) -> Result<OutboundAnswer, Error> {
        Err(Error::unsupported("outbound"))
    }

    /// Canned responses: the tenant's list (asked once, at load).
    fn responses(&self, _request: ResponsesRequest) -> Result<Vec<CannedResponse>, Error> {
        Err(Error::unsupported("responses"))
    }
}

/// The descriptor of `P`; used by [`crate::export_plugin!`]. `name` and
/// `version` must end with a NUL byte.
#[doc(hidden)]
pub const fn descriptor<P: Plugin>(name: &'static str, version: &'static str) -> PluginV1 {
    let routing = P::ROLES & ROLE_ROUTING != 0;
    let wrapup = P::ROLES & ROLE_WRAPUP != 0;
    let channel = P::ROLES & ROLE_CHANNEL != 0;
    let responses = P::ROLES & ROLE_RESPONSES != 0;
    PluginV1 {
        abi_version: ABI_VERSION,
        struct_size: std::mem::size_of::<PluginV1>() as u32,
        roles: P::ROLES,
        reserved: 0,
        name: name.as_ptr().cast(),
        version: version.as_ptr().cast(),
        create: Some(create::<P>),
        destroy: Some(destroy::<P>),
        free_buffer: Some(free_buffer),
        route: if routing { Some(route::<P>) } else { None },
        entry: if routing { Some(entry::<P>) } else { None },
        wrapup_reasons: if wrapup {
            Some(wrapup_reasons::<P>)
        } else {
            None
        },
        channel_verify: if channel { Some(verify::<P>) } else { None },
        channel_inbound: if channel { Some(inbound::<P>) } else { None },
        channel_outbound: if channel { Some(outbound::<P>) } else { None },
        responses: if responses {
            Some(canned_responses::<P>)
        } else {
            None
        },
    }
}

/// Hand `bytes` over to the host.
fn give(bytes: Vec<u8>) -> Buffer {
    let mut bytes = std::mem::ManuallyDrop::new(bytes);
    Buffer {
        ptr: bytes.as_mut_ptr(),
        len: bytes.len(),
        cap: bytes.capacity(),
    }
}

/// Write `bytes` to `out` if the host gave one.
///
/// # Safety
/// `out` is NULL or valid for writes.
unsafe fn write_out(out: *mut Buffer, bytes: Vec<u8>) {
    if out.is_null() {
        return;
    }
    // SAFETY: the caller guarantees `out` is valid for writes when not NULL.
    unsafe { out.write(give(bytes)) };
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    format!("plugin panicked: {what}")
}

/// Run `f`, turning a panic into `(STATUS_PANIC, message)`.
fn guarded(f: impl FnOnce() -> (i32, Vec<u8>)) -> (i32, Vec<u8>) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            // Dropping a payload can itself panic; never let that unwind out.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            (STATUS_PANIC, message.into_bytes())
        }
    }
}

/// The body of every role shim.
///
/// # Safety
/// `instance` is NULL or came from [`create`] with the same `P`; `input` is
/// valid for `input_len` bytes (or NULL with a zero length); `out` is NULL
/// or valid for writes.
unsafe fn call<P: Plugin, Req: DeserializeOwned, Ans: Serialize>(
    instance: *mut c_void,
    input: *const u8,
    input_len: usize,
    out: *mut Buffer,
    f: impl FnOnce(&P, Req) -> Result<Ans, Error>,
) -> i32 {
    let (status, bytes) = guarded(|| {
        // SAFETY: the caller guarantees `instance` is NULL or a live `P` made by `create`.
        let Some(plugin) = (unsafe { instance.cast::<P>().as_ref() }) else {
            return (STATUS_ERROR, b"no plugin instance".to_vec());
        };
        let input: &[u8] = if input.is_null() || input_len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees `input` is valid for `input_len` bytes.
            unsafe { std::slice::from_raw_parts(input, input_len) }
        };
        let request: Req = match serde_json::from_slice(input) {
            Ok(r) => r,
            Err(e) => return (STATUS_BAD_REQUEST, format!("bad request: {e}").into_bytes()),
        };
        match f(plugin, request) {
            Ok(answer) => match serde_json::to_vec(&answer) {
                Ok(bytes) => (STATUS_OK, bytes),
                Err(e) => (
                    STATUS_ERROR,
                    format!("cannot encode answer: {e}").into_bytes(),
                ),
            },
            Err(e) => (STATUS_ERROR, e.0.into_bytes()),
        }
    });
    // SAFETY: the caller guarantees `out` is NULL or valid for writes.
    unsafe { write_out(out, bytes) };
    status
}

/// # Safety
/// The host passes `settings` valid for `settings_len` bytes, `instance`
/// and `error` valid for writes (or NULL).
#[doc(hidden)]
pub unsafe extern "C" fn create<P: Plugin>(
    settings: *const u8,
    settings_len: usize,
    instance: *mut *mut c_void,
    error: *mut Buffer,
) -> i32 {
    let (status, bytes) = guarded(|| {
        if instance.is_null() {
            return (STATUS_ERROR, b"no place for the instance".to_vec());
        }
        let input: &[u8] = if settings.is_null() || settings_len == 0 {
            b"null"
        } else {
            // SAFETY: the host guarantees `settings` is valid for `settings_len` bytes.
            unsafe { std::slice::from_raw_parts(settings, settings_len) }
        };
        let value = match serde_json::from_slice(input) {
            Ok(v) => v,
            Err(e) => {
                return (
                    STATUS_BAD_REQUEST,
                    format!("bad settings: {e}").into_bytes(),
                )
            }
        };
        match P::create(value) {
            Ok(p) => {
                let raw = Box::into_raw(Box::new(p)).cast::<c_void>();
                // SAFETY: checked non-NULL above; the host guarantees it is writable.
                unsafe { instance.write(raw) };
                (STATUS_OK, Vec::new())
            }
            Err(e) => (STATUS_ERROR, e.0.into_bytes()),
        }
    });
    if status != STATUS_OK {
        // SAFETY: the host guarantees `error` is NULL or valid for writes.
        unsafe { write_out(error, bytes) };
    }
    status
}

/// # Safety
/// `instance` is NULL or came from [`create`] with the same `P` and is not
/// used again.
#[doc(hidden)]
pub unsafe extern "C" fn destroy<P: Plugin>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // SAFETY: the host guarantees `instance` came from `Box::into_raw` in
    // `create::<P>` and that this is its last use.
    let boxed = unsafe { Box::from_raw(instance.cast::<P>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

/// # Safety
/// `buffer` came from one of this SDK's shims and is given back once.
#[doc(hidden)]
pub unsafe extern "C" fn free_buffer(buffer: Buffer) {
    if buffer.ptr.is_null() {
        return;
    }
    // SAFETY: the buffer was made by `give` from a Vec<u8> with exactly this
    // pointer, length and capacity, and is freed once.
    drop(unsafe { Vec::from_raw_parts(buffer.ptr, buffer.len, buffer.cap) });
}

macro_rules! shim {
    ($name:ident, $req:ty, $ans:ty, |$p:ident, $r:ident| $body:expr) => {
        /// # Safety
        /// See the ABI: `instance` from `create`, `input` valid for
        /// `input_len` bytes, `output` valid for writes.
        #[doc(hidden)]
        pub unsafe extern "C" fn $name<P: Plugin>(
            instance: *mut c_void,
            input: *const u8,
            input_len: usize,
            output: *mut Buffer,
        ) -> i32 {
            // SAFETY: forwarded from this function's own contract.
            unsafe { call::<P, $req, $ans>(instance, input, input_len, output, |$p, $r| $body) }
        }
    };
}

shim!(route, RouteRequest, RouteAnswer, |p, r| p.route(r));
shim!(entry, EntryRequest, EntryAnswer, |p, r| p
    .entry(r)
    .map(|queue| EntryAnswer { queue }));
shim!(wrapup_reasons, WrapUpRequest, WrapUpAnswer, |p, r| p
    .wrapup_reasons(r)
    .map(|reasons| WrapUpAnswer { reasons }));
shim!(verify, ChannelRequest, Verdict, |p, r| p.verify(r));
shim!(inbound, ChannelRequest, InboundAnswer, |p, r| p.inbound(r));
shim!(outbound, OutboundRequest, OutboundAnswer, |p, r| p
    .outbound(r));
shim!(
    canned_responses,
    ResponsesRequest,
    ResponsesAnswer,
    |p, r| p
        .responses(r)
        .map(|responses| ResponsesAnswer { responses })
);
