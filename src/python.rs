//! PyO3 bindings (placeholder until written).
