//! The algorithms, layer 7; unstable, for model checking: not semver surface.

pub mod heap;
