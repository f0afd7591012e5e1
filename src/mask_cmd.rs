//! `switchboard mask [--json]`: a streaming filter, one line in, one line out.
//!
//! Lines are answered as soon as they are read: output is flushed whenever
//! no further input is already buffered, so an interactive or piped
//! producer gets each answer without waiting for end of input.

use std::io::{BufRead, Write};
use switchboard_core::Masker;

/// Errors are the streams' (a closed pipe, a failed write).
pub fn run(json: bool) -> std::io::Result<()> {
    let masker = Masker::default();
    let stdin = std::io::stdin();
    let mut input = std::io::BufReader::with_capacity(64 * 1024, stdin.lock());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut buf = Vec::with_capacity(4096);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => {
                eprintln!("switchboard mask: line {line_no}: not valid UTF-8; invalid bytes replaced by U+FFFD");
                String::from_utf8_lossy(&buf)
            }
        };
        if json {
            let (masked, spans) = masker.mask_with_spans(&text);
            let spans: Vec<serde_json::Value> = spans
                .iter()
                .map(|s| serde_json::json!({"start": s.start, "end": s.end, "kind": s.kind.as_str()}))
                .collect();
            serde_json::to_writer(
                &mut out,
                &serde_json::json!({"masked": masked, "spans": spans}),
            )?;
        } else {
            out.write_all(masker.mask(&text).as_bytes())?;
        }
        out.write_all(b"\n")?;
        if input.buffer().is_empty() {
            out.flush()?;
        }
    }
    out.flush()?;
    Ok(())
}
