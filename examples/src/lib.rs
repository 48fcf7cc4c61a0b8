//! Recipes live in `examples/`; see the README.
