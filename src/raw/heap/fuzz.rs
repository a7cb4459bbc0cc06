//! Fuzz entry point (placeholder).
