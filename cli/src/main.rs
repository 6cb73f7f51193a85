//! `bert-edge`: the device command-line tool (see `bert-edge help` and the crate `bert_edge_cli`).

use std::process::ExitCode;

/// `bench` reports allocations per call only in builds with this feature (two atomic adds per
/// allocation; shipped binaries use the system allocator as is).
#[cfg(feature = "count-allocs")]
#[global_allocator]
static ALLOC: bert_edge_cli::alloc_count::CountingAlloc = bert_edge_cli::alloc_count::CountingAlloc;

fn main() -> ExitCode {
    bert_edge_cli::main()
}
