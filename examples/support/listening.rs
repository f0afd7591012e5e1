//! Shared by the examples that start the real binary: the base URL it
//! prints once it listens (its stdout drained afterwards, so it never
//! blocks on a full pipe).

use std::io::{BufRead, BufReader};
use std::process::Child;

/// Wait for `child` (started with a piped stdout) to print its base URL.
pub fn base_url(child: &mut Child) -> String {
    let Some(stdout) = child.stdout.take() else {
        panic!("the server's stdout is not piped")
    };
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(b) = l.strip_prefix("Switchboard is listening on ") {
                    break b.trim().to_string();
                }
            }
            _ => panic!("the server did not start"),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    base
}
