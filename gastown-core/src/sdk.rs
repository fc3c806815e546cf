//! TODO: sdk (being written).
