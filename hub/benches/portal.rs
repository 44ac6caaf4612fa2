//! The portal download benchmark (beside nginx); it follows in the next commit.
fn main() {}
