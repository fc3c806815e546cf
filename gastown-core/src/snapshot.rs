//! TODO: snapshot (being written).
