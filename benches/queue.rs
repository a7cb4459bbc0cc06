//! Placeholder: filled by the owner of this primitive.
fn main() {}
