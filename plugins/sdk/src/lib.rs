//! Switchboard dynamic plugin SDK: the versioned C ABI shared by the host and
//! plugins. The ABI itself is built in the dynamic-plugins issue; for now this
//! crate holds only the version constant both sides agree on.

/// Version of the C ABI spoken by this SDK. A host refuses other versions.
pub const ABI_VERSION: u32 = 1;
