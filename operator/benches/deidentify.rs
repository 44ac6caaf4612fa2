//! De-identification benchmark (in progress).

fn main() {}
