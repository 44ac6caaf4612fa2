//! Exchange benchmark (being written).

fn main() {}
