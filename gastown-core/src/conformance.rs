//! TODO: conformance (being written).
